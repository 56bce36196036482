#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! `rbuilds-tool app-manifest` as rbuilds/lib/app.sh runs it: the real
//! inference server's manifest checks against the image's real passwd and
//! evaluates in bash to what the image needs; bad manifests fail with the
//! reason and print no assignments; the port services and the `.eif.pcrs`
//! member are written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rbuilds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn inference_dir() -> PathBuf {
    rbuilds_dir().join("../reference_apps/inference_server")
}

fn passwd() -> PathBuf {
    rbuilds_dir().join("image/etc/passwd")
}

fn tool(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbuilds-tool"))
        .arg("app-manifest")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_inference_server_manifest_evaluates_in_bash() {
    let dir = inference_dir();
    let out = tool(&[dir.as_os_str(), "--passwd".as_ref(), passwd().as_os_str()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = format!(
        "set -eu\n{}\nprintf '%s|' \"$APP_NAME\" \"$APP_MEMORY_MIB\" \"${{APP_BINARIES[@]}}\" \
         \"${{APP_SERVICES[1]}}\" \"${{APP_PORTS[@]}}\" \"${{APP_RUSTFLAGS[@]}}\" \"${{#APP_FILES[@]}}\"",
        text(&out.stdout)
    );
    let eval = Command::new("bash").arg("-c").arg(script).output().unwrap();
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    assert_eq!(
        text(&eval.stdout),
        "inference-server|1024|inference-server|inference-server|/usr/bin/inference-server|\
         inference-server|10443|10443|https|--cfg|getrandom_backend=\"linux_getrandom\"|0|"
    );
    // The service file it names is in the directory and runs as `inference`.
    let service = std::fs::read_to_string(dir.join("inference-server.service")).unwrap();
    assert!(service.contains("User = \"inference\""));
    assert!(
        !service.contains("--model"),
        "the server starts without a model"
    );
}

#[test]
fn bad_manifests_fail_with_the_reason_and_print_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.service"),
        "ExecStart = \"/usr/bin/x\"\nUser = \"inference\"\n",
    )
    .unwrap();
    let good = "name = \"x\"\n[[service]]\nfile = \"s.service\"\n";
    for (manifest, reason) in [
        (
            format!("{good}colour = \"red\"\n"),
            "unknown field `colour`",
        ),
        (
            format!("{good}[[file]]\nsource = \"../../etc/passwd\"\ndest = \"/opt/x\"\n"),
            "without '..'",
        ),
        (
            format!("{good}[[file]]\nsource = \"s.service\"\ndest = \"/opt/../etc/passwd\"\n"),
            "normalised",
        ),
        (
            format!("{good}[[port]]\nhost = 22\nenclave = 10070\n"),
            "port[0].host",
        ),
        (
            format!("{good}[[file]]\nsource = \"missing.bin\"\ndest = \"/opt/x\"\n"),
            "missing.bin",
        ),
    ] {
        std::fs::write(dir.path().join("app.toml"), &manifest).unwrap();
        let out = tool(&[
            dir.path().as_os_str(),
            "--passwd".as_ref(),
            passwd().as_os_str(),
        ]);
        assert!(!out.status.success(), "{manifest}");
        assert!(out.stdout.is_empty(), "{manifest}: {}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains(reason),
            "{manifest}: {}",
            text(&out.stderr)
        );
    }
    // A service whose user the image does not have.
    std::fs::write(dir.path().join("app.toml"), good).unwrap();
    std::fs::write(
        dir.path().join("s.service"),
        "ExecStart = \"/usr/bin/x\"\nUser = \"mallory\"\n",
    )
    .unwrap();
    let out = tool(&[
        dir.path().as_os_str(),
        "--passwd".as_ref(),
        passwd().as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not in the image's /etc/passwd"));
    // No manifest at all.
    let empty = tempfile::tempdir().unwrap();
    let out = tool(&[empty.path().as_os_str()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("app.toml"));
}

#[test]
fn port_services_and_the_pcrs_member_are_written() {
    let work = tempfile::tempdir().unwrap();
    let services = work.path().join("service");
    let pcrs = work.path().join("enclave.eif.pcrs");
    std::fs::write(
        &pcrs,
        "{\n  \"HashAlgorithm\": \"SHA384\",\n  \"Profile\": \"production\"\n}\n",
    )
    .unwrap();
    let out = tool(&[
        inference_dir().as_os_str(),
        "--ingress-dir".as_ref(),
        services.as_os_str(),
        "--record-pcrs".as_ref(),
        pcrs.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut names: Vec<String> = std::fs::read_dir(&services)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["inference-server-ingress-10443.service", "tls-ingress"]
    );
    let service = std::fs::read_to_string(services.join(&names[0])).unwrap();
    assert!(service.contains("vsock-to-ip -v any:10443 -i 127.0.0.1:10443"));
    // TLS for the port ends in ra-web-srv, which relays to the server.
    let ingress = std::fs::read_to_string(services.join("tls-ingress")).unwrap();
    assert!(
        ingress.contains("127.0.0.1:10443=127.0.0.1:10070,name=inference-server-10443"),
        "{ingress}"
    );
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&pcrs).unwrap()).unwrap();
    assert_eq!(value["App"], "inference-server");
    assert_eq!(value["Profile"], "production");
}
