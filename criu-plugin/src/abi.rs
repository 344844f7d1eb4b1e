//! The C boundary, and the plugin's only unsafe code: `CR_PLUGIN_DESC`, the descriptor CRIU looks up
//! after `dlopen` (laid out as CRIU 4.2's `cr_plugin_desc_t`), the four functions it calls, and the CRIU
//! functions the plugin calls back (`criu_get_image_dir`, `print_on_level`), found in the running program
//! with `dlsym(RTLD_DEFAULT, ...)` at `init`. A program without `criu_get_image_dir` is not CRIU: the
//! plugin then declines every fd and logs nothing. Every entry point runs behind `catch_unwind` and
//! returns an errno on a panic (`-ENOTSUP` declines); none ever unwinds into C.
#![expect(
    unsafe_code,
    reason = "the C boundary: an exported descriptor of raw pointers, and C functions found by dlsym"
)]

use crate::host::{Compat, Host, Level};
use crate::plugin::Plugin;
use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::os::fd::{BorrowedFd, IntoRawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The plugin ABI version, `CRIU_PLUGIN_GEN_VERSION(0, 2, 0)`: `(major << 16) + (minor << 8) + sub`.
pub const PLUGIN_VERSION: c_uint = 2 << 8;
/// The hook slots of CRIU 4.2's descriptor (`CR_PLUGIN_HOOK__MAX`).
pub const HOOK_SLOTS: usize = crate::host::HOOKS_4_2;
/// `CR_PLUGIN_HOOK__DUMP_EXT_FILE`: `int (int fd, int id)`.
pub const DUMP_EXT_FILE: usize = 2;
/// `CR_PLUGIN_HOOK__RESTORE_EXT_FILE`: `int (int id)` up to CRIU 4.2.
pub const RESTORE_EXT_FILE: usize = 3;
/// How many of `hooks` CRIU reads: up to the last one set. CRIU refuses a plugin whose `max_hooks` exceeds
/// its own hook count (and then aborts the whole run), so 4 rather than 13 lets CRIU 4.0 and 4.1 (12 hooks)
/// load the plugin too.
pub const MAX_HOOKS: c_uint = RESTORE_EXT_FILE as c_uint + 1;

/// CRIU's `cr_plugin_desc_t` (v4.2 `criu/include/criu-plugin.h`): on x86-64, 136 bytes with `version` at
/// offset 24 and `hooks` at 32 (what `offsetof` gives for the header compiled with gcc).
#[repr(C)]
#[derive(Debug)]
pub struct PluginDesc {
    pub name: *const c_char,
    pub init: extern "C" fn(stage: c_int) -> c_int,
    pub exit: extern "C" fn(stage: c_int, ret: c_int),
    pub version: c_uint,
    pub max_hooks: c_uint,
    pub hooks: [*const c_void; HOOK_SLOTS],
}

/// The descriptor as a `static`: a [`PluginDesc`], shareable between threads.
#[repr(transparent)]
#[derive(Debug)]
pub struct Descriptor(pub PluginDesc);

// SAFETY: the descriptor is never written; its pointers name a static string and functions, which are
// valid from every thread.
unsafe impl Sync for Descriptor {}

/// The symbol CRIU looks up in every plugin it loads.
#[unsafe(no_mangle)]
pub static CR_PLUGIN_DESC: Descriptor = Descriptor(PluginDesc {
    name: c"crrules".as_ptr(),
    init,
    exit,
    version: PLUGIN_VERSION,
    max_hooks: MAX_HOOKS,
    hooks: hooks(),
});

const fn hooks() -> [*const c_void; HOOK_SLOTS] {
    let mut hooks = [std::ptr::null(); HOOK_SLOTS];
    hooks[DUMP_EXT_FILE] = dump_ext_file as extern "C" fn(c_int, c_int) -> c_int as *const c_void;
    hooks[RESTORE_EXT_FILE] = restore_ext_file as extern "C" fn(c_int) -> c_int as *const c_void;
    hooks
}

/// `print_on_level(unsigned int loglevel, const char *format, ...)`.
type PrintOnLevel = unsafe extern "C" fn(c_uint, *const c_char, ...);
/// `int criu_get_image_dir(void)`.
type GetImageDir = unsafe extern "C" fn() -> c_int;

/// The CRIU this process is: its exported functions, and whether it calls the hooks as declared.
struct Criu {
    image_dir: GetImageDir,
    print: Option<PrintOnLevel>,
    compat: Compat,
}

impl Host for Criu {
    fn image_dir(&self) -> Option<BorrowedFd<'_>> {
        // SAFETY: CRIU's own function, taking nothing; it returns its image directory's service fd.
        let fd = unsafe { (self.image_dir)() };
        // SAFETY: CRIU keeps its image directory open as a service fd for the whole run; the borrow ends
        // with the hook call that holds `self`.
        is_open(fd).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
    }

    fn log(&self, level: Level, message: &str) {
        let Some(print) = self.print else { return };
        let line = CString::new(format!("{message}\n").replace('\0', "\\0")).unwrap_or_default();
        // SAFETY: CRIU's printf-like logger, given the format "%s" and one NUL-terminated string for it.
        unsafe { print(level as c_uint, c"%s".as_ptr(), line.as_ptr()) };
    }
}

/// The plugin between `init` and `exit`.
enum State {
    /// Loaded by a program that is not CRIU: every hook declines, silently.
    Inert,
    Active {
        criu: Criu,
        plugin: Box<Plugin>,
    },
}

/// `None` before `init` and after `exit`: every hook declines.
static STATE: Mutex<Option<State>> = Mutex::new(None);

fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A symbol of the running program (the `criu` binary exports its functions), or null.
fn symbol(name: &CStr) -> *mut c_void {
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the global scope.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// CRIU's functions, if this process is CRIU.
fn find_criu() -> Option<Criu> {
    let image_dir = symbol(c"criu_get_image_dir");
    if image_dir.is_null() {
        return None;
    }
    // SAFETY: CRIU's `int criu_get_image_dir(void)` (criu-plugin.h), found by its name.
    let image_dir = unsafe { std::mem::transmute::<*mut c_void, GetImageDir>(image_dir) };
    let print = symbol(c"print_on_level");
    // SAFETY: CRIU's `void print_on_level(unsigned int, const char *, ...)`, found by its name.
    let print = (!print.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, PrintOnLevel>(print) });
    let hooks = symbol_size(symbol(c"cr_plugin_ctl")).and_then(Compat::hooks_of_table_size);
    Some(Criu { image_dir, print, compat: Compat::of_hooks(hooks) })
}

/// The size of the data symbol at `addr`, from the symbol table of the object holding it.
#[cfg(all(target_env = "gnu", target_pointer_width = "64"))]
fn symbol_size(addr: *mut c_void) -> Option<usize> {
    /// `RTLD_DL_SYMENT` (glibc's dlfcn.h): `dladdr1` also returns the symbol's `ElfW(Sym)`.
    const RTLD_DL_SYMENT: c_int = 1;
    if addr.is_null() {
        return None;
    }
    // SAFETY: an all-zero Dl_info is valid (null pointers), and dladdr1 overwrites it.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut entry: *mut c_void = std::ptr::null_mut();
    // SAFETY: `info` and `entry` are valid for writing; `addr` is only compared with symbol addresses.
    let found = unsafe { libc::dladdr1(addr, &mut info, &mut entry, RTLD_DL_SYMENT) };
    if found == 0 || entry.is_null() || info.dli_saddr != addr {
        return None;
    }
    // SAFETY: with RTLD_DL_SYMENT, `entry` points at the symbol's entry in the loaded object's dynamic symbol
    // table, an `Elf64_Sym` valid while the object (here the program itself) stays loaded.
    let sym = unsafe { &*(entry as *const libc::Elf64_Sym) };
    usize::try_from(sym.st_size).ok()
}

#[cfg(not(all(target_env = "gnu", target_pointer_width = "64")))]
fn symbol_size(_addr: *mut c_void) -> Option<usize> {
    None
}

/// True when `fd` is an open fd of this process.
fn is_open(fd: c_int) -> bool {
    // SAFETY: fcntl with integer arguments; a closed or negative number fails with EBADF.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

/// Runs a hook's body, turning a panic into `-ENOTSUP` (logged when CRIU is there to hear it).
fn guarded(hook: &str, body: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(ret) => ret,
        Err(_) => {
            let _ = catch_unwind(|| {
                if let Some(State::Active { criu, .. }) = state().as_ref() {
                    criu.log(
                        Level::Error,
                        &format!("crrules: internal error in {hook} (a bug; please report it): declined"),
                    );
                }
            });
            -libc::ENOTSUP
        }
    }
}

fn stage_name(stage: c_int) -> &'static str {
    match stage {
        0 => "dump",
        1 => "pre-dump",
        2 => "restore",
        _ => "unknown",
    }
}

/// `init(stage)`: finds CRIU's functions; always 0 (a non-zero result would abort CRIU). The policy is
/// not read here but at the first dump call.
extern "C" fn init(stage: c_int) -> c_int {
    let _ = guarded("init", || {
        let state = match find_criu() {
            Some(criu) => {
                let abi = match criu.compat {
                    Compat::Supported { hooks } => format!("{hooks} plugin hooks: supported"),
                    _ => "declining every fd, see below".to_owned(),
                };
                criu.log(Level::Debug, &format!("crrules: loaded for the {} stage ({abi})", stage_name(stage)));
                State::Active { criu, plugin: Box::new(Plugin::from_env()) }
            }
            None => State::Inert,
        };
        *self::state() = Some(state);
        0
    });
    0
}

/// `exit(stage, ret)`: drops the state (and the policy) of this run.
extern "C" fn exit(_stage: c_int, _ret: c_int) {
    let _ = guarded("exit", || {
        *state() = None;
        0
    });
}

/// `DUMP_EXT_FILE(fd, id)`: 0 when the plugin saved file `id` for a restore, `-ENOTSUP` to decline.
extern "C" fn dump_ext_file(fd: c_int, id: c_int) -> c_int {
    guarded("DUMP_EXT_FILE", || {
        let mut state = state();
        let Some(State::Active { criu, plugin }) = state.as_mut() else { return -libc::ENOTSUP };
        let id = id as u32;
        if let Some(problem) = criu.compat.problem() {
            criu.log(Level::Error, &format!("crrules: file {id:#x}: declined: {problem}"));
            return -libc::ENOTSUP;
        }
        if !is_open(fd) {
            criu.log(Level::Error, &format!("crrules: file {id:#x}: CRIU's fd {fd} is not open: declined"));
            return -libc::ENOTSUP;
        }
        // SAFETY: `fd` is open (checked just now) and CRIU's: it stays open until the hook returns, and the
        // plugin never closes it.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        match plugin.dump(criu, fd, id) {
            Ok(()) => 0,
            Err(e) => -(e as c_int),
        }
    })
}

/// `RESTORE_EXT_FILE(id)`: a new fd for file `id` (CRIU moves it to its number and sets its fd flags),
/// `-ENOTSUP` when the file is not the plugin's, another negative errno when it cannot be brought back.
extern "C" fn restore_ext_file(id: c_int) -> c_int {
    guarded("RESTORE_EXT_FILE", || {
        let state = state();
        let Some(State::Active { criu, plugin }) = state.as_ref() else { return -libc::ENOTSUP };
        let id = id as u32;
        if let Some(problem) = criu.compat.problem() {
            if criu.image_dir().is_some_and(|dir| crate::record::exists(dir, id)) {
                criu.log(Level::Error, &format!("crrules: file {id:#x}: declined: {problem}"));
            }
            return -libc::ENOTSUP;
        }
        match plugin.restore(criu, id) {
            Ok(fd) => {
                // Returned as an open would return it; CRIU sets the fd flags of the number it moves it to.
                let _ = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()));
                fd.into_raw_fd()
            }
            Err(e) => -(e as c_int),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_descriptor_is_laid_out_as_criu_4_2_reads_it() {
        assert_eq!(size_of::<PluginDesc>(), 136);
        assert_eq!(std::mem::offset_of!(PluginDesc, name), 0);
        assert_eq!(std::mem::offset_of!(PluginDesc, init), 8);
        assert_eq!(std::mem::offset_of!(PluginDesc, exit), 16);
        assert_eq!(std::mem::offset_of!(PluginDesc, version), 24);
        assert_eq!(std::mem::offset_of!(PluginDesc, max_hooks), 28);
        assert_eq!(std::mem::offset_of!(PluginDesc, hooks), 32);
        assert_eq!(size_of::<Descriptor>(), 136);
    }

    #[test]
    fn the_descriptor_names_two_hooks() {
        let d = &CR_PLUGIN_DESC.0;
        assert_eq!((d.version, d.max_hooks), (512, 4));
        // SAFETY: a static C string.
        assert_eq!(unsafe { CStr::from_ptr(d.name) }, c"crrules");
        let set: Vec<usize> = (0..HOOK_SLOTS).filter(|&i| !d.hooks[i].is_null()).collect();
        assert_eq!(set, [DUMP_EXT_FILE, RESTORE_EXT_FILE]);
    }

    #[test]
    fn hooks_decline_before_init() {
        assert_eq!(dump_ext_file(0, 1), -libc::ENOTSUP);
        assert_eq!(restore_ext_file(1), -libc::ENOTSUP);
    }
}
