//! Fuzz target: the bytes of one NETLINK_SOCK_DIAG `recv` -> sockets by inode
//! (`crrules_engine::fuzzing::sock_diag`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = crrules_engine::fuzzing::sock_diag(data);
});
