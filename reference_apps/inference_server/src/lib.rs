//! `inference-server`: an OpenAI-compatible language-model server for the
//! enclave, CPU only, pure Rust (candle).
//!
//! It serves GGUF llama models such as SmolLM2-135M-Instruct: completions
//! and chat completions, streamed as server-sent events or whole, with
//! every answer naming the SHA3-512 of the weights file that produced it,
//! the value the framework's attestation server attests for that file;
//! with a signing key, answers are signed by a key whose file the framework
//! attests too.
//!
//! Layout:
//! - [`defs`]: limits and defaults.
//! - [`tokenizer`]: the tokenizer from the GGUF, with SmolLM's pre-tokenizer.
//! - [`chat`]: the ChatML chat template.
//! - [`sampling`]: temperature, top-p, seed, repeat penalty, stop sequences.
//! - [`engine`]: loading (re-quantised to Q8_0) and generating.
//! - [`queue`]: one generation thread per model behind a bounded FIFO queue.
//! - [`registry`]: the loaded models by name.
//! - [`api`]: the JSON request and response types and their validation.
//! - [`routes`]: the HTTP handlers and JSON errors.
//! - [`signing`]: the response-signing key (`--signing-key-dir`) and the
//!   signatures of answers.
//! - [`server`]: the router and the serving loop.
//! - [`cli`]: the command line.
//! - [`bench`](mod@bench): one generation with the runtime alone, for the benchmark.
#![forbid(unsafe_code)]

pub mod api;
pub mod bench;
pub mod chat;
pub mod cli;
pub mod defs;
pub mod engine;
pub mod queue;
pub mod registry;
pub mod routes;
pub mod sampling;
pub mod server;
pub mod signing;
pub mod tokenizer;

pub use engine::{Engine, ModelInfo};
pub use registry::Registry;
pub use server::{app, app_with_signer, run, run_with_signer};
