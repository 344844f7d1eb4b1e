//! The plugin loaded by a program that is not CRIU (no `criu_get_image_dir` to find): init succeeds and
//! every hook declines, so whatever loaded it is never broken.

mod common;

use std::os::fd::AsRawFd;

#[test]
fn outside_criu_every_hook_declines() {
    let plugin = common::load();
    assert_eq!(plugin.init(common::STAGE_DUMP), 0);
    let null = std::fs::File::open("/dev/null").unwrap();
    assert_eq!(plugin.dump(null.as_raw_fd(), 1), -libc::ENOTSUP);
    plugin.exit(common::STAGE_DUMP, 0);
    assert_eq!(plugin.init(common::STAGE_RESTORE), 0);
    assert_eq!(plugin.restore(1), -libc::ENOTSUP);
    plugin.exit(common::STAGE_RESTORE, 0);
}
