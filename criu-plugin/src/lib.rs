//! The crrules CRIU plugin, `libcrrules_criu.so`: CRIU loads it from `-L DIR`, `$CRIU_LIBS_DIR` or
//! `/usr/lib/criu`, and offers it every fd CRIU cannot dump itself (a character device outside CRIU's list,
//! an unknown anonymous inode). The crrules policy decides each one: a `reopen` decision is saved in a
//! record of the plugin's own in CRIU's image directory and reopened, verified, at restore; any other
//! decision declines, with the rule's reason in CRIU's log, and CRIU's own error (or the next plugin)
//! speaks.
//!
//! ```text
//!  CRIU ──dlsym──> CR_PLUGIN_DESC (abi: the C boundary, the only unsafe code)
//!                     │ init / DUMP_EXT_FILE / RESTORE_EXT_FILE / exit, each behind catch_unwind
//!                     v
//!                  Plugin (plugin: policy loaded at the first dump call, decide, record) ──> Host (host:
//!                  CRIU's image directory and log, and whether this CRIU calls the hooks as built)
//! ```
//!
//! Which CRIU: the plugin ABI of CRIU 4.2 (version 0.2.0), whose `RESTORE_EXT_FILE` is `int (int id)`, the
//! same in every release up to 4.2. CRIU's development branch after 4.2 passes `(int id, bool
//! *retry_needed)` under the same version number and reads that flag after the call without setting it
//! first: such a CRIU is recognised at `init` by the size of its hook table and the plugin then declines
//! every fd, saying why in CRIU's log (see [`host::Compat`]).

mod abi;
pub mod host;
pub mod plugin;
pub mod record;

pub use abi::{CR_PLUGIN_DESC, Descriptor, PluginDesc};
pub use host::{Compat, Host, Level};
pub use plugin::Plugin;
