//! Real servers for integration tests.
//!
//! Tests across the workspace need the same real dependencies; this crate
//! starts them on free loopback ports with throw-away state, so that each test
//! is independent and nothing is left behind.
//!
//! - [`NatsServer`]: the distribution's `nats-server` with JetStream, as the
//!   enclave runs it (`tools/devtool deps` installs it).

pub mod nats;

pub use nats::NatsServer;
