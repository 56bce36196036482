//! File and directory copy against a real server process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Kind, Server, snapshot, stderr, temp_leftovers, write_pattern};
use filetime::FileTime;

fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    filetime::set_symlink_file_times(
        path,
        FileTime::from_unix_time(secs, nanos),
        FileTime::from_unix_time(secs, nanos),
    )
    .unwrap();
}

/// A tree with every kind of entry the copy must keep.
fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
    fs::create_dir_all(root.join("private")).unwrap();
    fs::create_dir_all(root.join("readonly")).unwrap();
    write_pattern(&root.join("bin/tool"), 300_000, 1);
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("private/secret"), b"s3cr3t").unwrap();
    fs::set_permissions(
        root.join("private/secret"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::write(root.join("name with spaces.txt"), b"spaces").unwrap();
    fs::write(
        root.join(OsStr::from_bytes(b"latin1-\xe9t\xe9")),
        b"not utf-8 name",
    )
    .unwrap();
    fs::write(root.join("zero"), b"").unwrap();
    fs::write(root.join("readonly/inside"), b"ro").unwrap();
    symlink("bin/tool", root.join("relative-link")).unwrap();
    symlink("/etc/hostname", root.join("absolute-link")).unwrap();
    symlink("does/not/exist", root.join("dangling-link")).unwrap();
    symlink("../..", root.join("bin/up-link")).unwrap();
    for (i, rel) in [
        "bin/tool",
        "private/secret",
        "zero",
        "relative-link",
        "bin/up-link",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(rel), 1_000_000_000 + i as i64, 123_456_789);
    }
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(root.join("bin"), fs::Permissions::from_mode(0o751)).unwrap();
    for (i, rel) in [
        "bin",
        "private",
        "empty/nested-empty",
        "empty",
        "readonly",
        "",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(rel), 1_100_000_000 + i as i64, 5);
    }
    fs::set_permissions(root.join("readonly"), fs::Permissions::from_mode(0o555)).unwrap();
}

#[test]
fn directory_tree_round_trips_identically() {
    for kind in [Kind::Unix, Kind::Tcp] {
        let server = Server::start_on(kind, &[]);
        let work = tempfile::tempdir().unwrap();
        let src = work.path().join("tree");
        sample_tree(&src);
        let remote = server.dir.path().join("remote");
        fs::create_dir(&remote).unwrap();

        let out = server.client([
            "cp".as_ref(),
            src.as_os_str(),
            format!("enclave:{}", remote.display()).as_ref(),
        ]);
        assert!(out.status.success(), "{kind:?}: {}", stderr(&out));
        assert_eq!(
            snapshot(&remote.join("tree")),
            snapshot(&src),
            "{kind:?}: upload differs"
        );

        let back = work.path().join("back");
        let out = server.client([
            "cp".as_ref(),
            format!("enclave:{}", remote.join("tree").display()).as_ref(),
            back.as_os_str(),
        ]);
        assert!(out.status.success(), "{kind:?}: {}", stderr(&out));
        assert_eq!(
            snapshot(&back),
            snapshot(&src),
            "{kind:?}: download differs"
        );
        assert!(temp_leftovers(server.dir.path()).is_empty());
        assert!(temp_leftovers(work.path()).is_empty());
    }
}

#[test]
fn readable_by_all_opens_what_it_writes_to_every_user() {
    let server = Server::start(&["--readable-by-all"]);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("model");
    fs::create_dir_all(src.join("private")).unwrap();
    fs::write(src.join("private/weights.bin"), b"weights").unwrap();
    fs::write(src.join("run.sh"), b"#!/bin/sh\n").unwrap();
    fs::write(src.join("single.bin"), b"one").unwrap();
    for (path, mode) in [
        ("private/weights.bin", 0o600),
        ("run.sh", 0o4700),
        ("single.bin", 0o2640),
        ("private", 0o700),
        ("", 0o1700),
    ] {
        fs::set_permissions(src.join(path), fs::Permissions::from_mode(mode)).unwrap();
    }
    let remote = server.dir.path().join("inbox");
    fs::create_dir(&remote).unwrap();
    server.client_ok([
        "cp".as_ref(),
        src.as_os_str(),
        format!("enclave:{}", remote.join("model").display()).as_ref(),
    ]);
    server.client_ok([
        "cp".as_ref(),
        src.join("single.bin").as_os_str(),
        format!("enclave:{}", remote.join("single.bin").display()).as_ref(),
    ]);
    let mode = |rel: &str| fs::metadata(remote.join(rel)).unwrap().mode() & 0o7777;
    assert_eq!(mode("model/private/weights.bin"), 0o644);
    assert_eq!(mode("model/run.sh"), 0o755);
    assert_eq!(mode("model/single.bin"), 0o644);
    assert_eq!(mode("single.bin"), 0o644);
    assert_eq!(mode("model/private"), 0o755);
    assert_eq!(mode("model"), 0o755);
    assert_eq!(
        fs::read(remote.join("model/private/weights.bin")).unwrap(),
        b"weights"
    );
}

#[test]
fn sentient_commands() {
    let server = Server::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let remote = server.dir.path();
    fs::write(work.path().join("input.json"), b"{\"k\": 1}").unwrap();
    let dest = remote.join("deep/new/dirs/input.json");
    server.client_ok([
        "send-file".as_ref(),
        "--localpath".as_ref(),
        work.path().join("input.json").as_os_str(),
        "--remotepath".as_ref(),
        dest.as_os_str(),
    ]);
    assert_eq!(fs::read(&dest).unwrap(), b"{\"k\": 1}");

    let fetched = work.path().join("fetched/here/out.json");
    server.client_ok([
        "recv-file".as_ref(),
        "--remotepath".as_ref(),
        dest.as_os_str(),
        "--localpath".as_ref(),
        fetched.as_os_str(),
    ]);
    assert_eq!(fs::read(&fetched).unwrap(), b"{\"k\": 1}");

    let src = work.path().join("app");
    sample_tree(&src);
    let remote_dir = remote.join("apps/app");
    server.client_ok([
        "send-dir".as_ref(),
        "--localdir".as_ref(),
        src.as_os_str(),
        "--remotedir".as_ref(),
        remote_dir.as_os_str(),
    ]);
    assert_eq!(snapshot(&remote_dir), snapshot(&src));

    let local_dir = work.path().join("restored");
    server.client_ok([
        "recv-dir".as_ref(),
        "--remotedir".as_ref(),
        remote_dir.as_os_str(),
        "--localdir".as_ref(),
        local_dir.as_os_str(),
    ]);
    assert_eq!(snapshot(&local_dir), snapshot(&src));

    // Kinds are checked: a directory is not a file and the other way round.
    let out = server.client([
        "recv-file".as_ref(),
        "--remotepath".as_ref(),
        remote_dir.as_os_str(),
        "--localpath".as_ref(),
        work.path().join("x").as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    let out = server.client([
        "recv-dir".as_ref(),
        "--remotedir".as_ref(),
        dest.as_os_str(),
        "--localdir".as_ref(),
        work.path().join("y").as_os_str(),
    ]);
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
}

#[test]
fn docker_cp_placement_rules() {
    let server = Server::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let remote = server.dir.path().join("r");
    fs::create_dir(&remote).unwrap();
    let file = work.path().join("f.txt");
    fs::write(&file, b"one").unwrap();
    let enclave = |p: &Path| format!("enclave:{}", p.display());

    // Into an existing directory.
    server.client_ok(["cp".as_ref(), file.as_os_str(), enclave(&remote).as_ref()]);
    assert_eq!(fs::read(remote.join("f.txt")).unwrap(), b"one");
    // To a new name.
    server.client_ok([
        "cp".as_ref(),
        file.as_os_str(),
        enclave(&remote.join("g.txt")).as_ref(),
    ]);
    assert_eq!(fs::read(remote.join("g.txt")).unwrap(), b"one");
    // Overwriting replaces the file (a new inode: readers never see a mix).
    let inode = fs::metadata(remote.join("g.txt")).unwrap().ino();
    fs::write(&file, b"two").unwrap();
    server.client_ok([
        "cp".as_ref(),
        file.as_os_str(),
        enclave(&remote.join("g.txt")).as_ref(),
    ]);
    assert_eq!(fs::read(remote.join("g.txt")).unwrap(), b"two");
    assert_ne!(fs::metadata(remote.join("g.txt")).unwrap().ino(), inode);
    // Missing parent: refused, like docker cp.
    let out = server.client([
        "cp".as_ref(),
        file.as_os_str(),
        enclave(&remote.join("no/such/f")).as_ref(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    // A directory merges into an existing one of the same name; SRC/. copies content.
    let dir = work.path().join("d");
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("sub/new"), b"new").unwrap();
    fs::create_dir_all(remote.join("d/sub")).unwrap();
    fs::write(remote.join("d/sub/old"), b"old").unwrap();
    server.client_ok(["cp".as_ref(), dir.as_os_str(), enclave(&remote).as_ref()]);
    assert_eq!(fs::read(remote.join("d/sub/new")).unwrap(), b"new");
    assert_eq!(fs::read(remote.join("d/sub/old")).unwrap(), b"old");
    let content = format!("{}/.", dir.display());
    let flat = remote.join("flat");
    fs::create_dir(&flat).unwrap();
    server.client_ok(["cp", &content, &enclave(&flat)]);
    assert_eq!(fs::read(flat.join("sub/new")).unwrap(), b"new");

    // A directory never replaces a file, nor a file a directory.
    fs::write(remote.join("plain"), b"p").unwrap();
    let out = server.client([
        "cp".as_ref(),
        dir.as_os_str(),
        enclave(&remote.join("plain")).as_ref(),
    ]);
    assert!(
        stderr(&out).contains("cannot overwrite non-directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(remote.join("plain")).unwrap(), b"p");
    let out = server.client([
        "send-file".as_ref(),
        "--localpath".as_ref(),
        file.as_os_str(),
        "--remotepath".as_ref(),
        remote.join("d").as_os_str(),
    ]);
    assert!(
        stderr(&out).contains("cannot overwrite directory"),
        "{}",
        stderr(&out)
    );

    // Symlinks are copied as links, or followed with -L.
    let link = work.path().join("link");
    symlink(&file, &link).unwrap();
    server.client_ok(["cp".as_ref(), link.as_os_str(), enclave(&remote).as_ref()]);
    assert!(
        fs::symlink_metadata(remote.join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    server.client_ok([
        "cp".as_ref(),
        "-L".as_ref(),
        link.as_os_str(),
        enclave(&remote.join("followed")).as_ref(),
    ]);
    assert_eq!(fs::read(remote.join("followed")).unwrap(), b"two");
    assert!(
        !fs::symlink_metadata(remote.join("followed"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let out = server.client(["cp", "a", "b"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(temp_leftovers(server.dir.path()).is_empty());
}

#[test]
fn roots_confine_every_path() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"outside").unwrap();
    let root_holder = tempfile::tempdir().unwrap();
    let root = root_holder.path().join("root");
    fs::create_dir(&root).unwrap();
    symlink(outside.path(), root.join("escape")).unwrap();
    let server = Server::start(&["--root", root.to_str().unwrap()]);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("f");
    fs::write(&file, b"data").unwrap();
    let enclave = |p: &Path| format!("enclave:{}", p.display());

    server.client_ok(["cp".as_ref(), file.as_os_str(), enclave(&root).as_ref()]);
    for dest in [
        outside.path().join("f"),
        root.join("escape/f"),
        root.join("escape"),
    ] {
        let out = server.client(["cp".as_ref(), file.as_os_str(), enclave(&dest).as_ref()]);
        assert!(!out.status.success(), "{}", dest.display());
        assert!(
            stderr(&out).contains("outside the allowed roots"),
            "{}",
            stderr(&out)
        );
    }
    let out = server.client([
        "send-file".as_ref(),
        "--localpath".as_ref(),
        file.as_os_str(),
        "--remotepath".as_ref(),
        root.join("escape/new/dir/f").as_os_str(),
    ]);
    assert!(
        stderr(&out).contains("outside the allowed roots"),
        "{}",
        stderr(&out)
    );
    assert!(!outside.path().join("new").exists());
    let dotdot = format!("enclave:{}/../x", root.display());
    let out = server.client(["cp", file.to_str().unwrap(), &dotdot]);
    assert!(stderr(&out).contains("\"..\""), "{}", stderr(&out));

    for source in [outside.path().join("secret"), root.join("escape/secret")] {
        let out = server.client([
            "cp".as_ref(),
            enclave(&source).as_ref(),
            work.path().join("got").as_os_str(),
        ]);
        assert!(
            stderr(&out).contains("outside the allowed roots"),
            "{}",
            stderr(&out)
        );
    }
    let out = server.client([
        "cp".as_ref(),
        "-L".as_ref(),
        enclave(&root.join("escape")).as_ref(),
        work.path().join("got").as_os_str(),
    ]);
    assert!(
        stderr(&out).contains("outside the allowed roots"),
        "{}",
        stderr(&out)
    );
    // The link itself may be copied: it is an entry of the root.
    server.client_ok([
        "cp".as_ref(),
        enclave(&root.join("escape")).as_ref(),
        work.path().join("link").as_os_str(),
    ]);
    assert!(!work.path().join("got").exists());
}

#[test]
fn interrupted_upload_leaves_nothing_behind() {
    let server = Server::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big");
    write_pattern(&big, 256 * 1024 * 1024, 7);
    let remote = server.dir.path().join("dest");
    fs::create_dir(&remote).unwrap();
    let mut child = server
        .cmd()
        .args([
            "cp".as_ref(),
            big.as_os_str(),
            format!("enclave:{}", remote.join("big").display()).as_ref(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        testkit::eventually(Duration::from_secs(30), || !temp_leftovers(&remote)
            .is_empty()),
        "the transfer never started"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        testkit::eventually(Duration::from_secs(10), || temp_leftovers(&remote)
            .is_empty()),
        "temporary copy left: {:?}",
        temp_leftovers(&remote)
    );
    assert!(
        !remote.join("big").exists(),
        "a partial file was put in place"
    );
    server.assert_serving();
}

#[test]
fn interrupted_download_leaves_nothing_behind() {
    let server = Server::start(&[]);
    let big = server.dir.path().join("big");
    write_pattern(&big, 256 * 1024 * 1024, 8);
    let work = tempfile::tempdir().unwrap();
    let child = server
        .cmd()
        .args([
            "cp".as_ref(),
            format!("enclave:{}", big.display()).as_ref(),
            work.path().join("big").as_os_str(),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        testkit::eventually(Duration::from_secs(30), || !temp_leftovers(work.path())
            .is_empty()),
        "the transfer never started"
    );
    drop(server);
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "an interrupted download reported success"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    assert!(
        temp_leftovers(work.path()).is_empty(),
        "{:?}",
        temp_leftovers(work.path())
    );
    assert!(!work.path().join("big").exists());
}

#[test]
fn many_clients_copy_at_once() {
    let server = Server::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let remote = server.dir.path().join("many");
    fs::create_dir(&remote).unwrap();
    let children: Vec<_> = (0..32)
        .map(|i| {
            let src = work.path().join(format!("f{i}"));
            write_pattern(&src, 1_000_000 + i, i);
            let child = server
                .cmd()
                .args([
                    "cp".as_ref(),
                    src.as_os_str(),
                    format!("enclave:{}", remote.display()).as_ref(),
                ])
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (src, child)
        })
        .collect();
    for (src, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let name = src.file_name().unwrap();
        assert_eq!(
            common::digest_file(&remote.join(name)),
            common::digest_file(&src)
        );
    }
}

#[test]
fn run_and_copy_through_hybrid_vsock() {
    let server = Server::start(&[]);
    let vm = tempfile::tempdir().unwrap();
    let vm_socket = vm.path().join("vm.vsock");
    let vmm = common::fake_vmm(&vm_socket, 53000, server.socket_path());
    let addr = format!("hvsock:{}:53000", vm_socket.display());
    let client = |args: &[&OsStr]| {
        server
            .cmd()
            .env("PIPELINE_ADDR", &addr)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    let out = client(&[
        "run".as_ref(),
        "--".as_ref(),
        "sh".as_ref(),
        "-c".as_ref(),
        "echo via vsock; exit 5".as_ref(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}\n{}",
        stderr(&out),
        server.log()
    );
    assert_eq!(common::stdout(&out), "via vsock\n");

    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("tree");
    sample_tree(&src);
    let remote = server.dir.path().join("over-hvsock");
    let up = client(&[
        "cp".as_ref(),
        src.as_os_str(),
        format!("enclave:{}", remote.display()).as_ref(),
    ]);
    assert!(up.status.success(), "{}", stderr(&up));
    let back = work.path().join("back");
    let down = client(&[
        "cp".as_ref(),
        format!("enclave:{}", remote.display()).as_ref(),
        back.as_os_str(),
    ]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(snapshot(&back), snapshot(&src));

    fs::remove_file(&vm_socket).unwrap();
    assert_eq!(vmm.join().unwrap(), 3);
}

#[test]
fn progress_on_a_terminal_silence_otherwise() {
    let server = Server::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("payload.bin");
    write_pattern(&src, 8 * 1024 * 1024, 5);
    let remote = server.dir.path();

    // Not a terminal: a successful copy prints nothing at all.
    let out = server.client([
        "cp".as_ref(),
        src.as_os_str(),
        format!("enclave:{}/quiet.bin", remote.display()).as_ref(),
    ]);
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );

    // On a terminal (a pty from script(1)): a bar, then a summary line.
    let command = format!(
        "{} cp {} enclave:{}/tty.bin",
        common::BIN,
        src.display(),
        remote.display()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("PIPELINE_ADDR", &server.addr)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{transcript}");
    assert!(
        transcript
            .contains("copied 1 file(s), 0 director(ies), 0 symlink(s), 8388608 bytes to enclave:"),
        "{transcript}"
    );
}
