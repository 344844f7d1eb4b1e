//! The honest floor of a restore of reopened files, as a whole process, for timing beside `crrules restore`
//! and `criu restore` with hyperfine: `restorefloor LIST -- COMMAND [ARGS...]` reads LIST (lines `FD PATH`,
//! written beforehand from an image's manifest), and for each line makes only the system calls a verified
//! reopen needs (`openat2` with `RESOLVE_NO_SYMLINKS`, `fstat`, and `dup3` to FD when the kernel gave
//! another number), then execs COMMAND. No image, no checksums, no policy: what is left is what any
//! restorer of these fds must do.
// Raw system calls (openat2, dup3), each on values owned here.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::unix::process::CommandExt;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(list), Some(dash)) = (args.first(), args.iter().position(|a| a == "--")) else {
        eprintln!("usage: restorefloor LIST -- COMMAND [ARGS...]");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(list).expect("the list");
    for line in text.lines() {
        let Some((fd, path)) = line.split_once(' ') else { continue };
        let fd: i32 = fd.parse().expect("an fd number");
        let path = CString::new(path).expect("a path");
        // SAFETY: an all-zero open_how is valid; `how` and `path` live through the call.
        let opened = unsafe {
            let mut how: libc::open_how = std::mem::zeroed();
            how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
            how.resolve = libc::RESOLVE_NO_SYMLINKS;
            libc::syscall(libc::SYS_openat2, libc::AT_FDCWD, path.as_ptr(), &how, std::mem::size_of::<libc::open_how>())
                as i32
        };
        assert!(opened >= 0, "open {path:?}: {}", std::io::Error::last_os_error());
        // SAFETY: fstat into a struct owned here; dup3 and close on fds this process owns.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(opened, &mut st);
            if opened != fd {
                libc::dup3(opened, fd, 0);
                libc::close(opened);
            }
        }
    }
    let e = std::process::Command::new(&args[dash + 1]).args(&args[dash + 2..]).exec();
    eprintln!("restorefloor: {e}");
    std::process::exit(1);
}
