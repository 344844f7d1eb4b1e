//! The only module that reads `/proc` and makes syscalls.
