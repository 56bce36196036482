//! Signed responses of the enclave's applications: the message both the
//! signer (the inference server) and the verifier (`ra-verify response`)
//! build, the signature's encodings, and the checks of one exchange.
//!
//! **Why a signature.** TLS to the enclave proves who answered while the
//! connection lasts; a signature proves it afterwards, to anyone. The app
//! makes an Ed25519 key pair at start (the private key never leaves its
//! memory) and writes the public key to a file under a tree fs-monitor
//! watches, so ra-web-srv attests that file like any other: its path and
//! SHA3-512 in an NSM attestation document. A client that checks the
//! document (PCRs, chain, binding) and the file's hash knows the key is the
//! one that app in that enclave holds, and a signature by that key over a
//! request, a response and a model hash proves which model in which enclave
//! answered what.
//!
//! **The message** ([`signed_message`]), ASCII, each line ending in `\n`:
//!
//! ```text
//! enclaves-framework response signature v1
//! request-sha3-512: <SHA3-512 of the request body bytes, 128 lowercase hex digits>
//! response-sha3-512: <SHA3-512 of the response body bytes>
//! model-sha3-512: <the model's SHA3-512, as the response names it>
//! ```
//!
//! **On the wire.** A whole (JSON) response carries the headers
//! `x-enclave-signed: v1`, `x-enclave-signature` (standard base64 of the 64
//! signature bytes), `x-enclave-signing-key` (the key file's path in the
//! enclave) and `x-enclave-signing-public-key` (the key, 64 lowercase hex
//! digits: the file holds them and a newline, [`key_file_contents`]); the
//! model hash is the JSON's `model_sha3_512`. A stream of server-sent events
//! carries, after its last data event and before `data: [DONE]`, one event
//! `event: signature` whose data is a [`StreamSignature`]; the response bytes
//! signed are every byte of the stream before that event.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::defs::{
    ED25519_PUBLIC_KEY_LEN, HEADER_SIGNATURE, HEADER_SIGNED, HEADER_SIGNING_KEY,
    HEADER_SIGNING_PUBLIC_KEY, MAX_APP_REQUEST, MAX_APP_RESPONSE, MAX_EVIDENCE_FILE,
    MAX_SAVED_DOCUMENT, RESPONSE_MESSAGE_TAG, RESPONSE_SIGNED_VERSION, SHA3_512_LEN,
    SSE_SIGNATURE_EVENT,
};
use crate::files::{ReadError, read_limited};
use crate::hash::{HashError, Sha3Digest};
use crate::verify::{Check, LocalHash};

/// Bytes of an Ed25519 signature.
const SIGNATURE_LEN: usize = 64;

/// What can go wrong building or checking a signed response.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// A model hash that is not 128 lowercase hexadecimal digits (it goes
    /// into the message verbatim, so nothing else is accepted).
    #[error("the model hash {0:?} is not {len} lowercase hexadecimal digits", len = SHA3_512_LEN * 2)]
    BadModelHash(String),
    /// A public key that is not 64 lowercase hexadecimal digits.
    #[error("the signing key is not {len} lowercase hexadecimal digits", len = ED25519_PUBLIC_KEY_LEN * 2)]
    BadPublicKey,
    /// A signature that is not standard base64 of 64 bytes.
    #[error("the signature is not standard base64 of {SIGNATURE_LEN} bytes")]
    BadSignatureEncoding,
    /// The signature does not verify.
    #[error("the Ed25519 signature does not verify with the signing key")]
    BadSignature,
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Reading or writing evidence failed.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A saved evidence file is not what `--out` writes.
    #[error("{path}: {why}")]
    Evidence {
        /// Which file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

fn check_model_hash(model_sha3_512_hex: &str) -> Result<(), ResponseError> {
    if is_lower_hex(model_sha3_512_hex, SHA3_512_LEN * 2) {
        Ok(())
    } else {
        Err(ResponseError::BadModelHash(
            model_sha3_512_hex.chars().take(140).collect(),
        ))
    }
}

/// The message signed for a request and its response (see the module
/// documentation); the one function the signer and the verifier share.
pub fn signed_message(
    request_body: &[u8],
    response_body: &[u8],
    model_sha3_512_hex: &str,
) -> Result<Vec<u8>, ResponseError> {
    signed_message_of_digests(
        &Sha3Digest::of(request_body)?,
        &Sha3Digest::of(response_body)?,
        model_sha3_512_hex,
    )
}

/// [`signed_message`] from the digests of the bodies (a stream is hashed as
/// it goes).
pub fn signed_message_of_digests(
    request: &Sha3Digest,
    response: &Sha3Digest,
    model_sha3_512_hex: &str,
) -> Result<Vec<u8>, ResponseError> {
    check_model_hash(model_sha3_512_hex)?;
    Ok(format!(
        "{RESPONSE_MESSAGE_TAG}\nrequest-sha3-512: {}\nresponse-sha3-512: {}\nmodel-sha3-512: {model_sha3_512_hex}\n",
        request.to_hex(),
        response.to_hex()
    )
    .into_bytes())
}

/// The signature as it travels: standard base64 with padding.
pub fn encode_signature(signature: &[u8]) -> String {
    BASE64.encode(signature)
}

/// The contents of the key file: the key in lowercase hexadecimal and a
/// newline.
pub fn key_file_contents(public_key: &[u8]) -> Vec<u8> {
    format!("{}\n", hex::encode(public_key)).into_bytes()
}

/// An Ed25519 public key from 64 lowercase hexadecimal digits.
pub fn parse_public_key_hex(text: &str) -> Result<[u8; ED25519_PUBLIC_KEY_LEN], ResponseError> {
    if !is_lower_hex(text, ED25519_PUBLIC_KEY_LEN * 2) {
        return Err(ResponseError::BadPublicKey);
    }
    let mut key = [0u8; ED25519_PUBLIC_KEY_LEN];
    hex::decode_to_slice(text, &mut key).map_err(|_| ResponseError::BadPublicKey)?;
    Ok(key)
}

/// Checks the Ed25519 signature `signature_b64` (standard base64) of
/// `message` with the key `public_key_hex` (64 lowercase hex digits).
pub fn verify_response_signature(
    public_key_hex: &str,
    message: &[u8],
    signature_b64: &str,
) -> Result<(), ResponseError> {
    let key = parse_public_key_hex(public_key_hex)?;
    let signature = BASE64
        .decode(signature_b64)
        .map_err(|_| ResponseError::BadSignatureEncoding)?;
    if signature.len() != SIGNATURE_LEN {
        return Err(ResponseError::BadSignatureEncoding);
    }
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(message, &signature)
        .map_err(|_| ResponseError::BadSignature)
}

/// What a response says about its signature: its headers, or the fields of
/// a stream's signature event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSignature {
    /// The message layout (`v1`).
    pub signed: String,
    /// Standard base64 of the Ed25519 signature.
    pub signature: String,
    /// The key file's path in the enclave.
    pub signing_key: String,
    /// The key, 64 lowercase hexadecimal digits.
    pub public_key: String,
}

impl ResponseSignature {
    /// From response headers (`header(name)` returns a header's value);
    /// the error names the headers missing.
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Result<Self, String> {
        let names = [
            HEADER_SIGNED,
            HEADER_SIGNATURE,
            HEADER_SIGNING_KEY,
            HEADER_SIGNING_PUBLIC_KEY,
        ];
        let values: Vec<Option<&str>> = names.iter().map(|name| header(name)).collect();
        let missing: Vec<&str> = names
            .iter()
            .zip(&values)
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| *name)
            .collect();
        match values.as_slice() {
            [
                Some(signed),
                Some(signature),
                Some(signing_key),
                Some(public_key),
            ] => Ok(Self {
                signed: signed.to_string(),
                signature: signature.to_string(),
                signing_key: signing_key.to_string(),
                public_key: public_key.to_string(),
            }),
            _ => Err(format!("no {} header", missing.join(", "))),
        }
    }
}

/// The data of a stream's `event: signature`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSignature {
    /// Standard base64 of the Ed25519 signature.
    pub signature: String,
    /// The key file's path in the enclave.
    pub signing_key: String,
    /// The key, 64 lowercase hexadecimal digits.
    pub public_key: String,
    /// SHA3-512 of every byte of the stream before this event.
    pub response_sha3_512: String,
    /// The model's SHA3-512.
    pub model_sha3_512: String,
}

impl StreamSignature {
    /// The event's bytes: `event: signature`, one `data:` line, a blank line.
    pub fn sse_event(&self) -> Result<Vec<u8>, serde_json::Error> {
        let data = serde_json::to_string(self)?;
        Ok(format!("event: {SSE_SIGNATURE_EVENT}\ndata: {data}\n\n").into_bytes())
    }
}

/// The end of a signed stream: the signature event, then this.
const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

/// Splits a signed stream into the bytes the signature covers (how many)
/// and the signature event; refuses a stream without one, with more than
/// one, or with anything but `data: [DONE]` after it (bytes no signature
/// covers), and one whose data chunks name another model than the event.
pub fn split_signed_stream(body: &[u8]) -> Result<(usize, StreamSignature), String> {
    let event_line = format!("event: {SSE_SIGNATURE_EVENT}");
    let mut start = 0;
    let mut chunk_models: Vec<String> = Vec::new();
    while start < body.len() {
        let Some(length) = body[start..].windows(2).position(|pair| pair == b"\n\n") else {
            return Err("the stream ends without a signature event".into());
        };
        let end = start + length + 2;
        let text = std::str::from_utf8(&body[start..start + length])
            .map_err(|_| format!("the event at byte {start} is not UTF-8"))?;
        let lines: Vec<&str> = text.split('\n').collect();
        if lines.contains(&event_line.as_str()) {
            let data: Vec<&str> = lines
                .iter()
                .filter_map(|line| line.strip_prefix("data: "))
                .collect();
            if lines.len() != 2 || data.len() != 1 {
                return Err("the signature event is not one event line and one data line".into());
            }
            let signature: StreamSignature = serde_json::from_str(data[0])
                .map_err(|error| format!("the signature event's data: {error}"))?;
            if &body[end..] != SSE_DONE {
                return Err(format!(
                    "{} bytes follow the signature event that it does not cover (only `data: [DONE]` may)",
                    body.len() - end
                ));
            }
            if let Some(other) = chunk_models
                .iter()
                .find(|model| **model != signature.model_sha3_512)
            {
                return Err(format!(
                    "a chunk names model {}, the signature event {}",
                    short(other),
                    short(&signature.model_sha3_512)
                ));
            }
            return Ok((start, signature));
        }
        for data in lines.iter().filter_map(|line| line.strip_prefix("data: ")) {
            if let Ok(chunk) = serde_json::from_str::<serde_json::Value>(data)
                && let Some(model) = chunk.get("model_sha3_512").and_then(|v| v.as_str())
            {
                chunk_models.push(model.to_string());
            }
        }
        start = end;
    }
    Err("the stream ends without a signature event".into())
}

/// One request and the response the app gave.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The request body, as sent.
    pub request: Vec<u8>,
    /// The response body, as received.
    pub response: Vec<u8>,
    /// Whether the response is a stream of server-sent events.
    pub stream: bool,
    /// For a whole response: its signature headers, or which are missing.
    pub headers: Result<ResponseSignature, String>,
}

/// The checks of one exchange, and what they found.
#[derive(Debug, Clone)]
pub struct ExchangeChecks {
    /// `signing_key`: the response names the expected key file and a
    /// well-formed key.
    pub signing_key: Check,
    /// `response_signature`: the signature verifies over the message.
    pub response_signature: Check,
    /// The signature claim found (headers or event).
    pub claim: Option<ResponseSignature>,
    /// The key named, when well-formed.
    pub public_key: Option<[u8; ED25519_PUBLIC_KEY_LEN]>,
    /// The model hash the response names.
    pub model_sha3_512: Option<String>,
}

impl ExchangeChecks {
    /// The SHA3-512 of the key file that holds the key named, for the
    /// `file_hash` check of the key file's document.
    pub fn key_file_hash(&self) -> Option<LocalHash> {
        let key = self.public_key?;
        Some(LocalHash {
            label: "the signing key's file (response-key.pub)".into(),
            digest: Sha3Digest::of(&key_file_contents(&key)).ok()?,
        })
    }
}

/// The first 16 hexadecimal digits, for reports.
fn short(hex: &str) -> String {
    let cut: String = hex.chars().take(16).collect();
    if hex.chars().count() > 16 {
        format!("{cut}...")
    } else {
        cut
    }
}

/// Checks one exchange: the response names `expected_key_path` and a key
/// (`signing_key`), and the key's signature covers the request, the
/// response and the model hash it names (`response_signature`). The key
/// itself is trusted only through the document of its file (`file_hash`,
/// with [`ExchangeChecks::key_file_hash`]).
pub fn check_exchange(exchange: &Exchange, expected_key_path: &str) -> ExchangeChecks {
    const KEY: &str = "signing_key";
    const SIGNATURE: &str = "response_signature";
    let failed = |key: String, signature: String| ExchangeChecks {
        signing_key: Check::fail(KEY, key),
        response_signature: Check::fail(SIGNATURE, signature),
        claim: None,
        public_key: None,
        model_sha3_512: None,
    };
    // The claim, the bytes it covers and the model it names.
    let (claim, covered, model) = if exchange.stream {
        let (covered, event) = match split_signed_stream(&exchange.response) {
            Ok(found) => found,
            Err(why) => return failed(format!("unsigned stream: {why}"), why),
        };
        let covered = &exchange.response[..covered];
        let actual = Sha3Digest::of(covered).map(|digest| digest.to_hex());
        let actual = actual.unwrap_or_default();
        let claim = ResponseSignature {
            signed: RESPONSE_SIGNED_VERSION.into(),
            signature: event.signature.clone(),
            signing_key: event.signing_key.clone(),
            public_key: event.public_key.clone(),
        };
        if actual != event.response_sha3_512 {
            let mut checks = failed(
                format!("the stream names key file {}", event.signing_key),
                format!(
                    "the stream before the signature event has SHA3-512 {}, the event says {}: the stream was altered",
                    short(&actual),
                    short(&event.response_sha3_512)
                ),
            );
            checks.claim = Some(claim);
            return checks;
        }
        (claim, covered, Some(event.model_sha3_512))
    } else {
        let claim = match &exchange.headers {
            Ok(claim) => claim.clone(),
            Err(why) => return failed(format!("unsigned response: {why}"), why.clone()),
        };
        let model = serde_json::from_slice::<serde_json::Value>(&exchange.response)
            .ok()
            .and_then(|json| {
                json.get("model_sha3_512")
                    .and_then(|value| value.as_str())
                    .map(str::to_string)
            });
        (claim, exchange.response.as_slice(), model)
    };
    let mut checks = ExchangeChecks {
        signing_key: Check::skip(KEY, ""),
        response_signature: Check::skip(SIGNATURE, ""),
        claim: Some(claim.clone()),
        public_key: None,
        model_sha3_512: model.clone(),
    };
    if claim.signed != RESPONSE_SIGNED_VERSION {
        checks.signing_key = Check::fail(
            KEY,
            format!(
                "unknown signature layout {:?} (this verifier knows v1)",
                claim.signed
            ),
        );
        checks.response_signature = Check::fail(SIGNATURE, "unknown signature layout");
        return checks;
    }
    let key = parse_public_key_hex(&claim.public_key);
    checks.signing_key = match (&key, claim.signing_key == expected_key_path) {
        (_, false) => Check::fail(
            KEY,
            format!(
                "the response names key file {}, not {expected_key_path} (--key-path): any attested file could hold a key",
                claim.signing_key
            ),
        ),
        (Err(error), true) => Check::fail(KEY, error.to_string()),
        (Ok(key), true) => Check::pass(
            KEY,
            format!(
                "Ed25519 key {} in {expected_key_path} (its file must be the attested one: file_hash)",
                short(&hex::encode(key))
            ),
        ),
    };
    let Ok(key) = key else {
        checks.response_signature = Check::fail(SIGNATURE, "no well-formed signing key");
        return checks;
    };
    checks.public_key = Some(key);
    let Some(model) = model else {
        checks.response_signature = Check::fail(
            SIGNATURE,
            "the response names no model_sha3_512: nothing to tie the answer to",
        );
        return checks;
    };
    let message = match signed_message(&exchange.request, covered, &model) {
        Ok(message) => message,
        Err(error) => {
            checks.response_signature = Check::fail(SIGNATURE, error.to_string());
            return checks;
        }
    };
    checks.response_signature = match verify_response_signature(
        &claim.public_key,
        &message,
        &claim.signature,
    ) {
        Ok(()) => {
            let request = Sha3Digest::of(&exchange.request).map(|d| d.to_hex());
            let response = Sha3Digest::of(covered).map(|d| d.to_hex());
            Check::pass(
                SIGNATURE,
                format!(
                    "Ed25519 signature by the signing key over the request (SHA3-512 {}), the {} (SHA3-512 {}) and the model: model_sha3_512 {model}",
                    short(&request.unwrap_or_default()),
                    if exchange.stream {
                        "stream"
                    } else {
                        "response"
                    },
                    short(&response.unwrap_or_default()),
                ),
            )
        }
        Err(error) => Check::fail(
            SIGNATURE,
            format!(
                "{error}: the request, the response or the model hash is not what was signed, or another key signed"
            ),
        ),
    };
    checks
}

/// `model_file`: the model hash the response names is the SHA3-512 of a
/// local file (`--model-file`).
pub fn model_file_check(model_sha3_512: Option<&str>, local: Option<&LocalHash>) -> Check {
    const NAME: &str = "model_file";
    match (model_sha3_512, local) {
        (_, None) => Check::skip(NAME, "no local model file given"),
        (None, Some(_)) => Check::fail(NAME, "the response names no model hash"),
        (Some(model), Some(local)) if model == local.digest.to_hex() => {
            Check::pass(NAME, format!("{} is the model that answered", local.label))
        }
        (Some(model), Some(local)) => Check::fail(
            NAME,
            format!(
                "{} has SHA3-512 {}, the response names {}",
                local.label,
                short(&local.digest.to_hex()),
                short(model)
            ),
        ),
    }
}

/// What `ra-verify response --out DIR` saves and `--evidence DIR` reads:
/// `request.json` (the bytes sent), `response.json` or, for a stream,
/// `response.sse` (the bytes received), `signature.json` (the signature
/// headers; for a stream the fields of its event), `response-key.pub` (the
/// key file the document must attest) and `document.hex` (that document).
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The request body.
    pub request: Vec<u8>,
    /// The response body.
    pub response: Vec<u8>,
    /// Whether the response is a stream.
    pub stream: bool,
    /// The signature claim as found (`None`: the response had none).
    pub signature: Option<ResponseSignature>,
    /// The key file's contents (`None`: no well-formed key was named).
    pub key_file: Option<Vec<u8>>,
    /// The attestation document of the key file (COSE_Sign1 bytes).
    pub document: Option<Vec<u8>>,
}

/// `signature.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedSignature {
    stream: bool,
    signature: Option<ResponseSignature>,
}

/// Evidence file names.
const REQUEST_FILE: &str = "request.json";
const RESPONSE_FILE: &str = "response.json";
const STREAM_FILE: &str = "response.sse";
const SIGNATURE_FILE: &str = "signature.json";
const KEY_FILE: &str = crate::defs::RESPONSE_KEY_FILE;
const DOCUMENT_FILE: &str = "document.hex";

impl Evidence {
    /// Writes the evidence into `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<(), ResponseError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ResponseError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut files: Vec<(&str, Vec<u8>)> = vec![
            (REQUEST_FILE, self.request.clone()),
            (
                if self.stream {
                    STREAM_FILE
                } else {
                    RESPONSE_FILE
                },
                self.response.clone(),
            ),
        ];
        let saved = SavedSignature {
            stream: self.stream,
            signature: self.signature.clone(),
        };
        let mut json =
            serde_json::to_vec_pretty(&saved).map_err(|error| ResponseError::Evidence {
                path: dir.join(SIGNATURE_FILE),
                why: error.to_string(),
            })?;
        json.push(b'\n');
        files.push((SIGNATURE_FILE, json));
        if let Some(key_file) = &self.key_file {
            files.push((KEY_FILE, key_file.clone()));
        }
        if let Some(document) = &self.document {
            files.push((
                DOCUMENT_FILE,
                format!("{}\n", hex::encode(document)).into_bytes(),
            ));
        }
        for (name, bytes) in files {
            let path = dir.join(name);
            fs::write(&path, bytes).map_err(io_error(&path))?;
        }
        Ok(())
    }

    /// Reads evidence that [`Evidence::save`] wrote.
    pub fn load(dir: &Path) -> Result<Self, ResponseError> {
        let read = |name: &str, max: u64| {
            let path = dir.join(name);
            read_limited(&path, max).map_err(|error| match error {
                ReadError::Io(source) => ResponseError::Io { path, source },
                ReadError::TooLarge(max) => ResponseError::Evidence {
                    path,
                    why: format!("larger than {max} bytes"),
                },
            })
        };
        let signature_path = dir.join(SIGNATURE_FILE);
        let saved: SavedSignature =
            serde_json::from_slice(&read(SIGNATURE_FILE, MAX_EVIDENCE_FILE)?).map_err(|error| {
                ResponseError::Evidence {
                    path: signature_path,
                    why: error.to_string(),
                }
            })?;
        let response_file = if saved.stream {
            STREAM_FILE
        } else {
            RESPONSE_FILE
        };
        let document_path = dir.join(DOCUMENT_FILE);
        let document = read(DOCUMENT_FILE, MAX_SAVED_DOCUMENT)?;
        let document = crate::document::decode_hex_or_raw(&document).map_err(|error| {
            ResponseError::Evidence {
                path: document_path,
                why: error.to_string(),
            }
        })?;
        Ok(Self {
            request: read(REQUEST_FILE, MAX_APP_REQUEST)?,
            response: read(response_file, MAX_APP_RESPONSE as u64)?,
            stream: saved.stream,
            signature: saved.signature,
            key_file: Some(read(KEY_FILE, MAX_EVIDENCE_FILE)?),
            document: Some(document),
        })
    }

    /// The exchange the evidence records (for a stream, the signature is
    /// the event's in the saved stream, whatever `signature.json` says).
    pub fn exchange(&self) -> Exchange {
        Exchange {
            request: self.request.clone(),
            response: self.response.clone(),
            stream: self.stream,
            headers: self
                .signature
                .clone()
                .ok_or_else(|| "no signature headers were saved".to_string()),
        }
    }
}

/// `signing_key` of saved evidence: the saved key file must be the one
/// holding the key the response names (the document attests the file).
pub fn saved_key_file_check(checks: &mut ExchangeChecks, saved_key_file: Option<&[u8]>) {
    let (Some(key), Some(saved)) = (checks.public_key, saved_key_file) else {
        return;
    };
    if saved != key_file_contents(&key).as_slice() {
        checks.signing_key = Check::fail(
            "signing_key",
            format!(
                "the saved {KEY_FILE} does not hold the key the response names ({})",
                short(&hex::encode(key))
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Outcome;
    use ring::signature::KeyPair;

    const MODEL: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\
                         0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// The SHA3-512 of `model`, of `{}` and of `[]`, the message over them,
    /// and its Ed25519 signature by the key of seed 0x01..=0x20, computed
    /// once with OpenSSL (`openssl dgst -sha3-512`, `openssl pkeyutl -sign
    /// -rawin`).
    const VECTOR_MODEL: &str = "f35525cc0510ed5271721594a8408db3a9414097dbda502bc33df0a8ca0e80c6e58c95415675fc948ccdc78acdcd9b70ee37c729a1984307e41b2d0ea478c899";
    const VECTOR_MESSAGE: &str = "enclaves-framework response signature v1\n\
        request-sha3-512: c1802e6b9670927ebfddb7f67b3824642237361f07db35526c42c555ffd2dbe74156c366e1550ef8c0508a6cc796409a7194a59bba4d300a6182b483d315a862\n\
        response-sha3-512: 888b858b73d5d34fedab0f07663436931a95c73d6d7808edc868767bb9172f9e542fb7bb1ad1dbe988ceff0aaffde2012bc0e7d1914e986269f46d93651436a5\n\
        model-sha3-512: f35525cc0510ed5271721594a8408db3a9414097dbda502bc33df0a8ca0e80c6e58c95415675fc948ccdc78acdcd9b70ee37c729a1984307e41b2d0ea478c899\n";
    const VECTOR_PUBLIC_KEY: &str =
        "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664";
    const VECTOR_SIGNATURE: &str =
        "a09rpQwJB1Q0p0IIE0SIZ3atXd2O+9ehKbtvn8qSD39WBbwIKn7eOoAJWSVx4lFXDGVyZ8Ahr9UZa5zm204aAA==";

    #[test]
    fn the_message_and_signature_match_the_fixed_vectors() {
        assert_eq!(
            Sha3Digest::of(b"model").unwrap().to_hex(),
            VECTOR_MODEL,
            "SHA3-512 of `model`"
        );
        let message = signed_message(b"{}", b"[]", VECTOR_MODEL).unwrap();
        assert_eq!(String::from_utf8(message.clone()).unwrap(), VECTOR_MESSAGE);
        let seed: Vec<u8> = (1..=32).collect();
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        assert_eq!(hex::encode(pair.public_key().as_ref()), VECTOR_PUBLIC_KEY);
        assert_eq!(
            encode_signature(pair.sign(&message).as_ref()),
            VECTOR_SIGNATURE
        );
        verify_response_signature(VECTOR_PUBLIC_KEY, &message, VECTOR_SIGNATURE).unwrap();
        assert_eq!(
            key_file_contents(pair.public_key().as_ref()),
            format!("{VECTOR_PUBLIC_KEY}\n").into_bytes()
        );
    }

    #[test]
    fn model_hashes_that_could_change_the_message_layout_are_refused() {
        for bad in [
            "",
            &MODEL[..127],
            &MODEL.to_uppercase(),
            &format!("{}\nrequest-sha3-512: 00", &MODEL[..100]),
            &format!("{MODEL}0"),
        ] {
            assert!(matches!(
                signed_message(b"", b"", bad),
                Err(ResponseError::BadModelHash(_))
            ));
        }
    }

    struct Signer {
        pair: ring::signature::Ed25519KeyPair,
    }

    impl Signer {
        fn new() -> Self {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            Self {
                pair: ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
            }
        }

        fn public_hex(&self) -> String {
            hex::encode(self.pair.public_key().as_ref())
        }

        fn sign(&self, request: &[u8], response: &[u8], model: &str) -> String {
            let message = signed_message(request, response, model).unwrap();
            encode_signature(self.pair.sign(&message).as_ref())
        }
    }

    const KEY_PATH: &str = "/apps/.keys/inference-server/response-key.pub";

    fn response_json(model: &str) -> Vec<u8> {
        format!(r#"{{"id":"chatcmpl-1","model_sha3_512":"{model}","choices":[]}}"#).into_bytes()
    }

    fn signed_exchange(signer: &Signer) -> Exchange {
        let request = br#"{"messages":[{"role":"user","content":"Hi"}]}"#.to_vec();
        let response = response_json(MODEL);
        let signature = signer.sign(&request, &response, MODEL);
        Exchange {
            request,
            response,
            stream: false,
            headers: Ok(ResponseSignature {
                signed: "v1".into(),
                signature,
                signing_key: KEY_PATH.into(),
                public_key: signer.public_hex(),
            }),
        }
    }

    fn outcome(exchange: &Exchange) -> (Outcome, Outcome, String) {
        let checks = check_exchange(exchange, KEY_PATH);
        (
            checks.signing_key.outcome,
            checks.response_signature.outcome,
            checks.response_signature.detail,
        )
    }

    #[test]
    fn a_signed_response_verifies_and_names_its_model() {
        let signer = Signer::new();
        let exchange = signed_exchange(&signer);
        let checks = check_exchange(&exchange, KEY_PATH);
        assert_eq!(checks.signing_key.outcome, Outcome::Pass, "{checks:?}");
        assert_eq!(checks.response_signature.outcome, Outcome::Pass);
        assert!(checks.response_signature.detail.ends_with(MODEL));
        assert_eq!(checks.model_sha3_512.as_deref(), Some(MODEL));
        let key_file = key_file_contents(&checks.public_key.unwrap());
        assert_eq!(key_file, format!("{}\n", signer.public_hex()).into_bytes());
        assert_eq!(
            checks.key_file_hash().unwrap().digest,
            Sha3Digest::of(&key_file).unwrap()
        );
    }

    #[test]
    fn tampering_with_any_part_fails() {
        let signer = Signer::new();
        let honest = signed_exchange(&signer);

        let mut response = honest.clone();
        let at = response.response.len() - 3;
        response.response[at] ^= 1;
        assert_eq!(outcome(&response).1, Outcome::Fail, "a response byte");

        let mut request = honest.clone();
        request.request.push(b' ');
        assert_eq!(outcome(&request).1, Outcome::Fail, "the request");

        // Another model named in the response (the signature was over MODEL).
        let mut model = honest.clone();
        let other = MODEL.replace('0', "f");
        model.response = response_json(&other);
        let (_, signature, detail) = outcome(&model);
        assert_eq!(signature, Outcome::Fail, "another model hash");
        assert!(detail.contains("not what was signed"), "{detail}");

        // Another key, with its own valid signature over the same exchange.
        let mut key = honest.clone();
        let other_signer = Signer::new();
        if let Ok(headers) = &mut key.headers {
            headers.public_key = other_signer.public_hex();
        }
        assert_eq!(outcome(&key).1, Outcome::Fail, "another key");
        let mut both = honest.clone();
        if let Ok(headers) = &mut both.headers {
            headers.public_key = other_signer.public_hex();
            headers.signature = other_signer.sign(&both.request, &both.response, MODEL);
        }
        // The signature holds, but the key is only trusted through its
        // file's document: the key file hash differs from the honest one.
        let honest_file = check_exchange(&honest, KEY_PATH).key_file_hash().unwrap();
        let other_file = check_exchange(&both, KEY_PATH).key_file_hash().unwrap();
        assert_ne!(honest_file.digest, other_file.digest);

        // A key file elsewhere (an attested file anyone could copy in).
        let mut path = honest.clone();
        if let Ok(headers) = &mut path.headers {
            headers.signing_key = "/data/my-key.pub".into();
        }
        assert_eq!(outcome(&path).0, Outcome::Fail, "another key path");

        // Garbage signature, unknown layout, missing headers.
        let mut garbage = honest.clone();
        if let Ok(headers) = &mut garbage.headers {
            headers.signature = "not base64!".into();
        }
        assert_eq!(outcome(&garbage).1, Outcome::Fail);
        let mut layout = honest.clone();
        if let Ok(headers) = &mut layout.headers {
            headers.signed = "v2".into();
        }
        assert_eq!(outcome(&layout).0, Outcome::Fail);
        let mut missing = honest;
        missing.headers = Err("no x-enclave-signature header".into());
        assert_eq!(outcome(&missing).1, Outcome::Fail);
    }

    #[test]
    fn verify_response_signature_refuses_malformed_inputs() {
        let signer = Signer::new();
        let message = signed_message(b"a", b"b", MODEL).unwrap();
        let signature = encode_signature(signer.pair.sign(&message).as_ref());
        verify_response_signature(&signer.public_hex(), &message, &signature).unwrap();
        assert!(matches!(
            verify_response_signature(&signer.public_hex().to_uppercase(), &message, &signature),
            Err(ResponseError::BadPublicKey)
        ));
        assert!(matches!(
            verify_response_signature(&signer.public_hex(), &message, &signature[..40]),
            Err(ResponseError::BadSignatureEncoding)
        ));
        assert!(matches!(
            verify_response_signature(&signer.public_hex(), b"other", &signature),
            Err(ResponseError::BadSignature)
        ));
    }

    fn signed_stream(signer: &Signer, request: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for piece in ["Hel", "lo"] {
            body.extend_from_slice(
                format!(
                    "data: {{\"model_sha3_512\":\"{MODEL}\",\"choices\":[{{\"delta\":{{\"content\":\"{piece}\"}}}}]}}\n\n"
                )
                .as_bytes(),
            );
        }
        let event = StreamSignature {
            signature: signer.sign(request, &body, MODEL),
            signing_key: KEY_PATH.into(),
            public_key: signer.public_hex(),
            response_sha3_512: Sha3Digest::of(&body).unwrap().to_hex(),
            model_sha3_512: MODEL.into(),
        };
        body.extend_from_slice(&event.sse_event().unwrap());
        body.extend_from_slice(SSE_DONE);
        body
    }

    #[test]
    fn a_signed_stream_verifies_and_tampered_streams_fail() {
        let signer = Signer::new();
        let request = br#"{"stream":true}"#.to_vec();
        let body = signed_stream(&signer, &request);
        let exchange = |response: Vec<u8>| Exchange {
            request: request.clone(),
            response,
            stream: true,
            headers: Err("streams carry an event".into()),
        };
        let checks = check_exchange(&exchange(body.clone()), KEY_PATH);
        assert_eq!(
            checks.response_signature.outcome,
            Outcome::Pass,
            "{checks:?}"
        );

        // A byte of a chunk changed.
        let mut tampered = body.clone();
        let at = tampered.windows(3).position(|w| w == b"Hel").unwrap();
        tampered[at] = b'J';
        assert_eq!(outcome(&exchange(tampered)).1, Outcome::Fail);

        // A chunk appended after the signature, before [DONE].
        let mut appended = body.clone();
        let done = appended.len() - SSE_DONE.len();
        appended.splice(done..done, b"data: {\"choices\":[]}\n\n".iter().copied());
        let (_, signature, detail) = outcome(&exchange(appended));
        assert_eq!(signature, Outcome::Fail);
        assert!(detail.contains("does not cover"), "{detail}");

        // The signature event dropped.
        let start = split_signed_stream(&body).unwrap().0;
        let mut dropped = body[..start].to_vec();
        dropped.extend_from_slice(SSE_DONE);
        assert_eq!(outcome(&exchange(dropped)).1, Outcome::Fail);

        // A chunk naming another model than the signed one.
        let other = MODEL.replace('1', "2");
        let renamed = String::from_utf8(body.clone())
            .unwrap()
            .replacen(MODEL, &other, 1)
            .into_bytes();
        assert_eq!(outcome(&exchange(renamed)).1, Outcome::Fail);
    }

    #[test]
    fn evidence_round_trips_and_a_foreign_key_file_fails() {
        let signer = Signer::new();
        let exchange = signed_exchange(&signer);
        let checks = check_exchange(&exchange, KEY_PATH);
        let evidence = Evidence {
            request: exchange.request.clone(),
            response: exchange.response.clone(),
            stream: false,
            signature: checks.claim.clone(),
            key_file: Some(key_file_contents(&checks.public_key.unwrap())),
            document: Some(vec![0x84, 1, 2, 3]),
        };
        let dir = tempfile::tempdir().unwrap();
        evidence.save(dir.path()).unwrap();
        let loaded = Evidence::load(dir.path()).unwrap();
        assert_eq!(loaded.request, evidence.request);
        assert_eq!(loaded.response, evidence.response);
        assert_eq!(loaded.document, evidence.document);
        let mut checks = check_exchange(&loaded.exchange(), KEY_PATH);
        saved_key_file_check(&mut checks, loaded.key_file.as_deref());
        assert_eq!(checks.signing_key.outcome, Outcome::Pass);
        assert_eq!(checks.response_signature.outcome, Outcome::Pass);
        let foreign = key_file_contents(&[7; 32]);
        saved_key_file_check(&mut checks, Some(&foreign));
        assert_eq!(checks.signing_key.outcome, Outcome::Fail);
    }

    #[test]
    fn the_model_file_check() {
        let local = LocalHash {
            label: "model.gguf".into(),
            digest: Sha3Digest::of(b"weights").unwrap(),
        };
        let right = local.digest.to_hex();
        assert_eq!(
            model_file_check(Some(&right), Some(&local)).outcome,
            Outcome::Pass
        );
        assert_eq!(
            model_file_check(Some(MODEL), Some(&local)).outcome,
            Outcome::Fail
        );
        assert_eq!(model_file_check(Some(MODEL), None).outcome, Outcome::Skip);
    }
}
