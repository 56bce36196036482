//! `pipeline run`: a command in the enclave, as if it ran here.
//!
//! Output is written to the local stdout and stderr as it arrives, byte for
//! byte. Frames to the server (standard input, signals) go through their
//! own task, so reading the command's output never waits on sending input.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use serde_bytes::ByteBuf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Session;
use crate::connection::FrameWriter;
use crate::error::Error;
use crate::protocol::{Channel, ErrorCode, ExecRequest, ExitStatus, Frame, Message};

/// Largest chunk of standard input read at once.
const STDIN_READ_LEN: usize = 64 * 1024;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Program and arguments.
    pub argv: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory in the enclave.
    pub cwd: Option<PathBuf>,
    /// Kill the command after this long.
    pub timeout: Option<Duration>,
    /// Return once started.
    pub detach: bool,
}

/// How a run ended, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The command ended.
    Exited(ExitStatus),
    /// The command was started and left running.
    Detached {
        /// Its process id in the enclave.
        pid: u32,
    },
    /// Our own stdout was closed (a broken pipe); the command was abandoned.
    OutputClosed,
}

fn bytes(s: &OsString) -> ByteBuf {
    ByteBuf::from(s.as_bytes().to_vec())
}

/// Runs a command. `stdin`, when given, is forwarded to it; `signals`
/// delivers signal numbers to forward to its process group.
pub async fn run<I, O, E>(
    session: Session,
    options: &RunOptions,
    stdin: Option<I>,
    stdout: &mut O,
    stderr: &mut E,
    signals: mpsc::Receiver<i32>,
) -> Result<RunOutcome, Error>
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut session = session;
    let request = ExecRequest {
        argv: options.argv.iter().map(bytes).collect(),
        env: options
            .env
            .iter()
            .map(|(k, v)| (bytes(k), bytes(v)))
            .collect(),
        cwd: options
            .cwd
            .as_ref()
            .map(|p| ByteBuf::from(p.as_os_str().as_bytes().to_vec())),
        timeout_ms: options
            .timeout
            .map(|t| t.as_millis().min(u64::MAX as u128) as u64),
        detach: options.detach,
        stdin: stdin.is_some() && !options.detach,
    };
    session.request(&Message::Exec(request)).await?;
    let Session {
        mut reader, writer, ..
    } = session;
    let pid = match reader.next_message("the command to start").await? {
        Message::Started { pid } => pid,
        other => {
            return Err(Error::local(
                ErrorCode::Protocol,
                format!("expected the command to start, got {}", other.name()),
            ));
        }
    };
    if options.detach {
        return Ok(RunOutcome::Detached { pid });
    }
    let sender = tokio::spawn(send_input(writer, stdin, signals));
    let outcome = receive_output(&mut reader, stdout, stderr).await;
    sender.abort();
    outcome
}

async fn receive_output<R, O, E>(
    reader: &mut crate::connection::FrameReader<R>,
    stdout: &mut O,
    stderr: &mut E,
) -> Result<RunOutcome, Error>
where
    R: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    loop {
        let frame = reader.read_frame().await?.ok_or_else(|| {
            Error::local(
                ErrorCode::Io,
                "the server closed the connection before the command finished",
            )
        })?;
        match frame {
            Frame::Data(Channel::Stdout, bytes) => {
                let written = async {
                    stdout.write_all(&bytes).await?;
                    stdout.flush().await
                };
                if let Err(err) = written.await {
                    if err.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(RunOutcome::OutputClosed);
                    }
                    return Err(Error::io("cannot write to stdout", err));
                }
            }
            Frame::Data(Channel::Stderr, bytes) => {
                // Errors writing our own stderr are not worth failing for.
                let _ = stderr.write_all(&bytes).await;
                let _ = stderr.flush().await;
            }
            Frame::Control(Message::Exited(status)) => return Ok(RunOutcome::Exited(status)),
            Frame::Control(Message::Error(frame)) => return Err(Error::Remote(frame)),
            Frame::Control(other) => {
                return Err(Error::Unexpected {
                    got: other.name().to_owned(),
                    expected: "the command's output or status",
                });
            }
            Frame::Data(channel, _) => {
                return Err(Error::Unexpected {
                    got: format!("{channel:?} data"),
                    expected: "the command's output or status",
                });
            }
        }
    }
}

/// Forwards standard input (then its end) and signals until both are done.
async fn send_input<I>(
    mut writer: FrameWriter<super::SessionWriter>,
    stdin: Option<I>,
    mut signals: mpsc::Receiver<i32>,
) where
    I: AsyncRead + Unpin + Send + 'static,
{
    let mut stdin = stdin;
    let mut signals_open = true;
    let mut buf = BytesMut::with_capacity(STDIN_READ_LEN);
    while stdin.is_some() || signals_open {
        tokio::select! {
            read = async {
                buf.reserve(STDIN_READ_LEN);
                match stdin.as_mut() {
                    Some(input) => input.read_buf(&mut buf).await,
                    None => std::future::pending().await,
                }
            }, if stdin.is_some() => {
                let sent = match read {
                    Ok(0) | Err(_) => {
                        stdin = None;
                        writer.write_message(&Message::StdinClose).await
                    }
                    Ok(_) => writer.write_data(Channel::Stdin, &buf.split()).await,
                };
                if sent.is_err() {
                    return;
                }
            }
            signal = signals.recv(), if signals_open => match signal {
                Some(signal) => {
                    if writer.write_message(&Message::Signal { signal }).await.is_err() {
                        return;
                    }
                }
                None => signals_open = false,
            },
        }
    }
    // Keep the connection open (dropping the writer would half-close it)
    // until the run is over and this task is aborted.
    std::future::pending::<()>().await;
}
