//! Timers: a lane's timeout escalates the request to the next pool of its chain, or expires it
//! (never into approval). Timers are rows; any replica claims due ones, and a timer fires once.

use super::repo;
use super::{State, Workflow, WorkflowError};
use crate::policy::NoResponse;
use serde_json::json;

impl Workflow {
    /// Fires every due timer; returns how many changed a proposal.
    ///
    /// Each timer is claimed and fired in one transaction: marking it fired is the claim. On
    /// PostgreSQL a second replica reaching the same row waits for the first one's lock, then
    /// sees it fired and skips it; a controller killed mid-way rolls back, and the timer fires
    /// after the restart.
    pub async fn fire_due_timers(&self) -> Result<usize, WorkflowError> {
        let mut changed = 0;
        let mut skipped = Vec::new();
        loop {
            let now = self.clock.now_ms();
            let mut tx = self.store.pool().begin().await?;
            let Some(t) = repo::next_due_timer(&mut tx, now, &skipped).await? else { break };
            if !repo::fire_timer(&mut tx, t.id).await? {
                // Another replica fired it meanwhile.
                skipped.push(t.id);
                continue;
            }
            let mut p = repo::proposal(&mut tx, t.proposal_id).await?;
            let current =
                p.state == State::AwaitingApproval && p.revision == t.revision && p.escalation_level == t.level;
            if current {
                self.time_out(&mut tx, &mut p).await?;
                changed += 1;
            }
            super::pause_point("timer").await;
            tx.commit().await?;
        }
        Ok(changed)
    }

    async fn time_out(&self, conn: &mut sqlx::AnyConnection, p: &mut repo::ProposalRow) -> Result<(), WorkflowError> {
        let now = self.clock.now_ms();
        let outcome = if p.break_glass {
            NoResponse::Expire
        } else {
            self.policy.lane(p.tier).map_or(NoResponse::Expire, |l| l.on_no_response)
        };
        let chain = if p.break_glass { 0 } else { self.policy.lane(p.tier).map_or(0, |l| l.escalation.len()) };
        if outcome == NoResponse::Escalate && (p.escalation_level as usize) < chain {
            p.escalation_level += 1;
            p.updated_at = now;
            let pools = self.pools_at(p, p.escalation_level);
            self.record(
                conn,
                "controller",
                "escalated",
                Some(p.id),
                json!({ "level": p.escalation_level, "pools": pools }),
            )
            .await?;
            if let Some(timeout) = self.lane_timeout(p) {
                repo::insert_timer(conn, p.id, p.revision, p.escalation_level, now + timeout * 1000).await?;
            }
        } else {
            p.state = State::Expired;
            p.decided_at = Some(now);
            p.updated_at = now;
            let revert = outcome == NoResponse::Revert;
            self.record(conn, "controller", "expired", Some(p.id), json!({ "revert_to_safe_state": revert })).await?;
        }
        repo::update_proposal(conn, p).await
    }
}
