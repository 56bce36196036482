//! Running a command for a client.
//!
//! The command runs in its own process group, so a time-out, a forwarded
//! signal or a vanished client reaches everything it started. Its stdout
//! and stderr are forwarded as they are produced, each read as soon as
//! bytes are there; nothing buffers them to the end. Standard input
//! arrives through a separate task, so a command that does not read its
//! input cannot stall the forwarding of its output. Once the command has
//! exited, output still arriving is forwarded for at most
//! [`OUTPUT_DRAIN_TIMEOUT`] (background processes may hold the pipes open).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::connection::{FrameReader, FrameWriter};
use crate::defs::{MAX_EXEC_ITEMS, OUTPUT_DRAIN_TIMEOUT};
use crate::error::Error;
use crate::paths;
use crate::policy::Policy;
use crate::protocol::{Channel, ErrorCode, ExecRequest, ExitStatus, Frame, Message};

/// Output chunks in flight between the pipe readers and the connection.
const OUTPUT_QUEUE: usize = 8;
/// Input chunks in flight between the connection and the command.
const INPUT_QUEUE: usize = 8;
/// Largest single read from an output pipe.
const PIPE_READ_LEN: usize = 64 * 1024;

fn bad_request(message: String) -> Error {
    Error::local(ErrorCode::BadRequest, message)
}

/// Validates the request into a command ready to spawn.
pub fn build_command(request: &ExecRequest) -> Result<Command, Error> {
    let Some(program) = request.argv.first() else {
        return Err(bad_request("the command is empty".into()));
    };
    if request.argv.len() + request.env.len() > MAX_EXEC_ITEMS {
        return Err(bad_request(format!(
            "more than {MAX_EXEC_ITEMS} arguments and environment variables"
        )));
    }
    if request.argv.iter().any(|arg| arg.contains(&0)) {
        return Err(bad_request("an argument contains a NUL byte".into()));
    }
    for (key, value) in &request.env {
        if key.is_empty() || key.contains(&b'=') || key.contains(&0) || value.contains(&0) {
            return Err(bad_request(format!(
                "invalid environment variable {:?}",
                String::from_utf8_lossy(key)
            )));
        }
    }
    let mut command = Command::new(OsStr::from_bytes(program));
    command.args(request.argv[1..].iter().map(|arg| OsStr::from_bytes(arg)));
    command.envs(
        request
            .env
            .iter()
            .map(|(key, value)| (OsStr::from_bytes(key), OsStr::from_bytes(value))),
    );
    if let Some(cwd) = &request.cwd {
        let cwd = paths::from_wire(cwd);
        if !cwd.is_dir() {
            return Err(Error::local(
                ErrorCode::NotFound,
                format!("working directory {} does not exist", cwd.display()),
            ));
        }
        command.current_dir(cwd);
    }
    command.process_group(0);
    if request.detach {
        // Output of a detached command goes where the server's own goes
        // (its log file under enclave-init).
        command.stdin(Stdio::null());
        command.stdout(Stdio::inherit());
        command.stderr(Stdio::inherit());
    } else {
        command.stdin(if request.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        command.stdout(Stdio::piped());
        command.stderr(Stdio::piped());
    }
    Ok(command)
}

fn spawn_error(program: &[u8], err: std::io::Error) -> Error {
    let program = String::from_utf8_lossy(program);
    match err.kind() {
        std::io::ErrorKind::NotFound => {
            Error::local(ErrorCode::NotFound, format!("command not found: {program}"))
        }
        std::io::ErrorKind::PermissionDenied => Error::local(
            ErrorCode::PermissionDenied,
            format!("permission denied: {program}"),
        ),
        _ => Error::local(
            ErrorCode::SpawnFailed,
            format!("cannot run {program}: {err}"),
        ),
    }
}

/// Kills a process group when dropped, unless disarmed: a session that ends
/// abruptly (client gone, server shutting down) leaves nothing running.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn kill(&self, signal: Signal) {
        if let Some(group) = self.0 {
            // ESRCH only means everything in the group is gone already.
            let _ = killpg(group, signal);
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill(Signal::SIGKILL);
    }
}

/// Runs the command of `request` and streams it to the client.
pub async fn serve<R, W>(
    request: ExecRequest,
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    policy: &Policy,
    cancel: CancellationToken,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    policy.check_exec()?;
    let mut command = build_command(&request)?;
    let mut child = command
        .spawn()
        .map_err(|err| spawn_error(&request.argv[0], err))?;
    let pid = child.id().ok_or_else(|| {
        Error::local(ErrorCode::SpawnFailed, "the command vanished as it started")
    })?;
    tracing::info!(pid, argv = ?request.argv.iter().map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>(), detach = request.detach, "started");
    if request.detach {
        tokio::spawn(async move {
            match child.wait().await {
                Ok(status) => tracing::info!(pid, %status, "detached command exited"),
                Err(err) => tracing::warn!(pid, %err, "cannot wait for detached command"),
            }
        });
        return writer.write_message(&Message::Started { pid }).await;
    }
    let mut guard = GroupGuard(i32::try_from(pid).ok().map(Pid::from_raw));
    writer.write_message(&Message::Started { pid }).await?;
    // A client waiting for its command has nothing to say: its silence is
    // not idleness. (A client that stops reading output is still cut off by
    // the writer's stall limit.)
    reader.set_idle_timeout(None);

    let (out_tx, mut out_rx) = mpsc::channel::<(Channel, Bytes)>(OUTPUT_QUEUE);
    let mut pumps = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(stdout, Channel::Stdout, out_tx.clone())));
    }
    if let Some(stderr) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(stderr, Channel::Stderr, out_tx.clone())));
    }
    drop(out_tx);
    let mut stdin_tx = child.stdin.take().map(|stdin| {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        tokio::spawn(feed_stdin(stdin, rx));
        tx
    });
    let mut pending_stdin: Option<Bytes> = None;

    let far_future = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let deadline = request
        .timeout_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let timeout = tokio::time::sleep_until(deadline.unwrap_or(far_future));
    let drain = tokio::time::sleep_until(far_future);
    tokio::pin!(timeout, drain);

    let mut status: Option<std::process::ExitStatus> = None;
    let mut timed_out = false;
    let mut output_open = true;
    let mut client_lost: Option<Error> = None;
    while status.is_none() || output_open {
        tokio::select! {
            chunk = out_rx.recv(), if output_open => match chunk {
                Some((channel, bytes)) if client_lost.is_none() => {
                    if let Err(err) = writer.write_data(channel, &bytes).await {
                        guard.kill(Signal::SIGKILL);
                        client_lost = Some(err);
                    }
                }
                Some(_) => {}
                None => output_open = false,
            },
            permit = async { stdin_tx.clone()?.reserve_owned().await.ok() }, if pending_stdin.is_some() => {
                match (permit, pending_stdin.take()) {
                    (Some(permit), Some(bytes)) => {
                        permit.send(bytes);
                    }
                    // The command closed its input: drop what is left.
                    _ => stdin_tx = None,
                }
            }
            frame = reader.read_frame(), if client_lost.is_none() && pending_stdin.is_none() => match frame {
                Ok(Some(Frame::Data(Channel::Stdin, bytes))) => {
                    if stdin_tx.is_some() {
                        pending_stdin = Some(bytes);
                    }
                }
                Ok(Some(Frame::Control(Message::StdinClose))) => stdin_tx = None,
                Ok(Some(Frame::Control(Message::Signal { signal }))) => forward_signal(&guard, signal),
                Ok(Some(other)) => {
                    guard.kill(Signal::SIGKILL);
                    let got = match &other {
                        Frame::Control(message) => message.name().to_owned(),
                        Frame::Data(channel, _) => format!("{channel:?} data"),
                    };
                    return Err(Error::Unexpected { got, expected: "stdin, a signal or nothing while the command runs" });
                }
                Ok(None) => {
                    guard.kill(Signal::SIGKILL);
                    client_lost = Some(Error::Closed);
                }
                Err(err) => {
                    guard.kill(Signal::SIGKILL);
                    client_lost = Some(err);
                }
            },
            exited = child.wait(), if status.is_none() => {
                let exited = exited.map_err(|err| Error::io("cannot wait for the command", err))?;
                status = Some(exited);
                guard.disarm();
                drain.as_mut().reset(Instant::now() + OUTPUT_DRAIN_TIMEOUT);
            }
            () = &mut timeout, if status.is_none() && !timed_out && deadline.is_some() => {
                tracing::info!(pid, "time-out, killing the command");
                guard.kill(Signal::SIGKILL);
                timed_out = true;
            }
            () = &mut drain, if output_open && status.is_some() => {
                tracing::debug!(pid, "output still open after exit, no longer forwarded");
                output_open = false;
            }
            () = cancel.cancelled() => {
                guard.kill(Signal::SIGKILL);
                return Err(Error::local(ErrorCode::ShuttingDown, "the server is shutting down"));
            }
        }
    }
    for pump in pumps {
        pump.abort();
    }
    if let Some(err) = client_lost {
        return Err(err);
    }
    let status = status.map(|s| ExitStatus {
        code: s.code(),
        signal: s.signal(),
        timed_out,
    });
    tracing::info!(pid, ?status, "exited");
    match status {
        Some(status) => writer.write_message(&Message::Exited(status)).await,
        None => Err(Error::local(ErrorCode::Io, "the command's status was lost")),
    }
}

fn forward_signal(guard: &GroupGuard, signal: i32) {
    match Signal::try_from(signal) {
        Ok(signal) => guard.kill(signal),
        Err(_) => tracing::warn!(signal, "ignoring invalid signal number from the client"),
    }
}

/// Forwards everything read from a pipe, as soon as it is read.
async fn pump<P: AsyncRead + Unpin>(
    mut pipe: P,
    channel: Channel,
    tx: mpsc::Sender<(Channel, Bytes)>,
) {
    let mut buf = BytesMut::with_capacity(PIPE_READ_LEN);
    loop {
        buf.reserve(PIPE_READ_LEN);
        match pipe.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if tx.send((channel, buf.split().freeze())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Writes client input to the command; closing the channel closes its stdin.
async fn feed_stdin(mut stdin: ChildStdin, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(bytes) = rx.recv().await {
        if stdin.write_all(&bytes).await.is_err() {
            break;
        }
    }
}
