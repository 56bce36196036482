//! Load generator and server for `bench/pf-proxy.sh` (not a test): measures
//! throughput, connections per second and round-trip latency of any TCP
//! path, so the same numbers can be taken directly, through socat and
//! through pf-proxy.
//!
//! ```text
//! pf-bench server ADDR                      sink ('S') or echo ('E') per connection
//! pf-bench throughput ADDR STREAMS BYTES    total bytes / seconds, each stream sends BYTES
//! pf-bench connect-rate ADDR WORKERS SECS   connections per second (1-byte echo each)
//! pf-bench latency ADDR ROUNDS SIZE         p50/p99 of SIZE-byte request/response
//! ```
//! Each client prints one line of `key=value` for the script to read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: usize = 256 * 1024;

fn arg(args: &[String], i: usize) -> &str {
    args.get(i).map(String::as_str).unwrap_or_else(|| {
        eprintln!("usage: pf-bench server|throughput|connect-rate|latency ADDR ...");
        std::process::exit(64)
    })
}

fn num(args: &[String], i: usize) -> u64 {
    arg(args, i).parse().unwrap_or_else(|_| {
        eprintln!("argument {i} is not a number");
        std::process::exit(64)
    })
}

async fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

async fn serve(addr: &str) {
    let listener = TcpListener::bind(addr).await.unwrap();
    loop {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        tokio::spawn(async move {
            let mut mode = [0u8; 1];
            if stream.read_exact(&mut mode).await.is_err() {
                return;
            }
            let mut buf = vec![0u8; CHUNK];
            if mode[0] == b'S' {
                let mut total = 0u64;
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n as u64,
                    }
                }
                let _ = stream.write_all(&total.to_be_bytes()).await;
            } else {
                let (mut rd, mut wr) = stream.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            }
        });
    }
}

async fn throughput(addr: String, streams: u64, bytes: u64) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut stream = connect(&addr).await;
                stream.write_all(b"S").await.unwrap();
                let buf = vec![0x5au8; CHUNK];
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    stream.write_all(&buf[..n]).await.unwrap();
                    left -= n as u64;
                }
                stream.shutdown().await.unwrap();
                let mut count = [0u8; 8];
                stream.read_exact(&mut count).await.unwrap();
                assert_eq!(u64::from_be_bytes(count), bytes, "bytes lost on the way");
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let mib = (streams * bytes) as f64 / (1024.0 * 1024.0);
    println!("mib_per_s={:.1} secs={secs:.3}", mib / secs);
}

async fn connect_rate(addr: String, workers: u64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let mut stream = connect(&addr).await;
                    stream.write_all(b"E!").await.unwrap();
                    let mut one = [0u8; 1];
                    stream.read_exact(&mut one).await.unwrap();
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    println!(
        "conn_per_s={:.0}",
        total as f64 / start.elapsed().as_secs_f64()
    );
}

async fn latency(addr: String, rounds: u64, size: usize) {
    let mut stream = connect(&addr).await;
    stream.write_all(b"E").await.unwrap();
    let request = vec![0x42u8; size];
    let mut response = vec![0u8; size];
    let mut samples = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let start = Instant::now();
        stream.write_all(&request).await.unwrap();
        stream.read_exact(&mut response).await.unwrap();
        samples.push(start.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!("p50_us={:.1} p99_us={:.1}", at(0.50), at(0.99));
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = arg(&args, 2).to_owned();
    match arg(&args, 1) {
        "server" => serve(&addr).await,
        "throughput" => throughput(addr, num(&args, 3), num(&args, 4)).await,
        "connect-rate" => connect_rate(addr, num(&args, 3), num(&args, 4)).await,
        "latency" => latency(addr, num(&args, 3), num(&args, 4) as usize).await,
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(64)
        }
    }
}
