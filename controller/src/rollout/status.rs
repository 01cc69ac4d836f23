//! Where a rollout stands, per wave, for the API and dashboards.

use super::repo;
use super::{Counts, DeviceState, Engine, RolloutError, RolloutState, Transport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A rollout as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// The proposal.
    pub proposal: i64,
    /// The signed revision rolling out.
    pub revision: u32,
    /// Its manifest digest, hex.
    pub manifest_digest: String,
    /// State.
    pub state: RolloutState,
    /// The current wave (the last one once completed), from 0 (people see it from 1).
    pub wave: u32,
    /// Started, unix ms.
    pub started_at: i64,
    /// The current wave started, unix ms.
    pub wave_started_at: i64,
    /// Last change, unix ms.
    pub updated_at: i64,
    /// Completed or aborted, unix ms.
    pub finished_at: Option<i64>,
    /// Why the last breach (or abort) happened.
    pub breach: Option<String>,
    /// Every wave together.
    pub totals: Counts,
    /// Revert commands refused, every wave together: devices still running the aborted change.
    #[serde(default)]
    pub reverts_refused: u32,
    /// Each wave.
    pub waves: Vec<WaveStatus>,
}

/// One wave.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WaveStatus {
    /// From 0.
    pub index: u32,
    /// Devices by state.
    #[serde(flatten)]
    pub counts: Counts,
    /// Timed-out devices by what they reported last (`timeout_after_sent`, ...).
    pub failed_by_reason: BTreeMap<String, u32>,
    /// Refusals by reason (`not_in_cohort`, `replay`, ...).
    pub refused_by_reason: BTreeMap<String, u32>,
    /// Reverts by reason (`health_check_failed`, `command`, ...).
    pub reverted_by_reason: BTreeMap<String, u32>,
    /// Revert commands sent after an abort.
    pub revert_commands: u32,
    /// Revert commands the devices refused, by reason (`security_counter_downgrade`, ...):
    /// these devices still run the aborted change.
    #[serde(default)]
    pub revert_refused_by_reason: BTreeMap<String, u32>,
    /// First delivery, unix ms.
    pub first_sent_at: Option<i64>,
    /// Last change to any of its devices, unix ms.
    pub last_change_at: Option<i64>,
}

impl Counts {
    fn absorb(&mut self, o: &Counts) {
        self.size += o.size;
        self.pending += o.pending;
        self.sent += o.sent;
        self.accepted += o.accepted;
        self.installed += o.installed;
        self.confirmed += o.confirmed;
        self.failed += o.failed;
        self.refused += o.refused;
        self.reverted += o.reverted;
    }
}

impl<T: Transport> Engine<T> {
    /// The rollout of proposal `id`.
    pub async fn status(&self, id: i64) -> Result<RolloutStatus, RolloutError> {
        let mut conn = self.wf.store.pool().acquire().await?;
        let r = repo::rollout(&mut conn, id).await?.ok_or(RolloutError::NotFound(id))?;
        let rows = repo::status_rows(&mut conn, id).await?;
        drop(conn);
        let mut waves: Vec<WaveStatus> =
            (0..r.waves).map(|index| WaveStatus { index, ..WaveStatus::default() }).collect();
        for row in rows {
            while waves.len() <= row.wave as usize {
                waves.push(WaveStatus { index: waves.len() as u32, ..WaveStatus::default() });
            }
            let Some(w) = waves.get_mut(row.wave as usize) else { continue };
            w.counts.add(row.state, row.n);
            let reason = row.detail.unwrap_or_else(|| "unknown".into());
            match row.state {
                DeviceState::Failed => *w.failed_by_reason.entry(reason).or_default() += row.n,
                DeviceState::Refused => *w.refused_by_reason.entry(reason).or_default() += row.n,
                DeviceState::Reverted => *w.reverted_by_reason.entry(reason).or_default() += row.n,
                _ => {}
            }
            w.revert_commands += row.reverts;
            if let Some(why) = row.revert_refused {
                *w.revert_refused_by_reason.entry(why).or_default() += row.n;
            }
            w.first_sent_at = match (w.first_sent_at, row.first_sent) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            w.last_change_at = Some(w.last_change_at.map_or(row.last_change, |a| a.max(row.last_change)));
        }
        let mut totals = Counts::default();
        for w in &waves {
            totals.absorb(&w.counts);
        }
        Ok(RolloutStatus {
            proposal: r.proposal_id,
            revision: r.revision,
            manifest_digest: r.manifest_digest,
            state: r.state,
            wave: r.wave,
            started_at: r.started_at,
            wave_started_at: r.wave_started_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            breach: r.breach,
            reverts_refused: waves.iter().flat_map(|w| w.revert_refused_by_reason.values()).sum(),
            totals,
            waves,
        })
    }
}
