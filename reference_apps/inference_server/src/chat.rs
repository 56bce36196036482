//! The chat template: ChatML, as SmolLM2's GGUF states it.
//!
//! SmolLM2's `tokenizer.chat_template` (Jinja) renders each message as
//! `<|im_start|>ROLE\nCONTENT<|im_end|>\n`, puts a default system message
//! first when the conversation does not start with one, and ends with
//! `<|im_start|>assistant\n` for the answer. This module renders exactly
//! that, with the default system message read from the GGUF's template; a
//! template that is not ChatML is refused at load time rather than
//! rendered wrongly.
//!
//! The output is a list of [`Segment`]s: control tokens stay apart from the
//! text, so message content can never forge a turn boundary.

use crate::defs::{IM_END, IM_START, SMOLLM2_DEFAULT_SYSTEM};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions for the assistant.
    System,
    /// The person asking.
    User,
    /// The model's earlier answers.
    Assistant,
}

impl Role {
    /// The role's name in the template and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// Parses an API role name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "system" | "developer" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its author.
    pub role: Role,
    /// Its text.
    pub content: String,
}

/// A piece of a rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A control token, by its text (e.g. `<|im_start|>`).
    Control(&'static str),
    /// Text, tokenized as plain text.
    Text(String),
}

/// A chat template the server knows how to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    /// The system message put first when a conversation has none.
    pub default_system: Option<String>,
}

/// The GGUF's chat template is not one this server renders.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the model's chat template is not ChatML (<|im_start|>role ... <|im_end|>)")]
pub struct UnsupportedTemplate;

impl ChatTemplate {
    /// SmolLM2's template, with its default system message.
    pub fn smollm2() -> Self {
        Self {
            default_system: Some(SMOLLM2_DEFAULT_SYSTEM.to_owned()),
        }
    }

    /// The template of a GGUF's `tokenizer.chat_template` (SmolLM2's when
    /// the GGUF has none).
    pub fn from_gguf_template(template: Option<&str>) -> Result<Self, UnsupportedTemplate> {
        let Some(template) = template else {
            return Ok(Self::smollm2());
        };
        if !template.contains(IM_START) || !template.contains(IM_END) {
            return Err(UnsupportedTemplate);
        }
        let marker = format!("{IM_START}system\n");
        let default_system = template.find(&marker).and_then(|start| {
            let rest = &template[start + marker.len()..];
            let text = &rest[..rest.find(IM_END)?];
            // A literal message, not a Jinja expression.
            (!text.contains(['{', '}', '\''])).then(|| text.to_owned())
        });
        Ok(Self { default_system })
    }

    /// The prompt for `messages`, ending with the assistant's turn opened.
    pub fn render(&self, messages: &[Message]) -> Vec<Segment> {
        let mut segments = Vec::with_capacity(messages.len() * 4 + 6);
        let mut turn = |role: Role, content: &str| {
            segments.push(Segment::Control(IM_START));
            segments.push(Segment::Text(format!("{}\n{content}", role.as_str())));
            segments.push(Segment::Control(IM_END));
            segments.push(Segment::Text("\n".to_owned()));
        };
        if let Some(system) = &self.default_system
            && messages.first().map(|m| m.role) != Some(Role::System)
        {
            turn(Role::System, system);
        }
        for message in messages {
            turn(message.role, &message.content);
        }
        segments.push(Segment::Control(IM_START));
        segments.push(Segment::Text("assistant\n".to_owned()));
        segments
    }
}

/// The prompt as one string (for logs and tests).
pub fn to_text(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|segment| match segment {
            Segment::Control(token) => *token,
            Segment::Text(text) => text.as_str(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tokenizer.chat_template` of SmolLM2-135M-Instruct.Q4_1.gguf.
    const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn user(text: &str) -> Message {
        Message {
            role: Role::User,
            content: text.to_owned(),
        }
    }

    #[test]
    fn smollm2_template_is_read_from_the_gguf() {
        let template = ChatTemplate::from_gguf_template(Some(SMOLLM2_TEMPLATE)).unwrap();
        assert_eq!(template, ChatTemplate::smollm2());
        assert_eq!(ChatTemplate::from_gguf_template(None).unwrap(), template);
    }

    #[test]
    fn a_template_that_is_not_chatml_is_refused() {
        let llama2 = "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}";
        assert_eq!(
            ChatTemplate::from_gguf_template(Some(llama2)),
            Err(UnsupportedTemplate)
        );
    }

    #[test]
    fn default_system_message_comes_first() {
        let text = to_text(&ChatTemplate::smollm2().render(&[user("Hi")]));
        assert_eq!(
            text,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn a_given_system_message_replaces_the_default() {
        let messages = [
            Message {
                role: Role::System,
                content: "Be brief.".to_owned(),
            },
            user("Hi"),
            Message {
                role: Role::Assistant,
                content: "Hello!".to_owned(),
            },
            user("Bye"),
        ];
        let text = to_text(&ChatTemplate::smollm2().render(&messages));
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n\
             <|im_start|>assistant\n"
        );
    }

    #[test]
    fn control_tokens_in_content_stay_text() {
        let segments = ChatTemplate {
            default_system: None,
        }
        .render(&[user("<|im_end|>")]);
        let controls = segments
            .iter()
            .filter(|s| matches!(s, Segment::Control(_)))
            .count();
        assert_eq!(controls, 3, "{segments:?}");
        assert!(segments.contains(&Segment::Text("user\n<|im_end|>".to_owned())));
    }

    #[test]
    fn roles_parse() {
        assert_eq!(Role::parse("user"), Some(Role::User));
        assert_eq!(Role::parse("developer"), Some(Role::System));
        assert_eq!(Role::parse("tool"), None);
    }
}
