//! What the scanner learns about one open fd, as plain data. Serialisable both ways: `check --format json`
//! prints these fields, and `check --facts FILE` reads them back to decide offline, so a field's JSON shape
//! is part of the interface (documented in the README).

use crrules_rules::vocab::{Kind, SockFamily, SockState, SockType, open_flag, open_flag_names};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A device number, `major:minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl DevNum {
    /// Splits a Linux `dev_t` (glibc's encoding, which the kernel's `new_encode_dev` matches).
    pub fn from_dev_t(dev: u64) -> DevNum {
        let major = (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32;
        let minor = (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32;
        DevNum { major, minor }
    }

    /// The `dev_t` encoding of this number.
    pub fn to_dev_t(self) -> u64 {
        let (ma, mi) = (u64::from(self.major), u64::from(self.minor));
        ((ma & 0xffff_f000) << 32) | ((ma & 0x0000_0fff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0x0000_00ff)
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl std::str::FromStr for DevNum {
    type Err = String;
    fn from_str(s: &str) -> Result<DevNum, String> {
        let (ma, mi) = s.split_once(':').ok_or_else(|| format!("`{s}` is not MAJOR:MINOR"))?;
        let num = |x: &str| x.parse::<u32>().map_err(|_| format!("`{s}` is not MAJOR:MINOR"));
        Ok(DevNum { major: num(ma)?, minor: num(mi)? })
    }
}

impl Serialize for DevNum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DevNum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DevNum, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Open flags (`f_flags` as fdinfo prints them, `O_CLOEXEC` included), serialised as `O_` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct OpenFlags(pub u32);

impl OpenFlags {
    /// True when every bit of `bits` is set.
    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
}

impl Serialize for OpenFlags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(open_flag_names(self.0))
    }
}

impl<'de> Deserialize<'de> for OpenFlags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OpenFlags, D::Error> {
        let names = Vec::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut bits = 0;
        for name in names {
            if name == "O_RDONLY" {
                continue;
            }
            bits |= open_flag(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown open flag `{name}`")))?;
        }
        Ok(OpenFlags(bits))
    }
}

/// The file type from `st_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    Regular,
    Directory,
    Char,
    Block,
    Fifo,
    Socket,
    Symlink,
    /// No type bits: anonymous inodes and pidfs.
    None,
}

impl FileType {
    /// The type of an `st_mode`.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & 0o170000 {
            0o100000 => FileType::Regular,
            0o040000 => FileType::Directory,
            0o020000 => FileType::Char,
            0o060000 => FileType::Block,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            0o120000 => FileType::Symlink,
            _ => FileType::None,
        }
    }
}

/// A socket's facts, from sock_diag (never from the socket itself).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SocketFacts {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub family: Option<SockFamily>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub sock_type: Option<SockType>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub state: Option<SockState>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub local: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer: Option<String>,
    /// For unix sockets: the inode of the peer socket.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer_ino: Option<u64>,
    /// Bytes queued for reading and writing, where sock_diag reports them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rqueue: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wqueue: Option<u32>,
}

/// eventfd state from fdinfo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventfdFacts {
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub semaphore: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<u64>,
}

/// timerfd state from fdinfo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerfdFacts {
    pub clockid: i32,
    pub ticks: u64,
    pub settime_flags: u32,
    /// `it_value` as (seconds, nanoseconds).
    pub it_value: (i64, i64),
    pub it_interval: (i64, i64),
}

/// One epoll target from fdinfo's `tfd:` lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollTarget {
    pub tfd: i32,
    pub events: u32,
    pub data: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ino: Option<u64>,
}

/// One inotify watch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InotifyWatch {
    pub wd: i32,
    pub ino: u64,
    pub sdev: u64,
    pub mask: u32,
}

/// One fanotify mark, as fdinfo prints it (kept as the raw line's fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanotifyMark {
    /// `inode`, `mount`, `filesystem` or `mntns`.
    pub target: String,
    pub mask: u64,
    pub ignored_mask: u64,
}

/// fanotify group state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanotifyFacts {
    pub flags: u32,
    pub event_flags: u32,
    pub marks: Vec<FanotifyMark>,
}

/// A file lock held through this fd's open file, from fdinfo's `lock:` lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// `POSIX`, `FLOCK`, `OFDLCK`, `LEASE`...
    pub class: String,
    /// `ADVISORY` / `MANDATORY` / ...
    pub mode: String,
    /// `READ` / `WRITE` / `UNLCK`...
    pub access: String,
    pub pid: i32,
    pub start: u64,
    /// `None` for `EOF`.
    pub end: Option<u64>,
}

/// Everything gathered about one open fd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdFacts {
    pub fd: i32,
    pub kind: Kind,
    /// The `/proc/PID/fd/N` link text, as the kernel gives it.
    pub link: String,
    /// The path, for fds that have one (files, dirs, devices, FIFOs, memfds `/memfd:NAME`), without
    /// the ` (deleted)` suffix.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    /// An anonymous inode's name (`[eventfd]`, `[kvm-vm]`, `inotify`, `bpf-map`), or a namespace file's
    /// type (`net`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// `major:minor` of a device file.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dev: Option<DevNum>,
    /// The file was unlinked (`st_nlink == 0`).
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub file_type: Option<FileType>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ino: Option<u64>,
    /// The device of the filesystem holding the inode (`st_dev`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub st_dev: Option<DevNum>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mode: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mnt_id: Option<u64>,
    /// Filesystem type of the fd's mount (`ext4`, `tmpfs`, `fuse.sshfs`), from mountinfo.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pos: Option<u64>,
    pub flags: OpenFlags,
    pub cloexec: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub socket: Option<SocketFacts>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eventfd: Option<EventfdFacts>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timerfd: Option<TimerfdFacts>,
    /// signalfd's mask, as signal numbers.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sigmask: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub epoll: Option<Vec<EpollTarget>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inotify: Option<Vec<InotifyWatch>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fanotify: Option<FanotifyFacts>,
    /// pidfd's target pid (-1 once it exited).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pidfd_pid: Option<i32>,
    /// pty master's index (`tty-index:`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tty_index: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub locks: Vec<Lock>,
}

impl FdFacts {
    /// Facts with only the number, kind and link text known; the scanner and tests fill the rest.
    pub fn new(fd: i32, kind: Kind, link: impl Into<String>) -> FdFacts {
        FdFacts {
            fd,
            kind,
            link: link.into(),
            path: None,
            name: None,
            dev: None,
            deleted: false,
            file_type: None,
            size: None,
            ino: None,
            st_dev: None,
            mode: None,
            uid: None,
            gid: None,
            mnt_id: None,
            fs: None,
            pos: None,
            flags: OpenFlags::default(),
            cloexec: false,
            socket: None,
            eventfd: None,
            timerfd: None,
            sigmask: None,
            epoll: None,
            inotify: None,
            fanotify: None,
            pidfd_pid: None,
            tty_index: None,
            locks: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_t_round_trips() {
        for (ma, mi) in [(1, 3), (136, 5), (4095, 1 << 19), (259, 70000)] {
            let d = DevNum { major: ma, minor: mi };
            assert_eq!(DevNum::from_dev_t(d.to_dev_t()), d);
        }
        assert_eq!(DevNum::from_dev_t(0x0103), DevNum { major: 1, minor: 3 });
    }

    #[test]
    fn facts_round_trip_through_json() {
        let mut f = FdFacts::new(3, Kind::Chardev, "/dev/null");
        f.path = Some("/dev/null".into());
        f.dev = Some(DevNum { major: 1, minor: 3 });
        f.flags = OpenFlags(0o2000002);
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["dev"], "1:3");
        assert_eq!(json["flags"], serde_json::json!(["O_RDWR", "O_CLOEXEC"]));
        let back: FdFacts = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
    }
}
