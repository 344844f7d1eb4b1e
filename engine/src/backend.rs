//! Where decisions go: the seam between the pipeline and whatever acts on plans. A [`Backend`] says which
//! facts its output needs (the scan reads those and what the policy needs, no more), receives each
//! process's plan in order, hears of processes that were skipped, and finishes once. The report printers
//! (table, JSON, RON, the `--all` summary) are backends; so are the coming fd-table dump and CRIU options.
//! Restoring an image reads an image, not plans, and gets a seam of its own.

use crate::error::ScanError;
use crate::needs::ScanOptions;
use crate::plan::ProcessPlan;

/// Receives the plan of each process checked, in the order the source yields them.
pub trait Backend {
    /// What can go wrong while handling a plan.
    type Error;

    /// The facts this backend needs beyond what the policy needs to decide (the pipeline reads the union):
    /// a table shows only what decided, JSON prints every fact, a dump needs positions and flags.
    fn needs(&self) -> ScanOptions {
        ScanOptions::minimal()
    }

    /// Called once before the first process, with how many are coming when the source knows.
    fn begin(&mut self, expected: Option<usize>) -> Result<(), Self::Error> {
        let _ = expected;
        Ok(())
    }

    /// Handles one process's plan.
    fn process(&mut self, plan: &ProcessPlan) -> Result<(), Self::Error>;

    /// A process the source skipped (it exited during the run, or may not be read) without stopping.
    fn skipped(&mut self, error: &ScanError) -> Result<(), Self::Error> {
        let _ = error;
        Ok(())
    }

    /// Called once after the last process; a backend that writes an image commits it here.
    fn finish(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl<B: Backend + ?Sized> Backend for &mut B {
    type Error = B::Error;

    fn needs(&self) -> ScanOptions {
        (**self).needs()
    }

    fn begin(&mut self, expected: Option<usize>) -> Result<(), Self::Error> {
        (**self).begin(expected)
    }

    fn process(&mut self, plan: &ProcessPlan) -> Result<(), Self::Error> {
        (**self).process(plan)
    }

    fn skipped(&mut self, error: &ScanError) -> Result<(), Self::Error> {
        (**self).skipped(error)
    }

    fn finish(&mut self) -> Result<(), Self::Error> {
        (**self).finish()
    }
}
