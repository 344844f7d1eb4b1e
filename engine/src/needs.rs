//! Which facts to gather ([`ScanOptions`]) and which a policy needs ([`ScanOptions::for_policy`]), so the
//! scanner can skip the reads that no rule and no output needs: under a policy whose pipe rules test
//! nothing, a pipe costs a `readlink` and no fdinfo read. A leaf module: the scanner reads it, the
//! pipeline and backends fill it in.

use crrules_rules::RuleSet;
use crrules_rules::rule::Predicate;
use crrules_rules::vocab::Kind;

/// A set of fd kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KindMask(u32);

impl KindMask {
    /// Every kind.
    pub const ALL: KindMask = KindMask(u32::MAX);
    /// No kind.
    pub const NONE: KindMask = KindMask(0);

    /// This set with `kind` added.
    pub const fn with(self, kind: Kind) -> KindMask {
        KindMask(self.0 | 1 << kind as u32)
    }

    /// True when `kind` is in the set.
    pub const fn contains(self, kind: Kind) -> bool {
        self.0 & 1 << kind as u32 != 0
    }

    /// The union of two sets.
    pub const fn union(self, other: KindMask) -> KindMask {
        KindMask(self.0 | other.0)
    }

    /// True when no kind is in the set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Which facts to gather. The default gathers everything; a caller that knows no rule and no output needs
/// a fact turns its source off and saves the syscalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanOptions {
    /// `stat` every fd: file type, size, inode, `st_dev`, mode, owner, device numbers. When off, only fds
    /// with a path are stat'ed (their kind needs it); pipes, sockets and anonymous inodes keep the inode
    /// their link names and nothing else from `stat`.
    pub stat: bool,
    /// The kinds whose `/proc/PID/fdinfo/N` is read: position, flags and close-on-exec, mount id, locks,
    /// and the per-kind fields (eventfd, timerfd, signalfd, epoll, inotify, fanotify, pidfd, pty index).
    /// fdinfo is about a third of the per-fd cost, so a policy that tests flags only of files need not pay
    /// for the fdinfo of every pipe and socket.
    pub fdinfo: KindMask,
    /// Socket facts from sock_diag (one dump per process's network namespace), with a fallback to the
    /// protocol name for sockets sock_diag does not list. Off leaves `socket` unset.
    pub sockets: bool,
    /// Filesystem types from the process's mountinfo (needs fdinfo for the mount ids).
    pub mounts: bool,
}

impl Default for ScanOptions {
    fn default() -> ScanOptions {
        ScanOptions::all()
    }
}

impl ScanOptions {
    /// Every fact.
    pub const fn all() -> ScanOptions {
        ScanOptions { stat: true, fdinfo: KindMask::ALL, sockets: true, mounts: true }
    }

    /// Only what the link text and, for paths, `stat` say: number, kind, link, path, name, inode, and for
    /// paths the `stat` fields.
    pub const fn minimal() -> ScanOptions {
        ScanOptions { stat: false, fdinfo: KindMask::NONE, sockets: false, mounts: false }
    }

    /// Everything either set of options reads.
    pub const fn union(self, other: ScanOptions) -> ScanOptions {
        ScanOptions {
            stat: self.stat || other.stat,
            fdinfo: self.fdinfo.union(other.fdinfo),
            sockets: self.sockets || other.sockets,
            mounts: self.mounts || other.mounts,
        }
    }

    /// The scan a policy needs to decide every fd: fdinfo only for kinds whose rules test flags, access or
    /// the filesystem; sock_diag only when a socket rule tests family, type or state; `stat` of fds without
    /// a path only when an `any` rule tests what `stat` says (fds with a path are always stat'ed).
    pub fn for_policy(rules: &RuleSet) -> ScanOptions {
        let mut opts = ScanOptions::minimal();
        for rule in rules.rules() {
            // What this rule's predicates read, as if it were the only rule.
            let mut want = Want::default();
            for p in &rule.predicates {
                want.add(p);
            }
            let kinds = if rule.kind == Kind::Any { KindMask::ALL } else { KindMask::NONE.with(rule.kind) };
            if want.fdinfo {
                opts.fdinfo = opts.fdinfo.union(kinds);
            }
            opts.mounts |= want.mounts;
            opts.sockets |= want.sockets && kinds.contains(Kind::Socket);
            // Fds with a path are always stat'ed; the others only for an `any` rule.
            opts.stat |= want.stat && rule.kind == Kind::Any;
        }
        opts
    }
}

/// The sources one rule's predicates read.
#[derive(Default)]
struct Want {
    stat: bool,
    fdinfo: bool,
    sockets: bool,
    mounts: bool,
}

impl Want {
    fn add(&mut self, predicate: &Predicate) {
        match predicate {
            Predicate::Dev { .. } | Predicate::Deleted | Predicate::Size(..) => self.stat = true,
            Predicate::Fs(_) => {
                self.fdinfo = true;
                self.mounts = true;
            }
            Predicate::Flags(_) | Predicate::Access(_) => self.fdinfo = true,
            Predicate::Family(_)
            | Predicate::SockType(_)
            | Predicate::State(_)
            | Predicate::Protocol(_)
            | Predicate::Queued => self.sockets = true,
            // `packet` is `O_DIRECT` on an end of the pipe; the others are fdinfo fields.
            Predicate::Packet | Predicate::Clock(_) | Predicate::Thread | Predicate::Marks(_) | Predicate::Locked => {
                self.fdinfo = true
            }
            // What the link and `stat` say, which every path fd has.
            Predicate::Path(_) | Predicate::Fd(_) | Predicate::Name(_) | Predicate::Unlinked => {}
            Predicate::Not(inner) => self.add(inner),
        }
    }
}
