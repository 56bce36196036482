//! The Nitro Secure Module, real or simulated, behind one async interface.
//!
//! - **nitro**: `/dev/nsm` through `nsm-nitro-enclave-utils`'s `Nitro` driver
//!   (a Nitro enclave, or QEMU's emulated NSM, whose documents are unsigned).
//! - **development**: its `DevNitro` signer, with the development PKI of
//!   [`crate::dev_pki`] and deterministic PCRs (or ones read from a `.pcrs`
//!   file). This is a simulation; every response says `"nsm":"development"`
//!   and the server warns at start. `DevNitro` only signs documents and
//!   reads PCRs: its NSM description is made up here (and marked simulated),
//!   and its random bytes come from OpenSSL's generator.
//!
//! Every NSM call blocks (an ioctl, or P-384 signing), so each runs on
//! tokio's blocking pool.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nsm_nitro_enclave_utils::api::ByteBuf;
use nsm_nitro_enclave_utils::api::nsm::{Request, Response};
use nsm_nitro_enclave_utils::driver::Driver;
use nsm_nitro_enclave_utils::driver::dev::DevNitro;
use nsm_nitro_enclave_utils::driver::nitro::Nitro;
use nsm_nitro_enclave_utils::pcr::{Pcr, PcrIndex, Pcrs};
use serde::{Deserialize, Serialize};

use crate::defs::{DEV_PCR_SEED, NSM_DEVICE, PCR_INDEXES};
use crate::dev_pki::{DevPki, DevPkiError};

/// Which NSM answers, as every response reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsmKind {
    /// The real device.
    Nitro,
    /// The development signer (a simulation).
    Development,
}

impl NsmKind {
    /// `"nitro"` or `"development"`.
    pub fn name(self) -> &'static str {
        match self {
            NsmKind::Nitro => "nitro",
            NsmKind::Development => "development",
        }
    }
}

/// Which NSM to use (`--nsm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NsmMode {
    /// `/dev/nsm` when it opens, else development.
    #[default]
    Auto,
    /// `/dev/nsm` or fail.
    Nitro,
    /// The development signer, even where `/dev/nsm` exists.
    Development,
}

/// PCR values of the development NSM.
#[derive(Debug, Clone, Default)]
pub enum DevPcrs {
    /// PCR n = SHA-384 of `"<DEV_PCR_SEED> n"`.
    #[default]
    Seeded,
    /// Given values (the rest are zeros).
    Values(BTreeMap<usize, [u8; 48]>),
}

/// What can go wrong talking to the NSM.
#[derive(Debug, thiserror::Error)]
pub enum NsmError {
    /// `--nsm nitro` but the device does not open.
    #[error("{NSM_DEVICE}: {0} (not in a Nitro enclave? --nsm development simulates one)")]
    NoDevice(std::io::Error),
    /// The development PKI could not be set up.
    #[error(transparent)]
    DevPki(#[from] DevPkiError),
    /// A PCR index or value is not one the NSM has.
    #[error("PCR{0}: {1}")]
    BadPcr(usize, String),
    /// The NSM answered with an error.
    #[error("the NSM refused {request}: {code}")]
    Refused {
        /// What was asked.
        request: &'static str,
        /// Its error code.
        code: String,
    },
    /// The NSM answered something else than asked for.
    #[error("the NSM gave an unexpected answer to {0}")]
    Unexpected(&'static str),
    /// The blocking task died.
    #[error("NSM task: {0}")]
    Task(String),
}

enum Backend {
    Nitro(Nitro),
    Development(Box<DevNitro>),
}

impl Backend {
    fn call(&self, request: Request) -> Response {
        match self {
            Backend::Nitro(driver) => driver.process_request(request),
            Backend::Development(driver) => driver.process_request(request),
        }
    }
}

/// The NSM in use.
#[derive(Clone)]
pub struct Nsm {
    kind: NsmKind,
    backend: Arc<Backend>,
    dev_root_pem: Option<PathBuf>,
}

impl std::fmt::Debug for Nsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nsm")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The NSM's description (`/nsm_desc`).
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    /// Module identifier.
    pub module_id: String,
    /// NSM version, `major.minor.patch`.
    pub version: String,
    /// Number of PCRs.
    pub max_pcrs: u16,
    /// Locked PCRs.
    pub locked_pcrs: Vec<u16>,
    /// Digest of the PCRs.
    pub digest: String,
    /// True when the description is made up by the development NSM.
    pub simulated: bool,
}

impl Nsm {
    /// Opens the NSM `mode` asks for; the development PKI lives in `state_dir`.
    pub fn open(mode: NsmMode, state_dir: &Path, dev_pcrs: &DevPcrs) -> Result<Self, NsmError> {
        let device = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(NSM_DEVICE)
                .map(drop)
        };
        let use_device = match mode {
            NsmMode::Nitro => {
                device().map_err(NsmError::NoDevice)?;
                true
            }
            NsmMode::Auto => match device() {
                Ok(()) => true,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
                Err(error) => {
                    tracing::warn!(%error, "{NSM_DEVICE} exists but does not open; using the development NSM");
                    false
                }
            },
            NsmMode::Development => false,
        };
        if use_device {
            return Ok(Self {
                kind: NsmKind::Nitro,
                backend: Arc::new(Backend::Nitro(Nitro::init())),
                dev_root_pem: None,
            });
        }
        let pki = DevPki::load_or_create(state_dir)?;
        let driver = DevNitro::builder(pki.signing_key.clone(), ByteBuf::from(pki.end_der.clone()))
            // Root first, as the Nitro NSM orders its bundle; verifiers must
            // still pin their own root rather than trust this one.
            .ca_bundle(vec![
                ByteBuf::from(pki.root_der.clone()),
                ByteBuf::from(pki.int_der.clone()),
            ])
            .pcrs(dev_pcr_values(dev_pcrs)?)
            .build();
        Ok(Self {
            kind: NsmKind::Development,
            backend: Arc::new(Backend::Development(Box::new(driver))),
            dev_root_pem: Some(pki.root_pem_path),
        })
    }

    /// Which NSM this is.
    pub fn kind(&self) -> NsmKind {
        self.kind
    }

    /// The development root certificate's PEM file (development only).
    pub fn dev_root_pem(&self) -> Option<&Path> {
        self.dev_root_pem.as_deref()
    }

    /// A COSE_Sign1 attestation document carrying the given fields.
    pub async fn attest(
        &self,
        user_data: Option<Vec<u8>>,
        nonce: Option<Vec<u8>>,
        public_key: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, NsmError> {
        let request = Request::Attestation {
            user_data: user_data.map(ByteBuf::from),
            nonce: nonce.map(ByteBuf::from),
            public_key: public_key.map(ByteBuf::from),
        };
        match self.call(request).await? {
            Response::Attestation { document } => Ok(document),
            other => Err(unexpected("Attestation", other)),
        }
    }

    /// The PCRs an enclave defines (0, 1, 2, 3, 4, 8).
    pub async fn pcrs(&self) -> Result<BTreeMap<u16, Vec<u8>>, NsmError> {
        let mut pcrs = BTreeMap::new();
        for index in PCR_INDEXES {
            match self.call(Request::DescribePCR { index }).await? {
                Response::DescribePCR { data, .. } => {
                    pcrs.insert(index, data);
                }
                other => return Err(unexpected("DescribePCR", other)),
            }
        }
        Ok(pcrs)
    }

    /// The module's description.
    pub async fn describe(&self) -> Result<Description, NsmError> {
        if self.kind == NsmKind::Development {
            return Ok(Description {
                module_id: "unsecure-development-attestation-document".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                max_pcrs: 32,
                locked_pcrs: PCR_INDEXES.to_vec(),
                digest: "SHA384".into(),
                simulated: true,
            });
        }
        match self.call(Request::DescribeNSM).await? {
            Response::DescribeNSM {
                version_major,
                version_minor,
                version_patch,
                module_id,
                max_pcrs,
                locked_pcrs,
                digest,
            } => Ok(Description {
                module_id,
                version: format!("{version_major}.{version_minor}.{version_patch}"),
                max_pcrs,
                locked_pcrs: locked_pcrs.into_iter().collect(),
                digest: format!("{digest:?}"),
                simulated: false,
            }),
            other => Err(unexpected("DescribeNSM", other)),
        }
    }

    /// `count` random bytes from the NSM (from OpenSSL in development).
    pub async fn random(&self, count: usize) -> Result<Vec<u8>, NsmError> {
        let mut bytes = Vec::with_capacity(count);
        if self.kind == NsmKind::Development {
            bytes.resize(count, 0);
            openssl::rand::rand_bytes(&mut bytes).map_err(|e| NsmError::Refused {
                request: "GetRandom",
                code: e.to_string(),
            })?;
            return Ok(bytes);
        }
        while bytes.len() < count {
            match self.call(Request::GetRandom).await? {
                Response::GetRandom { random } if !random.is_empty() => {
                    let take = random.len().min(count - bytes.len());
                    bytes.extend_from_slice(&random[..take]);
                }
                other => return Err(unexpected("GetRandom", other)),
            }
        }
        Ok(bytes)
    }

    async fn call(&self, request: Request) -> Result<Response, NsmError> {
        let backend = Arc::clone(&self.backend);
        tokio::task::spawn_blocking(move || backend.call(request))
            .await
            .map_err(|e| NsmError::Task(e.to_string()))
    }
}

fn unexpected(request: &'static str, response: Response) -> NsmError {
    match response {
        Response::Error(code) => NsmError::Refused {
            request,
            code: format!("{code:?}"),
        },
        _ => NsmError::Unexpected(request),
    }
}

/// The development NSM's PCRs.
fn dev_pcr_values(dev_pcrs: &DevPcrs) -> Result<Pcrs, NsmError> {
    let index = |n: usize| {
        PcrIndex::try_from(n).map_err(|_| {
            NsmError::BadPcr(n, "the development NSM has PCRs 0, 1, 2, 3, 4 and 8".into())
        })
    };
    match dev_pcrs {
        DevPcrs::Seeded => {
            let mut seeds = BTreeMap::new();
            for n in PCR_INDEXES {
                seeds.insert(index(usize::from(n))?, format!("{DEV_PCR_SEED} {n}"));
            }
            Ok(Pcrs::seed(seeds))
        }
        DevPcrs::Values(values) => {
            let mut pcrs = BTreeMap::new();
            for (n, value) in values {
                pcrs.insert(index(*n)?, Pcr::from(*value));
            }
            Ok(Pcrs::from(pcrs))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_development_nsm_signs_documents_and_keeps_its_pcrs() {
        let dir = tempfile::tempdir().unwrap();
        let nsm = Nsm::open(NsmMode::Development, dir.path(), &DevPcrs::Seeded).unwrap();
        assert_eq!(nsm.kind(), NsmKind::Development);
        let pcrs = nsm.pcrs().await.unwrap();
        assert_eq!(pcrs.keys().copied().collect::<Vec<_>>(), PCR_INDEXES);
        assert!(
            pcrs.values()
                .all(|v| v.len() == 48 && v.iter().any(|b| *b != 0))
        );
        let again = Nsm::open(NsmMode::Development, dir.path(), &DevPcrs::Seeded).unwrap();
        assert_eq!(again.pcrs().await.unwrap(), pcrs);

        let document = nsm
            .attest(Some(b"user".to_vec()), Some(b"nonce".to_vec()), None)
            .await
            .unwrap();
        assert!(document.len() > 500);
        assert_eq!(nsm.random(1000).await.unwrap().len(), 1000);
        assert!(nsm.describe().await.unwrap().simulated);

        let given = DevPcrs::Values(BTreeMap::from([(0, [7u8; 48])]));
        let custom = Nsm::open(NsmMode::Development, dir.path(), &given).unwrap();
        assert_eq!(custom.pcrs().await.unwrap()[&0], vec![7u8; 48]);
        assert_eq!(custom.pcrs().await.unwrap()[&1], vec![0u8; 48]);
        let wrong = DevPcrs::Values(BTreeMap::from([(5, [7u8; 48])]));
        assert!(Nsm::open(NsmMode::Development, dir.path(), &wrong).is_err());
    }

    #[test]
    fn nitro_without_the_device_is_a_clear_error() {
        if Path::new(NSM_DEVICE).exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let error = Nsm::open(NsmMode::Nitro, dir.path(), &DevPcrs::Seeded).unwrap_err();
        assert!(error.to_string().contains("/dev/nsm"), "{error}");
        let auto = Nsm::open(NsmMode::Auto, dir.path(), &DevPcrs::Seeded).unwrap();
        assert_eq!(auto.kind(), NsmKind::Development);
    }
}
