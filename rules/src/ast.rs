//! The syntax tree: what a rule file says, before any meaning is checked. Every node carries its span.
//!
//! Words (kinds, flags, socket words, units, unknown predicates and actions) are kept as written, with
//! their spans, for the validator to resolve against the vocabulary tables; strings are already unescaped;
//! numbers are kept as their digits so that the validator can say which one is out of range.

use crate::rule::{CmpOp, Span};

/// A word or number as written, with its byte range in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub span: Span,
}

/// A quoted string: its value (escapes decoded) and the byte range of the whole literal, quotes included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Str {
    pub value: String,
    pub span: Span,
}

/// One rule as written: `SELECTOR => ACTION [because "NOTE"]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The kind word that opens the selector (`chardev`), not yet resolved.
    pub kind: Word,
    pub predicates: Vec<Predicate>,
    /// The `=>`.
    pub arrow: Span,
    pub action: Action,
    pub because: Option<Because>,
    /// The whole rule, first token to last (continuation lines included, trailing comment excluded).
    pub span: Span,
    /// The 1-based line of the rule's first token.
    pub line: u32,
    /// The rule's text with continuations joined into single spaces.
    pub text: String,
}

/// `because "NOTE"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Because {
    /// The `because` keyword.
    pub keyword: Span,
    pub note: Str,
}

/// One predicate, with the `not`s written before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Predicate {
    /// The span of each `not` before the atom, outermost first (kept flat: any depth parses in constant
    /// stack; the validator bounds it).
    pub nots: Vec<Span>,
    pub atom: Atom,
    /// The whole predicate, `not`s included.
    pub span: Span,
}

/// A predicate without its `not`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Atom {
    /// What the predicate is about: its keyword (`path`), or the whole `MAJ:MIN` for device numbers.
    pub keyword: Span,
    pub body: AtomBody,
    /// The whole atom, arguments included.
    pub span: Span,
}

/// The predicates of the language, arguments as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AtomBody {
    /// `MAJ:MIN`.
    Dev { major: NumSpec, minor: NumSpec },
    /// `path "GLOB"`.
    Path(Str),
    /// `fs NAME` or `fs "NAME"` (a glob); for a bare word the span is the word's.
    Fs(Str),
    /// `deleted`.
    Deleted,
    /// `flags O_A,O_B`.
    Flags(Vec<Word>),
    /// `access ro|wo|rw`.
    Access(Word),
    /// `size OP N[UNIT]`.
    Size { op: CmpOp, op_span: Span, size: Size },
    /// `fd N|N-M|{..}|*`.
    Fd(NumSpec),
    /// `family WORD`.
    Family(Word),
    /// `type WORD`.
    Type(Word),
    /// `state WORD`.
    State(Word),
    /// `name "GLOB"`.
    Name(Str),
    /// A word in a predicate's place that is no predicate keyword (`pth`), its arguments skipped.
    Unknown(Word),
}

/// A number specification: `*`, or one or more ranges (`3`, `64-255`, `{3,5,7-9}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NumSpec {
    /// `*`: every number.
    Any(Span),
    /// A single range, or a braced set of them.
    Set { items: Vec<NumRange>, span: Span },
}

impl NumSpec {
    /// The whole specification's span.
    pub fn span(&self) -> Span {
        match self {
            NumSpec::Any(s) | NumSpec::Set { span: s, .. } => s.clone(),
        }
    }
}

/// `N` or `N-M`, digits as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumRange {
    pub lo: Word,
    pub hi: Option<Word>,
    pub span: Span,
}

/// A size as written: digits and an optional unit word (`16MiB`, `4096`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Size {
    pub number: Word,
    pub unit: Option<Word>,
    pub span: Span,
}

/// The action of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// The action's keyword as written (`reopen`, or an unknown word).
    pub keyword: Word,
    pub body: ActionBody,
    /// The whole action, arguments included.
    pub span: Span,
}

/// The actions of the language, arguments as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionBody {
    /// `reopen path`.
    ReopenPath,
    /// `reopen "SUBST"`.
    ReopenSubst(Str),
    /// `contents` or `contents limit SIZE`.
    Contents { limit: Option<Size> },
    /// `recreate`.
    Recreate,
    /// `inherit "NAME"`.
    Inherit(Str),
    /// `close`.
    Close,
    /// `reject "REASON"`.
    Reject(Str),
    /// `plugin "NAME"`.
    Plugin(Str),
    /// A word in the action's place that is no action keyword (`reopn`), its arguments skipped.
    Unknown,
}
