//! What a boot step did: PID 1's duties and the device rules of
//! [`crate::privileges`] report the same way.

use std::fmt;

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// It did its work.
    Done(String),
    /// Nothing to do, and why.
    Skipped(String),
    /// It failed, and why.
    Failed(String),
}

impl StepOutcome {
    /// Whether the step failed.
    pub fn failed(&self) -> bool {
        matches!(self, StepOutcome::Failed(_))
    }
}

impl fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepOutcome::Done(d) => write!(f, "done: {d}"),
            StepOutcome::Skipped(d) => write!(f, "skipped: {d}"),
            StepOutcome::Failed(d) => write!(f, "FAILED: {d}"),
        }
    }
}
