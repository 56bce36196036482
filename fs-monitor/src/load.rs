//! Reading, at start, what the bucket holds for the watched trees.
//!
//! Only keys that decode to a path under one of the roots are taken (a
//! bucket may be shared with monitors of other trees); their hashes let the
//! first scan skip puts of unchanged values, and keys whose files are gone
//! are deleted by it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_nats::jetstream::kv::Store;
use bus::BusError;
use bus::async_nats;
use bus::value::{Digest, SHA3_512_LEN, parse_hash};

/// `path -> digest` for every key under `roots`.
pub async fn load(store: &Store, roots: &[PathBuf]) -> Result<BTreeMap<PathBuf, Digest>, BusError> {
    let mut loaded = BTreeMap::new();
    for (key, value) in bus::bucket::entries(store).await? {
        let Ok(path) = bus::key::decode(&key) else {
            continue;
        };
        if !is_under(&path, roots) {
            continue;
        }
        let digest = parse_hash(&value).unwrap_or_else(|error| {
            // Not a hash: an impossible digest makes the first scan
            // rewrite it from the file (or delete it).
            tracing::warn!(key, %error, "malformed value; it will be rewritten");
            Digest([0u8; SHA3_512_LEN])
        });
        loaded.insert(path, digest);
    }
    Ok(loaded)
}

/// Whether `path` is under one of `roots`.
pub fn is_under(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}
