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

/// Largest attestation document (COSE_Sign1 bytes) accepted. Nitro's are
/// about 4.5 KiB; the NSM's own response buffer is 16 KiB.
pub const MAX_DOCUMENT: usize = 16 * 1024;

/// Most certificates a document's `cabundle` may carry (Nitro's carry 4).
pub const MAX_CABUNDLE: usize = 16;

/// Most bytes of `public_key` or `nonce` (the NSM accepts 1024 each).
pub const MAX_NSM_FIELD: usize = 1024;

/// Largest root certificate file read (PEM or DER).
pub const MAX_ROOT_FILE: u64 = 64 * 1024;

/// Largest PCR file read (`.eif.pcrs` or nitro-cli's JSON).
pub const MAX_PCRS_FILE: u64 = 64 * 1024;

/// Highest PCR index the NSM has.
pub const MAX_PCR_INDEX: usize = 31;

/// The `module_id` of documents that `nsm-nitro-enclave-utils`' development
/// driver signs.
pub const DEVELOPMENT_MODULE_ID: &str = "unsecure-development-attestation-document";

/// SHA-256 fingerprint of the AWS Nitro Enclaves root certificate (G1), as
/// AWS publishes it.
pub const AWS_NITRO_ROOT_G1_SHA256: &str =
    "641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B";

/// Bytes of the random nonces the HTTPS client sends.
pub const CLIENT_NONCE_LEN: usize = 32;

/// Largest HTTP answer body the client reads (a hex document and a little
/// JSON around it).
pub const MAX_RESPONSE: usize = 2 * MAX_DOCUMENT + 4096;

/// Default limit of each HTTP exchange of the client.
pub const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest saved document file read (hexadecimal text of the largest
/// document, with white space around it).
pub const MAX_SAVED_DOCUMENT: u64 = 2 * MAX_DOCUMENT as u64 + 1024;

/// What the `x-enclave-signed` header (and this version's message tag)
/// names: the layout of [`crate::response::signed_message`].
pub const RESPONSE_SIGNED_VERSION: &str = "v1";

/// First line of every signed response message.
pub const RESPONSE_MESSAGE_TAG: &str = "enclaves-framework response signature v1";

/// Header: the Ed25519 signature, standard base64 with padding.
pub const HEADER_SIGNATURE: &str = "x-enclave-signature";

/// Header: the path in the enclave of the signing key's file.
pub const HEADER_SIGNING_KEY: &str = "x-enclave-signing-key";

/// Header: the signing key itself, 64 lowercase hexadecimal digits (the
/// file at [`HEADER_SIGNING_KEY`] holds them and a newline).
pub const HEADER_SIGNING_PUBLIC_KEY: &str = "x-enclave-signing-public-key";

/// Header: the message layout, [`RESPONSE_SIGNED_VERSION`].
pub const HEADER_SIGNED: &str = "x-enclave-signed";

/// The server-sent event that carries a stream's signature.
pub const SSE_SIGNATURE_EVENT: &str = "signature";

/// Name of the signing key's file in the key directory.
pub const RESPONSE_KEY_FILE: &str = "response-key.pub";

/// Where the inference server of the image keeps its signing key: the one
/// path `ra-verify response` accepts unless told another (`--key-path`).
pub const DEFAULT_RESPONSE_KEY_PATH: &str = "/apps/.keys/inference-server/response-key.pub";

/// Bytes of an Ed25519 public key.
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;

/// Largest request body `ra-verify response` sends, and largest saved
/// request read back.
pub const MAX_APP_REQUEST: u64 = 16 << 20;

/// Largest app response `ra-verify response` reads (and reads back).
pub const MAX_APP_RESPONSE: usize = 16 << 20;

/// Largest small evidence file read back (signature.json, the key file).
pub const MAX_EVIDENCE_FILE: u64 = 64 * 1024;
