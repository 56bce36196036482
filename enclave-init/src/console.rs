//! Init's own output to the console, which must never block init.
//!
//! A console nobody reads fills up and then blocks every `write()` (field
//! report 002: a whole enclave froze after nine minutes). Init therefore
//! never writes to the console itself: each log line goes into a bounded
//! queue, and one thread drains the queue into stderr. When the queue is
//! full the line is dropped and counted; the count is shown by
//! `initctl system-status` and written to the console once it drains again.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use tracing_subscriber::fmt::MakeWriter;

use crate::defs::CONSOLE_QUEUE_LINES;

static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Lines queued and not yet written.
static PENDING: AtomicU64 = AtomicU64::new(0);

/// Lines of init's output dropped so far because the console was not drained.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// A [`MakeWriter`] for `tracing_subscriber` that queues each event for the
/// console thread and never blocks.
#[derive(Clone, Debug)]
pub struct ConsoleWriter {
    tx: SyncSender<Vec<u8>>,
}

impl ConsoleWriter {
    /// Starts the console thread writing to `sink` (stderr in the binaries).
    pub fn start<W: Write + Send + 'static>(sink: W) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(CONSOLE_QUEUE_LINES);
        std::thread::Builder::new()
            .name("console".into())
            .spawn(move || drain(rx, sink))?;
        Ok(Self { tx })
    }

    /// Queues `bytes`; drops them (and counts) if the queue is full.
    pub fn send(&self, bytes: Vec<u8>) {
        PENDING.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                PENDING.fetch_sub(1, Ordering::AcqRel);
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl ConsoleWriter {
    /// Waits up to `timeout` for the queued lines to be written (before exit).
    pub fn flush(&self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        // An empty line is the marker: once the queue accepted it and the
        // thread took it, everything queued before is written.
        while std::time::Instant::now() < deadline {
            PENDING.fetch_add(1, Ordering::AcqRel);
            match self.tx.try_send(Vec::new()) {
                Ok(()) => break,
                Err(TrySendError::Full(_)) => {
                    PENDING.fetch_sub(1, Ordering::AcqRel);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(TrySendError::Disconnected(_)) => {
                    PENDING.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
            }
        }
        while std::time::Instant::now() < deadline && PENDING.load(Ordering::Acquire) > 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

fn drain<W: Write>(rx: Receiver<Vec<u8>>, mut sink: W) {
    let mut reported = 0;
    while let Ok(line) = rx.recv() {
        PENDING.fetch_sub(1, Ordering::AcqRel);
        let dropped = dropped_lines();
        if dropped > reported {
            let note = format!(
                "init: {} console line(s) dropped because nobody read the console\n",
                dropped - reported
            );
            reported = dropped;
            let _ = sink.write_all(note.as_bytes());
        }
        // A write error (console gone) just loses the line.
        let _ = sink.write_all(&line);
        let _ = sink.flush();
    }
}

/// One event's text, queued when dropped.
#[derive(Debug)]
pub struct EventWriter {
    console: ConsoleWriter,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.console.send(std::mem::take(&mut self.buf));
        }
    }
}

impl<'a> MakeWriter<'a> for ConsoleWriter {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            console: self.clone(),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink that blocks until released, like a console nobody reads.
    struct Stuck(Arc<Mutex<()>>, Arc<Mutex<Vec<u8>>>);

    impl Write for Stuck {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            let _held = self.0.lock().unwrap();
            self.1.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_console_drops_lines_instead_of_blocking() {
        let gate = Arc::new(Mutex::new(()));
        let out = Arc::new(Mutex::new(Vec::new()));
        let held = gate.lock().unwrap();
        let console = ConsoleWriter::start(Stuck(gate.clone(), out.clone())).unwrap();
        let before = dropped_lines();
        for i in 0..(CONSOLE_QUEUE_LINES * 3) {
            let mut w = console.make_writer();
            writeln!(w, "line {i}").unwrap();
        }
        assert!(dropped_lines() - before >= CONSOLE_QUEUE_LINES as u64);
        drop(held);
        console.flush(std::time::Duration::from_secs(5));
        let mut w = console.make_writer();
        writeln!(w, "after").unwrap();
        drop(w);
        for _ in 0..200 {
            if String::from_utf8_lossy(&out.lock().unwrap()).contains("after") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
        assert!(
            text.contains("dropped because nobody read the console"),
            "{text}"
        );
        assert!(text.contains("after"));
    }
}
