//! Dashboards: approval metrics and rollouts, charted as inline SVG ([`super::svg`]).

use super::pages::{error_page, internal, page, workflow_error, Page};
use super::session::WebUser;
use super::svg;
use crate::metrics::Metrics;
use crate::rollout::{RolloutError, RolloutStatus};
use crate::server::AppState;
use crate::workflow::State as ProposalState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};
use std::collections::BTreeMap;

/// The wave segments, in the order they are stacked (pending is what is left of the bar).
const WAVE_SERIES: [&str; 7] = ["confirmed", "installed", "accepted", "sent", "failed", "refused", "reverted"];

/// Median and p95 time to decision, per tier.
pub fn approval_time_chart(m: &Metrics) -> String {
    let rows: Vec<(String, Vec<f64>)> =
        m.time_to_decision_by_tier.iter().map(|(t, l)| (t.clone(), vec![l.median_secs, l.p95_secs])).collect();
    svg::bars("Time to decision by tier (seconds)", &["median", "p95"], &rows, " s")
}

/// A count per label, as bars.
pub fn count_chart<N: Copy + Into<f64>>(title: &str, series: &str, counts: &BTreeMap<String, N>) -> String {
    let rows: Vec<(String, Vec<f64>)> = counts.iter().map(|(k, n)| (k.clone(), vec![(*n).into()])).collect();
    svg::bars(title, &[series], &rows, "")
}

/// One stacked bar per wave, scaled to the wave's size.
pub fn waves_chart(r: &RolloutStatus) -> String {
    let rows: Vec<(String, Vec<f64>)> = r
        .waves
        .iter()
        .map(|w| {
            let c = &w.counts;
            let v = [c.confirmed, c.installed, c.accepted, c.sent, c.failed, c.refused, c.reverted];
            (format!("wave {}", w.index + 1), v.iter().map(|n| f64::from(*n)).collect())
        })
        .collect();
    let totals: Vec<f64> = r.waves.iter().map(|w| f64::from(w.counts.size)).collect();
    svg::stacked("Progress by wave (devices)", &WAVE_SERIES, &rows, &totals)
}

/// Refusals and reverts by reason over some rollouts.
pub fn by_reason(rollouts: &[RolloutStatus]) -> (BTreeMap<String, u32>, BTreeMap<String, u32>) {
    let (mut refused, mut reverted) = (BTreeMap::new(), BTreeMap::new());
    for w in rollouts.iter().flat_map(|r| &r.waves) {
        for (k, n) in &w.refused_by_reason {
            *refused.entry(k.clone()).or_insert(0) += n;
        }
        for (k, n) in &w.reverted_by_reason {
            *reverted.entry(k.clone()).or_insert(0) += n;
        }
    }
    (refused, reverted)
}

fn rollout_charts(rollouts: &[RolloutStatus]) -> (String, String) {
    let (refused, reverted) = by_reason(rollouts);
    (
        count_chart("Refusals by reason (devices)", "refused", &refused),
        count_chart("Reverts by reason (devices)", "reverted", &reverted),
    )
}

pub(super) async fn dashboard(State(s): State<AppState>, WebUser(me): WebUser) -> Response {
    let m = match crate::metrics::compute(s.wf.store.pool()).await {
        Ok(m) => m,
        Err(e) => return internal(e),
    };
    let mut rollouts = Vec::new();
    if let Some(engine) = &s.rollouts {
        for state in
            [ProposalState::RollingOut, ProposalState::Paused, ProposalState::Completed, ProposalState::Aborted]
        {
            let list = match s.wf.list(Some(state), 50).await {
                Ok(l) => l,
                Err(e) => return workflow_error(&me, e),
            };
            for v in list {
                match engine.status(v.id).await {
                    Ok(st) => rollouts.push((v.title, st)),
                    Err(RolloutError::NotFound(_)) => {}
                    Err(e) => return internal(e),
                }
            }
        }
    }
    rollouts.sort_by_key(|(_, r)| std::cmp::Reverse(r.proposal));
    let statuses: Vec<RolloutStatus> = rollouts.iter().map(|(_, r)| r.clone()).collect();
    let (refusals, reverts) = rollout_charts(&statuses);
    let rows: Vec<Value> = rollouts
        .iter()
        .map(|(title, r)| {
            context! { title => title.clone(), proposal => r.proposal, state => super::templates::ser(&r.state),
            wave => r.wave + 1, waves => r.waves.len(), totals => super::templates::ser(&r.totals) }
        })
        .collect();
    let ctx = context! {
        metrics => super::templates::ser(&m),
        approval_time => Value::from_safe_string(approval_time_chart(&m)),
        by_tier => Value::from_safe_string(count_chart("Proposals by tier", "proposals", &to_f64(&m.volume_by_tier))),
        by_requester => Value::from_safe_string(count_chart("Proposals by requester", "proposals", &to_f64(&m.volume_by_requester))),
        refusals => Value::from_safe_string(refusals),
        reverts => Value::from_safe_string(reverts),
        rollouts => rows,
        mqtt => s.rollouts.is_some(),
    };
    page(Page::Dashboard, Some(&me), ctx)
}

fn to_f64(m: &BTreeMap<String, u64>) -> BTreeMap<String, f64> {
    m.iter().map(|(k, v)| (k.clone(), *v as f64)).collect()
}

pub(super) async fn rollout(State(s): State<AppState>, WebUser(me): WebUser, Path(id): Path<i64>) -> Response {
    let Some(engine) = &s.rollouts else {
        return error_page(StatusCode::CONFLICT, Some(&me), "no rollouts: this controller runs without an MQTT broker");
    };
    let r = match engine.status(id).await {
        Ok(r) => r,
        Err(e @ RolloutError::NotFound(_)) => return error_page(StatusCode::NOT_FOUND, Some(&me), &e.to_string()),
        Err(e) => return internal(e),
    };
    let (refusals, reverts) = rollout_charts(std::slice::from_ref(&r));
    let ctx = context! {
        rollout => super::templates::ser(&r),
        waves_chart => Value::from_safe_string(waves_chart(&r)),
        refusals => Value::from_safe_string(refusals),
        reverts => Value::from_safe_string(reverts),
    };
    page(Page::Rollout, Some(&me), ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Latency;
    use crate::rollout::{Counts, WaveStatus};

    fn rollout() -> RolloutStatus {
        let wave = |index, size, confirmed, refused: &[(&str, u32)], reverted: &[(&str, u32)]| WaveStatus {
            index,
            counts: Counts { size, confirmed, refused: refused.iter().map(|r| r.1).sum(), ..Counts::default() },
            refused_by_reason: refused.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            reverted_by_reason: reverted.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            ..WaveStatus::default()
        };
        serde_json::from_value::<RolloutStatus>(serde_json::json!({
            "proposal": 3, "revision": 1, "manifest_digest": "00", "state": "rolling_out", "wave": 1,
            "started_at": 0, "wave_started_at": 0, "updated_at": 0, "finished_at": null, "breach": null,
            "totals": Counts::default(), "waves": [
                wave(0, 10, 9, &[("replay", 1)], &[]),
                wave(1, 90, 0, &[("replay", 2), ("not_in_cohort", 1)], &[("health_check_failed", 4)]),
            ]
        }))
        .unwrap()
    }

    #[test]
    fn refusals_and_reverts_are_summed_by_reason_over_waves_and_rollouts() {
        let (refused, reverted) = by_reason(&[rollout(), rollout()]);
        assert_eq!(refused, BTreeMap::from([("not_in_cohort".into(), 2), ("replay".into(), 6)]));
        assert_eq!(reverted, BTreeMap::from([("health_check_failed".into(), 8)]));
    }

    #[test]
    fn the_wave_chart_has_a_bar_per_wave_scaled_to_its_size() {
        let svg = waves_chart(&rollout());
        assert!(svg.contains(">wave 1</text>") && svg.contains(">wave 2</text>"), "{svg}");
        assert!(svg.contains(">10 / 10</text>"), "9 confirmed + 1 refused of 10: {svg}");
        assert!(svg.contains(">3 / 90</text>"), "{svg}");
    }

    #[test]
    fn the_approval_time_chart_shows_median_and_p95_per_tier() {
        let mut m = Metrics::default();
        m.time_to_decision_by_tier
            .insert("two_person".into(), Latency { count: 3, median_secs: 120.0, p95_secs: 900.0 });
        let svg = approval_time_chart(&m);
        assert!(svg.contains(">two_person</text>") && svg.contains(">120 s</text>") && svg.contains(">900 s</text>"));
        assert!(approval_time_chart(&Metrics::default()).contains("nothing recorded yet"));
    }
}
