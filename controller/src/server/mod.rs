//! `airlock serve`: start-up and the serving loop.
//!
//! [`start`] opens the data directory (creating keys, users and a TrustRoot on a first run),
//! the database, the policy and the artifact store, and starts delivery (the embedded MQTT
//! broker or a connection to an external one, see [`crate::mqtt`]); [`run`] serves the API on a
//! listener it is given (and the web UI, [`crate::web`]) until the shutdown future resolves, firing due workflow timers
//! meanwhile, then disconnects from the broker. Tests run both on ephemeral ports.
//!
//! # Layout
//! - [`datadir`]: the data directory, the audit directory beside it, and the first run.

pub mod datadir;

use crate::artifacts::{ArtifactError, ArtifactStore};
use crate::audit::witness::Witness;
use crate::audit::AuditKey;
use crate::mqtt::{Delivery, MqttConfig, MqttError};
use crate::policy::{load_dir, Policy, PolicyError};
use crate::store::{Store, StoreError};
use crate::trust::{device_roles, issue, Roster, TrustError};
use crate::workflow::{Clock, Trust, Workflow};
use airlock_proto::{Approver, SignedTrustRoot, TrustRoot};
use datadir::{DataDir, DataDirError, FirstRun};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The default largest artifact upload: 64 MiB.
pub const DEFAULT_MAX_ARTIFACT: u64 = 64 * 1024 * 1024;

/// How `airlock serve` is configured. `Config::default()` has no MQTT at all (tests of the API
/// alone); `airlock serve` always has one.
#[derive(Clone, Debug)]
pub struct Config {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The policy directory.
    pub policies: PathBuf,
    /// A database URL; the data directory's SQLite file when `None`.
    pub database_url: Option<String>,
    /// The broker: embedded or external; `None`: no delivery over MQTT.
    pub mqtt: Option<MqttConfig>,
    /// The largest artifact upload accepted, in bytes.
    pub max_artifact_bytes: u64,
    /// The audit directory (audit key, witness file), kept outside the data directory; its
    /// sibling `<name>-audit` when `None`.
    pub audit_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./airlock-data"),
            policies: PathBuf::from("./policies"),
            database_url: None,
            mqtt: None,
            max_artifact_bytes: DEFAULT_MAX_ARTIFACT,
            audit_dir: None,
        }
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy.
    #[error("policy refused: {0}")]
    Policy(#[from] PolicyError),
    /// The TrustRoot.
    #[error("trust root: {0}")]
    Trust(String),
    /// The artifact directory.
    #[error(transparent)]
    Artifacts(#[from] ArtifactError),
    /// The broker.
    #[error(transparent)]
    Mqtt(#[from] MqttError),
}

impl From<TrustError> for StartError {
    fn from(e: TrustError) -> Self {
        StartError::Trust(e.to_string())
    }
}

/// What the API serves from.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The workflow engine (store, policy, TrustRoot, keys, clock).
    pub wf: Workflow,
    /// The data directory.
    pub data: DataDir,
    /// Firmware images devices download.
    pub artifacts: ArtifactStore,
    /// MQTT delivery: `delivery.bus` is the rollout engine's `Transport`,
    /// `delivery.take_reports()` its verified device reports. `None` without MQTT.
    pub delivery: Option<Arc<Delivery>>,
    /// The rollout engine, delivering over `delivery`'s bus. `None` without MQTT.
    pub rollouts: Option<Arc<crate::rollout::Engine<crate::mqtt::bus::Bus>>>,
    /// The audit trail's witness file, outside the data directory ([`crate::audit::witness`]).
    pub witness: Witness,
}

/// Opens everything `airlock serve` needs. The second value says what a first run created.
pub async fn start(config: &Config, clock: Clock) -> Result<(AppState, FirstRun), StartError> {
    let mut first = FirstRun::default();
    let data = DataDir::create(&config.data_dir, config.audit_dir.as_deref())?;
    let policy = load_dir(&config.policies)?;
    let keys = data.controller_keys(&mut first)?;
    let url = config.database_url.clone().unwrap_or_else(|| data.sqlite_url());
    let store = Store::open(&url).await?;
    data.first_users(&store, &policy, clock.now_ms(), &mut first).await?;
    let trust = trust_root(&data, &store, &policy, &keys, &clock, &mut first).await?;
    let artifacts = ArtifactStore::open(&data.artifacts(), config.max_artifact_bytes)?;
    let delivery = match &config.mqtt {
        Some(mqtt) => Some(Arc::new(Delivery::start(mqtt, &store, &artifacts, clock.clone()).await?)),
        None => None,
    };
    let audit = AuditKey::new(keys.audit);
    let witness = Witness::new(&data.audit_witness(), audit.public_key());
    // A trail that no longer holds what was witnessed is said loudly, but the controller starts,
    // so that `airlock audit verify --against` can show what happened.
    if let Err(e) = witness.sync(store.pool()).await {
        tracing::error!(error = %e, "audit witness");
    }
    let wf = Workflow::new(store, policy, trust, keys.release, audit, clock);
    let rollouts = delivery.as_ref().map(|d| Arc::new(crate::rollout::Engine::new(wf.clone(), d.bus.clone())));
    Ok((AppState { wf, data, artifacts, delivery, rollouts, witness }, first))
}

/// The TrustRoot in force: the stored one if it still says what the policy and the roster say,
/// otherwise a new version signed by the root keys in the data directory.
async fn trust_root(
    data: &DataDir,
    store: &Store,
    policy: &Policy,
    keys: &datadir::ControllerKeys,
    clock: &Clock,
    first: &mut FirstRun,
) -> Result<Trust, StartError> {
    let users = crate::users::all(store.pool()).await?;
    let approvers: Vec<Approver> = users
        .iter()
        .filter(|u| u.is_approver())
        .filter_map(|u| {
            Some(Approver { key: crate::keys::parse_public(u.public_key.as_deref()?)?, roles: device_roles(&u.roles) })
        })
        .collect();
    let release = vec![airlock_proto::sig::public_key(&keys.release)];
    let stored: Option<(TrustRoot, Vec<u8>)> = std::fs::read(data.trust_root()).ok().and_then(|bytes| {
        let root = airlock_proto::decode::<SignedTrustRoot<'_>>(&bytes).ok()?.verify_self().ok()?;
        Some((root, bytes))
    });
    let now_s = (clock.now_ms() / 1000).max(0) as u64;
    if let Some((root, bytes)) = &stored {
        let current = root.approvers.as_slice() == approvers.as_slice()
            && root.release_keys.as_slice() == release.as_slice()
            && root.rules == policy.device_rules
            && !root.expired(now_s + 30 * 86_400);
        if current || keys.roots.is_empty() {
            return Ok(Trust { root: root.clone(), bytes: bytes.clone() });
        }
    }
    let version = stored.as_ref().map_or(1, |(r, _)| r.version + 1);
    let roster = Roster {
        version,
        expires_at: now_s + 365 * 86_400,
        root_keys: &keys.roots,
        threshold: 2,
        release_keys: release,
        approvers,
    };
    let (root, bytes) = issue(policy, &roster)?;
    datadir::write_private(&data.trust_root(), &bytes)?;
    first.created.push(format!("trust root v{version}: {}", data.trust_root().display()));
    Ok(Trust { root, bytes })
}

/// Serves the API on `listener` until `shutdown` resolves, then drains in-flight requests and
/// disconnects from the broker (stopping the embedded one).
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let wf = state.wf.clone();
    let delivery = state.delivery.clone();
    let timers = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = wf.fire_due_timers().await {
                        tracing::warn!(error = %e, "firing workflow timers failed; retrying");
                    }
                }
                _ = stop_rx.changed() => break,
            }
        }
    });
    let witness = tokio::spawn(witness_audit(state.witness.clone(), state.wf.clone(), stop_tx.subscribe()));
    let engine = state.rollouts.clone().zip(delivery.as_ref().and_then(|d| d.take_reports()));
    let rollouts = engine.map(|(engine, reports)| tokio::spawn(drive_rollouts(engine, reports, stop_tx.subscribe())));
    let app = crate::api::router(state.clone()).merge(crate::web::router(state));
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    let _ = stop_tx.send(true);
    let _ = timers.await;
    let _ = witness.await;
    if let Some(r) = rollouts {
        let _ = r.await;
    }
    if let Some(d) = delivery {
        d.shutdown().await;
    }
    served
}

/// How often committed audit checkpoints are copied to the witness file.
const WITNESS_EVERY: Duration = Duration::from_millis(500);

/// Copies committed audit checkpoints to the witness file every [`WITNESS_EVERY`], and once more
/// on shutdown. A trail that no longer chains onto the witness is logged as an error at every
/// tick (and nothing more is witnessed) until someone looks.
async fn witness_audit(witness: Witness, wf: Workflow, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(WITNESS_EVERY);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        if let Err(e) = witness.sync(wf.store.pool()).await {
            tracing::error!(error = %e, "audit witness");
        }
        if stopping {
            break;
        }
    }
}

/// The rollout loop: four times a second, start rollouts for newly signed proposals and advance every
/// rollout (sends within the rate limit, device timeouts, wave decisions); in between, apply each
/// verified device report as it arrives. Errors are logged and retried on the next tick: every
/// decision is its own transaction, so nothing is half-done.
/// Device reports applied in one transaction, at most.
const REPORT_BATCH: usize = 512;

async fn drive_rollouts(
    engine: Arc<crate::rollout::Engine<crate::mqtt::bus::Bus>>,
    mut reports: tokio::sync::mpsc::Receiver<crate::rollout::transport::DeviceReport>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = engine.start_signed().await {
                    tracing::warn!(error = %e, "starting rollouts failed; retrying");
                }
                if let Err(e) = engine.tick().await {
                    tracing::warn!(error = %e, "advancing rollouts failed; retrying");
                }
            }
            Some(r) = reports.recv() => {
                // Whatever else is waiting goes in the same transaction.
                let mut batch = vec![r];
                while batch.len() < REPORT_BATCH {
                    match reports.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                if let Err(e) = engine.on_reports(batch).await {
                    tracing::warn!(error = %e, "applying device reports failed");
                }
            }
            _ = stop.changed() => break,
        }
    }
}
