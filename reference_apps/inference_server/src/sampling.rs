//! Sampling parameters, checked once, and stop sequences.
//!
//! A request's `temperature`, `top_p`, `seed` and `repeat_penalty` become a
//! [`SamplingParams`] before it is queued, so the generation thread never
//! sees a value it cannot use. Temperature 0 means greedy decoding (argmax),
//! which is deterministic: the same prompt gives the same text every time.

use candle_transformers::generation::{LogitsProcessor, Sampling};

use crate::defs::{MAX_REPEAT_PENALTY, MAX_STOP_LEN, MAX_STOP_SEQUENCES, MAX_TEMPERATURE};

/// A sampling parameter outside its range.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamError {
    /// `temperature` not in 0..=2.
    #[error("temperature must be between 0 and {MAX_TEMPERATURE}, not {0}")]
    Temperature(f64),
    /// `top_p` not in (0, 1].
    #[error("top_p must be above 0 and at most 1, not {0}")]
    TopP(f64),
    /// `repeat_penalty` not in (0, 10].
    #[error("repeat_penalty must be above 0 and at most {MAX_REPEAT_PENALTY}, not {0}")]
    RepeatPenalty(f32),
    /// Too many stop sequences.
    #[error("at most {MAX_STOP_SEQUENCES} stop sequences, not {0}")]
    TooManyStops(usize),
    /// An empty or too long stop sequence.
    #[error("a stop sequence must be 1 to {MAX_STOP_LEN} bytes long")]
    StopLength,
}

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 is greedy (argmax); higher values flatten the distribution.
    pub temperature: f64,
    /// Nucleus sampling: only the most likely tokens whose probabilities add
    /// up to `top_p` are candidates (1 means all).
    pub top_p: f64,
    /// Seed of the random choice (unused when greedy).
    pub seed: u64,
    /// Divides the logits of tokens seen in the last
    /// [`REPEAT_LAST_N`](crate::defs::REPEAT_LAST_N) tokens (1 is off).
    pub repeat_penalty: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            repeat_penalty: 1.0,
        }
    }
}

impl SamplingParams {
    /// Checks a request's values; absent ones take OpenAI's defaults
    /// (temperature 1, top_p 1), no repeat penalty, and a random seed.
    pub fn new(
        temperature: Option<f64>,
        top_p: Option<f64>,
        seed: Option<u64>,
        repeat_penalty: Option<f32>,
    ) -> Result<Self, ParamError> {
        let temperature = temperature.unwrap_or(1.0);
        if !(0.0..=MAX_TEMPERATURE).contains(&temperature) {
            return Err(ParamError::Temperature(temperature));
        }
        let top_p = top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ParamError::TopP(top_p));
        }
        let repeat_penalty = repeat_penalty.unwrap_or(1.0);
        if !(repeat_penalty > 0.0 && repeat_penalty <= MAX_REPEAT_PENALTY) {
            return Err(ParamError::RepeatPenalty(repeat_penalty));
        }
        Ok(Self {
            temperature,
            top_p,
            seed: seed.unwrap_or_else(random_seed),
            repeat_penalty,
        })
    }

    /// Whether the choice is greedy (and so deterministic).
    pub fn is_greedy(&self) -> bool {
        self.temperature < 1e-7
    }

    /// candle's sampler for these parameters.
    pub fn sampling(&self) -> Sampling {
        if self.is_greedy() {
            Sampling::ArgMax
        } else if self.top_p < 1.0 {
            Sampling::TopP {
                p: self.top_p,
                temperature: self.temperature,
            }
        } else {
            Sampling::All {
                temperature: self.temperature,
            }
        }
    }

    /// A fresh logits processor seeded with [`Self::seed`].
    pub fn logits_processor(&self) -> LogitsProcessor {
        LogitsProcessor::from_sampling(self.seed, self.sampling())
    }
}

/// A seed from the standard library's per-process random keys.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Stop sequences: generation ends before the first of them, which is not
/// part of the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopSequences(Vec<String>);

impl StopSequences {
    /// Checks the request's stop sequences.
    pub fn new(stops: Vec<String>) -> Result<Self, ParamError> {
        if stops.len() > MAX_STOP_SEQUENCES {
            return Err(ParamError::TooManyStops(stops.len()));
        }
        if stops.iter().any(|s| s.is_empty() || s.len() > MAX_STOP_LEN) {
            return Err(ParamError::StopLength);
        }
        Ok(Self(stops))
    }

    /// Where the earliest stop sequence starts in `text`, if one does.
    pub fn find(&self, text: &str) -> Option<usize> {
        self.0
            .iter()
            .filter_map(|stop| text.find(stop.as_str()))
            .min()
    }

    /// How much of `text` can be shown without showing the start of a stop
    /// sequence that the next tokens may complete: `text` minus its longest
    /// suffix that is a proper prefix of a stop sequence.
    pub fn safe_len(&self, text: &str) -> usize {
        let mut keep = text.len();
        for stop in &self.0 {
            for (end, _) in stop.char_indices().skip(1) {
                if text.ends_with(&stop[..end]) {
                    keep = keep.min(text.len() - end);
                }
            }
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_openai() {
        let params = SamplingParams::new(None, None, Some(7), None).unwrap();
        assert_eq!(params.temperature, 1.0);
        assert_eq!(params.top_p, 1.0);
        assert_eq!(params.repeat_penalty, 1.0);
        assert_eq!(params.seed, 7);
        assert_eq!(params.sampling(), Sampling::All { temperature: 1.0 });
    }

    #[test]
    fn temperature_zero_is_greedy() {
        let params = SamplingParams::new(Some(0.0), Some(0.5), None, None).unwrap();
        assert!(params.is_greedy());
        assert_eq!(params.sampling(), Sampling::ArgMax);
    }

    #[test]
    fn top_p_below_one_is_nucleus_sampling() {
        let params = SamplingParams::new(Some(0.7), Some(0.9), Some(1), None).unwrap();
        assert_eq!(
            params.sampling(),
            Sampling::TopP {
                p: 0.9,
                temperature: 0.7
            }
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert_eq!(
            SamplingParams::new(Some(-0.1), None, None, None),
            Err(ParamError::Temperature(-0.1))
        );
        assert_eq!(
            SamplingParams::new(Some(2.5), None, None, None),
            Err(ParamError::Temperature(2.5))
        );
        assert!(SamplingParams::new(Some(f64::NAN), None, None, None).is_err());
        assert_eq!(
            SamplingParams::new(None, Some(0.0), None, None),
            Err(ParamError::TopP(0.0))
        );
        assert!(SamplingParams::new(None, Some(1.5), None, None).is_err());
        assert!(SamplingParams::new(None, Some(f64::NAN), None, None).is_err());
        assert_eq!(
            SamplingParams::new(None, None, None, Some(0.0)),
            Err(ParamError::RepeatPenalty(0.0))
        );
        assert!(SamplingParams::new(None, None, None, Some(f32::INFINITY)).is_err());
    }

    #[test]
    fn the_same_seed_samples_the_same_tokens() {
        let params = SamplingParams::new(Some(1.0), None, Some(42), None).unwrap();
        let logits = candle_core::Tensor::new(
            &[0.1f32, 0.5, 0.2, 0.9, 0.3, 0.4, 0.0, 0.8],
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let draw = |params: &SamplingParams| {
            let mut processor = params.logits_processor();
            (0..16)
                .map(|_| processor.sample(&logits).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&params), draw(&params));
        let greedy = SamplingParams::new(Some(0.0), None, None, None).unwrap();
        assert!(draw(&greedy).iter().all(|&token| token == 3));
    }

    #[test]
    fn stop_sequences_are_checked() {
        assert!(StopSequences::new(vec!["a".into(); 4]).is_ok());
        assert_eq!(
            StopSequences::new(vec!["a".into(); 5]),
            Err(ParamError::TooManyStops(5))
        );
        assert_eq!(
            StopSequences::new(vec![String::new()]),
            Err(ParamError::StopLength)
        );
        assert_eq!(
            StopSequences::new(vec!["x".repeat(MAX_STOP_LEN + 1)]),
            Err(ParamError::StopLength)
        );
    }

    #[test]
    fn the_earliest_stop_wins() {
        let stops = StopSequences::new(vec!["END".into(), "\n\n".into()]).unwrap();
        assert_eq!(stops.find("one\n\ntwo END"), Some(3));
        assert_eq!(stops.find("one END\n\n"), Some(4));
        assert_eq!(stops.find("nothing"), None);
    }

    #[test]
    fn a_possible_stop_start_is_held_back() {
        let stops = StopSequences::new(vec!["END".into(), "é!".into()]).unwrap();
        assert_eq!(stops.safe_len("the E"), 4);
        assert_eq!(stops.safe_len("the EN"), 4);
        assert_eq!(stops.safe_len("the ENX"), 7);
        assert_eq!(stops.safe_len("café"), "caf".len());
        assert_eq!(StopSequences::default().safe_len("abc"), 3);
    }
}
