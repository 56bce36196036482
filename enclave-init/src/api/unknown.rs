//! Requests this server does not know: recognised by their tag, answered
//! with an error naming the tag, and the connection stays usable.

/// Tags of every request this server understands.
pub const KNOWN_REQUESTS: &[&str] = &[
    "ListServices",
    "ServiceStatus",
    "ServiceStart",
    "ServiceStop",
    "ServiceRestart",
    "ServiceEnable",
    "ServiceDisable",
    "ServiceLogs",
    "ServiceLogsClear",
    "SystemStatus",
    "SystemReload",
    "SystemReboot",
    "SystemShutdown",
    "Ping",
];

/// A request with an unknown tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// The tag (cut to 64 characters).
    pub tag: String,
}

impl Unknown {
    /// The error message sent back.
    pub fn message(&self) -> String {
        format!(
            "unknown request {:?} (known: {})",
            self.tag,
            KNOWN_REQUESTS.join(", ")
        )
    }
}

/// The tag of an externally tagged message: `"Tag"` or `{"Tag": ...}`.
pub fn tag_of(value: &serde_json::Value) -> Option<&str> {
    match value {
        serde_json::Value::String(tag) => Some(tag),
        serde_json::Value::Object(map) if map.len() == 1 => map.keys().next().map(String::as_str),
        _ => None,
    }
}
