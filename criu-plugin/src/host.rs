//! What the plugin needs from the CRIU that loaded it ([`Host`]: its image directory and its log), and
//! whether that CRIU calls the hooks the way this build declares them ([`Compat`]).

use std::os::fd::BorrowedFd;

/// CRIU's log levels, as `print_on_level` takes them. A message above the level CRIU runs with (`-v`) is
/// not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// The CRIU the plugin runs in: the real one through its exported functions, or a test's stand-in.
pub trait Host {
    /// CRIU's image directory (`criu_get_image_dir()`), open for the duration of a hook call.
    fn image_dir(&self) -> Option<BorrowedFd<'_>>;
    /// Writes one line to CRIU's log; `message` has no newline.
    fn log(&self, level: Level, message: &str);
}

/// The entries of the hook table of the plugin ABI this build implements (CRIU 4.2's
/// `CR_PLUGIN_HOOK__MAX`).
pub const HOOKS_4_2: usize = 13;

/// Whether the running CRIU calls `RESTORE_EXT_FILE` as `int (int id)`, told by the number of entries of
/// its hook table (the exported `cr_plugin_ctl` holds a list head and one chain per hook). Releases up to
/// 4.2 have at most 13 hooks and that signature (4.0 and 4.1 have 12). CRIU's development branch after
/// 4.2 added hooks 13 and 14 together with a `bool *retry_needed` argument, which it reads after the
/// call without initialising it: a plugin that leaves it alone may see its fd dropped and the restore
/// retried, so the plugin declines in such a CRIU instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compat {
    /// A CRIU with this many hooks (at most [`HOOKS_4_2`]): the hooks are called as declared.
    Supported { hooks: usize },
    /// A later CRIU with this many hooks: its restore hook passes a flag this build does not set.
    Newer { hooks: usize },
    /// The hook table was not found (no `cr_plugin_ctl`, or a size that is no table).
    Unknown,
}

impl Compat {
    /// The compatibility of a CRIU whose hook table has `hooks` entries, if known.
    pub fn of_hooks(hooks: Option<usize>) -> Compat {
        match hooks {
            Some(hooks) if hooks <= HOOKS_4_2 => Compat::Supported { hooks },
            Some(hooks) => Compat::Newer { hooks },
            None => Compat::Unknown,
        }
    }

    /// The number of hooks of a table of `bytes` bytes (`struct { list_head head; list_head
    /// hook_chain[N]; }`, a list head being two pointers).
    pub fn hooks_of_table_size(bytes: usize) -> Option<usize> {
        let head = 2 * size_of::<usize>();
        (bytes >= 2 * head && bytes % head == 0).then(|| bytes / head - 1)
    }

    /// Why the plugin declines everything in this CRIU, if it does.
    pub fn problem(self) -> Option<String> {
        match self {
            Compat::Supported { .. } => None,
            Compat::Newer { hooks } => Some(format!(
                "this CRIU has {hooks} plugin hooks, not CRIU 4.2's {HOOKS_4_2}: its RESTORE_EXT_FILE takes a \
                 `bool *retry_needed` that this build of the plugin does not set; the crrules plugin supports \
                 CRIU releases up to 4.2"
            )),
            Compat::Unknown => Some(
                "cannot tell which plugin ABI this CRIU has (its hook table `cr_plugin_ctl` was not found): \
                 the crrules plugin supports CRIU releases up to 4.2"
                    .to_owned(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn hook_tables_tell_the_abi() {
        // CRIU 4.2's `cr_plugin_ctl` is 0xe0 bytes on x86-64; 4.1's 0xd0; the development branch's 0x100.
        assert_eq!(Compat::hooks_of_table_size(0xe0), Some(13));
        assert_eq!(Compat::of_hooks(Compat::hooks_of_table_size(0xe0)), Compat::Supported { hooks: 13 });
        assert_eq!(Compat::of_hooks(Compat::hooks_of_table_size(0xd0)), Compat::Supported { hooks: 12 });
        assert_eq!(Compat::of_hooks(Compat::hooks_of_table_size(0x100)), Compat::Newer { hooks: 15 });
        assert_eq!(Compat::hooks_of_table_size(0), None);
        assert_eq!(Compat::hooks_of_table_size(0xe1), None);
        assert_eq!(Compat::of_hooks(None), Compat::Unknown);
        assert!(Compat::Supported { hooks: 13 }.problem().is_none());
        assert!(Compat::Newer { hooks: 15 }.problem().unwrap().contains("up to 4.2"));
        assert!(Compat::Unknown.problem().is_some());
    }
}
