//! The runtime: loads a GGUF model with candle and generates text.
//!
//! Loading reads the GGUF's metadata and tensors, re-quantises the Q4_0,
//! Q4_1, Q5_0 and Q5_1 tensors to Q8_0 (candle has fast CPU kernels for
//! Q8_0 only: about 4 times the speed for SmolLM2-135M, at 145 MB), rebuilds
//! an in-memory GGUF from them in name order and loads candle's quantized
//! llama from it. Re-quantising is a pure function of the file's bytes, so
//! a given file always gives the same weights. The file's SHA3-512 (what
//! fs-monitor and ra-web-srv attest) is computed from the file itself.
//!
//! [`Engine::generate`] runs one request to its end on the calling thread:
//! it is called from the model's generation thread only (see
//! [`crate::queue`]), never from the async runtime.

use std::fs::File;
use std::io::{BufReader, Cursor, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use ra_verify_core::Sha3Digest;

use crate::chat::{ChatTemplate, Segment, UnsupportedTemplate};
use crate::defs::{END_OF_TEXT, IM_END, MAX_CONTEXT, PREFILL_CHUNK, REPEAT_LAST_N};
use crate::sampling::{SamplingParams, StopSequences};
use crate::tokenizer::{Detokenizer, TextTokenizer, TokenizerError};

/// What can go wrong loading a model.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be opened or read.
    #[error("reading {path}: {source}")]
    Io {
        /// The model file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Hashing the file failed.
    #[error("hashing the model file: {0}")]
    Hash(#[from] ra_verify_core::hash::HashError),
    /// The file is not a GGUF candle can read.
    #[error("{path} is not a usable GGUF model: {source}")]
    Gguf {
        /// The model file.
        path: PathBuf,
        /// What candle said.
        source: candle_core::Error,
    },
    /// The GGUF's architecture is not llama.
    #[error("unsupported model architecture {0:?} (llama only)")]
    Architecture(String),
    /// The tokenizer cannot be built from the GGUF.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The chat template is not ChatML.
    #[error(transparent)]
    Template(#[from] UnsupportedTemplate),
    /// The tokenizer lacks a token the server needs.
    #[error("the tokenizer has no {0} token")]
    MissingToken(&'static str),
}

/// What can go wrong generating.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The model failed (a tensor operation).
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    /// Turning tokens into text failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The prompt is empty.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// The prompt and the answer do not fit in the context.
    #[error("{prompt} prompt tokens + {max_tokens} max_tokens exceed the context of {context}")]
    Context {
        /// Prompt tokens.
        prompt: usize,
        /// Requested tokens.
        max_tokens: usize,
        /// The model's context length.
        context: usize,
    },
}

/// Facts about a loaded model, shared by the API and its generation thread.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The name requests use (the file stem by default).
    pub name: String,
    /// The weights file.
    pub path: PathBuf,
    /// SHA3-512 of the weights file (the value fs-monitor and ra-web-srv attest).
    pub sha3_512: Sha3Digest,
    /// The GGUF's `general.name`, if any.
    pub description: Option<String>,
    /// The context length used (the model's, at most [`MAX_CONTEXT`]).
    pub context_length: usize,
    /// When it was loaded, seconds since the epoch.
    pub created: u64,
    /// How long loading took.
    pub load_time: Duration,
}

/// The tokenizer side of a model: everything a request needs before it
/// reaches the generation thread.
pub struct Vocabulary {
    /// The tokenizer.
    pub tokenizer: TextTokenizer,
    /// The chat template.
    pub template: ChatTemplate,
    /// Tokens that end generation (`<|im_end|>`, `<|endoftext|>`, the GGUF's EOS).
    pub end_tokens: Vec<u32>,
    im_start: u32,
    im_end: u32,
}

impl Vocabulary {
    /// Tokens of a rendered chat prompt: control tokens by id, text as text.
    pub fn encode_chat(&self, segments: &[Segment]) -> Result<Vec<u32>, TokenizerError> {
        let mut tokens = Vec::new();
        for segment in segments {
            match segment {
                Segment::Control(token) if *token == IM_END => tokens.push(self.im_end),
                Segment::Control(_) => tokens.push(self.im_start),
                Segment::Text(text) => tokens.extend(self.tokenizer.encode(text)?),
            }
        }
        Ok(tokens)
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its answer, or a stop sequence appeared.
    Stop,
    /// `max_tokens` were generated.
    Length,
    /// The client went away.
    Cancelled,
}

impl FinishReason {
    /// OpenAI's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// The result of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The answer (without stop sequence or end token).
    pub text: String,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens (the end token not counted).
    pub completion_tokens: usize,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// From the start of generation to the first generated token.
    pub time_to_first_token: Duration,
    /// The whole generation.
    pub elapsed: Duration,
}

/// One request as the generation thread runs it.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    /// The prompt's tokens.
    pub prompt: Vec<u32>,
    /// At most this many generated tokens.
    pub max_tokens: usize,
    /// How tokens are chosen.
    pub sampling: SamplingParams,
    /// Where the answer stops.
    pub stop: StopSequences,
}

/// A model with its weights: owned by one generation thread.
pub struct Engine {
    weights: ModelWeights,
    vocabulary: Arc<Vocabulary>,
    info: Arc<ModelInfo>,
    device: Device,
}

fn gguf_error(path: &Path) -> impl Fn(candle_core::Error) -> LoadError + '_ {
    move |source| LoadError::Gguf {
        path: path.to_path_buf(),
        source,
    }
}

/// Types re-quantised to Q8_0 at load (no fast CPU kernel in candle).
fn requantise(dtype: GgmlDType) -> bool {
    matches!(
        dtype,
        GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1
    )
}

impl Engine {
    /// Loads a GGUF model under `name`.
    pub fn load(path: &Path, name: &str) -> Result<Self, LoadError> {
        let started = Instant::now();
        let io_error = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let sha3_512 = ra_verify_core::hash::hash_file(path)?;
        let device = Device::Cpu;
        let mut reader = BufReader::new(File::open(path).map_err(io_error)?);
        let content = gguf_file::Content::read(&mut reader).map_err(gguf_error(path))?;

        let architecture = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if architecture != "llama" {
            return Err(LoadError::Architecture(architecture));
        }
        let vocabulary = Arc::new(Self::read_vocabulary(&content)?);
        let description = content
            .metadata
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned();
        let context_length = content
            .metadata
            .get("llama.context_length")
            .and_then(|v| v.to_u32().ok())
            .map_or(MAX_CONTEXT, |n| n as usize)
            .clamp(1, MAX_CONTEXT.min(MAX_SEQ_LEN));

        // Re-quantise, in name order, into an in-memory GGUF.
        let mut names: Vec<&String> = content.tensor_infos.keys().collect();
        names.sort();
        let mut tensors = Vec::with_capacity(names.len());
        for name in names {
            let tensor = content
                .tensor(&mut reader, name, &device)
                .map_err(gguf_error(path))?;
            let tensor = if requantise(tensor.dtype())
                && tensor.shape().dims().last().is_some_and(|d| d % 32 == 0)
            {
                let dense = tensor.dequantize(&device).map_err(gguf_error(path))?;
                QTensor::quantize(&dense, GgmlDType::Q8_0).map_err(gguf_error(path))?
            } else {
                tensor
            };
            tensors.push((name.as_str(), tensor));
        }
        let mut metadata: Vec<(&str, &gguf_file::Value)> = content
            .metadata
            .iter()
            .map(|(key, value)| (key.as_str(), value))
            .collect();
        metadata.sort_by(|a, b| a.0.cmp(b.0));
        let tensor_refs: Vec<(&str, &QTensor)> = tensors
            .iter()
            .map(|(name, tensor)| (*name, tensor))
            .collect();
        let mut image = Cursor::new(Vec::new());
        gguf_file::write(&mut image, &metadata, &tensor_refs).map_err(gguf_error(path))?;
        drop(tensor_refs);
        drop(tensors);
        image.rewind().map_err(io_error)?;
        let requantised = gguf_file::Content::read(&mut image).map_err(gguf_error(path))?;
        let weights =
            ModelWeights::from_gguf(requantised, &mut image, &device).map_err(gguf_error(path))?;

        let info = ModelInfo {
            name: name.to_owned(),
            path: path.to_path_buf(),
            sha3_512,
            description,
            context_length,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            load_time: started.elapsed(),
        };
        tracing::info!(
            model = name,
            path = %path.display(),
            sha3_512 = %info.sha3_512,
            context = context_length,
            seconds = info.load_time.as_secs_f64(),
            "model loaded"
        );
        Ok(Self {
            weights,
            vocabulary,
            info: Arc::new(info),
            device,
        })
    }

    fn read_vocabulary(content: &gguf_file::Content) -> Result<Vocabulary, LoadError> {
        let tokenizer = TextTokenizer::from_gguf(content)?;
        let template = ChatTemplate::from_gguf_template(
            content
                .metadata
                .get("tokenizer.chat_template")
                .and_then(|v| v.to_string().ok())
                .map(String::as_str),
        )?;
        let im_start = tokenizer
            .token_id(crate::defs::IM_START)
            .ok_or(LoadError::MissingToken(crate::defs::IM_START))?;
        let im_end = tokenizer
            .token_id(IM_END)
            .ok_or(LoadError::MissingToken(IM_END))?;
        let mut end_tokens = vec![im_end];
        end_tokens.extend(tokenizer.token_id(END_OF_TEXT));
        if let Some(eos) = content
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok())
        {
            end_tokens.push(eos);
        }
        end_tokens.sort_unstable();
        end_tokens.dedup();
        Ok(Vocabulary {
            tokenizer,
            template,
            end_tokens,
            im_start,
            im_end,
        })
    }

    /// The model's facts.
    pub fn info(&self) -> &Arc<ModelInfo> {
        &self.info
    }

    /// The model's tokenizer and template.
    pub fn vocabulary(&self) -> &Arc<Vocabulary> {
        &self.vocabulary
    }

    /// Checks that a request fits in the context.
    pub fn check_context(
        context: usize,
        prompt: usize,
        max_tokens: usize,
    ) -> Result<(), GenerateError> {
        if prompt == 0 {
            return Err(GenerateError::EmptyPrompt);
        }
        if prompt.saturating_add(max_tokens) > context {
            return Err(GenerateError::Context {
                prompt,
                max_tokens,
                context,
            });
        }
        Ok(())
    }

    /// Runs `request` to its end. `on_text` gets each new piece of the
    /// answer as soon as it is final (no partial character, no possible
    /// start of a stop sequence); when it returns `false` the client is
    /// gone and generation stops.
    pub fn generate(
        &mut self,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, GenerateError> {
        let started = Instant::now();
        Self::check_context(
            self.info.context_length,
            request.prompt.len(),
            request.max_tokens,
        )?;
        let vocabulary = Arc::clone(&self.vocabulary);
        let tokenizer = &vocabulary.tokenizer;
        self.weights.clear_kv_cache();
        let mut processor = request.sampling.logits_processor();
        let mut context: Vec<u32> = request.prompt.clone();
        let mut detokenizer = Detokenizer::new();
        let mut text = String::new();
        let mut shown = 0;
        let mut completion_tokens = 0;
        let mut time_to_first_token = Duration::ZERO;
        let mut finish_reason = FinishReason::Length;
        let mut stopped_by_sequence = false;

        // The prompt, in chunks; the logits of its last position come out.
        let mut logits = None;
        for (index, chunk) in request.prompt.chunks(PREFILL_CHUNK).enumerate() {
            let input = Tensor::new(chunk, &self.device)?.unsqueeze(0)?;
            logits = Some(self.weights.forward(&input, index * PREFILL_CHUNK)?);
        }
        let mut logits = match logits {
            Some(logits) => logits.squeeze(0)?,
            None => return Err(GenerateError::EmptyPrompt),
        };

        while completion_tokens < request.max_tokens {
            if request.sampling.repeat_penalty != 1.0 {
                let start = context.len().saturating_sub(REPEAT_LAST_N);
                logits = candle_transformers::utils::apply_repeat_penalty(
                    &logits,
                    request.sampling.repeat_penalty,
                    &context[start..],
                )?;
            }
            let token = processor.sample(&logits)?;
            if completion_tokens == 0 {
                time_to_first_token = started.elapsed();
            }
            if vocabulary.end_tokens.contains(&token) {
                finish_reason = FinishReason::Stop;
                break;
            }
            completion_tokens += 1;
            context.push(token);
            if let Some(piece) = detokenizer.push(tokenizer, token)? {
                text.push_str(&piece);
            }
            // A stop sequence cannot start in the part already shown.
            if let Some(at) = text.get(shown..).and_then(|tail| request.stop.find(tail)) {
                text.truncate(shown + at);
                finish_reason = FinishReason::Stop;
                stopped_by_sequence = true;
                break;
            }
            let safe = request.stop.safe_len(&text);
            if safe > shown {
                if !on_text(&text[shown..safe]) {
                    finish_reason = FinishReason::Cancelled;
                    break;
                }
                shown = safe;
            }
            if completion_tokens == request.max_tokens {
                break;
            }
            let input = Tensor::new(&[token], &self.device)?.unsqueeze(0)?;
            logits = self
                .weights
                .forward(&input, context.len() - 1)?
                .squeeze(0)?;
        }
        if !stopped_by_sequence {
            text.push_str(&detokenizer.finish(tokenizer)?);
            if let Some(at) = request.stop.find(&text) {
                text.truncate(at);
                finish_reason = FinishReason::Stop;
            }
        }
        if finish_reason != FinishReason::Cancelled
            && let Some(rest) = text.get(shown..)
            && !rest.is_empty()
        {
            on_text(rest);
        }
        Ok(Generation {
            text,
            prompt_tokens: request.prompt.len(),
            completion_tokens,
            finish_reason,
            time_to_first_token,
            elapsed: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_checks() {
        assert!(Engine::check_context(100, 10, 90).is_ok());
        assert!(matches!(
            Engine::check_context(100, 10, 91),
            Err(GenerateError::Context { .. })
        ));
        assert!(matches!(
            Engine::check_context(100, 0, 1),
            Err(GenerateError::EmptyPrompt)
        ));
        assert!(Engine::check_context(100, 1, usize::MAX).is_err());
    }

    #[test]
    fn only_slow_quantisations_are_requantised() {
        assert!(requantise(GgmlDType::Q4_1));
        assert!(!requantise(GgmlDType::Q8_0));
        assert!(!requantise(GgmlDType::F32));
    }
}
