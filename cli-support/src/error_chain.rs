//! [`ErrorChain`]: an error and its causes on one line, each said once.

use std::error::Error;
use std::fmt;

/// Displays an error and its causes joined by ": ", as `anyhow`'s `{:#}`
/// does, except that a cause whose text ends its parent's message (after a
/// space or punctuation) is not repeated. Many errors of this workspace put their source in their
/// own message (`cannot listen on unix:/x: Permission denied (os error 13)`)
/// and also return it as `source()`, so `{:#}` would print the OS error
/// twice.
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parent = self.0.to_string();
        f.write_str(&parent)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            if !text.is_empty() && !ends_with_words(&parent, &text) {
                write!(f, ": {text}")?;
            }
            parent = text;
            cause = error.source();
        }
        Ok(())
    }
}

/// Whether `message` ends with `tail` as whole words: `tail` is all of it,
/// or follows a space or punctuation (`cannot listen on x: {tail}`, `enabled,
/// but {tail}`), not the end of a longer word (`cannot` does not end with
/// `no`).
fn ends_with_words(message: &str, tail: &str) -> bool {
    match message.strip_suffix(tail) {
        Some(head) => head
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c.is_ascii_punctuation()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on unix:/x: {source}")]
    struct Bind {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("starting the server")]
    struct Start {
        #[source]
        source: Bind,
    }

    fn denied() -> std::io::Error {
        std::io::Error::from_raw_os_error(13)
    }

    #[test]
    fn a_cause_the_message_already_holds_is_said_once() {
        let error = Bind { source: denied() };
        assert_eq!(
            ErrorChain(&error).to_string(),
            format!("cannot listen on unix:/x: {}", denied())
        );
    }

    #[test]
    fn causes_the_message_lacks_are_joined_as_anyhow_does() {
        let error = Start {
            source: Bind { source: denied() },
        };
        assert_eq!(
            ErrorChain(&error).to_string(),
            format!(
                "starting the server: cannot listen on unix:/x: {}",
                denied()
            )
        );
        let error = anyhow::Error::new(Bind { source: denied() }).context("starting pf-proxy");
        assert_eq!(
            ErrorChain(error.as_ref()).to_string(),
            format!("starting pf-proxy: cannot listen on unix:/x: {}", denied())
        );
        assert!(
            format!("{error:#}").matches("os error 13").count() == 2,
            "anyhow repeats it"
        );
    }

    #[test]
    fn a_cause_that_is_only_part_of_a_word_or_the_middle_is_still_said() {
        let error = anyhow::Error::msg("no").context("cannot watch signals");
        assert_eq!(
            ErrorChain(error.as_ref()).to_string(),
            "cannot watch signals: no"
        );
        let error = anyhow::Error::msg("disk full").context("disk full while copying x");
        assert_eq!(
            ErrorChain(error.as_ref()).to_string(),
            "disk full while copying x: disk full"
        );
        let error = anyhow::Error::msg("gone").context("enabled, but gone");
        assert_eq!(ErrorChain(error.as_ref()).to_string(), "enabled, but gone");
    }
}
