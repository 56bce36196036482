//! Zero-copy forwarding of one direction between two sockets: `splice(2)`
//! from the reading socket into a pipe, and from the pipe into the writing
//! socket, driven by the sockets' readiness.
//!
//! The kernel moves page references instead of copying the bytes to user
//! space and back. Only TCP and Unix sockets (hybrid vsock included) offer
//! the readiness this needs ([`Stream::supports_readiness`]); AF_VSOCK
//! streams keep the copying path of [`duplex`](crate::duplex).
//!
//! Bytes are spliced into the pipe only when it is empty and never more
//! than its capacity, so "would block" on the way in always means the
//! socket has nothing to read, and on the way out that the peer's socket is
//! full.

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use tokio::io::{AsyncWrite, Interest};
use transport::Stream;

use crate::defs::SPLICE_PIPE_SIZE;

/// The pipe of one spliced direction and what it holds.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
    held: usize,
}

const FLAGS: SpliceFFlags = SpliceFFlags::SPLICE_F_MOVE.union(SpliceFFlags::SPLICE_F_NONBLOCK);

impl Pipe {
    /// A non-blocking pipe of (about) [`SPLICE_PIPE_SIZE`] bytes.
    pub fn new() -> io::Result<Self> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let wanted = i32::try_from(SPLICE_PIPE_SIZE).unwrap_or(i32::MAX);
        // A smaller pipe (the system's limit) still works, just in smaller steps.
        let capacity = fcntl(&write, FcntlArg::F_SETPIPE_SZ(wanted))
            .or_else(|_| fcntl(&write, FcntlArg::F_GETPIPE_SZ))?;
        Ok(Self {
            read,
            write,
            capacity: usize::try_from(capacity).unwrap_or(4096).max(4096),
            held: 0,
        })
    }

    /// Moves bytes from `reader` to `writer` until it would block or the
    /// reader's stream ended (then `writer` is shut down as [`Stream`] does
    /// it); counts them into `amount` and sets `active` when any moved.
    pub fn poll_splice(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut Stream,
        writer: &mut Stream,
        read_done: &mut bool,
        amount: &mut u64,
        active: &mut bool,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.held == 0 && !*read_done {
                ready!(reader.poll_read_ready(cx))?;
                let src: &Stream = reader;
                let moved = src.try_io(Interest::READABLE, || {
                    splice(src, None, &self.write, None, self.capacity, FLAGS)
                        .map_err(io::Error::from)
                });
                match moved {
                    Ok(0) => *read_done = true,
                    Ok(n) => {
                        self.held = n;
                        *active = true;
                    }
                    Err(err) if retry(&err) => continue,
                    Err(err) => return Poll::Ready(Err(err)),
                }
            }
            while self.held > 0 {
                ready!(writer.poll_write_ready(cx))?;
                let dst: &Stream = writer;
                let moved = dst.try_io(Interest::WRITABLE, || {
                    splice(&self.read, None, dst, None, self.held, FLAGS).map_err(io::Error::from)
                });
                match moved {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => {
                        self.held -= n;
                        *amount += n as u64;
                        *active = true;
                    }
                    Err(err) if retry(&err) => continue,
                    Err(err) => return Poll::Ready(Err(err)),
                }
            }
            if *read_done {
                ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// "Would block" (readiness was cleared: poll again) and interruptions.
fn retry(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
