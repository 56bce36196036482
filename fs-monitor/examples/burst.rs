//! Benchmark helper (run by `bench/fs-monitor.sh`): writes N new files into
//! a directory that a running `fs-monitor` watches, and reports how long it
//! took until the bucket held a hash for every one of them, then checks
//! each hash against the file.
//!
//! `burst DIR NATS_URL BUCKET N` prints `written_s=… all_in_kv_s=… checked=N`;
//! `burst DIR - - N` only writes the files (the baseline) and prints
//! `written_s=…`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, url, bucket, count] = args.as_slice() else {
        bail!("usage: burst DIR NATS_URL BUCKET N");
    };
    let dir = PathBuf::from(dir).canonicalize().context("DIR")?;
    let count: usize = count.parse().context("N")?;
    if url == "-" {
        let start = Instant::now();
        write_files(&dir, count)?;
        println!("written_s={:.3}", start.elapsed().as_secs_f64());
        return Ok(());
    }
    let js = bus::connect(url).await?;
    let store = bus::open_bucket(&js, bucket).await?;
    let stream = store.stream.clone();
    let before = stream.get_info().await?.state.messages;

    let start = Instant::now();
    let paths = tokio::task::spawn_blocking(move || write_files(&dir, count)).await??;
    let written = start.elapsed();

    let target = before + u64::try_from(count)?;
    let deadline = start + Duration::from_secs(300);
    // Stream info is fetched afresh each time (`Store::status` is cached).
    while stream.get_info().await?.state.messages < target {
        if Instant::now() > deadline {
            bail!("the bucket did not reach {count} new keys in 300 s");
        }
        if count > 1 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // One file: poll back to back (each poll is a round trip to
        // nats-server), to measure the latency finer than the timer's 1 ms.
    }
    let all_in = start.elapsed();

    let mut checked = 0;
    for path in &paths {
        let key = bus::key::encode(path);
        let value = store
            .get(&key)
            .await?
            .with_context(|| format!("{} missing", path.display()))?;
        let stored = bus::value::parse_hash(&value)?;
        if stored != ra_verify_core::hash::hash_file(path)? {
            bail!("{}: wrong hash in the bucket", path.display());
        }
        checked += 1;
    }
    println!(
        "written_s={:.3} all_in_kv_s={:.3} checked={checked}",
        written.as_secs_f64(),
        all_in.as_secs_f64()
    );
    Ok(())
}

/// Writes `count` new files (16 B to 1.4 KiB) into `dir`.
fn write_files(dir: &std::path::Path, count: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::with_capacity(count);
    for i in 0..count {
        let path = dir.join(format!("f{i:06}.bin"));
        std::fs::write(&path, format!("burst file {i}\n").repeat(1 + i % 64))?;
        paths.push(path);
    }
    Ok(paths)
}
