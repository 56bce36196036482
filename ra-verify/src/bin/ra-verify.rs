//! `ra-verify`: checks an enclave's attestation document, fetched from a
//! running ra-web-srv over HTTPS or read from a saved file, and TLS
//! endpoints that must present the server's attested key (`doc`), or a
//! response of an app signed by a key whose file the enclave attests
//! (`response`), and prints one line per check and a verdict.
//!
//! Exit status: 0 every check passed, 1 a check failed, 64 bad usage or
//! configuration, 69 the server could not be reached.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use cli_support::{CancellationToken, EXIT_USAGE, Failure, Main, Runtime, run_main};
use ra_verify::client::{self, Request};
use ra_verify::defs::{
    CLIENT_TIMEOUT, DEFAULT_RESPONSE_KEY_PATH, MAX_APP_REQUEST, MAX_SAVED_DOCUMENT,
    RESPONSE_KEY_FILE,
};
use ra_verify::files::read_limited;
use ra_verify::hash::Sha3Digest;
use ra_verify::pcrs::{Profile, profile_check};
use ra_verify::response;
use ra_verify::verify::{Binding, Check, LocalHash, file_hash_check};
use ra_verify::{ExpectedPcrs, Policy, Report, Root, verify_saved};

/// Exit status when a check failed.
const EXIT_FAILED: u8 = 1;
/// Exit status when the server cannot be reached (sysexits EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

/// Verify enclave attestation documents (AWS Nitro, development or QEMU).
#[derive(Debug, Parser)]
#[command(name = "ra-verify", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify the document of one path: fetched from a server (--url) or
    /// saved in a file (--document); and TLS endpoints that must present
    /// the server's attested key (--endpoint).
    Doc(DocArgs),
    /// Verify a signed response of an app in the enclave: send a request
    /// (--app-url, --data) and check the signature by the attested key of
    /// --key-path, or re-check saved evidence (--evidence).
    Response(ResponseArgs),
}

/// What a verifier trusts: shared by `doc` and `response`.
#[derive(Debug, Args)]
struct TrustArgs {
    /// Expected PCRs: the .eif.pcrs file the image build wrote, or
    /// nitro-cli's JSON.
    #[arg(long, value_name = "FILE.pcrs")]
    pcrs: Option<PathBuf>,
    /// The image must be of this profile (production or debug), as the
    /// --pcrs file records it; needs --pcrs.
    #[arg(long, value_name = "PROFILE", requires = "pcrs")]
    require_profile: Option<Profile>,
    /// Pin this root certificate (PEM or DER) instead of the bundled AWS
    /// Nitro Enclaves root; a development server's is <state>/dev-root.pem.
    #[arg(long, value_name = "CERT")]
    root: Option<PathBuf>,
    /// Accept unsigned documents (QEMU's emulated NSM); they prove nothing
    /// about where they were made.
    #[arg(long)]
    allow_unsigned: bool,
}

impl TrustArgs {
    /// The policy these flags describe (root, PCRs, unsigned documents).
    fn policy(&self) -> anyhow::Result<Policy> {
        let root = self
            .root
            .as_deref()
            .map(Root::load)
            .transpose()
            .context("--root")?;
        let pcrs = self
            .pcrs
            .as_deref()
            .map(ExpectedPcrs::load)
            .transpose()
            .context("--pcrs")?;
        Ok(Policy {
            root,
            allow_unsigned: self.allow_unsigned,
            pcrs,
            ..Policy::default()
        })
    }
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["app_url", "evidence"])))]
struct ResponseArgs {
    /// The ra-web-srv to ask, https://HOST:PORT: its TLS key and the
    /// document of the signing key's file are checked.
    #[arg(long, requires = "app_url")]
    url: Option<String>,
    /// The app's URL, https://HOST:PORT/PATH (behind ra-web-srv's TLS
    /// ingress); the request is POSTed there as application/json.
    #[arg(long, value_name = "URL", requires_all = ["url", "data"])]
    app_url: Option<String>,
    /// The request body to send (its exact bytes are signed).
    #[arg(long, value_name = "FILE", requires = "app_url")]
    data: Option<PathBuf>,
    /// Save the request, the response, the signature, the key file and the
    /// key file's document in DIR, to check later with --evidence.
    #[arg(long, value_name = "DIR", requires = "app_url")]
    out: Option<PathBuf>,
    /// Re-check evidence saved with --out, offline.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["url", "app_url", "data", "out", "nonce"])]
    evidence: Option<PathBuf>,
    /// The path in the enclave the signing key's file must have.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_RESPONSE_KEY_PATH)]
    key_path: String,
    /// A local copy of the model: its SHA3-512 must be the one the
    /// response names.
    #[arg(long, value_name = "FILE")]
    model_file: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
    /// Ask for a fresh document of the key file, carrying a random nonce.
    #[arg(long)]
    nonce: bool,
    /// Seconds each exchange with ra-web-srv may take.
    #[arg(long, value_name = "SECS", default_value_t = CLIENT_TIMEOUT.as_secs())]
    timeout: u64,
    /// Seconds the app may take to answer (a generation can be slow).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    app_timeout: u64,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["url", "document"])))]
struct DocArgs {
    /// The ra-web-srv to ask, https://HOST:PORT (its TLS key is checked
    /// against a fresh attestation document); needs --path or --endpoint.
    #[arg(long)]
    url: Option<String>,
    /// With --url: a TLS endpoint, https://HOST:PORT, that must present the
    /// key the server's verified /tls_doc/ document binds (an application
    /// behind ra-web-srv's TLS ingress); repeatable, PASS or FAIL each.
    #[arg(long = "endpoint", value_name = "URL", requires = "url")]
    endpoints: Vec<String>,
    /// A saved document to verify offline (hexadecimal as /doc/?view=hex
    /// returns it, or raw COSE_Sign1 bytes).
    #[arg(long, conflicts_with_all = ["url", "nonce"])]
    document: Option<PathBuf>,
    /// The path in the enclave; the document must bind this path.
    #[arg(long)]
    path: Option<String>,
    #[command(flatten)]
    trust: TrustArgs,
    /// Ask for a fresh document carrying a random nonce, and check it.
    #[arg(long)]
    nonce: bool,
    /// With --document: the nonce (hexadecimal) the document must carry.
    #[arg(long, value_name = "HEX", requires = "document")]
    expect_nonce: Option<String>,
    /// A local copy of the file (or directory): its SHA3-512 must be the
    /// attested one.
    #[arg(long, value_name = "LOCAL")]
    file: Option<PathBuf>,
    /// With --document: a document made by other software; its user_data
    /// is not checked (signature, chain, PCRs and nonce still are).
    #[arg(long, requires = "document", conflicts_with_all = ["path", "file"])]
    any_user_data: bool,
    /// Seconds each HTTP exchange may take.
    #[arg(long, value_name = "SECS", default_value_t = CLIENT_TIMEOUT.as_secs())]
    timeout: u64,
}

/// What to verify, validated.
enum Source {
    Url(Request),
    Saved(PathBuf),
}

/// A subcommand with its arguments validated (one value per run: its
/// variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
enum Job {
    Doc {
        source: Source,
        policy: Policy,
        required_profile: Option<Profile>,
    },
    Response(ResponseConfig),
}

impl Main for Cli {
    const NAME: &'static str = "ra-verify";
    type Config = Job;

    fn log_level(&self) -> &'static str {
        "warn"
    }

    fn config(self) -> anyhow::Result<Job> {
        Ok(match self.command {
            Command::Doc(args) => {
                let required_profile = args.trust.require_profile;
                let (source, policy) = configure(args)?;
                Job::Doc {
                    source,
                    policy,
                    required_profile,
                }
            }
            Command::Response(args) => Job::Response(ResponseConfig::new(args)?),
        })
    }

    /// One verification; SIGINT and SIGTERM end it at once.
    fn runtime(_job: &Job) -> Runtime {
        Runtime::OneShot
    }

    async fn run(job: Job, _shutdown: CancellationToken) -> Result<u8, Failure> {
        let report = match job {
            Job::Doc {
                source,
                policy,
                required_profile,
            } => doc(source, policy, required_profile).await?,
            Job::Response(config) => response(&config).await?,
        };
        Ok(print(&report))
    }
}

fn main() -> ExitCode {
    run_main::<Cli>()
}

/// `ra-verify doc`.
async fn doc(
    source: Source,
    policy: Policy,
    required_profile: Option<Profile>,
) -> Result<Report, Failure> {
    let mut report = match source {
        Source::Saved(path) => match read_limited(&path, MAX_SAVED_DOCUMENT) {
            Ok(bytes) => verify_saved(&bytes, &policy),
            Err(error) => {
                return Err(Failure::usage(anyhow!(
                    "document {}: {error}",
                    path.display()
                )));
            }
        },
        Source::Url(request) => client::verify_url(&request, &policy)
            .await
            .map_err(client_failure)?,
    };
    push_profile(&mut report, &policy, required_profile);
    Ok(report)
}

/// The `profile` check, when a PCR file was given.
fn push_profile(report: &mut Report, policy: &Policy, required: Option<Profile>) {
    if let Some(expected) = &policy.pcrs
        && let Some(check) = profile_check(expected, report.check("pcrs"), required)
    {
        report.push(check);
    }
}

/// A failure of ra-web-srv or the app: exit 69 when unreachable, 64 for
/// a bad URL, 1 otherwise.
fn client_failure(error: client::ClientError) -> Failure {
    let code = match error {
        client::ClientError::Unreachable { .. } => EXIT_UNAVAILABLE,
        client::ClientError::BadUrl { .. } => EXIT_USAGE,
        _ => EXIT_FAILED,
    };
    Failure::with_code(code, anyhow!("{error}"))
}

/// `ra-verify response`.
async fn response(config: &ResponseConfig) -> Result<Report, Failure> {
    let outcome = match &config.source {
        ResponseSource::Evidence(dir) => response_offline(config, dir),
        ResponseSource::Online { .. } => response_online(config).await,
    };
    outcome.map_err(|failure| match failure {
        ResponseFailure::Client(error) => client_failure(error),
        ResponseFailure::Usage(error) => Failure::usage(error),
        ResponseFailure::Other(error) => Failure::with_code(EXIT_FAILED, error),
    })
}

/// Where `ra-verify response` gets the exchange.
enum ResponseSource {
    Online {
        request: Request,
        app_url: String,
        data: Vec<u8>,
        out: Option<PathBuf>,
        app_timeout: Duration,
    },
    Evidence(PathBuf),
}

/// `ra-verify response`'s arguments, validated.
struct ResponseConfig {
    source: ResponseSource,
    policy: Policy,
    required_profile: Option<Profile>,
    key_path: String,
    model_file: Option<LocalHash>,
}

/// Why `ra-verify response` could not report.
enum ResponseFailure {
    /// Bad usage or an unreadable input (exit 64).
    Usage(anyhow::Error),
    /// ra-web-srv or the app (exit 1, 64 or 69 by kind).
    Client(client::ClientError),
    /// Anything else (exit 1).
    Other(anyhow::Error),
}

impl ResponseConfig {
    fn new(args: ResponseArgs) -> anyhow::Result<Self> {
        let mut policy = args.trust.policy()?;
        policy.path = Some(args.key_path.clone());
        let model_file = args
            .model_file
            .as_deref()
            .map(LocalHash::of_path)
            .transpose()
            .context("--model-file")?;
        let source = match (args.app_url, args.evidence) {
            (Some(app_url), None) => {
                let (Some(url), Some(data)) = (args.url, args.data) else {
                    bail!("--app-url needs --url and --data");
                };
                if args.timeout == 0 || args.app_timeout == 0 {
                    bail!("--timeout and --app-timeout must be at least 1 second");
                }
                client::Endpoint::parse(&app_url).context("--app-url")?;
                let data = read_limited(&data, MAX_APP_REQUEST)
                    .with_context(|| format!("--data {}", data.display()))?;
                ResponseSource::Online {
                    request: Request {
                        url,
                        path: Some(args.key_path.clone()),
                        endpoints: vec![app_url.clone()],
                        fresh_nonce: args.nonce,
                        timeout: Duration::from_secs(args.timeout),
                    },
                    app_url,
                    data,
                    out: args.out,
                    app_timeout: Duration::from_secs(args.app_timeout),
                }
            }
            (None, Some(dir)) => ResponseSource::Evidence(dir),
            _ => bail!("give either --app-url (with --url and --data) or --evidence"),
        };
        Ok(Self {
            source,
            policy,
            required_profile: args.trust.require_profile,
            key_path: args.key_path,
            model_file,
        })
    }
}

/// The response's checks after the document's: `file_hash` of the key
/// file (in place of the skipped one), `signing_key`, `response_signature`,
/// `model_file`.
fn add_exchange_checks(
    report: &mut Report,
    checks: &response::ExchangeChecks,
    key_file: Option<&LocalHash>,
    model_file: Option<&LocalHash>,
) {
    if let (Some(document), Some(key_file)) = (&report.document, key_file) {
        let check = file_hash_check(document, key_file);
        report.replace(check);
    }
    report.push(checks.signing_key.clone());
    report.push(checks.response_signature.clone());
    report.push(response::model_file_check(
        checks.model_sha3_512.as_deref(),
        model_file,
    ));
}

fn response_offline(config: &ResponseConfig, dir: &Path) -> Result<Report, ResponseFailure> {
    let evidence = response::Evidence::load(dir)
        .map_err(|error| ResponseFailure::Usage(anyhow::anyhow!("--evidence: {error}")))?;
    let mut checks = response::check_exchange(&evidence.exchange(), &config.key_path);
    response::saved_key_file_check(&mut checks, evidence.key_file.as_deref());
    let key_file = match &evidence.key_file {
        Some(bytes) => Some(LocalHash {
            label: format!("the saved {RESPONSE_KEY_FILE}"),
            digest: Sha3Digest::of(bytes).map_err(|error| ResponseFailure::Other(error.into()))?,
        }),
        None => None,
    };
    let document = evidence.document.unwrap_or_default();
    let mut report = ra_verify::verify(&document, &config.policy);
    push_profile(&mut report, &config.policy, config.required_profile);
    add_exchange_checks(
        &mut report,
        &checks,
        key_file.as_ref(),
        config.model_file.as_ref(),
    );
    Ok(report)
}

async fn response_online(config: &ResponseConfig) -> Result<Report, ResponseFailure> {
    let ResponseSource::Online {
        request,
        app_url,
        data,
        out,
        app_timeout,
    } = &config.source
    else {
        return Err(ResponseFailure::Other(anyhow::anyhow!(
            "not an online check"
        )));
    };
    let verified = client::verify_url_detailed(request, &config.policy)
        .await
        .map_err(ResponseFailure::Client)?;
    let mut report = verified.report.clone();
    push_profile(&mut report, &config.policy, config.required_profile);
    if !report.passed() {
        // The request may be confidential: never send it to an enclave that
        // failed its checks, a profile it must have included, or to
        // something that is not the enclave.
        for name in ["signing_key", "response_signature"] {
            report.push(Check::skip(
                name,
                "the request was not sent: the enclave's checks above failed",
            ));
        }
        return Ok(report);
    }
    let answer = client::post_app(app_url, data.clone(), *app_timeout)
        .await
        .map_err(ResponseFailure::Client)?;
    report
        .push(verified.session_check(&format!("{app_url}: the answer's session's"), &answer.spki));
    let stream = answer
        .header("content-type")
        .is_some_and(|value| value.starts_with("text/event-stream"));
    let exchange = response::Exchange {
        request: data.clone(),
        response: answer.body.clone(),
        stream,
        headers: if answer.status == 200 {
            response::ResponseSignature::from_headers(|name| answer.header(name))
        } else {
            let start = String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
                .replace(['\r', '\n'], " ");
            Err(format!(
                "the app answered {} (errors are not signed): {start}",
                answer.status
            ))
        },
    };
    let mut checks = response::check_exchange(&exchange, &config.key_path);
    if answer.status != 200 && stream {
        checks.response_signature = Check::fail(
            "response_signature",
            format!("the app answered {}", answer.status),
        );
    }
    let key_file = checks.key_file_hash();
    add_exchange_checks(
        &mut report,
        &checks,
        key_file.as_ref(),
        config.model_file.as_ref(),
    );
    if let Some(dir) = out {
        let evidence = response::Evidence {
            request: data.clone(),
            response: answer.body,
            stream,
            signature: checks.claim.clone(),
            key_file: checks
                .public_key
                .map(|key| response::key_file_contents(&key)),
            document: verified.document,
        };
        evidence
            .save(dir)
            .map_err(|error| ResponseFailure::Other(anyhow::anyhow!("--out: {error}")))?;
    }
    Ok(report)
}

/// Prints the checks and the verdict; returns the exit status.
fn print(report: &Report) -> u8 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    for check in &report.checks {
        text.push_str(&format!("{check}\n"));
    }
    text.push_str(&report.verdict());
    text.push('\n');
    // A closed stdout (`| head`) is not an error.
    let _ = out.write_all(text.as_bytes());
    if report.passed() { 0 } else { EXIT_FAILED }
}

/// Validates the arguments into what to verify and the policy.
fn configure(args: DocArgs) -> anyhow::Result<(Source, Policy)> {
    let trusted = args.trust.policy()?;
    let file_hash = args
        .file
        .as_deref()
        .map(LocalHash::of_path)
        .transpose()
        .context("--file")?;
    let nonce = args
        .expect_nonce
        .as_deref()
        .map(|text| hex::decode(text.trim()).context("--expect-nonce is not hexadecimal"))
        .transpose()?;
    let policy = Policy {
        path: args.path.clone(),
        file_hash,
        nonce,
        binding: if args.any_user_data {
            Binding::Any
        } else {
            Binding::File
        },
        ..trusted
    };
    let source = match (args.url, args.document) {
        (Some(url), None) => {
            if args.path.is_none() && args.endpoints.is_empty() {
                bail!("--url needs --path, --endpoint or both");
            }
            if args.path.is_none() && args.file.is_some() {
                bail!("--file needs --path");
            }
            if args.timeout == 0 {
                bail!("--timeout must be at least 1 second");
            }
            for endpoint in &args.endpoints {
                client::Endpoint::parse(endpoint).context("--endpoint")?;
            }
            Source::Url(Request {
                url,
                path: args.path,
                endpoints: args.endpoints,
                fresh_nonce: args.nonce,
                timeout: Duration::from_secs(args.timeout),
            })
        }
        (None, Some(document)) => {
            if !args.endpoints.is_empty() {
                bail!("--endpoint needs --url (the server whose /tls_doc/ binds the key)");
            }
            Source::Saved(document)
        }
        _ => bail!("give either --url or --document"),
    };
    Ok((source, policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
