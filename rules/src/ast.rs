//! The syntax tree: what a rule file says, before any meaning is checked. Every node carries its span.
//!
//! Words (kinds, flags, socket words, units, unknown predicates and actions) are kept as written, with
//! their spans, for the validator to resolve against the vocabulary tables; strings are already unescaped;
//! numbers are kept as their digits so that the validator can say which one is out of range. Text is
//! borrowed from the file wherever it can be (a tree lives as long as its [`crate::Source`]'s text).

use crate::source::Span;
use crate::vocab::{ActionWord, PredicateWord};
use std::borrow::Cow;

/// A word or number as written, with its byte range in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word<'a> {
    pub text: &'a str,
    pub span: Span,
}

/// A quoted string: its value (escapes decoded) and the byte range of the whole literal, quotes included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Str<'a> {
    pub value: Cow<'a, str>,
    pub span: Span,
}

/// One rule as written: `SELECTOR => ACTION [because "NOTE"]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule<'a> {
    /// The kind word that opens the selector (`chardev`), not yet resolved.
    pub kind: Word<'a>,
    pub predicates: Vec<Predicate<'a>>,
    /// The `=>`.
    pub arrow: Span,
    pub action: Action<'a>,
    pub because: Option<Because<'a>>,
    /// The whole rule, first token to last (continuation lines included, trailing comment excluded).
    pub span: Span,
    /// The 1-based line of the rule's first token.
    pub line: u32,
    /// The rule's text with continuations joined into single spaces.
    pub text: Cow<'a, str>,
}

/// `because "NOTE"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Because<'a> {
    /// The `because` keyword.
    pub keyword: Span,
    pub note: Str<'a>,
}

/// One predicate, with the `not`s written before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Predicate<'a> {
    /// The span of each `not` before the atom, outermost first (kept flat: any depth parses in constant
    /// stack; the validator bounds it).
    pub nots: Vec<Span>,
    pub atom: Atom<'a>,
    /// The whole predicate, `not`s included.
    pub span: Span,
}

/// A predicate without its `not`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Atom<'a> {
    /// What the predicate is about: its keyword (`path`), or the whole `MAJ:MIN` for device numbers.
    pub keyword: Span,
    pub body: AtomBody<'a>,
    /// The whole atom, arguments included.
    pub span: Span,
}

/// The predicates of the language, arguments as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AtomBody<'a> {
    /// `MAJ:MIN`.
    Dev { major: NumSpec<'a>, minor: NumSpec<'a> },
    /// `path "GLOB"`.
    Path(Str<'a>),
    /// `fs NAME` or `fs "NAME"` (a glob); for a bare word the span is the word's.
    Fs(Str<'a>),
    /// `deleted`.
    Deleted,
    /// `flags O_A,O_B`.
    Flags(Vec<Word<'a>>),
    /// `access ro|wo|rw`.
    Access(Word<'a>),
    /// `size OP N[UNIT]`.
    Size { op: CmpOp, op_span: Span, size: Size<'a> },
    /// `fd N|N-M|{..}|*`.
    Fd(NumSpec<'a>),
    /// `family WORD`.
    Family(Word<'a>),
    /// `type WORD`.
    Type(Word<'a>),
    /// `state WORD`.
    State(Word<'a>),
    /// `name "GLOB"`.
    Name(Str<'a>),
    /// `protocol WORD`.
    Protocol(Word<'a>),
    /// `queued`.
    Queued,
    /// `unlinked`.
    Unlinked,
    /// `packet`.
    Packet,
    /// `clock WORD`.
    Clock(Word<'a>),
    /// `thread`.
    Thread,
    /// `marks WORD`.
    Marks(Word<'a>),
    /// `locked`.
    Locked,
    /// `peer WORD`.
    Peer(Word<'a>),
    /// `shared`.
    Shared,
    /// A word in a predicate's place that is no predicate keyword (`pth`), its arguments skipped.
    Unknown(Word<'a>),
}

impl AtomBody<'_> {
    /// The keyword the predicate is written with (`None` for a device number and an unknown word).
    pub fn keyword(&self) -> Option<PredicateWord> {
        use AtomBody as B;
        Some(match self {
            B::Path(_) => PredicateWord::Path,
            B::Fs(_) => PredicateWord::Fs,
            B::Deleted => PredicateWord::Deleted,
            B::Flags(_) => PredicateWord::Flags,
            B::Access(_) => PredicateWord::Access,
            B::Size { .. } => PredicateWord::Size,
            B::Fd(_) => PredicateWord::Fd,
            B::Family(_) => PredicateWord::Family,
            B::Type(_) => PredicateWord::Type,
            B::State(_) => PredicateWord::State,
            B::Name(_) => PredicateWord::Name,
            B::Protocol(_) => PredicateWord::Protocol,
            B::Queued => PredicateWord::Queued,
            B::Unlinked => PredicateWord::Unlinked,
            B::Packet => PredicateWord::Packet,
            B::Clock(_) => PredicateWord::Clock,
            B::Thread => PredicateWord::Thread,
            B::Marks(_) => PredicateWord::Marks,
            B::Locked => PredicateWord::Locked,
            B::Peer(_) => PredicateWord::Peer,
            B::Shared => PredicateWord::Shared,
            B::Dev { .. } | B::Unknown(_) => return None,
        })
    }
}

/// A number specification: `*`, or one or more ranges (`3`, `64-255`, `{3,5,7-9}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NumSpec<'a> {
    /// `*`: every number.
    Any(Span),
    /// A single range, or a braced set of them.
    Set { items: Vec<NumRange<'a>>, span: Span },
}

impl NumSpec<'_> {
    /// The whole specification's span.
    pub fn span(&self) -> Span {
        match self {
            NumSpec::Any(s) | NumSpec::Set { span: s, .. } => s.clone(),
        }
    }
}

/// `N` or `N-M`, digits as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumRange<'a> {
    pub lo: Word<'a>,
    pub hi: Option<Word<'a>>,
    pub span: Span,
}

/// A size as written: digits and an optional unit word (`16MiB`, `4096`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Size<'a> {
    pub number: Word<'a>,
    pub unit: Option<Word<'a>>,
    pub span: Span,
}

/// The comparison operator of `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl CmpOp {
    /// Every operator, in the order messages list them.
    pub const ALL: [CmpOp; 5] = [CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge, CmpOp::Eq];

    /// `lhs OP rhs`.
    pub fn holds(self, lhs: u64, rhs: u64) -> bool {
        match self {
            CmpOp::Lt => lhs < rhs,
            CmpOp::Le => lhs <= rhs,
            CmpOp::Gt => lhs > rhs,
            CmpOp::Ge => lhs >= rhs,
            CmpOp::Eq => lhs == rhs,
        }
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
        }
    }

    /// The operator written `symbol`, if any.
    pub fn from_symbol(symbol: &str) -> Option<CmpOp> {
        CmpOp::ALL.into_iter().find(|op| op.as_str() == symbol)
    }
}

/// The action of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action<'a> {
    /// The action's keyword as written (`reopen`, or an unknown word).
    pub keyword: Word<'a>,
    pub body: ActionBody<'a>,
    /// The whole action, arguments included.
    pub span: Span,
}

/// The actions of the language, arguments as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionBody<'a> {
    /// `reopen path`, or `reopen path exact` (`exact` is the span of that word).
    ReopenPath { exact: Option<Span> },
    /// `reopen "SUBST"`.
    ReopenSubst(Str<'a>),
    /// `contents` or `contents limit SIZE`.
    Contents { limit: Option<Size<'a>> },
    /// `recreate`.
    Recreate,
    /// `inherit "NAME"`.
    Inherit(Str<'a>),
    /// `close`.
    Close,
    /// `reject "REASON"`.
    Reject(Str<'a>),
    /// `plugin "NAME"`.
    Plugin(Str<'a>),
    /// A word in the action's place that is no action keyword (`reopn`), its arguments skipped.
    Unknown,
}

impl ActionBody<'_> {
    /// The keyword the action is written with (`None` for an unknown word).
    pub fn keyword(&self) -> Option<ActionWord> {
        use ActionBody as A;
        Some(match self {
            A::ReopenPath { .. } | A::ReopenSubst(_) => ActionWord::Reopen,
            A::Contents { .. } => ActionWord::Contents,
            A::Recreate => ActionWord::Recreate,
            A::Inherit(_) => ActionWord::Inherit,
            A::Close => ActionWord::Close,
            A::Reject(_) => ActionWord::Reject,
            A::Plugin(_) => ActionWord::Plugin,
            A::Unknown => return None,
        })
    }
}
