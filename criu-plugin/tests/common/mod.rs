//! The plugin loaded as CRIU loads it: the shared object cargo built beside this test executable,
//! `dlopen`ed with `RTLD_LAZY`, its `CR_PLUGIN_DESC` read through the descriptor as CRIU 4.2's
//! `criu-plugin.h` declares it (not through the plugin's own Rust type), and its hooks called through
//! the header's function types.
#![expect(unsafe_code, reason = "calls into a dlopened shared object through raw pointers, as CRIU does")]
#![allow(dead_code, reason = "each test executable uses a part of it")]

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Where a test's policy root goes. As root, `/run/crrules-tests` (root's, mode 755): the plugin, run by
/// root, refuses a policy path that goes through a directory others can write, and `/tmp` is one (sticky:
/// anyone may create names in it). Otherwise the usual temporary directory, since nothing is refused then.
pub fn temp_base() -> PathBuf {
    if !nix::unistd::geteuid().is_root() {
        return std::env::temp_dir();
    }
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let base = PathBuf::from("/run/crrules-tests");
    let _ = std::fs::DirBuilder::new().mode(0o755).create(&base);
    let meta = std::fs::symlink_metadata(&base).expect("/run/crrules-tests");
    assert!(meta.is_dir() && meta.uid() == 0, "/run/crrules-tests must be a directory of root's");
    if meta.mode() & 0o022 != 0 {
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    base
}

/// The shared object's file name.
pub const SO_NAME: &str = "libcrrules_criu.so";

/// `cr_plugin_desc_t`, as criu-plugin.h (v4.2) declares it.
#[repr(C)]
pub struct CrPluginDesc {
    pub name: *const c_char,
    pub init: Option<extern "C" fn(c_int) -> c_int>,
    pub exit: Option<extern "C" fn(c_int, c_int)>,
    pub version: c_uint,
    pub max_hooks: c_uint,
    pub hooks: [*const c_void; 13],
}

/// `CR_PLUGIN_HOOK__DUMP_EXT_FILE_t`.
type DumpExtFile = extern "C" fn(c_int, c_int) -> c_int;
/// `CR_PLUGIN_HOOK__RESTORE_EXT_FILE_t` (v4.2).
type RestoreExtFile = extern "C" fn(c_int) -> c_int;

pub const STAGE_DUMP: c_int = 0;
pub const STAGE_RESTORE: c_int = 2;

/// The loaded plugin (never closed: CRIU closes it only at its own end).
pub struct Loaded {
    pub desc: &'static CrPluginDesc,
}

// SAFETY: the descriptor is read only; its pointers name a static string and functions, valid from every
// thread (the plugin serialises its own state).
unsafe impl Sync for Loaded {}
// SAFETY: as above.
unsafe impl Send for Loaded {}

/// Where cargo put the shared object: `target/<profile>/deps/` beside this test, or `target/<profile>/`.
pub fn plugin_path() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the deps directory");
    let candidates = [deps.join(SO_NAME), deps.parent().map(|p| p.join(SO_NAME)).unwrap_or_default()];
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| panic!("{SO_NAME} not found: {candidates:?}"))
}

/// `dlopen` + `dlsym("CR_PLUGIN_DESC")`, as CRIU's `cr_lib_load` does.
pub fn load() -> Loaded {
    let path = CString::new(plugin_path().as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; the library's initialisers are Rust's own.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_LAZY) };
    if handle.is_null() {
        // SAFETY: dlerror returns a C string describing the last failure.
        let why = unsafe { CStr::from_ptr(libc::dlerror()) };
        panic!("dlopen failed: {why:?}");
    }
    // SAFETY: a NUL-terminated symbol name, looked up in the handle just opened.
    let desc = unsafe { libc::dlsym(handle, c"CR_PLUGIN_DESC".as_ptr()) };
    assert!(!desc.is_null(), "no CR_PLUGIN_DESC");
    // SAFETY: the plugin's descriptor, laid out as the header says (what this test checks), never unloaded.
    Loaded { desc: unsafe { &*(desc as *const CrPluginDesc) } }
}

impl Loaded {
    /// The descriptor's name.
    pub fn name(&self) -> String {
        // SAFETY: the descriptor's name is a NUL-terminated static string.
        unsafe { CStr::from_ptr(self.desc.name) }.to_string_lossy().into_owned()
    }

    pub fn init(&self, stage: c_int) -> c_int {
        (self.desc.init.expect("init"))(stage)
    }

    pub fn exit(&self, stage: c_int, ret: c_int) {
        (self.desc.exit.expect("exit"))(stage, ret)
    }

    pub fn dump(&self, fd: c_int, id: c_int) -> c_int {
        let hook = self.desc.hooks[2];
        assert!(!hook.is_null());
        // SAFETY: hook 2 is DUMP_EXT_FILE, `int (int fd, int id)`.
        let hook = unsafe { std::mem::transmute::<*const c_void, DumpExtFile>(hook) };
        hook(fd, id)
    }

    pub fn restore(&self, id: c_int) -> c_int {
        let hook = self.desc.hooks[3];
        assert!(!hook.is_null());
        // SAFETY: hook 3 is RESTORE_EXT_FILE, `int (int id)` in CRIU 4.2.
        let hook = unsafe { std::mem::transmute::<*const c_void, RestoreExtFile>(hook) };
        hook(id)
    }
}
