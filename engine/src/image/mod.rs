//! The fd-table image: what `crrules dump` writes and `crrules restore` reads, as data. A directory holding
//! `manifest.json` (this module's [`Manifest`], documented field by field in the README), one data file per
//! saved content (`data/FD-WHAT`), and `SHA256SUMS` over every other file, in the format `sha256sum -c`
//! reads. An image is written under a temporary name beside its final one and renamed into place only when
//! complete and synced, so a crash or a full disk never leaves something that looks like a whole image; it
//! is read only after its ownership and every checksum have been verified.

use crate::facts::{ByteString, DevNum, FdFacts, FileType};
use crate::plan::Decision;
use serde::{Deserialize, Serialize};

mod store;
pub use store::*;

/// `format` in every manifest.
pub const FORMAT: &str = "crrules-fd-image";
/// The manifest layout this build writes: 2 added `dup` and `unix_connect`, which a reader of version 1 would
/// not know. A reader takes every version from 1 to this one (each only added), and refuses any other.
pub const VERSION: u32 = 2;
/// The manifest's file name in the image directory.
pub const MANIFEST: &str = "manifest.json";
/// The checksum file's name in the image directory.
pub const SUMS: &str = "SHA256SUMS";
/// The directory of data files inside the image.
pub const DATA_DIR: &str = "data";

/// The whole manifest of one dumped process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] for this build.
    pub version: u32,
    /// The crrules version that wrote the image.
    pub crrules: String,
    /// The dumped process.
    pub process: ProcessRecord,
    /// Every open fd, in fd order: facts, decision and what restore needs.
    pub fds: Vec<ImageFd>,
}

/// Who the dumped process was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: i32,
    pub comm: ByteString,
    /// Its credentials at the dump: a restore opens nothing these could not open.
    pub creds: Creds,
    /// When the process was stopped for the dump (`--freeze`), how and for how long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<Frozen>,
}

/// A process's credentials, from `/proc/PID/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creds {
    /// Real, effective, saved and filesystem user ids.
    pub uid: [u32; 4],
    /// Real, effective, saved and filesystem group ids.
    pub gid: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Creds {
    /// The filesystem user id: the one the kernel checks opens against.
    pub fn fsuid(&self) -> u32 {
        self.uid[3]
    }

    /// The filesystem group id.
    pub fn fsgid(&self) -> u32 {
        self.gid[3]
    }
}

/// How the process was stopped for a consistent cut.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frozen {
    /// `cgroup` (the cgroup v2 freezer) or `sigstop`.
    pub how: String,
    /// How long it was stopped, in microseconds.
    pub micros: u64,
}

/// One fd of the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFd {
    /// The fd number it is restored at.
    pub fd: i32,
    /// What the scan saw.
    pub facts: FdFacts,
    /// What the policy decided, and which rule.
    pub decision: Decision,
    /// What restore does, with the state the dump saved.
    pub restore: Restore,
}

/// What restore does with one fd, and the state it needs. Serialised with a `how` tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Restore {
    /// `reopen path [exact]` / `reopen "SUBST"`: open `path` with `flags`, seek to `pos`, and verify on the
    /// opened fd that it is what `expect` says.
    Open { path: ByteString, flags: u32, pos: u64, expect: Identity },
    /// `contents`: a memfd (`memfd` true, with its name and seals) or an unlinked regular file recreated from
    /// a data file, with its flags and offset. Fds with the same `file` (the dumped file's inode) held one
    /// file and come back as fds of one file; files with the same bytes share a data file.
    Contents {
        data: String,
        #[serde(default)]
        file: u64,
        size: u64,
        flags: u32,
        pos: u64,
        mode: u32,
        #[serde(default)]
        memfd: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<ByteString>,
        #[serde(default)]
        seals: u32,
    },
    /// `inherit "NAME"`: the fd handed to restore as `--inherit NAME=FD`, which must be of kind `kind`.
    Inherit { name: String, kind: String },
    /// `close`: left closed, and listed in the restore report.
    Close,
    /// Another number of the open file (open file description) held at fd `of`, an earlier fd of the image
    /// that is restored: after `dup`, `dup2`, `2>&1` or a fork, both numbers share one offset and one set of
    /// status flags (`O_APPEND`, `O_NONBLOCK`), and an eventfd, epoll or pipe end is one object. Restore
    /// duplicates whatever `of` became (opened, made, or handed in), at this fd's number and with this fd's
    /// own close-on-exec flag (a property of the number, not of the open file). Nothing is saved for it:
    /// the open file's state is `of`'s. Written by the dump for an fd whose decision is the one `of` got
    /// (see [`crate::dump::dup_sources`]).
    Dup { of: i32 },
    /// `plugin "NAME"`.
    Plugin { name: String },
    /// One end of a pipe; both ends of one pipe share `id` (its inode). The buffered bytes (saved once, with
    /// the read end that exists, or the write end when no read end is held) refill it.
    Pipe {
        id: u64,
        write: bool,
        flags: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capacity: Option<u64>,
    },
    /// A FIFO reopened by path, its buffered bytes refilled; with `reopen path exact`, `expect` holds the
    /// very FIFO dumped (device and inode).
    Fifo {
        path: ByteString,
        flags: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
        #[serde(default, skip_serializing_if = "Identity::is_any")]
        expect: Identity,
    },
    /// One end of a unix socket pair inside the process; both ends share `pair` (the lower inode). The
    /// messages queued for reading on this end are in `data` (one record per message). With `peer_closed`
    /// the peer was closed by every process (`pair` is then this end's own inode): restore sends the saved
    /// messages from the other end of a new pair and closes that end, so the socket reads them, then the end
    /// of a stream, and a write fails as it did (`EPIPE`; `ECONNREFUSED` for a datagram socket).
    UnixPair {
        pair: u64,
        ino: u64,
        sock_type: String,
        flags: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        peer_closed: bool,
    },
    /// A unix datagram socket connected to a peer outside the process, by the peer's name (`peer`: a path,
    /// or `@NAME` for an abstract one): connected again to whatever is bound there at restore (a syslog
    /// client to `/dev/log`, say). It had nothing queued and no name of its own.
    /// `owner`: the uid owning the peer's socket file at dump; the file connected to at restore must be
    /// root's, the image user's, or this uid's.
    UnixConnect {
        peer: ByteString,
        flags: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<u32>,
    },
    /// A listening or bound TCP/UDP socket, bound again (`addr` as `IP:PORT`, `[IP6]:PORT`).
    Inet { family: String, sock_type: String, addr: String, listen: bool, backlog: u32, flags: u32 },
    /// An eventfd: its count and semaphore mode.
    Eventfd { count: u64, semaphore: bool, flags: u32 },
    /// A timerfd: clock, flags, remaining time and interval (seconds, nanoseconds).
    Timerfd { clockid: i32, flags: u32, value: (i64, i64), interval: (i64, i64) },
    /// A signalfd and its mask (signal numbers).
    Signalfd { signals: Vec<u32>, flags: u32 },
    /// An epoll instance; its targets are re-added once every fd exists.
    Epoll { targets: Vec<EpollWatch>, flags: u32 },
    /// An inotify instance; its watches are re-added by path.
    Inotify { watches: Vec<InotifyPath>, flags: u32 },
    /// A TCP, UDP, UDP-Lite, ping or raw socket that neither listens nor holds a TCP connection, made
    /// again: `socket(family, type, protocol)` (`family` `inet` or `inet6`, `sock_type` `stream`, `dgram` or
    /// `raw`, `protocol` the `IPPROTO_*` number), bound to `bound` (`IP:PORT`, `[IP6]:PORT`; for a raw
    /// socket the port is its protocol) when it was bound, and connected to `peer` when it was connected
    /// (only datagram and raw sockets: connecting them sends nothing). Socket options are not kept.
    Socket {
        family: String,
        sock_type: String,
        protocol: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        flags: u32,
    },
    /// A netlink socket: `socket(AF_NETLINK, type, protocol)` (`protocol` the netlink family: 0 for
    /// `NETLINK_ROUTE`...), bound when it was (`bound`: the kernel chooses the port id again, so it may
    /// differ), with its multicast `groups` (numbered from 1) joined again, and connected to the port id
    /// `peer` when it was.
    Netlink {
        sock_type: String,
        protocol: i32,
        bound: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        groups: Vec<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<u32>,
        flags: u32,
    },
    /// A packet socket: `socket(AF_PACKET, type, htons(protocol))` (`protocol` the ethertype), bound to the
    /// interface `ifindex` when it was bound to one.
    Packet {
        sock_type: String,
        protocol: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ifindex: Option<u32>,
        flags: u32,
    },
    /// A FIFO that had no name left: a new FIFO, made in a private directory beside where it was (`path`,
    /// else in `$TMPDIR`) and unlinked at once, refilled with its buffered bytes. The fds of one FIFO (its
    /// device and inode, `dev` and `ino`) share the new one.
    DeletedFifo {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dev: Option<DevNum>,
        ino: u64,
        path: ByteString,
        flags: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
    },
    /// A directory that had no name left: an empty directory made beside where it was (`path`, else in
    /// `$TMPDIR`) and removed at once. The fds of one directory share the new one.
    DeletedDir {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dev: Option<DevNum>,
        ino: u64,
        path: ByteString,
        flags: u32,
    },
    /// A pidfd on the dumped process itself: a pidfd on the restored process (the command keeps the pid of
    /// the restore that execs it).
    Pidfd { flags: u32 },
    /// A fanotify group: `fanotify_init(init_flags, event_flags)`, its marks added again by path.
    Fanotify { init_flags: u32, event_flags: u32, marks: Vec<FanotifyPath>, flags: u32 },
}

/// What an opened path must be.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The file type; `None` accepts any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<FileType>,
    /// A device's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<DevNum>,
    /// Set when the rule asks for the very same file (`reopen path exact`): its filesystem's device
    /// (`st_dev`) and its inode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<(DevNum, u64)>,
    /// Set when the rule asks for the very same file and it is a regular file: its size at the dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl Identity {
    /// True when any file passes: nothing is asked.
    pub fn is_any(&self) -> bool {
        *self == Identity::default()
    }
}

/// One epoll target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollWatch {
    pub fd: i32,
    pub events: u32,
    pub data: u64,
}

/// One fanotify mark: on the inode `path` names (`target` `inode`), on the mount at `path` (`mount`), or on
/// the filesystem holding `path` (`filesystem`), with its masks and `fanotify_mark` flags
/// (`FAN_MARK_IGNORED_SURV_MODIFY`, `FAN_MARK_EVICTABLE`, `FAN_MARK_IGNORE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanotifyPath {
    pub target: String,
    pub path: ByteString,
    pub mask: u64,
    pub ignored_mask: u64,
    pub mflags: u32,
}

/// One inotify watch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InotifyPath {
    pub wd: i32,
    pub path: ByteString,
    pub mask: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `reopen path exact`'s fields are optional: a version-1 manifest written before them still reads, and
    /// one written with them reads back the same.
    #[test]
    fn the_exact_fields_are_optional_and_round_trip() {
        let exact = Identity {
            file_type: Some(FileType::Regular),
            dev: None,
            inode: Some((DevNum { major: 8, minor: 1 }, 12)),
            size: Some(100),
        };
        let cases = [
            (
                json!({"how": "open", "path": "/x", "flags": 0, "pos": 0, "expect": {"file_type": "regular"}}),
                Restore::Open {
                    path: ByteString::from(&b"/x"[..]),
                    flags: 0,
                    pos: 0,
                    expect: Identity { file_type: Some(FileType::Regular), ..Identity::default() },
                },
            ),
            (
                json!({"how": "open", "path": "/x", "flags": 0, "pos": 0,
                       "expect": {"file_type": "regular", "inode": ["8:1", 12], "size": 100}}),
                Restore::Open { path: ByteString::from(&b"/x"[..]), flags: 0, pos: 0, expect: exact.clone() },
            ),
            (
                json!({"how": "fifo", "path": "/f", "flags": 0}),
                Restore::Fifo { path: ByteString::from(&b"/f"[..]), flags: 0, data: None, expect: Identity::default() },
            ),
            (
                json!({"how": "fifo", "path": "/f", "flags": 0, "expect": {"inode": ["8:1", 12]}}),
                Restore::Fifo {
                    path: ByteString::from(&b"/f"[..]),
                    flags: 0,
                    data: None,
                    expect: Identity { inode: Some((DevNum { major: 8, minor: 1 }, 12)), ..Identity::default() },
                },
            ),
        ];
        for (written, restore) in cases {
            assert_eq!(serde_json::from_value::<Restore>(written.clone()).unwrap(), restore, "{written}");
            assert_eq!(serde_json::to_value(&restore).unwrap(), written);
        }
    }
}
