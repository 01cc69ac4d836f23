//! Ticks: time out silent devices, judge the current wave, send the next deliveries within the
//! rate limit, and send the revert commands an abort owes. Every send is decided and recorded in
//! one transaction, committed before the transport sees it (see the module docs: at most once).

use super::material::Material;
use super::repo::{self, RolloutRow};
use super::{plan, DeviceState, Engine, RolloutError, RolloutState, Transport};
use crate::policy::Kind;
use airlock_proto::build::SignedOwned;
use airlock_proto::{Command, CommandAction, Domain};
use sqlx::AnyConnection;

/// How long a revert command stays valid: long enough for a device that is offline for days to
/// act on it when it reconnects (the broker keeps it in the device's persistent session).
const REVERT_LIFETIME_SECS: u64 = 7 * 86_400;

/// Most deliveries one tick sends (the rollout loop applies reports between ticks).
pub const SEND_PER_TICK: usize = 512;

impl<T: Transport> Engine<T> {
    /// One step of every rollout with work to do: silent devices time out, the current wave is
    /// judged (next wave, completion, breach), deliveries go out within the rate limit, revert
    /// commands owed after an abort go out. A failing rollout does not stop the others; the
    /// first error is returned after all were tried.
    pub async fn tick(&self) -> Result<(), RolloutError> {
        let rollouts = {
            let mut conn = self.wf.store.pool().acquire().await?;
            repo::active(&mut conn).await?
        };
        let mut first_error = None;
        for r in rollouts {
            if let Err(e) = self.tick_one(&r).await {
                tracing::error!(proposal = r.proposal_id, error = %e, "rollout tick failed");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn tick_one(&self, r: &RolloutRow) -> Result<(), RolloutError> {
        let m = {
            let mut conn = self.wf.store.pool().acquire().await?;
            self.material(&mut conn, r.proposal_id, r.revision).await?
        };
        self.time_out(r.proposal_id, &m).await?;
        match r.state {
            RolloutState::RollingOut => {
                if self.evaluate(r.proposal_id, &m).await? {
                    self.send_wave(r.proposal_id, &m).await?;
                }
            }
            RolloutState::Aborted => self.revert_owed(r.proposal_id, &m).await?,
            RolloutState::Paused | RolloutState::Completed => {}
        }
        Ok(())
    }

    /// Devices sent, accepted or installed that have been silent for the device timeout fail.
    async fn time_out(&self, id: i64, m: &Material) -> Result<u64, RolloutError> {
        let now = self.wf.clock.now_ms();
        let cutoff = now.saturating_sub(m.timeout_ms);
        let mut tx = self.wf.store.pool().begin().await?;
        let mut n = 0;
        for (state, detail) in [
            (DeviceState::Sent, "timeout_after_sent"),
            (DeviceState::Accepted, "timeout_after_accepted"),
            (DeviceState::Installed, "timeout_after_installed"),
        ] {
            n += repo::time_out(&mut tx, id, state, cutoff, detail, now).await?;
        }
        tx.commit().await?;
        if n > 0 {
            tracing::info!(proposal = id, devices = n, "devices timed out");
        }
        Ok(n)
    }

    /// Sends to pending devices of the current wave, one transaction per device, while the rate
    /// limit allows and the rollout is still rolling out in that wave; at most
    /// [`SEND_PER_TICK`] per call, so reports are applied in between.
    async fn send_wave(&self, id: i64, m: &Material) -> Result<usize, RolloutError> {
        let release = m.release()?;
        let mut sent = 0;
        while sent < SEND_PER_TICK {
            let now = self.wf.clock.now_ms();
            let mut tx = self.wf.store.pool().begin().await?;
            let Some(r) = repo::lock(&mut tx, id).await?.filter(|r| r.state == RolloutState::RollingOut) else {
                tx.rollback().await?;
                break;
            };
            let Some(clock) = plan::take_token(r.rate_at_us, now.saturating_mul(1000), m.plan.rate_per_sec) else {
                tx.rollback().await?;
                break;
            };
            let Some(device) = repo::next_pending(&mut tx, id, r.wave).await? else {
                tx.rollback().await?;
                break;
            };
            // `None` for a device outside the signed cohort: it is never sent anything.
            let delivery = release.delivery_for(&device);
            let (to, detail) = match delivery {
                Some(_) => (DeviceState::Sent, None),
                None => (DeviceState::Failed, Some("not_in_cohort")),
            };
            let taken = RolloutRow { rate_at_us: clock, updated_at: now, ..r.clone() };
            let claimed = repo::claim_send(&mut tx, id, &device, to, detail, now).await?
                && repo::update_rollout(&mut tx, &r, &taken).await?;
            if !claimed {
                tx.rollback().await?;
                break;
            }
            tx.commit().await?;
            let Some(bytes) = delivery else { continue };
            // Committed: from here the device is never chosen again. A kill before the next
            // line loses this one delivery; the device timeout then counts it as failed.
            if let Err(e) = self.transport.send_delivery(&device, bytes).await {
                tracing::warn!(proposal = id, device, error = %e, "delivery not handed over; retried on a later tick");
                let mut conn = self.wf.store.pool().acquire().await?;
                repo::unclaim_send(&mut conn, id, &device, now).await?;
                break;
            }
            sent += 1;
        }
        Ok(sent)
    }

    /// Claims and sends the revert commands an aborted rollout still owes.
    pub(super) async fn revert_owed(&self, id: i64, m: &Material) -> Result<(), RolloutError> {
        let now = self.wf.clock.now_ms();
        let mut tx = self.wf.store.pool().begin().await?;
        let reverts = self.claim_reverts(&mut tx, id, m, now).await?;
        tx.commit().await?;
        self.send_reverts(id, m, reverts).await
    }

    /// Gives every device that installed or confirmed the change and has no revert command yet
    /// the next command sequence, inside the caller's transaction. Decommissioning cannot be
    /// reverted: nothing is claimed for it.
    pub(super) async fn claim_reverts(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        m: &Material,
        now: i64,
    ) -> Result<Vec<(String, i64)>, RolloutError> {
        if m.kind == Kind::Decommission {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for device in repo::owed_revert(conn, id).await? {
            let seq = crate::store::next_counter(conn, "command_sequence").await?;
            if repo::claim_revert(conn, id, &device, seq, now).await? {
                out.push((device, seq));
            }
        }
        Ok(out)
    }

    /// Signs and sends claimed revert commands (after their claim committed). A command the
    /// transport refuses is unclaimed, so the next tick sends a new one.
    pub(super) async fn send_reverts(
        &self,
        id: i64,
        m: &Material,
        reverts: Vec<(String, i64)>,
    ) -> Result<(), RolloutError> {
        let action = match m.kind {
            Kind::Firmware => CommandAction::Revert,
            Kind::Config => CommandAction::RevertConfig,
            Kind::Decommission => return Ok(()),
        };
        let issued_at = u64::try_from(self.wf.clock.now_ms() / 1000).unwrap_or(0);
        for (device, seq) in reverts {
            let command = Command {
                device: &device,
                sequence: seq.unsigned_abs(),
                issued_at,
                expires_at: issued_at + REVERT_LIFETIME_SECS,
                action,
            };
            let bytes = SignedOwned::sign(Domain::Command, &command, self.wf.release_signing_key()).to_bytes();
            if let Err(e) = self.transport.send_command(&device, bytes).await {
                tracing::warn!(proposal = id, device, error = %e, "revert not handed over; retried on a later tick");
                let mut conn = self.wf.store.pool().acquire().await?;
                repo::unclaim_revert(&mut conn, id, &device, seq).await?;
            }
        }
        Ok(())
    }
}
