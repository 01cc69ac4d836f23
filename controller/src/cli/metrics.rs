//! `airlock metrics`: is the queue healthy, and are approvers thinking or rubber-stamping?
//! Median and p95 time to decision overall and by tier, approve / reject / edit rates, rework
//! rate, volume by tier, requester and state.

use super::client::{self, parse};
use super::render::{duration, outline, percent, thousands};
use super::types::tier_name;
use super::{out, out_json, CliError, Ctx};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `metrics::Latency`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Latency {
    /// Decided proposals counted.
    pub count: u64,
    /// Median seconds.
    pub median_secs: f64,
    /// 95th percentile seconds.
    pub p95_secs: f64,
}

/// `metrics::Metrics`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Metrics {
    /// Proposals.
    pub proposals: u64,
    /// Time to decision.
    pub time_to_decision: Latency,
    /// By tier.
    pub time_to_decision_by_tier: BTreeMap<String, Latency>,
    /// Approvals.
    pub approvals: u64,
    /// Rejections.
    pub rejections: u64,
    /// Edits.
    pub edits: u64,
    /// Rates, 0 to 1.
    pub approve_rate: f64,
    /// Rates, 0 to 1.
    pub reject_rate: f64,
    /// Rates, 0 to 1.
    pub edit_rate: f64,
    /// Share of proposals reworked.
    pub rework_rate: f64,
    /// Volume by tier.
    pub volume_by_tier: BTreeMap<String, u64>,
    /// Volume by requester.
    pub volume_by_requester: BTreeMap<String, u64>,
    /// Volume by state.
    pub volume_by_state: BTreeMap<String, u64>,
    /// Web UI only.
    pub diff_opened_rate: Option<f64>,
    /// Web UI only.
    pub median_card_secs: Option<f64>,
}

/// Runs `metrics`.
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let v = client::metrics(&ctx.client()?).await?;
    if ctx.json {
        return out_json(&v);
    }
    // A server newer than this client still prints, as an outline.
    match parse::<Metrics>("GET /api/metrics", v.clone()) {
        Ok(m) => out(&text(&m)),
        Err(_) => out(&outline(&v)),
    }
}

fn secs(s: f64) -> String {
    duration((s * 1000.0).round() as i64)
}

fn latency(l: &Latency) -> String {
    if l.count == 0 {
        return "no decisions yet".into();
    }
    format!("median {}, p95 {}  ({} decided)", secs(l.median_secs), secs(l.p95_secs), thousands(l.count))
}

fn volume(m: &BTreeMap<String, u64>, name: impl Fn(&str) -> String) -> String {
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if v.is_empty() {
        return "-".into();
    }
    v.iter().map(|(k, n)| format!("{} {}", name(k), thousands(**n))).collect::<Vec<_>>().join(", ")
}

/// The metrics for people.
pub fn text(m: &Metrics) -> String {
    let mut o = format!("proposals         {}\n", thousands(m.proposals));
    let _ = writeln!(o, "time to decision  {}", latency(&m.time_to_decision));
    for (tier, l) in &m.time_to_decision_by_tier {
        let _ = writeln!(o, "  {:<16}{}", tier_name(tier), latency(l));
    }
    let _ = writeln!(
        o,
        "decisions         {} approved ({}), {} rejected ({}), {} edits ({})",
        thousands(m.approvals),
        percent(m.approve_rate),
        thousands(m.rejections),
        percent(m.reject_rate),
        thousands(m.edits),
        percent(m.edit_rate)
    );
    let _ = writeln!(o, "rework rate       {} of proposals needed another revision", percent(m.rework_rate));
    let _ = writeln!(o, "by tier           {}", volume(&m.volume_by_tier, tier_name));
    let _ = writeln!(o, "by requester      {}", volume(&m.volume_by_requester, str::to_string));
    let _ = writeln!(o, "by state          {}", volume(&m.volume_by_state, str::to_string));
    if let Some(r) = m.diff_opened_rate {
        let _ = writeln!(o, "diff opened       {} of web decisions", percent(r));
    }
    if let Some(s) = m.median_card_secs {
        let _ = writeln!(o, "time on card      median {}", secs(s));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_show_latency_rates_and_volumes() {
        let m: Metrics = serde_json::from_value(serde_json::json!({
            "proposals": 12,
            "time_to_decision": {"count": 10, "median_secs": 5400.0, "p95_secs": 30.5},
            "time_to_decision_by_tier": {"two_person": {"count": 4, "median_secs": 7200.0, "p95_secs": 9000.0},
                                         "auto_pass": {"count": 0, "median_secs": 0.0, "p95_secs": 0.0}},
            "approvals": 9, "rejections": 2, "edits": 1,
            "approve_rate": 0.75, "reject_rate": 0.1667, "edit_rate": 0.0833, "rework_rate": 0.0833,
            "volume_by_tier": {"single": 8, "two_person": 4}, "volume_by_requester": {"rita": 12},
            "volume_by_state": {"signed": 9, "rejected": 2, "awaiting_approval": 1},
            "diff_opened_rate": null, "median_card_secs": null
        }))
        .unwrap();
        assert_eq!(
            text(&m),
            "proposals         12\n\
             time to decision  median 1h 30m, p95 30s  (10 decided)\n\
             \x20 auto_pass       no decisions yet\n\
             \x20 two_person      median 2h, p95 2h 30m  (4 decided)\n\
             decisions         9 approved (75.0%), 2 rejected (16.7%), 1 edits (8.3%)\n\
             rework rate       8.3% of proposals needed another revision\n\
             by tier           single 8, two_person 4\n\
             by requester      rita 12\n\
             by state          signed 9, rejected 2, awaiting_approval 1\n"
        );
    }
}
