//! The wire protocol: frames ([`frame`]) carrying messages ([`message`]).
//!
//! A connection starts with the client's 4-byte [`MAGIC`](crate::defs::MAGIC),
//! then both sides exchange frames:
//!
//! ```text
//! +----------------+--------+---------------------------+
//! | length: u32 BE | kind u8| body (length bytes)       |
//! +----------------+--------+---------------------------+
//! ```
//!
//! `length` counts the body only and is at most
//! [`MAX_FRAME_LEN`](crate::defs::MAX_FRAME_LEN). Kind 0 is a control
//! message, encoded with postcard (serde); kinds 1 to 4 carry raw bytes
//! (file content, stdout, stderr, stdin) and are never re-encoded.
//!
//! One connection carries one operation. The client sends its request
//! right behind its greeting, without waiting for the welcome:
//!
//! ```text
//! client                               server
//! Hello{versions} Exec{argv, ...}  ->
//!                              <-      Welcome{version, exec} | Error
//!                              <-      Started{pid}
//! Stdin data / StdinClose / Signal ->  (while it runs)
//!                              <-      Stdout / Stderr data (as produced)
//!                              <-      Exited{code | signal}    | Error
//!
//! Hello Put{dest, placement}   ->
//!                              <-      Welcome
//! tree stream                  ->      (TreeBegin, Entry, FileData..., FileEnd, ..., TreeEnd)
//!                              <-      Done{summary}           | Error
//!
//! Hello Get{source}            ->
//!                              <-      Welcome, then a tree stream | Error
//! ```

pub mod frame;
pub mod message;

pub use frame::{Channel, Frame, FrameError};
pub use message::{
    EntryKind, EntryMeta, ErrorCode, ErrorFrame, ExecRequest, ExitStatus, Expect, GetRequest,
    Message, Placement, PutRequest, Summary, TreeBegin,
};
