//! The in-process runtime: the core, driven over MQTT.
//!
//! [`Runtime::start`] opens the core on the given flash and spawns one tokio task (the device
//! loop, `drive`) and one network task (`net`). The device loop feeds the core every message
//! on the device's `manifest`, `trust`, `chunk` and `cmd` topics, a tick every second and a boot
//! at start, and carries out every output (`device`). [`RuntimeHandle`] observes and stops it.

mod device;
mod drive;
pub(crate) mod net;

use crate::config::AgentConfig;
use crate::error::AgentError;
use crate::hooks::{CommandHealthCheck, CommandReboot, HealthCheck, InProcessReboot, RebootHook};
use airlock_agent_core::Agent;
use airlock_proto::topics::Kind;
use airlock_proto::{Event, Status};
use device::{device_topic, DeviceLoop};
use embedded_storage::nor_flash::NorFlash;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Why the runtime stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// [`RuntimeHandle::stop`] (or the handle was dropped).
    Stopped,
    /// A decommission manifest wiped the identity; the device accepts nothing any more.
    Decommissioned,
    /// The reboot hook was asked to reboot the host into `slot`.
    Rebooting {
        /// The slot the device is about to try.
        slot: u8,
    },
}

/// Builds and starts the runtime.
pub struct Runtime {
    config: AgentConfig,
    health: Arc<dyn HealthCheck>,
    reboot: Box<dyn RebootHook>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Runtime {
    /// The health check is the configured command; reboots run `reboot_command` if set, and
    /// are simulated in process otherwise.
    pub fn new(config: AgentConfig) -> Self {
        let health = Arc::new(CommandHealthCheck::new(config.health.command.clone(), config.health_timeout()));
        let reboot: Box<dyn RebootHook> = match &config.reboot_command {
            Some(argv) => Box::new(CommandReboot::new(argv.clone())),
            None => Box::new(InProcessReboot),
        };
        Runtime { config, health, reboot }
    }

    /// Replaces the health check (tests, the simulator).
    pub fn with_health_check(mut self, check: impl HealthCheck) -> Self {
        self.health = Arc::new(check);
        self
    }

    /// Replaces the reboot hook.
    pub fn with_reboot_hook(mut self, hook: impl RebootHook) -> Self {
        self.reboot = Box::new(hook);
        self
    }

    /// `Runtime::new(config).spawn(flash)`.
    pub fn start<F>(config: AgentConfig, flash: F) -> Result<RuntimeHandle, AgentError>
    where
        F: NorFlash + Send + 'static,
    {
        Runtime::new(config).spawn(flash)
    }

    /// Opens the core on `flash` (provisioned for this device) and starts the runtime on the
    /// current tokio runtime. Fails before spawning anything if the config is invalid, the flash
    /// is not provisioned for `device_id`, or the device is decommissioned.
    pub fn spawn<F>(self, flash: F) -> Result<RuntimeHandle, AgentError>
    where
        F: NorFlash + Send + 'static,
    {
        let Runtime { config, health, reboot } = self;
        config.validate()?;
        let tokio = tokio::runtime::Handle::try_current().map_err(|_| AgentError::NoTokio)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| AgentError::file(&config.data_dir, e))?;
        let agent = Agent::open(flash, config.layout(), config.settings())?;
        if agent.state().decommissioned {
            return Err(AgentError::Decommissioned);
        }
        match agent.identity() {
            Some(id) if id.device_id.as_str() == config.device_id => {}
            Some(id) => {
                return Err(AgentError::Config(format!(
                    "device_id {:?}, but the flash was provisioned as {:?}",
                    config.device_id,
                    id.device_id.as_str()
                )))
            }
            None => return Err(AgentError::Decommissioned),
        }
        let (status_tx, status_rx) = watch::channel(agent.status());
        let (events_tx, events_rx) = watch::channel(Vec::new());
        let device = DeviceLoop {
            agent,
            layout: config.layout(),
            report_topic: device_topic(&config.device_id, Kind::Report)?,
            chunk_request_topic: device_topic(&config.device_id, Kind::ChunkRequest)?,
            firmware_path: config.firmware_path(),
            config_path: config.config_path(),
            in_process_reboot: reboot.in_process(),
            export: config.export_files,
            status: status_tx,
            events: events_tx,
            exported: None,
        };
        let subscriptions = [Kind::Manifest, Kind::Trust, Kind::Chunk, Kind::Command]
            .into_iter()
            .map(|k| device_topic(&config.device_id, k))
            .collect::<Result<Vec<_>, _>>()?;
        let (client, mut eventloop) = rumqttc::AsyncClient::new(net::options(&config)?, net::REQUEST_CAPACITY);
        eventloop.set_network_options(net::network_options());
        let (net_tx, net_rx) = mpsc::channel(64);
        let backoff =
            (Duration::from_millis(config.mqtt.backoff_min_ms), Duration::from_millis(config.mqtt.backoff_max_ms));
        let network = tokio.spawn(net::network(eventloop, net_tx, backoff.0, backoff.1));
        let (stop_tx, stop_rx) = watch::channel(false);
        let connections = Arc::new(AtomicU64::new(0));
        let parts = drive::Parts {
            device,
            device_id: config.device_id.clone(),
            subscriptions,
            client,
            net_rx,
            network,
            stop: stop_rx,
            health,
            reboot,
            connections: connections.clone(),
        };
        tracing::info!(device = %config.device_id, broker = %config.mqtt.url, "agent starting");
        let task = tokio.spawn(drive::drive(parts));
        Ok(RuntimeHandle { status: status_rx, events: events_rx, stop: stop_tx, task, connections })
    }
}

/// Observes and stops a running [`Runtime`]. Dropping it stops the runtime too.
#[derive(Debug)]
pub struct RuntimeHandle {
    status: watch::Receiver<Status>,
    events: watch::Receiver<Vec<Event>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<Exit, AgentError>>,
    connections: Arc<AtomicU64>,
}

impl RuntimeHandle {
    /// What the device runs and has accepted, after the last input.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// A watch of the status.
    pub fn status_watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Every event the device reported (signed and queued for the broker) since it started,
    /// the most recent 1,024 of them, in order.
    pub fn events(&self) -> watch::Receiver<Vec<Event>> {
        self.events.clone()
    }

    /// Waits until the device has reported an event matching `pred`, at most `timeout`.
    pub async fn wait_for_event(&self, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Option<Event> {
        let mut events = self.events.clone();
        let found = tokio::time::timeout(timeout, events.wait_for(|v| v.iter().any(&pred))).await;
        match found {
            Ok(Ok(history)) => history.iter().find(|e| pred(e)).copied(),
            _ => self.events.borrow().iter().find(|e| pred(e)).copied(),
        }
    }

    /// Successful connections to the broker so far (1 after the first, 2 after a reconnect...).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Whether the runtime has stopped (stopped, decommissioned, rebooting, or failed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the runtime: pending reports are handed to the broker, the MQTT session is closed
    /// (it persists on the broker), and the task ends.
    pub async fn stop(self) -> Result<Exit, AgentError> {
        let _ = self.stop.send(true);
        self.join().await
    }

    /// Waits for the runtime to stop on its own (decommissioned, rebooting, or failed).
    pub async fn join(self) -> Result<Exit, AgentError> {
        // The stop sender lives until the task ends: dropping it would stop the runtime.
        let RuntimeHandle { task, stop, .. } = self;
        let result = task.await;
        drop(stop);
        result.map_err(|e| AgentError::Task(e.to_string()))?
    }
}
