//! `attested-channel`: an attested, mutually authenticated, encrypted byte
//! stream between a host and its enclave, over any `AsyncRead + AsyncWrite`.
//!
//! The handshake is Noise `XX` ([`defs::NOISE_PARAMS`]) through the `snow`
//! crate: forward secrecy from the ephemeral keys, and both static keys
//! authenticated. The server's static key is made at start, kept in memory
//! only, and bound into an NSM attestation document together with the
//! client's fresh nonce; the client verifies that document with
//! `ra-verify-core`'s code (signature, chain to a pinned root, PCRs, nonce, key
//! binding) **before** it sends anything else. The server then accepts only
//! client keys listed in its `authorized_keys` file, each with its
//! permissions. After the handshake, [`SecureStream`] carries the bytes as
//! length-prefixed Noise transport messages: AEAD on every record, record
//! numbers as nonces (so tampered, replayed and reordered records are
//! refused), an explicit end record (so a cut stream is not a clean end).
//!
//! Layout:
//! - [`handshake`]: the attested handshake ([`accept`], [`connect`]).
//! - [`record`]: the encrypted stream ([`SecureStream`], its split halves).
//! - [`attest`]: making the server's document, checking it on the client.
//! - [`keys`]: static keys and key files (`keygen`, `.pub`).
//! - [`authorized`]: the `authorized_keys` file and [`Permissions`].
//! - [`setup`]: either side built from files and flags ([`ChannelArgs`]).
//! - [`defs`]: wire constants and limits.

#![forbid(unsafe_code)]

pub mod attest;
pub mod authorized;
pub mod defs;
pub mod handshake;
pub mod keys;
pub mod record;
pub mod setup;

pub use attest::Attester;
pub use authorized::{AuthorizedKey, AuthorizedKeys, AuthorizedKeysError, Permissions};
pub use handshake::{
    Attested, ClientConfig, HandshakeError, ServerConfig, accept, accept_after_magic, connect,
};
pub use keys::{KeyError, PublicKey, StaticKey};
pub use record::{IntegrityError, SecureReader, SecureStream, SecureWriter, integrity_error};
pub use setup::{ChannelArgs, SetupError};

#[cfg(test)]
mod tests {
    #[test]
    fn noise_params_parse() {
        crate::defs::noise_params().unwrap();
    }
}
