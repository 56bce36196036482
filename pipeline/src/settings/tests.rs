use super::*;

const PATH: &str = "/etc/pipeline.yaml";

fn sources(yaml: &str) -> Result<Sources, SettingsError> {
    Sources::from_file(FileConfig::parse(yaml).unwrap(), Path::new(PATH))
}

fn unix(path: &str) -> Address {
    Address::Unix(PathBuf::from(path))
}

fn listen_flags() -> ListenFlags {
    ListenFlags {
        addr: Some(unix("/run/p.sock")),
        ..ListenFlags::default()
    }
}

fn connect_flags() -> ConnectFlags {
    ConnectFlags {
        addr: Some(unix("/run/p.sock")),
        ..ConnectFlags::default()
    }
}

/// Asserts `result` is the rule `problem` broken by `setting` from `origin`,
/// and that the message names the setting as the user wrote it.
fn assert_invalid<T: fmt::Debug>(
    result: Result<T, SettingsError>,
    setting: Setting,
    origin: Origin,
    problem: Problem,
) {
    let err = result.unwrap_err();
    let message = err.to_string();
    match &origin {
        Origin::Flag => assert!(message.starts_with(setting.flag), "{message}"),
        Origin::File(path) => assert!(
            message.starts_with(&format!(
                "invalid config file {}: {} ",
                path.display(),
                setting.key
            )),
            "{message}"
        ),
    }
    match err {
        SettingsError::Invalid {
            setting: s,
            origin: o,
            problem: p,
        } => assert_eq!((s, o, p), (setting, origin, problem)),
        other => panic!("{other:?}"),
    }
}

fn file() -> Origin {
    Origin::File(PathBuf::from(PATH))
}

#[test]
fn defaults_apply_when_neither_flag_nor_file_says() {
    let settings = Sources::default().listen(listen_flags()).unwrap();
    assert_eq!(settings.max_clients, DEFAULT_MAX_CLIENTS);
    assert_eq!(settings.idle_timeout, IDLE_TIMEOUT);
    assert_eq!(settings.socket_mode, DEFAULT_SOCKET_MODE);
    assert!(settings.policy.exec_allowed());
    let settings = Sources::default()
        .listen(ListenFlags::default())
        .err()
        .unwrap();
    // The default address is vsock, not local: plaintext there is refused.
    assert!(
        matches!(settings, SettingsError::PlaintextNotLocal(Address::Vsock { port, .. }) if port == DEFAULT_PORT),
        "{settings:?}"
    );
    let connect = Sources::default().connect(connect_flags()).unwrap();
    assert_eq!(connect.options.attempts, ConnectOptions::default().attempts);
}

#[test]
fn the_file_overrides_defaults() {
    let sources = sources(
        "addr: unix:/run/file.sock\nallow_exec: false\nmax_clients: 4\nidle_timeout_secs: 9\nsocket_mode: \"0660\"\nconnect_attempts: 2\n",
    )
    .unwrap();
    let settings = sources.listen(ListenFlags::default()).unwrap();
    assert_eq!(settings.addr, unix("/run/file.sock"));
    assert!(!settings.policy.exec_allowed());
    assert_eq!(settings.max_clients, 4);
    assert_eq!(settings.idle_timeout, Duration::from_secs(9));
    assert_eq!(settings.socket_mode, 0o660);
    let connect = sources.connect(ConnectFlags::default()).unwrap();
    assert_eq!(connect.addr, unix("/run/file.sock"));
    assert_eq!(connect.options.attempts, 2);
}

#[test]
fn flags_override_the_file() {
    let sources = sources(
        "addr: unix:/run/file.sock\nmax_clients: 4\nidle_timeout_secs: 9\nsocket_mode: \"0660\"\nconnect_attempts: 2\n",
    )
    .unwrap();
    let settings = sources
        .listen(ListenFlags {
            max_clients: Some(8),
            idle_timeout: Some(3),
            socket_mode: Some("600".into()),
            no_exec: true,
            ..listen_flags()
        })
        .unwrap();
    assert_eq!(settings.addr, unix("/run/p.sock"));
    assert!(!settings.policy.exec_allowed());
    assert_eq!(settings.max_clients, 8);
    assert_eq!(settings.idle_timeout, Duration::from_secs(3));
    assert_eq!(settings.socket_mode, 0o600);
    let connect = sources
        .connect(ConnectFlags {
            connect_attempts: Some(7),
            ..connect_flags()
        })
        .unwrap();
    assert_eq!(connect.addr, unix("/run/p.sock"));
    assert_eq!(connect.options.attempts, 7);
}

#[test]
fn listen_port_flag_means_vsock_any() {
    let settings = sources("addr: unix:/run/file.sock\n")
        .unwrap()
        .listen(ListenFlags {
            port: Some(5000),
            attested: true,
            ..ListenFlags::default()
        })
        .unwrap();
    assert_eq!(
        settings.addr,
        Address::vsock(transport::defs::VSOCK_CID_ANY, 5000)
    );
}

#[test]
fn client_addresses_combine_flags_and_file() {
    let flags = |cid, port| ConnectFlags {
        cid,
        port,
        ..ConnectFlags::default()
    };
    let from_file = sources("cid: 16\nport: 53000\n").unwrap();
    let addr = |sources: &Sources, flags| sources.connect(flags).map(|c| c.addr);
    assert_eq!(
        addr(&from_file, flags(None, None)).unwrap(),
        Address::vsock(16, 53000)
    );
    assert_eq!(
        addr(&from_file, flags(None, Some(1))).unwrap(),
        Address::vsock(16, 1)
    );
    assert_eq!(
        addr(&Sources::default(), flags(Some(3), Some(1))).unwrap(),
        Address::vsock(3, 1)
    );
    assert!(matches!(
        addr(&Sources::default(), flags(None, Some(1))),
        Err(SettingsError::PortWithoutCid)
    ));
    let err = addr(&Sources::default(), flags(None, None)).unwrap_err();
    assert!(matches!(err, SettingsError::NoAddress));
    assert!(err.to_string().contains("PIPELINE_ADDR"), "{err}");
}

#[test]
fn roots_come_from_the_flags_else_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let yaml = format!("roots: [{}]\n", root.display());
    let settings = sources(&yaml).unwrap().listen(listen_flags()).unwrap();
    assert!(settings.policy.roots() == [root.clone()]);
    let missing = root.join("missing");
    assert_invalid(
        sources(&yaml).unwrap().listen(ListenFlags {
            roots: vec![missing.clone()],
            ..listen_flags()
        }),
        ROOTS,
        Origin::Flag,
        Problem::Root(format!(
            "root {}: No such file or directory (os error 2)",
            missing.display()
        )),
    );
    let yaml = format!("roots: [{}]\n", missing.display());
    assert_invalid(
        sources(&yaml).unwrap().listen(listen_flags()),
        ROOTS,
        file(),
        Problem::Root(format!(
            "root {}: No such file or directory (os error 2)",
            missing.display()
        )),
    );
}

#[test]
fn max_clients_must_be_at_least_one() {
    assert_invalid(
        Sources::default().listen(ListenFlags {
            max_clients: Some(0),
            ..listen_flags()
        }),
        MAX_CLIENTS,
        Origin::Flag,
        Problem::Zero,
    );
    assert_invalid(
        sources("max_clients: 0\n"),
        MAX_CLIENTS,
        file(),
        Problem::Zero,
    );
}

#[test]
fn idle_timeout_must_be_at_least_one_second() {
    let flag = Sources::default().listen(ListenFlags {
        idle_timeout: Some(0),
        ..listen_flags()
    });
    assert_invalid(flag, IDLE_TIMEOUT_SECS, Origin::Flag, Problem::ZeroIdle);
    assert_invalid(
        sources("idle_timeout_secs: 0\n"),
        IDLE_TIMEOUT_SECS,
        file(),
        Problem::ZeroIdle,
    );
}

#[test]
fn connect_attempts_must_be_at_least_one() {
    assert_invalid(
        Sources::default().connect(ConnectFlags {
            connect_attempts: Some(0),
            ..connect_flags()
        }),
        CONNECT_ATTEMPTS,
        Origin::Flag,
        Problem::Zero,
    );
    assert_invalid(
        sources("connect_attempts: 0\n"),
        CONNECT_ATTEMPTS,
        file(),
        Problem::Zero,
    );
}

#[test]
fn socket_mode_must_be_octal() {
    for good in ["0600", "600", "0o644", "777"] {
        assert!(socket_mode(good).is_ok(), "{good}");
    }
    assert_invalid(
        Sources::default().listen(ListenFlags {
            socket_mode: Some("999".into()),
            ..listen_flags()
        }),
        SOCKET_MODE,
        Origin::Flag,
        Problem::NotOctalMode("999".into()),
    );
    assert_invalid(
        sources("socket_mode: \"1777\"\n"),
        SOCKET_MODE,
        file(),
        Problem::NotOctalMode("1777".into()),
    );
}

#[test]
fn a_bad_file_value_is_refused_even_when_a_flag_overrides_it() {
    assert!(sources("max_clients: 0\n").is_err());
}

#[test]
fn the_file_gives_addr_or_cid_and_port() {
    assert_invalid(
        sources("addr: unix:/x\nport: 1\n"),
        ADDR,
        file(),
        Problem::AddrAndCidPort,
    );
    assert_invalid(sources("cid: 3\n"), CID, file(), Problem::CidWithoutPort);
}

#[test]
fn plaintext_only_on_local_addresses_unless_insecure() {
    let tcp = |host: &str| Address::Tcp {
        host: host.into(),
        port: 1,
    };
    let flags = |addr, attested, insecure_plaintext| ListenFlags {
        addr: Some(addr),
        attested,
        insecure_plaintext,
        ..ListenFlags::default()
    };
    let sources = Sources::default();
    for local in [unix("/s"), tcp("localhost"), tcp("127.0.0.1"), tcp("::1")] {
        assert!(sources.listen(flags(local, false, false)).is_ok());
    }
    let err = sources
        .listen(flags(tcp("10.0.0.1"), false, false))
        .unwrap_err();
    assert!(
        matches!(err, SettingsError::PlaintextNotLocal(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("--insecure-plaintext"), "{err}");
    assert!(sources.listen(flags(tcp("10.0.0.1"), true, false)).is_ok());
    assert!(sources.listen(flags(tcp("10.0.0.1"), false, true)).is_ok());
}

#[test]
fn run_takes_argv_or_a_shell_line() {
    let settings = run(RunFlags {
        argv: vec!["ls".into(), "-la".into()],
        env: vec!["K=a=b".into()],
        timeout: Some(1.5),
        ..RunFlags::default()
    })
    .unwrap();
    assert_eq!(settings.argv, [OsString::from("ls"), OsString::from("-la")]);
    assert_eq!(settings.env, [(OsString::from("K"), OsString::from("a=b"))]);
    assert_eq!(settings.timeout, Some(Duration::from_millis(1500)));
    let settings = run(RunFlags {
        command: Some("uname -a".into()),
        ..RunFlags::default()
    })
    .unwrap();
    assert_eq!(settings.argv, ["sh", "-c", "uname -a"].map(OsString::from));
    assert!(matches!(
        run(RunFlags::default()),
        Err(SettingsError::NothingToRun)
    ));
}

#[test]
fn run_timeout_must_be_positive() {
    let flags = |secs| RunFlags {
        command: Some("true".into()),
        timeout: Some(secs),
        ..RunFlags::default()
    };
    for bad in [0.0, -1.0, f64::INFINITY] {
        assert_invalid(
            run(flags(bad)),
            TIMEOUT,
            Origin::Flag,
            Problem::NotPositiveSeconds(bad),
        );
    }
}

#[test]
fn env_items_need_a_name_and_a_value() {
    let flags = |item: &str| RunFlags {
        command: Some("true".into()),
        env: vec![item.into()],
        ..RunFlags::default()
    };
    assert_invalid(
        run(flags("=x")),
        ENV,
        Origin::Flag,
        Problem::EmptyName("=x".into()),
    );
    assert_invalid(
        run(flags("NO_SUCH_VARIABLE_FOR_PIPELINE_TESTS")),
        ENV,
        Origin::Flag,
        Problem::NoSuchVariable("NO_SUCH_VARIABLE_FOR_PIPELINE_TESTS".into()),
    );
    let path = run(flags("PATH")).unwrap();
    assert_eq!(path.env[0].0, "PATH");
}

#[test]
fn load_reads_the_named_file() {
    assert!(Sources::load(None).is_ok());
    let err = Sources::load(Some(Path::new("/nonexistent/pipeline.yaml"))).unwrap_err();
    assert!(matches!(err, SettingsError::File(ConfigError::Read { .. })));
    assert!(err.to_string().contains("/nonexistent/pipeline.yaml"));
}

#[test]
fn cp_operands() {
    assert_eq!(
        operand(OsStr::new("enclave:/a/b")),
        (true, PathBuf::from("/a/b"))
    );
    assert_eq!(
        operand(OsStr::new("./local")),
        (false, PathBuf::from("./local"))
    );
}

#[test]
fn cp_takes_one_enclave_operand_and_a_named_source() {
    let cp = |src: &str, dst: &str| Transfer::cp(OsStr::new(src), OsStr::new(dst), false);
    let up = cp("dir", "enclave:/in").unwrap();
    assert!(up.to_enclave);
    assert!(matches!(up.placement, Placement::IntoDirectory { .. }));
    let down = cp("enclave:/out/.", "here").unwrap();
    assert!(!down.to_enclave);
    assert_eq!(down.expect, Expect::Directory);
    for (src, dst) in [("a", "b"), ("enclave:/a", "enclave:/b")] {
        assert!(matches!(cp(src, dst), Err(SettingsError::NotOneRemote)));
    }
    let err = cp("/", "enclave:/in").unwrap_err();
    assert!(matches!(err, SettingsError::NoName(_)), "{err:?}");
    assert_eq!(err.to_string(), "cannot copy /: it has no name");
}
