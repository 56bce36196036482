//! `ra-verify`: checks an enclave's attestation document, fetched from a
//! running ra-web-srv over HTTPS or read from a saved file, and TLS
//! endpoints that must present the server's attested key, and prints one
//! line per check and a verdict.
//!
//! Exit status: 0 every check passed, 1 a check failed, 64 bad usage or
//! configuration, 69 the server could not be reached.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use cli_support::{EXIT_USAGE, init_tracing, parse_args};
use ra_verify::client::{self, Request};
use ra_verify::defs::{CLIENT_TIMEOUT, MAX_SAVED_DOCUMENT};
use ra_verify::files::read_limited;
use ra_verify::pcrs::{Profile, profile_check};
use ra_verify::verify::{Binding, LocalHash};
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
    /// Accept unsigned documents (QEMU's emulated NSM); they prove nothing
    /// about where they were made.
    #[arg(long)]
    allow_unsigned: bool,
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

fn main() -> ExitCode {
    init_tracing("warn");
    let cli: Cli = match parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let Command::Doc(args) = cli.command;
    let required_profile = args.require_profile;
    let (source, policy) = match configure(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ra-verify: {error:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut report = match source {
        Source::Saved(path) => match read_limited(&path, MAX_SAVED_DOCUMENT) {
            Ok(bytes) => verify_saved(&bytes, &policy),
            Err(error) => {
                eprintln!("ra-verify: document {}: {error}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
        },
        Source::Url(request) => match fetch(&request, &policy) {
            Ok(report) => report,
            Err(error) => {
                eprintln!("ra-verify: {error}");
                return ExitCode::from(match error {
                    client::ClientError::Unreachable { .. } => EXIT_UNAVAILABLE,
                    client::ClientError::BadUrl { .. } => EXIT_USAGE,
                    _ => EXIT_FAILED,
                });
            }
        },
    };
    if let Some(expected) = &policy.pcrs
        && let Some(check) = profile_check(expected, report.check("pcrs"), required_profile)
    {
        report.push(check);
    }
    print(&report)
}

fn fetch(request: &Request, policy: &Policy) -> Result<Report, client::ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| client::ClientError::Tls(format!("async runtime: {error}")))?;
    runtime.block_on(client::verify_url(request, policy))
}

fn print(report: &Report) -> ExitCode {
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
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// Validates the arguments into what to verify and the policy.
fn configure(args: DocArgs) -> anyhow::Result<(Source, Policy)> {
    let root = args
        .root
        .as_deref()
        .map(Root::load)
        .transpose()
        .context("--root")?;
    let pcrs = args
        .pcrs
        .as_deref()
        .map(ExpectedPcrs::load)
        .transpose()
        .context("--pcrs")?;
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
        root,
        allow_unsigned: args.allow_unsigned,
        pcrs,
        path: args.path.clone(),
        file_hash,
        nonce,
        binding: if args.any_user_data {
            Binding::Any
        } else {
            Binding::File
        },
        ..Policy::default()
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
