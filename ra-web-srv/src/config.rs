//! Command line and configuration file, validated into one [`Config`].
//!
//! Every setting can come from a flag or from the YAML file named by
//! `--config` (same names, `-` or `_`); a flag wins over the file, the file
//! over the default. Unknown keys in the file are an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use ra_verify_core::pcrs::Profile;
use ra_verify_core::proof::Suite;
use serde::Deserialize;
use transport::Address;

use crate::defs::{
    DEFAULT_HASH_CONCURRENCY, DEFAULT_HTTP_LISTEN, DEFAULT_HTTPS_LISTEN, DEFAULT_STATE_DIR,
    DEFAULT_TLS_NAMES,
};
use crate::ingress::{self, IngressSpec};
use crate::nsm::{DevPcrs, NsmMode};
use crate::tls::TlsSource;

/// A setting that is wrong; the binary exits with status 64.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file cannot be read or parsed.
    #[error("--config {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A value is not valid.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The flag or key.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// `ra-web-srv`: attestation documents, VRF proofs and SHA3-512 hashes of
/// files over HTTPS, and for every entry of the NATS KV bucket `fs_hashes`.
#[derive(Debug, Clone, Default, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// YAML file with any of the settings below (flags win over it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTTPS listen address: HOST:PORT, tcp:HOST:PORT, unix:PATH or vsock:CID:PORT
    /// [default: tcp:127.0.0.1:8443].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Plain-HTTP listener that redirects to HTTPS (308); `off` for none
    /// [default: tcp:127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<String>,
    /// Directory for the TLS key, the VRF key and the development PKI
    /// [default: /var/lib/ra-web-srv].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// TLS certificate chain (PEM) instead of the generated one (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Names and addresses the generated certificate is issued for (repeatable)
    /// [default: localhost, 127.0.0.1, ::1].
    #[arg(long = "tls-name", value_name = "NAME")]
    pub tls_names: Vec<String>,
    /// Which NSM: auto (/dev/nsm when present, else development), nitro, development.
    #[arg(long, value_enum, value_name = "MODE")]
    pub nsm: Option<NsmMode>,
    /// PCRs of the development NSM, from a .pcrs file (`{"PCR0":"<96 hex>",...}`);
    /// default: PCR n = SHA-384("enclaves-framework development PCR n").
    #[arg(long, value_name = "FILE")]
    pub dev_pcrs: Option<PathBuf>,
    /// VRF suite: P256_SHA256_TAI (default) or SECP256K1_SHA256_TAI.
    #[arg(long, value_name = "SUITE")]
    pub vrf_suite: Option<Suite>,
    /// Directory whose files POST /generate may hash (repeatable); none: /generate refuses every path.
    #[arg(long = "root-dir", value_name = "DIR")]
    pub root_dirs: Vec<PathBuf>,
    /// NATS server; without it the server keeps documents in memory only.
    #[arg(long, value_name = "URL")]
    pub nats_url: Option<String>,
    /// Files hashed at once [default: 2].
    #[arg(long, value_name = "N")]
    pub hash_concurrency: Option<usize>,
    /// Root certificate (PEM or DER) the /verify_* endpoints check chains against;
    /// default: the AWS Nitro root, or the development root with the development NSM.
    #[arg(long, value_name = "FILE")]
    pub trust_root: Option<PathBuf>,
    /// The profile of the image this server runs in (production or debug),
    /// shown by /health; a debug image is marked loudly. In an image built
    /// by rbuilds.sh, init gives it as ENCLAVE_PROFILE.
    #[arg(long, value_name = "PROFILE", env = "ENCLAVE_PROFILE")]
    pub image_profile: Option<Profile>,
    /// TLS ingress for an application in the enclave (repeatable):
    /// `LISTEN=UPSTREAM[,name=NAME][,max-connections=N][,idle-timeout=SECS]`.
    /// TLS with this server's attested key is terminated on LISTEN and the
    /// plaintext relayed to UPSTREAM (loopback or unix:PATH).
    #[arg(long = "tls-ingress", value_name = "LISTEN=UPSTREAM[,name=NAME]")]
    pub tls_ingress: Vec<String>,
    /// File of TLS ingress entries, one per line (`#` comments, blank lines);
    /// a missing file means none.
    #[arg(long, value_name = "FILE")]
    pub tls_ingress_file: Option<PathBuf>,
}

/// The configuration file: the same settings as [`Args`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    #[serde(alias = "https_listen", alias = "https-listen")]
    listen: Option<String>,
    #[serde(alias = "http_listen")]
    http_listen: Option<String>,
    #[serde(alias = "state_dir")]
    state_dir: Option<PathBuf>,
    #[serde(alias = "tls_cert")]
    tls_cert: Option<PathBuf>,
    #[serde(alias = "tls_key")]
    tls_key: Option<PathBuf>,
    #[serde(alias = "tls_names")]
    tls_names: Option<Vec<String>>,
    nsm: Option<NsmMode>,
    #[serde(alias = "dev_pcrs")]
    dev_pcrs: Option<PathBuf>,
    #[serde(alias = "vrf_suite")]
    vrf_suite: Option<Suite>,
    #[serde(alias = "root_dirs")]
    root_dirs: Option<Vec<PathBuf>>,
    #[serde(alias = "nats_url")]
    nats_url: Option<String>,
    #[serde(alias = "hash_concurrency")]
    hash_concurrency: Option<usize>,
    #[serde(alias = "trust_root")]
    trust_root: Option<PathBuf>,
    #[serde(alias = "image_profile")]
    image_profile: Option<String>,
    #[serde(alias = "tls_ingress")]
    tls_ingress: Option<Vec<String>>,
    #[serde(alias = "tls_ingress_file")]
    tls_ingress_file: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTPS listen address.
    pub https_listen: Address,
    /// HTTP redirect listen address, if any.
    pub http_listen: Option<Address>,
    /// State directory.
    pub state_dir: PathBuf,
    /// TLS key and certificate.
    pub tls: TlsSource,
    /// NSM selection.
    pub nsm: NsmMode,
    /// PCRs of the development NSM.
    pub dev_pcrs: DevPcrs,
    /// VRF suite.
    pub vrf_suite: Suite,
    /// Directories /generate may read.
    pub root_dirs: Vec<PathBuf>,
    /// NATS server.
    pub nats_url: Option<String>,
    /// Files hashed at once.
    pub hash_concurrency: usize,
    /// Root for the /verify_* endpoints (None: see [`Args::trust_root`]).
    pub trust_root: Option<PathBuf>,
    /// The image's profile, if known.
    pub image_profile: Option<Profile>,
    /// TLS ingresses for the enclave's applications (checked: no duplicate
    /// listeners or names, no loops, upstreams on loopback).
    pub tls_ingress: Vec<IngressSpec>,
}

impl Config {
    /// A configuration for tests and embedding: development NSM, loopback
    /// listeners on ports the kernel picks, state in `state_dir`.
    pub fn development(state_dir: &Path) -> Self {
        Self {
            https_listen: Address::Tcp {
                host: "127.0.0.1".into(),
                port: 0,
            },
            http_listen: Some(Address::Tcp {
                host: "127.0.0.1".into(),
                port: 0,
            }),
            state_dir: state_dir.to_owned(),
            tls: TlsSource::Generated {
                state_dir: state_dir.to_owned(),
                names: DEFAULT_TLS_NAMES.map(String::from).to_vec(),
            },
            nsm: NsmMode::Development,
            dev_pcrs: DevPcrs::Seeded,
            vrf_suite: Suite::default(),
            root_dirs: Vec::new(),
            nats_url: None,
            hash_concurrency: DEFAULT_HASH_CONCURRENCY,
            trust_root: None,
            image_profile: None,
            tls_ingress: Vec::new(),
        }
    }
}

impl Args {
    /// Reads the configuration file, if any, and validates everything.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen = pick(self.listen, file.listen, DEFAULT_HTTPS_LISTEN);
        let https_listen = parse_address("--listen", &listen)?;
        let http_listen = pick(self.http_listen, file.http_listen, DEFAULT_HTTP_LISTEN);
        let http_listen = match http_listen.as_str() {
            "off" | "none" | "" => None,
            text => Some(parse_address("--http-listen", text)?),
        };
        let state_dir = self
            .state_dir
            .or(file.state_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let tls_cert = self.tls_cert.or(file.tls_cert);
        let tls_key = self.tls_key.or(file.tls_key);
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            (None, None) => {
                let mut names = if self.tls_names.is_empty() {
                    file.tls_names.unwrap_or_default()
                } else {
                    self.tls_names
                };
                if names.is_empty() {
                    names = DEFAULT_TLS_NAMES.map(String::from).to_vec();
                }
                TlsSource::Generated {
                    state_dir: state_dir.clone(),
                    names,
                }
            }
            _ => {
                return Err(ConfigError::Invalid {
                    setting: "--tls-cert/--tls-key",
                    reason: "give both or neither".into(),
                });
            }
        };
        let dev_pcrs = match self.dev_pcrs.or(file.dev_pcrs) {
            Some(path) => DevPcrs::Values(read_pcrs(&path)?),
            None => DevPcrs::Seeded,
        };
        let hash_concurrency = self
            .hash_concurrency
            .or(file.hash_concurrency)
            .unwrap_or(DEFAULT_HASH_CONCURRENCY);
        if hash_concurrency == 0 {
            return Err(ConfigError::Invalid {
                setting: "--hash-concurrency",
                reason: "must be at least 1".into(),
            });
        }
        let image_profile = match (self.image_profile, file.image_profile) {
            (Some(profile), _) => Some(profile),
            (None, Some(text)) => {
                Some(
                    text.parse::<Profile>()
                        .map_err(|reason| ConfigError::Invalid {
                            setting: "image-profile",
                            reason,
                        })?,
                )
            }
            (None, None) => None,
        };
        let tls_ingress = ingress_specs(
            if self.tls_ingress.is_empty() {
                file.tls_ingress.unwrap_or_default()
            } else {
                self.tls_ingress
            },
            self.tls_ingress_file.or(file.tls_ingress_file).as_deref(),
            &https_listen,
            http_listen.as_ref(),
        )?;
        Ok(Config {
            https_listen,
            http_listen,
            state_dir,
            tls,
            nsm: self.nsm.or(file.nsm).unwrap_or_default(),
            dev_pcrs,
            vrf_suite: self.vrf_suite.or(file.vrf_suite).unwrap_or_default(),
            root_dirs: if self.root_dirs.is_empty() {
                file.root_dirs.unwrap_or_default()
            } else {
                self.root_dirs
            },
            nats_url: self.nats_url.or(file.nats_url),
            hash_concurrency,
            trust_root: self.trust_root.or(file.trust_root),
            image_profile,
            tls_ingress,
        })
    }
}

/// The `--tls-ingress` entries and those of `--tls-ingress-file`, checked
/// together and against the server's own listeners.
fn ingress_specs(
    entries: Vec<String>,
    file: Option<&Path>,
    https: &Address,
    http: Option<&Address>,
) -> Result<Vec<IngressSpec>, ConfigError> {
    let mut specs = entries
        .iter()
        .map(|entry| entry.parse::<IngressSpec>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ConfigError::Invalid {
            setting: "--tls-ingress",
            reason: error.to_string(),
        })?;
    if let Some(path) = file {
        specs.extend(
            ingress::spec::read_file(path).map_err(|error| ConfigError::Invalid {
                setting: "--tls-ingress-file",
                reason: error.to_string(),
            })?,
        );
    }
    let mut own = vec![("HTTPS", https)];
    if let Some(http) = http {
        own.push(("HTTP redirect", http));
    }
    ingress::spec::check(&specs, &own).map_err(|error| ConfigError::Invalid {
        setting: "--tls-ingress",
        reason: error.to_string(),
    })?;
    Ok(specs)
}

fn pick(flag: Option<String>, file: Option<String>, default: &str) -> String {
    flag.or(file).unwrap_or_else(|| default.to_string())
}

/// `tcp:HOST:PORT`, `unix:PATH`, `vsock:CID:PORT`, or plain `HOST:PORT`.
fn parse_address(setting: &'static str, text: &str) -> Result<Address, ConfigError> {
    text.parse()
        .or_else(|_| Address::from_ip_pair(text))
        .map_err(|e| ConfigError::Invalid {
            setting,
            reason: e.to_string(),
        })
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let error = |reason: String| ConfigError::File {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_yaml_ng::from_str(&text).map_err(|e| error(e.to_string()))
}

/// PCR values from a `.pcrs` file.
fn read_pcrs(path: &Path) -> Result<BTreeMap<usize, [u8; 48]>, ConfigError> {
    let pcrs =
        ra_verify_core::pcrs::ExpectedPcrs::load(path).map_err(|e| ConfigError::Invalid {
            setting: "--dev-pcrs",
            reason: e.to_string(),
        })?;
    Ok(pcrs.values().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_file_and_flags_combine_with_flags_winning() {
        let config = Args::default().resolve().unwrap();
        assert_eq!(config.https_listen.to_string(), DEFAULT_HTTPS_LISTEN);
        assert_eq!(
            config.http_listen.map(|a| a.to_string()).as_deref(),
            Some(DEFAULT_HTTP_LISTEN)
        );
        assert_eq!(config.vrf_suite, Suite::P256Sha256Tai);
        assert_eq!(config.nsm, NsmMode::Auto);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ra.yaml");
        std::fs::write(
            &file,
            "listen: 127.0.0.1:9443\nhttp-listen: \"off\"\nnsm: development\nvrf_suite: SECP256K1_SHA256_TAI\nroot-dirs: [/data]\nhash-concurrency: 4\n",
        )
        .unwrap();
        let args = Args::try_parse_from([
            "ra-web-srv",
            "--config",
            file.to_str().unwrap(),
            "--hash-concurrency",
            "3",
        ])
        .unwrap();
        let config = args.resolve().unwrap();
        assert_eq!(config.https_listen.to_string(), "tcp:127.0.0.1:9443");
        assert!(config.http_listen.is_none());
        assert_eq!(config.nsm, NsmMode::Development);
        assert_eq!(config.vrf_suite, Suite::Secp256k1Sha256Tai);
        assert_eq!(config.root_dirs, vec![PathBuf::from("/data")]);
        assert_eq!(config.hash_concurrency, 3);
    }

    #[test]
    fn bad_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ra.yaml");
        std::fs::write(&file, "listen: 127.0.0.1:9443\nlisten_port: 1\n").unwrap();
        let args = Args {
            config: Some(file),
            ..Args::default()
        };
        let error = args.resolve().unwrap_err().to_string();
        assert!(error.contains("listen_port"), "{error}");

        let args = Args {
            listen: Some("nowhere".into()),
            ..Args::default()
        };
        assert!(args.resolve().unwrap_err().to_string().contains("--listen"));
        let args = Args {
            hash_concurrency: Some(0),
            ..Args::default()
        };
        assert!(args.resolve().is_err());
        assert!(Args::try_parse_from(["ra-web-srv", "--vrf-suite", "K163"]).is_err());
        assert!(Args::try_parse_from(["ra-web-srv", "--tls-cert", "/c"]).is_err());
    }
}
