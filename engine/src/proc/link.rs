//! What the text of a `/proc/PID/fd/N` link says about the fd, before anything else is read: a path,
//! `pipe:[INO]`, `socket:[INO]`, `anon_inode:NAME`, or a namespace file `net:[INO]`. The text is bytes, as
//! `readlink` gives it: a path need not be UTF-8.

use crate::facts::{ByteString, FileType};
use crrules_rules::vocab::Kind;

/// The shape of a link's text. Borrowed from the text; nothing here touches the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkShape<'a> {
    /// Anything that names a file: `/dev/null`, `/tmp/x (deleted)`, `/memfd:buf (deleted)`, `(unreachable)/x`.
    /// Which kind it is (file, dir, device, FIFO) only `stat` can tell.
    Path(&'a [u8]),
    /// `pipe:[INO]` (a pipefs pipe; a named FIFO shows as a path).
    Pipe(u64),
    /// `socket:[INO]`.
    Socket(u64),
    /// `anon_inode:NAME`, NAME as the kernel gives it (`[eventfd]`, `inotify`, `bpf-map`).
    Anon(&'a [u8]),
    /// A namespace file, `TYPE:[INO]` (`net:[4026531833]`); the type is lowercase ASCII.
    Ns { ns: &'a str, ino: u64 },
}

/// The ` (deleted)` suffix the kernel appends to the path of an unlinked file.
pub const DELETED_SUFFIX: &[u8] = b" (deleted)";

/// Parses `PREFIX:[DIGITS]` into the prefix and the inode number.
fn bracketed_ino(link: &[u8]) -> Option<(&[u8], u64)> {
    let at = link.windows(2).position(|w| w == b":[")?;
    let (prefix, rest) = (&link[..at], &link[at + 2..]);
    let digits = rest.strip_suffix(b"]")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((prefix, std::str::from_utf8(digits).ok()?.parse().ok()?))
}

/// Reads the shape of a link's text.
pub fn classify(link: &[u8]) -> LinkShape<'_> {
    if let Some(name) = link.strip_prefix(b"anon_inode:") {
        return LinkShape::Anon(name);
    }
    if !link.starts_with(b"/")
        && let Some((prefix, ino)) = bracketed_ino(link)
    {
        match prefix {
            b"pipe" => return LinkShape::Pipe(ino),
            b"socket" => return LinkShape::Socket(ino),
            ns if !ns.is_empty() && ns.iter().all(|&b| b.is_ascii_lowercase() || b == b'_') => {
                // Lowercase ASCII, so always UTF-8.
                if let Ok(ns) = std::str::from_utf8(ns) {
                    return LinkShape::Ns { ns, ino };
                }
            }
            _ => {}
        }
    }
    LinkShape::Path(link)
}

/// The kind an anonymous inode's name stands for; names the language has no kind for are `anon`.
pub fn anon_kind(name: &[u8]) -> Kind {
    match name {
        b"[eventfd]" => Kind::Eventfd,
        b"[eventpoll]" => Kind::Epoll,
        b"[signalfd]" => Kind::Signalfd,
        b"[timerfd]" => Kind::Timerfd,
        b"inotify" => Kind::Inotify,
        b"[fanotify]" => Kind::Fanotify,
        b"[pidfd]" => Kind::Pidfd,
        b"[io_uring]" => Kind::IoUring,
        b"[perf_event]" => Kind::PerfEvent,
        b"[userfaultfd]" => Kind::Userfaultfd,
        n if n.starts_with(b"bpf") || n.starts_with(b"[bpf") => Kind::Bpf,
        _ => Kind::Anon,
    }
}

/// An anonymous inode's name in the one form rules match: in brackets, as most appear in `/proc`
/// (`[eventfd]`), also for those the kernel names without (`anon_inode:kvm-vm` -> `[kvm-vm]`,
/// `anon_inode:inotify` -> `[inotify]`). The fd's `link` keeps the exact text.
pub fn bracketed(name: &[u8]) -> ByteString {
    if name.starts_with(b"[") && name.ends_with(b"]") {
        ByteString::from(name)
    } else {
        ByteString::new([&b"["[..], name, b"]"].concat())
    }
}

/// Pseudo-paths of anonymous files that look like paths but are not files: `/dmabuf:NAME` -> `[dmabuf]`.
pub fn pseudo_path_anon(path: &[u8]) -> Option<&'static str> {
    path.starts_with(b"/dmabuf:").then_some("[dmabuf]")
}

/// True for a path of one component (`/name`, `/name (deleted)`): a file in the root of its mount.
pub fn is_root_entry(path: &[u8]) -> bool {
    path.first() == Some(&b'/') && !path[1..].contains(&b'/')
}

/// True for a memfd's link text, `/memfd:NAME (deleted)`.
pub fn is_memfd_path(link: &[u8]) -> bool {
    link.starts_with(b"/memfd:") && link.ends_with(DELETED_SUFFIX)
}

/// The kind of a path-shaped fd, from the file type `stat` gave.
pub fn path_kind(file_type: FileType) -> Kind {
    match file_type {
        FileType::Directory => Kind::Dir,
        FileType::Char => Kind::Chardev,
        FileType::Block => Kind::Blockdev,
        FileType::Fifo => Kind::Fifo,
        // An `O_PATH` fd on a socket file or a symlink (`O_PATH|O_NOFOLLOW`) names a file, not a socket.
        FileType::Regular | FileType::Socket | FileType::Symlink | FileType::None => Kind::File,
    }
}

/// True when `stat`'s file type can belong to a link of this shape (a mismatch means the fd was replaced
/// between the two reads).
pub fn type_fits(shape: &LinkShape<'_>, file_type: FileType) -> bool {
    match shape {
        LinkShape::Pipe(_) => file_type == FileType::Fifo,
        LinkShape::Socket(_) => file_type == FileType::Socket,
        LinkShape::Path(p) if pseudo_path_anon(p).is_some() => true,
        LinkShape::Path(_) => file_type != FileType::None,
        // Anonymous inodes and pidfs inodes carry no type bits.
        LinkShape::Anon(_) => file_type == FileType::None,
        LinkShape::Ns { .. } => true,
    }
}

/// The inode a link's text carries, if any.
pub fn link_ino(shape: &LinkShape<'_>) -> Option<u64> {
    match *shape {
        LinkShape::Pipe(ino) | LinkShape::Socket(ino) | LinkShape::Ns { ino, .. } => Some(ino),
        LinkShape::Path(_) | LinkShape::Anon(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_link_texts() {
        let cases: &[(&[u8], LinkShape<'_>)] = &[
            (b"/dev/null", LinkShape::Path(b"/dev/null")),
            (b"/tmp/a (deleted)", LinkShape::Path(b"/tmp/a (deleted)")),
            (b"pipe:[12345]", LinkShape::Pipe(12345)),
            (b"socket:[7]", LinkShape::Socket(7)),
            (b"anon_inode:[eventfd]", LinkShape::Anon(b"[eventfd]")),
            (b"anon_inode:inotify", LinkShape::Anon(b"inotify")),
            (b"net:[4026531833]", LinkShape::Ns { ns: "net", ino: 4026531833 }),
            (b"pid_for_children:[4]", LinkShape::Ns { ns: "pid_for_children", ino: 4 }),
            // Not quite any special form: treated as a path, `stat` decides.
            (b"pipe:[12a]", LinkShape::Path(b"pipe:[12a]")),
            (b"/pipe:[1]", LinkShape::Path(b"/pipe:[1]")),
            (b"(unreachable)/x", LinkShape::Path(b"(unreachable)/x")),
            (b"Weird:[1]", LinkShape::Path(b"Weird:[1]")),
            (b"pipe:[]", LinkShape::Path(b"pipe:[]")),
            (b"n\xfft:[1]", LinkShape::Path(b"n\xfft:[1]")),
            // Bytes that are not UTF-8 are kept, never replaced.
            (b"/dev/\xffkvm", LinkShape::Path(b"/dev/\xffkvm")),
            (b"/tmp/\xc3 (deleted)", LinkShape::Path(b"/tmp/\xc3 (deleted)")),
            (b"anon_inode:[\x80]", LinkShape::Anon(b"[\x80]")),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text), *want, "{}", ByteString::from(*text));
        }
    }

    #[test]
    fn anon_names_are_bracketed_once() {
        assert_eq!(bracketed(b"[eventfd]"), "[eventfd]");
        assert_eq!(bracketed(b"kvm-vm"), "[kvm-vm]");
        assert_eq!(bracketed(b"kvm-vcpu:0"), "[kvm-vcpu:0]");
        assert_eq!(bracketed(b"\xff").as_bytes(), b"[\xff]");
    }

    #[test]
    fn anon_names_map_to_kinds() {
        assert_eq!(anon_kind(b"[eventfd]"), Kind::Eventfd);
        assert_eq!(anon_kind(b"inotify"), Kind::Inotify);
        assert_eq!(anon_kind(b"bpf-map"), Kind::Bpf);
        assert_eq!(anon_kind(b"bpf_link"), Kind::Bpf);
        assert_eq!(anon_kind(b"[io_uring]"), Kind::IoUring);
        assert_eq!(anon_kind(b"[kvm-vm]"), Kind::Anon);
        assert_eq!(anon_kind(b"[eventfd"), Kind::Anon);
    }

    #[test]
    fn types_that_fit_shapes() {
        assert!(type_fits(&LinkShape::Pipe(1), FileType::Fifo));
        assert!(!type_fits(&LinkShape::Pipe(1), FileType::Socket));
        assert!(!type_fits(&LinkShape::Socket(1), FileType::Regular));
        assert!(!type_fits(&LinkShape::Path(b"/x"), FileType::None));
        assert!(type_fits(&LinkShape::Path(b"/dmabuf:x"), FileType::None));
        assert!(type_fits(&LinkShape::Anon(b"[eventfd]"), FileType::None));
        assert!(!type_fits(&LinkShape::Anon(b"[eventfd]"), FileType::Regular));
        assert_eq!(path_kind(FileType::Char), Kind::Chardev);
        assert!(is_memfd_path(b"/memfd:buf (deleted)"));
        assert!(is_memfd_path(b"/memfd:\xff (deleted)"));
        assert!(!is_memfd_path(b"/memfd:buf"));
    }
}

#[cfg(test)]
mod no_panic {
    use super::*;
    use proptest::prelude::*;

    /// Pieces of link texts, special forms and bytes that are not UTF-8 among them.
    const PIECES: &[&[u8]] = &[
        b"anon_inode:",
        b"pipe:",
        b"socket:",
        b"net:",
        b"/memfd:",
        b"/dmabuf:",
        b" (deleted)",
        b"[",
        b"]",
        b"a",
        b"0",
        b"9",
        b"/",
        b" ",
        b"\xff",
        b"\xc3",
        b"\n",
    ];

    proptest! {
        #[test]
        fn any_link(pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..12)) {
            let text = pieces.concat();
            let shape = classify(&text);
            let _ = link_ino(&shape);
            let _ = type_fits(&shape, FileType::None);
            if let LinkShape::Anon(n) = shape {
                let _ = anon_kind(n);
            }
            if let LinkShape::Path(p) = shape {
                prop_assert_eq!(p, &text[..], "a path is the link's own bytes");
            }
        }
    }
}
