//! Risk tiers, approver roles and the device-enforced tier rules.
//!
//! The controller's policy decides a proposal's tier from many fields (environment, share of
//! fleet, time window, ...). The device cannot see most of them, so the TrustRoot carries a
//! *floor*: for the fields the manifest declares (cohort size, rollback plan, security flag, kind)
//! the lowest tier the device accepts, and for each tier the quorum it needs. A controller can
//! always tier higher than the floor, never lower.

use crate::manifest::{Action, Manifest, Rollback};
use crate::Refusal;
use serde::{Deserialize, Serialize};

/// A risk tier; the order is the order of strictness. (On the wire a tier is its variant index;
/// the snake_case names are for JSON and match [`Tier::name`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Tier {
    /// Runs without a human decision; logged.
    AutoPass = 0,
    /// One approver.
    Single = 1,
    /// Two distinct approvers.
    TwoPerson = 2,
    /// A domain expert (and whatever else the rules require).
    Expert = 3,
    /// Nobody may approve; the proposal is escalated instead.
    Blocked = 4,
}

impl Tier {
    /// All tiers, in order.
    pub const ALL: [Tier; 5] = [Tier::AutoPass, Tier::Single, Tier::TwoPerson, Tier::Expert, Tier::Blocked];

    /// A short, stable, lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Tier::AutoPass => "auto_pass",
            Tier::Single => "single",
            Tier::TwoPerson => "two_person",
            Tier::Expert => "expert",
            Tier::Blocked => "blocked",
        }
    }
}

/// A set of approver roles, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Roles(pub u16);

impl Roles {
    /// No role.
    pub const NONE: Roles = Roles(0);
    /// May approve ordinary changes.
    pub const APPROVER: Roles = Roles(1);
    /// A domain expert (decommissions, risky hardware).
    pub const EXPERT: Roles = Roles(1 << 1);
    /// A security reviewer.
    pub const SECURITY: Roles = Roles(1 << 2);
    /// May approve a break-glass emergency change.
    pub const BREAK_GLASS: Roles = Roles(1 << 3);

    /// Whether every role in `other` is in `self`.
    pub const fn contains(self, other: Roles) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets.
    pub const fn union(self, other: Roles) -> Roles {
        Roles(self.0 | other.0)
    }
}

/// What one tier needs from its approvals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// Distinct approvers from the roster, none of them the requester.
    pub approvals: u8,
    /// Each of these roles must be held by at least one of the approvers.
    pub roles: Roles,
}

/// A cohort-size threshold: cohorts of at least `min_size` devices need at least `tier`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeFloor {
    /// Smallest cohort size this floor applies to.
    pub min_size: u32,
    /// The lowest tier allowed from that size on.
    pub tier: Tier,
}

/// The emergency lane: fewer approvals, but hard caps the device enforces itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassRule {
    /// What a break-glass manifest needs from its approvals (instead of its tier's).
    pub requirement: Requirement,
    /// Largest cohort a break-glass manifest may declare.
    pub max_cohort: u32,
    /// Longest lifetime (`expires_at - issued_at`), in seconds.
    pub max_lifetime_secs: u32,
}

/// The tier rules every device enforces, carried in the TrustRoot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierRules {
    /// Quorum for each approvable tier, indexed by `Tier as usize` (AutoPass .. Expert).
    pub requirements: [Requirement; 4],
    /// Floors by declared cohort size.
    pub size_floors: heapless::Vec<SizeFloor, { crate::limits::MAX_SIZE_FLOORS }>,
    /// Floor for a manifest without a rollback plan.
    pub no_rollback: Tier,
    /// Floor for a security-related manifest.
    pub security: Tier,
    /// Floor for each kind: firmware, config, decommission.
    pub kind: [Tier; 3],
    /// The emergency lane.
    pub break_glass: BreakGlassRule,
}

impl TierRules {
    /// The lowest tier the device accepts for this manifest's declared fields.
    pub fn floor(&self, m: &Manifest<'_>) -> Tier {
        let mut floor = self.kind[m.action.kind_index()];
        for f in &self.size_floors {
            if m.cohort.size >= f.min_size {
                floor = floor.max(f.tier);
            }
        }
        if m.rollback == Rollback::None {
            floor = floor.max(self.no_rollback);
        }
        if m.security {
            floor = floor.max(self.security);
        }
        floor
    }

    /// What approvals `tier` needs; the blocked tier cannot be approved at all.
    pub fn requirement(&self, tier: Tier) -> Result<Requirement, Refusal> {
        match tier {
            Tier::Blocked => Err(Refusal::TierBlocked),
            t => Ok(self.requirements[t as usize]),
        }
    }

    pub(crate) fn check_bounds(&self) -> Result<(), Refusal> {
        // Stricter tiers never need fewer approvals than looser ones: a roster that said
        // otherwise would make "tier above floor" meaningless.
        let ok = self.requirements.windows(2).all(|w| w[0].approvals <= w[1].approvals);
        if ok {
            Ok(())
        } else {
            Err(Refusal::Malformed)
        }
    }
}

impl Action<'_> {
    /// Index into [`TierRules::kind`].
    pub const fn kind_index(&self) -> usize {
        match self {
            Action::Firmware(_) => 0,
            Action::Config(_) => 1,
            Action::Decommission => 2,
        }
    }
}
