//! The crrules engine: from a process to a backend, in one pipeline.
//!
//! ```text
//!  Source ──ProcessScan──> Decider ──ProcessPlan──> Backend
//!  (live pids, a tree,      (rule set +             (table, JSON/RON, summary;
//!   every process, a         compiled matcher)       fd-table dump, CRIU options...)
//!   facts file)
//! ```
//!
//! [`pipeline::run`] drives it: it asks the [`plan::Decider`] and the [`backend::Backend`] which facts they
//! need ([`needs::ScanOptions`]), pulls each process from the [`source::Source`], decides every fd, and
//! hands the plan on. A new way to find processes (a cgroup, a container) is a new `Source`; a new
//! consumer of decisions is a new `Backend`; neither touches the loop. Underneath: [`facts`] (what an fd
//! is, as data), [`scan`] (one process's fds, in parallel, in fd order), `proc` (private: the only code
//! that reads `/proc` and makes syscalls), [`matcher`] (the compiled matcher and the reference
//! interpreter it is proven against), [`plan`] (decisions, and the one serialised plan format) and
//! [`error`]. With the `fuzzing` feature, a hidden `fuzzing` module opens the private parsers to the fuzz
//! targets (`fuzz/`) and to the replay of their corpora (`tests/fuzz_corpus.rs`).

pub mod backend;
pub mod container;
pub mod criu;
pub mod dump;
pub mod error;
pub mod facts;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
mod link;
pub mod matcher;
pub mod needs;
pub mod pipeline;
pub mod plan;
mod proc;
pub mod restore;
pub mod scan;
pub mod source;
