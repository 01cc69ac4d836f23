//! Approval metrics: is the queue healthy, and are approvers thinking or rubber-stamping?
//!
//! Median and p95 time to decision (overall and by tier), approve / reject / edit rates, rework
//! rate (proposals that needed another revision), volume by tier and by requester, and what the
//! card records about each decision (time on card, diff opened). Served as JSON and as
//! Prometheus text.

use crate::store::StoreError;
use serde::Serialize;
use sqlx::{AnyPool, Row};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Time-to-decision quantiles, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Decided proposals counted.
    pub count: u64,
    /// Median seconds.
    pub median_secs: f64,
    /// 95th percentile seconds.
    pub p95_secs: f64,
}

/// All metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Proposals.
    pub proposals: u64,
    /// Time from proposal to decision (signed, rejected or expired).
    pub time_to_decision: Latency,
    /// The same by tier.
    pub time_to_decision_by_tier: BTreeMap<String, Latency>,
    /// Approvals recorded.
    pub approvals: u64,
    /// Rejections recorded.
    pub rejections: u64,
    /// Edits (revisions after the first).
    pub edits: u64,
    /// approvals / (approvals + rejections + edits).
    pub approve_rate: f64,
    /// rejections / (approvals + rejections + edits).
    pub reject_rate: f64,
    /// edits / (approvals + rejections + edits).
    pub edit_rate: f64,
    /// Share of proposals that needed more than one revision.
    pub rework_rate: f64,
    /// Proposals by tier.
    pub volume_by_tier: BTreeMap<String, u64>,
    /// Proposals by requester.
    pub volume_by_requester: BTreeMap<String, u64>,
    /// Proposals by state.
    pub volume_by_state: BTreeMap<String, u64>,
    /// Share of decisions made with the diff opened (web UI decisions only).
    pub diff_opened_rate: Option<f64>,
    /// Median seconds spent on the card before deciding (web UI decisions only).
    pub median_card_secs: Option<f64>,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn latency(mut v: Vec<f64>) -> Latency {
    v.sort_by(|a, b| a.total_cmp(b));
    Latency { count: v.len() as u64, median_secs: quantile(&v, 0.5), p95_secs: quantile(&v, 0.95) }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// Computes the metrics from the database.
pub async fn compute(pool: &AnyPool) -> Result<Metrics, StoreError> {
    let rows = sqlx::query(
        "SELECT tier, requester, state, created_at, decided_at, CAST(revision AS BIGINT) AS revision FROM proposals",
    )
    .fetch_all(pool)
    .await?;
    let mut m = Metrics { proposals: rows.len() as u64, ..Metrics::default() };
    let mut all = Vec::new();
    let mut by_tier: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut reworked = 0;
    for r in &rows {
        let tier: String = r.try_get("tier")?;
        let requester: String = r.try_get("requester")?;
        let state: String = r.try_get("state")?;
        let created: i64 = r.try_get("created_at")?;
        let decided: Option<i64> = r.try_get("decided_at")?;
        let revision: i64 = r.try_get("revision")?;
        *m.volume_by_tier.entry(tier.clone()).or_default() += 1;
        *m.volume_by_requester.entry(requester).or_default() += 1;
        *m.volume_by_state.entry(state).or_default() += 1;
        if revision > 1 {
            reworked += 1;
            m.edits += (revision - 1) as u64;
        }
        if let Some(d) = decided {
            let secs = (d - created).max(0) as f64 / 1000.0;
            all.push(secs);
            by_tier.entry(tier).or_default().push(secs);
        }
    }
    m.time_to_decision = latency(all);
    m.time_to_decision_by_tier = by_tier.into_iter().map(|(t, v)| (t, latency(v))).collect();
    m.rework_rate = ratio(reworked, m.proposals);
    // Booleans are read as integers: sqlx's Any driver cannot decode SQLite's BOOLEAN.
    let approvals = sqlx::query(
        "SELECT decision, card_ms, CAST(CAST(diff_opened AS INTEGER) AS BIGINT) AS diff_opened FROM approvals",
    )
    .fetch_all(pool)
    .await?;
    let mut card = Vec::new();
    let (mut opened, mut recorded) = (0u64, 0u64);
    for a in &approvals {
        let decision: String = a.try_get("decision")?;
        if decision == "approve" {
            m.approvals += 1;
        } else {
            m.rejections += 1;
        }
        if let Some(ms) = a.try_get::<Option<i64>, _>("card_ms")? {
            card.push(ms as f64 / 1000.0);
        }
        if let Some(o) = a.try_get::<Option<i64>, _>("diff_opened")? {
            recorded += 1;
            opened += u64::from(o != 0);
        }
    }
    let decisions = m.approvals + m.rejections + m.edits;
    m.approve_rate = ratio(m.approvals, decisions);
    m.reject_rate = ratio(m.rejections, decisions);
    m.edit_rate = ratio(m.edits, decisions);
    m.diff_opened_rate = (recorded > 0).then(|| ratio(opened, recorded));
    card.sort_by(|a, b| a.total_cmp(b));
    m.median_card_secs = (!card.is_empty()).then(|| quantile(&card, 0.5));
    Ok(m)
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let mut gauge = |name: &str, help: &str, series: Vec<(String, f64)>| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, v) in series {
                let _ = writeln!(s, "{name}{labels} {v}");
            }
        };
        gauge(
            "airlock_proposals",
            "Proposals by tier.",
            self.volume_by_tier.iter().map(|(t, n)| (format!("{{tier=\"{}\"}}", label(t)), *n as f64)).collect(),
        );
        gauge(
            "airlock_proposals_by_requester",
            "Proposals by requester.",
            self.volume_by_requester
                .iter()
                .map(|(r, n)| (format!("{{requester=\"{}\"}}", label(r)), *n as f64))
                .collect(),
        );
        gauge(
            "airlock_proposals_by_state",
            "Proposals by state.",
            self.volume_by_state.iter().map(|(r, n)| (format!("{{state=\"{}\"}}", label(r)), *n as f64)).collect(),
        );
        let mut ttd = vec![
            ("{quantile=\"0.5\"}".to_string(), self.time_to_decision.median_secs),
            ("{quantile=\"0.95\"}".to_string(), self.time_to_decision.p95_secs),
        ];
        for (t, l) in &self.time_to_decision_by_tier {
            ttd.push((format!("{{tier=\"{}\",quantile=\"0.5\"}}", label(t)), l.median_secs));
            ttd.push((format!("{{tier=\"{}\",quantile=\"0.95\"}}", label(t)), l.p95_secs));
        }
        gauge("airlock_time_to_decision_seconds", "Time from proposal to decision.", ttd);
        gauge(
            "airlock_decisions",
            "Approvals, rejections and edits recorded.",
            vec![
                ("{decision=\"approve\"}".into(), self.approvals as f64),
                ("{decision=\"reject\"}".into(), self.rejections as f64),
                ("{decision=\"edit\"}".into(), self.edits as f64),
            ],
        );
        gauge(
            "airlock_rework_ratio",
            "Share of proposals that needed another revision.",
            vec![(String::new(), self.rework_rate)],
        );
        if let Some(r) = self.diff_opened_rate {
            gauge(
                "airlock_diff_opened_ratio",
                "Share of web decisions made with the diff opened.",
                vec![(String::new(), r)],
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.95), 95.0);
        assert_eq!(quantile(&[7.0], 0.95), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn prometheus_text_escapes_labels() {
        let mut m = Metrics::default();
        m.volume_by_requester.insert("a\"b".into(), 2);
        let text = m.prometheus();
        assert!(text.contains("airlock_proposals_by_requester{requester=\"a\\\"b\"} 2"), "{text}");
        assert!(text.contains("# TYPE airlock_time_to_decision_seconds gauge"));
    }
}
