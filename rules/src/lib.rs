//! The crrules rule language: policy text -> syntax tree ([`ast`], by [`parse`]) -> validated rule set
//! ([`rule`], by [`validate`]), the whole pipeline in [`compile`](mod@compile), with every problem
//! reported as a [`diag::Diagnostic`] carrying its span. [`policy`] finds and orders policy files the way
//! udev and systemd users expect. No OS code beyond reading those files.
#![forbid(unsafe_code)]

pub mod action;
pub mod analysis;
pub mod ast;
pub mod compile;
pub mod diag;
pub mod hash;
pub mod lex;
mod par;
pub mod parse;
pub mod policy;
pub mod rule;
pub mod source;
pub mod trust;
pub mod validate;
pub mod vocab;

pub use compile::{Validated, compile, lint};
pub use diag::{Diagnostic, Severity};
pub use rule::{Action, Rule, RuleSet};
pub use source::{Source, Span};
