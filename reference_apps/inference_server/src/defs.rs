//! Limits, defaults and wire constants, each in one place.

/// The port the server listens on when `--listen` is not given (the
/// reference apps' range of the architecture; never 8080, which is
/// ra-web-srv's redirect).
pub const DEFAULT_PORT: u16 = 10070;

/// The address the server listens on by default: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:10070";

/// The longest context any model is run with, in tokens: candle's quantized
/// llama precomputes its rotary tables for this many positions.
pub const MAX_CONTEXT: usize = 4096;

/// Requests waiting for one model (besides the one being generated); one
/// more gets `503 Service Unavailable`.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16;

/// `max_tokens` when a request does not give one (then clamped to what the
/// context has room for).
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// The prompt is fed to the model in pieces of this many tokens, so the
/// attention scores of a long prompt stay small (9 heads x 256 x 4096 f32).
pub const PREFILL_CHUNK: usize = 256;

/// How many of the last tokens the repeat penalty looks at.
pub const REPEAT_LAST_N: usize = 64;

/// The most stop sequences a request may give (OpenAI's limit).
pub const MAX_STOP_SEQUENCES: usize = 4;

/// The longest stop sequence, in bytes.
pub const MAX_STOP_LEN: usize = 256;

/// The most messages in one chat request.
pub const MAX_MESSAGES: usize = 256;

/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The most models loaded at once (each takes about 300 MiB).
pub const MAX_MODELS: usize = 4;

/// The longest model name, in bytes.
pub const MAX_MODEL_NAME: usize = 128;

/// Highest temperature accepted (OpenAI's range is 0 to 2).
pub const MAX_TEMPERATURE: f64 = 2.0;

/// Highest repeat penalty accepted.
pub const MAX_REPEAT_PENALTY: f32 = 10.0;

/// The system prompt SmolLM2's chat template adds when the conversation has
/// none, used when the GGUF names a ChatML template without its own.
pub const SMOLLM2_DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// ChatML's start-of-turn token.
pub const IM_START: &str = "<|im_start|>";

/// ChatML's end-of-turn token (SmolLM2's end-of-sequence).
pub const IM_END: &str = "<|im_end|>";

/// GPT-2's end-of-text token (SmolLM2's token 0).
pub const END_OF_TEXT: &str = "<|endoftext|>";
