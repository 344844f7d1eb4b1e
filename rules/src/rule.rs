//! The validated rule set: what the validator produces from syntax trees and what the engine's matchers
//! consume. Every value here is known to make sense (ranges non-empty, numbers in the kernel's range, globs
//! compiled, predicates applicable to their kind); every rule knows where it came from.

use crate::source::Span;
use crate::vocab::{Access, Clock, Kind, MarkTarget, PeerPlace, SockFamily, SockProto, SockState, SockType};
use std::fmt;
use std::sync::Arc;

pub use crate::action::Action;

// `size OP BYTES` keeps the operator the syntax tree has.
pub use crate::ast::CmpOp;

/// A set of unsigned numbers as sorted, disjoint, non-adjacent inclusive ranges (`4:64-255`, `1:{3,5,7-9}`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NumSet {
    ranges: Vec<(u32, u32)>,
}

impl NumSet {
    /// Every number up to `limit` (exclusive): the meaning of `*`.
    pub fn all(limit: u32) -> NumSet {
        NumSet { ranges: vec![(0, limit - 1)] }
    }

    /// One number.
    pub fn single(n: u32) -> NumSet {
        NumSet { ranges: vec![(n, n)] }
    }

    /// The union of inclusive ranges, normalised (sorted, merged). Ranges with `lo > hi` are dropped;
    /// the validator rejects them before they get here.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u32, u32)>) -> NumSet {
        let mut rs: Vec<(u32, u32)> = ranges.into_iter().filter(|(lo, hi)| lo <= hi).collect();
        rs.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(rs.len());
        for (lo, hi) in rs {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        NumSet { ranges: merged }
    }

    /// The normalised ranges.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    /// True when `n` is in the set.
    pub fn contains(&self, n: u32) -> bool {
        // Sets are short; a binary search keeps large ones cheap too.
        match self.ranges.binary_search_by(|&(lo, _)| lo.cmp(&n)) {
            Ok(_) => true,
            Err(0) => false,
            Err(i) => n <= self.ranges[i - 1].1,
        }
    }

    /// The only number in the set, if it holds exactly one.
    pub fn as_single(&self) -> Option<u32> {
        match self.ranges.as_slice() {
            [(lo, hi)] if lo == hi => Some(*lo),
            _ => None,
        }
    }

    /// True when the set holds every number below `limit`.
    pub fn is_all(&self, limit: u32) -> bool {
        self.ranges == [(0, limit - 1)]
    }
}

impl fmt::Display for NumSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = |f: &mut fmt::Formatter<'_>, &(lo, hi): &(u32, u32)| {
            if lo == hi { write!(f, "{lo}") } else { write!(f, "{lo}-{hi}") }
        };
        match self.ranges.as_slice() {
            [r] => one(f, r),
            rs => {
                f.write_str("{")?;
                for (i, r) in rs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    one(f, r)?;
                }
                f.write_str("}")
            }
        }
    }
}

/// A compiled glob with the text it was written as. Equality and hashing go by the text.
#[derive(Clone, Debug)]
pub struct Glob {
    text: String,
    glob: globset::Glob,
    /// Compiled on first use: building a regex per glob would dominate compiling a large policy, and the
    /// engine's compiled matcher mostly matches through a `GlobSet` of [`Glob::glob`] instead.
    matcher: std::sync::OnceLock<globset::GlobMatcher>,
}

impl Glob {
    /// Compiles a glob in the language's dialect: `*` and `?` stay inside one path component, `**` crosses
    /// them, `{a,b}` alternatives, `[...]` classes.
    pub fn new(text: &str) -> Result<Glob, globset::Error> {
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(true)
            .backslash_escape(true)
            .empty_alternates(true)
            .build()?;
        Ok(Glob { text: text.to_owned(), glob, matcher: std::sync::OnceLock::new() })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The globset glob, for building a `GlobSet` of many.
    pub fn glob(&self) -> &globset::Glob {
        &self.glob
    }

    /// True when the bytes of `s` match: a path or name from the kernel need not be UTF-8, and `*`, `?`
    /// and negated classes match any byte but `/` (the glob's own text is UTF-8).
    pub fn is_match(&self, s: impl AsRef<[u8]>) -> bool {
        self.matcher.get_or_init(|| self.glob.compile_matcher()).is_match(bytes_as_path(s.as_ref()))
    }

    /// True when the glob has no metacharacters, so it matches exactly its own text.
    pub fn literal(&self) -> Option<&str> {
        (!self.text.contains(['*', '?', '[', '{', '\\'])).then_some(self.text.as_str())
    }
}

/// Bytes as a `Path`, losslessly (what a `Path` is on unix), for globset, which matches a path's bytes.
fn bytes_as_path(bytes: &[u8]) -> &std::path::Path {
    std::path::Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes))
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for Glob {}
impl std::hash::Hash for Glob {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}

/// One condition of a selector. All of a rule's predicates must hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Predicate {
    /// `MAJ:MIN` of a device file (`chardev`, `blockdev`).
    Dev { major: NumSet, minor: NumSet },
    /// `path GLOB`: the fd's path.
    Path(Glob),
    /// `fs GLOB`: the filesystem type of the fd's mount (`tmpfs`, `fuse.*`).
    Fs(Glob),
    /// `deleted`: the file was unlinked (`st_nlink == 0`).
    Deleted,
    /// `flags O_A,O_B`: all these bits are set in the open flags.
    Flags(u32),
    /// `access ro|wo|rw`.
    Access(Access),
    /// `size OP BYTES`.
    Size(CmpOp, u64),
    /// `fd N`, `fd 0-2`: the fd number.
    Fd(NumSet),
    /// `family unix`.
    Family(SockFamily),
    /// `type stream`.
    SockType(SockType),
    /// `state listen`.
    State(SockState),
    /// `protocol tcp`: the socket's protocol, from the kernel's name for it.
    Protocol(SockProto),
    /// `queued`: the socket has data or connections waiting to be read or accepted.
    Queued,
    /// `unlinked`: the path the fd was opened by is gone, the file lives on under another name.
    Unlinked,
    /// `packet`: a pipe in packet mode (`O_DIRECT` on an end the process holds).
    Packet,
    /// `clock boottime_alarm`: a timer's clock.
    Clock(Clock),
    /// `thread`: a pidfd for one thread (`PIDFD_THREAD`).
    Thread,
    /// `marks filesystem`: a fanotify group with a mark on that kind of object.
    Marks(MarkTarget),
    /// `locked`: a file lock (POSIX, flock, OFD, lease) is held through the fd's open file.
    Locked,
    /// `peer outside`: where the other end is, seen from the processes checked together (a pipe's or
    /// FIFO's other end, a unix socket's peer, a TCP connection's over a local address, a terminal's other
    /// side). An fd whose ends were not linked, or a TCP connection to another host, has no place, so no
    /// `peer` predicate holds for it.
    Peer(PeerPlace),
    /// `shared`: other fds of the processes checked together hold the fd's open file (after `dup` or
    /// `fork`: offset and flags shared).
    Shared,
    /// `name GLOB`: an anonymous inode's name, brackets included (`[kvm-vm]`).
    Name(Glob),
    /// `not P`.
    Not(Box<Predicate>),
}

impl fmt::Display for Predicate {
    /// The predicate as written in a rule, keywords from [`crate::vocab`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::vocab::{NOT, PredicateWord as W};
        match self {
            Predicate::Dev { major, minor } => {
                let side = |s: &NumSet, limit| {
                    if s.is_all(limit) { "*".to_owned() } else { s.to_string() }
                };
                write!(f, "{}:{}", side(major, crate::vocab::MAJOR_LIMIT), side(minor, crate::vocab::MINOR_LIMIT))
            }
            Predicate::Path(g) => write!(f, "{} {:?}", W::Path, g.as_str()),
            Predicate::Fs(g) => write!(f, "{} {}", W::Fs, g.as_str()),
            Predicate::Deleted => write!(f, "{}", W::Deleted),
            Predicate::Flags(bits) => {
                let names: Vec<&str> =
                    crate::vocab::open_flag_names(*bits).into_iter().filter(|n| *n != "O_RDONLY").collect();
                write!(f, "{} {}", W::Flags, names.join(","))
            }
            Predicate::Access(a) => write!(f, "{} {a}", W::Access),
            Predicate::Size(op, n) => write!(f, "{} {} {n}", W::Size, op.as_str()),
            Predicate::Fd(s) => write!(f, "{} {s}", W::Fd),
            Predicate::Family(x) => write!(f, "{} {x}", W::Family),
            Predicate::SockType(x) => write!(f, "{} {x}", W::Type),
            Predicate::State(x) => write!(f, "{} {x}", W::State),
            Predicate::Protocol(x) => write!(f, "{} {x}", W::Protocol),
            Predicate::Queued => write!(f, "{}", W::Queued),
            Predicate::Unlinked => write!(f, "{}", W::Unlinked),
            Predicate::Packet => write!(f, "{}", W::Packet),
            Predicate::Clock(x) => write!(f, "{} {x}", W::Clock),
            Predicate::Thread => write!(f, "{}", W::Thread),
            Predicate::Marks(x) => write!(f, "{} {x}", W::Marks),
            Predicate::Locked => write!(f, "{}", W::Locked),
            Predicate::Peer(x) => write!(f, "{} {x}", W::Peer),
            Predicate::Shared => write!(f, "{}", W::Shared),
            Predicate::Name(g) => write!(f, "{} {:?}", W::Name, g.as_str()),
            Predicate::Not(p) => write!(f, "{NOT} {p}"),
        }
    }
}

/// Where a rule was written: the file as displayed to users, and the 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: u32,
    /// Byte range of the whole rule in its file, for diagnostics that point at it.
    pub span: Span,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A validated rule. Its index in [`RuleSet::rules`] is its precedence: lower wins.
#[derive(Clone, Debug)]
pub struct Rule {
    pub kind: Kind,
    pub predicates: Vec<Predicate>,
    pub action: Action,
    /// An explanatory note (`because "..."`), shown with the decision.
    pub because: Option<String>,
    pub origin: Origin,
    /// The rule's source text, continuation lines joined.
    pub text: String,
}

impl Rule {
    /// The reason shown with a decision: the reject reason, or the rule's `because` note.
    pub fn reason(&self) -> Option<&str> {
        match &self.action {
            Action::Reject { reason } => Some(reason),
            _ => self.because.as_deref(),
        }
    }
}

/// The effective policy: validated rules in precedence order (first match wins).
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// The rules, in effective order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numset_normalises_and_answers() {
        let s = NumSet::from_ranges([(7, 9), (3, 3), (5, 5), (4, 4), (20, 10)]);
        assert_eq!(s.ranges(), &[(3, 5), (7, 9)]);
        assert!(s.contains(4) && s.contains(9) && !s.contains(6) && !s.contains(2) && !s.contains(10));
        assert_eq!(s.to_string(), "{3-5,7-9}");
    }

    #[test]
    fn glob_dialect_keeps_star_in_one_component() {
        let g = Glob::new("/var/log/*").unwrap();
        assert!(g.is_match("/var/log/syslog"));
        assert!(!g.is_match("/var/log/apt/history.log"));
        let g = Glob::new("/var/**/*.log").unwrap();
        assert!(g.is_match("/var/log/apt/history.log"));
        let g = Glob::new("/dev/{null,zero}").unwrap();
        assert!(g.is_match("/dev/zero"));
        assert_eq!(Glob::new("/dev/null").unwrap().literal(), Some("/dev/null"));
    }

    #[test]
    fn globs_match_bytes_that_are_not_utf8() {
        let cases: &[(&str, &[u8], bool)] = &[
            ("/dev/*", b"/dev/\xffkvm", true),
            ("/dev/?kvm", b"/dev/\xffkvm", true),
            ("/dev/[!a]kvm", b"/dev/\xffkvm", true),
            ("/dev/*", b"/dev/\xff/kvm", false),
            ("/**/kvm", b"/\xc3/\x80\xff/kvm", true),
            ("*.log", b"\xfe.log", true),
            ("/dev/kvm", b"/dev/\xffkvm", false),
            ("/dev/\u{e9}", "/dev/\u{e9}".as_bytes(), true),
            ("/dev/\u{e9}", b"/dev/\xe9", false),
        ];
        for &(glob, bytes, want) in cases {
            assert_eq!(Glob::new(glob).unwrap().is_match(bytes), want, "{glob} on {}", bytes.escape_ascii());
        }
    }
}
