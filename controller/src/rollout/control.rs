//! Starting, wave transitions, breaches, resuming and aborting: each one transaction with its
//! audit entry, conditional on the state it was decided in.

use super::material::Material;
use super::plan::{self, Counts, Verdict};
use super::repo::{self, RolloutRow};
use super::{Engine, RolloutError, RolloutState, RolloutStatus, Transport};
use crate::users::User;
use crate::workflow::spec::Breach;
use crate::workflow::State;
use serde_json::json;
use sqlx::AnyConnection;

/// The actor of the engine's own steps in the audit trail.
const CONTROLLER: &str = "controller";

impl<T: Transport> Engine<T> {
    /// Starts a rollout for every proposal in state `signed`; returns how many started.
    ///
    /// Each start is one transaction: the proposal moves to `rolling_out` (only if it is still
    /// `signed`, so two replicas never start one twice), the cohort is assigned to waves, and
    /// `rollout_started` is audited. A proposal whose signed material does not verify stays
    /// `signed` and is reported; the others still start.
    pub async fn start_signed(&self) -> Result<usize, RolloutError> {
        let signed = {
            let mut conn = self.wf.store.pool().acquire().await?;
            repo::signed_proposals(&mut conn).await?
        };
        let mut started = 0;
        let mut first_error = None;
        for (id, revision) in signed {
            match self.start(id, revision).await {
                Ok(true) => started += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(proposal = id, error = %e, "rollout not started");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(started),
        }
    }

    async fn start(&self, id: i64, revision: u32) -> Result<bool, RolloutError> {
        let now = self.wf.clock.now_ms();
        let mut tx = self.wf.store.pool().begin().await?;
        let m = self.material(&mut tx, id, revision).await?;
        if !repo::set_proposal_state(&mut tx, id, State::Signed, State::RollingOut, now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let assigned = plan::assign_waves(&m.plan.waves, m.cohort.ids());
        let waves = assigned.last().map_or(1, |a| a.1 + 1);
        let row = RolloutRow {
            proposal_id: id,
            revision,
            manifest_digest: m.digest_hex.clone(),
            state: RolloutState::RollingOut,
            wave: 0,
            waves,
            wave_started_at: now,
            started_at: now,
            updated_at: now,
            finished_at: None,
            // A full bucket: the first tick may send one second's worth.
            rate_at_us: now.saturating_mul(1000) - plan::BURST_US,
            breach: None,
        };
        repo::insert_rollout(&mut tx, &row).await?;
        let mut sizes = vec![0u32; waves as usize];
        for (position, (device, wave)) in assigned.iter().enumerate() {
            repo::insert_device(&mut tx, id, device, *wave, position as i64, now).await?;
            if let Some(s) = sizes.get_mut(*wave as usize) {
                *s += 1;
            }
        }
        let body =
            json!({ "revision": revision, "manifest_digest": m.digest_hex, "wave_sizes": sizes, "plan": m.plan });
        self.wf.record(&mut tx, CONTROLLER, "rollout_started", Some(id), body).await?;
        tx.commit().await?;
        tracing::info!(proposal = id, devices = assigned.len(), waves, "rollout started");
        Ok(true)
    }

    /// Judges the current wave of a rolling-out rollout and acts on the verdict: the next wave
    /// (judged in turn), completion, or a breach. Returns whether the rollout is still rolling
    /// out.
    pub(super) async fn evaluate(&self, id: i64, m: &Material) -> Result<bool, RolloutError> {
        loop {
            let now = self.wf.clock.now_ms();
            let mut tx = self.wf.store.pool().begin().await?;
            let Some(r) = repo::lock(&mut tx, id).await?.filter(|r| r.state == RolloutState::RollingOut) else {
                tx.rollback().await?;
                return Ok(false);
            };
            let c = repo::counts(&mut tx, id, r.wave).await?;
            match plan::judge(m.plan.success_threshold, m.plan.failure_threshold, r.wave, &c) {
                Verdict::Continue => {
                    tx.rollback().await?;
                    return Ok(true);
                }
                Verdict::Advance => {
                    let last = r.wave + 1 >= r.waves;
                    if last && repo::awaiting_outcome(&mut tx, id).await? > 0 {
                        // Completed means every device has an outcome: wait for the stragglers
                        // (their report, or the device timeout failing them).
                        tx.rollback().await?;
                        return Ok(true);
                    }
                    if !self.advance(&mut tx, &r, &c, now).await? {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    tx.commit().await?;
                }
                Verdict::Breach(reason) => {
                    let reverts = self.breach(&mut tx, &r, m, &c, &reason, now).await?;
                    tx.commit().await?;
                    tracing::warn!(proposal = id, wave = r.wave, %reason, "rollout breached");
                    self.send_reverts(id, m, reverts).await?;
                    return Ok(false);
                }
            }
        }
    }

    /// The next wave, or completion after the last. False if the rollout moved meanwhile.
    async fn advance(
        &self,
        conn: &mut AnyConnection,
        r: &RolloutRow,
        c: &Counts,
        now: i64,
    ) -> Result<bool, RolloutError> {
        let last = r.wave + 1 >= r.waves;
        let next = if last {
            RolloutRow { state: RolloutState::Completed, updated_at: now, finished_at: Some(now), ..r.clone() }
        } else {
            RolloutRow { wave: r.wave + 1, wave_started_at: now, updated_at: now, ..r.clone() }
        };
        if !repo::update_rollout(conn, r, &next).await? {
            return Ok(false);
        }
        let id = r.proposal_id;
        if last {
            repo::set_proposal_state(conn, id, State::RollingOut, State::Completed, now).await?;
            let body = json!({ "wave": r.wave + 1, "counts": c, "duration_ms": now - r.started_at });
            self.wf.record(conn, CONTROLLER, "rollout_completed", Some(id), body).await?;
        } else {
            let body = json!({ "wave": r.wave + 1, "counts": c, "next_wave": r.wave + 2 });
            self.wf.record(conn, CONTROLLER, "rollout_wave_completed", Some(id), body).await?;
        }
        Ok(true)
    }

    /// Pauses or aborts as the plan says; returns the revert commands claimed (abort).
    async fn breach(
        &self,
        conn: &mut AnyConnection,
        r: &RolloutRow,
        m: &Material,
        c: &Counts,
        reason: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, RolloutError> {
        let id = r.proposal_id;
        let (state, kind) = match m.plan.on_breach {
            Breach::Pause => (RolloutState::Paused, "rollout_paused"),
            Breach::Abort => (RolloutState::Aborted, "rollout_aborted"),
        };
        let finished_at = (state == RolloutState::Aborted).then_some(now);
        let next = RolloutRow { state, updated_at: now, finished_at, breach: Some(reason.to_string()), ..r.clone() };
        if !repo::update_rollout(conn, r, &next).await? {
            return Ok(Vec::new());
        }
        repo::set_proposal_state(conn, id, State::RollingOut, state.proposal_state(), now).await?;
        let reverts =
            if state == RolloutState::Aborted { self.claim_reverts(conn, id, m, now).await? } else { Vec::new() };
        let body = json!({ "wave": r.wave + 1, "reason": reason, "counts": c, "revert_commands": reverts.len() });
        self.wf.record(conn, CONTROLLER, kind, Some(id), body).await?;
        Ok(reverts)
    }

    /// Resumes a paused rollout with the next wave. The breached wave's failed devices stay
    /// failed; its devices not yet sent move into the next wave (or a remainder wave, if the
    /// last wave breached), so every cohort member is still offered the change. Approvers and
    /// experts may resume, never the proposal's requester: resuming is approving to continue.
    pub async fn resume(&self, approver: &User, id: i64, reason: &str) -> Result<RolloutStatus, RolloutError> {
        if !(approver.has("approver") || approver.has("expert")) {
            return Err(RolloutError::Forbidden {
                user: approver.name.clone(),
                action: "resume a rollout",
                needs: "role approver or expert".into(),
            });
        }
        if reason.trim().is_empty() {
            return Err(RolloutError::NoReason("resume"));
        }
        let now = self.wf.clock.now_ms();
        let mut tx = self.wf.store.pool().begin().await?;
        let r = repo::lock(&mut tx, id).await?.ok_or(RolloutError::NotFound(id))?;
        if r.state != RolloutState::Paused {
            return Err(RolloutError::WrongState { id, state: r.state.name(), action: "resume" });
        }
        if repo::requester(&mut tx, id).await?.as_deref() == Some(approver.name.as_str()) {
            return Err(RolloutError::Forbidden {
                user: approver.name.clone(),
                action: "resume a rollout",
                needs: "someone other than the proposal's requester".into(),
            });
        }
        let breached = r.wave;
        let moved = repo::move_pending(&mut tx, id, breached, breached + 1).await?;
        let waves = if breached + 1 >= r.waves && moved > 0 { breached + 2 } else { r.waves };
        let done = breached + 1 >= waves;
        let next = RolloutRow {
            state: if done { RolloutState::Completed } else { RolloutState::RollingOut },
            wave: if done { breached } else { breached + 1 },
            waves,
            wave_started_at: now,
            updated_at: now,
            finished_at: done.then_some(now),
            ..r.clone()
        };
        if !repo::update_rollout(&mut tx, &r, &next).await? {
            return Err(RolloutError::WrongState { id, state: "changing", action: "resume" });
        }
        repo::set_proposal_state(&mut tx, id, State::Paused, next.state.proposal_state(), now).await?;
        let body = json!({ "reason": reason, "breach": r.breach, "breached_wave": breached,
                           "next_wave": (!done).then_some(breached + 1), "moved_unsent": moved, "completed": done });
        self.wf.record(&mut tx, &approver.name, "rollout_resumed", Some(id), body).await?;
        tx.commit().await?;
        self.status(id).await
    }

    /// Aborts a rolling-out or paused rollout: nothing more is sent, and every device that
    /// installed or confirmed the change gets a signed revert command. Approvers, experts,
    /// security, admins and the proposal's requester may abort (stopping is the safe direction).
    pub async fn abort(&self, who: &User, id: i64, reason: &str) -> Result<RolloutStatus, RolloutError> {
        if reason.trim().is_empty() {
            return Err(RolloutError::NoReason("abort"));
        }
        let now = self.wf.clock.now_ms();
        let mut tx = self.wf.store.pool().begin().await?;
        let r = repo::lock(&mut tx, id).await?.ok_or(RolloutError::NotFound(id))?;
        let privileged = ["approver", "expert", "security", "admin"].iter().any(|role| who.has(role));
        if !privileged && repo::requester(&mut tx, id).await?.as_deref() != Some(who.name.as_str()) {
            return Err(RolloutError::Forbidden {
                user: who.name.clone(),
                action: "abort a rollout",
                needs: "role approver, expert, security or admin, or to be the requester".into(),
            });
        }
        if !matches!(r.state, RolloutState::RollingOut | RolloutState::Paused) {
            return Err(RolloutError::WrongState { id, state: r.state.name(), action: "abort" });
        }
        let m = self.material(&mut tx, id, r.revision).await?;
        let c = repo::counts(&mut tx, id, r.wave).await?;
        let next = RolloutRow {
            state: RolloutState::Aborted,
            updated_at: now,
            finished_at: Some(now),
            breach: Some(format!("aborted by {}: {reason}", who.name)),
            ..r.clone()
        };
        if !repo::update_rollout(&mut tx, &r, &next).await? {
            return Err(RolloutError::WrongState { id, state: "changing", action: "abort" });
        }
        repo::set_proposal_state(&mut tx, id, r.state.proposal_state(), State::Aborted, now).await?;
        let reverts = self.claim_reverts(&mut tx, id, &m, now).await?;
        let body = json!({ "reason": reason, "wave": r.wave + 1, "counts": c, "revert_commands": reverts.len() });
        self.wf.record(&mut tx, &who.name, "rollout_aborted", Some(id), body).await?;
        tx.commit().await?;
        self.send_reverts(id, &m, reverts).await?;
        self.status(id).await
    }
}
