//! `airlock`: the command line. `airlock serve` runs the controller; every other command is a
//! client of its HTTP API (`docs/api.md`), except `policy check` and `keys new|show`, which work
//! on local files. Approvers sign here, with their own key file: the manifest is decoded and its
//! digest computed locally, never taken from the server's summary.
//!
//! Output is for people by default; `--json` prints the server's JSON instead (exit codes are the
//! same). A non-2xx answer prints `error: <the server's message> (HTTP status)` and exits 1; a
//! usage error exits 2.
//!
//! # Layout
//! - this file: the command-line grammar (clap) and dispatch.
//! - [`client`]: the HTTP client and one function per API call.
//! - [`types`]: mirrors of the server's answers.
//! - [`spec_file`]: reading a proposal spec from TOML or JSON.
//! - [`manifest`]: local decoding and digest checks of what approvers sign.
//! - [`render`], [`card`]: output formatting; the approval card.
//! - `serve`, `proposals`, `decide`, `policy`, `keys`, `devices`, `artifacts`, `audit`,
//!   `metrics`: the command groups.
//! - [`error`]: [`CliError`] and exit codes.

pub mod card;
pub mod client;
pub mod error;
pub mod manifest;
pub mod render;
pub mod spec_file;
pub mod types;

mod artifacts;
mod audit;
mod decide;
mod devices;
mod keys;
mod metrics;
mod policy;
mod proposals;
pub mod serve;

pub use decide::{decide, submit};
pub use error::CliError;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use std::io::Write as _;
use std::path::PathBuf;

const OVERVIEW: &str = "\
Getting started:
  airlock serve                                   first run: prints users, tokens and key files
  export AIRLOCK_TOKEN=<a token it printed>
  airlock explain --file examples/proposals/firmware-canary.toml
  airlock propose --file examples/proposals/firmware-canary.toml
  airlock queue
  airlock show 1
  airlock approve 1 --key airlock-data/keys/users/alice.key

Every command that talks to the controller needs --token (or AIRLOCK_TOKEN).
'airlock <command> --help' shows examples.";

/// Airlock: IoT OTA rollouts with human approvals that devices verify.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, after_help = OVERVIEW, propagate_version = true)]
pub struct Cli {
    /// The controller's URL.
    #[arg(long, global = true, env = "AIRLOCK_SERVER", default_value = "http://127.0.0.1:7700", value_name = "URL")]
    pub server: String,
    /// Your bearer token.
    #[arg(long, global = true, env = "AIRLOCK_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Print the server's JSON (pretty-printed) instead of text; exit codes are unchanged.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: API, workflow timers, MQTT broker; a first run creates keys, users and a TrustRoot
    #[command(
        after_help = "Examples:\n  airlock serve\n  airlock serve --data /var/lib/airlock --listen 0.0.0.0:7700 --policies /etc/airlock/policies\n  airlock serve --mqtt-listen 0.0.0.0:1884\n  AIRLOCK_MQTT_URL=mqtt://airlock-controller:PASSWORD@mqtt.example:1883 airlock serve\n  AIRLOCK_DATABASE_URL=postgres://airlock@db/airlock airlock serve\n  RUST_LOG=debug airlock serve\n\nThe embedded broker (default 127.0.0.1:1884) admits enrolled devices with their own password;\n--mqtt-url uses an external broker instead (deploy/mosquitto/ has a Mosquitto configuration)."
    )]
    Serve(serve::ServeArgs),
    /// Submit a proposal from a spec file (TOML or JSON)
    #[command(
        after_help = "Examples:\n  airlock propose --file examples/proposals/firmware-canary.toml\n  airlock --json propose --file change.json"
    )]
    Propose {
        /// The spec: `.toml` or `.json` (fields: controller/src/workflow/spec.rs).
        #[arg(long, short, value_name = "SPEC")]
        file: PathBuf,
    },
    /// Show a proposal's approval card, with the manifest decoded locally
    #[command(after_help = "Examples:\n  airlock show 12\n  airlock --json show 12")]
    Show {
        /// Proposal id.
        id: i64,
    },
    /// List recent proposals, newest first
    #[command(after_help = "Examples:\n  airlock list\n  airlock list --state awaiting_approval --limit 20")]
    List {
        /// Only this state: awaiting_approval, blocked, approved, signed, rejected, expired,
        /// rolling_out, completed, paused, aborted.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Your pools' approval queues, with each request's age and time left
    #[command(after_help = "Examples:\n  airlock queue\n  AIRLOCK_TOKEN=$ALICE airlock queue")]
    Queue,
    /// Approve: check the manifest locally, sign its digest with your key, submit
    #[command(
        after_help = "Examples:\n  airlock approve 12 --key ~/.airlock/alice.key\n  airlock approve 12 --key alice.key --reason \"canary healthy for 24h\" --yes\n\nThe manifest is decoded from the bytes you sign and its digest computed here; the command\nrefuses to sign if either disagrees with what the server shows. Without --yes it asks for\nconfirmation, and refuses when stdin is not a terminal."
    )]
    Approve(DecideArgs),
    /// Reject: sign a rejection of the manifest digest with your key, submit
    #[command(
        after_help = "Examples:\n  airlock reject 12 --key alice.key --reason \"no rollback plan for the modem firmware\"\n  airlock reject 12 --key alice.key --reason \"wrong cohort\" --yes"
    )]
    Reject(RejectArgs),
    /// Submit a new revision of a proposal; says whether approvals were voided
    #[command(
        after_help = "Examples:\n  airlock edit 12 --file examples/proposals/firmware-canary.toml\n\nA change to anything approvers sign voids their approvals; a wording-only edit keeps them."
    )]
    Edit {
        /// Proposal id.
        id: i64,
        /// The whole new spec (`.toml` or `.json`).
        #[arg(long, short, value_name = "SPEC")]
        file: PathBuf,
    },
    /// Show how the policy would tier a spec and its blast radius, without proposing it
    #[command(after_help = "Examples:\n  airlock explain --file examples/proposals/security-fix.toml")]
    Explain {
        /// The spec (`.toml` or `.json`).
        #[arg(long, short, value_name = "SPEC")]
        file: PathBuf,
    },
    /// Check policy files locally (no server needed)
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Make and show Ed25519 key files; show the controller's TrustRoot
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// List and enrol devices (enrolment issues the device's broker login)
    #[command(subcommand)]
    Devices(devices::DevicesCommand),
    /// Upload and list firmware images devices download
    #[command(subcommand)]
    Artifacts(artifacts::ArtifactsCommand),
    /// Verify and read the hash-chained, signed audit trail
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Time to decision, approve/reject/edit rates, volume by tier and requester
    #[command(after_help = "Examples:\n  airlock metrics\n  airlock --json metrics")]
    Metrics,
}

/// `approve` arguments.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Proposal id.
    pub id: i64,
    /// Your approver key file (`airlock keys new --out FILE` makes one).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Why (recorded in the audit trail).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Sign without asking for confirmation (needed when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
}

/// `reject` arguments: the reason is required.
#[derive(Debug, Args)]
pub struct RejectArgs {
    /// Proposal id.
    pub id: i64,
    /// Your approver key file.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Why it is rejected (required; the requester reads it).
    #[arg(long)]
    pub reason: String,
    /// Sign without asking for confirmation (needed when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
}

/// What every command gets: where the server is, who calls, how to print.
#[derive(Debug)]
pub struct Ctx {
    /// The server URL.
    pub server: String,
    /// The bearer token.
    pub token: Option<String>,
    /// Print JSON.
    pub json: bool,
}

impl Ctx {
    /// A client of the server (needs the token).
    pub fn client(&self) -> Result<client::Client, CliError> {
        client::Client::new(&self.server, self.token.as_deref())
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Ctx { server: cli.server, token: cli.token, json: cli.json };
    match cli.command {
        Command::Serve(args) => serve::run(&args).await,
        Command::Propose { file } => proposals::propose(&ctx, &file).await,
        Command::Show { id } => proposals::show(&ctx, id).await,
        Command::List { state, limit } => proposals::list(&ctx, state.as_deref(), limit).await,
        Command::Queue => proposals::queue(&ctx).await,
        Command::Approve(a) => {
            let d = decide::Decide { id: a.id, key: a.key, reason: a.reason, yes: a.yes, approve: true };
            decide::run(&ctx, d).await
        }
        Command::Reject(a) => {
            if a.reason.trim().is_empty() {
                return Err(CliError::Usage("reject: --reason must say why".into()));
            }
            let d = decide::Decide { id: a.id, key: a.key, reason: a.reason, yes: a.yes, approve: false };
            decide::run(&ctx, d).await
        }
        Command::Edit { id, file } => proposals::edit(&ctx, id, &file).await,
        Command::Explain { file } => proposals::explain(&ctx, &file).await,
        Command::Policy(c) => policy::run(&ctx, c),
        Command::Keys(c) => keys::run(&ctx, c).await,
        Command::Devices(c) => devices::run(&ctx, c).await,
        Command::Artifacts(c) => artifacts::run(&ctx, c).await,
        Command::Audit(c) => audit::run(&ctx, c).await,
        Command::Metrics => metrics::run(&ctx).await,
    }
}

/// Writes to stdout; a closed pipe (`airlock show 1 | head`) ends output quietly.
pub(crate) fn out(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::io("writing to stdout", e)),
        _ => Ok(()),
    }
}

/// Writes to stderr (notes and prompts that must not mix with `--json` output).
pub(crate) fn note(text: &str) {
    let mut stderr = std::io::stderr().lock();
    // Nothing useful can be done if stderr itself is gone.
    let _ = stderr.write_all(text.as_bytes()).and_then(|()| stderr.flush());
}

/// Prints the server's JSON, pretty.
pub(crate) fn out_json(v: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| CliError::Reply { what: "printing JSON".into(), detail: e.to_string() })?;
    out(&format!("{text}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_is_the_map_of_every_command() {
        let help = Cli::command().render_help().to_string();
        for cmd in [
            "serve",
            "propose",
            "show",
            "list",
            "queue",
            "approve",
            "reject",
            "edit",
            "explain",
            "policy",
            "keys",
            "devices",
            "artifacts",
            "audit",
            "metrics",
        ] {
            assert!(help.lines().any(|l| l.trim_start().starts_with(cmd)), "{cmd} missing from\n{help}");
        }
        assert!(help.contains("--server") && help.contains("--token") && help.contains("--json"), "{help}");
    }

    #[test]
    fn every_command_has_examples() {
        let mut cmd = Cli::command();
        for sub in cmd.get_subcommands_mut() {
            let leaves: Vec<&clap::Command> =
                if sub.has_subcommands() { sub.get_subcommands().collect() } else { vec![sub] };
            for leaf in leaves {
                let after = leaf.get_after_help().map(|s| s.to_string()).unwrap_or_default();
                assert!(after.contains("Examples:"), "{} has no examples", leaf.get_name());
            }
        }
    }

    #[test]
    fn the_token_never_shows_in_help() {
        let cmd = Cli::command();
        let token = cmd.get_arguments().find(|a| a.get_id() == "token").unwrap();
        assert_eq!(token.get_env().and_then(|e| e.to_str()), Some("AIRLOCK_TOKEN"));
        assert!(token.is_hide_env_values_set());
    }

    #[test]
    fn reject_needs_a_reason_and_a_key() {
        let e = Cli::try_parse_from(["airlock", "reject", "3", "--key", "k"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--reason"), "{e}");
        let ok = Cli::try_parse_from(["airlock", "--json", "reject", "3", "--key", "k", "--reason", "no"]).unwrap();
        assert!(ok.json);
        assert!(matches!(ok.command, Command::Reject(RejectArgs { id: 3, .. })));
    }

    #[test]
    fn global_options_go_anywhere() {
        let c =
            Cli::try_parse_from(["airlock", "show", "4", "--server", "http://h:1", "--token", "t", "--json"]).unwrap();
        assert_eq!(c.server, "http://h:1");
        assert_eq!(c.token.as_deref(), Some("t"));
        assert!(c.json);
    }
}
