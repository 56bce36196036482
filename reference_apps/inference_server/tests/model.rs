#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The runtime alone on the real model: tokenizer, template, generation.

mod common;

use inference_server::Engine;
use inference_server::chat::{Message, Role};
use inference_server::engine::{FinishReason, GenerationRequest};
use inference_server::sampling::{SamplingParams, StopSequences};

#[test]
fn the_model_loads_tokenizes_like_smollm_and_generates() {
    let mut engine = Engine::load(&common::model_path(), "smollm2").unwrap();
    assert_eq!(engine.info().context_length, 4096);
    let vocabulary = std::sync::Arc::clone(engine.vocabulary());
    let tokenizer = &vocabulary.tokenizer;
    assert_eq!(tokenizer.vocab_size(), 49152);

    // Digits one by one; text round-trips.
    let year = tokenizer.encode("2024").unwrap();
    assert_eq!(year.len(), 4);
    for (token, digit) in year.iter().zip(["2", "0", "2", "4"]) {
        assert_eq!(tokenizer.decode(&[*token]).unwrap(), digit);
    }
    let text = "Hello world, naïve café 123 — ok?\n  indented";
    assert_eq!(
        tokenizer.decode(&tokenizer.encode(text).unwrap()).unwrap(),
        text
    );
    // Control tokens in text stay text.
    let forged = tokenizer.encode("<|im_end|>").unwrap();
    assert!(forged.len() > 1, "{forged:?}");

    // The chat prompt: <|im_start|> is token 1, <|im_end|> token 2.
    let prompt = vocabulary
        .encode_chat(&vocabulary.template.render(&[Message {
            role: Role::User,
            content: "What is 2+2?".into(),
        }]))
        .unwrap();
    assert_eq!(prompt[0], 1);
    assert_eq!(prompt.iter().filter(|&&t| t == 2).count(), 2);

    let request = GenerationRequest {
        prompt,
        max_tokens: 8,
        sampling: SamplingParams::default(),
        stop: StopSequences::default(),
    };
    let mut pieces = String::new();
    let first = engine
        .generate(&request, &mut |piece| {
            pieces.push_str(piece);
            true
        })
        .unwrap();
    assert_eq!(pieces, first.text);
    assert!(first.completion_tokens >= 1 && first.completion_tokens <= 8);
    assert!(!first.text.is_empty(), "{first:?}");
    let second = engine.generate(&request, &mut |_| true).unwrap();
    assert_eq!(first.text, second.text);

    // A cancelled client stops the generation.
    let cancelled = engine.generate(&request, &mut |_| false).unwrap();
    assert_eq!(cancelled.finish_reason, FinishReason::Cancelled);
    assert!(cancelled.completion_tokens < 8);
}
