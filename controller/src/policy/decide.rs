//! Evaluating a proposal's facts against the policy.

use super::model::{Kind, Policy, Rule, When};
use airlock_proto::Tier;
use std::collections::BTreeSet;

/// What the policy looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// What the proposal does.
    pub kind: Kind,
    /// Environments of the cohort's devices.
    pub environments: BTreeSet<String>,
    /// Hardware models of the cohort's devices.
    pub hardware: BTreeSet<String>,
    /// Devices in the cohort.
    pub cohort_size: u32,
    /// Devices in the fleet.
    pub fleet_size: u32,
    /// A rollback plan is present.
    pub rollback: bool,
    /// Security-related change.
    pub security: bool,
    /// When the proposal arrives, unix seconds.
    pub at: u64,
}

impl Facts {
    /// The cohort's share of the fleet, 0 to 1.
    pub fn share(&self) -> f64 {
        if self.fleet_size == 0 {
            1.0
        } else {
            f64::from(self.cohort_size) / f64::from(self.fleet_size)
        }
    }
}

/// One rule that matched, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Match {
    /// Rule name.
    pub rule: String,
    /// `file:line` of the rule.
    pub source: String,
    /// The tier it demands.
    pub tier: Tier,
    /// Each condition that held, in words.
    pub because: Vec<String>,
    /// The rule's stated reason.
    pub why: Option<String>,
}

/// The policy's decision.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Decision {
    /// The tier: the strictest match, the default if none, never below the device floor.
    pub tier: Tier,
    /// Every rule that matched.
    pub matched: Vec<Match>,
    /// No rule matched; the default tier applied.
    pub default_applied: bool,
    /// The tier devices will demand for the declared fields (the TrustRoot floor).
    pub device_floor: Tier,
    /// The policy version (hex SHA-256 of the policy files).
    pub policy_digest: String,
}

impl Policy {
    /// Decides the tier for `facts`.
    pub fn decide(&self, facts: &Facts) -> Decision {
        let matched: Vec<Match> = self.rules.iter().filter_map(|r| matches(r, facts)).collect();
        let default_applied = matched.is_empty();
        let by_rules = matched.iter().map(|m| m.tier).max().unwrap_or(self.default_tier);
        let device_floor = self.device_floor(facts);
        Decision {
            tier: by_rules.max(device_floor),
            matched,
            default_applied,
            device_floor,
            policy_digest: hex::encode(self.digest),
        }
    }

    /// What devices will demand for these facts (same rule as `airlock_proto::TierRules::floor`).
    pub fn device_floor(&self, facts: &Facts) -> Tier {
        let r = &self.device_rules;
        let mut floor = r.kind[facts.kind as usize];
        for f in &r.size_floors {
            if facts.cohort_size >= f.min_size {
                floor = floor.max(f.tier);
            }
        }
        if !facts.rollback {
            floor = floor.max(r.no_rollback);
        }
        if facts.security {
            floor = floor.max(r.security);
        }
        floor
    }
}

fn matches(rule: &Rule, f: &Facts) -> Option<Match> {
    let w: &When = &rule.when;
    let mut because = Vec::new();
    if let Some(kinds) = &w.kind {
        kinds.contains(&f.kind).then_some(())?;
        because.push(format!("kind is {}", f.kind.name()));
    }
    if let Some(envs) = &w.environment {
        (!f.environments.is_empty() && f.environments.iter().all(|e| envs.contains(e))).then_some(())?;
        because.push(format!("every device is in {}", join(&f.environments)));
    }
    if let Some(models) = &w.hardware {
        let hit: Vec<&String> = f.hardware.iter().filter(|h| models.contains(h)).collect();
        (!hit.is_empty()).then_some(())?;
        because.push(format!("cohort includes hardware {}", join(hit)));
    }
    if let Some(n) = w.cohort_size_at_least {
        (f.cohort_size >= n).then_some(())?;
        because.push(format!("cohort of {} devices is at least {n}", f.cohort_size));
    }
    if let Some(s) = w.share_above {
        (f.share() > s).then_some(())?;
        because.push(format!("{:.1}% of the fleet is above {:.1}%", f.share() * 100.0, s * 100.0));
    }
    if let Some(s) = w.share_at_least {
        (f.share() >= s).then_some(())?;
        because.push(format!("{:.1}% of the fleet is at least {:.1}%", f.share() * 100.0, s * 100.0));
    }
    if let Some(r) = w.rollback {
        (f.rollback == r).then_some(())?;
        because.push(if r { "a rollback plan is present".into() } else { "no rollback plan".into() });
    }
    if let Some(s) = w.security {
        (f.security == s).then_some(())?;
        because.push(if s { "security-related".into() } else { "not security-related".into() });
    }
    if let Some((from, to)) = w.hours {
        let minute = ((f.at % 86_400) / 60) as u16;
        let inside = if from <= to { minute >= from && minute < to } else { minute >= from || minute < to };
        inside.then_some(())?;
        because.push(format!("{:02}:{:02} UTC is within {}", minute / 60, minute % 60, hhmm_range(from, to)));
    }
    if let Some(days) = &w.days {
        // 1970-01-01 was a Thursday (3, counting Monday as 0).
        let day = ((f.at / 86_400 + 3) % 7) as u8;
        days.contains(&day).then_some(())?;
        because.push(format!(
            "{} (UTC)",
            ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"][day as usize]
        ));
    }
    if because.is_empty() {
        because.push("always".into());
    }
    Some(Match {
        rule: rule.name.clone(),
        source: format!("{}:{}", rule.file, rule.line),
        tier: rule.tier,
        because,
        why: rule.why.clone(),
    })
}

fn join<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    items.into_iter().map(|s| s.as_ref().to_string()).collect::<Vec<_>>().join(", ")
}

fn hhmm_range(from: u16, to: u16) -> String {
    format!("{:02}:{:02}-{:02}:{:02}", from / 60, from % 60, to / 60, to % 60)
}
