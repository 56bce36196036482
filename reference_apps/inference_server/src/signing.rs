//! Signed responses: an Ed25519 key made at start, whose public half goes
//! to a file the framework attests, and the signatures of answers.
//!
//! With `--signing-key-dir DIR` the server makes a fresh key pair with
//! ring (the private key stays in this process's memory, never on disk)
//! and writes the public key, 64 lowercase hexadecimal digits and a
//! newline, to `DIR/response-key.pub`, atomically (a temporary file in
//! DIR, fsync, rename, fsync of DIR). In the enclave DIR lies under `/apps`,
//! which fs-monitor watches, so ra-web-srv attests the file: its path and
//! SHA3-512 in an NSM attestation document. DIR must be this process's own
//! and writable by nobody else (not by its group, not by others), or
//! someone else in the enclave could put their key in its place.
//!
//! The message signed and its encodings are `ra_verify_core::response`'s, the
//! code the verifier (`ra-verify response`) runs.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use axum::http::HeaderValue;
use ra_verify_core::defs::{RESPONSE_KEY_FILE, RESPONSE_SIGNED_VERSION};
use ra_verify_core::hash::Sha3Digest;
use ra_verify_core::response::{
    ResponseError, StreamSignature, encode_signature, key_file_contents, signed_message_of_digests,
};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// Why the signing key could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The directory is not an absolute path (the path goes into the
    /// responses, and must be the one the enclave attests).
    #[error("--signing-key-dir {0}: not an absolute path")]
    NotAbsolute(PathBuf),
    /// The directory cannot be examined.
    #[error("--signing-key-dir {path}: {source}")]
    Inspect {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Not a directory (a symbolic link is refused too).
    #[error("--signing-key-dir {0}: not a directory (a symbolic link is not accepted)")]
    NotADirectory(PathBuf),
    /// Owned by another user: that user could replace the key file.
    #[error(
        "--signing-key-dir {path}: owned by uid {owner}, not by this process's uid {me}: its owner could replace the key"
    )]
    NotOwned {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// Writable by the group or by others, who could replace the key file.
    #[error(
        "--signing-key-dir {path}: mode {mode:04o} lets the group or others write it (and replace the key); use 0755 or 0700"
    )]
    Writable {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path of the key file is not valid in an HTTP header.
    #[error("--signing-key-dir {0}: the key file's path cannot go into a header")]
    BadPath(PathBuf),
    /// The key pair could not be made.
    #[error("making the Ed25519 key pair: {0}")]
    Key(String),
    /// Writing the key file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Building or hashing the message failed.
    #[error(transparent)]
    Message(#[from] ResponseError),
}

/// The server's signing key and the header values that name it.
pub struct ResponseSigner {
    pair: Ed25519KeyPair,
    key_path: String,
    public_hex: String,
    headers: SignerHeaders,
}

/// The constant headers of a signed response, made once.
struct SignerHeaders {
    signed: HeaderValue,
    key_path: HeaderValue,
    public_key: HeaderValue,
}

impl std::fmt::Debug for ResponseSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseSigner")
            .field("key_path", &self.key_path)
            .field("public_key", &self.public_hex)
            .finish_non_exhaustive()
    }
}

/// Checks that `dir` is a directory (not a link) of this process's uid that
/// neither its group nor others may write.
pub fn check_key_dir(dir: &Path) -> Result<(), SigningError> {
    if !dir.is_absolute() {
        return Err(SigningError::NotAbsolute(dir.into()));
    }
    let metadata = fs::symlink_metadata(dir).map_err(|source| SigningError::Inspect {
        path: dir.into(),
        source,
    })?;
    if !metadata.file_type().is_dir() {
        return Err(SigningError::NotADirectory(dir.into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if metadata.uid() != me {
        return Err(SigningError::NotOwned {
            path: dir.into(),
            owner: metadata.uid(),
            me,
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(SigningError::Writable {
            path: dir.into(),
            mode,
        });
    }
    Ok(())
}

impl ResponseSigner {
    /// Checks `dir` ([`check_key_dir`]), makes a fresh key pair and writes
    /// its public key to `dir/response-key.pub` atomically.
    pub fn create(dir: &Path) -> Result<Self, SigningError> {
        check_key_dir(dir)?;
        let path = dir.join(RESPONSE_KEY_FILE);
        let key_path = path
            .to_str()
            .filter(|text| HeaderValue::from_str(text).is_ok())
            .ok_or_else(|| SigningError::BadPath(path.clone()))?
            .to_string();
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|error| SigningError::Key(error.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|error| SigningError::Key(error.to_string()))?;
        let public_hex = hex::encode(pair.public_key().as_ref());
        write_atomically(dir, &path, &key_file_contents(pair.public_key().as_ref()))?;
        let header = |text: &str| {
            HeaderValue::from_str(text).map_err(|_| SigningError::BadPath(path.clone()))
        };
        let headers = SignerHeaders {
            signed: header(RESPONSE_SIGNED_VERSION)?,
            key_path: header(&key_path)?,
            public_key: header(&public_hex)?,
        };
        Ok(Self {
            pair,
            key_path,
            public_hex,
            headers,
        })
    }

    /// The key file's path, as the responses name it.
    pub fn key_path(&self) -> &str {
        &self.key_path
    }

    /// The public key, 64 lowercase hexadecimal digits.
    pub fn public_key_hex(&self) -> &str {
        &self.public_hex
    }

    /// Signs the message over the digests of a request and its response and
    /// the model hash; returns the signature in base64.
    pub fn sign_digests(
        &self,
        request: &Sha3Digest,
        response: &Sha3Digest,
        model_sha3_512_hex: &str,
    ) -> Result<String, SigningError> {
        let message = signed_message_of_digests(request, response, model_sha3_512_hex)?;
        Ok(encode_signature(self.pair.sign(&message).as_ref()))
    }

    /// The signature headers of a whole response to a request whose body
    /// hashes to `request`: `(name, value)` pairs.
    pub fn headers(
        &self,
        request: &Sha3Digest,
        response_body: &[u8],
        model_sha3_512_hex: &str,
    ) -> Result<Vec<(&'static str, HeaderValue)>, SigningError> {
        let response = Sha3Digest::of(response_body).map_err(ResponseError::from)?;
        let signature = self.sign_digests(request, &response, model_sha3_512_hex)?;
        let signature = HeaderValue::from_str(&signature)
            .map_err(|error| SigningError::Key(format!("signature header: {error}")))?;
        Ok(vec![
            (
                ra_verify_core::defs::HEADER_SIGNED,
                self.headers.signed.clone(),
            ),
            (ra_verify_core::defs::HEADER_SIGNATURE, signature),
            (
                ra_verify_core::defs::HEADER_SIGNING_KEY,
                self.headers.key_path.clone(),
            ),
            (
                ra_verify_core::defs::HEADER_SIGNING_PUBLIC_KEY,
                self.headers.public_key.clone(),
            ),
        ])
    }

    /// The headers of a signed stream (its signature comes in an event).
    pub fn stream_headers(&self) -> Vec<(&'static str, HeaderValue)> {
        vec![
            (
                ra_verify_core::defs::HEADER_SIGNED,
                self.headers.signed.clone(),
            ),
            (
                ra_verify_core::defs::HEADER_SIGNING_KEY,
                self.headers.key_path.clone(),
            ),
            (
                ra_verify_core::defs::HEADER_SIGNING_PUBLIC_KEY,
                self.headers.public_key.clone(),
            ),
        ]
    }

    /// The `event: signature` of a stream whose bytes so far hash to
    /// `response`.
    pub fn stream_event(
        &self,
        request: &Sha3Digest,
        response: &Sha3Digest,
        model_sha3_512_hex: &str,
    ) -> Result<Vec<u8>, SigningError> {
        let signature = self.sign_digests(request, response, model_sha3_512_hex)?;
        StreamSignature {
            signature,
            signing_key: self.key_path.clone(),
            public_key: self.public_hex.clone(),
            response_sha3_512: response.to_hex(),
            model_sha3_512: model_sha3_512_hex.to_string(),
        }
        .sse_event()
        .map_err(|error| SigningError::Key(format!("signature event: {error}")))
    }
}

/// Writes `bytes` to `path` (in `dir`) through a temporary file in `dir`:
/// written, fsynced, renamed over `path`, then `dir` fsynced; a reader
/// (fs-monitor) sees the old file or the whole new one.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), SigningError> {
    let temporary = dir.join(format!(".{RESPONSE_KEY_FILE}.{}.tmp", std::process::id()));
    let write_error = |source| SigningError::Write {
        path: path.into(),
        source,
    };
    let result = (|| {
        let _ = fs::remove_file(&temporary);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result.map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir_with_mode(mode: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
        dir
    }

    #[test]
    fn the_key_file_holds_the_public_key_and_signatures_verify() {
        let dir = dir_with_mode(0o755);
        let signer = ResponseSigner::create(dir.path()).unwrap();
        let path = dir.path().join(RESPONSE_KEY_FILE);
        assert_eq!(signer.key_path(), path.to_str().unwrap());
        let contents = fs::read(&path).unwrap();
        assert_eq!(
            contents,
            format!("{}\n", signer.public_key_hex()).into_bytes()
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // Nothing else left in the directory (no temporary file).
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        let model = "ab".repeat(64);
        let request = Sha3Digest::of(b"{\"a\":1}").unwrap();
        let headers = signer.headers(&request, b"{\"b\":2}", &model).unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_str().unwrap())
        };
        let message =
            ra_verify_core::response::signed_message(b"{\"a\":1}", b"{\"b\":2}", &model).unwrap();
        ra_verify_core::response::verify_response_signature(
            signer.public_key_hex(),
            &message,
            get("x-enclave-signature").unwrap(),
        )
        .unwrap();
        assert_eq!(get("x-enclave-signed"), Some("v1"));
        assert_eq!(get("x-enclave-signing-key"), Some(signer.key_path()));

        // A second start makes another key and replaces the file.
        let again = ResponseSigner::create(dir.path()).unwrap();
        assert_ne!(again.public_key_hex(), signer.public_key_hex());
        assert_eq!(
            fs::read(&path).unwrap(),
            format!("{}\n", again.public_key_hex()).into_bytes()
        );
        // A model hash that is not one is refused, not signed.
        assert!(signer.headers(&request, b"", "not a hash").is_err());
    }

    #[test]
    fn directories_others_could_write_or_swap_are_refused() {
        for mode in [0o775, 0o757, 0o777, 0o1777] {
            let dir = dir_with_mode(mode);
            let error = ResponseSigner::create(dir.path()).unwrap_err();
            assert!(matches!(error, SigningError::Writable { .. }), "{error}");
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        }
        let dir = dir_with_mode(0o755);
        assert!(matches!(
            ResponseSigner::create(Path::new("relative/dir")),
            Err(SigningError::NotAbsolute(_))
        ));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(matches!(
            ResponseSigner::create(&link),
            Err(SigningError::NotADirectory(_))
        ));
        assert!(matches!(
            ResponseSigner::create(&dir.path().join("missing")),
            Err(SigningError::Inspect { .. })
        ));
        // Owned by someone else (only root can make that here).
        if nix::unistd::geteuid().is_root() {
            let other = dir.path().join("other");
            fs::create_dir(&other).unwrap();
            fs::set_permissions(&other, fs::Permissions::from_mode(0o755)).unwrap();
            nix::unistd::chown(&other, Some(nix::unistd::Uid::from_raw(4321)), None).unwrap();
            assert!(matches!(
                ResponseSigner::create(&other),
                Err(SigningError::NotOwned { owner: 4321, .. })
            ));
        }
    }
}
