//! Real servers for integration tests.
//!
//! Tests across the workspace need the same real dependencies; this crate
//! starts them on free loopback ports with throw-away state, so that each test
//! is independent and nothing is left behind.
//!
//! - [`NatsServer`]: the distribution's `nats-server` with JetStream, as the
//!   enclave runs it (`tools/devtool deps` installs it).
//! - [`eventually`], [`wait_until`], [`eventually_async`]: polling until
//!   another process is ready, the same way in every test.

pub mod nats;
pub mod wait;

pub use nats::NatsServer;
pub use wait::{eventually, eventually_async, wait_until};
