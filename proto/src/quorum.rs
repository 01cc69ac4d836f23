//! The approval check a device makes, in one function the controller can run too.

use crate::bytes::Digest;
use crate::delivery::{Approval, Decision};
use crate::manifest::Manifest;
use crate::tier::{Requirement, Roles, Tier};
use crate::trust_root::TrustRoot;
use crate::Refusal;

/// Checks that `approvals` are a sufficient quorum for manifest `m` with digest `digest`.
///
/// `device_floor` is the device's own provisioned minimum tier (a production device may refuse
/// auto-pass even for a one-device cohort). A blocked tier is refused in every lane. For a
/// break-glass manifest the TrustRoot's break-glass rule replaces the tier floors: capped cohort
/// size and lifetime, and its own quorum (approvers holding the break-glass role).
///
/// Every approval must be valid: an unknown approver, a bad signature, a duplicate or the
/// requester refuses the whole delivery rather than being skipped, so what the device accepted
/// is exactly what was shown to it.
pub fn check_quorum(
    root: &TrustRoot,
    m: &Manifest<'_>,
    digest: Digest,
    approvals: &[Approval],
    device_floor: Tier,
) -> Result<(), Refusal> {
    let need = required(root, m, device_floor)?;
    let mut roles = Roles::NONE;
    for (i, a) in approvals.iter().enumerate() {
        let entry = root.approver(&a.approver).ok_or(Refusal::UnknownApprover)?;
        if approvals[..i].iter().any(|p| p.approver == a.approver) {
            return Err(Refusal::DuplicateApprover);
        }
        if a.approver == m.requester {
            return Err(Refusal::RequesterApproved);
        }
        a.verify(digest)?;
        if a.decision == Decision::Reject {
            return Err(Refusal::RejectedByApprover);
        }
        roles = roles.union(entry.roles);
    }
    if approvals.len() < usize::from(need.approvals) {
        return Err(Refusal::QuorumShort);
    }
    if !roles.contains(need.roles) {
        return Err(Refusal::MissingRole);
    }
    Ok(())
}

/// What the manifest needs: the break-glass rule, or its tier's requirement once the tier is
/// checked against the floor.
pub fn required(root: &TrustRoot, m: &Manifest<'_>, device_floor: Tier) -> Result<Requirement, Refusal> {
    let rules = &root.rules;
    if m.tier == Tier::Blocked {
        return Err(Refusal::TierBlocked);
    }
    if m.break_glass {
        let bg = rules.break_glass;
        let lifetime = m.expires_at.saturating_sub(m.issued_at);
        if m.cohort.size > bg.max_cohort || lifetime > u64::from(bg.max_lifetime_secs) {
            return Err(Refusal::BreakGlassCap);
        }
        return Ok(bg.requirement);
    }
    if m.tier < rules.floor(m).max(device_floor) {
        return Err(Refusal::TierBelowFloor);
    }
    rules.requirement(m.tier)
}
