//! The control protocol between `initctl` and `init`.
//!
//! Each request and each response is one JSON document in one
//! length-prefixed frame (see [`frame`]); a connection may carry any number
//! of request/response pairs. Requests are at most
//! [`MAX_REQUEST_FRAME`](crate::defs::MAX_REQUEST_FRAME) bytes, responses at
//! most [`MAX_RESPONSE_FRAME`](crate::defs::MAX_RESPONSE_FRAME).
//!
//! - [`frame`]: bytes to frames, no I/O.
//! - [`connection`]: a stream with its read buffer, reading and writing frames.
//! - [`cmd`]: the messages (defined in [`crate::api`], the supervisor's API).
//! - [`access`]: what a connection may ask (read-only or full).
//! - [`server`]: listeners and per-connection handling inside init.
//! - [`client`]: one request/response exchange, for initctl.

pub mod access;
pub mod client;
pub mod connection;
pub mod frame;
pub mod server;

pub use crate::api as cmd;
