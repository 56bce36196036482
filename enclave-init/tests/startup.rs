#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Start order, cycles, Requires, malformed files, working directory and environment.

mod common;

use common::{Init, sleeper};

#[test]
fn the_worked_example_of_the_spec_starts_in_dependency_order() {
    let init = Init::prepare("");
    init.service(
        "redis.service",
        &sleeper(r#"Before = ["cache-warmer", "webapp"]"#),
    );
    init.service(
        "cache-warmer.service",
        &sleeper("After = [\"redis\"]\nBefore = [\"webapp\"]\nRequires = [\"redis\"]"),
    );
    init.service("database.service", &sleeper(r#"Before = ["webapp"]"#));
    init.service(
        "webapp.service",
        &sleeper("After = [\"database\", \"cache-warmer\"]\nRequires = [\"database\"]"),
    );
    let init = init.start();
    let expected = ["database", "redis", "cache-warmer", "webapp"];
    assert_eq!(init.system().start_order, expected);
    for name in expected {
        init.wait_state(name, "running");
    }
    // The processes were spawned in that order, one after the other.
    assert_eq!(init.start_log_order(), expected);
    let order = init.start_log_order();
    let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
    assert!(pos("redis") < pos("cache-warmer"));
    assert!(pos("cache-warmer") < pos("webapp"));
    assert!(pos("database") < pos("webapp"));
    let status = init.ctl_ok(&["status", "webapp"]);
    assert!(
        status.contains("  After: database, cache-warmer\n"),
        "{status}"
    );
    assert!(status.contains("  Requires: database\n"), "{status}");
}

#[test]
fn a_dependency_cycle_is_reported_and_everything_still_runs() {
    let init = Init::prepare("");
    init.service("a.service", &sleeper(r#"After = ["b"]"#));
    init.service("b.service", &sleeper(r#"After = ["a"]"#));
    init.service("c.service", &sleeper(""));
    let init = init.start();
    for name in ["a", "b", "c"] {
        init.wait_state(name, "running");
    }
    let system = init.system();
    assert_eq!(system.dependency_cycles, ["a -> b -> a"]);
    assert_eq!(system.start_order[0], "c");
    assert!(init.stderr().contains("circular dependency a -> b -> a"));
    let note = init.status("a").note.unwrap();
    assert!(note.contains("dependency cycle: a -> b -> a"), "{note}");
    let text = init.ctl_ok(&["system-status"]);
    assert!(text.contains("  Dependency Cycle: a -> b -> a"), "{text}");
    // Fixed and reloaded: the cycle and its notes are gone.
    init.service("b.service", &sleeper(""));
    init.ctl_ok(&["reload"]);
    assert!(init.system().dependency_cycles.is_empty());
    assert_eq!(init.status("a").note, None);
    assert_eq!(init.system().start_order, ["b", "a", "c"]);
}

#[test]
fn requires_on_a_failed_or_missing_service_blocks_the_dependent() {
    let init = Init::prepare("");
    init.service("db.service", "ExecStart = \"/nonexistent/bin/db\"\n");
    init.service(
        "web.service",
        &sleeper("Requires = [\"db\"]\nAfter = [\"db\"]"),
    );
    init.service("orphan.service", &sleeper("Requires = [\"ghost\"]"));
    init.service("soft.service", &sleeper("After = [\"db\"]"));
    let init = init.start();
    let db = init.wait_state("db", "failed");
    assert!(db.note.unwrap().contains("/nonexistent/bin/db"));
    let web = init.wait_state("web", "blocked");
    let note = web.note.unwrap();
    assert!(note.contains("requires 'db', which failed"), "{note}");
    let orphan = init.wait_state("orphan", "blocked");
    assert!(
        orphan
            .note
            .unwrap()
            .contains("'ghost', which does not exist")
    );
    // After is only ordering: a failed predecessor does not block.
    init.wait_state("soft", "running");
    let text = init.ctl_ok(&["status", "web"]);
    assert!(
        text.contains("Status: inactive (blocked by a dependency)"),
        "{text}"
    );
    assert!(text.contains("Note: not started: requires 'db'"), "{text}");
    // Starting web by hand tries db first, and says why that failed.
    let out = init.ctl(&["start", "web"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("db") && err.contains("failed to start"),
        "{err}"
    );
    // Init itself is fine.
    init.ctl_ok(&["ping"]);
}

#[test]
fn malformed_service_files_are_reported_and_the_rest_runs() {
    let init = Init::prepare("");
    init.service("good.service", &sleeper(""));
    init.service("syntax.service", "ExecStart = \"/bin/true\"\nRestart = \n");
    init.service("typo.service", "ExecStrat = \"/bin/true\"\n");
    init.service(
        "policy.service",
        "ExecStart = \"/bin/true\"\nRestart = \"sometimes\"\n",
    );
    init.service("quote.service", "ExecStart = \"sh -c 'unterminated\"\n");
    std::fs::write(
        init.service_dir().join("binary.service"),
        [0xff, 0xfe, 0x00, 0x01],
    )
    .unwrap();
    let init = init.start();
    init.wait_state("good", "running");
    let system = init.system();
    assert_eq!(system.services_total, 1);
    let broken: Vec<String> = system
        .broken_files
        .iter()
        .map(|b| b.error.clone())
        .collect();
    assert_eq!(broken.len(), 5, "{broken:#?}");
    let find = |file: &str| broken.iter().find(|e| e.contains(file)).unwrap().clone();
    assert!(find("syntax.service").contains("line 2"), "{broken:#?}");
    assert!(find("typo.service").contains("ExecStrat"), "{broken:#?}");
    assert!(find("policy.service").contains("sometimes"), "{broken:#?}");
    assert!(
        find("quote.service").contains("unterminated single quote"),
        "{broken:#?}"
    );
    assert!(
        find("binary.service").contains("binary.service"),
        "{broken:#?}"
    );
    let out = init.ctl(&["status", "typo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not loaded"));
    assert!(init.stderr().contains("service file not loaded"));
}

#[test]
fn working_directory_and_environment() {
    let init = Init::prepare("environment:\n  GLOBAL: from-config\nvsock:\n  cid: 3\n");
    let out = init.work();
    init.service(
        "default-dir.service",
        &format!(
            "ExecStart = \"sh -c 'pwd > {0}/default-dir; echo $GLOBAL $LOCAL $ENCLAVE_PARENT_CID > {0}/env'\"\nEnvironment = [\"LOCAL=from-service\"]\n",
            out.display()
        ),
    );
    init.service(
        "set-dir.service",
        &format!(
            "ExecStart = \"sh -c 'pwd > {0}/set-dir'\"\nWorkingDirectory = \"{0}\"\n",
            out.display()
        ),
    );
    let init = init.start();
    init.wait_state("default-dir", "exited");
    init.wait_state("set-dir", "exited");
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    // Not init's own working directory (which is work/): "/".
    assert_eq!(read("default-dir").trim(), "/");
    assert_eq!(read("set-dir").trim(), out.display().to_string());
    assert_eq!(read("env").trim(), "from-config from-service 3");
}

#[test]
fn a_bad_configuration_is_refused_with_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("init.yaml");
    std::fs::write(&cfg, "max_log_size: 0\n").unwrap();
    let out = std::process::Command::new(common::INIT)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max_log_size") && err.contains("from --config"),
        "{err}"
    );
    // INIT_CONFIG is used when --config is absent.
    let out = std::process::Command::new(common::INIT)
        .env("INIT_CONFIG", &cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("from INIT_CONFIG"));
    let missing = std::process::Command::new(common::INIT)
        .args(["--config", "/nonexistent/init.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/init.yaml"));
}

#[test]
fn sigusr1_is_forwarded_to_services() {
    let init = Init::prepare("");
    let file = init.work().join("usr1");
    let ready = init.work().join("trapped");
    init.service(
        "listener.service",
        &format!(
            "ExecStart = \"sh -c 'trap \\\"echo got >> {}\\\" USR1; touch {}; while true; do sleep 0.05; done'\"\n",
            file.display(),
            ready.display()
        ),
    );
    let init = init.start();
    init.wait_state("listener", "running");
    // sh says when its trap is installed.
    init.wait_for(
        "the service's trap",
        std::time::Duration::from_secs(10),
        || ready.exists(),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init.pid()),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    init.wait_for(
        "the service to get SIGUSR1",
        std::time::Duration::from_secs(10),
        || std::fs::read_to_string(&file).is_ok_and(|t| t.contains("got")),
    );
    assert_eq!(init.status("listener").state, "running");
}

#[test]
fn an_environment_that_is_not_utf8_does_not_stop_init() {
    use std::os::unix::ffi::OsStringExt;
    let mut init = Init::prepare("");
    init.service("svc.service", &sleeper(""));
    let weird = std::ffi::OsString::from_vec(b"\xff\xfe".to_vec());
    init.spawn_with_env(
        std::process::Stdio::from(std::fs::File::create(init.stderr_path()).unwrap()),
        "info",
        &[("WEIRD".into(), weird)],
    );
    init.wait_ready();
    init.wait_state("svc", "running");
}

#[test]
fn wants_pulls_in_without_requiring() {
    let init = Init::prepare("");
    init.service("cache.service.disabled", &sleeper(""));
    init.service("flaky.service", "ExecStart = \"/nonexistent/flaky\"\n");
    init.service(
        "web.service",
        &sleeper("Wants = [\"cache\", \"flaky\", \"ghost\"]"),
    );
    let init = init.start();
    // A disabled wanted service is started for web, before it.
    init.wait_state("cache", "running");
    init.wait_state("web", "running");
    assert_eq!(init.status("flaky").state, "failed");
    let order = init.start_log_order();
    let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
    assert!(pos("cache") < pos("web"), "{order:?}");
    let text = init.ctl_ok(&["status", "web"]);
    assert!(text.contains("  Wants: cache, flaky, ghost\n"), "{text}");
}

#[test]
fn the_shipped_examples_are_valid() {
    use enclave_init::config::Config;
    use enclave_init::ctl_config::{CtlOverrides, resolve_with_default};
    use enclave_init::service::load_dir;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let config = Config::load(Some(&examples.join("init.yaml")), None).unwrap();
    assert_eq!(config.control.len(), 2);
    let loaded = load_dir(&examples.join("services"));
    assert!(loaded.broken.is_empty(), "{:?}", loaded.broken);
    assert_eq!(loaded.services.len(), 3);
    for file in ["initctl-host.yaml", "initctl-local-vm.yaml"] {
        let overrides = CtlOverrides {
            config: Some(examples.join(file)),
            ..Default::default()
        };
        resolve_with_default(&overrides, std::path::Path::new("/nonexistent")).unwrap();
    }
}
