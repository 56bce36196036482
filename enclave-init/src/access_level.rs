//! The access level of a control listener, as `init.yaml` sets it; what
//! each level permits is decided in [`crate::control::access`].

use serde::{Deserialize, Serialize};

/// The access level of a control listener or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Only requests that change nothing: `ping`, `list`, `status`, `logs`, `system-status`.
    ReadOnly,
    /// Every request.
    Full,
}

impl Access {
    /// The spelling used in `init.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "read-only",
            Access::Full => "full",
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
