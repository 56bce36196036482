#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The image's service files (rbuilds/image) load, with the health checks
//! they are meant to have; the probes themselves run only in a booted image.

use std::path::{Path, PathBuf};
use std::time::Duration;

use enclave_init::health::Probe;
use enclave_init::service::{LoadedServices, load_dir};

fn image(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rbuilds/image")
        .join(dir)
}

fn load(dir: &str) -> LoadedServices {
    let loaded = load_dir(&image(dir));
    assert!(loaded.broken.is_empty(), "{dir}: {:#?}", loaded.broken);
    assert!(!loaded.services.is_empty(), "{dir}: no services");
    loaded
}

fn probe(loaded: &LoadedServices, name: &str) -> Option<String> {
    loaded.services[name]
        .health
        .as_ref()
        .map(|h| match &h.probe {
            Probe::Http(t) => t.url.clone(),
            Probe::Tcp(t) => format!("tcp:{}", t.text),
            Probe::Exec { command, .. } => format!("exec:{command}"),
        })
}

#[test]
fn the_image_services_have_their_probes() {
    let services = load("service");
    assert_eq!(
        probe(&services, "nats-server").as_deref(),
        Some("http://127.0.0.1:8222/jsz")
    );
    assert_eq!(
        probe(&services, "ra-web-srv").as_deref(),
        Some("https://127.0.0.1:8443/health")
    );
    assert_eq!(probe(&services, "fs-monitor"), None);
    let ra = services.services["ra-web-srv"].health.clone().unwrap();
    assert!(
        ra.start_period >= Duration::from_secs(30),
        "ra-web-srv makes its keys at start: {ra}"
    );
    let network = load("network");
    assert_eq!(
        probe(&network, "egress").as_deref(),
        Some("tcp:127.0.0.1:8888")
    );
    for name in ["ingress", "dns", "net"] {
        assert_eq!(probe(&network, name), None, "{name}");
    }
    for profile in ["debug", "production"] {
        let loaded = load(&format!("profile/{profile}"));
        assert_eq!(probe(&loaded, "pipeline"), None, "{profile}");
    }
}

#[test]
fn the_nats_monitor_port_of_the_probe_is_the_configured_one() {
    let conf = std::fs::read_to_string(image("nats-server.conf")).unwrap();
    assert!(
        conf.lines().any(|l| l.trim() == "http: 127.0.0.1:8222"),
        "{conf}"
    );
}
