//! Text -> syntax tree, through the pest grammar in `grammar/crrules.pest`.
