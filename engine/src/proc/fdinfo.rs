//! `/proc/PID/fdinfo/N` text -> typed fields: the lines every fd has (`pos`, `flags`, `mnt_id`, `ino`,
//! `lock:`) and each kind's own (eventfd, timerfd, signalfd, epoll, inotify, fanotify, pidfd, pty master).
//! Pure parsing; unknown lines are skipped, malformed numbers leave the field unset.

use crate::facts::{
    EpollTarget, EventfdFacts, FanotifyFacts, FanotifyMark, FdFacts, FileHandle, InotifyWatch, Lock, OpenFlags,
    TimerfdFacts,
};
use crrules_rules::vocab::Kind;

/// `O_CLOEXEC` as fdinfo's `flags:` shows it.
const O_CLOEXEC: u32 = 0o2000000;

/// Everything one fdinfo text says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FdInfo {
    pub pos: Option<u64>,
    pub flags: Option<u32>,
    pub mnt_id: Option<u64>,
    /// The open file's inode (kernels 5.14+): ties this text to the `stat` taken before it.
    pub ino: Option<u64>,
    pub locks: Vec<Lock>,
    pub eventfd: Option<EventfdFacts>,
    pub timerfd: Option<TimerfdFacts>,
    pub sigmask: Option<Vec<u32>>,
    pub epoll: Vec<EpollTarget>,
    pub inotify: Vec<InotifyWatch>,
    pub fanotify: Option<FanotifyFacts>,
    pub pidfd_pid: Option<i32>,
    pub tty_index: Option<u32>,
    /// An io_uring instance's `SqMask:` line was seen.
    pub io_uring: bool,
}

/// `key:value` and `key: value` pairs of a line whose fields are separated by blanks
/// (`tfd:        5 events:       19 data: 5  pos:0 ino:1a sdev:f`).
fn pairs(line: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut words = line.split_ascii_whitespace();
    std::iter::from_fn(move || {
        loop {
            let word = words.next()?;
            if let Some(key) = word.strip_suffix(':') {
                return Some((key, words.next().unwrap_or("")));
            }
            if let Some((key, value)) = word.split_once(':') {
                return Some((key, value));
            }
        }
    })
}

fn find<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    pairs(line).find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn hex64(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

fn hex32(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// `(SEC, NSEC)` from timerfd's `it_value:` / `it_interval:`.
fn pair_of(s: &str) -> Option<(i64, i64)> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    let (a, b) = inner.split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// A signal mask in hex -> the signal numbers in it (bit 0 is signal 1).
pub fn signals_of_mask(mask: u64) -> Vec<u32> {
    (0..64).filter(|bit| mask & (1 << bit) != 0).map(|bit| bit + 1).collect()
}

/// One `lock:` line: `1: POSIX  ADVISORY  WRITE 1234 00:2d:5678 0 EOF` (the leading id is optional).
fn parse_lock(text: &str) -> Option<Lock> {
    let mut words = text.split_ascii_whitespace().peekable();
    if words.peek().is_some_and(|w| w.ends_with(':') && w[..w.len() - 1].bytes().all(|b| b.is_ascii_digit())) {
        words.next();
    }
    let class = words.next()?.to_string();
    let mode = words.next()?.to_string();
    let access = words.next()?.to_string();
    let pid = words.next()?.parse().ok()?;
    let _dev_ino = words.next()?;
    let start = words.next()?.parse().ok()?;
    let end = match words.next()? {
        "EOF" => None,
        n => Some(n.parse().ok()?),
    };
    Some(Lock { class, mode, access, pid, start, end })
}

/// A watch's or mark's file handle: `fhandle-bytes:8 fhandle-type:1 f_handle:e803000000000000` (the count
/// and the type in hex, then every byte). `None` when a field is missing or the bytes are not as many as
/// the count says.
fn parse_fhandle(line: &str) -> Option<FileHandle> {
    let count = hex32(find(line, "fhandle-bytes")?)? as usize;
    let handle_type = hex32(find(line, "fhandle-type")?)? as i32;
    let bytes = find(line, "f_handle")?;
    if bytes.len() != 2 * count || !bytes.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(FileHandle { handle_type, bytes: bytes.to_ascii_lowercase() })
}

fn parse_fanotify(line: &str, info: &mut FdInfo) {
    let mut it = pairs(line);
    let Some((first, first_value)) = it.next() else { return };
    if first == "flags" {
        let event_flags = find(line, "event-flags").and_then(hex32).unwrap_or(0);
        let marks = info.fanotify.take().map(|f| f.marks).unwrap_or_default();
        info.fanotify = Some(FanotifyFacts { flags: hex32(first_value).unwrap_or(0), event_flags, marks });
        return;
    }
    let target = match first {
        "ino" => "inode",
        "mnt_id" => "mount",
        "sdev" => "filesystem",
        "mntns" => "mntns",
        _ => return,
    };
    let mark = FanotifyMark {
        target: target.to_string(),
        mask: find(line, "mask").and_then(hex64).unwrap_or(0),
        ignored_mask: find(line, "ignored_mask").and_then(hex64).unwrap_or(0),
        mflags: find(line, "mflags").and_then(hex32),
        ino: find(line, "ino").and_then(hex64),
        sdev: find(line, "sdev").and_then(hex64),
        mnt_id: find(line, "mnt_id").and_then(hex64),
        fhandle: parse_fhandle(line),
    };
    info.fanotify.get_or_insert_with(|| FanotifyFacts { flags: 0, event_flags: 0, marks: Vec::new() }).marks.push(mark);
}

impl FdInfo {
    /// Parses an fdinfo text.
    pub fn parse(text: &str) -> FdInfo {
        let mut info = FdInfo::default();
        let mut eventfd: Option<EventfdFacts> = None;
        let mut timer = TimerParts::default();
        for line in text.lines() {
            if line.starts_with("tfd:") {
                info.epoll.extend(parse_tfd(line));
                continue;
            }
            if let Some(rest) = line.strip_prefix("inotify ") {
                let watch = (|| {
                    Some(InotifyWatch {
                        wd: i32::from_str_radix(find(rest, "wd")?, 16).ok()?,
                        ino: hex64(find(rest, "ino")?)?,
                        sdev: hex64(find(rest, "sdev")?)?,
                        mask: hex32(find(rest, "mask")?)?,
                        fhandle: parse_fhandle(rest),
                    })
                })();
                info.inotify.extend(watch);
                continue;
            }
            if let Some(rest) = line.strip_prefix("fanotify ") {
                parse_fanotify(rest, &mut info);
                continue;
            }
            let Some((key, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            match key {
                "pos" => info.pos = value.parse().ok(),
                "flags" => info.flags = u32::from_str_radix(value, 8).ok(),
                "mnt_id" => info.mnt_id = value.parse().ok(),
                "ino" => info.ino = value.parse().ok(),
                "lock" => info.locks.extend(parse_lock(value)),
                "eventfd-count" => {
                    if let Some(count) = hex64(value) {
                        eventfd.get_or_insert(EventfdFacts { count, semaphore: None, id: None }).count = count;
                    }
                }
                "eventfd-id" => {
                    if let Some(e) = eventfd.as_mut() {
                        e.id = value.parse().ok();
                    }
                }
                "eventfd-semaphore" => {
                    if let Some(e) = eventfd.as_mut() {
                        e.semaphore = value.parse::<u32>().ok().map(|v| v != 0);
                    }
                }
                "clockid" => timer.clockid = value.parse().ok(),
                "ticks" => timer.ticks = value.parse().ok(),
                "settime flags" => timer.settime_flags = u32::from_str_radix(value, 8).ok(),
                "it_value" => timer.it_value = pair_of(value),
                "it_interval" => timer.it_interval = pair_of(value),
                "sigmask" => info.sigmask = hex64(value).map(signals_of_mask),
                "Pid" => info.pidfd_pid = value.parse().ok(),
                "tty-index" => info.tty_index = value.parse().ok(),
                "SqMask" => info.io_uring = true,
                _ => {}
            }
        }
        info.eventfd = eventfd;
        info.timerfd = timer.finish();
        info
    }

    /// False when this text cannot belong to an fd of `kind`: another kind's own lines are present, or the
    /// kind's required line is missing. Either means the fd was replaced between the reads.
    /// Anonymous inodes the language has no kind for may print anything, so they fit every text.
    pub fn fits(&self, kind: Kind) -> bool {
        if kind == Kind::Anon {
            return true;
        }
        let has = |present: bool, owner: Kind| !present || kind == owner;
        let needs = |owner: Kind, present: bool| kind != owner || present;
        has(self.eventfd.is_some(), Kind::Eventfd)
            && has(self.timerfd.is_some(), Kind::Timerfd)
            && has(self.sigmask.is_some(), Kind::Signalfd)
            && has(!self.epoll.is_empty(), Kind::Epoll)
            && has(!self.inotify.is_empty(), Kind::Inotify)
            && has(self.fanotify.is_some(), Kind::Fanotify)
            && has(self.pidfd_pid.is_some(), Kind::Pidfd)
            && has(self.io_uring, Kind::IoUring)
            && has(self.tty_index.is_some(), Kind::Chardev)
            && needs(Kind::Eventfd, self.eventfd.is_some())
            && needs(Kind::Timerfd, self.timerfd.is_some())
            && needs(Kind::Signalfd, self.sigmask.is_some())
            && needs(Kind::Fanotify, self.fanotify.is_some())
            && needs(Kind::Pidfd, self.pidfd_pid.is_some())
    }

    /// Moves the fields into `facts`.
    pub fn apply(self, facts: &mut FdFacts) {
        facts.pos = self.pos;
        if let Some(flags) = self.flags {
            facts.flags = OpenFlags(flags);
            facts.cloexec = flags & O_CLOEXEC != 0;
        }
        facts.mnt_id = self.mnt_id;
        facts.ino = facts.ino.or(self.ino);
        facts.locks = self.locks;
        facts.eventfd = self.eventfd;
        facts.timerfd = self.timerfd;
        facts.sigmask = self.sigmask;
        match facts.kind {
            Kind::Epoll => facts.epoll = Some(self.epoll),
            Kind::Inotify => facts.inotify = Some(self.inotify),
            _ => {}
        }
        facts.fanotify = self.fanotify;
        facts.pidfd_pid = self.pidfd_pid;
        facts.tty_index = self.tty_index;
    }
}

fn parse_tfd(line: &str) -> Option<EpollTarget> {
    Some(EpollTarget {
        tfd: find(line, "tfd")?.parse().ok()?,
        events: hex32(find(line, "events")?)?,
        data: hex64(find(line, "data")?)?,
        ino: find(line, "ino").and_then(hex64),
    })
}

/// timerfd's lines, collected until all are seen.
#[derive(Default)]
struct TimerParts {
    clockid: Option<i32>,
    ticks: Option<u64>,
    settime_flags: Option<u32>,
    it_value: Option<(i64, i64)>,
    it_interval: Option<(i64, i64)>,
}

impl TimerParts {
    fn finish(self) -> Option<TimerfdFacts> {
        Some(TimerfdFacts {
            clockid: self.clockid?,
            ticks: self.ticks.unwrap_or(0),
            settime_flags: self.settime_flags.unwrap_or(0),
            it_value: self.it_value?,
            it_interval: self.it_interval?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_lines_and_a_lock() {
        let text = "pos:\t42\nflags:\t02102002\nmnt_id:\t31\nino:\t1234\n\
                    lock:\t1: FLOCK  ADVISORY  WRITE 77 00:1f:1234 0 EOF\n\
                    lock:\tPOSIX  ADVISORY  READ 78 fd:01:99 10 19\n";
        let info = FdInfo::parse(text);
        assert_eq!(info.pos, Some(42));
        assert_eq!(info.flags, Some(0o2102002));
        assert_eq!(info.mnt_id, Some(31));
        assert_eq!(info.ino, Some(1234));
        assert_eq!(info.locks.len(), 2);
        assert_eq!(info.locks[0].class, "FLOCK");
        assert_eq!(info.locks[0].access, "WRITE");
        assert_eq!(info.locks[0].pid, 77);
        assert_eq!(info.locks[0].end, None);
        assert_eq!(info.locks[1].class, "POSIX");
        assert_eq!((info.locks[1].start, info.locks[1].end), (10, Some(19)));
        let mut f = FdFacts::new(3, Kind::File, "/x");
        info.apply(&mut f);
        assert!(f.cloexec);
        assert!(f.flags.contains(0o2000));
    }

    #[test]
    fn eventfd_timerfd_signalfd() {
        let e = FdInfo::parse(
            "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t9\neventfd-count:                5\neventfd-id: 3\neventfd-semaphore: 1\n",
        );
        assert_eq!(e.eventfd, Some(EventfdFacts { count: 5, semaphore: Some(true), id: Some(3) }));
        assert!(e.fits(Kind::Eventfd));
        assert!(!e.fits(Kind::Timerfd));
        let t = FdInfo::parse(
            "pos:\t0\nflags:\t02\nclockid: 1\nticks: 3\nsettime flags: 01\nit_value: (0, 999)\nit_interval: (1, 500)\n",
        );
        let tf = t.timerfd.clone().unwrap();
        assert_eq!((tf.clockid, tf.ticks, tf.settime_flags), (1, 3, 1));
        assert_eq!((tf.it_value, tf.it_interval), ((0, 999), (1, 500)));
        assert!(t.fits(Kind::Timerfd));
        assert!(!t.fits(Kind::Eventfd), "an eventfd must show its count");
        let s = FdInfo::parse("pos:\t0\nsigmask:\t0000000000000200\n");
        assert_eq!(s.sigmask, Some(vec![10]));
        assert_eq!(signals_of_mask(0x8000_0000_0000_0001), vec![1, 64]);
    }

    #[test]
    fn epoll_inotify_fanotify_pidfd() {
        let e = FdInfo::parse(
            "pos:\t0\ntfd:        5 events:       19 data:                5  pos:0 ino:1a sdev:f\n\
             tfd:       12 events:        1 data:         ffffffff  pos:0 ino:2b sdev:d\n",
        );
        assert_eq!(e.epoll.len(), 2);
        assert_eq!(e.epoll[0], EpollTarget { tfd: 5, events: 0x19, data: 5, ino: Some(0x1a) });
        assert_eq!(e.epoll[1].data, 0xffff_ffff);
        let i = FdInfo::parse(
            "pos:\t0\ninotify wd:1 ino:3e8 sdev:800001 mask:fff ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e803000000000000\n",
        );
        let handle = FileHandle { handle_type: 1, bytes: "e803000000000000".into() };
        assert_eq!(
            i.inotify,
            vec![InotifyWatch { wd: 1, ino: 1000, sdev: 0x800001, mask: 0xfff, fhandle: Some(handle.clone()) }]
        );
        assert_eq!(handle.decode(), Some(vec![0xe8, 3, 0, 0, 0, 0, 0, 0]));
        let f = FdInfo::parse(
            "pos:\t0\nfanotify flags:10 event-flags:0\n\
             fanotify ino:3e8 sdev:800001 mflags:0 mask:1 ignored_mask:0 fhandle-bytes:8\n\
             fanotify mnt_id:1f mflags:0 mask:8 ignored_mask:0\n",
        );
        let fa = f.fanotify.clone().unwrap();
        assert_eq!((fa.flags, fa.event_flags), (0x10, 0));
        let targets: Vec<_> = fa.marks.iter().map(|m| (m.target.as_str(), m.mask)).collect();
        assert_eq!(targets, vec![("inode", 1), ("mount", 8)]);
        // The mark's object: an inode (with its handle, when the line has all of it), a mount (its id in hex).
        assert_eq!((fa.marks[0].ino, fa.marks[0].sdev, fa.marks[0].mflags), (Some(1000), Some(0x800001), Some(0)));
        assert_eq!(fa.marks[0].fhandle, None, "a handle without its type and bytes is none");
        assert_eq!((fa.marks[1].mnt_id, fa.marks[1].ino), (Some(31), None));
        let g = FdInfo::parse(
            "fanotify flags:1 event-flags:8000\n\
             fanotify ino:9b620a sdev:fe00000 mflags:40 mask:20 ignored_mask:8 fhandle-bytes:8 fhandle-type:1 f_handle:0a629b000447fdb5\n\
             fanotify sdev:fe00000 mflags:0 mask:1000 ignored_mask:0\n",
        )
        .fanotify
        .unwrap();
        let m = &g.marks[0];
        assert_eq!((m.mflags, m.mask, m.ignored_mask), (Some(0x40), 0x20, 8));
        assert_eq!(m.fhandle, Some(FileHandle { handle_type: 1, bytes: "0a629b000447fdb5".into() }));
        assert_eq!(m.dev(), Some(crate::facts::DevNum { major: 254, minor: 0 }));
        assert_eq!(
            (g.marks[1].target.as_str(), g.marks[1].sdev, g.marks[1].ino),
            ("filesystem", Some(0xfe00000), None)
        );
        // Older facts without the object still read.
        let old: FanotifyMark = serde_json::from_str(r#"{"target": "inode", "mask": 1, "ignored_mask": 0}"#).unwrap();
        assert_eq!(old, FanotifyMark { target: "inode".into(), mask: 1, ..FanotifyMark::default() });
        assert!(f.fits(Kind::Fanotify) && !f.fits(Kind::Inotify));
        let p = FdInfo::parse("pos:\t0\nflags:\t02000002\nPid:\t4242\nNSpid:\t4242\n");
        assert_eq!(p.pidfd_pid, Some(4242));
        assert!(p.fits(Kind::Pidfd) && !p.fits(Kind::File));
        assert!(p.fits(Kind::Anon), "an unknown anonymous inode may print any line");
        assert_eq!(FdInfo::parse("tty-index:\t3\n").tty_index, Some(3));
    }

    #[test]
    fn inotify_file_handles() {
        // As this kernel prints them: a watch on ext4 (254:0 is sdev fe00000) and one on tmpfs (0:27).
        let text = "pos:\t0\nflags:\t02004000\nmnt_id:\t17\nino:\t1038\n\
                    inotify wd:5 ino:9b2521 sdev:fe00000 mask:4 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:21259B00b5a9723e\n\
                    inotify wd:4 ino:1 sdev:1b mask:80000020 ignored_mask:0 fhandle-bytes:c fhandle-type:81 f_handle:983ce4800100000000000000\n\
                    inotify wd:3 ino:2 sdev:1b mask:2 ignored_mask:0\n\
                    inotify wd:2 ino:3 sdev:1b mask:2 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e803\n\
                    inotify wd:1 ino:4 sdev:1b mask:2 ignored_mask:0 fhandle-bytes:2 fhandle-type:1 f_handle:+f00\n";
        let watches = FdInfo::parse(text).inotify;
        let handles: Vec<_> = watches.iter().map(|w| (w.wd, w.fhandle.clone())).collect();
        assert_eq!(
            handles,
            vec![
                (5, Some(FileHandle { handle_type: 1, bytes: "21259b00b5a9723e".into() })),
                (4, Some(FileHandle { handle_type: 0x81, bytes: "983ce4800100000000000000".into() })),
                (3, None),
                (2, None),
                (1, None),
            ]
        );
        assert_eq!((watches[0].sdev >> 20, watches[0].sdev & 0xfffff), (254, 0));
        assert_eq!(watches[1].mask, 0x8000_0020);
        assert_eq!(watches[1].fhandle.as_ref().and_then(FileHandle::decode).map(|b| b.len()), Some(12));
        assert_eq!(FileHandle { handle_type: 1, bytes: "+f".into() }.decode(), None);
        assert_eq!(FileHandle { handle_type: 1, bytes: "abc".into() }.decode(), None);
        // The JSON shape: the handle is an optional object, left out when there is none, and older facts
        // without it still read.
        let json = serde_json::to_value(&watches[..3]).unwrap();
        assert_eq!(json[0]["fhandle"], serde_json::json!({"type": 1, "bytes": "21259b00b5a9723e"}));
        assert!(json[2].get("fhandle").is_none(), "{json}");
        let old: InotifyWatch = serde_json::from_str(r#"{"wd": 1, "ino": 2, "sdev": 27, "mask": 2}"#).unwrap();
        assert_eq!(old.fhandle, None);
    }

    #[test]
    fn garbage_never_panics() {
        for text in ["", ":", "pos:", "flags:\t9", "tfd:", "inotify ", "fanotify ", "lock:\t", "it_value: (", "\u{0}"] {
            let info = FdInfo::parse(text);
            assert_eq!(info.flags, None, "{text:?}");
        }
    }
}

#[cfg(test)]
mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text(text in "(pos|flags|ino|lock|tfd|inotify|fanotify|eventfd-count|it_value|sigmask|Pid|[ :\t\n()0-9a-fxEOF,-]){0,40}") {
            let info = FdInfo::parse(&text);
            let _ = info.fits(Kind::Eventfd);
            info.apply(&mut FdFacts::new(3, Kind::Epoll, "anon_inode:[eventpoll]"));
        }
    }
}
