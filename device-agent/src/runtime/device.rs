//! The synchronous half of the runtime: feeds one input to the core, carries out every output
//! that needs only the flash and the filesystem (signing reports, exporting the running image,
//! writing the config, in-process reboots), and returns what the async half must do (publish,
//! run a health check, reboot the host, stop). It runs on tokio's blocking pool, because flash
//! and file writes are synced one by one.

use crate::error::AgentError;
use crate::files::write_atomic;
use crate::hooks::{Change, HealthContext};
use airlock_agent_core::{Agent, Error, Input, Layout, Output};
use airlock_proto::topics::{topic, Kind};
use airlock_proto::{manifest_digest, Delivery, Digest, Event, Status};
use embedded_storage::nor_flash::{NorFlash, NorFlashError as _};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Reported events kept for [`crate::RuntimeHandle::events`].
const EVENT_HISTORY: usize = 1024;

/// One input, owning its bytes.
#[derive(Debug)]
pub(crate) enum Owned {
    Boot,
    Delivery(Vec<u8>),
    Chunk(Vec<u8>),
    Command(Vec<u8>),
    TrustRoot(Vec<u8>),
    /// A health verdict for the change started at boot number `boots`.
    Health {
        ok: bool,
        boots: u32,
    },
    Tick,
    /// Connected to the broker: report the status.
    ReportStatus,
}

impl Owned {
    /// The core's input (`None` for what the runtime handles itself).
    fn as_input(&self) -> Option<Input<'_>> {
        Some(match self {
            Owned::Boot => Input::Boot,
            Owned::Delivery(b) => Input::Delivery(b),
            Owned::Chunk(b) => Input::Chunk(b),
            Owned::Command(b) => Input::Command(b),
            Owned::TrustRoot(b) => Input::TrustRoot(b),
            Owned::Health { ok, .. } => Input::Health(*ok),
            Owned::Tick => Input::Tick,
            Owned::ReportStatus => return None,
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Owned::Boot => "boot",
            Owned::Delivery(_) => "delivery",
            Owned::Chunk(_) => "chunk",
            Owned::Command(_) => "command",
            Owned::TrustRoot(_) => "trust_root",
            Owned::Health { .. } => "health",
            Owned::Tick => "tick",
            Owned::ReportStatus => "status",
        }
    }
}

/// What the async half must do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Publish (QoS 1) on a device topic.
    Publish { topic: String, payload: Vec<u8> },
    /// Run the health check; feed the verdict back as [`Owned::Health`] with these `boots`.
    Health { cx: HealthContext, boots: u32 },
    /// Reboot the host (the reboot hook is not in-process).
    Reboot { slot: u8 },
    /// The identity is gone: flush and stop.
    Decommissioned,
    /// The core cannot run (boot failed): stop with this error.
    Fatal(AgentError),
}

/// The core plus the files and channels the synchronous outputs touch.
pub(crate) struct DeviceLoop<F: NorFlash> {
    pub(crate) agent: Agent<F>,
    pub(crate) layout: Layout,
    pub(crate) report_topic: String,
    pub(crate) chunk_request_topic: String,
    pub(crate) firmware_path: PathBuf,
    pub(crate) config_path: PathBuf,
    pub(crate) in_process_reboot: bool,
    /// Whether the running image and config are written to files (`export_files`).
    pub(crate) export: bool,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) events: watch::Sender<Vec<Event>>,
    /// Digest of the image last written to `firmware.bin`.
    pub(crate) exported: Option<Digest>,
}

/// The device's topic of `kind`.
pub(crate) fn device_topic(device: &str, kind: Kind) -> Result<String, AgentError> {
    topic(device, kind)
        .map(|t| t.as_str().to_string())
        .ok_or_else(|| AgentError::Config(format!("device id {device:?} does not fit a topic")))
}

/// Unix seconds from the system clock.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl<F: NorFlash> DeviceLoop<F> {
    /// Handles `input` and every in-process consequence of it (a reboot becomes a boot).
    pub(crate) fn run(&mut self, input: Owned) -> Vec<Action> {
        let mut queue = VecDeque::from([input]);
        let mut actions = Vec::new();
        while let Some(input) = queue.pop_front() {
            self.step(unix_now(), input, &mut queue, &mut actions);
        }
        self.status.send_replace(self.agent.status());
        actions
    }

    fn step(&mut self, now: u64, input: Owned, queue: &mut VecDeque<Owned>, actions: &mut Vec<Action>) {
        if let Owned::Health { boots, .. } = input {
            if boots != self.agent.state().boots {
                tracing::info!("health verdict for a change from before the last boot: ignored");
                return;
            }
        }
        let Some(core_input) = input.as_input() else {
            let status = self.agent.status();
            return self.report(now, Event::Status(status), actions);
        };
        // Captured before the core runs: a chunk refusal abandons the download it belongs to.
        let downloading = self.agent.state().downloading;
        match self.agent.handle(now, core_input) {
            Ok(outputs) => {
                for output in outputs {
                    self.act(now, output, queue, actions);
                }
            }
            Err(Error::Refused(reason)) => {
                let manifest = match &input {
                    Owned::Delivery(bytes) => delivery_manifest(bytes),
                    Owned::Chunk(_) => downloading,
                    _ => None,
                };
                tracing::warn!(input = input.name(), reason = reason.name(), ?manifest, "refused");
                self.report(now, Event::Refused { manifest, reason }, actions);
            }
            Err(e) if matches!(input, Owned::Boot) => {
                tracing::error!(error = %e, "boot failed");
                actions.push(Action::Fatal(e.into()));
            }
            Err(e) => tracing::error!(input = input.name(), error = %e, "device core failed"),
        }
    }

    fn act(&mut self, now: u64, output: Output, queue: &mut VecDeque<Owned>, actions: &mut Vec<Action>) {
        let boots = self.agent.state().boots;
        match output {
            Output::Report(event) => self.report(now, event, actions),
            Output::RequestChunks(request) => {
                tracing::debug!(offset = request.offset, len = request.len, "requesting chunks");
                let payload = airlock_proto::codec::encode(&request);
                actions.push(Action::Publish { topic: self.chunk_request_topic.clone(), payload });
            }
            Output::Reboot { slot } if self.in_process_reboot => {
                tracing::info!(slot, "rebooting (in process)");
                queue.push_back(Owned::Boot);
            }
            Output::Reboot { slot } => actions.push(Action::Reboot { slot }),
            Output::Run { slot, testing } => {
                if let Err(e) = self.export_firmware(slot) {
                    tracing::error!(slot, error = %e, "could not export the running image");
                }
                let version = self.agent.status().firmware;
                tracing::info!(slot, %version, testing, "running image");
                if testing {
                    actions.push(Action::Health { cx: self.context(Change::Firmware, None), boots });
                }
            }
            Output::ApplyConfig { slot, testing } => {
                let version =
                    self.agent.state().configs.get(usize::from(slot)).copied().flatten().map_or(0, |c| c.version);
                match self.write_config(slot) {
                    Ok(()) => tracing::info!(slot, version, testing, "config applied"),
                    Err(e) => {
                        tracing::error!(slot, error = %e, "could not write the config");
                        if testing {
                            // A config that could not be applied is not healthy.
                            queue.push_back(Owned::Health { ok: false, boots });
                            return;
                        }
                    }
                }
                if testing {
                    actions.push(Action::Health { cx: self.context(Change::Config, Some(version)), boots });
                }
            }
            Output::WipeKeys => {
                tracing::warn!("decommissioned: device key wiped, the agent stops");
                self.agent.forget_identity();
                actions.push(Action::Decommissioned);
            }
        }
    }

    /// Signs and queues a report; keeps it in the event history.
    fn report(&mut self, now: u64, event: Event, actions: &mut Vec<Action>) {
        let Some(identity) = self.agent.identity().cloned() else {
            tracing::warn!(?event, "no identity left to sign a report with");
            return;
        };
        let Some(report) = self.agent.report(now, event) else {
            return;
        };
        let payload = crate::report::sign(&identity, &report);
        tracing::info!(counter = report.counter, event = ?event, "report");
        actions.push(Action::Publish { topic: self.report_topic.clone(), payload });
        self.events.send_modify(|history| {
            history.push(event);
            if history.len() > EVENT_HISTORY {
                history.drain(..history.len() - EVENT_HISTORY);
            }
        });
    }

    fn context(&self, change: Change, config_version: Option<u32>) -> HealthContext {
        let status = self.agent.status();
        HealthContext {
            change,
            firmware_version: status.firmware,
            firmware: self.firmware_path.clone(),
            config: self.config_path.clone(),
            config_version: config_version.unwrap_or(status.config),
        }
    }

    /// Writes the image in `slot` to `firmware.bin` and its record to `firmware.json`.
    fn export_firmware(&mut self, slot: u8) -> Result<(), AgentError> {
        if !self.export {
            return Ok(());
        }
        let missing = || AgentError::Core(Error::NoBootableImage);
        let meta = self.agent.state().slots.get(usize::from(slot)).copied().flatten().ok_or_else(missing)?;
        if self.exported == Some(meta.digest) {
            return Ok(());
        }
        let offset = *self.layout.slots.get(usize::from(slot)).ok_or_else(missing)?;
        // Slots are sector-sized, so reading whole 32-byte units never leaves the slot.
        let mut bytes = vec![0u8; (meta.size as usize).div_ceil(32) * 32];
        self.agent.flash_mut().read(offset, &mut bytes).map_err(|e| AgentError::Core(Error::Flash(e.kind())))?;
        bytes.truncate(meta.size as usize);
        write_atomic(&self.firmware_path, &bytes)?;
        let record = serde_json::json!({
            "slot": slot,
            "version": meta.version.to_string(),
            "security_counter": meta.security_counter,
            "size": meta.size,
            "digest": hex::encode(meta.digest.0),
            "manifest": hex::encode(meta.manifest.0),
        });
        write_atomic(&self.firmware_path.with_extension("json"), record.to_string().as_bytes())?;
        self.exported = Some(meta.digest);
        Ok(())
    }

    /// Writes the config payload of `slot` to `config.json`.
    fn write_config(&mut self, slot: u8) -> Result<(), AgentError> {
        if !self.export {
            return Ok(());
        }
        let mut buf = vec![0u8; self.layout.record_size as usize];
        let payload = self.agent.read_config(slot, &mut buf)?;
        write_atomic(&self.config_path, payload)
    }
}

/// The digest of a delivery's manifest body, if the delivery decodes at all.
fn delivery_manifest(bytes: &[u8]) -> Option<Digest> {
    airlock_proto::decode::<Delivery<'_>>(bytes).ok().map(|d| manifest_digest(d.manifest.body))
}
