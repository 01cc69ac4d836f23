//! Device reports: each event about a rollout's manifest moves that device's row, once, in
//! counter order. Nothing is audited per device (the wave transitions are, with counts).

use super::repo;
use super::{DeviceReport, DeviceState, Engine, RolloutError, RolloutState, Transport};
use airlock_proto::{Action, Event, Manifest, Status};

impl<T: Transport> Engine<T> {
    /// Applies one verified device report.
    ///
    /// Ignored, without error: events that name no manifest (status, refusals of commands),
    /// manifests of no rollout, devices outside the rollout, and stale reports (a counter not
    /// above the last applied for this device). A report for an aborted rollout that shows the
    /// device running the change (installed, confirmed) gets it a revert command at once.
    pub async fn on_report(&self, report: DeviceReport) -> Result<(), RolloutError> {
        self.on_reports(vec![report]).await
    }

    /// Applies verified device reports in order, the events about manifests in one
    /// transaction (a fleet sends several per device; one commit each could not keep up with
    /// 10,000 devices). Status reports are handled one by one after them. If the transaction
    /// fails, each report is tried alone, so one bad report cannot hold back the others.
    pub async fn on_reports(&self, reports: Vec<DeviceReport>) -> Result<(), RolloutError> {
        let (statuses, events): (Vec<_>, Vec<_>) =
            reports.into_iter().partition(|r| matches!(r.event, Event::Status(_)));
        if !events.is_empty() {
            match self.apply_events(&events).await {
                Ok(owed) => self.revert_aborted(owed).await?,
                Err(e) if events.len() > 1 => {
                    tracing::warn!(error = %e, reports = events.len(), "applying a batch of reports failed; one by one");
                    self.apply_one_by_one(&events).await?;
                }
                Err(e) => return Err(e),
            }
        }
        for r in &events {
            // A refused command names no manifest: the answer to a revert sent after an abort.
            if let Event::Refused { manifest: None, reason } = r.event {
                let mut conn = self.wf.store.pool().acquire().await?;
                if repo::revert_refused(&mut conn, &r.device, reason.name()).await? > 0 {
                    tracing::warn!(device = r.device, reason = reason.name(), "a device refused its revert command");
                }
            }
        }
        for r in statuses {
            if let Event::Status(status) = &r.event {
                self.on_status(&r.device, status, r.counter).await?;
            }
        }
        Ok(())
    }

    /// After a failed batch: each report in its own transaction; the first error, once all
    /// were tried.
    async fn apply_one_by_one(&self, events: &[DeviceReport]) -> Result<(), RolloutError> {
        let mut first = None;
        for r in events {
            match self.apply_events(std::slice::from_ref(r)).await {
                Ok(owed) => self.revert_aborted(owed).await?,
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// One transaction for `reports` (none of them a status); the aborted rollouts in which a
    /// device now runs the change and is owed a revert command.
    async fn apply_events(&self, reports: &[DeviceReport]) -> Result<Vec<i64>, RolloutError> {
        let now = self.wf.clock.now_ms();
        let mut owed = Vec::new();
        let mut rollouts = std::collections::HashMap::new();
        let mut tx = self.wf.store.pool().begin().await?;
        for report in reports {
            let Some(digest) = report.event.manifest() else { continue };
            let Ok(counter) = i64::try_from(report.counter) else {
                tracing::warn!(
                    device = report.device,
                    counter = report.counter,
                    "report counter out of range; ignored"
                );
                continue;
            };
            let digest = hex::encode(digest.0);
            let rollout = match rollouts.get(&digest) {
                Some(r) => r,
                None => {
                    let found = repo::rollout_by_digest(&mut tx, &digest).await?;
                    rollouts.entry(digest).or_insert(found)
                }
            };
            let Some(rollout) = rollout else { continue };
            let id = rollout.proposal_id;
            let Some(row) = repo::device(&mut tx, id, &report.device).await? else {
                tracing::debug!(
                    proposal = id,
                    device = report.device,
                    "report from a device outside the rollout; ignored"
                );
                continue;
            };
            if row.last_counter.is_some_and(|last| counter <= last) {
                continue;
            }
            let (state, detail) = match transition(row.state, &report.event) {
                Some((state, detail)) => (state, detail.map(str::to_string)),
                // A sign of life only: the state and its detail stay.
                None => (row.state, row.detail.clone()),
            };
            let applied =
                repo::apply_report(&mut tx, id, &report.device, row.state, state, detail.as_deref(), counter, now)
                    .await?;
            let runs_change = matches!(state, DeviceState::Installed | DeviceState::Confirmed) && state != row.state;
            if applied && rollout.state == RolloutState::Aborted && runs_change && !owed.contains(&id) {
                owed.push(id);
            }
        }
        tx.commit().await?;
        Ok(owed)
    }

    /// Sends the revert commands aborted rollouts owe (a device reported running one late).
    async fn revert_aborted(&self, rollouts: Vec<i64>) -> Result<(), RolloutError> {
        for id in rollouts {
            let m = {
                let mut conn = self.wf.store.pool().acquire().await?;
                let Some(r) = repo::rollout(&mut conn, id).await? else { continue };
                self.material(&mut conn, id, r.revision).await?
            };
            self.revert_owed(id, &m).await?;
        }
        Ok(())
    }
}

impl<T: Transport> Engine<T> {
    /// A device reports its status on every (re)connect.
    ///
    /// A signed status can prove what a lost report would have said. A controller can lose a
    /// device's last report (an embedded broker's sessions die with the controller); a device
    /// that runs the rollout's target (firmware version, or config version), is not in a test
    /// boot, and has accepted a sequence at or past the manifest's, has confirmed it.
    ///
    /// A device that reconnects still on its old version while its delivery was sent or
    /// accepted may have lost the delivery or the download (a power cut reboots a device
    /// mid-download after the broker had its acknowledgement): while rolling out, the same
    /// signed delivery is sent again. The core resumes an interrupted download of the same
    /// manifest and ignores it while the download is still running. The device timeout keeps
    /// running from the first send.
    async fn on_status(&self, device: &str, status: &Status, counter: u64) -> Result<(), RolloutError> {
        let Ok(counter) = i64::try_from(counter) else { return Ok(()) };
        if status.testing {
            return Ok(());
        }
        let candidates = {
            let mut conn = self.wf.store.pool().acquire().await?;
            repo::unconfirmed(&mut conn, device).await?
        };
        for c in candidates {
            let m = {
                let mut conn = self.wf.store.pool().acquire().await?;
                self.material(&mut conn, c.proposal, c.revision).await?
            };
            let Ok(manifest) = airlock_proto::decode::<Manifest<'_>>(&m.manifest.body) else { continue };
            let runs = status.sequence >= manifest.sequence
                && match manifest.action {
                    Action::Firmware(f) => status.firmware == f.version,
                    Action::Config(c) => status.config == c.version,
                    Action::Decommission => false,
                };
            let now = self.wf.clock.now_ms();
            if !runs {
                let lost = matches!(c.state, DeviceState::Sent | DeviceState::Accepted)
                    && c.rolling_out
                    && status.sequence <= manifest.sequence;
                if lost {
                    if let Some(bytes) = m.release()?.delivery_for(device) {
                        tracing::info!(
                            proposal = c.proposal,
                            device,
                            "device reconnected without the update: delivery sent again"
                        );
                        if let Err(e) = self.transport.send_delivery(device, bytes).await {
                            tracing::warn!(proposal = c.proposal, device, error = %e, "delivery not sent again");
                        }
                    }
                }
                continue;
            }
            let mut tx = self.wf.store.pool().begin().await?;
            let detail = Some("confirmed by status report");
            if repo::apply_report(&mut tx, c.proposal, device, c.state, DeviceState::Confirmed, detail, counter, now)
                .await?
            {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
        }
        Ok(())
    }
}

/// How far along a device is; a report moves it forward only. Refusals and timeouts sit just
/// after sending, so any later sign of progress supersedes them (the record follows the device).
fn rank(s: DeviceState) -> u8 {
    match s {
        DeviceState::Pending => 0,
        DeviceState::Sent | DeviceState::Failed | DeviceState::Refused => 1,
        DeviceState::Accepted => 2,
        DeviceState::Installed => 3,
        DeviceState::Confirmed => 4,
        DeviceState::Reverted => 5,
    }
}

/// The state (and detail) `event` moves a device in state `from` to, or `None` when it changes
/// nothing but shows the device is alive (progress, a report older in the life of the update
/// than the state already known, a refusal echoing a repeated delivery after acceptance).
fn transition(from: DeviceState, event: &Event) -> Option<(DeviceState, Option<&'static str>)> {
    let (to, detail) = match *event {
        Event::Accepted { .. } => (DeviceState::Accepted, None),
        Event::Installed { .. } | Event::ConfigApplied { .. } => (DeviceState::Installed, None),
        Event::Confirmed { .. } | Event::ConfigConfirmed { .. } | Event::Decommissioned { .. } => {
            (DeviceState::Confirmed, None)
        }
        Event::Reverted { reason, .. } | Event::ConfigReverted { reason, .. } => {
            (DeviceState::Reverted, Some(reason.name()))
        }
        Event::Refused { reason, .. } => {
            // Once a device accepted this manifest, a refusal of it can only answer a repeated
            // delivery (the broker delivers at least once): the device already has it.
            return (rank(from) <= 1).then_some((DeviceState::Refused, Some(reason.name())));
        }
        Event::Progress { .. } | Event::Status(_) => return None,
    };
    (rank(to) > rank(from)).then_some((to, detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_proto::{Digest, Refusal, RevertReason, Version};

    const M: Digest = Digest::ZERO;

    #[test]
    fn reports_move_a_device_forward_only() {
        let confirmed = Event::Confirmed { manifest: M, version: Version::new(2, 4, 1) };
        assert_eq!(
            transition(DeviceState::Sent, &Event::Accepted { manifest: M }),
            Some((DeviceState::Accepted, None))
        );
        assert_eq!(transition(DeviceState::Installed, &confirmed), Some((DeviceState::Confirmed, None)));
        assert_eq!(transition(DeviceState::Confirmed, &Event::Accepted { manifest: M }), None);
        // A late report supersedes a timeout.
        assert_eq!(transition(DeviceState::Failed, &confirmed), Some((DeviceState::Confirmed, None)));
        let reverted = Event::Reverted { manifest: Some(M), reason: RevertReason::Command };
        assert_eq!(transition(DeviceState::Confirmed, &reverted), Some((DeviceState::Reverted, Some("command"))));
        assert_eq!(transition(DeviceState::Reverted, &confirmed), None);
    }

    #[test]
    fn a_refusal_counts_before_acceptance_and_is_an_echo_after_it() {
        let replay = Event::Refused { manifest: Some(M), reason: Refusal::Replay };
        assert_eq!(transition(DeviceState::Sent, &replay), Some((DeviceState::Refused, Some("replay"))));
        assert_eq!(transition(DeviceState::Confirmed, &replay), None);
        assert_eq!(transition(DeviceState::Installed, &replay), None);
    }
}
