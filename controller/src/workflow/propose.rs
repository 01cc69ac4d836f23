//! Proposing: resolve the cohort, tier by policy, build the manifest, and route or execute —
//! one transaction.

use super::repo::{self, ProposalRow, RevisionRow};
use super::spec::{manifest_body, ManifestInputs, Spec};
use super::{State, Workflow, WorkflowError};
use crate::policy::{Decision, Facts};
use crate::registry::{self, Device, Preview};
use crate::users::User;
use airlock_proto::{PublicKey, Tier};
use serde_json::json;

/// Everything about a revision that comes from the database and the policy, not the spec.
pub(super) struct Resolved {
    pub cohort: crate::cohort::Cohort,
    pub preview: Preview,
    pub decision: Decision,
}

impl Workflow {
    /// Resolves the cohort and tiers the spec (also what `explain` shows).
    pub(super) async fn resolve(&self, spec: &Spec, fleet: &[Device]) -> Result<Resolved, WorkflowError> {
        self.resolve_now(spec, fleet)
    }

    /// [`Workflow::resolve`], which needs nothing but the fleet and the policy.
    pub(super) fn resolve_now(&self, spec: &Spec, fleet: &[Device]) -> Result<Resolved, WorkflowError> {
        spec.validate()?;
        let (cohort, preview) = registry::resolve(fleet, &spec.cohort)?;
        let in_cohort: Vec<&Device> = fleet.iter().filter(|d| cohort.contains(&d.id)).collect();
        let facts = Facts {
            kind: spec.kind,
            environments: in_cohort.iter().map(|d| d.environment.clone()).collect(),
            hardware: in_cohort.iter().map(|d| d.hardware.clone()).collect(),
            cohort_size: cohort.size(),
            fleet_size: fleet.len() as u32,
            rollback: spec.has_rollback(),
            security: spec.security,
            at: (self.clock.now_ms() / 1000) as u64,
        };
        let decision = self.policy.decide(&facts);
        if spec.break_glass.is_some() {
            let bg = &self.policy.break_glass;
            if cohort.size() > bg.max_cohort {
                return Err(WorkflowError::BreakGlassCap(format!(
                    "cohort of {} devices is above the break-glass cap of {}",
                    cohort.size(),
                    bg.max_cohort
                )));
            }
            if spec.lifetime_secs() > bg.max_lifetime_secs {
                return Err(WorkflowError::BreakGlassCap(format!(
                    "lifetime of {}s is above the break-glass cap of {}s",
                    spec.lifetime_secs(),
                    bg.max_lifetime_secs
                )));
            }
            if decision.tier == Tier::Blocked {
                return Err(WorkflowError::BreakGlassCap(
                    "the blocked lane cannot be broken: rework the proposal".into(),
                ));
            }
        }
        Ok(Resolved { cohort, preview, decision })
    }

    /// Explains how `spec` would be tiered, without proposing it.
    pub async fn explain(&self, spec: &Spec) -> Result<(Decision, Preview), WorkflowError> {
        let fleet = registry::all(self.store.pool()).await?;
        let r = self.resolve(spec, &fleet).await?;
        Ok((r.decision, r.preview))
    }

    /// Submits a proposal.
    pub async fn propose(&self, requester: &User, mut spec: Spec) -> Result<super::ProposalView, WorkflowError> {
        if !requester.has("requester") {
            return Err(WorkflowError::Forbidden {
                user: requester.name.clone(),
                action: "propose",
                role: "requester".into(),
            });
        }
        if spec.break_glass.is_some() && spec.lifetime.is_none() {
            // Break-glass manifests default to the longest lifetime the policy allows.
            spec.lifetime = Some(format!("{}s", self.policy.break_glass.max_lifetime_secs));
        }
        let fleet = registry::all(self.store.pool()).await?;
        let resolved = self.resolve(&spec, &fleet).await?;
        let now = self.clock.now_ms();
        let mut tx = self.store.pool().begin().await?;
        self.check_rollback(&mut tx, &spec).await?;
        let mut p = ProposalRow {
            id: 0,
            kind: spec.kind,
            title: spec.title.clone(),
            requester: requester.name.clone(),
            revision: 1,
            state: State::AwaitingApproval,
            tier: resolved.decision.tier,
            break_glass: spec.break_glass.is_some(),
            escalation_level: 0,
            created_at: now,
            updated_at: now,
            decided_at: None,
        };
        p.id = repo::insert_proposal(&mut tx, &p).await?;
        let revision = self.new_revision(&mut tx, &p, &spec, &resolved, requester, fleet.len() as u32, None).await?;
        self.record(
            &mut tx,
            &requester.name,
            "proposed",
            Some(p.id),
            json!({ "spec": spec.redacted(), "cohort": { "size": resolved.preview.count, "fleet": resolved.preview.fleet, "root": resolved.preview.root }, "manifest_digest": revision.manifest_digest }),
        )
        .await?;
        if let Some(reason) = &spec.break_glass {
            self.record(&mut tx, &requester.name, "break_glass", Some(p.id), json!({ "reason": reason })).await?;
        }
        self.route(&mut tx, &mut p, &revision, &resolved.decision, &requester.name).await?;
        super::pause_point("proposed").await;
        tx.commit().await?;
        self.view(p.id).await
    }

    /// Builds and stores a revision: a new manifest, or `reuse` (an earlier revision's manifest
    /// when nothing the approvers signed changed).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn new_revision(
        &self,
        conn: &mut sqlx::AnyConnection,
        p: &ProposalRow,
        spec: &Spec,
        r: &Resolved,
        author: &User,
        fleet_size: u32,
        reuse: Option<&RevisionRow>,
    ) -> Result<RevisionRow, WorkflowError> {
        let now = self.clock.now_ms();
        let manifest = match reuse {
            Some(old) => old.manifest.clone(),
            None => {
                let sequence = crate::store::next_counter(conn, "manifest_sequence").await? as u64;
                let inputs = self.manifest_inputs(conn, p, r, sequence, (now / 1000) as u64).await?;
                manifest_body(spec, &inputs, &self.salt(p.id, p.revision))?
            }
        };
        let row = RevisionRow {
            revision: p.revision,
            created_at: now,
            created_by: author.name.clone(),
            spec: serde_json::to_string(spec).map_err(|e| crate::store::corrupt("revisions", e))?,
            cohort: r.cohort.ids().to_vec(),
            fleet_size,
            decision: serde_json::to_string(&r.decision).map_err(|e| crate::store::corrupt("revisions", e))?,
            manifest_digest: hex::encode(airlock_proto::manifest_digest(&manifest).0),
            manifest,
            release_sig: None,
            signed_at: None,
        };
        repo::insert_revision(conn, p.id, &row).await?;
        Ok(row)
    }

    pub(super) async fn manifest_inputs(
        &self,
        conn: &mut sqlx::AnyConnection,
        p: &ProposalRow,
        r: &Resolved,
        sequence: u64,
        issued_at: u64,
    ) -> Result<ManifestInputs, WorkflowError> {
        let requester = crate::users::by_name(conn, &p.requester).await?;
        Ok(ManifestInputs {
            proposal: p.id as u64,
            revision: p.revision,
            sequence,
            issued_at,
            tier: r.decision.tier,
            policy: self.policy.digest(),
            requester: requester_key(&p.requester, requester.as_ref().and_then(|u| u.public_key.as_deref())),
            cohort: airlock_proto::Cohort { root: r.cohort.root(), size: r.cohort.size() },
        })
    }

    /// Puts a freshly tiered revision on its way: auto-pass signs at once, blocked waits for
    /// rework, anything else waits for approvers with a timer.
    pub(super) async fn route(
        &self,
        conn: &mut sqlx::AnyConnection,
        p: &mut ProposalRow,
        revision: &RevisionRow,
        decision: &Decision,
        actor: &str,
    ) -> Result<(), WorkflowError> {
        let now = self.clock.now_ms();
        p.tier = decision.tier;
        p.escalation_level = 0;
        p.updated_at = now;
        self.record(
            conn,
            actor,
            "tiered",
            Some(p.id),
            json!({ "revision": p.revision, "tier": decision.tier.name(), "policy_digest": decision.policy_digest,
                    "matched_rules": decision.matched, "default_applied": decision.default_applied, "device_floor": decision.device_floor.name() }),
        )
        .await?;
        repo::cancel_timers(conn, p.id).await?;
        match decision.tier {
            Tier::AutoPass if !p.break_glass => {
                self.record(conn, actor, "auto_passed", Some(p.id), json!({ "revision": p.revision })).await?;
                self.sign(conn, p, revision).await?;
            }
            Tier::Blocked => {
                p.state = State::Blocked;
                let pools = self.policy.lane(Tier::Blocked).map(|l| l.pools.clone()).unwrap_or_default();
                self.record(conn, actor, "blocked", Some(p.id), json!({ "escalated_to": pools })).await?;
                repo::update_proposal(conn, p).await?;
            }
            tier => {
                p.state = State::AwaitingApproval;
                let pools = self.pools_at(p, 0);
                self.record(
                    conn,
                    actor,
                    "awaiting_approval",
                    Some(p.id),
                    json!({ "pools": pools, "tier": tier.name() }),
                )
                .await?;
                if let Some(timeout) = self.lane_timeout(p) {
                    repo::insert_timer(conn, p.id, p.revision, 0, now + timeout * 1000).await?;
                }
                repo::update_proposal(conn, p).await?;
            }
        }
        Ok(())
    }

    /// Signs the current revision's manifest with the release key: the proposal is executable.
    pub(super) async fn sign(
        &self,
        conn: &mut sqlx::AnyConnection,
        p: &mut ProposalRow,
        revision: &RevisionRow,
    ) -> Result<(), WorkflowError> {
        let now = self.clock.now_ms();
        let sig = airlock_proto::sig::sign(airlock_proto::Domain::Manifest, &revision.manifest, &self.release);
        let sig_hex = hex::encode(sig.0);
        repo::set_release_signature(conn, p.id, p.revision, &sig_hex, now).await?;
        p.state = State::Signed;
        p.decided_at = Some(now);
        p.updated_at = now;
        repo::update_proposal(conn, p).await?;
        self.record(
            conn,
            "controller",
            "signed",
            Some(p.id),
            json!({ "revision": p.revision, "manifest_digest": revision.manifest_digest, "release_key": hex::encode(self.release_key().0), "signature": sig_hex }),
        )
        .await?;
        if p.break_glass {
            let pool = self.policy.break_glass.post_review_pool.clone();
            repo::insert_task(conn, p.id, "post_review", &pool, now).await?;
            self.record(conn, "controller", "post_review_opened", Some(p.id), json!({ "pool": pool })).await?;
        }
        Ok(())
    }

    /// The pools a request has reached at escalation level `level`.
    pub(super) fn pools_at(&self, p: &ProposalRow, level: u32) -> Vec<String> {
        if p.break_glass {
            return self.policy.break_glass.pools.clone();
        }
        let Some(lane) = self.policy.lane(p.tier) else { return Vec::new() };
        match level {
            0 => lane.pools.clone(),
            n => lane.escalation.get(n as usize - 1).cloned().into_iter().collect(),
        }
    }

    /// The salt of secret commitments in a revision's config payload. Derived from the release
    /// key's secret, so nobody who sees the commitment can brute-force a short secret, and fixed
    /// per proposal and revision, so rebuilding a manifest from the same spec gives the same bytes.
    pub(super) fn salt(&self, proposal: i64, revision: u32) -> [u8; 16] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(b"airlock/v1/config-salt\0");
        h.update(self.release.to_bytes());
        h.update(proposal.to_le_bytes());
        h.update(revision.to_le_bytes());
        let d: [u8; 32] = h.finalize().into();
        let mut s = [0u8; 16];
        s.copy_from_slice(&d[..16]);
        s
    }

    /// The lane timeout in seconds (break-glass requests wait at most their own lifetime cap).
    pub(super) fn lane_timeout(&self, p: &ProposalRow) -> Option<i64> {
        if p.break_glass {
            return Some(self.policy.break_glass.max_lifetime_secs as i64);
        }
        self.policy.lane(p.tier).and_then(|l| l.timeout_secs).map(|t| t as i64)
    }
}

/// The requester's key in the manifest: their own, or, for requesters without one, a value
/// derived from the name that can never be an approver's key.
pub(super) fn requester_key(name: &str, key: Option<&str>) -> PublicKey {
    if let Some(k) = key.and_then(crate::keys::parse_public) {
        return k;
    }
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"airlock/v1/requester-without-key\0");
    h.update(name.as_bytes());
    PublicKey::from(<[u8; 32]>::from(h.finalize()))
}
