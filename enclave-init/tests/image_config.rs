#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The image's `init.yaml`, as `rbuilds/lib/profile.sh` writes it for each
//! profile, is a configuration init accepts, with the access the profile
//! promises.

use std::path::{Path, PathBuf};
use std::process::Command;

use enclave_init::config::{Config, ConfigSource};
use enclave_init::control::access::Access;

fn rbuilds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rbuilds")
}

/// Runs `profile_rootfs` of profile.sh (with rbuilds.sh's helpers it uses)
/// and parses the init.yaml it wrote.
fn image_config(profile: &str, authorized_keys: Option<&Path>) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
        set -eu
        die() { echo "die: $*" >&2; exit 1; }
        log() { :; }
        install_file() { install -D -m "$3" "$1" "$2"; }
        source "$RBUILDS_DIR/lib/profile.sh"
        profile_rootfs "$CUSTOMER"
    "#;
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("RBUILDS_DIR", rbuilds_dir())
        .env("PROFILE", profile)
        .env(
            "AUTHORIZED_KEYS",
            authorized_keys.map(Path::as_os_str).unwrap_or_default(),
        )
        .env("CUSTOMER", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("etc/init.yaml")).unwrap();
    assert!(!text.contains('@'), "a placeholder is left:\n{text}");
    Config::parse(&text, ConfigSource::BuiltIn).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn vsock_access(config: &Config) -> Access {
    config
        .control
        .iter()
        .find(|l| matches!(l.address, transport::Address::Vsock { .. }))
        .unwrap()
        .access
}

#[test]
fn every_profile_writes_a_configuration_init_accepts() {
    let debug = image_config("debug", None);
    assert_eq!(vsock_access(&debug), Access::Full);
    assert!(debug.control_channel.is_none());
    assert!(debug.banner.unwrap().contains("DEBUG PROFILE"));

    let bare = image_config("production", None);
    assert_eq!(vsock_access(&bare), Access::ReadOnly);
    assert!(bare.control_channel.is_none());

    let keys = tempfile::NamedTempFile::new().unwrap();
    let keyed = image_config("production", Some(keys.path()));
    assert_eq!(vsock_access(&keyed), Access::ReadOnly);
    let channel = keyed.control_channel.unwrap();
    assert_eq!(
        channel.authorized_keys,
        Path::new("/etc/pipeline/authorized_keys")
    );
    let storage: Vec<(String, String)> = keyed
        .storage
        .iter()
        .map(|m| (m.path.display().to_string(), m.size.clone()))
        .collect();
    for path in ["/data", "/apps", "/var/lib/nats"] {
        assert!(
            storage.iter().any(|(p, _)| p == path),
            "{path} has no storage mount: {storage:?}"
        );
    }
    // JetStream's file store stays below its mount.
    let nats = std::fs::read_to_string(rbuilds_dir().join("image/nats-server.conf")).unwrap();
    assert!(nats.contains("store_dir: /var/lib/nats"), "{nats}");
    assert!(nats.contains("max_file_store: 64MB"), "{nats}");
    assert!(
        storage.contains(&("/var/lib/nats".to_owned(), "96m".to_owned())),
        "{storage:?}"
    );
    assert_eq!(
        keyed.environment,
        vec![("ENCLAVE_PROFILE".to_owned(), "production".to_owned())]
    );
}
