//! Wire constants, limits and defaults of the pipeline protocol.

use std::time::Duration;

/// First bytes of every connection, sent by the client: "PLSC" (pipeline
/// secure local channel). Anything else is not a pipeline client.
pub const MAGIC: [u8; 4] = *b"PLSC";

/// Protocol version spoken by this build. 2: control messages in postcard
/// (1 was bincode 2, unmaintained). `Hello` and the version error are the
/// same bytes in both, so a peer of the other version is told why it is
/// refused.
pub const PROTOCOL_VERSION: u16 = 2;

/// Oldest protocol version this build still speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 2;

/// Size of a frame header: a `u32` big-endian length, then a `u8` kind.
pub const FRAME_HEADER_LEN: usize = 5;

/// Largest frame body accepted (kind byte excluded); a peer announcing more
/// is cut off before anything is allocated.
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// Bytes of file content or process output carried by one data frame.
pub const DATA_CHUNK_LEN: usize = 256 * 1024;

/// Largest read into a connection's buffer for headers and control frames
/// (data-frame bodies are read directly into chunk buffers).
pub const READ_BUFFER_LEN: usize = 16 * 1024;

/// Longest path accepted on the wire (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;

/// Longest single path component accepted (Linux `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// Most arguments plus environment entries accepted in one exec request.
pub const MAX_EXEC_ITEMS: usize = 4096;

/// Default vsock port of `pipeline listen`.
pub const DEFAULT_PORT: u32 = 53000;

/// Default limit of clients served at once.
pub const DEFAULT_MAX_CLIENTS: usize = 256;

/// Time a client has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a peer may stay silent in the middle of a transfer before the
/// transfer is abandoned.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// After a command exits, how long its output pipes may stay open (held by
/// background processes it started) before the server stops reading them.
pub const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// After its last frame (an answer or an error), how long the server waits
/// for the client to hang up, reading and discarding what it still sends, so
/// that nothing in flight is lost to an early close or a connection reset.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(5);

/// Grace period the server gives open connections on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Prefix of the temporary files and directories a transfer writes before
/// renaming them into place.
pub const TEMP_PREFIX: &str = ".pipeline-tmp-";
