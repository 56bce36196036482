#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! `transport::serve` against real Unix and TCP listeners: the limit and
//! each full policy, a panicking handler, shutdown with its grace period,
//! a listener that fails for good, and EMFILE waited out without spinning
//! (in a child process with a lowered descriptor limit).

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use testkit::eventually_async;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use transport::{
    Address, Handler, Listener, Peer, ServeConfig, ServeError, Stopped, Stream, WhenFull, connect,
    serve,
};

const BOUND: Duration = Duration::from_secs(10);

/// A Unix and a TCP address to listen on (the directory must outlive them).
fn addresses(dir: &tempfile::TempDir) -> [Address; 2] {
    [
        format!("unix:{}", dir.path().join("serve.sock").display())
            .parse()
            .unwrap(),
        "tcp:127.0.0.1:0".parse().unwrap(),
    ]
}

struct Server {
    addr: Address,
    shutdown: CancellationToken,
    task: JoinHandle<Result<Stopped, ServeError>>,
}

impl Server {
    async fn start<H: Handler + Send + 'static>(
        addr: &Address,
        config: ServeConfig,
        handler: H,
    ) -> Self {
        let listener = Listener::bind(addr).await.unwrap();
        let addr = listener.local_addr().clone();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { serve(listener, &config, token, handler).await });
        Self {
            addr,
            shutdown,
            task,
        }
    }

    async fn stop(self) -> Stopped {
        self.shutdown.cancel();
        timeout(BOUND, self.task).await.unwrap().unwrap().unwrap()
    }
}

/// Sends one byte and reads what comes back until the server closes.
async fn exchange(stream: &mut Stream, byte: u8) -> Vec<u8> {
    stream.write_all(&[byte]).await.unwrap();
    read_to_close(stream).await
}

async fn read_to_close(stream: &mut Stream) -> Vec<u8> {
    let mut got = Vec::new();
    // A reset counts as closed: the server dropped the connection.
    let _ = timeout(BOUND, stream.read_to_end(&mut got)).await.unwrap();
    got
}

/// A handler that announces each connection, waits for `gate`, then
/// echoes one byte; it records how many ran at once.
#[derive(Clone)]
struct Gated {
    gate: Arc<Semaphore>,
    entered: mpsc::UnboundedSender<()>,
    active: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Gated {
    fn new() -> (Self, mpsc::UnboundedReceiver<()>) {
        let (entered, rx) = mpsc::unbounded_channel();
        let gated = Self {
            gate: Arc::new(Semaphore::new(0)),
            entered,
            active: Arc::default(),
            most: Arc::default(),
        };
        (gated, rx)
    }

    fn handler(&self) -> impl FnMut(Stream, Peer) -> Echo + Send + 'static {
        let this = self.clone();
        move |stream, _peer| echo(this.clone(), stream)
    }
}

type Echo = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The handler future of [`Gated`], boxed to be nameable.
fn echo(gated: Gated, mut stream: Stream) -> Echo {
    Box::pin(async move {
        let now = gated.active.fetch_add(1, Ordering::SeqCst) + 1;
        gated.most.fetch_max(now, Ordering::SeqCst);
        let _ = gated.entered.send(());
        let mut byte = [0u8; 1];
        if stream.read_exact(&mut byte).await.is_ok() {
            gated.gate.acquire().await.unwrap().forget();
            let _ = stream.write_all(&byte).await;
        }
        gated.active.fetch_sub(1, Ordering::SeqCst);
    })
}

/// A [`Gated`] server, and a client it has started serving (the client
/// has sent `byte`).
async fn gated_with_one_client(
    addr: &Address,
    config: ServeConfig,
    byte: u8,
) -> (Server, Gated, Stream) {
    let (gated, mut entered) = Gated::new();
    let server = Server::start(addr, config, gated.handler()).await;
    let mut client = connect(&server.addr).await.unwrap();
    client.write_all(&[byte]).await.unwrap();
    timeout(BOUND, entered.recv()).await.unwrap().unwrap();
    (server, gated, client)
}

fn config(max_connections: usize, when_full: WhenFull) -> ServeConfig {
    ServeConfig {
        max_connections,
        when_full,
        grace: BOUND,
        ..ServeConfig::default()
    }
}

#[tokio::test]
async fn wait_holds_clients_over_the_limit_in_the_backlog_and_serves_them_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    for addr in addresses(&dir) {
        let (gated, mut entered) = Gated::new();
        let server = Server::start(&addr, config(2, WhenFull::Wait), gated.handler()).await;
        let mut clients = Vec::new();
        for i in 0..4u8 {
            let mut client = connect(&server.addr).await.unwrap();
            client.write_all(&[i]).await.unwrap();
            clients.push(client);
        }
        for _ in 0..2 {
            timeout(BOUND, entered.recv()).await.unwrap().unwrap();
        }
        assert_eq!(gated.active.load(Ordering::SeqCst), 2, "{addr}");
        gated.gate.add_permits(4);
        for (i, client) in clients.iter_mut().enumerate() {
            assert_eq!(read_to_close(client).await, [i as u8], "{addr}");
        }
        assert_eq!(gated.most.load(Ordering::SeqCst), 2, "{addr}");
        let stopped = server.stop().await;
        assert_eq!(
            stopped,
            Stopped {
                served: 4,
                refused: 0,
                aborted: 0
            },
            "{addr}"
        );
    }
}

#[tokio::test]
async fn close_turns_one_more_away_at_once_and_keeps_serving_the_others() {
    let dir = tempfile::tempdir().unwrap();
    for addr in addresses(&dir) {
        let (server, gated, mut first) =
            gated_with_one_client(&addr, config(1, WhenFull::Close), b'1').await;
        let mut second = connect(&server.addr).await.unwrap();
        assert!(read_to_close(&mut second).await.is_empty(), "{addr}");
        gated.gate.add_permits(1);
        assert_eq!(read_to_close(&mut first).await, b"1", "{addr}");
        let stopped = server.stop().await;
        assert_eq!((stopped.served, stopped.refused), (1, 1), "{addr}");
    }
}

/// Echoes one byte; refuses with "busy".
struct Busy;

// The futures are 'static: an `async fn` would borrow `self`.
#[allow(clippy::manual_async_fn)]
impl Handler for Busy {
    fn serve(
        &mut self,
        mut stream: Stream,
        _peer: Peer,
        _abort: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        async move {
            let mut byte = [0u8; 1];
            if stream.read_exact(&mut byte).await.is_ok() {
                let _ = stream.write_all(&byte).await;
                // Stay until the client hangs up.
                let _ = stream.read(&mut byte).await;
            }
        }
    }

    fn refuse(
        &mut self,
        mut stream: Stream,
        _peer: Peer,
    ) -> impl Future<Output = ()> + Send + 'static {
        async move {
            let _ = stream.write_all(b"busy").await;
        }
    }
}

#[tokio::test]
async fn refuse_hands_one_more_to_the_refusal() {
    let dir = tempfile::tempdir().unwrap();
    for addr in addresses(&dir) {
        let server = Server::start(
            &addr,
            config(1, WhenFull::Refuse { max_in_flight: 4 }),
            Busy,
        )
        .await;
        let mut first = connect(&server.addr).await.unwrap();
        first.write_all(b"1").await.unwrap();
        let mut echo = [0u8; 1];
        timeout(BOUND, first.read_exact(&mut echo))
            .await
            .unwrap()
            .unwrap();
        let mut second = connect(&server.addr).await.unwrap();
        assert_eq!(read_to_close(&mut second).await, b"busy", "{addr}");
        drop(first);
        let stopped = server.stop().await;
        assert_eq!((stopped.served, stopped.refused), (1, 1), "{addr}");
    }
}

#[tokio::test]
async fn a_panicking_handler_ends_its_own_connection_only() {
    let dir = tempfile::tempdir().unwrap();
    for addr in addresses(&dir) {
        // One connection at a time: the next one is served only if the
        // panicking one gave its slot back.
        let server = Server::start(
            &addr,
            config(1, WhenFull::Wait),
            |mut stream: Stream, _| async move {
                let mut byte = [0u8; 1];
                if stream.read_exact(&mut byte).await.is_ok() {
                    assert_ne!(&byte, b"!", "a deliberate panic");
                    let _ = stream.write_all(&byte).await;
                }
            },
        )
        .await;
        for _ in 0..2 {
            let mut bad = connect(&server.addr).await.unwrap();
            assert!(exchange(&mut bad, b'!').await.is_empty(), "{addr}");
            let mut good = connect(&server.addr).await.unwrap();
            assert_eq!(exchange(&mut good, b'x').await, b"x", "{addr}");
        }
        assert_eq!(server.stop().await.served, 4, "{addr}");
    }
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_open_connections_finish_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    for addr in addresses(&dir) {
        let (server, gated, mut open) =
            gated_with_one_client(&addr, config(8, WhenFull::Wait), b'o').await;
        server.shutdown.cancel();
        let target = server.addr.clone();
        assert!(
            eventually_async(BOUND, || {
                let target = target.clone();
                std::thread::spawn(move || match &target {
                    Address::Unix(path) => std::os::unix::net::UnixStream::connect(path).is_err(),
                    Address::Tcp { port, .. } => {
                        std::net::TcpStream::connect(("127.0.0.1", *port)).is_err()
                    }
                    _ => unreachable!(),
                })
                .join()
                .unwrap()
            })
            .await,
            "{addr} still accepts after shutdown"
        );
        assert!(!server.task.is_finished(), "{addr}");
        gated.gate.add_permits(1);
        assert_eq!(read_to_close(&mut open).await, b"o", "{addr}");
        let stopped = timeout(BOUND, server.task).await.unwrap().unwrap().unwrap();
        assert_eq!((stopped.served, stopped.aborted), (1, 0), "{addr}");
    }
}

/// Stays until aborted; then says "bye" if `polite`, else stays on.
struct Lingering {
    entered: mpsc::UnboundedSender<()>,
    polite: bool,
}

#[allow(clippy::manual_async_fn)]
impl Handler for Lingering {
    fn serve(
        &mut self,
        mut stream: Stream,
        _peer: Peer,
        abort: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (entered, polite) = (self.entered.clone(), self.polite);
        async move {
            let _ = entered.send(());
            abort.cancelled().await;
            if polite {
                let _ = stream.write_all(b"bye").await;
            } else {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Serves one [`Lingering`] connection past a short grace period: how the
/// server stopped, and what the client read.
async fn outlive_the_grace(
    addr: &Address,
    abort_wait: Duration,
    polite: bool,
) -> (Stopped, Vec<u8>) {
    let (entered, mut entered_rx) = mpsc::unbounded_channel();
    let config = ServeConfig {
        grace: Duration::from_millis(100),
        abort_wait,
        ..ServeConfig::default()
    };
    let server = Server::start(addr, config, Lingering { entered, polite }).await;
    let mut client = connect(&server.addr).await.unwrap();
    timeout(BOUND, entered_rx.recv()).await.unwrap().unwrap();
    let stopped = server.stop().await;
    (stopped, read_to_close(&mut client).await)
}

#[tokio::test]
async fn shutdown_aborts_what_outlives_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    for addr in addresses(&dir) {
        let (stopped, got) = outlive_the_grace(&addr, Duration::ZERO, false).await;
        assert_eq!((stopped.served, stopped.aborted), (1, 1), "{addr}");
        assert!(got.is_empty(), "{addr}");
    }
}

#[tokio::test]
async fn an_aborted_handler_gets_the_abort_wait_to_wrap_up() {
    let dir = tempfile::tempdir().unwrap();
    for addr in addresses(&dir) {
        let (stopped, got) = outlive_the_grace(&addr, BOUND, true).await;
        assert_eq!((stopped.served, stopped.aborted), (1, 0), "{addr}");
        assert_eq!(got, b"bye", "{addr}");
    }
}

/// The descriptor of this process's socket bound to 127.0.0.1:`port`.
fn socket_bound_to(port: u16) -> std::os::fd::RawFd {
    use nix::sys::socket::{SockaddrIn, getsockname};
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .find(|&fd| getsockname::<SockaddrIn>(fd).is_ok_and(|addr| addr.port() == port))
        .expect("the listener's descriptor")
}

#[tokio::test]
async fn a_listener_that_fails_for_good_ends_the_loop_instead_of_spinning() {
    let (entered, mut entered_rx) = mpsc::unbounded_channel();
    let server = Server::start(
        &"tcp:127.0.0.1:0".parse().unwrap(),
        ServeConfig::default(),
        move |mut stream: Stream, _| {
            let entered = entered.clone();
            async move {
                let _ = entered.send(());
                let mut byte = [0u8; 1];
                if stream.read_exact(&mut byte).await.is_ok() {
                    let _ = stream.write_all(&byte).await;
                }
            }
        },
    )
    .await;
    let Address::Tcp { port, .. } = server.addr else {
        unreachable!()
    };
    // A connection in progress when the listener breaks still finishes.
    let mut open = connect(&server.addr).await.unwrap();
    timeout(BOUND, entered_rx.recv()).await.unwrap().unwrap();
    // From now on accept() fails with EINVAL, whatever the server does.
    nix::sys::socket::shutdown(socket_bound_to(port), nix::sys::socket::Shutdown::Both).unwrap();
    assert_eq!(exchange(&mut open, b'x').await, b"x");
    let err = timeout(BOUND, server.task)
        .await
        .expect("serve still runs on a broken listener")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.source.raw_os_error(), Some(libc::EINVAL), "{err}");
    assert!(
        err.to_string().contains(&format!("tcp:127.0.0.1:{port}")),
        "{err}"
    );
}

const EMFILE_CHILD: &str = "TRANSPORT_SERVE_EMFILE_CHILD";

/// In a child process (the descriptor limit is per process): with no
/// descriptor left, accept() fails with EMFILE; the loop waits it out with
/// a growing pause and one warning, and serves the client once descriptors
/// are available again, without burning the CPU meanwhile.
#[test]
fn emfile_is_waited_out_with_one_warning_and_without_spinning() {
    if std::env::var_os(EMFILE_CHILD).is_some() {
        return emfile_child();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "emfile_is_waited_out_with_one_warning_and_without_spinning",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let port = loop {
        let mut line = String::new();
        assert_ne!(
            stdout.read_line(&mut line).unwrap(),
            0,
            "the child ended early"
        );
        if let Some(port) = line.trim().strip_prefix("port ") {
            break port.parse::<u16>().unwrap();
        }
    };
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.set_read_timeout(Some(BOUND)).unwrap();
    std::io::Write::write_all(&mut client, b"e").unwrap();
    let mut echo = [0u8; 1];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"e");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{rest}\n{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("accept failed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("Too many open files"), "{stderr}");
    // About a second of EMFILE at pauses of 100, 200, 400, 800 ms: 4 or 5
    // failures (a few more on a slow machine), not one per loop iteration.
    let failures: u64 = stderr
        .lines()
        .find(|l| l.contains("accepting again"))
        .and_then(|l| {
            l.split("failures=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no recovery logged:\n{stderr}"));
    assert!((2..=8).contains(&failures), "{failures} failures\n{stderr}");
    let cpu_ms: u64 = rest
        .lines()
        .find_map(|l| l.strip_prefix("cpu_ms "))
        .unwrap_or_else(|| panic!("no cpu_ms in {rest}"))
        .parse()
        .unwrap();
    // About a second of EMFILE: spinning would cost about as much CPU.
    assert!(cpu_ms < 400, "{cpu_ms} ms of CPU: the loop spun\n{stderr}");
}

fn emfile_child() {
    use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
    use std::io::Write;

    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let Address::Tcp { port, .. } = listener.local_addr().clone() else {
            unreachable!()
        };
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        // The lowest free descriptor: with the limit there, none is left.
        let lowest_free = {
            let probe = nix::unistd::dup(std::io::stderr()).unwrap();
            std::os::fd::AsRawFd::as_raw_fd(&probe)
        };
        setrlimit(Resource::RLIMIT_NOFILE, lowest_free as u64, hard).unwrap();
        println!("\nport {port}");
        std::io::stdout().flush().unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
        });
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let config = ServeConfig {
            warn_interval: Duration::from_secs(3600),
            ..ServeConfig::default()
        };
        let serving = serve(listener, &config, shutdown, move |mut stream: Stream, _| {
            let stop = stop.clone();
            async move {
                let mut byte = [0u8; 1];
                if stream.read_exact(&mut byte).await.is_ok() {
                    let _ = stream.write_all(&byte).await;
                }
                stop.cancel();
            }
        });
        let stopped = timeout(BOUND, serving).await.unwrap().unwrap();
        assert_eq!(stopped.served, 1);
    });
    let usage = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let cpu = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1000 + t.tv_usec() as u64 / 1000;
    println!(
        "cpu_ms {}",
        cpu(usage.user_time()) + cpu(usage.system_time())
    );
}
