//! The plugin as CRIU 4.2 drives it, without CRIU: this test executable stands in for the `criu` binary
//! (it exports `criu_get_image_dir`, `print_on_level` and a 13-hook `cr_plugin_ctl`, linked `-rdynamic` by
//! build.rs), loads the plugin with `dlopen`, reads its descriptor, and calls init, the dump hook with real
//! fds, exit, init for the restore stage and the restore hook, checking the record files in a real image
//! directory and the fds that come back.
#![expect(unsafe_code, reason = "stands in for CRIU: exports C functions the plugin resolves with dlsym")]

mod common;

use common::{Loaded, STAGE_DUMP, STAGE_RESTORE};
use serde_json::{Value, json};
use std::ffi::{CStr, c_char, c_int, c_uint};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

const ENOTSUP: c_int = -libc::ENOTSUP;

/// The image directory `criu_get_image_dir` returns.
static IMAGE_DIR: AtomicI32 = AtomicI32::new(-1);
/// Every line the plugin logged: (level, text).
static LOG: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());
/// One CRIU run at a time: the plugin's state, the log and the environment are process-wide.
static RUN: Mutex<()> = Mutex::new(());

/// CRIU's `int criu_get_image_dir(void)`.
#[unsafe(no_mangle)]
pub extern "C" fn criu_get_image_dir() -> c_int {
    IMAGE_DIR.load(Ordering::SeqCst)
}

/// CRIU's `void print_on_level(unsigned int, const char *, ...)`, as the plugin calls it: `"%s"` and one
/// string (a variadic call reads its first arguments where a plain call does, on x86-64 and aarch64).
#[unsafe(no_mangle)]
///
/// # Safety
/// `format` and `message` are NUL-terminated strings.
pub unsafe extern "C" fn print_on_level(level: c_uint, format: *const c_char, message: *const c_char) {
    // SAFETY: the caller (the plugin) passes two NUL-terminated strings.
    let (format, message) = unsafe { (CStr::from_ptr(format), CStr::from_ptr(message)) };
    let text = if format == c"%s" { message.to_string_lossy().into_owned() } else { format!("bad format {format:?}") };
    LOG.lock().unwrap_or_else(PoisonError::into_inner).push((level, text));
}

/// CRIU 4.2's hook table: a list head and 13 hook chains of two pointers each (224 bytes).
#[unsafe(no_mangle)]
pub static cr_plugin_ctl: [usize; 28] = [0; 28];

fn plugin() -> &'static Loaded {
    static PLUGIN: OnceLock<Loaded> = OnceLock::new();
    PLUGIN.get_or_init(common::load)
}

/// One CRIU run: an image directory, a policy root, and the log, for the time the guard lives.
struct Run {
    dir: PathBuf,
    _image: File,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Run {
    /// A run whose policy is the one under `root/etc/crrules/rules.d` (with `site` as `05-site.rules`),
    /// over the built-in default policy.
    fn new(name: &str, site: Option<&str>) -> Run {
        let guard = RUN.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = common::temp_base().join(format!("crrules-criu-abi-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("images")).unwrap();
        let rules = dir.join("root/etc/crrules/rules.d");
        std::fs::create_dir_all(&rules).unwrap();
        if let Some(text) = site {
            std::fs::write(rules.join("05-site.rules"), text).unwrap();
        }
        // SAFETY: runs are serialised by `RUN`, and nothing else in this process reads the environment meanwhile.
        unsafe { std::env::set_var("CRRULES_ROOT", dir.join("root")) };
        let image = File::open(dir.join("images")).unwrap();
        IMAGE_DIR.store(image.as_raw_fd(), Ordering::SeqCst);
        LOG.lock().unwrap_or_else(PoisonError::into_inner).clear();
        Run { dir, _image: image, _one_at_a_time: guard }
    }

    fn images(&self) -> PathBuf {
        self.dir.join("images")
    }

    fn record(&self, id: u32) -> Value {
        let text = std::fs::read_to_string(self.images().join(format!("crrules-ext-{id}.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn records(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.images())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The lines logged since the last call.
    fn log(&self) -> Vec<(u32, String)> {
        std::mem::take(&mut *LOG.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        IMAGE_DIR.store(-1, Ordering::SeqCst);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stat(fd: &OwnedFd) -> libc::stat {
    nix::sys::stat::fstat(fd).unwrap()
}

/// (mode type bits, major, minor) of an fd.
fn identity(fd: &OwnedFd) -> (u32, u32, u32) {
    let st = stat(fd);
    (st.st_mode & libc::S_IFMT, libc::major(st.st_rdev), libc::minor(st.st_rdev))
}

fn offset(fd: &OwnedFd) -> i64 {
    // SAFETY: lseek with integer arguments.
    unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_CUR) }
}

fn fd_flags(fd: &OwnedFd) -> (c_int, c_int) {
    // SAFETY: fcntl with integer arguments.
    unsafe { (libc::fcntl(fd.as_raw_fd(), libc::F_GETFL), libc::fcntl(fd.as_raw_fd(), libc::F_GETFD)) }
}

/// Takes ownership of an fd a restore hook returned.
fn returned(fd: c_int) -> OwnedFd {
    assert!(fd >= 0, "the restore hook failed: {fd}");
    // SAFETY: the hook returned a new fd, which the caller (as CRIU) owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[test]
fn the_descriptor_reads_as_criu_4_2_reads_it() {
    assert!(common::plugin_path().ends_with(common::SO_NAME));
    let plugin = plugin();
    let d = plugin.desc;
    assert_eq!(plugin.name(), "crrules");
    assert_eq!(d.version, 512, "plugin ABI 0.2.0");
    // CRIU refuses a plugin whose max_hooks exceeds its own hook count, and reads hooks[0..max_hooks].
    assert_eq!(d.max_hooks, 4);
    assert!(d.init.is_some() && d.exit.is_some());
    let set: Vec<usize> = (0..13).filter(|&i| !d.hooks[i].is_null()).collect();
    assert_eq!(set, [2, 3], "DUMP_EXT_FILE and RESTORE_EXT_FILE only");
}

#[test]
fn dev_null_and_a_file_are_saved_at_dump_and_come_back_at_restore() {
    let run = Run::new("null", None);
    let plugin = plugin();
    let null = File::options().append(true).open("/dev/null").unwrap();
    let data = run.dir.join("data");
    std::fs::write(&data, "0123456789").unwrap();
    let file = File::options().read(true).write(true).open(&data).unwrap();
    let file = OwnedFd::from(file);
    // SAFETY: lseek with integer arguments, on an fd this test owns.
    assert_eq!(unsafe { libc::lseek(file.as_raw_fd(), 5, libc::SEEK_SET) }, 5);

    assert_eq!(plugin.init(STAGE_DUMP), 0);
    assert_eq!(run.log(), [(4, "crrules: loaded for the dump stage (13 plugin hooks: supported)\n".to_owned())]);
    assert_eq!(plugin.dump(null.as_raw_fd(), 7), 0);
    assert_eq!(plugin.dump(file.as_raw_fd(), 12), 0);
    assert_eq!(
        run.log(),
        [
            (3, "crrules: file 0x7 (/dev/null 1:3) saved for reopen path by <builtin>/10-devices.rules:8\n".to_owned()),
            (
                3,
                format!(
                    "crrules: file 0xc ({}) saved for reopen path by <builtin>/20-files.rules:29\n",
                    data.display()
                )
            ),
        ]
    );
    assert_eq!(run.records(), ["crrules-ext-12.json", "crrules-ext-7.json"]);
    assert_eq!(
        run.record(7),
        json!({
            "format": "crrules-criu-ext", "version": 1, "id": 7, "kind": "chardev",
            "link": "/dev/null", "path": "/dev/null",
            "flags": ["O_WRONLY", "O_APPEND", "O_LARGEFILE"], "pos": 0,
            "file_type": "char", "dev": "1:3",
            "decision": {"action": "reopen", "rule": "<builtin>/10-devices.rules:8"}
        })
    );
    let record = run.record(12);
    assert_eq!((record["path"].as_str(), record["pos"].as_u64()), (data.to_str(), Some(5)));
    assert_eq!((record["file_type"].as_str(), record.get("dev")), (Some("regular"), None));
    assert_eq!(record["flags"], json!(["O_RDWR", "O_LARGEFILE"]));
    let mode = std::fs::metadata(run.images().join("crrules-ext-7.json")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);
    plugin.exit(STAGE_DUMP, 0);

    assert_eq!(plugin.init(STAGE_RESTORE), 0);
    run.log();
    let back = returned(plugin.restore(7));
    assert_eq!(identity(&back), (libc::S_IFCHR, 1, 3));
    let (fl, fd) = fd_flags(&back);
    assert_eq!((fl & libc::O_ACCMODE, fl & libc::O_APPEND != 0), (libc::O_WRONLY, true));
    assert_eq!(fd & libc::FD_CLOEXEC, 0, "returned without close-on-exec");
    assert_eq!(offset(&back), 0);
    let back = returned(plugin.restore(12));
    assert_eq!((identity(&back).0, offset(&back)), (libc::S_IFREG, 5));
    assert_eq!(fd_flags(&back).0 & libc::O_ACCMODE, libc::O_RDWR);
    // A file id without a record is another plugin's.
    assert_eq!(plugin.restore(8), ENOTSUP);
    let log = run.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        log[0],
        (3, "crrules: file 0x7 (/dev/null) reopened at offset 0 as <builtin>/10-devices.rules:8 decided\n".to_owned())
    );
    plugin.exit(STAGE_RESTORE, 0);
    // After exit, every hook declines.
    assert_eq!(plugin.restore(7), ENOTSUP);
}

#[test]
fn a_site_rule_decides_first_and_other_decisions_decline_with_their_reason() {
    let run = Run::new("site", Some("chardev 1:3 => reject \"the site keeps /dev/null out of checkpoints\"\n"));
    let plugin = plugin();
    let null = File::open("/dev/null").unwrap();
    let (read, _write) = nix::unistd::pipe().unwrap();
    assert_eq!(plugin.init(STAGE_DUMP), 0);
    run.log();
    assert_eq!(plugin.dump(null.as_raw_fd(), 3), ENOTSUP);
    assert_eq!(plugin.dump(read.as_raw_fd(), 4), ENOTSUP);
    let site = run.dir.join("root/etc/crrules/rules.d/05-site.rules");
    let ino = stat(&read).st_ino;
    assert_eq!(
        run.log(),
        [
            (
                2,
                format!(
                    "crrules: file 0x3 (/dev/null 1:3): {}:1 decides reject: the site keeps /dev/null out of \
                     checkpoints\n",
                    site.display()
                )
            ),
            (
                2,
                format!(
                    "crrules: file 0x4 (pipe:[{ino}]): <builtin>/30-ipc.rules:11 decides recreate: buffered data is \
                     copied; both ends come back connected when both are checkpointed\n"
                )
            ),
        ]
    );
    assert!(run.records().is_empty());
    plugin.exit(STAGE_DUMP, 0);
}

#[test]
fn a_device_that_changed_fails_the_restore_with_what_it_now_is() {
    let run = Run::new("changed", None);
    let plugin = plugin();
    let null = File::open("/dev/null").unwrap();
    assert_eq!(plugin.init(STAGE_DUMP), 0);
    assert_eq!(plugin.dump(null.as_raw_fd(), 5), 0);
    plugin.exit(STAGE_DUMP, 0);
    // The record says 1:5: /dev/null (1:3) is then not the device that was dumped.
    let name = run.images().join("crrules-ext-5.json");
    let text = std::fs::read_to_string(&name).unwrap().replace("\"1:3\"", "\"1:5\"");
    std::fs::write(&name, text).unwrap();
    assert_eq!(plugin.init(STAGE_RESTORE), 0);
    run.log();
    assert_eq!(plugin.restore(5), -libc::EINVAL);
    assert_eq!(run.log(), [(1, "crrules: file 0x5: /dev/null: the device is now char 1:3, not 1:5\n".to_owned())]);
    // A record that is not one: an error, not a panic.
    std::fs::write(&name, "{\"format\": 1").unwrap();
    assert_eq!(plugin.restore(5), -libc::EINVAL);
    assert!(run.log()[0].1.starts_with("crrules: file 0x5: crrules-ext-5.json is not a crrules record: "));
    plugin.exit(STAGE_RESTORE, 0);
}

#[test]
fn closed_and_invalid_fd_numbers_are_declined_without_a_panic() {
    let run = Run::new("closed", None);
    let plugin = plugin();
    assert_eq!(plugin.init(STAGE_DUMP), 0);
    run.log();
    let closed = {
        let f = File::open("/dev/null").unwrap();
        f.as_raw_fd()
    };
    assert_eq!(plugin.dump(closed, 1), ENOTSUP);
    assert_eq!(plugin.dump(-1, 2), ENOTSUP);
    assert_eq!(plugin.dump(c_int::MAX, 3), ENOTSUP);
    let log = run.log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[1], (1, "crrules: file 0x2: CRIU's fd -1 is not open: declined\n".to_owned()));
    assert!(run.records().is_empty());
    plugin.exit(STAGE_DUMP, 0);
    // Hooks called without init (or after exit) decline too.
    assert_eq!(plugin.dump(0, 1), ENOTSUP);
}

#[test]
fn a_policy_that_cannot_be_loaded_declines_every_fd_and_never_aborts_criu() {
    let run = Run::new("broken", Some("chardev 1:3 => reopen path\nchardev 1:5 => teleport\n"));
    let plugin = plugin();
    let null = File::open("/dev/null").unwrap();
    assert_eq!(plugin.init(STAGE_DUMP), 0, "init never fails: that would abort CRIU");
    run.log();
    assert_eq!(plugin.dump(null.as_raw_fd(), 1), ENOTSUP);
    assert_eq!(plugin.dump(null.as_raw_fd(), 2), ENOTSUP);
    let log = run.log();
    let site = run.dir.join("root/etc/crrules/rules.d/05-site.rules");
    assert!(
        log[0].0 == 1 && log[0].1.starts_with(&format!("crrules: the policy cannot be loaded: {}:2: ", site.display())),
        "{log:?}"
    );
    let declined: Vec<&(u32, String)> = log.iter().filter(|(_, t)| t.contains("policy could not be loaded")).collect();
    assert_eq!(declined.len(), 2, "{log:?}");
    assert_eq!(
        declined[0],
        &(2, "crrules: file 0x1 (/dev/null 1:3): declined, the policy could not be loaded\n".to_owned())
    );
    assert!(run.records().is_empty());
    plugin.exit(STAGE_DUMP, 0);
}

/// The policy root the runs use exists; a root that does not is a load error like any other.
#[test]
fn a_missing_policy_root_is_logged() {
    let run = Run::new("noroot", None);
    // SAFETY: serialised by the run's guard.
    unsafe { std::env::set_var("CRRULES_ROOT", Path::new("/nonexistent/crrules-root")) };
    let plugin = plugin();
    let null = File::open("/dev/null").unwrap();
    assert_eq!(plugin.init(STAGE_DUMP), 0);
    run.log();
    assert_eq!(plugin.dump(null.as_raw_fd(), 1), ENOTSUP);
    let log = run.log();
    assert!(log[0].1.contains("policy root `/nonexistent/crrules-root` does not exist"), "{log:?}");
    plugin.exit(STAGE_DUMP, 0);
}
