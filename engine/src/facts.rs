//! What the scanner learns about one open fd, as plain data. Serialisable both ways: `check --format json`
//! prints these fields, and `check --facts FILE` reads them back to decide offline, so a field's JSON shape
//! is part of the interface (documented in the README). Paths, link texts, names and socket addresses are
//! [`ByteString`]s: Linux gives them as bytes, which need not be UTF-8.

use crrules_rules::vocab::{Kind, PeerPlace, SockFamily, SockProto, SockState, SockType, open_flag, open_flag_names};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// Bytes the kernel gives as a name (a path, a link's text, an anonymous inode's name, a unix socket's
/// address, a command name): usually UTF-8 text, but any bytes but NUL (and, in a socket's abstract name,
/// even NUL) are allowed, and they are kept exactly.
///
/// Shown to people escaped ([`ByteString::escaped`], `Display`), the way `lsof` does: UTF-8 text as it is,
/// each byte that is not part of valid UTF-8 as `\xff`, control characters as `\n`, `\t`, `\r` or
/// `\x1b` (`\u{9b}` beyond ASCII, as for the bidirectional-text controls that would reorder a line), and
/// a backslash as `\\`, so that two different byte strings never look the same.
///
/// Serialised as a plain string when it is valid UTF-8, otherwise as `{"hex": "2f6465762fff"}` (every
/// byte, lowercase hex); both forms are read back.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ByteString(Vec<u8>);

impl ByteString {
    /// The bytes, kept as given.
    pub fn new(bytes: Vec<u8>) -> ByteString {
        ByteString(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The text, when the bytes are valid UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes as a person reads them (see the type's documentation); borrowed when nothing needs
    /// escaping.
    pub fn escaped(&self) -> Cow<'_, str> {
        match self.to_str() {
            Some(text) if !text.chars().any(needs_escape) => Cow::Borrowed(text),
            _ => {
                let mut out = String::with_capacity(self.0.len() + 8);
                // Writing to a `String` cannot fail.
                let _ = escape_into(&mut out, &self.0, false);
                Cow::Owned(out)
            }
        }
    }
}

/// Unicode's bidirectional-text controls (embeddings, overrides, isolates and marks): printed as they are,
/// they reorder what a terminal shows around them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}')
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || is_bidi_control(c)
}

/// Writes `bytes` escaped; with `quote`, a double quote is escaped too (for `Debug`'s quoted form).
fn escape_into(out: &mut impl fmt::Write, bytes: &[u8], quote: bool) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.write_str("\\\\")?,
                '\n' => out.write_str("\\n")?,
                '\t' => out.write_str("\\t")?,
                '\r' => out.write_str("\\r")?,
                '"' if quote => out.write_str("\\\"")?,
                c if c.is_ascii_control() => write!(out, "\\x{:02x}", c as u32)?,
                c if needs_escape(c) => write!(out, "\\u{{{:x}}}", c as u32)?,
                c => out.write_char(c)?,
            }
        }
        for b in chunk.invalid() {
            write!(out, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

impl fmt::Display for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.escaped())
    }
}

impl fmt::Debug for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        escape_into(f, &self.0, true)?;
        f.write_str("\"")
    }
}

impl From<Vec<u8>> for ByteString {
    fn from(bytes: Vec<u8>) -> ByteString {
        ByteString(bytes)
    }
}

impl From<&[u8]> for ByteString {
    fn from(bytes: &[u8]) -> ByteString {
        ByteString(bytes.to_vec())
    }
}

impl From<String> for ByteString {
    fn from(text: String) -> ByteString {
        ByteString(text.into_bytes())
    }
}

impl From<&str> for ByteString {
    fn from(text: &str) -> ByteString {
        ByteString(text.as_bytes().to_vec())
    }
}

impl AsRef<[u8]> for ByteString {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<str> for ByteString {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for ByteString {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<String> for ByteString {
    fn eq(&self, other: &String) -> bool {
        self.0 == other.as_bytes()
    }
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.to_str() {
            Some(text) => s.serialize_str(text),
            None => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let hex: String = self
                    .0
                    .iter()
                    .flat_map(|&b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
                    .map(char::from)
                    .collect();
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("hex", &hex)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteString, D::Error> {
        d.deserialize_any(ByteStringVisitor)
    }
}

struct ByteStringVisitor;

impl<'de> serde::de::Visitor<'de> for ByteStringVisitor {
    type Value = ByteString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a string, or {"hex": "..."} for bytes that are not UTF-8"#)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteString, E> {
        Ok(ByteString::from(v))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<ByteString, E> {
        Ok(ByteString::from(v))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteString, E> {
        Ok(ByteString::from(v))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteString, E> {
        Ok(ByteString(v))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ByteString, A::Error> {
        use serde::de::Error;
        let mut bytes = None;
        // The key as a string, not an identifier: RON writes a map's keys as strings.
        while let Some(key) = map.next_key::<String>()? {
            if key != "hex" {
                return Err(A::Error::unknown_field(&key, &["hex"]));
            }
            if bytes.is_some() {
                return Err(A::Error::duplicate_field("hex"));
            }
            let hex: String = map.next_value()?;
            bytes = Some(
                from_hex(&hex)
                    .ok_or_else(|| A::Error::custom(format!("`{hex}` is not an even number of hex digits")))?,
            );
        }
        bytes.map(ByteString).ok_or_else(|| A::Error::missing_field("hex"))
    }
}

/// `2f64` -> `[0x2f, 0x64]`; either case.
fn from_hex(hex: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let hex = hex.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.chunks_exact(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

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

    /// Splits the kernel's internal device number (`MKDEV`: the major above the low 20 bits, the minor in
    /// them), which fdinfo prints as `sdev:` (the same superblock's `st_dev` is the `dev_t` encoding).
    pub fn from_kernel_dev(dev: u64) -> DevNum {
        DevNum { major: (dev >> 20) as u32, minor: (dev & 0xf_ffff) as u32 }
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
    /// The protocol, from the kernel's name for it (an MPTCP socket is `mptcp`, whatever subflow
    /// sock_diag lists under it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<SockProto>,
    /// The protocol number sock_diag gives (`IPPROTO_*`, the netlink family, the packet ethertype).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol_number: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub state: Option<SockState>,
    /// The local address: `IP:PORT` (`[IP]:PORT` for IPv6), a netlink port id, or a unix socket's path or
    /// `@NAME` for an abstract name (any bytes, NUL included).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub local: Option<ByteString>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer: Option<ByteString>,
    /// The inode of the peer socket: for unix sockets, the one sock_diag names; for TCP connections over a
    /// local address (loopback, or the namespace's own), the socket of the same network namespace whose
    /// addresses are this one's swapped, found only when the fds are linked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer_ino: Option<u64>,
    /// For unix sockets: the directions shut down, as sock_diag gives the kernel's mask (1: receiving, 2:
    /// sending, 3: both); absent when neither is. When the peer of a stream or seqpacket socket closes, the
    /// kernel shuts the socket down both ways.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shutdown: Option<u8>,
    /// Bytes queued for reading and writing, where sock_diag reports them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rqueue: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wqueue: Option<u32>,
    /// For netlink sockets: the multicast groups joined (numbered from 1), from sock_diag.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub groups: Vec<u32>,
    /// For packet sockets: the index of the interface it is bound to, from sock_diag (none when it is bound
    /// to every interface).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ifindex: Option<u32>,
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

/// One inotify watch, from fdinfo's `inotify` lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InotifyWatch {
    pub wd: i32,
    pub ino: u64,
    /// The watched inode's filesystem, as the kernel's internal device number (`s_dev`): the major number
    /// is `sdev >> 20`, the minor `sdev & 0xfffff` (not the `st_dev` encoding `stat` gives).
    pub sdev: u64,
    /// The watch's mask as fdinfo shows it.
    pub mask: u32,
    /// The inode's file handle, when its filesystem gives one: what resolves the watch to a path.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fhandle: Option<FileHandle>,
}

impl InotifyWatch {
    /// The watched inode's filesystem device, `MAJOR:MINOR` as mountinfo shows it.
    pub fn dev(&self) -> DevNum {
        DevNum::from_kernel_dev(self.sdev)
    }
}

/// A file handle as `name_to_handle_at` gives it and fdinfo prints it: the filesystem's handle type and its
/// opaque bytes (lowercase hex in JSON: `{"type": 1, "bytes": "e803000000000000"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHandle {
    #[serde(rename = "type")]
    pub handle_type: i32,
    /// The handle's bytes, two lowercase hex digits each.
    pub bytes: String,
}

impl FileHandle {
    /// The handle's bytes; `None` when `bytes` is not an even number of hex digits.
    pub fn decode(&self) -> Option<Vec<u8>> {
        let hex = self.bytes.as_bytes();
        if hex.len() % 2 != 0 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        hex.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()).collect()
    }
}

/// One fanotify mark, as fdinfo prints it (kept as the raw line's fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanotifyMark {
    /// `inode`, `mount`, `filesystem` or `mntns`.
    pub target: String,
    pub mask: u64,
    pub ignored_mask: u64,
    /// The mark's flags a caller of `fanotify_mark` gives (`FAN_MARK_IGNORED_SURV_MODIFY`,
    /// `FAN_MARK_EVICTABLE`, `FAN_MARK_IGNORE`), as fdinfo shows them (`mflags:`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mflags: Option<u32>,
    /// An inode mark's inode.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ino: Option<u64>,
    /// An inode or filesystem mark's filesystem, as the kernel's internal device number (see
    /// [`InotifyWatch::sdev`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sdev: Option<u64>,
    /// A mount mark's mount id (as mountinfo numbers it; fdinfo prints it in hex).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mnt_id: Option<u64>,
    /// An inode mark's file handle, when its filesystem gives one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fhandle: Option<FileHandle>,
}

impl FanotifyMark {
    /// An inode or filesystem mark's device, `MAJOR:MINOR` as mountinfo shows it.
    pub fn dev(&self) -> Option<DevNum> {
        self.sdev.map(DevNum::from_kernel_dev)
    }
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

/// The field of a JSON object that a reading of `T` failed on with `message`: the one without which the
/// object reads, or reads only to miss that very field (a bad value is met while the fields are read, a
/// missing field only after them, so a field whose removal leaves just "missing field" is the one at fault).
/// `None` when the message names its field already (a missing field, a check made after the fields were
/// read) or no one field is at fault. Made for error messages: it reads the object again once per field.
pub fn field_at_fault<T: serde::de::DeserializeOwned>(
    object: &serde_json::Map<String, serde_json::Value>,
    message: &str,
) -> Option<String> {
    if message.starts_with("missing field `") || object.keys().any(|key| message.contains(&format!("`{key}`"))) {
        return None;
    }
    object.keys().find_map(|key| {
        let mut rest = object.clone();
        rest.remove(key);
        let at_fault = match serde_json::from_value::<T>(serde_json::Value::Object(rest)) {
            Ok(_) => true,
            Err(e) => e.to_string() == format!("missing field `{key}`"),
        };
        at_fault.then(|| key.clone())
    })
}

/// `message` said to be about `field`, unless it reads so already (`unknown kind `xyz``).
pub fn about_field(field: &str, message: String) -> String {
    if message.starts_with(&format!("unknown {field} ")) { message } else { format!("`{field}`: {message}") }
}

/// Everything gathered about one open fd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdFacts {
    pub fd: i32,
    pub kind: Kind,
    /// The `/proc/PID/fd/N` link text, byte for byte as the kernel gives it.
    pub link: ByteString,
    /// The path, for fds that have one (files, dirs, devices, FIFOs, memfds `/memfd:NAME`), without
    /// the ` (deleted)` suffix.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<ByteString>,
    /// An anonymous inode's name (`[eventfd]`, `[kvm-vm]`, `inotify`, `bpf-map`), or a namespace file's
    /// type (`net`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<ByteString>,
    /// `major:minor` of a device file.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dev: Option<DevNum>,
    /// The file was unlinked (`st_nlink == 0`).
    pub deleted: bool,
    /// The path the fd was opened by is gone, but the file lives on under another name (`st_nlink > 0`,
    /// link text ending in ` (deleted)`, and no file of that name): reopening the path cannot work.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub unlinked: bool,
    /// A pipe in packet mode: `O_DIRECT` is set on an end of it that the process holds (the kernel sets it
    /// on the write end only).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub packet: bool,
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
    /// Where the other end is (a pipe's or FIFO's other end, a unix socket's peer or a TCP connection's
    /// over a local address, a pty's other side), once the processes checked together are linked; `None`
    /// for kinds without another end, a TCP connection to another host, and facts that were not linked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer: Option<PeerPlace>,
    /// A process holding the other end, when one was found (inside: the first in scan order; outside: the
    /// lowest pid).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer_pid: Option<i32>,
    /// That process's fd holding the other end.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer_fd: Option<i32>,
    /// That process's command name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer_comm: Option<ByteString>,
    /// The other fds of the processes checked together that hold this fd's open file (the same open file
    /// description: offset and flags shared, as after `dup` or `fork`), in scan order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub shared_with: Vec<FdRef>,
}

/// A process's place in its job, from `/proc/PID/stat`: what CRIU needs to know about sessions and
/// terminals (a root process that does not lead its session needs `--shell-job`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFacts {
    pub ppid: i32,
    /// The process group.
    pub pgrp: i32,
    /// The session (the pid of its leader); 0 when the leader is in an ancestor pid namespace, where this
    /// process's pid namespace cannot name it.
    pub sid: i32,
    /// The controlling terminal, when it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tty: Option<DevNum>,
    /// Whether the session's leader is among the processes checked together (`none`: it has exited;
    /// `outside` for session 0 too), once they are linked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub leader: Option<PeerPlace>,
}

/// An fd of a process: `{"pid": 12, "fd": 3}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FdRef {
    pub pid: i32,
    pub fd: i32,
}

impl FdFacts {
    /// Facts with only the number, kind and link text known; the scanner and tests fill the rest.
    pub fn new(fd: i32, kind: Kind, link: impl Into<ByteString>) -> FdFacts {
        FdFacts {
            fd,
            kind,
            link: link.into(),
            path: None,
            name: None,
            dev: None,
            deleted: false,
            unlinked: false,
            packet: false,
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
            peer: None,
            peer_pid: None,
            peer_fd: None,
            peer_comm: None,
            shared_with: Vec::new(),
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
        // fdinfo's `sdev:` as this kernel printed it for ext4 on 254:0 (`st_dev` 0xfe00) and tmpfs on 0:27.
        assert_eq!(DevNum::from_kernel_dev(0xfe0_0000), DevNum { major: 254, minor: 0 });
        assert_eq!(DevNum::from_kernel_dev(0x1b), DevNum { major: 0, minor: 27 });
        assert_eq!(DevNum::from_kernel_dev(0x0080_0001), DevNum { major: 8, minor: 1 });
    }

    /// Bytes, how a person sees them, and how JSON carries them.
    const BYTE_STRINGS: &[(&[u8], &str, &str)] = &[
        (b"/dev/null", "/dev/null", r#""/dev/null""#),
        (b"", "", r#""""#),
        (b"/dev/\xffkvm", r"/dev/\xffkvm", r#"{"hex":"2f6465762fff6b766d"}"#),
        (b"ok\nPWNED", r"ok\nPWNED", r#""ok\nPWNED""#),
        (b"a\tb\rc\x1b[31m\x7f", r"a\tb\rc\x1b[31m\x7f", "\"a\\tb\\rc\\u001b[31m\x7f\""),
        (br"C:\x", r"C:\\x", r#""C:\\x""#),
        // A backslash escaped is never confused with the escape of a byte.
        (br"\xff", r"\\xff", r#""\\xff""#),
        (b"\\\xff", r"\\\xff", r#"{"hex":"5cff"}"#),
        ("caf\u{e9} \u{1f600}".as_bytes(), "caf\u{e9} \u{1f600}", "\"caf\u{e9} \u{1f600}\""),
        // A truncated character, a C1 control and a right-to-left override.
        (b"caf\xc3", r"caf\xc3", r#"{"hex":"636166c3"}"#),
        ("\u{9b}2J".as_bytes(), r"\u{9b}2J", "\"\u{9b}2J\""),
        ("a\u{202e}b".as_bytes(), r"a\u{202e}b", "\"a\u{202e}b\""),
        (b"@\0x", r"@\x00x", r#""@\u0000x""#),
    ];

    #[test]
    fn byte_strings_are_shown_escaped() {
        for &(bytes, shown, _) in BYTE_STRINGS {
            let b = ByteString::from(bytes);
            assert_eq!(b.escaped(), shown, "{bytes:?}");
            assert_eq!(b.to_string(), shown);
            assert!(!shown.contains(|c: char| c.is_control()), "{shown}");
        }
        assert!(matches!(ByteString::from("/dev/null").escaped(), Cow::Borrowed("/dev/null")));
        assert_eq!(format!("{:>6}|", ByteString::from(&b"\xff"[..])), "  \\xff|");
        assert_eq!(format!("{:?}", ByteString::from(&b"say \"\xff\""[..])), r#""say \"\xff\"""#);
        let all: Vec<String> = BYTE_STRINGS.iter().map(|(b, ..)| ByteString::from(*b).to_string()).collect();
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "two byte strings look the same: {all:?}");
    }

    #[test]
    fn byte_strings_round_trip_through_json() {
        for &(bytes, _, json) in BYTE_STRINGS {
            let b = ByteString::from(bytes);
            assert_eq!(serde_json::to_string(&b).unwrap(), json);
            let back: ByteString = serde_json::from_str(json).unwrap();
            assert_eq!(back.as_bytes(), bytes, "{json}");
        }
        // Hex in either case; anything else is refused with a message saying what is expected.
        let upper: ByteString = serde_json::from_str(r#"{"hex": "2F6465762FFF"}"#).unwrap();
        assert_eq!(upper.as_bytes(), b"/dev/\xff");
        let valid: ByteString = serde_json::from_str(r#"{"hex": "2f"}"#).unwrap();
        assert_eq!(valid, "/");
        for bad in [r#"{"hex": "2f6"}"#, r#"{"hex": "zz"}"#, r#"{"hex": 7}"#, r#"{}"#, r#"{"bytes": "2f"}"#, "7"] {
            let e = serde_json::from_str::<ByteString>(bad).unwrap_err().to_string();
            assert!(e.contains("hex") || e.contains("a string"), "{bad}: {e}");
        }
        assert!(serde_json::from_str::<ByteString>(r#"{"hex": "2f", "hex": "2f"}"#).is_err());
    }

    #[test]
    fn byte_strings_round_trip_through_ron() {
        // As the binary writes RON: optional fields as plain values.
        let ron = ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
        for &(bytes, ..) in BYTE_STRINGS {
            let b = ByteString::from(bytes);
            let text = ron.to_string(&b).unwrap();
            let back: ByteString = ron.from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back.as_bytes(), bytes, "{text}");
            let text = ron.to_string(&Some(b.clone())).unwrap();
            assert!(!text.starts_with("Some("), "{text}");
            let back: Option<ByteString> = ron.from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, Some(b.clone()), "{text}");
            let mut f = FdFacts::new(3, Kind::File, b.clone());
            f.path = Some(b.clone());
            f.name = Some(b.clone());
            let text = ron.to_string(&f).unwrap();
            let back: FdFacts = ron.from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, f, "{text}");
        }
    }

    #[test]
    fn facts_with_any_bytes_round_trip_through_json() {
        let mut f = FdFacts::new(7, Kind::Chardev, &b"/tmp/x/\xffkvm"[..]);
        f.path = Some(ByteString::from(&b"/tmp/x/\xffkvm"[..]));
        f.socket = Some(SocketFacts {
            local: Some(ByteString::from(&b"@\0\xfe\n"[..])),
            peer: Some("/run/a.sock".into()),
            ..SocketFacts::default()
        });
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["path"], serde_json::json!({"hex": "2f746d702f782fff6b766d"}));
        assert_eq!(json["socket"]["local"], serde_json::json!({"hex": "4000fe0a"}));
        assert_eq!(json["socket"]["peer"], "/run/a.sock");
        let back: FdFacts = serde_json::from_str(&json.to_string()).unwrap();
        assert_eq!(back, f);
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
