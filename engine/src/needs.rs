//! Which facts to gather ([`ScanOptions`]) and which a policy needs ([`ScanOptions::for_policy`]), so the
//! scanner can skip the reads that no rule and no output needs: under a policy whose pipe rules test
//! nothing, a pipe costs a `readlink`; under one that tests the filesystem of files, a file costs its link
//! and a `statx`, and no fdinfo read. A leaf module: the scanner reads it, the pipeline and backends fill
//! it in.

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

    /// The kinds in both sets.
    pub const fn intersect(self, other: KindMask) -> KindMask {
        KindMask(self.0 & other.0)
    }

    /// The kinds in this set and not in `other`.
    pub const fn without(self, other: KindMask) -> KindMask {
        KindMask(self.0 & !other.0)
    }

    /// True when no kind is in the set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Which facts to gather. The default gathers everything; a caller that knows no rule and no output needs
/// a fact turns its source off and saves the syscalls. The scanner picks the cheapest source of each fact
/// asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanOptions {
    /// `stat` every fd: file type, size, inode, `st_dev`, mode, owner, device numbers. When off, only fds
    /// with a path are stat'ed (their kind needs it); pipes, sockets and anonymous inodes keep the inode
    /// their link names and nothing else from `stat`.
    pub stat: bool,
    /// The kinds whose `/proc/PID/fdinfo/N` is read: position, flags and close-on-exec, mount id, locks,
    /// and the per-kind fields (eventfd, timerfd, signalfd, epoll, inotify, fanotify, pidfd, pty index).
    /// fdinfo is the dearest per-fd read (an open, a read and a close), so a policy that tests flags only
    /// of files need not pay for the fdinfo of every pipe and socket.
    pub fdinfo: KindMask,
    /// The kinds whose open flags are needed, but neither close-on-exec nor anything else only fdinfo
    /// says: the access mode, `O_APPEND`, `O_NONBLOCK`... For a kind not in `fdinfo`, read with `F_GETFL` on
    /// a duplicate of the fd when [`ScanOptions::duplicates`] allows one (never for sockets), else from
    /// fdinfo. Facts read this way leave `cloexec` false and `O_CLOEXEC` out of `flags`.
    pub flags: KindMask,
    /// The kinds whose mount id is needed (for the filesystem type): for a kind not in `fdinfo`, it comes
    /// with the `stat` (`statx`), without reading fdinfo.
    pub mount_ids: KindMask,
    /// Socket facts from sock_diag (one dump per process's network namespace), with a fallback to the
    /// protocol name for sockets sock_diag does not list. Off leaves `socket` unset.
    pub sockets: bool,
    /// Filesystem types from the process's mountinfo (for the fds whose mount id is read).
    pub mounts: bool,
    /// The scanner may take a duplicate of a target's fd (`pidfd_getfd`, which needs ptrace attach rights)
    /// to read its flags without fdinfo: never of a socket (receiving one re-labels its cgroup data), and
    /// only where the flags and `stat` are all an fd needs. Holding a duplicate is not free of effects: if
    /// the process closes the fd meanwhile, the scanner's close releases the file, and every close runs
    /// the file's `flush` (a FUSE server hears it, NFS writes back). Off, flags come from fdinfo. A
    /// permission, not a need: the union of two options allows duplicates only if both do.
    pub duplicates: bool,
    /// Link the fds of the processes checked together: the other end of each pipe, FIFO, unix socket and
    /// terminal (`peer`), and each session's leader. Needs the access mode of pipes and FIFOs and sockets'
    /// peers; costs, when some other end is not among those fds, one read of every fd link on the host.
    pub link: bool,
    /// The fds of the processes checked together that share an open file (`shared_with`): `kcmp` sorts each
    /// group of fds on one inode, n log n comparisons (a thousand `/dev/null`s cost about ten thousand).
    pub shared: bool,
}

impl Default for ScanOptions {
    fn default() -> ScanOptions {
        ScanOptions::all()
    }
}

impl ScanOptions {
    /// Every fact.
    pub const fn all() -> ScanOptions {
        ScanOptions {
            stat: true,
            fdinfo: KindMask::ALL,
            flags: KindMask::ALL,
            mount_ids: KindMask::ALL,
            sockets: true,
            mounts: true,
            duplicates: true,
            link: true,
            shared: true,
        }
    }

    /// Only what the link text and, for paths, `stat` say: number, kind, link, path, name, inode, and for
    /// paths the `stat` fields.
    pub const fn minimal() -> ScanOptions {
        ScanOptions {
            stat: false,
            fdinfo: KindMask::NONE,
            flags: KindMask::NONE,
            mount_ids: KindMask::NONE,
            sockets: false,
            mounts: false,
            duplicates: true,
            link: false,
            shared: false,
        }
    }

    /// Everything either set of options reads; duplicates only if both allow them.
    pub const fn union(self, other: ScanOptions) -> ScanOptions {
        ScanOptions {
            stat: self.stat || other.stat,
            fdinfo: self.fdinfo.union(other.fdinfo),
            flags: self.flags.union(other.flags),
            mount_ids: self.mount_ids.union(other.mount_ids),
            sockets: self.sockets || other.sockets,
            mounts: self.mounts || other.mounts,
            duplicates: self.duplicates && other.duplicates,
            link: self.link || other.link,
            shared: self.shared || other.shared,
        }
    }

    /// The scan a policy needs to decide every fd: flags only for kinds whose rules test flags or access
    /// (fdinfo only when a rule tests `O_CLOEXEC`, which nothing else shows), mount ids only for kinds whose
    /// rules test the filesystem; sock_diag only when a socket rule tests family, type or state; `stat` of
    /// fds without a path only when an `any` rule tests what `stat` says (fds with a path are always
    /// stat'ed); the fds linked only when a rule tests `peer` or `shared`, even under `not`.
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
            if want.flags {
                opts.flags = opts.flags.union(kinds);
            }
            if want.mount_id {
                opts.mount_ids = opts.mount_ids.union(kinds);
            }
            opts.mounts |= want.mounts;
            opts.link |= want.link;
            opts.shared |= want.shared;
            opts.sockets |= want.sockets && kinds.contains(Kind::Socket);
            // Fds with a path are always stat'ed; the others only for an `any` rule.
            opts.stat |= want.stat && rule.kind == Kind::Any;
        }
        opts
    }
}

/// The facts one rule's predicates read.
#[derive(Default)]
struct Want {
    stat: bool,
    fdinfo: bool,
    flags: bool,
    mount_id: bool,
    sockets: bool,
    mounts: bool,
    /// `peer`: the other ends among the processes checked together, and beyond.
    link: bool,
    /// `shared`: the open files the fds of the processes checked together share.
    shared: bool,
}

/// `O_CLOEXEC`: only fdinfo shows it (it belongs to the fd table, not to the open file).
const O_CLOEXEC: u32 = 0o2000000;

impl Want {
    fn add(&mut self, predicate: &Predicate) {
        match predicate {
            Predicate::Dev { .. } | Predicate::Deleted | Predicate::Size(..) => self.stat = true,
            Predicate::Fs(_) => {
                self.mount_id = true;
                self.mounts = true;
            }
            Predicate::Flags(bits) if bits & O_CLOEXEC != 0 => self.fdinfo = true,
            Predicate::Flags(_) | Predicate::Access(_) => self.flags = true,
            Predicate::Family(_)
            | Predicate::SockType(_)
            | Predicate::State(_)
            | Predicate::Protocol(_)
            | Predicate::Queued => self.sockets = true,
            // `packet` is `O_DIRECT` on an end of the pipe, in its open flags.
            Predicate::Packet => self.flags = true,
            // fdinfo fields: the timer's clock, a pidfd's flags as the kernel shows them, marks, locks.
            Predicate::Clock(_) | Predicate::Thread | Predicate::Marks(_) | Predicate::Locked => self.fdinfo = true,
            // What the link and `stat` say, which every path fd has.
            Predicate::Path(_) | Predicate::Fd(_) | Predicate::Name(_) | Predicate::Unlinked => {}
            // Where the other end is, and who else holds the open file, among the processes checked together.
            Predicate::Peer(_) => self.link = true,
            Predicate::Shared => self.shared = true,
            Predicate::Not(inner) => self.add(inner),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crrules_rules::Source;

    fn options(text: &str) -> ScanOptions {
        let compiled = crrules_rules::compile(&[Source::new("t.rules", text)]);
        assert!(!compiled.has_errors(), "{text}: {:?}", compiled.diagnostics);
        ScanOptions::for_policy(&compiled.rules)
    }

    #[test]
    fn only_peer_and_shared_link_the_fds() {
        let (peers, shared) = ((true, false), (false, true));
        let cases = [
            ("pipe peer outside => close\nany => close\n", peers),
            ("socket not peer none => recreate\n", peers),
            ("chardev peer inside => close\n", peers),
            ("any shared => close\n", shared),
            ("file not not shared => close\n", shared),
            ("pipe peer inside shared => close\n", (true, true)),
            (
                "pipe packet => close\nfile locked unlinked => close\nsocket queued => close\nany => close\n",
                (false, false),
            ),
        ];
        for (text, (link, shared)) in cases {
            let opts = options(text);
            assert_eq!((opts.link, opts.shared), (link, shared), "{text}");
            if link || shared {
                // Linking is all these predicates ask for.
                assert_eq!(opts, ScanOptions { link, shared, ..ScanOptions::minimal() }, "{text}");
            }
        }
    }
}
