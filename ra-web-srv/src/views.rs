//! The ways a document can be shown (`view=` on `/doc/` and `/docs/`).
//!
//! - `hex` (default): the COSE_Sign1 bytes in hexadecimal.
//! - `json_hex`: the attestation document's fields as JSON, bytes in hex.
//! - `json_str`: the same, readable: certificates in PEM, `user_data` as
//!   text (it is JSON), the rest in hex.
//! - `att_doc`: the raw COSE_Sign1 bytes, `application/cbor` (one document).
//! - `pcrs`: only the PCRs, in hex.

use std::collections::BTreeMap;

use ra_verify_core::document::Document;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A `view=` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Hexadecimal COSE_Sign1.
    #[default]
    Hex,
    /// Decoded, bytes in hex.
    JsonHex,
    /// Decoded, readable.
    JsonStr,
    /// Raw COSE_Sign1 (`application/cbor`).
    AttDoc,
    /// PCRs only.
    Pcrs,
}

/// The names `view=` accepts.
pub const VIEW_NAMES: &str = "hex, json_hex, json_str, att_doc, pcrs";

/// A document shown in a view (not [`View::AttDoc`]).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Shown {
    /// `hex`.
    Hex {
        /// The COSE_Sign1 bytes, hex.
        document: String,
    },
    /// `json_hex`, `json_str`.
    Decoded {
        /// The attestation document's fields.
        document: Decoded,
    },
    /// `pcrs`.
    Pcrs {
        /// PCR index to value, hex.
        pcrs: BTreeMap<String, String>,
    },
}

/// The fields of an attestation document (`json_hex`: bytes in hex;
/// `json_str`: certificates in PEM, `user_data` as text).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Decoded {
    /// The NSM's module id.
    pub module_id: String,
    /// The PCRs' digest algorithm.
    pub digest: String,
    /// When it was made, milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// PCR index to value, hex.
    pub pcrs: BTreeMap<String, String>,
    /// The signing certificate.
    pub certificate: String,
    /// The certificates from the root down.
    pub cabundle: Vec<String>,
    /// The `public_key` field, hex (null: none).
    pub public_key: Option<String>,
    /// The `user_data` field (null: none).
    pub user_data: Option<String>,
    /// The `nonce` field, hex (null: none).
    pub nonce: Option<String>,
    /// It is signed (not QEMU's unsigned document).
    pub signed: bool,
}

/// A path's document in a view (`/doc/`, an item of `/docs/`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ShownDoc {
    /// The path.
    pub path: String,
    /// The document.
    #[serde(flatten)]
    pub shown: Shown,
}

/// `bytes` shown in `view` (not [`View::AttDoc`]).
pub fn show(bytes: &[u8], view: View) -> Result<Shown, String> {
    if view == View::Hex {
        return Ok(Shown::Hex {
            document: hex::encode(bytes),
        });
    }
    let document = Document::parse(bytes).map_err(|e| e.to_string())?;
    let pcrs: BTreeMap<String, String> = document
        .pcrs()
        .into_iter()
        .map(|(index, value)| (index.to_string(), hex::encode(value)))
        .collect();
    if view == View::Pcrs {
        return Ok(Shown::Pcrs { pcrs });
    }
    let readable = view == View::JsonStr;
    let cert = |der: &[u8]| {
        if readable { pem(der) } else { hex::encode(der) }
    };
    let user_data = match document.user_data() {
        Some(bytes) if readable => Some(String::from_utf8_lossy(bytes).into_owned()),
        other => other.map(hex::encode),
    };
    Ok(Shown::Decoded {
        document: Decoded {
            module_id: document.module_id().to_string(),
            digest: format!("{:?}", document.attestation().digest),
            timestamp: document.timestamp_ms(),
            pcrs,
            certificate: cert(document.certificate()),
            cabundle: document.cabundle().into_iter().map(cert).collect(),
            public_key: document.public_key().map(hex::encode),
            user_data,
            nonce: document.nonce().map(hex::encode),
            signed: document.is_signed(),
        },
    })
}

/// PEM text of a DER certificate.
pub fn pem(der: &[u8]) -> String {
    enclave_nsm::pem::certificate(der)
}
