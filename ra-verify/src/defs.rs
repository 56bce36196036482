//! Sizes, limits and names that are part of the formats.

/// Bytes read per call while hashing a file (the memory a hash job uses).
pub const HASH_CHUNK: usize = 1 << 20;

/// Length of a SHA3-512 digest.
pub const SHA3_512_LEN: usize = 64;

/// Domain tag that starts every directory manifest (see [`crate::hash`]).
pub const DIR_MANIFEST_TAG: &[u8] = b"enclaves-framework dir-sha3-512 v1\0";

/// Largest `user_data` the Nitro Secure Module accepts.
pub const MAX_USER_DATA: usize = 1024;

/// Version of the [`crate::binding::UserData`] layout.
pub const BINDING_VERSION: u32 = 1;
