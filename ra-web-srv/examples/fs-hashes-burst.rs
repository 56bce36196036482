//! Benchmark helper (`bench/ra-web-srv.sh`): puts N synthetic entries into
//! KV `fs_hashes` at once and prints how long ra-web-srv takes until all N
//! records are in KV `fs_att_docs`.
//!
//! Usage: `fs-hashes-burst NATS_URL N`

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(count)) = (args.next(), args.next()) else {
        bail!("usage: fs-hashes-burst NATS_URL N");
    };
    let count: u64 = count.parse().context("N")?;
    let js = bus::connect(&url).await?;
    let hashes = bus::open_bucket(&js, bus::FS_HASHES).await?;
    let mut docs = bus::open_bucket(&js, bus::FS_ATT_DOCS).await?;
    let before = docs.stream.info().await?.state.messages;
    let started = Instant::now();
    for i in 0..count {
        let path = format!("/bench/burst/file-{i:06}");
        let digest = ra_verify_core::Sha3Digest::of(path.as_bytes())?;
        hashes
            .put(
                bus::key::encode(std::path::Path::new(&path)),
                digest.to_hex().into(),
            )
            .await?;
    }
    let published = started.elapsed();
    loop {
        let done = docs
            .stream
            .info()
            .await?
            .state
            .messages
            .saturating_sub(before);
        if done >= count {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {done} of {count} records after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total = started.elapsed();
    println!(
        "{count} fs_hashes entries: published in {:.2} s, all {count} documents in fs_att_docs after {:.2} s ({:.0} documents/s)",
        published.as_secs_f64(),
        total.as_secs_f64(),
        count as f64 / total.as_secs_f64()
    );
    Ok(())
}
