//! The syntax tree: what a rule file says, before any meaning is checked. Every node carries its span.
