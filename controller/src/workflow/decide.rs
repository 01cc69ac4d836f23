//! Approving and rejecting. The approver signs the manifest digest with their own key (the CLI
//! or the browser holds it); the server verifies the signature against the roster and, once the
//! quorum holds by the very check devices run, signs the manifest with the release key.

use super::repo::{self, ApprovalRow};
use super::{State, Workflow, WorkflowError};
use crate::users::User;
use airlock_proto::{check_quorum, Approval, Decision, Digest, Manifest, Refusal, Tier};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// An approver's decision as submitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// The revision reviewed (must be current).
    pub revision: u32,
    /// Approve or reject.
    pub decision: Decision,
    /// Ed25519 over the approval statement (manifest digest, decision, approver key), hex.
    pub signature: String,
    /// Why.
    pub reason: String,
    /// Milliseconds spent on the card (web UI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_ms: Option<i64>,
    /// Whether the diff was opened (web UI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_opened: Option<bool>,
}

impl Workflow {
    /// Records an approval or rejection; signs the manifest when the quorum holds.
    pub async fn decide(
        &self,
        approver: &User,
        id: i64,
        req: DecisionRequest,
    ) -> Result<super::ProposalView, WorkflowError> {
        let now = self.clock.now_ms();
        let mut tx = self.store.pool().begin().await?;
        let mut p = repo::proposal(&mut tx, id).await?;
        let action = match req.decision {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        };
        match p.state {
            State::AwaitingApproval => {}
            State::Blocked => {
                return Err(WorkflowError::WrongState { id, state: "blocked (nobody can approve this lane)", action })
            }
            other => return Err(WorkflowError::WrongState { id, state: other.name(), action }),
        }
        if req.revision != p.revision {
            return Err(WorkflowError::StaleRevision { given: req.revision, current: p.revision });
        }
        if approver.name == p.requester {
            return Err(WorkflowError::SelfApproval(approver.name.clone()));
        }
        let key = approver.public_key.as_deref().and_then(crate::keys::parse_public);
        let roles = self.required_roles(&p);
        let Some(key) = key.filter(|_| roles.iter().any(|r| approver.has(r))) else {
            return Err(WorkflowError::Forbidden { user: approver.name.clone(), action, role: roles.join(" or ") });
        };
        let routed: Vec<String> = (0..=p.escalation_level).flat_map(|l| self.pools_at(&p, l)).collect();
        if !routed.iter().any(|pool| self.policy.pools.get(pool).is_some_and(|m| m.members.contains(&approver.name))) {
            return Err(WorkflowError::Forbidden {
                user: approver.name.clone(),
                action,
                role: format!("membership of a pool this request is routed to ({})", routed.join(", ")),
            });
        }
        let existing = repo::approvals(&mut tx, id, p.revision).await?;
        if existing.iter().any(|a| a.approver == approver.name) {
            return Err(WorkflowError::DuplicateApprover(approver.name.clone()));
        }
        let revision = repo::revision(&mut tx, id, p.revision).await?;
        let digest = airlock_proto::manifest_digest(&revision.manifest);
        let signature = parse_signature(&req.signature);
        let approval = Approval {
            approver: key,
            decision: req.decision,
            signature: signature.unwrap_or(airlock_proto::Signature::ZERO),
        };
        if signature.is_none() || approval.verify(digest).is_err() {
            return Err(WorkflowError::BadSignature { approver: approver.name.clone(), digest: hex::encode(digest.0) });
        }
        let row = ApprovalRow {
            approver: approver.name.clone(),
            public_key: hex::encode(key.0),
            decision: action.into(),
            signature: req.signature.to_lowercase(),
            reason: req.reason.clone(),
            card_ms: req.card_ms,
            diff_opened: req.diff_opened,
            at: now,
            voided: false,
        };
        repo::insert_approval(&mut tx, id, p.revision, &row).await?;
        self.record(
            &mut tx,
            &approver.name,
            if req.decision == Decision::Approve { "approved" } else { "rejected" },
            Some(id),
            json!({ "revision": p.revision, "manifest_digest": hex::encode(digest.0), "public_key": row.public_key,
                    "signature": row.signature, "reason": req.reason, "card_ms": req.card_ms, "diff_opened": req.diff_opened }),
        )
        .await?;
        if req.decision == Decision::Reject {
            p.state = State::Rejected;
            p.decided_at = Some(now);
            p.updated_at = now;
            repo::cancel_timers(&mut tx, id).await?;
            repo::update_proposal(&mut tx, &p).await?;
        } else if self.quorum_met(&revision.manifest, digest, &existing, approval)? {
            p.state = State::Approved;
            repo::cancel_timers(&mut tx, id).await?;
            self.record(
                &mut tx,
                "controller",
                "quorum_met",
                Some(id),
                json!({ "revision": p.revision, "tier": p.tier.name() }),
            )
            .await?;
            self.sign(&mut tx, &mut p, &revision).await?;
            super::pause_point("signed").await;
        } else {
            p.updated_at = now;
            repo::update_proposal(&mut tx, &p).await?;
        }
        super::pause_point("decided").await;
        tx.commit().await?;
        self.view(id).await
    }

    /// Roles an approver of this proposal must hold one of.
    pub(super) fn required_roles(&self, p: &repo::ProposalRow) -> Vec<String> {
        if p.break_glass {
            return vec!["break_glass".into()];
        }
        match self.policy.lane(p.tier) {
            Some(l) if !l.roles.is_empty() => l.roles.clone(),
            _ => vec!["approver".into(), "expert".into(), "security".into()],
        }
    }

    /// Whether the approvals so far plus `new` satisfy the quorum — decided by the same check
    /// devices make, against the TrustRoot devices hold.
    fn quorum_met(
        &self,
        manifest: &[u8],
        digest: Digest,
        existing: &[ApprovalRow],
        new: Approval,
    ) -> Result<bool, WorkflowError> {
        let mut approvals: Vec<Approval> = existing
            .iter()
            .filter(|a| a.decision == "approve" && !a.voided)
            .filter_map(|a| {
                Some(Approval {
                    approver: crate::keys::parse_public(&a.public_key)?,
                    decision: Decision::Approve,
                    signature: parse_signature(&a.signature)?,
                })
            })
            .collect();
        approvals.push(new);
        let m: Manifest<'_> = airlock_proto::decode(manifest).map_err(WorkflowError::DeviceRefusal)?;
        match check_quorum(&self.trust.root, &m, digest, &approvals, Tier::AutoPass) {
            Ok(()) => Ok(true),
            Err(Refusal::QuorumShort | Refusal::MissingRole) => Ok(false),
            Err(other) => Err(WorkflowError::DeviceRefusal(other)),
        }
    }
}

pub(super) fn parse_signature(hex_sig: &str) -> Option<airlock_proto::Signature> {
    let bytes: [u8; 64] = hex::decode(hex_sig.trim()).ok()?.try_into().ok()?;
    Some(airlock_proto::Signature::from(bytes))
}
