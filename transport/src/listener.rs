//! [`Listener`]: binds any [`Address`] and accepts [`Stream`]s.
//!
//! Unix sockets (`unix:` and the `PATH_PORT` socket of `hvsock:`) are bound
//! with their mode applied before `listen()`, so nobody can connect through
//! wider permissions in between; a stale socket left by a dead process is
//! replaced, a live one or a non-socket file is not; the socket file is
//! removed when the listener is dropped.
//!
//! [`Listener::accept`] rides out resource exhaustion (EMFILE, ENFILE,
//! ENOBUFS, ENOMEM) and passing network errors with a bounded back-off
//! instead of failing, so a burst of clients cannot stop a server; it fails
//! only when the listening socket itself is unusable ([`crate::accept`]).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::net::{TcpListener, UnixListener};
use tokio_vsock::{VsockAddr, VsockListener};

use crate::accept::{self, AcceptErrorKind, AcceptPacing};
use crate::address::Address;
use crate::defs::LISTEN_BACKLOG;
use crate::error::Error;
use crate::stream::Stream;

/// Options for [`Listener::bind_with`].
#[derive(Debug, Clone, Default)]
pub struct BindOptions {
    /// Permission bits of the socket file for `unix:` and `hvsock:` listeners
    /// (for example `0o600` for a control socket); `None` keeps the umask's.
    pub unix_mode: Option<u32>,
}

/// Who connected to a [`Listener`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client.
    Tcp(SocketAddr),
    /// A Unix-socket client (these have no useful address).
    Unix,
    /// A guest connection arriving through a hybrid-vsock socket.
    HybridVsock,
    /// A vsock client.
    Vsock {
        /// The peer's CID.
        cid: u32,
        /// The peer's port.
        port: u32,
    },
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "tcp:{addr}"),
            Peer::Unix => f.write_str("unix client"),
            Peer::HybridVsock => f.write_str("hvsock guest"),
            Peer::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
        }
    }
}

/// A bound, listening socket of any supported kind.
#[derive(Debug)]
pub struct Listener {
    kind: Kind,
    local: Address,
    socket_file: Option<SocketFile>,
}

#[derive(Debug)]
enum Kind {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        hybrid: bool,
    },
    Vsock(VsockListener),
}

/// A socket file we created, removed on drop if it is still ours.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && meta.dev() == self.dev
            && meta.ino() == self.ino
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Listener {
    /// Binds `addr` with default options.
    pub async fn bind(addr: &Address) -> Result<Self, Error> {
        Self::bind_with(addr, &BindOptions::default()).await
    }

    /// Binds `addr`.
    pub async fn bind_with(addr: &Address, options: &BindOptions) -> Result<Self, Error> {
        let bind_err = |source| Error::Bind {
            addr: addr.clone(),
            source,
        };
        match addr {
            Address::Tcp { host, port } => {
                let listener = TcpListener::bind((host.as_str(), *port))
                    .await
                    .map_err(bind_err)?;
                let bound = listener.local_addr().map_err(bind_err)?;
                Ok(Self {
                    kind: Kind::Tcp(listener),
                    local: Address::Tcp {
                        host: host.clone(),
                        port: bound.port(),
                    },
                    socket_file: None,
                })
            }
            Address::Unix(path) => Self::bind_unix(addr, path, false, options),
            Address::HybridVsock { path, port } => {
                let path = Address::hvsock_listen_path(path, *port);
                Self::bind_unix(addr, &path, true, options)
            }
            Address::Vsock { cid, port } => {
                let listener =
                    VsockListener::bind(VsockAddr::new(*cid, *port)).map_err(bind_err)?;
                let bound = listener.local_addr().map_err(bind_err)?;
                Ok(Self {
                    kind: Kind::Vsock(listener),
                    local: Address::Vsock {
                        cid: *cid,
                        port: bound.port(),
                    },
                    socket_file: None,
                })
            }
        }
    }

    fn bind_unix(
        addr: &Address,
        path: &Path,
        hybrid: bool,
        options: &BindOptions,
    ) -> Result<Self, Error> {
        let bind_err = |source| Error::Bind {
            addr: addr.clone(),
            source,
        };
        remove_stale_socket(addr, path)?;
        let std_listener = bind_unix_socket(path, options.unix_mode).map_err(bind_err)?;
        let meta = std::fs::symlink_metadata(path).map_err(bind_err)?;
        let listener = UnixListener::from_std(std_listener).map_err(bind_err)?;
        Ok(Self {
            kind: Kind::Unix { listener, hybrid },
            local: addr.clone(),
            socket_file: Some(SocketFile {
                path: path.to_owned(),
                dev: meta.dev(),
                ino: meta.ino(),
            }),
        })
    }

    /// The bound address; for `tcp:...:0` and `vsock:...:0` it carries the
    /// port the kernel chose.
    pub fn local_addr(&self) -> &Address {
        &self.local
    }

    /// The Unix socket file this listener created, if any.
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket_file.as_ref().map(|f| f.path.as_path())
    }

    /// Accepts the next connection. A pending connection that failed is
    /// skipped, resource exhaustion and other passing errors are waited out
    /// with a back-off (and logged); only errors that say the listening
    /// socket itself is unusable are returned (see [`crate::accept`]).
    /// Cancel-safe.
    pub async fn accept(&self) -> io::Result<(Stream, Peer)> {
        self.accept_paced(&mut AcceptPacing::default()).await
    }

    /// [`Listener::accept`] with the back-off and warning state kept in
    /// `pacing` across calls, so that warnings stay throttled and the pause
    /// keeps growing while failures and successes alternate. Cancel-safe.
    pub async fn accept_paced(&self, pacing: &mut AcceptPacing) -> io::Result<(Stream, Peer)> {
        loop {
            let err = match self.accept_once().await {
                Ok(accepted) => {
                    let failures = pacing.succeeded();
                    if failures > 0 {
                        tracing::info!(listener = %self.local, failures, "accepting again");
                    }
                    return Ok(accepted);
                }
                Err(err) => err,
            };
            match accept::classify(&err) {
                AcceptErrorKind::Dropped => {
                    tracing::debug!(listener = %self.local, %err, "a connection failed before it was accepted");
                }
                AcceptErrorKind::Permanent => return Err(err),
                AcceptErrorKind::Transient => {
                    let retry = pacing.failed();
                    if let Some(suppressed) = retry.warn {
                        tracing::warn!(
                            listener = %self.local, %err, failures = retry.failures,
                            suppressed, pause = ?retry.pause,
                            "accept failed; retrying"
                        );
                    }
                    tokio::time::sleep(retry.pause).await;
                }
            }
        }
    }

    async fn accept_once(&self) -> io::Result<(Stream, Peer)> {
        match &self.kind {
            Kind::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                Ok((Stream::from_tcp(stream), Peer::Tcp(peer)))
            }
            Kind::Unix { listener, hybrid } => {
                let (stream, _) = listener.accept().await?;
                if *hybrid {
                    Ok((Stream::from_hybrid_vsock(stream), Peer::HybridVsock))
                } else {
                    Ok((Stream::from_unix(stream), Peer::Unix))
                }
            }
            Kind::Vsock(listener) => {
                let (stream, peer) = listener.accept().await?;
                Ok((
                    Stream::from_vsock(stream),
                    Peer::Vsock {
                        cid: peer.cid(),
                        port: peer.port(),
                    },
                ))
            }
        }
    }
}

/// Removes a socket file nobody listens on; refuses to touch anything else.
fn remove_stale_socket(addr: &Address, path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Bind {
                addr: addr.clone(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(Error::NotASocket {
            addr: addr.clone(),
            path: path.to_owned(),
        });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(Error::InUse {
            addr: addr.clone(),
            path: path.to_owned(),
        }),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing stale socket file");
            match std::fs::remove_file(path) {
                Err(source) if source.kind() != io::ErrorKind::NotFound => Err(Error::Bind {
                    addr: addr.clone(),
                    source,
                }),
                _ => Ok(()),
            }
        }
        Err(_) => Ok(()),
    }
}

/// bind(), chmod, then listen(): the socket accepts nobody before its mode is set.
fn bind_unix_socket(
    path: &Path,
    mode: Option<u32>,
) -> io::Result<std::os::unix::net::UnixListener> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    let configure = || -> io::Result<()> {
        if let Some(mode) = mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        socket.listen(LISTEN_BACKLOG)?;
        socket.set_nonblocking(true)
    };
    if let Err(err) = configure() {
        let _ = std::fs::remove_file(path);
        return Err(err);
    }
    Ok(socket.into())
}
