//! `/proc/PID/mountinfo` -> mount id to filesystem type, read once per process; and each mount's device,
//! root and mount point, for resolving a file handle to a path.

use crate::facts::DevNum;
use std::collections::HashMap;

/// Mount id -> filesystem type (`ext4`, `tmpfs`, `fuse.sshfs`).
pub fn fs_types(text: &str) -> HashMap<u64, String> {
    text.lines().filter_map(parse_line).map(|(id, fs)| (id, fs.to_string())).collect()
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw` -> (36, "ext3"). The optional fields
/// end at a lone `-`; the type is the word after it. Escaped blanks (`\040`) never split a field.
fn parse_line(line: &str) -> Option<(u64, &str)> {
    let mut words = line.split(' ');
    let id = words.next()?.parse().ok()?;
    let mut words = words.skip_while(|w| *w != "-");
    words.next()?;
    let fs = words.next().filter(|w| !w.is_empty())?;
    Some((id, fs))
}

/// One mount, as much of its mountinfo line as a file handle's resolution needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub id: u64,
    /// The filesystem's device (`MAJOR:MINOR`, the superblock's: what fdinfo's `sdev` shows encoded).
    pub dev: DevNum,
    /// The directory of the filesystem mounted there (`/` when the whole filesystem is).
    pub root: Vec<u8>,
    /// Where it is mounted, relative to the process's root.
    pub point: Vec<u8>,
    /// The filesystem type (`ext4`, `cgroup2`...), the word after the lone `-`.
    pub fstype: String,
}

/// Every mount of a mountinfo text, in its order. Paths are bytes, with the kernel's octal escapes
/// (`\040` for a blank, `\134` for a backslash) undone.
pub fn mounts(text: &[u8]) -> Vec<Mount> {
    text.split(|&b| b == b'\n').filter_map(parse_mount).collect()
}

fn parse_mount(line: &[u8]) -> Option<Mount> {
    let mut words = line.split(|&b| b == b' ');
    let id = std::str::from_utf8(words.next()?).ok()?.parse().ok()?;
    let _parent = words.next()?;
    let (major, minor) = std::str::from_utf8(words.next()?).ok()?.split_once(':')?;
    let dev = DevNum { major: major.parse().ok()?, minor: minor.parse().ok()? };
    let root = unescape(words.next()?);
    let point = unescape(words.next()?);
    if !root.starts_with(b"/") || !point.starts_with(b"/") {
        return None;
    }
    let fstype = words.skip_while(|w| *w != b"-").nth(1).map(|w| String::from_utf8_lossy(w).into_owned())?;
    Some(Mount { id, dev, root, point, fstype })
}

/// `\ooo` (three octal digits) -> that byte; anything else as it is.
fn unescape(word: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        let octal = word.get(i + 1..i + 4).filter(|d| word[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(word[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_with_escaped_paths() {
        let text = b"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                     36 35 98:0 /mnt1 /my\\040dir\\134x rw,noatime master:1 shared:2 - fuse.sshfs host:/ rw\n\
                     garbage\n\
                     30 25 0:27 / /dev/shm\\012 rw - tmpfs tmpfs rw\n";
        let m = mounts(text);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0],
            Mount {
                id: 27,
                dev: DevNum { major: 254, minor: 0 },
                root: b"/".to_vec(),
                point: b"/".to_vec(),
                fstype: "ext4".into()
            }
        );
        assert_eq!(
            (m[1].dev, m[1].root.as_slice(), m[1].point.as_slice()),
            (DevNum { major: 98, minor: 0 }, &b"/mnt1"[..], &b"/my dir\\x"[..])
        );
        assert_eq!(m[2].point, b"/dev/shm\n");
        assert_eq!((m[1].fstype.as_str(), m[2].fstype.as_str()), ("fuse.sshfs", "tmpfs"));
        assert_eq!(unescape(b"a\\09b\\"), b"a\\09b\\");
    }

    #[test]
    fn ids_to_types() {
        let text = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                    36 35 98:0 /mnt1 /my\\040dir rw,noatime master:1 shared:2 - fuse.sshfs host:/ rw\n\
                    garbage\n\
                    40 1 0:1 / /x rw -\n";
        let m = fs_types(text);
        assert_eq!(m.get(&22).map(String::as_str), Some("proc"));
        assert_eq!(m.get(&36).map(String::as_str), Some("fuse.sshfs"));
        assert_eq!(m.len(), 2);
    }
}
