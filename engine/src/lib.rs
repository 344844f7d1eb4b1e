//! The crrules engine: [`facts`] (what an fd is, as data), [`proc`] (the only module that reads `/proc` and
//! makes syscalls), [`scan`] (a process's fds, in parallel, in fd order), [`matcher`] (rule set -> decision,
//! the compiled matcher and the reference interpreter), [`needs`] (which facts a policy needs, so
//! the scan reads no more), [`plan`] (decisions for a process) and
//! [`backend`] (where decisions go).

pub mod backend;
pub mod facts;
pub mod matcher;
pub mod needs;
pub mod plan;
pub mod proc;
pub mod scan;
