//! The one pipeline: for every process a [`Source`] yields, scan -> decide -> [`Backend`]. The scan reads
//! what the policy needs plus what the backend needs; without a [`Decider`] the plans carry facts alone.
//! A caller picks a source and a backend and maps the [`Outcome`] to what it reports; it never loops
//! over processes itself.

use crate::backend::Backend;
use crate::needs::ScanOptions;
use crate::plan::{Decider, ProcessPlan};
use crate::source::{Source, SourceError, Sourced};

/// What a run found, counted over the processes the source yielded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Processes decided checkpointable.
    pub checkpointable: usize,
    /// Processes with at least one rejected fd.
    pub rejected: usize,
    /// Processes read but not decided (a run without a decider).
    pub undecided: usize,
    /// Processes the source skipped (they exited, or could not be read) without stopping the run.
    pub skipped: usize,
}

impl Outcome {
    /// True when some process cannot be checkpointed.
    pub fn any_rejected(&self) -> bool {
        self.rejected > 0
    }
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E> {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The backend failed; its error is passed on as it is.
    #[error("the backend failed")]
    Backend(E),
}

/// Runs the pipeline: every process of `source`, decided by `decider` (or left undecided), handed to
/// `backend` in order; then the backend finishes. A source error stops the run before the backend
/// finishes, so a backend that commits on `finish` commits nothing.
pub fn run<B: Backend>(
    decider: Option<&Decider>,
    source: &mut dyn Source,
    mut backend: B,
) -> Result<Outcome, RunError<B::Error>> {
    let opts = match decider {
        Some(d) => d.needs().union(backend.needs()),
        None => ScanOptions::all(),
    };
    backend.begin(source.expected()).map_err(RunError::Backend)?;
    let mut outcome = Outcome::default();
    while let Some(item) = source.next(&opts) {
        match item? {
            Sourced::Process(scan) => {
                let plan = match decider {
                    Some(d) => d.plan(scan),
                    None => ProcessPlan::undecided(scan),
                };
                match (plan.decided, plan.checkpointable()) {
                    (false, _) => outcome.undecided += 1,
                    (true, true) => outcome.checkpointable += 1,
                    (true, false) => outcome.rejected += 1,
                }
                backend.process(&plan).map_err(RunError::Backend)?;
            }
            Sourced::Skipped(e) => {
                outcome.skipped += 1;
                backend.skipped(&e).map_err(RunError::Backend)?;
            }
        }
    }
    backend.finish().map_err(RunError::Backend)?;
    Ok(outcome)
}
