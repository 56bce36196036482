//! The end-to-end check of file content: XXH3-128 over the bytes of a file.
//!
//! It catches corruption, truncation and reordering in transit or on the
//! way to disk. It is not meant to stop a malicious peer, which can send
//! any digest it likes along with any content; attested hashes of content
//! are ra-web-srv's job (SHA3-512). A non-cryptographic digest keeps the
//! check off the critical path of large copies.

use xxhash_rust::xxh3::Xxh3;

/// Size of a content digest on the wire.
pub const DIGEST_LEN: usize = 16;

/// Incremental digest of a file's content.
#[derive(Clone, Default)]
pub struct ContentDigest(Xxh3);

impl ContentDigest {
    /// A digest of nothing yet.
    pub fn new() -> Self {
        Self(Xxh3::new())
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything added.
    pub fn finish(&self) -> [u8; DIGEST_LEN] {
        self.0.digest128().to_be_bytes()
    }

    /// The digest of `bytes` at once.
    pub fn of(bytes: &[u8]) -> [u8; DIGEST_LEN] {
        let mut digest = Self::new();
        digest.update(bytes);
        digest.finish()
    }
}

impl std::fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentDigest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let mut digest = ContentDigest::new();
        for chunk in data.chunks(777) {
            digest.update(chunk);
        }
        assert_eq!(digest.finish(), ContentDigest::of(&data));
        assert_ne!(ContentDigest::of(b"a"), ContentDigest::of(b"b"));
        assert_ne!(ContentDigest::of(b""), ContentDigest::of(b"\0"));
    }
}
