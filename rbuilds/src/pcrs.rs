//! The PCRs eif_build prints (PCR0: kernel, command line and every ramdisk;
//! PCR1: kernel, command line and the bootstrap ramdisk; PCR2: the other
//! ramdisks), turned into the `<name>.eif.pcrs` JSON file, with the image's
//! profile (`production` or `debug`: `ra-verify --require-profile` reads it).

use serde::Serialize;

/// Length of a SHA-384 digest in hexadecimal.
const SHA384_HEX_LEN: usize = 96;

/// What can go wrong reading eif_build's output.
#[derive(Debug, thiserror::Error)]
pub enum PcrsError {
    /// No JSON object in the output.
    #[error("no JSON object in eif_build's output")]
    NoJson,
    /// The JSON could not be parsed.
    #[error("eif_build's JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The profile is not one `ra-verify` knows.
    #[error("profile {0:?} is neither production nor debug")]
    BadProfile(String),
    /// A PCR is missing or not a SHA-384 digest in hexadecimal.
    #[error("{0} is missing or not {SHA384_HEX_LEN} hexadecimal digits")]
    BadPcr(&'static str),
}

/// The three measurements of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pcrs {
    /// Hash algorithm.
    #[serde(rename = "HashAlgorithm")]
    pub hash_algorithm: &'static str,
    /// The image profile, `production` or `debug` (measured in PCR2, since
    /// it is in the customer ramdisk).
    #[serde(rename = "Profile")]
    pub profile: String,
    /// Kernel, command line and every ramdisk.
    #[serde(rename = "PCR0")]
    pub pcr0: String,
    /// Kernel, command line and the bootstrap ramdisk.
    #[serde(rename = "PCR1")]
    pub pcr1: String,
    /// The customer ramdisks.
    #[serde(rename = "PCR2")]
    pub pcr2: String,
}

/// The profiles an image can be built with.
pub const PROFILES: [&str; 2] = ["production", "debug"];

/// Reads PCR0/1/2 from eif_build's standard output (a JSON object with a
/// `Measurements` member, possibly after other lines), for an image of
/// `profile`.
pub fn from_eif_build_output(text: &str, profile: &str) -> Result<Pcrs, PcrsError> {
    if !PROFILES.contains(&profile) {
        return Err(PcrsError::BadProfile(profile.to_string()));
    }
    let start = text.find('{').ok_or(PcrsError::NoJson)?;
    let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter();
    let value: serde_json::Value = stream.next().ok_or(PcrsError::NoJson)??;
    let measurements = value.get("Measurements").unwrap_or(&value);
    let pcr = |name: &'static str| -> Result<String, PcrsError> {
        measurements
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| s.len() == SHA384_HEX_LEN && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
            .ok_or(PcrsError::BadPcr(name))
    };
    Ok(Pcrs {
        hash_algorithm: "SHA384",
        profile: profile.to_string(),
        pcr0: pcr("PCR0")?,
        pcr1: pcr("PCR1")?,
        pcr2: pcr("PCR2")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        std::iter::repeat_n(c, SHA384_HEX_LEN).collect()
    }

    #[test]
    fn reads_measurements_after_other_output() {
        let text = format!(
            "some progress line\n{{\n  \"Measurements\": {{\n    \"HashAlgorithm\": \"Sha384 {{ ... }}\",\n    \"PCR0\": \"{}\",\n    \"PCR1\": \"{}\",\n    \"PCR2\": \"{}\"\n  }}\n}}\n",
            digest('a'),
            digest('B'),
            digest('c')
        );
        let pcrs = from_eif_build_output(&text, "production").unwrap();
        assert_eq!(pcrs.profile, "production");
        assert_eq!(pcrs.pcr0, digest('a'));
        assert_eq!(pcrs.pcr1, digest('b'));
        assert_eq!(pcrs.pcr2, digest('c'));
    }

    #[test]
    fn rejects_missing_or_short_pcrs() {
        assert!(matches!(
            from_eif_build_output("no json here", "debug"),
            Err(PcrsError::NoJson)
        ));
        let short = format!(
            "{{\"PCR0\": \"{}\", \"PCR1\": \"abc\", \"PCR2\": \"{}\"}}",
            digest('a'),
            digest('a')
        );
        assert!(matches!(
            from_eif_build_output(&short, "debug"),
            Err(PcrsError::BadPcr("PCR1"))
        ));
        assert!(matches!(
            from_eif_build_output(&short, "root"),
            Err(PcrsError::BadProfile(_))
        ));
    }
}
