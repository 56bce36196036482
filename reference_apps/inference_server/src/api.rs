//! The wire types of the HTTP API and their validation.
//!
//! Requests follow OpenAI's completions and chat completions (unknown
//! fields are ignored, as OpenAI clients send many), plus `repeat_penalty`
//! as llama.cpp's server takes it. Every response, and every chunk of a
//! stream, names the SHA3-512 of the weights file that produced it in
//! `model_sha3_512`.

use serde::{Deserialize, Serialize};

use crate::chat::{Message, Role};
use crate::defs::MAX_MESSAGES;
use crate::sampling::{ParamError, SamplingParams, StopSequences};

/// A request that cannot be served as written (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidRequest {
    /// A sampling parameter or stop sequence is out of range.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// `max_tokens` is 0.
    #[error("max_tokens must be at least 1")]
    ZeroMaxTokens,
    /// `n` is not 1.
    #[error("only n = 1 is supported")]
    Choices,
    /// No messages.
    #[error("messages must not be empty")]
    NoMessages,
    /// Too many messages.
    #[error("at most {MAX_MESSAGES} messages, not {0}")]
    TooManyMessages(usize),
    /// A role the template does not know.
    #[error("unsupported message role {0:?} (system, developer, user or assistant)")]
    Role(String),
    /// A content part that is not text.
    #[error("only text content parts are supported, not {0:?}")]
    ContentPart(String),
    /// A prompt given as a list of several prompts.
    #[error("prompt must be a string (or a list of one string)")]
    Prompt,
}

/// A string or a list of strings (OpenAI's `stop` and `prompt`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One string.
    One(String),
    /// Several strings.
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the token counts.
    #[serde(default)]
    pub include_usage: bool,
}

/// The fields completions and chat completions share.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommonParams {
    /// The model's name (the default model when absent).
    #[serde(default)]
    pub model: Option<String>,
    /// At most this many generated tokens.
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// 0 to 2; 0 is greedy and deterministic. Default 1.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling, above 0 and at most 1. Default 1.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Seed of the sampler.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Up to 4 stop sequences.
    #[serde(default)]
    pub stop: Option<OneOrMany>,
    /// Penalty on tokens seen in the last 64 (1 is off).
    #[serde(default)]
    pub repeat_penalty: Option<f32>,
    /// Number of choices: 1 only.
    #[serde(default)]
    pub n: Option<usize>,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

/// The checked form of [`CommonParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Requested max_tokens (at least 1), if any.
    pub max_tokens: Option<usize>,
    /// Sampling.
    pub sampling: SamplingParams,
    /// Stop sequences.
    pub stop: StopSequences,
    /// Stream the answer.
    pub stream: bool,
    /// Send usage at the end of a stream.
    pub include_usage: bool,
}

impl CommonParams {
    /// Checks every value; `max_completion_tokens` (chat) wins over `max_tokens`.
    pub fn check(&self, max_completion_tokens: Option<usize>) -> Result<Checked, InvalidRequest> {
        let max_tokens = max_completion_tokens.or(self.max_tokens);
        if max_tokens == Some(0) {
            return Err(InvalidRequest::ZeroMaxTokens);
        }
        if self.n.is_some_and(|n| n != 1) {
            return Err(InvalidRequest::Choices);
        }
        Ok(Checked {
            max_tokens,
            sampling: SamplingParams::new(
                self.temperature,
                self.top_p,
                self.seed,
                self.repeat_penalty,
            )?,
            stop: StopSequences::new(
                self.stop
                    .clone()
                    .map(OneOrMany::into_vec)
                    .unwrap_or_default(),
            )?,
            stream: self.stream,
            include_usage: self
                .stream_options
                .as_ref()
                .is_some_and(|options| options.include_usage),
        })
    }
}

/// `POST /v1/completions` (and the overview's `POST /completions`).
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The text to continue.
    pub prompt: OneOrMany,
    /// The rest.
    #[serde(flatten)]
    pub params: CommonParams,
}

impl CompletionRequest {
    /// The prompt as one string.
    pub fn prompt_text(&self) -> Result<String, InvalidRequest> {
        match &self.prompt {
            OneOrMany::One(text) => Ok(text.clone()),
            OneOrMany::Many(list) if list.len() == 1 => Ok(list[0].clone()),
            OneOrMany::Many(_) => Err(InvalidRequest::Prompt),
        }
    }
}

/// A message's content: a string or a list of parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts; only `{"type": "text", "text": ...}` is supported.
    Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    /// The part's type (`text`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its text.
    #[serde(default)]
    pub text: Option<String>,
}

/// A message of a chat request.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessageIn {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    /// The text (null is read as empty).
    #[serde(default)]
    pub content: Option<Content>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessageIn>,
    /// OpenAI's newer name for `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
    /// The rest.
    #[serde(flatten)]
    pub params: CommonParams,
}

impl ChatRequest {
    /// The conversation in the template's terms.
    pub fn messages(&self) -> Result<Vec<Message>, InvalidRequest> {
        if self.messages.is_empty() {
            return Err(InvalidRequest::NoMessages);
        }
        if self.messages.len() > MAX_MESSAGES {
            return Err(InvalidRequest::TooManyMessages(self.messages.len()));
        }
        self.messages
            .iter()
            .map(|message| {
                let role = Role::parse(&message.role)
                    .ok_or_else(|| InvalidRequest::Role(message.role.clone()))?;
                let content = match &message.content {
                    None => String::new(),
                    Some(Content::Text(text)) => text.clone(),
                    Some(Content::Parts(parts)) => {
                        let mut text = String::new();
                        for part in parts {
                            match (part.kind.as_str(), &part.text) {
                                ("text", Some(piece)) => text.push_str(piece),
                                _ => return Err(InvalidRequest::ContentPart(part.kind.clone())),
                            }
                        }
                        text
                    }
                };
                Ok(Message { role, content })
            })
            .collect()
    }
}

/// `POST /load_model`.
#[derive(Debug, Clone, Deserialize)]
pub struct LoadModelRequest {
    /// The GGUF file to load.
    pub model_path: String,
    /// The name to serve it under (default: the file stem).
    #[serde(default)]
    pub model_name: Option<String>,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    /// Tokens of the prompt (template included).
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Both.
    pub total_tokens: usize,
}

impl Usage {
    /// Counts for a prompt and an answer.
    pub fn new(prompt_tokens: usize, completion_tokens: usize) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// A chat message in a response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChatMessageOut {
    /// Always `assistant`.
    pub role: String,
    /// The answer.
    pub content: String,
}

/// One choice of a response (there is only ever one).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Choice {
    /// Always 0.
    pub index: usize,
    /// The answer, for completions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The answer, for chat completions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<ChatMessageOut>,
    /// The new piece, for chat stream chunks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
    /// `stop` or `length` (null in stream chunks before the last).
    pub finish_reason: Option<String>,
}

/// A chat stream chunk's new piece.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Delta {
    /// `assistant`, in the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// New text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// A response, or a chunk of a stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompletionResponse {
    /// `cmpl-...` or `chatcmpl-...`.
    pub id: String,
    /// `text_completion`, `chat.completion` or `chat.completion.chunk`.
    pub object: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// The model's name.
    pub model: String,
    /// SHA3-512 of the weights file that produced the answer.
    pub model_sha3_512: String,
    /// The answer.
    pub choices: Vec<Choice>,
    /// Token counts (in the last chunk of a stream, if asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(json: &str) -> ChatRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_minimal_chat_request_parses() {
        let request = chat(r#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#);
        assert_eq!(request.params.model.as_deref(), Some("m"));
        let messages = request.messages().unwrap();
        assert_eq!(messages[0].role, Role::User);
        assert_eq!(messages[0].content, "Hi");
        let checked = request.params.check(request.max_completion_tokens).unwrap();
        assert_eq!(checked.max_tokens, None);
        assert!(!checked.stream);
    }

    #[test]
    fn content_parts_are_joined_and_other_parts_refused() {
        let request = chat(
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#,
        );
        assert_eq!(request.messages().unwrap()[0].content, "ab");
        let request = chat(r#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#);
        assert_eq!(
            request.messages(),
            Err(InvalidRequest::ContentPart("image_url".into()))
        );
    }

    #[test]
    fn bad_roles_and_empty_conversations_are_refused() {
        assert_eq!(
            chat(r#"{"messages":[{"role":"tool","content":"x"}]}"#).messages(),
            Err(InvalidRequest::Role("tool".into()))
        );
        assert_eq!(
            chat(r#"{"messages":[]}"#).messages(),
            Err(InvalidRequest::NoMessages)
        );
    }

    #[test]
    fn parameters_are_validated() {
        let request = chat(r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#);
        assert_eq!(
            request.params.check(None),
            Err(InvalidRequest::ZeroMaxTokens)
        );
        let request = chat(r#"{"messages":[],"n":2}"#);
        assert_eq!(request.params.check(None), Err(InvalidRequest::Choices));
        let request = chat(r#"{"messages":[],"temperature":3}"#);
        assert!(matches!(
            request.params.check(None),
            Err(InvalidRequest::Param(ParamError::Temperature(_)))
        ));
        let request = chat(r#"{"messages":[],"stop":["a","b","c","d","e"]}"#);
        assert!(matches!(
            request.params.check(None),
            Err(InvalidRequest::Param(ParamError::TooManyStops(5)))
        ));
    }

    #[test]
    fn max_completion_tokens_wins_and_stop_takes_a_string() {
        let request = chat(
            r#"{"messages":[],"max_tokens":5,"max_completion_tokens":7,"stop":"\n","temperature":0,"seed":3,"stream":true,"stream_options":{"include_usage":true}}"#,
        );
        let checked = request.params.check(request.max_completion_tokens).unwrap();
        assert_eq!(checked.max_tokens, Some(7));
        assert_eq!(checked.stop, StopSequences::new(vec!["\n".into()]).unwrap());
        assert!(checked.sampling.is_greedy());
        assert_eq!(checked.sampling.seed, 3);
        assert!(checked.stream && checked.include_usage);
    }

    #[test]
    fn a_prompt_is_one_string() {
        let one: CompletionRequest = serde_json::from_str(r#"{"prompt":"a"}"#).unwrap();
        assert_eq!(one.prompt_text().unwrap(), "a");
        let list: CompletionRequest = serde_json::from_str(r#"{"prompt":["b"]}"#).unwrap();
        assert_eq!(list.prompt_text().unwrap(), "b");
        let two: CompletionRequest = serde_json::from_str(r#"{"prompt":["a","b"]}"#).unwrap();
        assert_eq!(two.prompt_text(), Err(InvalidRequest::Prompt));
    }

    #[test]
    fn wrong_types_do_not_parse() {
        assert!(serde_json::from_str::<CompletionRequest>(r#"{"prompt":1}"#).is_err());
        assert!(
            serde_json::from_str::<CompletionRequest>(r#"{"prompt":"a","max_tokens":-1}"#).is_err()
        );
        assert!(serde_json::from_str::<ChatRequest>(r#"{"messages":"hi"}"#).is_err());
    }
}
