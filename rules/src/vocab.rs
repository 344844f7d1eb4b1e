//! The words of the language, each listed once: its keywords (those that open a predicate or an action,
//! `not`, `because`) and the words that name kernel things (fd kinds, socket families, types and states,
//! open flags, size units). One table each, shared by the parser (spelling, did-you-mean), the validator
//! (what applies to what, help texts) and the engine (what the scanner reports), so a word means the same
//! thing everywhere. The grammar spells the keywords too; a test keeps it in step with the tables here.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Defines a `Copy` enum whose variants are spelled in the language by the given words, with `ALL`,
/// `name()`, `from_name()`, `words()` and `Display` through that name.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word the language uses for this value.
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            /// The value a word names, if any (exact spelling).
            pub fn from_name(word: &str) -> Option<Self> {
                match word { $($word => Some($name::$variant),)+ _ => None }
            }

            /// Every word, for did-you-mean suggestions and help texts.
            pub fn words() -> impl Iterator<Item = &'static str> {
                Self::ALL.iter().map(|v| v.name())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// Serde for word enums whose values are facts (the engine's JSON output and facts files): through the word.
/// An unknown word is named with what it should have been (`unknown kind `xyz``).
macro_rules! serde_by_name {
    ($($name:ident $what:literal),+ $(,)?) => {$(
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::from_name(&word)
                    .ok_or_else(|| serde::de::Error::custom(format!("unknown {} `{}`", $what, word)))
            }
        }
    )+};
}

words! {
    /// The keywords that open a predicate. A device number (`1:3`) is the one predicate without one.
    PredicateWord {
        Path = "path",
        Fs = "fs",
        Deleted = "deleted",
        Flags = "flags",
        Access = "access",
        Size = "size",
        Fd = "fd",
        Family = "family",
        Type = "type",
        State = "state",
        Name = "name",
        Protocol = "protocol",
        Queued = "queued",
        Unlinked = "unlinked",
        Packet = "packet",
        Clock = "clock",
        Thread = "thread",
        Marks = "marks",
        Locked = "locked",
        Peer = "peer",
        Shared = "shared",
    }
}

/// `not P`: the predicate `P` does not hold.
pub const NOT: &str = "not";

words! {
    /// The keywords that open an action.
    ActionWord {
        Reopen = "reopen",
        Contents = "contents",
        Recreate = "recreate",
        Inherit = "inherit",
        Close = "close",
        Reject = "reject",
        Plugin = "plugin",
    }
}

impl ActionWord {
    /// What follows the keyword in each form the action is written in, for help texts (none: the keyword
    /// alone; `contents limit SIZE` is left to its own help).
    pub const fn arguments(self) -> &'static [&'static str] {
        match self {
            ActionWord::Reopen => &["path", "path exact", "\"PATH\""],
            ActionWord::Inherit | ActionWord::Plugin => &["\"NAME\""],
            ActionWord::Reject => &["\"REASON\""],
            ActionWord::Contents | ActionWord::Recreate | ActionWord::Close => &[],
        }
    }
}

/// `because "NOTE"`, after the action: why the rule is what it is.
pub const BECAUSE: &str = "because";

/// `reopen path exact`: the very same file (device and inode, a regular file's size), not only its path.
pub const EXACT: &str = "exact";

words! {
    /// What an open fd refers to, as the language names it.
    Kind {
        File = "file",
        Dir = "dir",
        Chardev = "chardev",
        Blockdev = "blockdev",
        Fifo = "fifo",
        Pipe = "pipe",
        Socket = "socket",
        Eventfd = "eventfd",
        Epoll = "epoll",
        Signalfd = "signalfd",
        Timerfd = "timerfd",
        Inotify = "inotify",
        Fanotify = "fanotify",
        Memfd = "memfd",
        /// A POSIX message queue (`mq_open`).
        Mqueue = "mqueue",
        Pidfd = "pidfd",
        IoUring = "io_uring",
        PerfEvent = "perf_event",
        Userfaultfd = "userfaultfd",
        Bpf = "bpf",
        Nsfs = "nsfs",
        /// Any other anonymous inode, told apart by its name (`[kvm-vm]`, `[dmabuf]`...).
        Anon = "anon",
        /// Matches every fd; only in selectors, never a fact.
        Any = "any",
    }
}

impl Kind {
    /// True when a selector of kind `self` can match an fd of kind `fact`.
    pub fn covers(self, fact: Kind) -> bool {
        self == Kind::Any || self == fact
    }
}

words! {
    /// Socket address family (`AF_*`).
    SockFamily {
        Unix = "unix",
        Inet = "inet",
        Inet6 = "inet6",
        Netlink = "netlink",
        Packet = "packet",
        Vsock = "vsock",
        Tipc = "tipc",
        Bluetooth = "bluetooth",
        Can = "can",
        Alg = "alg",
        Xdp = "xdp",
        Mctp = "mctp",
        Other = "other",
    }
}

words! {
    /// Socket type (`SOCK_*`).
    SockType {
        Stream = "stream",
        Dgram = "dgram",
        Raw = "raw",
        Rdm = "rdm",
        Seqpacket = "seqpacket",
        Packet = "packet",
    }
}

impl SockType {
    /// The `SOCK_*` number of this type.
    pub const fn number(self) -> u16 {
        match self {
            SockType::Stream => 1,
            SockType::Dgram => 2,
            SockType::Raw => 3,
            SockType::Rdm => 4,
            SockType::Seqpacket => 5,
            SockType::Packet => 10,
        }
    }

    /// The type for a `SOCK_*` number.
    pub fn from_number(n: u16) -> Option<SockType> {
        SockType::ALL.iter().copied().find(|t| t.number() == n)
    }
}

words! {
    /// Socket state, in the kernel's TCP state names (unix sockets use the same numbers), plus
    /// `unconnected` for sockets with no state machine of their own.
    SockState {
        Established = "established",
        SynSent = "syn_sent",
        SynRecv = "syn_recv",
        FinWait1 = "fin_wait1",
        FinWait2 = "fin_wait2",
        TimeWait = "time_wait",
        Close = "close",
        CloseWait = "close_wait",
        LastAck = "last_ack",
        Listen = "listen",
        Closing = "closing",
        NewSynRecv = "new_syn_recv",
        Unconnected = "unconnected",
    }
}

impl SockState {
    /// The state for a kernel `TCP_*` state number (as sock_diag reports it).
    pub fn from_tcp(n: u8) -> Option<SockState> {
        use SockState::*;
        Some(match n {
            1 => Established,
            2 => SynSent,
            3 => SynRecv,
            4 => FinWait1,
            5 => FinWait2,
            6 => TimeWait,
            7 => Close,
            8 => CloseWait,
            9 => LastAck,
            10 => Listen,
            11 => Closing,
            12 => NewSynRecv,
            _ => return None,
        })
    }
}

words! {
    /// A socket's protocol, from the kernel's name for it (`getxattr(system.sockprotoname)`: `TCP`,
    /// `UDPv6`, `MPTCP`...), the same for IPv4 and IPv6.
    SockProto {
        Tcp = "tcp",
        Udp = "udp",
        Udplite = "udplite",
        Raw = "raw",
        /// Ping sockets (`SOCK_DGRAM`, `IPPROTO_ICMP`).
        Icmp = "icmp",
        Mptcp = "mptcp",
        Sctp = "sctp",
        Dccp = "dccp",
        L2tp = "l2tp",
        Unix = "unix",
        Netlink = "netlink",
        Packet = "packet",
        Vsock = "vsock",
        Other = "other",
    }
}

impl SockProto {
    /// The protocol the kernel's protocol name names (`TCPv6` -> `tcp`, `UDP-Lite` -> `udplite`, `PING` ->
    /// `icmp`, `UNIX-STREAM` -> `unix`).
    pub fn from_kernel_name(name: &str) -> SockProto {
        let upper = name.trim_end_matches('\0').to_ascii_uppercase();
        let base = upper.strip_suffix("V6").unwrap_or(&upper);
        match base {
            "TCP" => SockProto::Tcp,
            "UDP" => SockProto::Udp,
            "UDP-LITE" | "UDPLITE" => SockProto::Udplite,
            "RAW" => SockProto::Raw,
            "PING" => SockProto::Icmp,
            "MPTCP" => SockProto::Mptcp,
            "SCTP" => SockProto::Sctp,
            "DCCP" => SockProto::Dccp,
            "L2TP/IP" => SockProto::L2tp,
            "NETLINK" => SockProto::Netlink,
            "PACKET" => SockProto::Packet,
            "AF_VSOCK" | "VSOCK" => SockProto::Vsock,
            b if b.starts_with("UNIX") => SockProto::Unix,
            _ => SockProto::Other,
        }
    }
}

words! {
    /// A timer's clock (`clockid_t`), as timerfd's fdinfo gives it.
    Clock {
        Realtime = "realtime",
        Monotonic = "monotonic",
        Boottime = "boottime",
        /// Wakes the system from suspend (needs `CAP_WAKE_ALARM`).
        RealtimeAlarm = "realtime_alarm",
        BoottimeAlarm = "boottime_alarm",
        Other = "other",
    }
}

impl Clock {
    /// The clock of a `clockid_t` number.
    pub const fn from_id(id: i32) -> Clock {
        match id {
            0 => Clock::Realtime,
            1 => Clock::Monotonic,
            7 => Clock::Boottime,
            8 => Clock::RealtimeAlarm,
            9 => Clock::BoottimeAlarm,
            _ => Clock::Other,
        }
    }
}

words! {
    /// What a fanotify mark watches.
    MarkTarget {
        Inode = "inode",
        Mount = "mount",
        Filesystem = "filesystem",
        /// A mount namespace (`FAN_MARK_MNTNS`).
        Mntns = "mntns",
    }
}

words! {
    /// How an fd was opened for access (`O_ACCMODE`), plus `path` for `O_PATH`.
    Access {
        Ro = "ro",
        Wo = "wo",
        Rw = "rw",
    }
}

impl Access {
    /// The access mode in open flags (`O_PATH` fds count as `ro`).
    pub const fn from_flags(flags: u32) -> Access {
        match flags & 0o3 {
            0o1 => Access::Wo,
            0o2 | 0o3 => Access::Rw,
            _ => Access::Ro,
        }
    }
}

words! {
    /// Where the other end of an fd is, seen from the processes checked together (a process, a tree, a
    /// cgroup, a container): a pipe's or FIFO's other end, a unix socket's peer, a TCP connection's over a
    /// local address, a terminal's other side.
    PeerPlace {
        /// Held by a process checked with it (the same process included).
        Inside = "inside",
        /// Held by a process outside what is checked, or by no process crrules can see.
        Outside = "outside",
        /// Held by no process: a pipe whose other end is closed, a listening or unconnected socket.
        None = "none",
    }
}

serde_by_name!(
    Kind "kind",
    SockFamily "socket family",
    SockType "socket type",
    SockState "socket state",
    SockProto "socket protocol",
    Access "access mode",
    PeerPlace "peer place",
);

/// Open flags the language can name, with their x86-64/aarch64 generic values (as `fdinfo` prints them,
/// in octal). `O_RDONLY` is zero and cannot be tested as a flag: use `access ro`.
pub const OPEN_FLAGS: &[(&str, u32)] = &[
    ("O_WRONLY", 0o1),
    ("O_RDWR", 0o2),
    ("O_CREAT", 0o100),
    ("O_EXCL", 0o200),
    ("O_NOCTTY", 0o400),
    ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000),
    ("O_NONBLOCK", 0o4000),
    ("O_DSYNC", 0o10000),
    ("O_ASYNC", 0o20000),
    ("O_DIRECT", 0o40000),
    ("O_LARGEFILE", 0o100000),
    ("O_DIRECTORY", 0o200000),
    ("O_NOFOLLOW", 0o400000),
    ("O_NOATIME", 0o1000000),
    ("O_CLOEXEC", 0o2000000),
    ("O_SYNC", 0o4010000),
    ("O_PATH", 0o10000000),
    ("O_TMPFILE", 0o20200000),
];

/// The value of an open flag by name (`O_APPEND` -> 0o2000).
pub fn open_flag(name: &str) -> Option<u32> {
    OPEN_FLAGS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The names of the flags set in `flags`, in table order. Multi-bit flags (`O_SYNC`, `O_TMPFILE`) are named
/// only when all their bits are set, and their bits are then not named again by their parts.
pub fn open_flag_names(flags: u32) -> Vec<&'static str> {
    let mut names = Vec::new();
    if flags & 0o3 == 0 && flags & 0o10000000 == 0 {
        names.push("O_RDONLY");
    }
    let shown = OPEN_FLAGS
        .iter()
        .filter(|(_, bits)| bits.count_ones() > 1 && flags & bits == *bits)
        .fold(0, |acc, (_, bits)| acc | bits);
    for &(name, bits) in OPEN_FLAGS {
        let multi = bits.count_ones() > 1;
        if (multi && shown & bits == bits) || (!multi && flags & bits == bits && shown & bits == 0) {
            names.push(name);
        }
    }
    names
}

/// Size units the language accepts, with their factors.
pub const SIZE_UNITS: &[(&str, u64)] =
    &[("B", 1), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)];

/// The largest major device number the kernel allows (exclusive).
pub const MAJOR_LIMIT: u32 = 1 << 12;
/// The largest minor device number the kernel allows (exclusive).
pub const MINOR_LIMIT: u32 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_round_trip_through_the_table() {
        assert_eq!(open_flag_names(0o102002), vec!["O_RDWR", "O_APPEND", "O_LARGEFILE"]);
        assert_eq!(open_flag_names(0o4010001), vec!["O_WRONLY", "O_SYNC"]);
        assert_eq!(open_flag_names(0o2000000), vec!["O_RDONLY", "O_CLOEXEC"]);
        assert_eq!(open_flag("O_APPEND"), Some(0o2000));
    }

    #[test]
    fn an_unknown_word_in_facts_is_named_with_what_it_should_be() {
        let e = serde_json::from_str::<Kind>("\"xyz\"").unwrap_err().to_string();
        assert!(e.starts_with("unknown kind `xyz`"), "{e}");
        let e = serde_json::from_str::<SockFamily>("\"unx\"").unwrap_err().to_string();
        assert!(e.starts_with("unknown socket family `unx`"), "{e}");
    }

    #[test]
    fn words_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(*k));
        }
        assert_eq!(Access::from_flags(0o2002), Access::Rw);
    }
}
