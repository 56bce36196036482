//! `rbuilds-tool`: the Rust half of `rbuilds.sh` (ramdisks, EIF inspection
//! and extraction, PCR file, heartbeat answer, the service of a Docker
//! image's application).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cli_support::{CancellationToken, Failure, Main, Runtime, run_main};
use rbuilds::{app, app_service, console, cpio, eif, heartbeat, pcrs};

/// Reproducible enclave image helpers.
#[derive(Debug, Parser)]
#[command(name = "rbuilds-tool", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the tree below ROOT as a newc cpio archive: sorted names, owner
    /// 0:0, one mtime, permissions 0755/0644 (by the execute bit).
    Cpio {
        /// Directory whose contents become the archive.
        #[arg(long)]
        root: PathBuf,
        /// Archive to write (replaced atomically).
        #[arg(long)]
        output: PathBuf,
        /// Modification time of every entry (seconds since the epoch).
        #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
        mtime: u32,
    },
    /// List a newc cpio archive: mode, uid:gid, mtime, size, name.
    CpioList {
        /// The archive.
        archive: PathBuf,
    },
    /// Print an EIF's header and sections as JSON.
    EifInfo {
        /// The EIF.
        eif: PathBuf,
    },
    /// Extract an EIF's kernel, command line and ramdisks into a directory;
    /// also writes `initramfs`, the ramdisks concatenated.
    EifExtract {
        /// The EIF.
        eif: PathBuf,
        /// Where to write them.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Turn eif_build's standard output into the `.eif.pcrs` JSON file.
    Pcrs {
        /// File holding eif_build's standard output.
        #[arg(long)]
        eif_build_output: PathBuf,
        /// The `.eif.pcrs` file to write.
        #[arg(long)]
        output: PathBuf,
        /// The image's profile, recorded in the file.
        #[arg(long, value_parser = pcrs::PROFILES)]
        profile: String,
    },
    /// Write the init service that runs a Docker image's application, from
    /// `docker image inspect --format '{{json .Config}}'`.
    AppService {
        /// File holding the image's JSON configuration.
        #[arg(long)]
        config: PathBuf,
        /// The service file to write.
        #[arg(long)]
        output: PathBuf,
    },
    /// Check an application's manifest (DIR/app.toml) and print it as shell
    /// assignments (APP_NAME, APP_MEMORY_MIB, APP_BINARIES, ...) for
    /// rbuilds/lib/app.sh.
    AppManifest {
        /// The application's directory.
        dir: PathBuf,
        /// The image's /etc/passwd: each service's User must be a non-root
        /// user of it.
        #[arg(long)]
        passwd: Option<PathBuf>,
        /// Write the enclave half of each published port (a vsock-to-ip
        /// service) into this directory (the image's /service).
        #[arg(long)]
        ingress_dir: Option<PathBuf>,
        /// Record the app's name in this `.eif.pcrs` file (member "App").
        #[arg(long)]
        record_pcrs: Option<PathBuf>,
    },
    /// Print the problem lines of an enclave's console (kernel messages at
    /// warning or worse, init's WARN and ERROR lines, lines without a
    /// level); fails when there is one.
    ConsoleCheck {
        /// The console log.
        console: PathBuf,
        /// A problem line the caller provoked on purpose (a refusal it
        /// tested): it must appear, and is then not a problem (repeatable).
        #[arg(long, value_name = "TEXT")]
        expected: Vec<String>,
        /// An OOM kill the caller provoked: a kernel OOM report must have
        /// killed a process of this name, and its lines are then not
        /// problems (repeatable).
        #[arg(long, value_name = "NAME")]
        expected_oom_kill: Vec<String>,
    },
    /// Print an enclave's console line by line as its writers wrote it: a
    /// kernel message printed inside one of init's lines is given its own
    /// line and init's line is joined again (for scripts that grep it).
    ConsoleLines {
        /// The console log.
        console: PathBuf,
    },
    /// Wait for the enclave's boot heartbeat on ADDRESS and answer it;
    /// prints the seconds it took.
    Heartbeat {
        /// Where to listen, e.g. `hvsock:run/vm.vsock:9000`.
        #[arg(long)]
        listen: transport::Address,
        /// Seconds to wait.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

impl Main for Cli {
    const NAME: &'static str = "rbuilds-tool";
    type Config = Command;

    fn config(self) -> anyhow::Result<Command> {
        Ok(self.command)
    }

    /// One build step; SIGINT and SIGTERM end it at once.
    fn runtime(_command: &Command) -> Runtime {
        Runtime::OneShot
    }

    async fn run(command: Command, _shutdown: CancellationToken) -> Result<u8, Failure> {
        run(command).await?;
        Ok(0)
    }
}

fn main() -> ExitCode {
    run_main::<Cli>()
}

async fn run(command: Command) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match command {
        Command::Cpio {
            root,
            output,
            mtime,
        } => {
            let summary = cpio::write_tree_to_file(&root, &output, cpio::CpioOptions { mtime })?;
            writeln!(
                stdout,
                "{}: {} entries, {} bytes",
                output.display(),
                summary.entries,
                summary.bytes
            )?;
        }
        Command::CpioList { archive } => {
            let file = std::fs::File::open(&archive)
                .with_context(|| format!("opening {}", archive.display()))?;
            let entries = cpio::list(std::io::BufReader::new(file))
                .with_context(|| archive.display().to_string())?;
            for e in entries {
                writeln!(
                    stdout,
                    "{:06o} {}:{} {} {:>10} {}",
                    e.mode, e.uid, e.gid, e.mtime, e.size, e.name
                )?;
            }
        }
        Command::EifInfo { eif: path } => {
            let info = eif::read_info(&path)?;
            writeln!(stdout, "{}", serde_json::to_string_pretty(&info)?)?;
        }
        Command::EifExtract { eif: path, out_dir } => {
            let extracted = eif::extract(&path, &out_dir)?;
            eif::concat_ramdisks(&extracted.ramdisks, &out_dir.join("initramfs"))?;
            writeln!(stdout, "{}", serde_json::to_string_pretty(&extracted)?)?;
        }
        Command::Pcrs {
            eif_build_output,
            output,
            profile,
        } => {
            let text = std::fs::read_to_string(&eif_build_output)
                .with_context(|| format!("reading {}", eif_build_output.display()))?;
            let pcrs = pcrs::from_eif_build_output(&text, &profile)?;
            let json = serde_json::to_string_pretty(&pcrs)? + "\n";
            std::fs::write(&output, json)
                .with_context(|| format!("writing {}", output.display()))?;
        }
        Command::AppService { config, output } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            let service = app_service::render(&app_service::ImageConfig::from_json(&text)?)?;
            std::fs::write(&output, service)
                .with_context(|| format!("writing {}", output.display()))?;
        }
        Command::AppManifest {
            dir,
            passwd,
            ingress_dir,
            record_pcrs,
        } => {
            let manifest = app::Manifest::load(&dir, passwd.as_deref())?;
            if let Some(out_dir) = ingress_dir {
                std::fs::create_dir_all(&out_dir)
                    .with_context(|| format!("creating {}", out_dir.display()))?;
                for (name, text) in manifest.ingress_services() {
                    let path = out_dir.join(format!("{name}.service"));
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                if let Some(text) = manifest.tls_ingress() {
                    let path = out_dir.join("tls-ingress");
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            if let Some(path) = record_pcrs {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let text = app::record_in_pcrs(&text, &manifest.name).map_err(|reason| {
                    app::AppError::Pcrs {
                        path: path.clone(),
                        reason,
                    }
                })?;
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            write!(stdout, "{}", manifest.shell())?;
        }
        Command::ConsoleCheck {
            console: path,
            expected,
            expected_oom_kill,
        } => {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let (found, missing) = console::problems_expecting_oom(
                &String::from_utf8_lossy(&bytes),
                &expected,
                &expected_oom_kill,
            );
            for problem in &found {
                writeln!(stdout, "{problem}")?;
            }
            for text in &missing {
                writeln!(stdout, "expected, not found: {text}")?;
            }
            if !found.is_empty() || !missing.is_empty() {
                anyhow::bail!(
                    "{}: {} problem line(s), {} expected line(s) missing",
                    path.display(),
                    found.len(),
                    missing.len()
                );
            }
        }
        Command::ConsoleLines { console: path } => {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            for line in console::untangle(&String::from_utf8_lossy(&bytes)) {
                writeln!(stdout, "{}", line.text)?;
            }
        }
        Command::Heartbeat { listen, timeout } => {
            let took = heartbeat::answer(&listen, Duration::from_secs(timeout)).await?;
            writeln!(stdout, "{:.2}", took.as_secs_f64())?;
        }
    }
    Ok(())
}
