//! Where decisions go. A backend receives each process's plan: the report printer (in the binary) writes
//! it for people and programs; the fd-table image backend and the CRIU backend (later issues) turn the same
//! plan into a dump, CRIU options, or a restore that verifies identity and is all or nothing.

use crate::plan::ProcessPlan;

/// Receives the plan of each process checked, in the order the processes were given.
pub trait Backend {
    /// What can go wrong while handling a plan.
    type Error;

    /// Handles one process's plan.
    fn process(&mut self, plan: &ProcessPlan<'_>) -> Result<(), Self::Error>;

    /// Called once after the last process; a backend that writes an image commits it here.
    fn finish(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
