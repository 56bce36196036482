//! The tokenizer, built from the vocabulary and merges stored in the GGUF.
//!
//! candle builds a byte-level BPE tokenizer from the GGUF's metadata, but it
//! does not know SmolLM's pre-tokenizer (`tokenizer.ggml.pre = "smollm"`):
//! SmolLM splits every digit into its own piece first, then applies GPT-2's
//! byte-level split, without a prefix space, as llama.cpp and SmolLM's own
//! `tokenizer.json` do. Without it, "2024" would become one or two tokens
//! the model never saw in training.
//!
//! Text from requests is always encoded as plain text: a user who types
//! `<|im_start|>` gets the characters, not the control token. Control tokens
//! are placed only by the chat template, by id.

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::Tokenizer;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

/// What can go wrong building or using the tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The GGUF's tokenizer metadata could not be turned into a tokenizer.
    #[error("building the tokenizer from the GGUF metadata: {0}")]
    Build(#[source] candle_core::Error),
    /// Encoding text failed.
    #[error("encoding text: {0}")]
    Encode(String),
    /// Decoding tokens failed.
    #[error("decoding tokens: {0}")]
    Decode(String),
}

/// The pre-tokenizer of SmolLM models: each digit alone, then GPT-2's
/// byte-level split (no prefix space).
pub fn smollm_pre_tokenizer() -> PreTokenizerWrapper {
    Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])
    .into()
}

/// A model's tokenizer: plain-text encoding, decoding without control tokens.
pub struct TextTokenizer {
    inner: Tokenizer,
}

impl TextTokenizer {
    /// Builds the tokenizer from a GGUF's metadata, with SmolLM's
    /// pre-tokenizer when the GGUF names it.
    pub fn from_gguf(content: &Content) -> Result<Self, TokenizerError> {
        let mut inner = Tokenizer::from_gguf(content).map_err(TokenizerError::Build)?;
        let pre = content
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|value| value.to_string().ok())
            .map(String::as_str);
        if pre == Some("smollm") {
            inner.with_pre_tokenizer(Some(smollm_pre_tokenizer()));
        }
        // Text never turns into control tokens.
        inner.set_encode_special_tokens(true);
        Ok(Self { inner })
    }

    /// The tokens of `text`, read as plain text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|error| TokenizerError::Encode(error.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `tokens`, without control tokens.
    pub fn decode(&self, tokens: &[u32]) -> Result<String, TokenizerError> {
        self.inner
            .decode(tokens, true)
            .map_err(|error| TokenizerError::Decode(error.to_string()))
    }

    /// The id of a token given by its text (e.g. `<|im_end|>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The number of tokens, control tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Turns a stream of tokens into text pieces, holding a piece back while it
/// ends inside a UTF-8 character (byte-level tokens can split one).
pub struct Detokenizer {
    tokens: Vec<u32>,
    flushed: usize,
}

impl Detokenizer {
    /// An empty stream.
    pub fn new() -> Self {
        Self {
            tokens: Vec::new(),
            flushed: 0,
        }
    }

    /// Adds a token; returns the text that is now complete, if any.
    pub fn push(
        &mut self,
        tokenizer: &TextTokenizer,
        token: u32,
    ) -> Result<Option<String>, TokenizerError> {
        self.tokens.push(token);
        let text = tokenizer.decode(&self.tokens[self.flushed..])?;
        if text.ends_with(char::REPLACEMENT_CHARACTER) {
            return Ok(None);
        }
        self.flushed = self.tokens.len();
        Ok(Some(text))
    }

    /// Whatever is still held back (an incomplete character at the end).
    pub fn finish(&mut self, tokenizer: &TextTokenizer) -> Result<String, TokenizerError> {
        let text = tokenizer.decode(&self.tokens[self.flushed..])?;
        self.flushed = self.tokens.len();
        Ok(text)
    }
}

impl Default for Detokenizer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::tokenizer::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    fn pieces(input: &str) -> Vec<String> {
        let mut text = PreTokenizedString::from(input);
        smollm_pre_tokenizer().pre_tokenize(&mut text).unwrap();
        text.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(piece, _, _)| piece.to_string())
            .collect()
    }

    #[test]
    fn digits_are_split_one_by_one() {
        assert_eq!(pieces("2024"), ["2", "0", "2", "4"]);
        assert_eq!(pieces("abc 123"), ["abc", "\u{120}", "1", "2", "3"]);
        assert_eq!(pieces("x=3.14"), ["x", "=", "3", ".", "1", "4"]);
    }

    #[test]
    fn words_get_gpt2_byte_level_pieces_without_a_prefix_space() {
        assert_eq!(pieces("Hello world"), ["Hello", "\u{120}world"]);
        assert_eq!(pieces("it's"), ["it", "'s"]);
        // A newline is byte 0x0A, shown as U+010A by the byte-level alphabet.
        assert_eq!(pieces("a\nb"), ["a", "\u{10a}", "b"]);
    }
}
