//! The runtime alone, for `bench/inference.sh`: one greedy chat generation
//! through [`Engine`] on the calling thread (after a 4-token warm-up), no
//! HTTP, no queue.

use std::path::Path;

use serde::Serialize;

use crate::chat::{Message, Role};
use crate::engine::{Engine, GenerateError, GenerationRequest, LoadError};
use crate::sampling::{SamplingParams, StopSequences};

/// What to generate.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The user message.
    pub prompt: String,
    /// Tokens to generate at most.
    pub max_tokens: usize,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Seconds to load (hash, read, re-quantise).
    pub load_seconds: f64,
    /// Tokens of the templated prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Seconds from the start of generation to the first token.
    pub ttft_seconds: f64,
    /// Seconds for the whole generation.
    pub total_seconds: f64,
    /// Generated tokens after the first, per second after the first.
    pub decode_tokens_per_second: f64,
    /// The answer.
    pub text: String,
}

/// A benchmark failure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Generating failed.
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

/// Loads `model` and runs one greedy generation of `config`.
pub fn run(model: &Path, config: &BenchConfig) -> Result<BenchReport, BenchError> {
    let mut engine = Engine::load(model, "bench")?;
    let vocabulary = std::sync::Arc::clone(engine.vocabulary());
    let segments = vocabulary.template.render(&[Message {
        role: Role::User,
        content: config.prompt.clone(),
    }]);
    let prompt = vocabulary
        .encode_chat(&segments)
        .map_err(GenerateError::from)?;
    let request = GenerationRequest {
        prompt,
        max_tokens: config.max_tokens,
        sampling: SamplingParams::default(),
        stop: StopSequences::default(),
    };
    // A short warm-up first (thread pool, buffers), as the server has had
    // requests before the measured one.
    let warm_up = GenerationRequest {
        max_tokens: 4,
        ..request.clone()
    };
    engine.generate(&warm_up, &mut |_| true)?;
    let generation = engine.generate(&request, &mut |_| true)?;
    let decode = generation
        .elapsed
        .saturating_sub(generation.time_to_first_token);
    let decode_tokens = generation.completion_tokens.saturating_sub(1);
    Ok(BenchReport {
        load_seconds: engine.info().load_time.as_secs_f64(),
        prompt_tokens: generation.prompt_tokens,
        completion_tokens: generation.completion_tokens,
        ttft_seconds: generation.time_to_first_token.as_secs_f64(),
        total_seconds: generation.elapsed.as_secs_f64(),
        decode_tokens_per_second: if decode.is_zero() {
            0.0
        } else {
            decode_tokens as f64 / decode.as_secs_f64()
        },
        text: generation.text,
    })
}
