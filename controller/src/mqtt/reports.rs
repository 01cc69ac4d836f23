//! Checking device reports and handing them to the rollout engine.
//!
//! A report arrives on `airlock/v1/d/{id}/report`. It is accepted only if, in this order:
//! it decodes as a signed envelope of at most `MAX_REPORT` bytes; the device `{id}` of the
//! *topic* is enrolled; the signature verifies with that device's enrolled key (so no device, and
//! no broker, can speak for another: a report signed by B on A's topic is refused); the body
//! decodes and names the same device; and its counter is above the last one accepted from it.
//!
//! The counter check is done twice: against the last counters in memory (cheap), and by a
//! conditional `UPDATE` of the device row that also records what it said (last seen, last event,
//! firmware). That update is the claim: a replay after a restart, or the same report handled by
//! two controller replicas, is accepted once. Reports are handled in batches of up to [`BATCH`]
//! in one transaction, so a wave of reports costs one commit per batch, not one per report.
//!
//! An accepted report goes to the rollout engine as a [`DeviceReport`]: if the engine's channel
//! is full, it waits up to [`ENGINE_WAIT`] for room (a busy engine slows the bus down rather
//! than losing reports), then is logged and dropped. Every refusal is counted
//! (`report_dropped_<reason>`) and logged with the device and reason.

use super::stats::Stats;
use crate::registry::{self, Seen};
use crate::rollout::transport::DeviceReport;

/// How long a report waits for room in the rollout engine's queue.
pub const ENGINE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
use crate::store::Store;
use crate::workflow::Clock;
use airlock_proto::limits::MAX_REPORT;
use airlock_proto::sig::decode_signed;
use airlock_proto::{Domain, Event, Refusal, Report};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Reports waiting to be checked.
pub const QUEUE: usize = 16_384;
/// Reports checked in one transaction.
pub const BATCH: usize = 256;

/// Why a report was dropped (the counter is `report_dropped_<name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Not a signed report within the size bound, or a body that does not decode.
    Malformed,
    /// The topic names a device that is not enrolled.
    UnknownDevice,
    /// Signed by a key other than the enrolled key of the device the topic names.
    WrongSigner,
    /// The signature does not verify.
    BadSignature,
    /// The body names another device than the topic.
    DeviceMismatch,
    /// The counter is not above the last one accepted.
    Replay,
    /// The queue was full.
    Overloaded,
    /// The database failed; the report is lost (the device reports its status again).
    Internal,
}

impl Dropped {
    /// The counter name.
    pub const fn counter(self) -> &'static str {
        match self {
            Dropped::Malformed => "report_dropped_malformed",
            Dropped::UnknownDevice => "report_dropped_unknown_device",
            Dropped::WrongSigner => "report_dropped_wrong_signer",
            Dropped::BadSignature => "report_dropped_bad_signature",
            Dropped::DeviceMismatch => "report_dropped_device_mismatch",
            Dropped::Replay => "report_dropped_replay",
            Dropped::Overloaded => "report_dropped_overloaded",
            Dropped::Internal => "report_dropped_internal",
        }
    }
}

/// Checks reports from the queue until it closes, forwarding accepted ones to `engine`.
#[derive(Debug)]
pub struct Reports {
    store: Store,
    clock: Clock,
    engine: mpsc::Sender<DeviceReport>,
    stats: Arc<Stats>,
    /// Last counter accepted per device, with the key it was accepted under.
    last: HashMap<String, (String, u64)>,
}

impl Reports {
    /// A checker writing to `store` and forwarding to `engine`.
    pub fn new(store: Store, clock: Clock, engine: mpsc::Sender<DeviceReport>, stats: Arc<Stats>) -> Reports {
        Reports { store, clock, engine, stats, last: HashMap::new() }
    }

    /// Runs until the queue closes.
    pub async fn run(mut self, mut queue: mpsc::Receiver<(String, Vec<u8>)>) {
        let mut batch = Vec::with_capacity(BATCH);
        while queue.recv_many(&mut batch, BATCH).await > 0 {
            self.handle(&batch).await;
            batch.clear();
        }
    }

    /// Checks, records and forwards one batch of `(topic device, payload)`.
    pub async fn handle(&mut self, batch: &[(String, Vec<u8>)]) {
        let accepted = match self.check_all(batch).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, reports = batch.len(), "recording reports failed: dropped");
                self.stats.add(Dropped::Internal.counter(), batch.len() as u64);
                return;
            }
        };
        for (report, key) in accepted {
            self.last.insert(report.device.clone(), (key, report.counter));
            self.stats.bump("report_accepted");
            tracing::debug!(device = %report.device, counter = report.counter, event = %event_name(&report.event), "report accepted");
            // A busy engine holds reports back a while (and the bus's queue with them) before one
            // is dropped; an engine that does not run at all must not stop the bus.
            let sent = match self.engine.try_send(report) {
                Err(mpsc::error::TrySendError::Full(r)) => {
                    match tokio::time::timeout(ENGINE_WAIT, self.engine.reserve()).await {
                        Ok(Ok(permit)) => {
                            permit.send(r);
                            Ok(())
                        }
                        Ok(Err(_)) => Err(mpsc::error::TrySendError::Closed(r)),
                        Err(_) => Err(mpsc::error::TrySendError::Full(r)),
                    }
                }
                other => other,
            };
            match sent {
                Ok(()) => self.stats.bump("report_forwarded"),
                Err(mpsc::error::TrySendError::Full(r)) => {
                    self.stats.bump("report_engine_full");
                    tracing::warn!(device = %r.device, counter = r.counter, event = %event_name(&r.event),
                        "report accepted but the rollout engine's queue stayed full (is it running?): not forwarded");
                }
                Err(mpsc::error::TrySendError::Closed(r)) => {
                    self.stats.bump("report_engine_closed");
                    tracing::info!(device = %r.device, counter = r.counter, event = %event_name(&r.event),
                        "report accepted; no rollout engine to forward it to");
                }
            }
        }
    }

    async fn check_all(&mut self, batch: &[(String, Vec<u8>)]) -> Result<Vec<(DeviceReport, String)>, sqlx::Error> {
        let mut accepted = Vec::new();
        let mut tx = self.store.pool().begin().await?;
        let now = self.clock.now_ms();
        for (device, payload) in batch {
            match self.check(&mut tx, device, payload).await {
                Ok((report, key)) => {
                    let (event, firmware) = (event_name(&report.event), firmware(&report.event));
                    let seen = Seen { id: device, counter: report.counter as i64, at_ms: now, event: &event, firmware };
                    let claimed = registry::record_report(&mut tx, &seen).await.map_err(store_error)?;
                    if claimed {
                        accepted.push((report, key));
                    } else {
                        self.refuse(device, Dropped::Replay, Some(report.counter));
                    }
                }
                Err(Checked::Dropped(why, counter)) => self.refuse(device, why, counter),
                Err(Checked::Store(e)) => return Err(e),
            }
        }
        tx.commit().await?;
        Ok(accepted)
    }

    fn refuse(&self, device: &str, why: Dropped, counter: Option<u64>) {
        self.stats.bump(why.counter());
        tracing::warn!(%device, reason = why.counter(), counter, "device report dropped");
    }

    /// Every check but the claim; returns the report and the key (hex) it verified with.
    async fn check(
        &self,
        tx: &mut sqlx::AnyConnection,
        device: &str,
        payload: &[u8],
    ) -> Result<(DeviceReport, String), Checked> {
        let drop = |why| Checked::Dropped(why, None);
        let signed = decode_signed(payload, MAX_REPORT).map_err(|_| drop(Dropped::Malformed))?;
        let (key_hex, stored) = registry::report_key(tx, device)
            .await
            .map_err(|e| Checked::Store(store_error(e)))?
            .ok_or(drop(Dropped::UnknownDevice))?;
        let key = crate::keys::parse_public(&key_hex).ok_or(drop(Dropped::Internal))?;
        let body = signed.verify_by(Domain::Report, &[key]).map_err(|r| match r {
            Refusal::UnknownKey => drop(Dropped::WrongSigner),
            _ => drop(Dropped::BadSignature),
        })?;
        let report: Report<'_> = airlock_proto::decode(body).map_err(|_| drop(Dropped::Malformed))?;
        if report.device != device {
            return Err(drop(Dropped::DeviceMismatch));
        }
        let counter = report.counter;
        // Counters are stored as BIGINT; one above i64::MAX (2^31 boots) is not a real device.
        if i64::try_from(counter).is_err() {
            return Err(drop(Dropped::Malformed));
        }
        let in_memory = self.last.get(device).filter(|(k, _)| *k == key_hex).map_or(0, |(_, c)| *c);
        if counter <= in_memory || counter as i64 <= stored {
            return Err(Checked::Dropped(Dropped::Replay, Some(counter)));
        }
        let r = DeviceReport { device: device.to_string(), counter, at: report.at, event: report.event };
        Ok((r, key_hex))
    }
}

enum Checked {
    Dropped(Dropped, Option<u64>),
    Store(sqlx::Error),
}

/// The database error inside a store error (the registry functions only fail with those).
fn store_error(e: crate::store::StoreError) -> sqlx::Error {
    match e {
        crate::store::StoreError::Db(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// A short name of what a report says, kept as the device's `last_event`.
pub fn event_name(e: &Event) -> String {
    match e {
        Event::Status(_) => "status".into(),
        Event::Accepted { .. } => "accepted".into(),
        Event::Progress { received, total, .. } => format!("progress:{received}/{total}"),
        Event::Refused { reason, .. } => format!("refused:{}", reason.name()),
        Event::Installed { .. } => "installed".into(),
        Event::Confirmed { version, .. } => format!("confirmed:{version}"),
        Event::Reverted { reason, .. } => format!("reverted:{}", reason.name()),
        Event::ConfigApplied { version, .. } => format!("config_applied:{version}"),
        Event::ConfigConfirmed { version, .. } => format!("config_confirmed:{version}"),
        Event::ConfigReverted { reason, .. } => format!("config_reverted:{}", reason.name()),
        Event::Decommissioned { .. } => "decommissioned".into(),
    }
}

/// The firmware version a report says the device runs, if it says.
fn firmware(e: &Event) -> Option<String> {
    match e {
        Event::Status(s) => Some(s.firmware.to_string()),
        Event::Confirmed { version, .. } => Some(version.to_string()),
        _ => None,
    }
}
