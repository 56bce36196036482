//! Certificates as PEM text.

/// A DER certificate as PEM (`-----BEGIN CERTIFICATE-----`, 64 columns).
pub fn certificate(der: &[u8]) -> String {
    let body = openssl::base64::encode_block(der);
    let mut text = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str("-----END CERTIFICATE-----\n");
    text
}
