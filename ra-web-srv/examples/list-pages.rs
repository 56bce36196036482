//! Benchmark helper (`bench/ra-web-srv.sh`, figure `pages`): starts the
//! server in-process (development NSM, loopback HTTPS), fills its store
//! with N synthetic records through the library (`Store::load`, as the NATS
//! side does at start), and times pages of 1,000 of `/hashes/` and
//! `/readiness/` over HTTPS from the start, the middle and the end of the
//! path order. Also the memory the records take (the growth of the
//! process's resident set, `VmRSS`, over the fill, divided by N) and the
//! time of one path's lookup in the store (mean of 100,000). Output, one
//! figure a line, for the script to format:
//!
//! ```text
//! records N rss_bytes_per_record B fill_s S lookup_ns NS
//! page N LIST POSITION MEDIAN_US BEST_US
//! ```
//!
//! The records are synthetic: 16 prefixes (`/data/set-NN/`), a real
//! SHA3-512, proof and public key strings of real length and an empty
//! document (a real document adds its hex, several KB, to each record).
//! They are loaded in a scrambled order, not sorted.
//!
//! Usage: `list-pages N [ROUNDS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use ra_web_srv::Config;
use ra_web_srv::nsm::NsmKind;
use ra_web_srv::record::{Record, Source};
use serde_json::Value;

/// Items per page.
const PAGE: usize = 1000;

/// The path of record `i`.
fn path_of(i: u64) -> String {
    format!("/data/set-{:02}/file-{i:07}.bin", i % 16)
}

/// Resident set size of this process, bytes.
fn rss() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

/// A reqwest client over rustls (ring) trusting only `cert_pem`.
fn client(cert_pem: &[u8]) -> anyhow::Result<reqwest::Client> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.context("certificate")?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(300))
        .build()?)
}

/// Percent-encodes a query value.
fn q(text: &str) -> String {
    ra_web_srv::api::encode_query(text)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(count) = args.next() else {
        bail!("usage: list-pages N [ROUNDS]");
    };
    let count: u64 = count.parse().context("N")?;
    let rounds: usize = args
        .next()
        .map_or(Ok(10), |r| r.parse())
        .context("ROUNDS")?;
    ensure!(count > 2 * PAGE as u64, "N: at least {}", 2 * PAGE + 1);
    ensure!(rounds >= 1, "ROUNDS: at least 1");

    let state = tempfile::tempdir()?;
    let mut config = Config::development(state.path());
    config.http_listen = None;
    let running = ra_web_srv::start(config).await?;
    let port = match running.https_addr() {
        transport::Address::Tcp { port, .. } => *port,
        other => bail!("not a TCP listener: {other}"),
    };
    let cert_pem = std::fs::read(state.path().join(ra_web_srv::defs::TLS_CERT_FILE))?;
    let client = client(&cert_pem)?;
    let base = format!("https://127.0.0.1:{port}");
    let store = running.app().store.clone();

    // The fields every record shares, at their real lengths.
    let proof = "ab".repeat(81);
    let public_key = "02".repeat(33);
    // Scrambled order: i * K mod N visits every i once (K is a prime that
    // does not divide N, which is checked).
    const K: u64 = 2_654_435_761;
    ensure!(!count.is_multiple_of(K), "N must not be a multiple of {K}");
    let rss_before = rss()?;
    let filled = Instant::now();
    for i in 0..count {
        let n = i.wrapping_mul(K) % count;
        let path = path_of(n);
        let sha3_512 = ra_verify_core::Sha3Digest::of(path.as_bytes())?;
        store.load(Record {
            path,
            sha3_512,
            vrf_suite: ra_verify_core::Suite::P256Sha256Tai,
            vrf_proof: proof.clone(),
            vrf_public_key: public_key.clone(),
            document: String::new(),
            nsm: NsmKind::Development,
            created_at: "2025-01-01T00:00:00Z".into(),
            source: Source::FsHashes,
        });
    }
    let fill_secs = filled.elapsed().as_secs_f64();
    let rss_after = rss()?;
    let (_, health) = get(&client, &format!("{base}/health")).await?;
    ensure!(
        health["records"] == count,
        "the store holds {} records, not {count}",
        health["records"]
    );

    // One path's lookup (`/hash/`, `/proof/`, `/doc/` and every job use
    // it), in the store itself: 100,000 lookups in scrambled order.
    let lookups = 100_000u64;
    let keys: Vec<String> = (0..lookups)
        .map(|i| path_of(i.wrapping_mul(K) % count))
        .collect();
    let looked = Instant::now();
    let mut found = 0usize;
    for key in &keys {
        found += usize::from(store.record(key).is_some());
    }
    let lookup_ns = looked.elapsed().as_nanos() as f64 / lookups as f64;
    ensure!(
        found == keys.len(),
        "lookups found {found} of {}",
        keys.len()
    );
    drop(keys);

    // The paths in order, to know what each page must hold.
    let mut sorted: Vec<String> = (0..count).map(path_of).collect();
    sorted.sort_unstable();
    let n = sorted.len();
    let positions = [
        ("start", None, 0),
        ("middle", Some(sorted[n / 2 - 1].clone()), n / 2),
        ("end", Some(sorted[n - PAGE - 1].clone()), n - PAGE),
    ];
    let expected: Vec<(String, Option<String>)> = positions
        .iter()
        .map(|(_, _, first)| {
            let next = (first + PAGE < n).then(|| sorted[first + PAGE - 1].clone());
            (sorted[*first].clone(), next)
        })
        .collect();
    drop(sorted);

    println!(
        "records {count} rss_bytes_per_record {:.0} fill_s {fill_secs:.2} lookup_ns {lookup_ns:.0}",
        rss_after.saturating_sub(rss_before) as f64 / count as f64
    );
    for (list, key) in [("hashes", "hashes"), ("readiness", "paths")] {
        for ((name, after, _), (first, next)) in positions.iter().zip(&expected) {
            let url = match after {
                None => format!("{base}/{list}/?limit={PAGE}"),
                Some(after) => format!("{base}/{list}/?limit={PAGE}&after={}", q(after)),
            };
            let mut times = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let (took, page) = get(&client, &url).await?;
                let items = page[key].as_array().context("no items")?;
                ensure!(items.len() == PAGE, "{list} {name}: {} items", items.len());
                ensure!(
                    items[0]["path"] == first.as_str() && page["next"] == json_of(next),
                    "{list} {name}: wrong page (first {}, next {})",
                    items[0]["path"],
                    page["next"]
                );
                times.push(took);
            }
            times.sort_unstable();
            println!(
                "page {count} {list} {name} {} {}",
                times[times.len() / 2].as_micros(),
                times[0].as_micros()
            );
        }
    }
    running.stop().await;
    Ok(())
}

fn json_of(next: &Option<String>) -> Value {
    next.as_deref()
        .map_or(Value::Null, |n| Value::String(n.into()))
}

/// GETs `url`: the time to the whole body, and the body as JSON.
async fn get(client: &reqwest::Client, url: &str) -> anyhow::Result<(Duration, Value)> {
    let started = Instant::now();
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    let took = started.elapsed();
    ensure!(status.is_success(), "{url}: {status}");
    Ok((took, serde_json::from_slice(&body)?))
}
