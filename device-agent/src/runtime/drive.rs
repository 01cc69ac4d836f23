//! The device loop: one task that owns the core and decides what happens next.
//!
//! Inputs queue up in order (boot first, then broker messages, health verdicts and ticks); each
//! is handled on the blocking pool ([`DeviceLoop::run`]), then its message is acknowledged to
//! the broker (manual acks: a message the core has not handled is redelivered after a crash),
//! and the resulting publishes go to the outbox. Nothing here waits on the network: rumqttc's
//! event loop is polled by its own task, so keepalives, reconnects and health checks carry on
//! while flash is written.

use super::device::{Action, DeviceLoop, Owned};
use super::net::{NetEvent, Outbox};
use super::Exit;
use crate::error::AgentError;
use crate::hooks::{HealthCheck, RebootHook};
use airlock_proto::topics::{parse, Kind};
use embedded_storage::nor_flash::NorFlash;
use rumqttc::{AsyncClient, Publish, QoS, SubscribeFilter};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

/// How long a stopping runtime waits for its last publishes and DISCONNECT to go out.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything the device loop owns.
pub(crate) struct Parts<F: NorFlash> {
    pub(crate) device: DeviceLoop<F>,
    pub(crate) device_id: String,
    pub(crate) subscriptions: Vec<String>,
    pub(crate) client: AsyncClient,
    pub(crate) net_rx: mpsc::Receiver<NetEvent>,
    pub(crate) network: JoinHandle<()>,
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) health: Arc<dyn HealthCheck>,
    pub(crate) reboot: Box<dyn RebootHook>,
    pub(crate) connections: Arc<AtomicU64>,
}

/// Runs until stopped, decommissioned, rebooting, or a fatal error.
pub(crate) async fn drive<F: NorFlash + Send + 'static>(parts: Parts<F>) -> Result<Exit, AgentError> {
    let Parts {
        device,
        device_id,
        subscriptions,
        client,
        mut net_rx,
        mut network,
        mut stop,
        health,
        reboot,
        connections,
    } = parts;
    let mut device = Some(device);
    let mut pending: VecDeque<(Owned, Option<Publish>)> = VecDeque::from([(Owned::Boot, None)]);
    let mut outbox = Outbox::default();
    let mut checks: JoinSet<(u32, bool)> = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Reports wait in the outbox until the device is connected and subscribed.
    let (mut connected, mut subscribe) = (false, true);
    let mut exit = None;

    let outcome = 'run: loop {
        while let Some((input, ack)) = pending.pop_front() {
            let actions = match step(&mut device, input).await {
                Ok(actions) => actions,
                Err(e) => break 'run Err(e),
            };
            if let Some(publish) = ack {
                if client.try_ack(&publish).is_err() {
                    tracing::debug!("ack not sent (offline): the broker redelivers");
                }
            }
            for action in actions {
                match action {
                    Action::Publish { topic, payload } => outbox.push(topic, payload),
                    Action::Health { cx, boots } => {
                        tracing::info!(change = cx.change.name(), "running the health check");
                        spawn_check(&mut checks, health.as_ref(), cx, boots);
                    }
                    Action::Reboot { slot } => exit = Some(Exit::Rebooting { slot }),
                    Action::Decommissioned => exit = Some(Exit::Decommissioned),
                    Action::Fatal(e) => break 'run Err(e),
                }
            }
        }
        if connected {
            // Subscriptions first: a broker that lost the session must know what to send.
            if subscribe && client.try_subscribe_many(filters(&subscriptions)).is_ok() {
                subscribe = false;
            }
            if !subscribe {
                outbox.flush(&client);
            }
        }
        if let Some(exit) = exit {
            break 'run Ok(exit);
        }
        tokio::select! {
            biased;
            // A stop request, or the handle was dropped.
            _ = stop.changed() => break 'run Ok(Exit::Stopped),
            Some(joined) = checks.join_next() => match joined {
                Ok((boots, ok)) => {
                    tracing::info!(healthy = ok, "health check done");
                    pending.push_back((Owned::Health { ok, boots }, None));
                }
                Err(e) => tracing::error!(error = %e, "health check task ended abnormally"),
            },
            event = net_rx.recv() => match event {
                Some(NetEvent::Connected { session_present }) => {
                    tracing::debug!(session_present, "subscribing");
                    connected = true;
                    // Resubscribing is harmless when the broker kept the session, and needed when
                    // it did not (first connect, broker restarted without persistence).
                    subscribe = true;
                    connections.fetch_add(1, Ordering::Relaxed);
                    pending.push_back((Owned::ReportStatus, None));
                }
                Some(NetEvent::Message(publish)) => match route(&device_id, &publish) {
                    Some(input) => pending.push_back((input, Some(publish))),
                    None => {
                        tracing::warn!(topic = %publish.topic, "message on an unexpected topic: ignored");
                        let _ = client.try_ack(&publish);
                    }
                },
                Some(NetEvent::Disconnected) => connected = false,
                None => break 'run Err(AgentError::Task("the network task ended".to_string())),
            },
            _ = tick.tick() => pending.push_back((Owned::Tick, None)),
        }
    };

    drop(checks);
    if connected {
        outbox.flush(&client);
    }
    if connected && client.try_disconnect().is_ok() {
        // Keep draining events so the network task is never stuck handing one over.
        let drained = async {
            loop {
                tokio::select! {
                    _ = &mut network => break,
                    event = net_rx.recv() => if event.is_none() { break },
                }
            }
        };
        if tokio::time::timeout(FLUSH_TIMEOUT, drained).await.is_err() {
            tracing::warn!("the broker did not take the last messages in time");
        }
    }
    drop(net_rx);
    network.abort();
    if outbox.len() > 0 {
        tracing::warn!(held = outbox.len(), "stopping with messages not handed to the broker");
    }
    match outcome {
        Ok(Exit::Rebooting { slot }) => reboot_host(reboot, slot).await.map(|()| Exit::Rebooting { slot }),
        other => {
            tracing::info!(outcome = ?other, "agent stopped");
            other
        }
    }
}

/// Runs one input on the blocking pool (the core writes flash, which syncs).
async fn step<F: NorFlash + Send + 'static>(
    slot: &mut Option<DeviceLoop<F>>,
    input: Owned,
) -> Result<Vec<Action>, AgentError> {
    let mut device = slot.take().ok_or_else(|| AgentError::Task("device loop lost".to_string()))?;
    let (device, actions) = tokio::task::spawn_blocking(move || {
        let actions = device.run(input);
        (device, actions)
    })
    .await
    .map_err(|e| AgentError::Task(format!("device loop: {e}")))?;
    *slot = Some(device);
    Ok(actions)
}

/// The core's input for a message on one of this device's topics.
fn route(device_id: &str, publish: &Publish) -> Option<Owned> {
    let (device, kind) = parse(&publish.topic)?;
    if device != device_id {
        return None;
    }
    let bytes = publish.payload.to_vec();
    Some(match kind {
        Kind::Manifest => Owned::Delivery(bytes),
        Kind::Trust => Owned::TrustRoot(bytes),
        Kind::Chunk => Owned::Chunk(bytes),
        Kind::Command => Owned::Command(bytes),
        Kind::ChunkRequest | Kind::Report => return None,
    })
}

fn filters(topics: &[String]) -> impl Iterator<Item = SubscribeFilter> + '_ {
    topics.iter().map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce))
}

/// Aborts a task when dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a health check as its own task; a check that panics counts as failed.
fn spawn_check(
    checks: &mut JoinSet<(u32, bool)>,
    health: &dyn HealthCheck,
    cx: crate::hooks::HealthContext,
    boots: u32,
) {
    let verdict = health.check(cx);
    checks.spawn(async move {
        let inner = tokio::spawn(verdict);
        let _guard = AbortOnDrop(inner.abort_handle());
        let ok = inner.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "health check panicked: counted as failed");
            false
        });
        (boots, ok)
    });
}

async fn reboot_host(mut hook: Box<dyn RebootHook>, slot: u8) -> Result<(), AgentError> {
    tokio::task::spawn_blocking(move || hook.reboot(slot))
        .await
        .map_err(|e| AgentError::Task(format!("reboot hook: {e}")))?
        .map_err(AgentError::Reboot)
}
