//! A proposal as the API, the CLI and the approval card show it.
//!
//! The risk-deciding fields (kind, version, image, cohort, tier, rollback, expiry) are decoded
//! from the very manifest bytes approvers sign ("what you see is what you sign"); secret config
//! values never appear.

use super::repo::{self, ApprovalRow, ProposalRow, RevisionRow};
use super::spec::{Spec, REDACTED};
use super::{State, Workflow, WorkflowError};
use crate::registry::{self, Preview, Selector};
use airlock_proto::{Action, Manifest, Rollback, Tier};
use serde::Serialize;
use std::collections::BTreeMap;

/// The manifest fields an approver must see, decoded from the signed bytes.
#[derive(Clone, Debug, Serialize)]
pub struct ManifestSummary {
    /// Proposal and revision the manifest was built for.
    pub proposal: u64,
    /// Manifest revision.
    pub revision: u32,
    /// Device-side replay sequence.
    pub sequence: u64,
    /// `firmware`, `config` or `decommission`.
    pub kind: &'static str,
    /// Firmware version, if firmware.
    pub version: Option<String>,
    /// Hardware model, if firmware.
    pub hardware: Option<String>,
    /// Image SHA-256, hex, if firmware.
    pub image_sha256: Option<String>,
    /// Image size, if firmware.
    pub image_size: Option<u32>,
    /// Security counter, if firmware.
    pub security_counter: Option<u32>,
    /// Config version, if config.
    pub config_version: Option<u32>,
    /// Config payload as signed (secrets only as salted commitments), if config.
    pub config_payload: Option<String>,
    /// Cohort size.
    pub cohort_size: u32,
    /// Cohort root, hex.
    pub cohort_root: String,
    /// Tier.
    pub tier: &'static str,
    /// Rollback plan.
    pub rollback: String,
    /// Security-related.
    pub security: bool,
    /// Break-glass.
    pub break_glass: bool,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// Rollout plan digest, hex.
    pub rollout_plan: String,
    /// Policy digest, hex.
    pub policy: String,
}

impl ManifestSummary {
    /// Decodes the summary from manifest bytes.
    pub fn decode(bytes: &[u8]) -> Result<ManifestSummary, airlock_proto::Refusal> {
        let m: Manifest<'_> = airlock_proto::decode(bytes)?;
        let mut s = ManifestSummary {
            proposal: m.proposal,
            revision: m.revision,
            sequence: m.sequence,
            kind: "decommission",
            version: None,
            hardware: None,
            image_sha256: None,
            image_size: None,
            security_counter: None,
            config_version: None,
            config_payload: None,
            cohort_size: m.cohort.size,
            cohort_root: hex::encode(m.cohort.root.0),
            tier: m.tier.name(),
            rollback: match m.rollback {
                Rollback::None => "none".into(),
                Rollback::Previous => "previous image or config".into(),
                Rollback::Version(v) => format!("roll forward to {v}"),
            },
            security: m.security,
            break_glass: m.break_glass,
            issued_at: m.issued_at,
            expires_at: m.expires_at,
            rollout_plan: hex::encode(m.rollout_plan.0),
            policy: hex::encode(m.policy.0),
        };
        match m.action {
            Action::Firmware(f) => {
                s.kind = "firmware";
                s.version = Some(f.version.to_string());
                s.hardware = Some(f.hardware.to_string());
                s.image_sha256 = Some(hex::encode(f.image_digest.0));
                s.image_size = Some(f.image_size);
                s.security_counter = Some(f.security_counter);
            }
            Action::Config(c) => {
                s.kind = "config";
                s.config_version = Some(c.version);
                s.config_payload = Some(String::from_utf8_lossy(c.payload).into_owned());
            }
            Action::Decommission => {}
        }
        Ok(s)
    }
}

/// One line of a config diff.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiffLine {
    /// Key.
    pub key: String,
    /// `added`, `removed`, `changed` or `unchanged`.
    pub change: &'static str,
    /// Old value (redacted if secret).
    pub old: Option<serde_json::Value>,
    /// New value (redacted if secret).
    pub new: Option<serde_json::Value>,
}

/// What will change.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    /// Firmware: current versions in the cohort (count per version) to the new one.
    pub firmware_from: BTreeMap<String, u32>,
    /// The new firmware version.
    pub firmware_to: Option<String>,
    /// Config changes against the previous revision, or the last signed config push.
    pub config: Vec<DiffLine>,
    /// What the config is compared with.
    pub config_base: Option<String>,
}

/// A safer variant of the proposal that becomes an edit in one click.
#[derive(Clone, Debug, Serialize)]
pub struct Alternative {
    /// What it is.
    pub label: String,
    /// The edited spec.
    pub spec: Spec,
}

/// The quorum so far.
#[derive(Clone, Debug, Serialize)]
pub struct Quorum {
    /// Distinct approvals needed.
    pub needed: u8,
    /// Valid approvals of the current revision.
    pub have: u8,
    /// Roles one of the approvers must hold each of.
    pub roles: Vec<String>,
    /// Who has approved.
    pub approvers: Vec<String>,
}

/// A proposal with everything the approval card shows.
#[derive(Clone, Debug, Serialize)]
pub struct ProposalView {
    /// Id.
    pub id: i64,
    /// The proposed action in one sentence.
    pub action: String,
    /// Kind.
    pub kind: &'static str,
    /// Title.
    pub title: String,
    /// Requester.
    pub requester: String,
    /// State.
    pub state: State,
    /// Tier.
    pub tier: &'static str,
    /// Break-glass lane.
    pub break_glass: bool,
    /// Current revision.
    pub revision: u32,
    /// The revision the manifest was built for: older than `revision` after wording-only edits,
    /// which keep the signed bytes (and the approvals over them).
    pub manifest_revision: u32,
    /// Escalation level (0: first pools).
    pub escalation_level: u32,
    /// Pools the request has been routed to so far.
    pub routed_to: Vec<String>,
    /// Who is on call in each of them now.
    pub on_call: BTreeMap<String, String>,
    /// When the current timer fires, unix ms.
    pub due_at: Option<i64>,
    /// Created, unix ms.
    pub created_at: i64,
    /// Last change, unix ms.
    pub updated_at: i64,
    /// Decided (signed, rejected, expired), unix ms.
    pub decided_at: Option<i64>,
    /// Why it was tiered so: matched rules, policy digest.
    pub decision: serde_json::Value,
    /// Blast radius.
    pub preview: Preview,
    /// The spec, secrets redacted.
    pub spec: Spec,
    /// Decoded from the signed bytes.
    pub manifest: ManifestSummary,
    /// The exact bytes approvers sign the digest of, hex.
    pub manifest_hex: String,
    /// `SHA-256("airlock/v1/manifest\0" || manifest)`, hex.
    pub manifest_digest: String,
    /// Release signature once signed, hex.
    pub release_signature: Option<String>,
    /// What will change.
    pub diff: Diff,
    /// Safer variants.
    pub alternatives: Vec<Alternative>,
    /// Approvals of the current revision.
    pub approvals: Vec<ApprovalRow>,
    /// The quorum so far.
    pub quorum: Quorum,
}

impl Workflow {
    /// The full view of proposal `id`.
    pub async fn view(&self, id: i64) -> Result<ProposalView, WorkflowError> {
        let mut conn = self.store.pool().acquire().await?;
        let p = repo::proposal(&mut conn, id).await?;
        let rev = repo::revision(&mut conn, id, p.revision).await?;
        let approvals = repo::approvals(&mut conn, id, p.revision).await?;
        let due_at = repo::pending_due(&mut conn, id).await?;
        let base = self.config_base(&mut conn, &p).await?;
        drop(conn);
        let fleet = registry::all(self.store.pool()).await?;
        self.assemble(p, rev, approvals, due_at, base, &fleet)
    }

    /// Recent proposals, newest first.
    pub async fn list(&self, state: Option<State>, limit: i64) -> Result<Vec<ProposalView>, WorkflowError> {
        let ids: Vec<i64> = {
            let mut conn = self.store.pool().acquire().await?;
            repo::proposals(&mut conn, state, limit).await?.into_iter().map(|p| p.id).collect()
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.view(id).await?);
        }
        Ok(out)
    }

    /// The spec a config diff compares with: the previous revision, or the last signed push.
    async fn config_base(
        &self,
        conn: &mut sqlx::AnyConnection,
        p: &ProposalRow,
    ) -> Result<Option<(String, Spec)>, WorkflowError> {
        if p.revision > 1 {
            let prev = repo::revision(conn, p.id, p.revision - 1).await?;
            return Ok(parse_spec(&prev.spec).map(|s| (format!("revision {}", p.revision - 1), s)));
        }
        let mut released = Vec::new();
        for state in [State::Completed, State::RollingOut, State::Paused, State::Signed] {
            released.extend(repo::proposals(conn, Some(state), 50).await?);
        }
        released.sort_by_key(|q| std::cmp::Reverse(q.id));
        for q in released.iter().filter(|q| q.kind == p.kind && q.id != p.id) {
            let r = repo::revision(conn, q.id, q.revision).await?;
            if let Some(s) = parse_spec(&r.spec) {
                return Ok(Some((format!("proposal {} (last released config push)", q.id), s)));
            }
        }
        Ok(None)
    }

    fn assemble(
        &self,
        p: ProposalRow,
        rev: RevisionRow,
        approvals: Vec<ApprovalRow>,
        due_at: Option<i64>,
        base: Option<(String, Spec)>,
        fleet: &[registry::Device],
    ) -> Result<ProposalView, WorkflowError> {
        let spec = parse_spec(&rev.spec).ok_or_else(|| crate::store::corrupt("revisions", "spec"))?;
        let manifest = ManifestSummary::decode(&rev.manifest).map_err(WorkflowError::DeviceRefusal)?;
        let ids = Selector { ids: rev.cohort.clone(), ..Selector::default() };
        let preview =
            registry::resolve(fleet, &ids).map(|(_, pv)| pv).unwrap_or_else(|_| empty_preview(&rev, &manifest));
        let alternatives = self.safer_alternatives(&spec, fleet, preview.count, p.tier);
        let routed_to: Vec<String> = (0..=p.escalation_level).flat_map(|l| self.pools_at(&p, l)).collect();
        let now_s = (self.clock.now_ms() / 1000).max(0) as u64;
        let on_call = routed_to
            .iter()
            .filter_map(|pool| Some((pool.clone(), self.policy.pools.get(pool)?.on_call(now_s)?.to_string())))
            .collect();
        let valid: Vec<&ApprovalRow> = approvals.iter().filter(|a| a.decision == "approve" && !a.voided).collect();
        let needed = if p.break_glass {
            self.policy.break_glass.approvals
        } else {
            self.policy.lane(p.tier).map_or(0, |l| l.approvals)
        };
        let quorum = Quorum {
            needed,
            have: valid.len() as u8,
            roles: self.required_roles(&p),
            approvers: valid.iter().map(|a| a.approver.clone()).collect(),
        };
        let diff = Diff {
            firmware_from: if manifest.kind == "firmware" { preview.by_firmware.clone() } else { BTreeMap::new() },
            firmware_to: manifest.version.clone(),
            config: config_diff(base.as_ref().map(|b| &b.1), &spec),
            config_base: base.map(|b| b.0),
        };
        let action = sentence(&spec, &manifest);
        Ok(ProposalView {
            id: p.id,
            action,
            kind: p.kind.name(),
            title: p.title,
            requester: p.requester,
            state: p.state,
            tier: p.tier.name(),
            break_glass: p.break_glass,
            revision: p.revision,
            manifest_revision: manifest.revision,
            escalation_level: p.escalation_level,
            routed_to,
            on_call,
            due_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
            decided_at: p.decided_at,
            decision: serde_json::from_str(&rev.decision).unwrap_or(serde_json::Value::Null),
            preview,
            alternatives,
            spec: spec.redacted(),
            manifest_hex: hex::encode(&rev.manifest),
            manifest_digest: rev.manifest_digest,
            release_signature: rev.release_sig,
            manifest,
            diff,
            approvals,
            quorum,
        })
    }
}

fn parse_spec(s: &str) -> Option<Spec> {
    serde_json::from_str(s).ok()
}

fn empty_preview(rev: &RevisionRow, m: &ManifestSummary) -> Preview {
    Preview {
        count: m.cohort_size,
        fleet: rev.fleet_size,
        share: f64::from(m.cohort_size) / f64::from(rev.fleet_size.max(1)),
        by_hardware: BTreeMap::new(),
        by_region: BTreeMap::new(),
        by_firmware: BTreeMap::new(),
        by_environment: BTreeMap::new(),
        sample: rev.cohort.iter().take(10).cloned().collect(),
        root: m.cohort_root.clone(),
    }
}

/// "Install firmware 2.4.1 on 1,240 devices because ...".
fn sentence(spec: &Spec, m: &ManifestSummary) -> String {
    let n = thousands(m.cohort_size);
    let devices = if m.cohort_size == 1 { "device".to_string() } else { "devices".to_string() };
    let what = match m.kind {
        "firmware" => format!("Install firmware {} on {n} {devices}", m.version.as_deref().unwrap_or("?")),
        "config" => format!("Push config version {} to {n} {devices}", m.config_version.unwrap_or(0)),
        _ => format!("Decommission {n} {devices}"),
    };
    let reason = spec.reason.trim().trim_start_matches("because ").trim_end_matches('.');
    format!("{what} because {reason}.")
}

fn thousands(n: u32) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn shown(v: &super::spec::ConfigValue) -> serde_json::Value {
    if v.secret {
        serde_json::Value::String(REDACTED.into())
    } else {
        v.value.clone()
    }
}

fn config_diff(base: Option<&Spec>, spec: &Spec) -> Vec<DiffLine> {
    let Some(new) = &spec.config else { return Vec::new() };
    let empty = BTreeMap::new();
    let old = base.and_then(|b| b.config.as_ref()).map_or(&empty, |c| &c.values);
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.values.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let (o, n) = (old.get(k), new.values.get(k));
            let change = match (o, n) {
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                (Some(a), Some(b)) if a == b => "unchanged",
                _ => "changed",
            };
            DiffLine { key: k.clone(), change, old: o.map(shown), new: n.map(shown) }
        })
        .collect()
}

impl Workflow {
    /// The candidate alternatives that really are safer than the proposal as it stands: each is
    /// resolved against the fleet and tiered, and kept only if it reaches fewer devices or
    /// lands in a lower tier; its label says how many devices and which tier.
    fn safer_alternatives(&self, spec: &Spec, fleet: &[registry::Device], count: u32, tier: Tier) -> Vec<Alternative> {
        alternatives(spec)
            .into_iter()
            .filter_map(|mut alt| {
                let r = self.resolve_now(&alt.spec, fleet).ok()?;
                let (n, t) = (r.preview.count, r.decision.tier);
                if n == 0 || (n >= count && t >= tier) {
                    return None;
                }
                let devices = if n == 1 { "device" } else { "devices" };
                alt.label = format!("{} ({n} {devices}, tier {})", alt.label, t.name());
                alt.spec = alt.spec.redacted();
                Some(alt)
            })
            .collect()
    }
}

/// Candidate alternatives, secrets not yet redacted.
fn alternatives(spec: &Spec) -> Vec<Alternative> {
    let share = spec.cohort.share.unwrap_or(1.0);
    let mut out = Vec::new();
    let with_share = |label: &str, s: f64| {
        let mut alt = spec.clone();
        alt.cohort.share = Some(s.clamp(0.0001, 1.0));
        Alternative { label: label.into(), spec: alt }
    };
    if share > 0.01 {
        out.push(with_share("Canary only: 1% of the cohort", share * 0.01));
    }
    if share > 0.02 {
        out.push(with_share("Half the cohort", share * 0.5));
    }
    if !spec.has_rollback() {
        let mut alt = spec.clone();
        alt.rollback = super::spec::RollbackSpec::Previous;
        out.push(Alternative { label: "Add a rollback plan (previous image or config)".into(), spec: alt });
    }
    out
}
