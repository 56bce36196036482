//! Values of the [`FS_HASHES`](crate::FS_HASHES) bucket.
//!
//! A value is the file's SHA3-512 as 128 lowercase hexadecimal ASCII
//! characters (what Sentient stored). A removed file has no value: its key
//! gets a KV delete (or purge) marker, which a watcher sees as an entry with
//! [`Operation::Delete`] or [`Operation::Purge`] and an empty value. Read
//! entries with [`read_entry`], which never mistakes a marker for a hash.

use std::path::PathBuf;

use async_nats::jetstream::kv::{Entry, Operation};
use bytes::Bytes;

use crate::key::{self, KeyError};

/// Length of a value: two hex digits per digest byte.
pub const HASH_VALUE_LEN: usize = SHA3_512_LEN * 2;

/// Length of a SHA3-512 digest in bytes.
pub use ra_verify_core::defs::SHA3_512_LEN;

/// A SHA3-512 digest: `ra_verify_core`'s type, the one the attestation
/// server proves and binds (its serde form, a hex string, is not the
/// bucket's value format: [`hash_value`] is).
pub use ra_verify_core::hash::Sha3Digest as Digest;

/// A value or entry that is not in the bucket's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not 128 lowercase hexadecimal digits.
    #[error("a fs_hashes value is {HASH_VALUE_LEN} lowercase hex digits; got {len} byte(s)")]
    BadHash {
        /// Length of what was found.
        len: usize,
    },
    /// The key is not an encoded path.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The value stored for `digest`.
pub fn hash_value(digest: &Digest) -> Bytes {
    Bytes::from(digest.to_hex())
}

/// The digest in `value`; only exactly what [`hash_value`] writes is
/// accepted (no whitespace, no uppercase).
pub fn parse_hash(value: &[u8]) -> Result<Digest, ValueError> {
    let bad = || ValueError::BadHash { len: value.len() };
    if value.len() != HASH_VALUE_LEN
        || !value.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad());
    }
    let mut digest = [0u8; SHA3_512_LEN];
    hex::decode_to_slice(value, &mut digest).map_err(|_| bad())?;
    Ok(Digest(digest))
}

/// What an entry of the bucket says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashChange {
    /// The file has this hash.
    Put(Digest),
    /// The file is gone.
    Removed,
}

/// The path an entry is about and what it says.
pub fn read_entry(entry: &Entry) -> Result<(PathBuf, HashChange), ValueError> {
    let path = key::decode(&entry.key)?;
    let change = match entry.operation {
        Operation::Put => HashChange::Put(parse_hash(&entry.value)?),
        Operation::Delete | Operation::Purge => HashChange::Removed,
    };
    Ok((path, change))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_only_canonical_ones_parse() {
        let mut digest = [0u8; SHA3_512_LEN];
        digest[0] = 0xab;
        digest[63] = 0x01;
        let digest = Digest(digest);
        let value = hash_value(&digest);
        assert_eq!(value.len(), HASH_VALUE_LEN);
        assert!(value.starts_with(b"ab00") && value.ends_with(b"0001"));
        assert_eq!(parse_hash(&value).unwrap(), digest);
        let upper = value.to_ascii_uppercase();
        assert_eq!(parse_hash(&upper), Err(ValueError::BadHash { len: 128 }));
        let mut spaced = value.to_vec();
        spaced.push(b'\n');
        assert_eq!(parse_hash(&spaced), Err(ValueError::BadHash { len: 129 }));
        assert_eq!(parse_hash(b""), Err(ValueError::BadHash { len: 0 }));
    }
}
