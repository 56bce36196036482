//! The ways a document can be shown (`view=` on `/doc/` and `/docs/`).
//!
//! - `hex` (default): the COSE_Sign1 bytes in hexadecimal.
//! - `json_hex`: the attestation document's fields as JSON, bytes in hex.
//! - `json_str`: the same, readable: certificates in PEM, `user_data` as
//!   text (it is JSON), the rest in hex.
//! - `att_doc`: the raw COSE_Sign1 bytes, `application/cbor` (one document).
//! - `pcrs`: only the PCRs, in hex.

use ra_verify_core::document::Document;
use serde::Deserialize;
use serde_json::{Map, Value, json};

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

/// The JSON fields showing `bytes` in `view` (not [`View::AttDoc`]).
pub fn fields(bytes: &[u8], view: View) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    if view == View::Hex {
        out.insert("document".into(), Value::String(hex::encode(bytes)));
        return Ok(out);
    }
    let document = Document::parse(bytes).map_err(|e| e.to_string())?;
    let pcrs: Map<String, Value> = document
        .pcrs()
        .into_iter()
        .map(|(index, value)| (index.to_string(), Value::String(hex::encode(value))))
        .collect();
    if view == View::Pcrs {
        out.insert("pcrs".into(), Value::Object(pcrs));
        return Ok(out);
    }
    let readable = view == View::JsonStr;
    let cert = |der: &[u8]| {
        if readable {
            Value::String(pem(der))
        } else {
            Value::String(hex::encode(der))
        }
    };
    let opt_hex =
        |bytes: Option<&[u8]>| bytes.map_or(Value::Null, |b| Value::String(hex::encode(b)));
    let user_data = match document.user_data() {
        Some(bytes) if readable => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        other => opt_hex(other),
    };
    let doc = document.attestation();
    out.insert(
        "document".into(),
        json!({
            "module_id": document.module_id(),
            "digest": format!("{:?}", doc.digest),
            "timestamp": document.timestamp_ms(),
            "pcrs": pcrs,
            "certificate": cert(document.certificate()),
            "cabundle": document.cabundle().into_iter().map(cert).collect::<Vec<_>>(),
            "public_key": opt_hex(document.public_key()),
            "user_data": user_data,
            "nonce": opt_hex(document.nonce()),
            "signed": document.is_signed(),
        }),
    );
    Ok(out)
}

/// PEM text of a DER certificate.
pub fn pem(der: &[u8]) -> String {
    enclave_nsm::pem::certificate(der)
}
