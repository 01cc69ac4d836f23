//! `airlock serve`: open the data directory (a first run creates keys, users and a TrustRoot,
//! and this prints them once), start the embedded MQTT broker (or connect to `--mqtt-url`),
//! bind, serve until Ctrl-C or SIGTERM, then drain.

use super::{out, CliError};
use crate::mqtt::{BrokerConfig, MqttConfig};
use crate::server::datadir::FirstRun;
use crate::server::{self, Config};
use crate::workflow::Clock;
use clap::Args;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory: database, keys, tokens, TrustRoot (created if missing).
    #[arg(long, default_value = "./airlock-data", value_name = "DIR")]
    pub data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7700", value_name = "ADDR")]
    pub listen: String,
    /// Database URL (sqlite://FILE or postgres://...); default: DATA/airlock.db.
    #[arg(long, env = "AIRLOCK_DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Policy directory (every *.toml in it).
    #[arg(long, default_value = "./policies", value_name = "DIR")]
    pub policies: PathBuf,
    /// Address of the embedded MQTT broker devices connect to (port 0: any free port).
    #[arg(long, env = "AIRLOCK_MQTT_LISTEN", default_value = crate::mqtt::DEFAULT_LISTEN, value_name = "ADDR")]
    pub mqtt_listen: SocketAddr,
    /// Use this MQTT broker instead of the embedded one: mqtt://[user[:password]@]host[:port]
    /// (Mosquitto: deploy/mosquitto/).
    #[arg(long, env = "AIRLOCK_MQTT_URL", hide_env_values = true, value_name = "URL", conflicts_with = "mqtt_listen")]
    pub mqtt_url: Option<String>,
    /// The controller's MQTT client id on an external broker (one per replica).
    #[arg(long, default_value = crate::mqtt::credentials::CONTROLLER_USER, value_name = "ID")]
    pub mqtt_client_id: String,
    /// Audit directory: the audit signing key and the witness file of the audit trail. Keep it
    /// out of the database owner's reach (docs/deploy.md); default: DATA's sibling `<name>-audit`.
    #[arg(long, env = "AIRLOCK_AUDIT_DIR", value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,
    /// Largest firmware image accepted by `airlock artifacts upload`, in bytes.
    #[arg(long, default_value_t = server::DEFAULT_MAX_ARTIFACT, value_name = "BYTES")]
    pub max_artifact_size: u64,
}

impl ServeArgs {
    /// The server configuration these arguments describe.
    pub fn config(&self) -> Config {
        let broker = match &self.mqtt_url {
            Some(url) => BrokerConfig::External { url: url.clone() },
            None => BrokerConfig::Embedded { listen: self.mqtt_listen },
        };
        let mqtt = MqttConfig { broker, client_id: self.mqtt_client_id.clone(), persistent_session: true };
        Config {
            data_dir: self.data.clone(),
            policies: self.policies.clone(),
            database_url: self.database_url.clone(),
            mqtt: Some(mqtt),
            max_artifact_bytes: self.max_artifact_size,
            audit_dir: self.audit_dir.clone(),
        }
    }
}

/// Runs the controller until Ctrl-C or SIGTERM.
pub async fn run(args: &ServeArgs) -> Result<(), CliError> {
    init_logging();
    let config = args.config();
    let (state, first) = server::start(&config, Clock::system()).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| CliError::io(format!("cannot listen on {}", args.listen), e))?;
    let addr = listener.local_addr().map_err(|e| CliError::io("reading the bound address", e))?;
    out(&first_run_text(&first, &args.data, addr))?;
    if let Some(d) = &state.delivery {
        let kind = if d.info.embedded { "embedded broker" } else { "external broker" };
        out(&format!("mqtt: {kind} at {} (devices log in with the password from 'devices enroll')\n", d.info.url))?;
    }
    out(&format!("listening on http://{addr}\n"))?;
    tracing::info!(%addr, data = %args.data.display(), "airlock controller serving");
    server::run(listener, state, shutdown()).await.map_err(|e| CliError::io("serving", e))?;
    tracing::info!("stopped");
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`, with the embedded broker's
/// per-connection lines left out: `RUST_LOG=info,rumqttd=info` shows them).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rumqttd=warn"));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No handler could be installed: the default action of SIGINT still stops us.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// What a first run created, the users with their tokens, and the commands to try next. Empty
/// when nothing was created.
pub fn first_run_text(first: &FirstRun, data: &Path, addr: SocketAddr) -> String {
    let mut o = String::new();
    if first.created.is_empty() && first.users.is_empty() {
        return o;
    }
    o.push_str("created:\n");
    for line in &first.created {
        let _ = writeln!(o, "  {line}");
    }
    if first.users.is_empty() {
        o.push('\n');
        return o;
    }
    o.push_str(
        "\nusers (tokens are shown this once; they are also in DATA/tokens.txt: hand them out, then delete it)\n",
    );
    let width = first.users.iter().map(|(u, _)| u.name.len()).max().unwrap_or(0);
    let roles_width = first.users.iter().map(|(u, _)| u.roles.join(",").len()).max().unwrap_or(0);
    for (u, token) in &first.users {
        let _ = writeln!(o, "  {:<width$}  {:<roles_width$}  {token}", u.name, u.roles.join(","));
    }
    let server = if addr.to_string() == "127.0.0.1:7700" { String::new() } else { format!(" --server http://{addr}") };
    let token = |name: &str| first.users.iter().find(|(u, _)| u.name == name).map(|(_, t)| t.clone());
    let keys = data.join("keys").join("users");
    o.push('\n');
    if let Some(admin) = token("admin") {
        let _ = writeln!(
            o,
            "to enrol a device: airlock{server} --token {admin} devices enroll --id gw-0001 --public-key HEX \\\n    \
             --hardware gw-m4 --region eu-west --environment production --firmware 2.3.9\n                   \
             (HEX: the device's public key; 'airlock keys new --out gw-0001.key' makes one to try with)"
        );
    }
    if let Some(rita) = token("rita") {
        let _ = writeln!(
            o,
            "to propose:        airlock{server} --token {rita} propose --file examples/proposals/firmware-canary.toml"
        );
    }
    let approver = first.users.iter().find(|(u, _)| u.public_key.is_some() && u.has("approver"));
    if let Some((u, t)) = approver {
        let key = keys.join(format!("{}.key", u.name));
        let _ = writeln!(o, "to approve:        airlock{server} --token {t} approve ID --key {}", key.display());
    }
    o.push('\n');
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::User;

    fn user(name: &str, roles: &[&str], key: bool) -> (User, String) {
        let u = User {
            name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            public_key: key.then(|| "ab".repeat(32)),
        };
        (u, format!("alk_{name}"))
    }

    #[test]
    fn a_first_run_prints_users_tokens_and_concrete_commands() {
        let first = FirstRun {
            created: vec!["release key: d/keys/release.key (public 00)".into()],
            users: vec![
                user("admin", &["admin"], false),
                user("alice", &["approver"], true),
                user("rita", &["requester"], false),
            ],
        };
        let addr: SocketAddr = "127.0.0.1:7700".parse().unwrap();
        let text = first_run_text(&first, Path::new("d"), addr);
        assert!(text.contains("  release key: d/keys/release.key"), "{text}");
        assert!(text.contains("  alice  approver   alk_alice\n"), "{text}");
        assert!(
            text.contains(
                "to propose:        airlock --token alk_rita propose --file examples/proposals/firmware-canary.toml"
            ),
            "{text}"
        );
        assert!(
            text.contains("to approve:        airlock --token alk_alice approve ID --key d/keys/users/alice.key"),
            "{text}"
        );
        assert!(text.contains("airlock --token alk_admin devices enroll"), "{text}");
    }

    #[test]
    fn another_address_goes_into_the_hints() {
        let first = FirstRun { created: vec!["x".into()], users: vec![user("rita", &["requester"], false)] };
        let text = first_run_text(&first, Path::new("d"), "127.0.0.1:9999".parse().unwrap());
        assert!(text.contains("airlock --server http://127.0.0.1:9999 --token alk_rita propose"), "{text}");
    }

    #[test]
    fn a_later_run_prints_nothing() {
        let text = first_run_text(&FirstRun::default(), Path::new("d"), "127.0.0.1:7700".parse().unwrap());
        assert_eq!(text, "");
    }
}
