//! What a scenario run found: per proposal and wave, refusals and reverts by reason, faults that
//! fired, devices updated over time, and each expectation with what was actually seen. Printed
//! as a table ([`Report::table`]) or serialised as JSON.

use crate::fleet::BrickCheck;
use crate::rogue::AttackOutcome;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A scenario run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// What it rehearses.
    pub description: String,
    /// Fleet size.
    pub devices: usize,
    /// Broker URL devices used.
    pub broker: String,
    /// Whole run, seconds.
    pub seconds: f64,
    /// Seconds until every device expected online was online.
    pub online_after_secs: f64,
    /// Devices by fault.
    pub faults: BTreeMap<String, usize>,
    /// Power cuts that happened.
    pub power_cuts: u64,
    /// Agent restarts (power cuts and flaps).
    pub restarts: u64,
    /// Connections cut by lossy links.
    pub link_drops: u64,
    /// Each proposal.
    pub proposals: Vec<ProposalReport>,
    /// Refusals devices reported, by reason (rogue messages included).
    pub refusals: BTreeMap<String, usize>,
    /// Reverts devices reported, by reason.
    pub reverts: BTreeMap<String, usize>,
    /// The rogue's attacks.
    pub rogue: BTreeMap<String, AttackOutcome>,
    /// The brick check at the end.
    pub bricks: BrickCheck,
    /// The expectations.
    pub expectations: Vec<Check>,
}

/// One proposal.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProposalReport {
    /// Scenario name of the proposal.
    pub name: String,
    /// Controller id.
    pub id: i64,
    /// Tier.
    pub tier: String,
    /// Proposal state at the end.
    pub proposal_state: String,
    /// Rollout state at the end (`none` if it never started).
    pub rollout_state: String,
    /// Why it stopped, if it breached or was aborted.
    pub breach: Option<String>,
    /// Devices in the cohort.
    pub cohort: u64,
    /// Devices that confirmed it.
    pub confirmed: u64,
    /// Seconds from the last approval to the last device confirmed.
    pub approval_to_last_confirm_secs: Option<f64>,
    /// Each wave.
    pub waves: Vec<WaveReport>,
    /// Devices confirmed, sampled: (seconds since approval, count).
    pub updated_over_time: Vec<(f64, u64)>,
}

/// One wave.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WaveReport {
    /// From 1.
    pub wave: u32,
    /// Devices.
    pub size: u64,
    /// Never sent.
    pub pending: u64,
    /// Confirmed.
    pub confirmed: u64,
    /// Failed (timed out).
    pub failed: u64,
    /// Refused.
    pub refused: u64,
    /// Reverted.
    pub reverted: u64,
    /// Seconds from approval to the wave's first delivery.
    pub started_after_secs: Option<f64>,
    /// Seconds from approval to the wave's last change.
    pub last_change_after_secs: Option<f64>,
}

/// One expectation.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was expected.
    pub expected: String,
    /// What was seen.
    pub actual: String,
    /// Whether it held.
    pub passed: bool,
}

impl Report {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.expectations.iter().all(|c| c.passed)
    }

    /// The report as a plain-text table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "scenario  {}: {}", self.scenario, self.description);
        let _ = writeln!(
            o,
            "fleet     {} devices on {}, all expected online after {:.1} s; run took {:.1} s",
            self.devices, self.broker, self.online_after_secs, self.seconds
        );
        let faults: Vec<String> =
            self.faults.iter().filter(|(k, _)| k.as_str() != "none").map(|(k, v)| format!("{k} {v}")).collect();
        if !faults.is_empty() {
            let _ = writeln!(
                o,
                "faults    {} (power cuts {}, agent restarts {}, links cut {})",
                faults.join(", "),
                self.power_cuts,
                self.restarts,
                self.link_drops
            );
        }
        for p in &self.proposals {
            let _ = writeln!(
                o,
                "\nproposal  {} (#{}, {}): proposal {}, rollout {}{}",
                p.name,
                p.id,
                p.tier,
                p.proposal_state,
                p.rollout_state,
                p.breach.as_ref().map(|b| format!(" ({b})")).unwrap_or_default()
            );
            let _ = writeln!(
                o,
                "          cohort {}, confirmed {}{}",
                p.cohort,
                p.confirmed,
                p.approval_to_last_confirm_secs
                    .map(|s| format!(", last confirmed {s:.1} s after approval"))
                    .unwrap_or_default()
            );
            if !p.waves.is_empty() {
                let _ = writeln!(
                    o,
                    "          {:>4} {:>6} {:>7} {:>9} {:>6} {:>7} {:>8} {:>9} {:>9}",
                    "wave", "size", "pending", "confirmed", "failed", "refused", "reverted", "start s", "last s"
                );
                for w in &p.waves {
                    let secs = |s: Option<f64>| s.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-".into());
                    let _ = writeln!(
                        o,
                        "          {:>4} {:>6} {:>7} {:>9} {:>6} {:>7} {:>8} {:>9} {:>9}",
                        w.wave,
                        w.size,
                        w.pending,
                        w.confirmed,
                        w.failed,
                        w.refused,
                        w.reverted,
                        secs(w.started_after_secs),
                        secs(w.last_change_after_secs)
                    );
                }
            }
            if p.updated_over_time.len() > 1 {
                let points: Vec<String> =
                    thin(&p.updated_over_time, 8).iter().map(|(t, n)| format!("{t:.0}s:{n}")).collect();
                let _ = writeln!(o, "          updated over time  {}", points.join("  "));
            }
        }
        let line =
            |m: &BTreeMap<String, usize>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        if !self.refusals.is_empty() {
            let _ = writeln!(o, "\nrefusals  {}", line(&self.refusals));
        }
        if !self.reverts.is_empty() {
            let _ = writeln!(o, "reverts   {}", line(&self.reverts));
        }
        for (attack, r) in &self.rogue {
            let _ = writeln!(
                o,
                "rogue     {attack:<18} sent {:>3}, refused {} {:>3}, otherwise {:?}, accepted {}, unanswered {}",
                r.sent, r.expected, r.refused_as_expected, r.refused_otherwise, r.accepted, r.unanswered
            );
        }
        let _ = writeln!(o, "bricked   {} of {} checked", self.bricks.bricked.len(), self.bricks.checked);
        for (id, why) in self.bricks.bricked.iter().take(5) {
            let _ = writeln!(o, "          {id}: {why}");
        }
        let _ = writeln!(o, "\nexpectations");
        for c in &self.expectations {
            let _ = writeln!(o, "  {}  {}  (saw {})", if c.passed { "PASS" } else { "FAIL" }, c.expected, c.actual);
        }
        let _ = writeln!(o, "{}", if self.passed() { "PASSED" } else { "FAILED" });
        o
    }
}

/// At most `n` points, evenly spaced, always keeping the last.
fn thin(points: &[(f64, u64)], n: usize) -> Vec<(f64, u64)> {
    if points.len() <= n {
        return points.to_vec();
    }
    let step = points.len() as f64 / n as f64;
    let mut out: Vec<(f64, u64)> = (0..n - 1).map(|i| points[(i as f64 * step) as usize]).collect();
    out.extend(points.last().copied());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_waves_faults_and_each_expectation_and_json_round_trips() {
        let r = Report {
            scenario: "s".into(),
            description: "d".into(),
            devices: 10,
            broker: "mqtt://127.0.0.1:1".into(),
            faults: BTreeMap::from([("none".into(), 8), ("power_loss".into(), 2)]),
            power_cuts: 3,
            proposals: vec![ProposalReport {
                name: "fw".into(),
                id: 4,
                tier: "two_person".into(),
                proposal_state: "rolling_out".into(),
                rollout_state: "paused".into(),
                breach: Some("failure 1.00 > 0.05".into()),
                cohort: 10,
                waves: vec![WaveReport { wave: 1, size: 1, reverted: 1, ..WaveReport::default() }],
                updated_over_time: (0..20).map(|i| (i as f64, i)).collect(),
                ..ProposalReport::default()
            }],
            expectations: vec![
                Check { expected: "fw: rollout paused".into(), actual: "paused".into(), passed: true },
                Check { expected: "bricked at most 0".into(), actual: "1".into(), passed: false },
            ],
            ..Report::default()
        };
        let t = r.table();
        assert!(t.contains("power_loss 2 (power cuts 3"), "{t}");
        assert!(t.contains("rollout paused (failure 1.00 > 0.05)"), "{t}");
        assert!(t.contains("PASS  fw: rollout paused"), "{t}");
        assert!(t.contains("FAIL  bricked at most 0  (saw 1)"), "{t}");
        assert!(t.trim_end().ends_with("FAILED"), "{t}");
        assert!(t.contains("19s:19"), "the last sample is kept: {t}");
        assert!(!r.passed());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["proposals"][0]["waves"][0]["reverted"], 1);
        assert_eq!(json["expectations"][1]["passed"], false);
    }
}
