//! Per-service log files: `LOG_DIR/NAME.log`, rotated to `NAME.log.1` ...
//! `NAME.log.N` when it would grow past `max_log_size`, keeping
//! `max_log_files` rotated files.
//!
//! A service's stdout and stderr share one pipe, read by a capture task that
//! writes each line with a UTC time stamp. Service output never goes to the
//! console. A failing write (disk full) is counted and the line dropped: the
//! pipe keeps being drained, so a service never blocks on its output.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use crate::defs::{EXIT_DRAIN_WAIT, LOG_READ_CHUNK, MAX_LOG_LINE_LEN};

/// Log rotation limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// A log file reaching this size is rotated.
    pub max_size: u64,
    /// Rotated files kept (`NAME.log.1` ... `NAME.log.N`).
    pub max_files: u32,
}

/// One service's log file and its rotation state.
#[derive(Debug)]
pub struct ServiceLog {
    path: PathBuf,
    limits: LogLimits,
    file: Option<File>,
    size: u64,
    write_errors: u64,
    failures: u64,
}

/// A log shared by the supervisor and the capture tasks of the service.
pub type SharedLog = Arc<Mutex<ServiceLog>>;

/// The path of a service's current log file.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl ServiceLog {
    /// A log for `name` in `dir`; the file is opened on the first write.
    pub fn new(dir: &Path, name: &str, limits: LogLimits) -> Self {
        Self {
            path: log_path(dir, name),
            limits,
            file: None,
            size: 0,
            write_errors: 0,
            failures: 0,
        }
    }

    /// Wraps the log for sharing.
    pub fn shared(self) -> SharedLog {
        Arc::new(Mutex::new(self))
    }

    /// Lines lost so far because writing the log failed.
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("log file not open"))
    }

    /// Appends one line (without its newline), time-stamped, rotating first
    /// when it would not fit. Errors are counted, not returned.
    pub fn write_line(&mut self, line: &[u8]) {
        self.write_lines(std::slice::from_ref(&line));
    }

    /// Appends lines (without newlines) with one time stamp and as few
    /// writes as rotation allows. Errors are counted, not returned.
    pub fn write_lines<L: AsRef<[u8]>>(&mut self, lines: &[L]) {
        let stamp = format_utc(SystemTime::now());
        // Learn the current size of an existing file before deciding on rotation.
        if let Err(err) = self.open() {
            self.report(Err(err));
        }
        let mut batch: Vec<u8> = Vec::new();
        let mut lost = 0;
        for line in lines {
            let line = line.as_ref();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let record_len = (stamp.len() + 2 + line.len()) as u64;
            let pending = self.size + batch.len() as u64;
            if pending > 0 && pending + record_len > self.limits.max_size {
                let flushed = self.append(&batch).and_then(|()| self.rotate());
                if flushed.is_err() {
                    lost += batch.iter().filter(|b| **b == b'\n').count() as u64;
                }
                self.report(flushed);
                batch.clear();
            }
            batch.extend_from_slice(stamp.as_bytes());
            batch.push(b' ');
            batch.extend_from_slice(line);
            batch.push(b'\n');
        }
        let result = self.append(&batch);
        if result.is_err() {
            lost += batch.iter().filter(|b| **b == b'\n').count() as u64;
        }
        self.write_errors += lost;
        self.report(result);
    }

    fn report(&mut self, result: io::Result<()>) {
        if let Err(err) = result {
            self.file = None;
            self.failures += 1;
            // Throttled: a full disk must not flood init's own output.
            if self.failures.is_power_of_two() {
                tracing::warn!(log = %self.path.display(), %err, lost_lines = self.write_errors, "cannot write service log");
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let file = self.open()?;
        file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Shifts `NAME.log` to `NAME.log.1` (and older ones up), dropping the
    /// oldest beyond `max_files`; with `max_files` 0 the log is emptied.
    fn rotate(&mut self) -> io::Result<()> {
        self.open()?;
        self.file = None;
        let keep = self.limits.max_files;
        if keep == 0 {
            File::create(&self.path)?;
        } else {
            remove_if_exists(&rotated_path(&self.path, keep))?;
            for n in (1..keep).rev() {
                let from = rotated_path(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, rotated_path(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, rotated_path(&self.path, 1))?;
        }
        self.size = 0;
        Ok(())
    }

    /// Empties the log and removes its rotated files.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file = None;
        for n in 1..=self.limits.max_files.max(1) {
            remove_if_exists(&rotated_path(&self.path, n))?;
        }
        if self.path.exists() {
            File::create(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// The last lines of a log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tail {
    /// Oldest first.
    pub lines: Vec<String>,
    /// Whether the byte budget stopped the read before `n` lines were found.
    pub truncated: bool,
}

/// Reads the last `n` lines of a service's log, through its rotated files,
/// reading at most `max_bytes` of text. Blocking: call it from
/// `spawn_blocking`.
pub fn tail(
    dir: &Path,
    name: &str,
    max_files: u32,
    n: usize,
    max_bytes: usize,
) -> io::Result<Tail> {
    let path = log_path(dir, name);
    let mut files = vec![path.clone()];
    files.extend((1..=max_files).map(|i| rotated_path(&path, i)));
    let mut newest_first: Vec<Vec<u8>> = Vec::new();
    let mut budget = max_bytes;
    let mut truncated = false;
    for file in files {
        if newest_first.len() >= n {
            break;
        }
        let mut f = match File::open(&file) {
            Ok(f) => f,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        let want = n - newest_first.len();
        let (lines, hit_budget) = tail_file(&mut f, want, &mut budget)?;
        newest_first.extend(lines);
        if hit_budget {
            truncated = true;
            break;
        }
    }
    newest_first.reverse();
    Ok(Tail {
        lines: newest_first
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .collect(),
        truncated,
    })
}

/// Reads up to `want` lines from the end of `file`, newest first, backwards
/// in chunks, spending `budget` bytes. Returns whether the budget ran out.
fn tail_file(file: &mut File, want: usize, budget: &mut usize) -> io::Result<(Vec<Vec<u8>>, bool)> {
    let mut pos = file.seek(SeekFrom::End(0))?;
    let mut lines = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; LOG_READ_CHUNK];
    let mut skip_trailing_newline = true;
    while pos > 0 && lines.len() < want {
        let len = (pos as usize).min(chunk.len());
        pos -= len as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut chunk[..len])?;
        for &byte in chunk[..len].iter().rev() {
            if byte == b'\n' {
                if skip_trailing_newline {
                    skip_trailing_newline = false;
                    continue;
                }
                partial.reverse();
                lines.push(std::mem::take(&mut partial));
                if lines.len() == want {
                    return Ok((lines, false));
                }
            } else {
                skip_trailing_newline = false;
                if *budget == 0 {
                    return Ok((lines, true));
                }
                *budget -= 1;
                partial.push(byte);
            }
        }
    }
    if !partial.is_empty() && lines.len() < want {
        partial.reverse();
        lines.push(partial);
    }
    Ok((lines, false))
}

/// Splits a byte stream into lines, cutting those longer than [`MAX_LOG_LINE_LEN`].
#[derive(Debug, Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for &byte in data {
            if byte == b'\n' {
                lines.push(std::mem::take(&mut self.pending));
            } else {
                self.pending.push(byte);
                if self.pending.len() >= MAX_LOG_LINE_LEN {
                    lines.push(std::mem::take(&mut self.pending));
                }
            }
        }
        lines
    }

    fn rest(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

/// Reads a service's output pipe until every writer closed it, writing each
/// line to `log`. When `exit_note` arrives (the supervisor reaped the
/// process), the output already in the pipe is written first, then the
/// note, so the log reads in the order things happened.
pub async fn capture<R>(mut pipe: R, log: SharedLog, mut exit_note: oneshot::Receiver<String>)
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut buf = vec![0u8; LOG_READ_CHUNK];
    let mut splitter = LineSplitter::default();
    let mut note_pending = true;
    loop {
        tokio::select! {
            read = pipe.read(&mut buf) => match read {
                Ok(0) => break,
                Ok(n) => write_lines(&log, &splitter.push(&buf[..n])),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    tracing::debug!(%err, "service output pipe failed");
                    break;
                }
            },
            note = &mut exit_note, if note_pending => {
                note_pending = false;
                // The process is gone: what it wrote is in the pipe already.
                while let Ok(Ok(n)) = tokio::time::timeout(EXIT_DRAIN_WAIT, pipe.read(&mut buf)).await {
                    if n == 0 {
                        break;
                    }
                    write_lines(&log, &splitter.push(&buf[..n]));
                }
                let mut last: Vec<Vec<u8>> = splitter.rest().into_iter().collect();
                if let Ok(note) = note {
                    last.push(note.into_bytes());
                }
                write_lines(&log, &last);
            }
        }
    }
    let mut last: Vec<Vec<u8>> = splitter.rest().into_iter().collect();
    if note_pending && let Ok(note) = exit_note.await {
        last.push(note.into_bytes());
    }
    write_lines(&log, &last);
}

fn write_lines(log: &SharedLog, lines: &[Vec<u8>]) {
    // A poisoned lock only means another writer panicked mid-write; the
    // log state is still usable.
    let mut guard = log.lock().unwrap_or_else(|e| e.into_inner());
    guard.write_lines(lines);
}

/// Formats a time as `2026-01-31T12:34:56.789Z` (UTC, milliseconds).
pub fn format_utc(time: SystemTime) -> String {
    cli_support::utc_millis(time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max_size: u64, max_files: u32) -> LogLimits {
        LogLimits {
            max_size,
            max_files,
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            format_utc(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(format_utc(t), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn rotation_keeps_max_files_and_tail_reads_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ServiceLog::new(dir.path(), "svc", limits(200, 2));
        for i in 0..40 {
            log.write_line(format!("line {i:03}").as_bytes());
        }
        let names: Vec<String> = {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names, ["svc.log", "svc.log.1", "svc.log.2"]);
        for name in &names {
            let len = std::fs::metadata(dir.path().join(name)).unwrap().len();
            assert!(len <= 200, "{name} is {len} bytes");
        }
        let tail = tail(dir.path(), "svc", 2, 5, 1 << 20).unwrap();
        assert_eq!(tail.lines.len(), 5);
        assert!(tail.lines[4].ends_with("line 039"), "{:?}", tail.lines);
        assert!(tail.lines[0].ends_with("line 035"), "{:?}", tail.lines);
        let all = super::tail(dir.path(), "svc", 2, 1000, 1 << 20).unwrap();
        assert!(all.lines.len() < 40 && all.lines.len() > 10);
        let nums: Vec<u32> = all
            .lines
            .iter()
            .map(|l| l[l.len() - 3..].parse().unwrap())
            .collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");

        log.clear().unwrap();
        assert!(
            super::tail(dir.path(), "svc", 2, 10, 1 << 20)
                .unwrap()
                .lines
                .is_empty()
        );
        assert!(!dir.path().join("svc.log.1").exists());
    }

    #[test]
    fn a_batch_rotates_where_needed_and_failures_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ServiceLog::new(dir.path(), "svc", limits(300, 3));
        let lines: Vec<String> = (0..30).map(|i| format!("batch {i:03}")).collect();
        log.write_lines(&lines);
        for f in ["svc.log", "svc.log.1", "svc.log.2", "svc.log.3"] {
            let len = std::fs::metadata(dir.path().join(f)).unwrap().len();
            assert!(len <= 300 && len > 0, "{f}: {len}");
        }
        let t = tail(dir.path(), "svc", 3, 1000, 1 << 20).unwrap();
        assert!(t.lines.last().unwrap().ends_with("batch 029"));
        assert_eq!(log.write_errors(), 0);

        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, "x").unwrap();
        let mut broken = ServiceLog::new(&not_a_dir, "svc", limits(300, 3));
        broken.write_lines(&["a", "b"]);
        broken.write_line(b"c");
        assert_eq!(broken.write_errors(), 3);
    }

    #[test]
    fn tail_respects_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ServiceLog::new(dir.path(), "svc", limits(1 << 20, 1));
        for _ in 0..100 {
            log.write_line(&[b'x'; 100]);
        }
        let t = tail(dir.path(), "svc", 1, 100, 1000).unwrap();
        assert!(t.truncated);
        assert!(t.lines.len() < 10);
    }

    #[tokio::test]
    async fn capture_splits_lines_and_cuts_long_ones() {
        let dir = tempfile::tempdir().unwrap();
        let log = ServiceLog::new(dir.path(), "svc", limits(1 << 24, 1)).shared();
        let mut data = b"one\r\ntwo\n".to_vec();
        data.extend(vec![b'z'; MAX_LOG_LINE_LEN + 10]);
        data.extend(b"\nlast without newline");
        let (tx, rx) = oneshot::channel();
        tx.send("[init] exited".into()).unwrap();
        capture(&data[..], log.clone(), rx).await;
        let t = tail(dir.path(), "svc", 1, 10, 1 << 24).unwrap();
        assert!(t.lines[5].ends_with(" [init] exited"), "{:?}", t.lines);
        assert_eq!(
            t.lines.len(),
            6,
            "{:?}",
            t.lines.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert!(t.lines[0].ends_with(" one"));
        assert!(t.lines[1].ends_with(" two"));
        assert!(t.lines[4].ends_with(" last without newline"));
    }
}
