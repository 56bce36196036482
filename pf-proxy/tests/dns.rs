//! DNS over a stream (both sides) and the egress policy's host names,
//! against a small DNS server on loopback standing in for the host's
//! resolver (it answers from a table the test changes, and counts queries).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use pf_proxy::dns_wire::{self, TYPE_A, TYPE_AAAA};
use pf_proxy::{Decision, Policy};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use transport::{Address, Listener, connect};

const BOUND: Duration = Duration::from_secs(30);

type Table = Arc<Mutex<HashMap<String, Vec<(IpAddr, u32)>>>>;

/// The test resolver: UDP and TCP on one port. Names ending in `.big` get
/// a truncated UDP answer (TC) and the full one over TCP.
struct Upstream {
    addr: SocketAddr,
    table: Table,
    queries: Arc<AtomicUsize>,
}

fn question(query: &[u8]) -> (String, u16) {
    let mut pos = 12;
    let mut labels = Vec::new();
    while query[pos] != 0 {
        let len = query[pos] as usize;
        labels.push(String::from_utf8_lossy(&query[pos + 1..pos + 1 + len]).into_owned());
        pos += 1 + len;
    }
    let qtype = u16::from_be_bytes([query[pos + 1], query[pos + 2]]);
    (labels.join("."), qtype)
}

fn answer(table: &Table, query: &[u8]) -> Vec<u8> {
    let (name, qtype) = question(query);
    let records: Vec<_> = table
        .lock()
        .unwrap()
        .get(&name)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(ip, _)| (qtype == TYPE_A) == ip.is_ipv4() && matches!(qtype, TYPE_A | TYPE_AAAA))
        .collect();
    dns_wire::build_answer(query, &records).unwrap()
}

async fn upstream() -> Upstream {
    // The resolver answers UDP and TCP on one port: take a free UDP port and
    // try again when its TCP twin is taken by another test.
    let (udp, tcp, addr) = 'bind: {
        for _ in 0..50 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break 'bind (udp, tcp, addr);
            }
        }
        panic!("no port free for both UDP and TCP on 127.0.0.1");
    };
    let table: Table = Arc::default();
    let queries = Arc::new(AtomicUsize::new(0));
    let (t, q) = (Arc::clone(&table), Arc::clone(&queries));
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let (n, from) = udp.recv_from(&mut buf).await.unwrap();
            q.fetch_add(1, Ordering::SeqCst);
            let query = &buf[..n];
            let reply = if question(query).0.ends_with(".big") {
                dns_wire::empty_reply(query, true, 0).unwrap()
            } else {
                answer(&t, query)
            };
            udp.send_to(&reply, from).await.unwrap();
        }
    });
    let t = Arc::clone(&table);
    tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            let t = Arc::clone(&t);
            tokio::spawn(async move {
                let mut stream = transport::Stream::from_tcp(stream);
                while let Ok(Some(query)) = pf_proxy::dns_stream::read_message(&mut stream).await {
                    let reply = answer(&t, &query);
                    pf_proxy::dns_stream::write_message(&mut stream, &reply)
                        .await
                        .unwrap();
                }
            });
        }
    });
    Upstream {
        addr,
        table,
        queries,
    }
}

/// Both sides of DNS over a Unix-socket "vsock": returns the enclave-side UDP
/// address and its TCP pass-through address.
async fn dns_pair(
    dir: &std::path::Path,
    upstream: SocketAddr,
    shutdown: &CancellationToken,
) -> (SocketAddr, Address) {
    let vsock = Listener::bind(&unix_addr(dir, "dns.vsock")).await.unwrap();
    let vsock_addr = vsock.local_addr().clone();
    let limits = test_limits();
    let token = shutdown.clone();
    tokio::spawn(async move {
        pf_proxy::dns::serve_stream(vsock, upstream, &limits, token)
            .await
            .unwrap();
    });
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_addr = udp.local_addr().unwrap();
    tokio::spawn(pf_proxy::dns::serve_udp(
        udp,
        vsock_addr.clone(),
        Duration::from_secs(5),
        shutdown.clone(),
    ));
    let tcp = start_proxy(
        &tcp_any(),
        pf_proxy::Mode::Forward { target: vsock_addr },
        test_limits(),
    )
    .await;
    (udp_addr, tcp.addr)
}

async fn ask_udp(server: SocketAddr, query: &[u8]) -> Vec<u8> {
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.send_to(query, server).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, _) = timeout(BOUND, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf.truncate(n);
    buf
}

/// One framed query and its framed answer on a DNS-over-TCP stream.
async fn ask_stream(stream: &mut transport::Stream, query: &[u8]) -> Vec<u8> {
    pf_proxy::dns_stream::write_message(stream, query)
        .await
        .unwrap();
    timeout(BOUND, pf_proxy::dns_stream::read_message(stream))
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn udp_and_tcp_queries_cross_the_stream_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream().await;
    let records: Vec<(IpAddr, u32)> = vec![
        ("192.0.2.1".parse().unwrap(), 300),
        ("2001:db8::1".parse().unwrap(), 300),
    ];
    up.table
        .lock()
        .unwrap()
        .insert("api.test".into(), records.clone());
    let shutdown = CancellationToken::new();
    let (udp, tcp) = dns_pair(dir.path(), up.addr, &shutdown).await;

    // UDP, both types, many at once.
    let asks: Vec<_> = (0..50u16)
        .map(|id| {
            tokio::spawn(async move {
                let qtype = if id % 2 == 0 { TYPE_A } else { TYPE_AAAA };
                let query = dns_wire::build_query(id, "api.test", qtype).unwrap();
                let reply = ask_udp(udp, &query).await;
                (qtype, dns_wire::parse_addresses(&reply, id).unwrap())
            })
        })
        .collect();
    for ask in asks {
        let (qtype, got) = ask.await.unwrap();
        assert_eq!(got.rcode, 0);
        assert_eq!(got.records.len(), 1);
        assert_eq!(got.records[0].0.is_ipv4(), qtype == TYPE_A);
    }

    // TCP pass-through: two queries on one connection.
    let mut stream = connect(&tcp).await.unwrap();
    for id in [7u16, 8] {
        let query = dns_wire::build_query(id, "api.test", TYPE_A).unwrap();
        let reply = ask_stream(&mut stream, &query).await;
        assert_eq!(
            dns_wire::parse_addresses(&reply, id).unwrap().records,
            vec![records[0]]
        );
    }
    shutdown.cancel();
}

#[tokio::test]
async fn big_answers_are_truncated_for_udp_and_whole_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream().await;
    let many: Vec<(IpAddr, u32)> = (1..=60u8)
        .map(|i| (IpAddr::from([192, 0, 2, i]), 60))
        .collect();
    up.table
        .lock()
        .unwrap()
        .insert("cdn.big".into(), many.clone());
    let shutdown = CancellationToken::new();
    let (udp, tcp) = dns_pair(dir.path(), up.addr, &shutdown).await;
    let query = dns_wire::build_query(9, "cdn.big", TYPE_A).unwrap();

    // The host side retried over TCP and got ~1 KB: too big for a plain UDP client.
    let reply = ask_udp(udp, &query).await;
    assert!(dns_wire::is_truncated(&reply));
    assert!(
        dns_wire::parse_addresses(&reply, 9)
            .unwrap()
            .records
            .is_empty()
    );

    let mut stream = connect(&tcp).await.unwrap();
    let reply = ask_stream(&mut stream, &query).await;
    assert_eq!(dns_wire::parse_addresses(&reply, 9).unwrap().records, many);
    shutdown.cancel();
}

#[tokio::test]
async fn a_dead_resolver_gives_servfail_and_garbage_closes_only_its_stream() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this UDP port: the resolver is down.
    let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let shutdown = CancellationToken::new();
    let (udp, _) = dns_pair(dir.path(), dead_addr, &shutdown).await;
    let query = dns_wire::build_query(5, "api.test", TYPE_A).unwrap();
    let reply = ask_udp(udp, &query).await;
    assert_eq!(dns_wire::parse_addresses(&reply, 5).unwrap().rcode, 2);

    // A frame shorter than a DNS header closes that stream.
    let mut bad = connect(&unix_addr(dir.path(), "dns.vsock")).await.unwrap();
    bad.write_all(&[0, 3, 1, 2, 3]).await.unwrap();
    // (closed with bytes unread: EOF or a reset, either way nothing comes)
    let (got, _) = timeout(BOUND, read_all_lenient(&mut bad)).await.unwrap();
    assert!(got.is_empty());
    // The forwarder still answers.
    let reply = ask_udp(udp, &query).await;
    assert_eq!(dns_wire::parse_addresses(&reply, 5).unwrap().rcode, 2);
    shutdown.cancel();
}

#[tokio::test]
async fn policy_host_names_follow_their_ttl() {
    let up = upstream().await;
    up.table
        .lock()
        .unwrap()
        .insert("api.test".into(), vec![("192.0.2.1".parse().unwrap(), 1)]);
    let policy = Policy::from_yaml(&format!(
        "allow:\n  - host: api.test\n    ports: [443]\n  - host: gone.test\nresolver: {}\nmin_ttl: 1\n",
        up.addr
    ))
    .unwrap();
    let dst = |text: &str| text.parse::<SocketAddr>().unwrap();
    let queries = || up.queries.load(Ordering::SeqCst);

    assert_eq!(policy.check(dst("192.0.2.1:443")).await, Decision::Allow);
    let after_first = queries();
    assert!(after_first >= 2, "A and AAAA were asked");
    // Within the TTL the cached answer is used.
    assert_eq!(policy.check(dst("192.0.2.1:443")).await, Decision::Allow);
    assert_eq!(policy.check(dst("192.0.2.2:443")).await, Decision::Deny);
    assert_eq!(policy.check(dst("192.0.2.1:80")).await, Decision::Deny);
    let api_queries = queries();

    // The name moves; once the TTL ran out the new address is allowed and
    // the old one no longer is.
    up.table
        .lock()
        .unwrap()
        .insert("api.test".into(), vec![("192.0.2.2".parse().unwrap(), 1)]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(policy.check(dst("192.0.2.2:443")).await, Decision::Allow);
    assert!(
        queries() > api_queries,
        "the expired answer was not asked again"
    );
    assert_eq!(policy.check(dst("192.0.2.1:443")).await, Decision::Deny);
    // A name that does not resolve allows nothing.
    assert_eq!(policy.check(dst("198.51.100.1:443")).await, Decision::Deny);
}

#[tokio::test]
async fn a_name_cannot_reach_unique_local_ipv6() {
    // The IPv6 metadata service (fd00:ec2::254) behind a name, next to an
    // ordinary address: the name allows the ordinary one only.
    let up = upstream().await;
    up.table.lock().unwrap().insert(
        "metadata.test".into(),
        vec![
            ("fd00:ec2::254".parse().unwrap(), 60),
            ("2001:db8::7".parse().unwrap(), 60),
        ],
    );
    let policy = Policy::from_yaml(&format!(
        "allow:\n  - host: metadata.test\nresolver: {}\n",
        up.addr
    ))
    .unwrap();
    let dst = |text: &str| text.parse::<SocketAddr>().unwrap();
    assert_eq!(policy.check(dst("[2001:db8::7]:80")).await, Decision::Allow);
    assert_eq!(
        policy.check(dst("[fd00:ec2::254]:80")).await,
        Decision::Deny
    );
}
