//! Wire constants and limits of the attested channel, each in one place.

use std::time::Duration;

/// The Noise protocol: XX (both static keys sent, encrypted, mutual
/// authentication), X25519, AES-256-GCM, SHA-256. Chosen over ChaChaPoly
/// because AES-GCM through ring (AES-NI, PCLMULQDQ) is the faster of the two
/// on the x86-64 hosts and enclaves this runs on.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_AESGCM_SHA256";

/// [`NOISE_PARAMS`], parsed (an error only if the name were mistyped: the
/// `noise_params_parse` test holds it).
pub(crate) fn noise_params() -> Result<snow::params::NoiseParams, snow::Error> {
    NOISE_PARAMS.parse()
}

/// Noise prologue: both sides hash it into the handshake, so a peer speaking
/// another protocol or version fails the handshake.
pub const PROLOGUE: &[u8] = b"enclaves-framework attested-channel v1";

/// First bytes a client sends, before Noise message 1: "ACH1".
pub const MAGIC: [u8; 4] = *b"ACH1";

/// Bytes of the client's fresh random nonce (carried in message 1, and
/// required in the server's attestation document).
pub const CLIENT_NONCE_LEN: usize = 32;

/// Bytes of an X25519 key (private or public).
pub const KEY_LEN: usize = 32;

/// Size of the length prefix of a handshake message or a record (u16, big-endian).
pub const LENGTH_PREFIX_LEN: usize = 2;

/// Largest handshake message accepted (the Noise maximum).
pub const MAX_HANDSHAKE_MESSAGE: usize = 65_535;

/// Largest record (one Noise transport message: ciphertext and tag) accepted
/// or sent (the Noise maximum).
pub const MAX_RECORD_LEN: usize = 65_535;

/// Bytes of the AEAD tag at the end of every record.
pub const TAG_LEN: usize = 16;

/// Largest plaintext carried by one record.
pub const MAX_RECORD_PLAINTEXT: usize = MAX_RECORD_LEN - TAG_LEN;

/// Records a writer gathers before it must send them (one write call for
/// up to this many records).
pub const MAX_WRITE_BATCH: usize = 8;

/// Records' worth of ciphertext a reader asks the socket for at once.
pub const READ_BATCH: usize = 4;

/// `user_data` of the server's attestation document: says what the document
/// is for, so a document made for this channel is never mistaken for one
/// of ra-web-srv's file documents, and the other way round.
pub const ATTESTATION_LABEL: &[u8] =
    b"enclaves-framework attested-channel v1: public_key is the server's Noise static key";

/// Default time a handshake may take, from the first byte to the answer.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// First byte of the server's verdict record: the key is authorised.
pub const VERDICT_ACCEPTED: u8 = 0;

/// First byte of the server's verdict record: the key is refused (a reason follows).
pub const VERDICT_REFUSED: u8 = 1;

/// Largest key file (private or public) read.
pub const MAX_KEY_FILE: u64 = 16 * 1024;

/// Largest authorized-keys file read.
pub const MAX_AUTHORIZED_KEYS_FILE: u64 = 1024 * 1024;

/// Longest line of an authorized-keys file.
pub const MAX_AUTHORIZED_KEYS_LINE: usize = 8 * 1024;

/// Most keys in one authorized-keys file.
pub const MAX_AUTHORIZED_KEYS: usize = 4096;

/// Key type word of public keys (`.pub` files and authorized-keys lines).
pub const KEY_TYPE: &str = "noise-x25519";

/// Key type word of private key files.
pub const PRIVATE_KEY_TYPE: &str = "noise-x25519-private";
