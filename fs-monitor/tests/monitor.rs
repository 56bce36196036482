#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! fs-monitor against real inotify and a real nats-server.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bus::value::{HashChange, read_entry};
use common::{Harness, expect, hex_of, write};
use futures::StreamExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_already_there_are_hashed_and_stale_keys_go() {
    let mut h = Harness::new().await;
    let a = h.root.join("a.txt");
    let b = h.root.join("sub/deeper/b.bin");
    write(&a, b"alpha");
    write(&b, &[7u8; 100_000]);
    let empty = h.root.join("empty");
    write(&empty, b"");
    // A key for a file that is gone, one with a wrong hash, and one outside
    // the watched tree that belongs to someone else.
    let gone = h.root.join("gone.txt");
    let other = PathBuf::from("/elsewhere/x");
    let wrong = [1u8; 64];
    for (path, digest) in [(&gone, [2u8; 64]), (&a, wrong), (&other, [3u8; 64])] {
        h.store
            .put(
                bus::key::encode(path),
                bus::value::hash_value(&bus::value::Digest(digest)),
            )
            .await
            .unwrap();
    }
    h.start(None).await;
    h.settle(&expect([&a, &b, &empty])).await;
    assert!(
        h.bucket().await.contains_key(&other),
        "keys outside the tree are left alone"
    );
    // Unchanged files are not written again.
    let puts = h.stats.puts.load(Ordering::Relaxed);
    assert_eq!(
        puts, 3,
        "a (wrong hash), b and empty are written, nothing else"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_modify_delete() {
    let mut h = Harness::new().await;
    h.start(None).await;
    let f = h.root.join("f.txt");
    write(&f, b"one");
    h.settle(&expect([&f])).await;
    write(&f, b"two, longer");
    h.settle(&expect([&f])).await;
    // Appending through an open handle.
    let mut file = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
    file.write_all(b" and more").unwrap();
    drop(file);
    h.settle(&expect([&f])).await;
    // Rewritten over and over while earlier hashes are still running: the
    // last content wins.
    for i in 0..200 {
        write(&f, format!("version {i}").repeat(i).as_bytes());
    }
    h.settle(&expect([&f])).await;
    let nested = h.root.join("new/dir/tree/g.txt");
    write(&nested, b"nested in new directories");
    h.settle(&expect([&f, &nested])).await;
    std::fs::remove_file(&f).unwrap();
    h.settle(&expect([&nested])).await;
    std::fs::remove_dir_all(h.root.join("new")).unwrap();
    h.settle(&BTreeMap::new()).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_in_out_and_within() {
    let mut h = Harness::new().await;
    let outside = h.outside();
    let a = h.root.join("a.txt");
    let d = h.root.join("d");
    let d1 = d.join("one.txt");
    let d2 = d.join("inner/two.txt");
    write(&a, b"a");
    write(&d1, b"one");
    write(&d2, b"two");
    h.start(None).await;
    h.settle(&expect([&a, &d1, &d2])).await;
    let hashed = h.stats.hashed.load(Ordering::Relaxed);

    // Within: a file and a directory; keys move, nothing is rehashed.
    let a2 = h.root.join("renamed.txt");
    std::fs::rename(&a, &a2).unwrap();
    let e = h.root.join("e");
    std::fs::rename(&d, &e).unwrap();
    let (e1, e2) = (e.join("one.txt"), e.join("inner/two.txt"));
    h.settle(&expect([&a2, &e1, &e2])).await;
    assert_eq!(
        h.stats.hashed.load(Ordering::Relaxed),
        hashed,
        "renames are not rehashed"
    );
    // The watches followed the directory: a new file in it is seen.
    let e3 = e.join("inner/three.txt");
    write(&e3, b"three");
    h.settle(&expect([&a2, &e1, &e2, &e3])).await;

    // Out: a file and a directory leave the tree.
    std::fs::rename(&a2, outside.join("a.txt")).unwrap();
    std::fs::rename(&e, outside.join("e")).unwrap();
    h.settle(&BTreeMap::new()).await;
    // Changes out there are not watched any more.
    write(&outside.join("e/inner/late.txt"), b"late");

    // In: a file and a directory (with content) arrive.
    let back = h.root.join("back.txt");
    std::fs::rename(outside.join("a.txt"), &back).unwrap();
    let f = h.root.join("f");
    std::fs::rename(outside.join("e"), &f).unwrap();
    let files = [
        back.clone(),
        f.join("one.txt"),
        f.join("inner/two.txt"),
        f.join("inner/three.txt"),
        f.join("inner/late.txt"),
    ];
    h.settle(&expect(&files)).await;

    // Over an existing file: the target's key takes the source's hash.
    std::fs::rename(&back, f.join("one.txt")).unwrap();
    let files = [
        f.join("one.txt"),
        f.join("inner/two.txt"),
        f.join("inner/three.txt"),
        f.join("inner/late.txt"),
    ];
    h.settle(&expect(&files)).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_file_is_honoured() {
    let mut h = Harness::new().await;
    let ignore = h.dir.path().join(".fsignore");
    std::fs::write(&ignore, "*.tmp\n/build/\n!keep.tmp\n").unwrap();
    let kept = h.root.join("x/keep.tmp");
    write(&kept, b"kept");
    write(&h.root.join("x/skip.tmp"), b"skipped");
    write(&h.root.join("build/out.o"), b"skipped");
    let src_build = h.root.join("src/build/ok.txt");
    write(&src_build, b"not the top build dir");
    h.start(Some(&ignore)).await;
    h.settle(&expect([&kept, &src_build])).await;

    write(&h.root.join("new.tmp"), b"skipped");
    write(&h.root.join("build/more.o"), b"skipped");
    // Written under an ignored name, then renamed: hashed under the new one.
    let tmp = h.root.join("download.tmp");
    write(&tmp, b"downloaded");
    let done = h.root.join("download.bin");
    std::fs::rename(&tmp, &done).unwrap();
    // The other way: leaving for an ignored name removes the key.
    let soon = h.root.join("soon.txt");
    write(&soon, b"soon ignored");
    h.settle(&expect([&kept, &src_build, &done, &soon])).await;
    std::fs::rename(&soon, h.root.join("soon.tmp")).unwrap();
    h.settle(&expect([&kept, &src_build, &done])).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_ignore_file_applies_at_once() {
    let mut h = Harness::new().await;
    // Inside the watched tree, so it is also hashed like any file.
    let ignore = h.root.join(".fsignore");
    std::fs::write(&ignore, "*.tmp\n").unwrap();
    let tmp = h.root.join("a.tmp");
    let txt = h.root.join("sub/b.txt");
    let log = h.root.join("logs/c.log");
    for file in [&tmp, &txt, &log] {
        write(file, b"content");
    }
    h.start(Some(&ignore)).await;
    h.settle(&expect([&ignore, &txt, &log])).await;
    let reloads = || h.stats.ignore_reloads.load(Ordering::Relaxed);

    // Saved in place: a.tmp comes in, sub/b.txt and the logs directory go.
    std::fs::write(&ignore, "*.txt\n/logs/\n").unwrap();
    h.settle(&expect([&ignore, &tmp])).await;
    // The directory is not watched any more: nothing new in it is hashed.
    write(&h.root.join("logs/d.log"), b"ignored");
    write(&h.root.join("sub/e.txt"), b"ignored");

    // Saved by renaming a new file over it, as editors do: an empty
    // file ignores nothing, so everything on disk comes back.
    let fresh = h.dir.path().join("fsignore.new");
    std::fs::write(&fresh, "").unwrap();
    std::fs::rename(&fresh, &ignore).unwrap();
    let all = [
        &ignore,
        &tmp,
        &txt,
        &log,
        &h.root.join("logs/d.log"),
        &h.root.join("sub/e.txt"),
    ];
    h.settle(&expect(all)).await;
    // ... and the logs directory is watched again.
    let f = h.root.join("logs/f.log");
    write(&f, b"seen");
    let mut with_f = all.to_vec();
    with_f.push(&f);
    h.settle(&expect(with_f.clone())).await;

    // A bad pattern leaves the rules in force (nothing is ignored still),
    // the good lines around it included.
    let before = reloads();
    std::fs::write(&ignore, "*.tmp\n[z-a]\n").unwrap();
    let g = h.root.join("g.tmp");
    write(&g, b"still seen");
    with_f.push(&g);
    h.settle(&expect(with_f)).await;
    assert_eq!(reloads(), before, "a bad file is not applied");
    assert!(before >= 2, "{before} reloads");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_write_is_hashed_once_with_its_final_content() {
    let mut h = Harness::new().await;
    h.start(None).await;
    let path = h.root.join("slow.bin");
    let key = bus::key::encode(&path);
    let mut watch = h.store.watch(&key).await.unwrap();
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in 0..5u8 {
        file.write_all(&vec![chunk; 64 * 1024]).unwrap();
        file.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        h.store.get(&key).await.unwrap().is_none(),
        "nothing before the close"
    );
    drop(file);
    let entry = tokio::time::timeout(common::SETTLE, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let digest = ra_verify_core::hash::hash_file(&path).unwrap();
    assert_eq!(
        read_entry(&entry).unwrap(),
        (path.clone(), HashChange::Put(digest))
    );
    // And nothing after it.
    let more = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
    assert!(more.is_err(), "a second write: {more:?}");
    assert_eq!(h.stats.hashed.load(Ordering::Relaxed), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_open_for_writing_is_not_hashed_by_a_scan() {
    let mut h = Harness::new().await;
    let done = h.root.join("done.txt");
    write(&done, b"complete");
    // Half written and still open when the monitor's first scan finds it.
    let busy = h.root.join("busy.bin");
    let mut file = std::fs::File::create(&busy).unwrap();
    file.write_all(b"first half, ").unwrap();
    h.start(None).await;
    h.settle(&expect([&done])).await;
    // A new directory, walked when it appears, with a file open in it.
    std::fs::create_dir(h.root.join("new")).unwrap();
    let busy2 = h.root.join("new/busy2.bin");
    let mut file2 = std::fs::File::create(&busy2).unwrap();
    file2.write_all(b"partial").unwrap();
    std::fs::create_dir(h.root.join("new/sub")).unwrap();
    let finished = h.root.join("new/sub/finished.txt");
    write(&finished, b"finished");
    // Exactly these two: neither open file is in the bucket.
    h.settle(&expect([&done, &finished])).await;
    file.write_all(b"second half").unwrap();
    drop(file);
    file2.write_all(b" and the rest").unwrap();
    drop(file2);
    h.settle(&expect([&done, &finished, &busy, &busy2])).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbolic_links_are_not_followed() {
    let mut h = Harness::new().await;
    let outside = h.outside();
    write(&outside.join("secret/s.txt"), b"outside");
    let real = h.root.join("real.txt");
    write(&real, b"real");
    std::os::unix::fs::symlink(outside.join("secret"), h.root.join("link-dir")).unwrap();
    std::os::unix::fs::symlink(&real, h.root.join("link-file")).unwrap();
    h.start(None).await;
    h.settle(&expect([&real])).await;
    std::os::unix::fs::symlink(outside.join("secret/s.txt"), h.root.join("new-link")).unwrap();
    // A file replaced by a link loses its key.
    let replaced = h.root.join("replaced.txt");
    write(&replaced, b"soon a link");
    h.settle(&expect([&real, &replaced])).await;
    let tmp_link = h.root.join("tmp-link");
    std::os::unix::fs::symlink(&real, &tmp_link).unwrap();
    std::fs::rename(&tmp_link, &replaced).unwrap();
    h.settle(&expect([&real])).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_links_are_hashed_under_their_new_name() {
    let mut h = Harness::new().await;
    let outside = h.outside();
    let source = outside.join("source.txt");
    write(&source, b"linked content");
    h.start(None).await;
    let link = h.root.join("link.txt");
    std::fs::hard_link(&source, &link).unwrap();
    h.settle(&expect([&link])).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_nats_is_down() {
    let mut h = Harness::new().await;
    let before = h.root.join("before.txt");
    write(&before, b"before");
    h.start(None).await;
    h.settle(&expect([&before])).await;
    h.nats.kill();
    let during: Vec<PathBuf> = (0..50)
        .map(|i| h.root.join(format!("during/{i}.txt")))
        .collect();
    for (i, path) in during.iter().enumerate() {
        write(path, format!("written while NATS was down {i}").as_bytes());
    }
    std::fs::remove_file(&before).unwrap();
    // Let the writer fail a few rounds.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.nats.restart().unwrap();
    // The harness's own client reconnects too.
    let expected: BTreeMap<PathBuf, String> =
        during.iter().map(|p| (p.clone(), hex_of(p))).collect();
    h.settle(&expected).await;
    h.stop().await;
}
