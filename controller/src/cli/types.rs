//! What the client reads from the API: mirrors of the server's `Serialize`-only types
//! (`ProposalView`, `Preview`, the policy `Decision`, `StoredEntry`), lenient where the server may
//! grow fields. Types that are already `Deserialize` on the server (`Spec`, `Device`, `User`,
//! `DecisionRequest`) are used as they are.
//!
//! Tiers arrive either as names (`two_person`) or as Rust variant names (`TwoPerson`, how
//! `airlock_proto::Tier` serialises); [`tier_name`] shows both as the name.

use crate::workflow::Spec;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// `workflow::view::ProposalView`: the approval card.
#[derive(Clone, Debug, Deserialize)]
pub struct ProposalView {
    /// Id.
    pub id: i64,
    /// The proposed action in one sentence.
    #[serde(default)]
    pub action: String,
    /// Kind.
    pub kind: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Requester.
    #[serde(default)]
    pub requester: String,
    /// State.
    pub state: String,
    /// Tier.
    pub tier: String,
    /// Break-glass lane.
    #[serde(default)]
    pub break_glass: bool,
    /// Current revision.
    pub revision: u32,
    /// The revision the manifest was built for (older after wording-only edits); servers that
    /// predate it always built the manifest for the current revision.
    #[serde(default)]
    pub manifest_revision: Option<u32>,
    /// Escalation level.
    #[serde(default)]
    pub escalation_level: u32,
    /// Pools routed to so far.
    #[serde(default)]
    pub routed_to: Vec<String>,
    /// On call per pool.
    #[serde(default)]
    pub on_call: BTreeMap<String, String>,
    /// When the current timer fires, unix ms.
    #[serde(default)]
    pub due_at: Option<i64>,
    /// Created, unix ms.
    #[serde(default)]
    pub created_at: i64,
    /// Decided, unix ms.
    #[serde(default)]
    pub decided_at: Option<i64>,
    /// Why it was tiered so (the policy decision, stored as JSON).
    #[serde(default)]
    pub decision: Value,
    /// Blast radius.
    pub preview: Preview,
    /// The spec, secrets redacted by the server.
    pub spec: Spec,
    /// The exact bytes approvers sign the digest of, hex.
    pub manifest_hex: String,
    /// The server's digest of them, hex.
    pub manifest_digest: String,
    /// Release signature once signed, hex.
    #[serde(default)]
    pub release_signature: Option<String>,
    /// What will change.
    #[serde(default)]
    pub diff: Diff,
    /// Safer variants.
    #[serde(default)]
    pub alternatives: Vec<Alternative>,
    /// Approvals of the current revision.
    #[serde(default)]
    pub approvals: Vec<ApprovalRow>,
    /// The quorum so far.
    pub quorum: Quorum,
}

/// `registry::Preview`: blast radius.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Preview {
    /// Devices in the cohort.
    pub count: u32,
    /// Devices in the fleet.
    pub fleet: u32,
    /// `count / fleet`.
    pub share: f64,
    /// Count by hardware model.
    pub by_hardware: BTreeMap<String, u32>,
    /// Count by region.
    pub by_region: BTreeMap<String, u32>,
    /// Count by current firmware version.
    pub by_firmware: BTreeMap<String, u32>,
    /// Count by environment.
    pub by_environment: BTreeMap<String, u32>,
    /// Sample ids.
    pub sample: Vec<String>,
    /// Merkle root, hex.
    pub root: String,
}

/// `workflow::view::Diff`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Diff {
    /// Current versions in the cohort, count each.
    pub firmware_from: BTreeMap<String, u32>,
    /// New firmware version.
    pub firmware_to: Option<String>,
    /// Config lines.
    pub config: Vec<DiffLine>,
    /// What the config is compared with.
    pub config_base: Option<String>,
}

/// `workflow::view::DiffLine`.
#[derive(Clone, Debug, Deserialize)]
pub struct DiffLine {
    /// Key.
    pub key: String,
    /// `added`, `removed`, `changed` or `unchanged`.
    pub change: String,
    /// Old value (the server's redaction if secret).
    #[serde(default)]
    pub old: Option<Value>,
    /// New value (the server's redaction if secret).
    #[serde(default)]
    pub new: Option<Value>,
}

/// `workflow::view::Alternative`.
#[derive(Clone, Debug, Deserialize)]
pub struct Alternative {
    /// What it is.
    pub label: String,
    /// The edited spec.
    pub spec: Spec,
}

/// `workflow::repo::ApprovalRow`.
#[derive(Clone, Debug, Deserialize)]
pub struct ApprovalRow {
    /// Who.
    pub approver: String,
    /// `approve` or `reject`.
    pub decision: String,
    /// Their reason.
    #[serde(default)]
    pub reason: String,
    /// When, unix ms.
    #[serde(default)]
    pub at: i64,
    /// Voided by a material edit.
    #[serde(default)]
    pub voided: bool,
}

/// `workflow::view::Quorum`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Quorum {
    /// Approvals needed.
    pub needed: u8,
    /// Valid approvals.
    pub have: u8,
    /// Roles required.
    pub roles: Vec<String>,
    /// Who approved.
    pub approvers: Vec<String>,
}

/// `policy::Decision`.
#[derive(Clone, Debug, Deserialize)]
pub struct PolicyDecision {
    /// The tier.
    pub tier: String,
    /// Every rule that matched.
    #[serde(default)]
    pub matched: Vec<Match>,
    /// Whether the default tier applied.
    #[serde(default)]
    pub default_applied: bool,
    /// The device floor.
    #[serde(default)]
    pub device_floor: Option<String>,
    /// Policy digest, hex.
    #[serde(default)]
    pub policy_digest: String,
}

/// `policy::Match`.
#[derive(Clone, Debug, Deserialize)]
pub struct Match {
    /// Rule name.
    pub rule: String,
    /// `file:line`.
    #[serde(default)]
    pub source: String,
    /// Tier it demands.
    pub tier: String,
    /// Conditions that held.
    #[serde(default)]
    pub because: Vec<String>,
    /// The rule's reason.
    #[serde(default)]
    pub why: Option<String>,
}

/// `POST /api/explain`'s answer.
#[derive(Clone, Debug, Deserialize)]
pub struct Explained {
    /// The decision.
    pub decision: PolicyDecision,
    /// The preview.
    pub preview: Preview,
}

/// `audit::StoredEntry`.
#[derive(Clone, Debug, Deserialize)]
pub struct StoredEntry {
    /// Position.
    pub seq: u64,
    /// Unix ms.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub kind: String,
    /// Proposal.
    #[serde(default)]
    pub proposal_id: Option<i64>,
    /// Details.
    #[serde(default)]
    pub body: Value,
    /// Hash, hex.
    #[serde(default)]
    pub hash: String,
}

/// `api::proposals::Queue`: one approver queue, a pool and a kind.
#[derive(Clone, Debug, Deserialize)]
pub struct Queue {
    /// The pool.
    pub pool: String,
    /// The proposal kind.
    pub kind: String,
    /// Who is on call.
    #[serde(default)]
    pub on_call: Option<String>,
    /// Waiting proposals, oldest first.
    #[serde(default)]
    pub items: Vec<QueueItem>,
}

/// `api::proposals::QueueItem`.
#[derive(Clone, Debug, Deserialize)]
pub struct QueueItem {
    /// Proposal id.
    pub id: i64,
    /// The action in one sentence.
    #[serde(default)]
    pub action: String,
    /// Tier.
    pub tier: String,
    /// Milliseconds since it was proposed.
    #[serde(default)]
    pub age_ms: i64,
    /// Milliseconds left before the lane's timer fires (negative: overdue).
    #[serde(default)]
    pub sla_left_ms: Option<i64>,
    /// Approvals so far and needed.
    #[serde(default)]
    pub quorum: (u8, u8),
    /// Whether the caller requested it.
    #[serde(default)]
    pub own: bool,
}

/// A tier as its lower-case name, whichever way the server spelt it.
pub fn tier_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_show_as_names_however_the_server_spells_them() {
        assert_eq!(tier_name("TwoPerson"), "two_person");
        assert_eq!(tier_name("AutoPass"), "auto_pass");
        assert_eq!(tier_name("two_person"), "two_person");
        assert_eq!(tier_name("Expert"), "expert");
    }
}
