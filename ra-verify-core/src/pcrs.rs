//! The PCR values an image should measure to, and comparing a document's
//! PCRs with them.
//!
//! Two file formats are read, both JSON objects of `"PCRn": "<hex>"`
//! members:
//!
//! - the `<name>.eif.pcrs` file that `rbuilds.sh` writes:
//!   `{"HashAlgorithm":"SHA384","PCR0":"<96 hex>","PCR1":...,"PCR2":...}`;
//! - what `nitro-cli build-enclave` (and `eif_build`) print:
//!   `{"Measurements":{"HashAlgorithm":"Sha384 { ... }","PCR0":...}}`.
//!
//! `rbuilds.sh` also records the image's profile (`"Profile":"production"`
//! or `"debug"`): the profile is in the measured customer ramdisk, so when
//! the PCRs match, the image is of that profile. Other members are ignored;
//! a `HashAlgorithm` that is not SHA-384 is refused. Only the PCRs the file
//! names are compared: an image build knows PCR0, 1 and 2, not PCR3 (the
//! instance role) or PCR4 (the instance).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::check::{Check, Outcome};
use crate::defs::{MAX_PCR_INDEX, MAX_PCRS_FILE};
use crate::files::{ReadError, read_limited};

/// Bytes of a SHA-384 PCR.
pub const PCR_LEN: usize = 48;

/// What can go wrong reading expected PCRs.
#[derive(Debug, thiserror::Error)]
pub enum PcrsError {
    /// The file could not be read (or is larger than any PCR file).
    #[error("PCR file {path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: ReadError,
    },
    /// Not the JSON of a PCR file.
    #[error("PCR file: {0}")]
    Format(String),
}

/// Expected PCR values, by index, and the profile of the image they
/// measure when the file records it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExpectedPcrs {
    values: BTreeMap<usize, [u8; PCR_LEN]>,
    profile: Option<Profile>,
}

/// An image profile, as `rbuilds.sh --profile` builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// No remote exec, copies confined to the inbox and outbox roots, an
    /// attested and encrypted pipeline, read-only init control from the host.
    Production,
    /// The host runs commands as root in the enclave and reads every file:
    /// its attestations prove nothing against the host.
    Debug,
}

impl Profile {
    /// `"production"` or `"debug"`, as the PCR file writes it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Production => "production",
            Profile::Debug => "debug",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "production" => Some(Profile::Production),
            "debug" => Some(Profile::Debug),
            _ => None,
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text).ok_or_else(|| format!("{text:?} is neither production nor debug"))
    }
}

/// One PCR that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrMismatch {
    /// Its index.
    pub index: usize,
    /// What the file says, hexadecimal.
    pub expected: String,
    /// What the document says, hexadecimal (`None`: not in the document).
    pub actual: Option<String>,
}

impl std::fmt::Display for PcrMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.actual {
            Some(actual) => write!(
                f,
                "PCR{} is {actual}, expected {}",
                self.index, self.expected
            ),
            None => write!(f, "PCR{} is not in the document", self.index),
        }
    }
}

impl ExpectedPcrs {
    /// Expected values from `(index, value)` pairs.
    pub fn new(values: impl IntoIterator<Item = (usize, [u8; PCR_LEN])>) -> Self {
        Self {
            values: values.into_iter().collect(),
            profile: None,
        }
    }

    /// The same values, recorded as those of an image of `profile`.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// The profile the file records, if any.
    pub fn profile(&self) -> Option<Profile> {
        self.profile
    }

    /// Parses either file format (see the module documentation).
    pub fn from_json(text: &[u8]) -> Result<Self, PcrsError> {
        let format = |why: String| PcrsError::Format(why);
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|error| format(error.to_string()))?;
        let object = value
            .get("Measurements")
            .unwrap_or(&value)
            .as_object()
            .ok_or_else(|| format("not a JSON object".into()))?;
        let mut values = BTreeMap::new();
        let mut profile = None;
        for (name, value) in object {
            if name == "Profile" {
                let text = value.as_str().unwrap_or_default();
                profile = Some(Profile::parse(text).ok_or_else(|| {
                    format(format!(
                        "Profile {value} is neither \"production\" nor \"debug\""
                    ))
                })?);
                continue;
            }
            if name == "HashAlgorithm" {
                let algorithm = value.as_str().unwrap_or_default().to_ascii_uppercase();
                if !algorithm.replace('-', "").starts_with("SHA384") {
                    return Err(format(format!(
                        "HashAlgorithm {value} is not SHA384, the NSM's"
                    )));
                }
                continue;
            }
            let Some(index) = name.strip_prefix("PCR") else {
                continue;
            };
            let index: usize = index
                .parse()
                .ok()
                .filter(|index| *index <= MAX_PCR_INDEX)
                .ok_or_else(|| format(format!("{name} is not a PCR (PCR0 to PCR31)")))?;
            let mut bytes = [0u8; PCR_LEN];
            value
                .as_str()
                .and_then(|text| hex::decode_to_slice(text.trim(), &mut bytes).ok())
                .ok_or_else(|| {
                    format(format!(
                        "{name} is not {} hexadecimal digits (SHA-384)",
                        PCR_LEN * 2
                    ))
                })?;
            values.insert(index, bytes);
        }
        if values.is_empty() {
            return Err(format("no PCRn member".into()));
        }
        Ok(Self { values, profile })
    }

    /// Reads a PCR file.
    pub fn load(path: &Path) -> Result<Self, PcrsError> {
        let bytes = read_limited(path, MAX_PCRS_FILE).map_err(|source| PcrsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&bytes)
    }

    /// The expected values.
    pub fn values(&self) -> &BTreeMap<usize, [u8; PCR_LEN]> {
        &self.values
    }

    /// Compares with a document's PCRs; every PCR named here must be there
    /// with the same value.
    pub fn compare(&self, actual: &BTreeMap<usize, &[u8]>) -> Result<(), Vec<PcrMismatch>> {
        let mismatches: Vec<PcrMismatch> = self
            .values
            .iter()
            .filter(|(index, expected)| actual.get(index) != Some(&&expected[..]))
            .map(|(index, expected)| PcrMismatch {
                index: *index,
                expected: hex::encode(expected),
                actual: actual.get(index).map(hex::encode),
            })
            .collect();
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(mismatches)
        }
    }

    /// The indexes, as `PCR0, PCR1, PCR2`.
    pub fn names(&self) -> String {
        self.values
            .keys()
            .map(|index| format!("PCR{index}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The `profile` check: which profile the image has, given the `pcrs`
/// check's result, and whether it is the `required` one. `None` when there
/// is nothing to say (no profile recorded, none required).
pub fn profile_check(
    expected: &ExpectedPcrs,
    pcrs: Option<&Check>,
    required: Option<Profile>,
) -> Option<Check> {
    const NAME: &str = "profile";
    let matched = pcrs.is_some_and(|check| check.outcome == Outcome::Pass);
    let describe = |profile: Profile| match profile {
        Profile::Production => {
            "production image (no remote exec; attested, encrypted pipeline)".to_string()
        }
        Profile::Debug => "DEBUG image: the host can run commands as root in it and read its \
                           keys, so its attestations prove nothing against the host"
            .to_string(),
    };
    match (expected.profile, required) {
        (None, None) => None,
        (None, Some(required)) => Some(Check::fail(
            NAME,
            format!(
                "the PCR file records no profile; {} required",
                required.name()
            ),
        )),
        (Some(_), Some(required)) if !matched => Some(Check::fail(
            NAME,
            format!(
                "the PCRs were not matched, so the image's profile is unknown; {} required",
                required.name()
            ),
        )),
        (Some(_), None) if !matched => None,
        (Some(profile), Some(required)) if profile != required => Some(Check::fail(
            NAME,
            format!("{}; {} required", describe(profile), required.name()),
        )),
        (Some(profile), _) => Some(Check::pass(NAME, describe(profile))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex48(byte: u8) -> String {
        hex::encode([byte; PCR_LEN])
    }

    #[test]
    fn both_file_formats_parse_to_the_same_values() {
        let rbuilds = format!(
            r#"{{"HashAlgorithm":"SHA384","PCR0":"{}","PCR1":"{}","PCR2":"{}"}}"#,
            hex48(0),
            hex48(1),
            hex48(2)
        );
        let nitro_cli = format!(
            r#"{{"Measurements":{{"HashAlgorithm":"Sha384 {{ ... }}","PCR0":"{}","PCR1":"{}","PCR2":"{}"}}}}"#,
            hex48(0),
            hex48(1),
            hex48(2)
        );
        let one = ExpectedPcrs::from_json(rbuilds.as_bytes()).unwrap();
        let two = ExpectedPcrs::from_json(nitro_cli.as_bytes()).unwrap();
        assert_eq!(one, two);
        assert_eq!(one.names(), "PCR0, PCR1, PCR2");
        assert_eq!(one.values()[&1], [1; PCR_LEN]);
    }

    #[test]
    fn comparison_names_each_differing_pcr() {
        let expected = ExpectedPcrs::new([(0, [0; PCR_LEN]), (2, [2; PCR_LEN])]);
        let zero = [0u8; PCR_LEN];
        let two = [2u8; PCR_LEN];
        let other = [9u8; PCR_LEN];
        let mut actual: BTreeMap<usize, &[u8]> = BTreeMap::new();
        actual.insert(0, &zero);
        actual.insert(1, &other);
        actual.insert(2, &two);
        expected.compare(&actual).unwrap();
        actual.insert(2, &other);
        actual.remove(&0);
        let mismatches = expected.compare(&actual).unwrap_err();
        assert_eq!(mismatches.len(), 2);
        assert_eq!(mismatches[0].to_string(), "PCR0 is not in the document");
        assert!(mismatches[1].to_string().starts_with("PCR2 is 0909"));
    }

    #[test]
    fn bad_pcr_files_are_refused() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"HashAlgorithm":"SHA384"}"#,
            r#"{"PCR0":"00"}"#,
            r#"{"PCR0":42}"#,
            r#"{"PCR99":"00"}"#,
            r#"{"PCRx":"00"}"#,
        ] {
            assert!(ExpectedPcrs::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
        let sha256 = format!(r#"{{"HashAlgorithm":"SHA256","PCR0":"{}"}}"#, hex48(0));
        assert!(ExpectedPcrs::from_json(sha256.as_bytes()).is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            ExpectedPcrs::load(&dir.path().join("missing.pcrs")),
            Err(PcrsError::Io { .. })
        ));
    }

    fn rbuilds_file(profile: &str) -> String {
        format!(
            r#"{{"HashAlgorithm":"SHA384","Profile":"{profile}","PCR0":"{}"}}"#,
            hex48(0)
        )
    }

    #[test]
    fn the_profile_is_read_and_a_bad_one_refused() {
        let production = ExpectedPcrs::from_json(rbuilds_file("production").as_bytes()).unwrap();
        assert_eq!(production.profile(), Some(Profile::Production));
        let debug = ExpectedPcrs::from_json(rbuilds_file("debug").as_bytes()).unwrap();
        assert_eq!(debug.profile(), Some(Profile::Debug));
        let error = ExpectedPcrs::from_json(rbuilds_file("prod").as_bytes()).unwrap_err();
        assert!(error.to_string().contains("neither"), "{error}");
        assert_eq!("debug".parse::<Profile>(), Ok(Profile::Debug));
        assert!("root".parse::<Profile>().is_err());
    }

    #[test]
    fn the_profile_check_needs_matched_pcrs_and_the_required_profile() {
        let pass = Check::pass("pcrs", "");
        let fail = Check::fail("pcrs", "");
        let production = ExpectedPcrs::new([(0, [0; PCR_LEN])]).with_profile(Profile::Production);
        let debug = ExpectedPcrs::new([(0, [0; PCR_LEN])]).with_profile(Profile::Debug);
        let unknown = ExpectedPcrs::new([(0, [0; PCR_LEN])]);
        let outcome = |expected: &ExpectedPcrs, pcrs: &Check, required| {
            profile_check(expected, Some(pcrs), required).map(|check| check.outcome)
        };
        let required = Some(Profile::Production);
        assert_eq!(outcome(&production, &pass, required), Some(Outcome::Pass));
        assert_eq!(outcome(&production, &fail, required), Some(Outcome::Fail));
        assert_eq!(outcome(&debug, &pass, required), Some(Outcome::Fail));
        assert_eq!(outcome(&unknown, &pass, required), Some(Outcome::Fail));
        assert_eq!(outcome(&debug, &pass, None), Some(Outcome::Pass));
        assert_eq!(outcome(&debug, &fail, None), None);
        assert_eq!(outcome(&unknown, &pass, None), None);
        let loud = profile_check(&debug, Some(&pass), None).unwrap();
        assert!(loud.detail.starts_with("DEBUG image"), "{}", loud.detail);
        assert_eq!(
            profile_check(&production, None, required).unwrap().outcome,
            Outcome::Fail
        );
    }
}
