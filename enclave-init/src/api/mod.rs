//! The supervisor's API: the requests it answers and its responses. They
//! travel as control messages, one JSON document per frame, externally
//! tagged as in the specification (`{"ServiceStatus":{"name":"webapp"}}`,
//! `"Ping"`); [`crate::control`] carries them and re-exports this module as
//! `control::cmd`. Neither [`crate::supervisor`] nor this module depends on
//! [`crate::control`].
//!
//! - [`Request`]: what initctl asks; a request whose tag is not known parses
//!   to [`unknown::Unknown`] so the server can answer it with an error
//!   instead of dropping the connection.
//! - [`Response`]: what init answers.
//! - [`service`]: per-service status records; [`health`]: their health
//!   checks; [`system`]: system status.

pub mod health;
pub mod service;
pub mod system;
pub mod unknown;

use serde::{Deserialize, Serialize};

pub use health::{Health, HealthInfo, ProbeReport};
pub use service::{ExitInfo, ServiceInfo, ServiceSummary};
pub use system::{BrokenFile, MemoryInfo, SystemInfo};
pub use unknown::Unknown;

/// A control request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Request {
    /// Every service with its state.
    ListServices,
    /// One service in detail.
    ServiceStatus {
        /// Service name.
        name: String,
    },
    /// Start a service (and what it requires).
    ServiceStart {
        /// Service name.
        name: String,
    },
    /// Stop a service: SIGTERM, grace period, SIGKILL.
    ServiceStop {
        /// Service name.
        name: String,
    },
    /// Stop, then start.
    ServiceRestart {
        /// Service name.
        name: String,
    },
    /// Enable (rename `.service.disabled` to `.service`), optionally start.
    ServiceEnable {
        /// Service name.
        name: String,
        /// Start it now as well.
        #[serde(default)]
        now: bool,
    },
    /// Disable (rename to `.service.disabled`), optionally stop.
    ServiceDisable {
        /// Service name.
        name: String,
        /// Stop it now as well.
        #[serde(default)]
        now: bool,
    },
    /// The last lines of a service's log.
    ServiceLogs {
        /// Service name.
        name: String,
        /// How many lines.
        lines: usize,
    },
    /// Empty a service's log and remove its rotated files.
    ServiceLogsClear {
        /// Service name.
        name: String,
    },
    /// System status.
    SystemStatus,
    /// Re-read the service directory.
    SystemReload,
    /// Stop every service and reboot.
    SystemReboot,
    /// Stop every service and power off.
    SystemShutdown,
    /// Liveness check.
    Ping,
}

/// A request as parsed from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A request this server knows.
    Known(Request),
    /// A well-formed message with a tag this server does not know.
    Unknown(Unknown),
}

/// A payload that is not a valid request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {0}")]
pub struct InvalidRequest(pub String);

impl Request {
    /// Parses a request payload.
    pub fn parse(payload: &[u8]) -> Result<Parsed, InvalidRequest> {
        let value: serde_json::Value = serde_json::from_slice(payload)
            .map_err(|e| InvalidRequest(format!("not JSON: {e}")))?;
        let tag = unknown::tag_of(&value)
            .ok_or_else(|| InvalidRequest("expected \"Name\" or {\"Name\": {...}}".into()))?
            .to_owned();
        if !unknown::KNOWN_REQUESTS.contains(&tag.as_str()) {
            return Ok(Parsed::Unknown(Unknown {
                tag: tag.chars().take(64).collect(),
            }));
        }
        serde_json::from_value(value)
            .map(Parsed::Known)
            .map_err(|e| InvalidRequest(format!("{tag}: {e}")))
    }

    /// Whether the request changes anything (a service's state, a file, the
    /// machine); only `Ping`, `ListServices`, `ServiceStatus`, `ServiceLogs`
    /// and `SystemStatus` do not.
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Request::Ping
                | Request::ListServices
                | Request::ServiceStatus { .. }
                | Request::ServiceLogs { .. }
                | Request::SystemStatus
        )
    }

    /// The request's tag on the wire (`ServiceStop`).
    pub fn tag(&self) -> &'static str {
        match self {
            Request::ListServices => "ListServices",
            Request::ServiceStatus { .. } => "ServiceStatus",
            Request::ServiceStart { .. } => "ServiceStart",
            Request::ServiceStop { .. } => "ServiceStop",
            Request::ServiceRestart { .. } => "ServiceRestart",
            Request::ServiceEnable { .. } => "ServiceEnable",
            Request::ServiceDisable { .. } => "ServiceDisable",
            Request::ServiceLogs { .. } => "ServiceLogs",
            Request::ServiceLogsClear { .. } => "ServiceLogsClear",
            Request::SystemStatus => "SystemStatus",
            Request::SystemReload => "SystemReload",
            Request::SystemReboot => "SystemReboot",
            Request::SystemShutdown => "SystemShutdown",
            Request::Ping => "Ping",
        }
    }

    /// The service a request is about, if any.
    pub fn service_name(&self) -> Option<&str> {
        match self {
            Request::ServiceStatus { name }
            | Request::ServiceStart { name }
            | Request::ServiceStop { name }
            | Request::ServiceRestart { name }
            | Request::ServiceEnable { name, .. }
            | Request::ServiceDisable { name, .. }
            | Request::ServiceLogs { name, .. }
            | Request::ServiceLogsClear { name } => Some(name),
            _ => None,
        }
    }
}

/// A control response.
// One is built per request and sent at once: the size of the status
// variants costs nothing worth a Box in every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The action was done.
    Success {
        /// What was done.
        message: String,
    },
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
    /// The request is not allowed on this connection (a state-changing
    /// request on a read-only listener); nothing was done.
    Refused {
        /// Why, naming the request and the connection's access level.
        message: String,
    },
    /// Answer to [`Request::Ping`].
    Pong,
    /// Answer to [`Request::ListServices`].
    ServiceList {
        /// Services in name order.
        services: Vec<ServiceSummary>,
    },
    /// Answer to [`Request::ServiceStatus`].
    ServiceStatus {
        /// The service.
        status: ServiceInfo,
    },
    /// Answer to [`Request::ServiceLogs`].
    ServiceLogs {
        /// The service.
        name: String,
        /// Oldest first, each with its time stamp.
        lines: Vec<String>,
        /// Whether fewer lines than asked were returned to keep the reply bounded.
        truncated: bool,
    },
    /// Answer to [`Request::SystemStatus`].
    SystemStatus {
        /// The system.
        status: SystemInfo,
    },
}

impl Response {
    /// An error response.
    pub fn error(message: impl Into<String>) -> Self {
        Response::Error {
            message: message.into(),
        }
    }

    /// A success response.
    pub fn success(message: impl Into<String>) -> Self {
        Response::Success {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Request::parse(&bytes);
        }

        #[test]
        fn parsing_json_never_panics(tag in "[A-Za-z]{0,20}", name in ".{0,40}", lines in any::<i64>()) {
            let text = format!(r#"{{"{tag}":{{"name":{name:?},"lines":{lines}}}}}"#);
            let _ = Request::parse(text.as_bytes());
        }
    }

    #[test]
    fn wire_format_matches_the_spec() {
        assert_eq!(
            serde_json::to_string(&Request::ServiceStatus {
                name: "webapp".into()
            })
            .unwrap(),
            r#"{"ServiceStatus":{"name":"webapp"}}"#
        );
        assert_eq!(serde_json::to_string(&Request::Ping).unwrap(), r#""Ping""#);
        assert_eq!(
            Request::parse(br#"{"ServiceLogs":{"name":"w","lines":10}}"#).unwrap(),
            Parsed::Known(Request::ServiceLogs {
                name: "w".into(),
                lines: 10
            })
        );
        assert_eq!(
            Request::parse(br#"{"ServiceEnable":{"name":"w"}}"#).unwrap(),
            Parsed::Known(Request::ServiceEnable {
                name: "w".into(),
                now: false
            })
        );
        assert_eq!(
            Request::parse(br#""ListServices""#).unwrap(),
            Parsed::Known(Request::ListServices)
        );
    }

    #[test]
    fn tags_match_the_wire() {
        for request in [
            Request::SystemShutdown,
            Request::ServiceDisable {
                name: "w".into(),
                now: true,
            },
        ] {
            let text = serde_json::to_string(&request).unwrap();
            assert!(text.contains(request.tag()), "{text}");
            assert!(unknown::KNOWN_REQUESTS.contains(&request.tag()), "{text}");
        }
    }

    #[test]
    fn unknown_and_invalid_requests() {
        assert_eq!(
            Request::parse(br#"{"Frobnicate":{"x":1}}"#).unwrap(),
            Parsed::Unknown(Unknown {
                tag: "Frobnicate".into()
            })
        );
        assert_eq!(
            Request::parse(br#""Dance""#).unwrap(),
            Parsed::Unknown(Unknown {
                tag: "Dance".into()
            })
        );
        for bad in [
            &b"not json"[..],
            b"42",
            b"{}",
            br#"{"A":1,"B":2}"#,
            br#"{"ServiceStatus":{}}"#,
            br#"{"ServiceStatus":{"name":"x","extra":1}}"#,
            br#"{"ServiceLogs":{"name":"x","lines":-1}}"#,
        ] {
            assert!(
                Request::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
