//! `airlock-agent`: the device agent for Linux gateways.
//!
//! - `airlock-agent run --config /etc/airlock/agent.toml`: runs until SIGTERM/SIGINT.
//! - `airlock-agent provision --config ... [--force]`: creates the flash file from the
//!   `[provision]` section and prints the device's public key for enrolment.
//!
//! Logs: `RUST_LOG` (default `info`). Exit status: 0 stopped or rebooting, 1 error, 3
//! decommissioned (the systemd unit does not restart on 3).

use airlock_agent::provision::provision_file;
use airlock_agent::{AgentConfig, AgentError, Exit, FileFlash, Runtime};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status after decommissioning.
const DECOMMISSIONED: u8 = 3;

#[derive(Debug, Parser)]
#[command(name = "airlock-agent", version, about = "Airlock device agent for Linux gateways")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to the broker and serve updates.
    Run {
        /// The agent's config file.
        #[arg(long, env = "AIRLOCK_AGENT_CONFIG", default_value = "/etc/airlock/agent.toml")]
        config: PathBuf,
    },
    /// Create the flash file: factory image in slot A, identity, TrustRoot.
    Provision {
        /// The agent's config file (with a [provision] section).
        #[arg(long, env = "AIRLOCK_AGENT_CONFIG", default_value = "/etc/airlock/agent.toml")]
        config: PathBuf,
        /// Replace an existing flash file (forgets every update and sequence number).
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs on stderr: stdout carries only what a script reads (the provisioned public key).
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::Provision { config, force } => provision(config, force),
    };
    match result {
        Ok(Exit::Decommissioned) | Err(AgentError::Decommissioned) => {
            tracing::warn!("decommissioned: not restarting");
            ExitCode::from(DECOMMISSIONED)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "airlock-agent failed");
            ExitCode::FAILURE
        }
    }
}

fn run(path: PathBuf) -> Result<Exit, AgentError> {
    let config = AgentConfig::load(&path)?;
    let flash_path = config.flash_path();
    if !flash_path.exists() {
        return Err(AgentError::Config(format!(
            "{} does not exist: run `airlock-agent provision` first",
            flash_path.display()
        )));
    }
    let flash = FileFlash::open(&flash_path, config.flash_size())?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AgentError::Task(format!("tokio: {e}")))?;
    tokio.block_on(async move {
        let mut handle = Some(Runtime::start(config, flash)?);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| AgentError::Task(format!("signal handler: {e}")))?;
        loop {
            let Some(h) = handle.take() else {
                return Err(AgentError::Task("runtime handle lost".into()));
            };
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: stopping");
                    return h.stop().await;
                }
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!("SIGINT: stopping");
                    return h.stop().await;
                }
                () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                    if !h.is_finished() {
                        handle = Some(h);
                        continue;
                    }
                    let exit = h.join().await?;
                    if let Exit::Rebooting { slot } = exit {
                        // Exiting now would let systemd restart the agent before the reboot, and
                        // that start would count as the test boot. Wait to be stopped instead.
                        tracing::info!(slot, "reboot requested: waiting for the system to stop the agent");
                        tokio::select! {
                            _ = term.recv() => {}
                            _ = tokio::signal::ctrl_c() => {}
                        }
                    }
                    return Ok(exit);
                }
            }
        }
    })
}

fn provision(path: PathBuf, force: bool) -> Result<Exit, AgentError> {
    let config = AgentConfig::load(&path)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| AgentError::Task(format!("clock: {e}")))?
        .as_secs();
    let done = provision_file(&config, force, now)?;
    tracing::info!(
        device = %config.device_id,
        version = %done.version,
        bytes = done.size,
        flash = %config.flash_path().display(),
        "provisioned"
    );
    // The one line the enrolment step needs, on stdout.
    println!("{} {}", config.device_id, hex::encode(done.public_key.0));
    Ok(Exit::Stopped)
}
