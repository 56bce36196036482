//! One named check and its outcome: what every verification (documents,
//! PCR profiles, bindings, signed answers) reports, check by check.

use std::fmt;

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It holds.
    Pass,
    /// It does not.
    Fail,
    /// Nothing to check it against.
    Skip,
}

/// One named check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Its name (`cose_signature`, `certificate_chain`, ...).
    pub name: &'static str,
    /// Its result.
    pub outcome: Outcome,
    /// What was found, or why it was skipped.
    pub detail: String,
}

impl Check {
    /// A passed check.
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            outcome: Outcome::Pass,
            detail: detail.into(),
        }
    }

    /// A failed check.
    pub fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            outcome: Outcome::Fail,
            detail: detail.into(),
        }
    }

    /// A skipped check.
    pub fn skip(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            outcome: Outcome::Skip,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Check {
    /// `PASS name: detail`, `FAIL name: detail` or `SKIP name: why`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.outcome {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        };
        write!(f, "{word} {}: {}", self.name, self.detail)
    }
}
