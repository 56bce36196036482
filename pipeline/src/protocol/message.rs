//! Control messages: what each frame of kind 0 carries.
//!
//! Operating-system strings (arguments, environment, paths) travel as raw
//! bytes, so names that are not UTF-8 survive a round trip; human-readable
//! text (error messages, names of programs) is UTF-8 and a frame with
//! invalid UTF-8 there is rejected as malformed.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Every control message of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Client greeting: the protocol versions it speaks.
    Hello {
        /// Oldest version the client speaks.
        min_version: u16,
        /// Newest version the client speaks.
        max_version: u16,
        /// Client name and version, for logs.
        client: String,
    },
    /// Server answer to `Hello`.
    Welcome {
        /// The version both will speak.
        version: u16,
        /// Server name and version, for logs.
        server: String,
        /// Whether this server runs commands.
        exec_allowed: bool,
    },
    /// Run a command.
    Exec(ExecRequest),
    /// The command is running with this process id.
    Started {
        /// Process id in the enclave.
        pid: u32,
    },
    /// No more standard input.
    StdinClose,
    /// Deliver a signal to the command's process group.
    Signal {
        /// Signal number.
        signal: i32,
    },
    /// The command ended.
    Exited(ExitStatus),
    /// Upload: a tree stream follows from the client.
    Put(PutRequest),
    /// Download: the server answers with a tree stream.
    Get(GetRequest),
    /// Start of a tree stream: totals, for progress reporting.
    TreeBegin(TreeBegin),
    /// A directory, file or symlink of the tree; file content follows in
    /// data frames, then `FileEnd`.
    Entry(EntryMeta),
    /// End of the current file's content.
    FileEnd {
        /// XXH3-128 digest of the content (see [`crate::digest`]).
        digest: [u8; crate::digest::DIGEST_LEN],
    },
    /// End of the tree stream.
    TreeEnd,
    /// The tree was written in place.
    Done(Summary),
    /// The operation failed; the connection closes after this.
    Error(ErrorFrame),
}

impl Message {
    /// The name of the variant, for error texts.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Welcome { .. } => "Welcome",
            Message::Exec(_) => "Exec",
            Message::Started { .. } => "Started",
            Message::StdinClose => "StdinClose",
            Message::Signal { .. } => "Signal",
            Message::Exited(_) => "Exited",
            Message::Put(_) => "Put",
            Message::Get(_) => "Get",
            Message::TreeBegin(_) => "TreeBegin",
            Message::Entry(_) => "Entry",
            Message::FileEnd { .. } => "FileEnd",
            Message::TreeEnd => "TreeEnd",
            Message::Done(_) => "Done",
            Message::Error(_) => "Error",
        }
    }
}

/// What to run, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Program and arguments; the program is looked up in `PATH`.
    pub argv: Vec<ByteBuf>,
    /// Variables added to (or replacing in) the server's environment.
    pub env: Vec<(ByteBuf, ByteBuf)>,
    /// Working directory; the server's own when absent.
    pub cwd: Option<ByteBuf>,
    /// Kill the command's process group after this many milliseconds.
    pub timeout_ms: Option<u64>,
    /// Return once started (answer `Started`, nothing else).
    pub detach: bool,
    /// The client will forward standard input; otherwise it is /dev/null.
    pub stdin: bool,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal killed it.
    pub signal: Option<i32>,
    /// It was killed because its time-out expired.
    pub timed_out: bool,
}

impl ExitStatus {
    /// The status a shell would report: the exit code, 128+N for signal N,
    /// 124 for a time-out (as `timeout(1)`).
    pub fn shell_code(&self) -> i32 {
        if self.timed_out {
            124
        } else if let Some(signal) = self.signal {
            128 + signal
        } else {
            self.code.unwrap_or(1)
        }
    }
}

/// Where an uploaded tree goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutRequest {
    /// Destination path on the server (absolute).
    pub dest: ByteBuf,
    /// How `dest` is interpreted.
    pub placement: Placement,
}

/// How a destination path is interpreted (on whichever side receives).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Placement {
    /// The tree's root becomes `dest` itself; a directory merges into an
    /// existing directory there.
    Exact {
        /// Create missing parent directories of `dest`.
        create_parents: bool,
    },
    /// As `docker cp`: when `dest` is an existing directory the tree goes
    /// to `dest/<name>`, otherwise to `dest`.
    IntoDirectory {
        /// Name of the source (its last path component).
        name: ByteBuf,
    },
}

/// What to download.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetRequest {
    /// Source path on the server (absolute).
    pub source: ByteBuf,
    /// When the source is a symlink, send what it points to.
    pub follow_root_symlink: bool,
    /// The kind of source the client expects.
    pub expect: Expect,
}

/// Kind of source a download expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// Whatever is there.
    Any,
    /// A regular file.
    File,
    /// A directory.
    Directory,
}

/// Totals announced at the start of a tree stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeBegin {
    /// Entries that follow (root included).
    pub entries: u64,
    /// Bytes of file content that follow.
    pub bytes: u64,
}

/// One entry of a tree stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// Path relative to the tree's root, components joined by `/`; empty for
    /// the root itself.
    pub path: ByteBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
}

/// Kind of a tree entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file of this size; its content follows.
    File {
        /// Size in bytes.
        size: u64,
    },
    /// A symbolic link, copied as a link.
    Symlink {
        /// Where it points, as stored.
        target: ByteBuf,
    },
}

/// What a completed transfer wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Regular files written.
    pub files: u64,
    /// Directories written.
    pub directories: u64,
    /// Symbolic links written.
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Final path of the tree's root.
    pub path: ByteBuf,
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

/// Machine-readable failure reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// No protocol version in common.
    UnsupportedVersion,
    /// The request is invalid (empty command, relative path...).
    BadRequest,
    /// The peer broke the protocol (malformed or unexpected frame).
    Protocol,
    /// This server does not run commands.
    ExecDisabled,
    /// A path or program does not exist.
    NotFound,
    /// The operating system refused access.
    PermissionDenied,
    /// A path is outside the allowed roots or tries to escape (`..`, symlinks).
    PathRefused,
    /// A directory would be replaced by a file or the other way round.
    Conflict,
    /// The source is not the expected kind (file or directory).
    WrongKind,
    /// The command could not be started.
    SpawnFailed,
    /// File content did not match its digest or announced size.
    Corrupted,
    /// Reading or writing failed.
    Io,
    /// Too many clients; try again later.
    Busy,
    /// The peer was silent for too long.
    Timeout,
    /// The server is shutting down.
    ShuttingDown,
}
