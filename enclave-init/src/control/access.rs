//! What a control connection may do.
//!
//! Every connection starts with the access level of the listener that
//! accepted it ([`Access`], from `init.yaml`): the Unix socket inside the
//! enclave (0600, root only) has full access by default, every other
//! listener (vsock, hybrid vsock, TCP) is read-only by default, because
//! whoever reaches it (the host, or any service on loopback) is not trusted
//! to change what runs. A read-only connection may ask for `Ping`,
//! `ListServices`, `ServiceStatus`, `ServiceLogs` and `SystemStatus`;
//! anything else is refused with [`Response::Refused`] and never reaches
//! the supervisor.
//!
//! The level is held per connection, not per listener, so that an
//! authenticated client (a key allowed to manage services, checked over an
//! attested channel) can later raise its own connection to [`Access::Full`]
//! without touching the other connections of the listener.

pub use crate::access_level::Access;

use crate::api::{Request, Response};

impl Access {
    /// Whether a connection with this level may make `request`.
    pub fn permits(self, request: &Request) -> bool {
        match self {
            Access::Full => true,
            Access::ReadOnly => !request.changes_state(),
        }
    }

    /// The answer to a request this level does not permit.
    pub fn refusal(self, request: &Request) -> Response {
        Response::Refused {
            message: format!(
                "{} changes the state of the enclave and this control connection is {}: \
                 only ping, list, status, logs and system-status are allowed here",
                request.tag(),
                self.as_str()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_permits_exactly_the_read_only_requests() {
        let name = || "web".to_owned();
        let reads = [
            Request::Ping,
            Request::ListServices,
            Request::ServiceStatus { name: name() },
            Request::ServiceLogs {
                name: name(),
                lines: 5,
            },
            Request::SystemStatus,
        ];
        let writes = [
            Request::ServiceStart { name: name() },
            Request::ServiceStop { name: name() },
            Request::ServiceRestart { name: name() },
            Request::ServiceEnable {
                name: name(),
                now: false,
            },
            Request::ServiceDisable {
                name: name(),
                now: true,
            },
            Request::ServiceLogsClear { name: name() },
            Request::SystemReload,
            Request::SystemReboot,
            Request::SystemShutdown,
        ];
        // Every request tag is in one of the two lists.
        assert_eq!(
            reads.len() + writes.len(),
            crate::api::unknown::KNOWN_REQUESTS.len()
        );
        for r in &reads {
            assert!(
                Access::ReadOnly.permits(r) && Access::Full.permits(r),
                "{r:?}"
            );
        }
        for w in &writes {
            assert!(
                !Access::ReadOnly.permits(w) && Access::Full.permits(w),
                "{w:?}"
            );
            let Response::Refused { message } = Access::ReadOnly.refusal(w) else {
                panic!()
            };
            assert!(
                message.contains(w.tag()) && message.contains("read-only"),
                "{message}"
            );
        }
    }
}
