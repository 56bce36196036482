//! Health records of the control protocol (`initctl status` and `list`).
//! They are defined with the health checks, in [`crate::health::report`]
//! (the tracker fills them), and re-exported here.

pub use crate::health::report::{Health, HealthInfo, ProbeReport};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ServiceInfo, ServiceSummary};

    #[test]
    fn records_from_an_init_without_health_checks_still_parse() {
        let summary: ServiceSummary = serde_json::from_str(
            r#"{"name":"web","enabled":true,"active":true,"state":"running",
                "restart_policy":"always","restart_count":0,"pid":7}"#,
        )
        .unwrap();
        assert_eq!(summary.health, Health::None);
        let info: ServiceInfo = serde_json::from_str(
            r#"{"name":"web","enabled":true,"active":false,"state":"inactive","pid":null,
                "running_secs":null,"restart_policy":"no","restart_count":0,"restart_sec":5.0,
                "restart_in_ms":null,"exit_status":null,"last_exit":null,"exec_start":"x",
                "working_directory":null,"dependencies":{"before":[],"after":[],"requires":[],
                "required_by":[]},"note":null,"log_file":"/log/web.log","rss_bytes":null,
                "log_lines_lost":0}"#,
        )
        .unwrap();
        assert_eq!(info.health, None);
    }

    #[test]
    fn the_wire_spelling() {
        assert_eq!(
            serde_json::to_string(&Health::Unhealthy).unwrap(),
            r#""unhealthy""#
        );
        let partial: HealthInfo =
            serde_json::from_str(r#"{"check":"GET http://127.0.0.1/","health":"starting"}"#)
                .unwrap();
        assert_eq!(partial.health, Health::Starting);
        assert_eq!(partial.last_probe, None);
    }
}
