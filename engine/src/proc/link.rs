//! What the text of a `/proc/PID/fd/N` link says about the fd, before anything else is read: a path,
//! `pipe:[INO]`, `socket:[INO]`, `anon_inode:NAME`, or a namespace file `net:[INO]`.

use crate::facts::FileType;
use crrules_rules::vocab::Kind;

/// The shape of a link's text. Borrowed from the text; nothing here touches the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkShape<'a> {
    /// Anything that names a file: `/dev/null`, `/tmp/x (deleted)`, `/memfd:buf (deleted)`, `(unreachable)/x`.
    /// Which kind it is (file, dir, device, FIFO) only `stat` can tell.
    Path(&'a str),
    /// `pipe:[INO]` (a pipefs pipe; a named FIFO shows as a path).
    Pipe(u64),
    /// `socket:[INO]`.
    Socket(u64),
    /// `anon_inode:NAME`, NAME as the kernel gives it (`[eventfd]`, `inotify`, `bpf-map`).
    Anon(&'a str),
    /// A namespace file, `TYPE:[INO]` (`net:[4026531833]`).
    Ns { ns: &'a str, ino: u64 },
}

/// The ` (deleted)` suffix the kernel appends to the path of an unlinked file.
pub const DELETED_SUFFIX: &str = " (deleted)";

/// Parses `PREFIX:[DIGITS]` into the inode number.
fn bracketed_ino(link: &str) -> Option<(&str, u64)> {
    let (prefix, rest) = link.split_once(":[")?;
    let digits = rest.strip_suffix(']')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((prefix, digits.parse().ok()?))
}

/// Reads the shape of a link's text.
pub fn classify(link: &str) -> LinkShape<'_> {
    if let Some(name) = link.strip_prefix("anon_inode:") {
        return LinkShape::Anon(name);
    }
    if !link.starts_with('/') {
        if let Some((prefix, ino)) = bracketed_ino(link) {
            match prefix {
                "pipe" => return LinkShape::Pipe(ino),
                "socket" => return LinkShape::Socket(ino),
                ns if !ns.is_empty() && ns.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
                    return LinkShape::Ns { ns, ino };
                }
                _ => {}
            }
        }
    }
    LinkShape::Path(link)
}

/// The kind an anonymous inode's name stands for; names the language has no kind for are `anon`.
pub fn anon_kind(name: &str) -> Kind {
    match name {
        "[eventfd]" => Kind::Eventfd,
        "[eventpoll]" => Kind::Epoll,
        "[signalfd]" => Kind::Signalfd,
        "[timerfd]" => Kind::Timerfd,
        "inotify" => Kind::Inotify,
        "[fanotify]" => Kind::Fanotify,
        "[pidfd]" => Kind::Pidfd,
        "[io_uring]" => Kind::IoUring,
        "[perf_event]" => Kind::PerfEvent,
        "[userfaultfd]" => Kind::Userfaultfd,
        n if n.starts_with("bpf") || n.starts_with("[bpf") => Kind::Bpf,
        _ => Kind::Anon,
    }
}

/// An anonymous inode's name in the one form rules match: in brackets, as most appear in `/proc`
/// (`[eventfd]`), also for those the kernel names without (`anon_inode:kvm-vm` -> `[kvm-vm]`,
/// `anon_inode:inotify` -> `[inotify]`). The fd's `link` keeps the exact text.
pub fn bracketed(name: &str) -> String {
    if name.starts_with('[') && name.ends_with(']') { name.to_owned() } else { format!("[{name}]") }
}

/// Pseudo-paths of anonymous files that look like paths but are not files: `/dmabuf:NAME` -> `[dmabuf]`.
pub fn pseudo_path_anon(path: &str) -> Option<&'static str> {
    path.starts_with("/dmabuf:").then_some("[dmabuf]")
}

/// True for a memfd's link text, `/memfd:NAME (deleted)`.
pub fn is_memfd_path(link: &str) -> bool {
    link.starts_with("/memfd:") && link.ends_with(DELETED_SUFFIX)
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
        let cases: &[(&str, LinkShape<'_>)] = &[
            ("/dev/null", LinkShape::Path("/dev/null")),
            ("/tmp/a (deleted)", LinkShape::Path("/tmp/a (deleted)")),
            ("pipe:[12345]", LinkShape::Pipe(12345)),
            ("socket:[7]", LinkShape::Socket(7)),
            ("anon_inode:[eventfd]", LinkShape::Anon("[eventfd]")),
            ("anon_inode:inotify", LinkShape::Anon("inotify")),
            ("net:[4026531833]", LinkShape::Ns { ns: "net", ino: 4026531833 }),
            ("pid_for_children:[4]", LinkShape::Ns { ns: "pid_for_children", ino: 4 }),
            // Not quite any special form: treated as a path, `stat` decides.
            ("pipe:[12a]", LinkShape::Path("pipe:[12a]")),
            ("/pipe:[1]", LinkShape::Path("/pipe:[1]")),
            ("(unreachable)/x", LinkShape::Path("(unreachable)/x")),
            ("Weird:[1]", LinkShape::Path("Weird:[1]")),
            ("pipe:[]", LinkShape::Path("pipe:[]")),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text), *want, "{text}");
        }
    }

    #[test]
    fn anon_names_are_bracketed_once() {
        assert_eq!(bracketed("[eventfd]"), "[eventfd]");
        assert_eq!(bracketed("kvm-vm"), "[kvm-vm]");
        assert_eq!(bracketed("kvm-vcpu:0"), "[kvm-vcpu:0]");
    }

    #[test]
    fn anon_names_map_to_kinds() {
        assert_eq!(anon_kind("[eventfd]"), Kind::Eventfd);
        assert_eq!(anon_kind("inotify"), Kind::Inotify);
        assert_eq!(anon_kind("bpf-map"), Kind::Bpf);
        assert_eq!(anon_kind("bpf_link"), Kind::Bpf);
        assert_eq!(anon_kind("[io_uring]"), Kind::IoUring);
        assert_eq!(anon_kind("[kvm-vm]"), Kind::Anon);
        assert_eq!(anon_kind("[eventfd"), Kind::Anon);
    }

    #[test]
    fn types_that_fit_shapes() {
        assert!(type_fits(&LinkShape::Pipe(1), FileType::Fifo));
        assert!(!type_fits(&LinkShape::Pipe(1), FileType::Socket));
        assert!(!type_fits(&LinkShape::Socket(1), FileType::Regular));
        assert!(!type_fits(&LinkShape::Path("/x"), FileType::None));
        assert!(type_fits(&LinkShape::Path("/dmabuf:x"), FileType::None));
        assert!(type_fits(&LinkShape::Anon("[eventfd]"), FileType::None));
        assert!(!type_fits(&LinkShape::Anon("[eventfd]"), FileType::Regular));
        assert_eq!(path_kind(FileType::Char), Kind::Chardev);
        assert!(is_memfd_path("/memfd:buf (deleted)"));
        assert!(!is_memfd_path("/memfd:buf"));
    }
}

#[cfg(test)]
mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_link(text in "(anon_inode:|pipe:|socket:|net:|/memfd:|/dmabuf:| \\(deleted\\)|\\[|\\]|[a-z0-9/ ]){0,12}") {
            let shape = classify(&text);
            let _ = link_ino(&shape);
            let _ = type_fits(&shape, FileType::None);
            if let LinkShape::Anon(n) = shape {
                let _ = anon_kind(n);
            }
        }
    }
}
