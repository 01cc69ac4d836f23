//! The compiled policy.

use airlock_proto::{Roles, Tier, TierRules};
use std::collections::BTreeMap;

/// What a proposal does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Install firmware.
    Firmware,
    /// Push a configuration.
    Config,
    /// Retire devices.
    Decommission,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 3] = [Kind::Firmware, Kind::Config, Kind::Decommission];

    /// The name used in policies, queues and the API.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Firmware => "firmware",
            Kind::Config => "config",
            Kind::Decommission => "decommission",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// What happens when nobody decides before the lane's timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoResponse {
    /// The proposal expires.
    Expire,
    /// The request moves to the next pool of the escalation chain; expires after the last.
    Escalate,
    /// The proposal expires and the fleet is told to return to its safe state.
    Revert,
}

/// A lane: how one tier is approved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Lane {
    /// Distinct approvers needed (never the requester).
    pub approvals: u8,
    /// Roles that must each be held by at least one approver.
    pub roles: Vec<String>,
    /// Pools the request is routed to first.
    pub pools: Vec<String>,
    /// Seconds before the no-response outcome applies; `None`: waits forever.
    pub timeout_secs: Option<u64>,
    /// Pools to escalate to, in order.
    pub escalation: Vec<String>,
    /// What happens on timeout.
    pub on_no_response: NoResponse,
}

/// An approver pool with an optional on-call rotation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Pool {
    /// Member user names, in rotation order.
    pub members: Vec<String>,
    /// Rotation period in seconds; the on-call member is `members[(now / period) % len]`.
    pub rotation_secs: Option<u64>,
}

impl Pool {
    /// Who is on call at `now` (unix seconds); the whole pool may still approve.
    pub fn on_call(&self, now: u64) -> Option<&str> {
        let n = self.members.len() as u64;
        if n == 0 {
            return None;
        }
        let i = self.rotation_secs.map_or(0, |p| (now / p.max(1)) % n);
        self.members.get(i as usize).map(String::as_str)
    }
}

/// The emergency lane.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BreakGlass {
    /// Largest cohort.
    pub max_cohort: u32,
    /// Longest lifetime in seconds.
    pub max_lifetime_secs: u64,
    /// Approvals needed (from the break-glass role).
    pub approvals: u8,
    /// Pools that may approve.
    pub pools: Vec<String>,
    /// Pool that gets the automatic post-review task.
    pub post_review_pool: String,
}

/// A condition set; every present condition must hold.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct When {
    /// The proposal kind is one of these.
    pub kind: Option<Vec<Kind>>,
    /// Every device of the cohort is in one of these environments.
    pub environment: Option<Vec<String>>,
    /// Some device of the cohort is one of these hardware models.
    pub hardware: Option<Vec<String>>,
    /// The cohort has at least this many devices.
    pub cohort_size_at_least: Option<u32>,
    /// The cohort is more than this share of the fleet.
    pub share_above: Option<f64>,
    /// The cohort is at least this share of the fleet.
    pub share_at_least: Option<f64>,
    /// A rollback plan is (true) or is not (false) present.
    pub rollback: Option<bool>,
    /// The change is (true) or is not (false) security-related.
    pub security: Option<bool>,
    /// The proposal arrives within these UTC minutes of the day, `[from, to)`, wrapping midnight.
    pub hours: Option<(u16, u16)>,
    /// The proposal arrives on one of these UTC weekdays (0 = Monday).
    pub days: Option<Vec<u8>>,
}

/// A rule: conditions and the tier they demand.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Why the rule exists, shown by `explain`.
    pub why: Option<String>,
    /// File it came from.
    pub file: String,
    /// Line of its `[[rule]]` header.
    pub line: usize,
    /// Conditions.
    pub when: When,
    /// Tier demanded when they hold.
    pub tier: Tier,
}

/// A loaded, validated policy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Policy {
    /// SHA-256 over the policy files (name, NUL, content, in name order): the policy version.
    #[serde(serialize_with = "hex_digest")]
    pub digest: [u8; 32],
    /// Files read, in order.
    pub files: Vec<String>,
    /// Tier when no rule matches.
    pub default_tier: Tier,
    /// Rules in file order.
    pub rules: Vec<Rule>,
    /// Lanes by tier.
    pub lanes: BTreeMap<Tier, Lane>,
    /// Pools by name.
    pub pools: BTreeMap<String, Pool>,
    /// The emergency lane.
    pub break_glass: BreakGlass,
    /// What devices enforce themselves; goes into the TrustRoot.
    #[serde(skip)]
    pub device_rules: TierRules,
}

fn hex_digest<S: serde::Serializer>(d: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(d))
}

impl Policy {
    /// The digest as a wire digest.
    pub fn digest(&self) -> airlock_proto::Digest {
        airlock_proto::Digest::from(self.digest)
    }

    /// The lane of a tier (every tier has one after loading).
    pub fn lane(&self, tier: Tier) -> Option<&Lane> {
        self.lanes.get(&tier)
    }
}

/// Parses a tier name.
pub fn tier_by_name(s: &str) -> Option<Tier> {
    Tier::ALL.into_iter().find(|t| t.name() == s)
}

/// Parses a role name.
pub fn role_by_name(s: &str) -> Option<Roles> {
    match s {
        "approver" => Some(Roles::APPROVER),
        "expert" => Some(Roles::EXPERT),
        "security" => Some(Roles::SECURITY),
        "break_glass" => Some(Roles::BREAK_GLASS),
        _ => None,
    }
}
