//! Plays a scenario: starts (or reaches) the controller, builds the fleet, waits for it to come
//! online, runs each step, samples progress, stops the fleet, checks for bricks and evaluates the
//! expectations into a [`Report`].

use crate::controller::{Broker, Controller};
use crate::fleet::{Fault, Fleet, FleetOptions};
use crate::report::{Check, ProposalReport, Report, WaveReport};
use crate::rogue::Rogue;
use crate::scenario::{duration, Expect, Scenario, Step};
use crate::SimError;
use airlock_proto::{Decision, Digest, Event, Version};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the controller comes from.
#[derive(Clone, Debug)]
pub enum Target {
    /// Start one in this process (temporary data directory) on this broker.
    InProcess {
        /// The broker.
        broker: Broker,
        /// The policy directory.
        policies: PathBuf,
    },
    /// Use a running controller: its URL and data directory.
    Remote {
        /// `http://host:port`.
        url: String,
        /// Its data directory (tokens, approver keys).
        data: PathBuf,
    },
}

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The controller.
    pub target: Target,
    /// Fleet size (default: the scenario's).
    pub devices: Option<usize>,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

/// Deterministic image bytes, different per `tag`.
pub fn image_bytes(tag: &str, len: usize) -> Vec<u8> {
    let seed = crate::sha256(tag.as_bytes());
    let mut out = Vec::with_capacity(len + 32);
    let mut block = seed;
    while out.len() < len {
        block = crate::sha256(&block);
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

/// What the run knows about one proposal.
#[derive(Debug)]
struct Tracked {
    name: String,
    id: i64,
    digest: Digest,
    /// The firmware version it installs (`None`: a config push).
    target: Option<Version>,
    approvers: Vec<String>,
    approved_at: Option<(Instant, i64)>,
    samples: Vec<(f64, u64)>,
}

/// Plays `scenario`.
pub async fn run(scenario: &Scenario, opts: &Options) -> Result<Report, SimError> {
    let started = Instant::now();
    let deadline = started + scenario.timeout();
    let devices = opts.devices.unwrap_or(scenario.devices);
    if devices == 0 {
        return Err(SimError::Scenario("a fleet of 0 devices".into()));
    }
    let ctl = match &opts.target {
        Target::InProcess { broker, policies } => {
            Controller::start(None, policies.clone(), broker.clone(), "127.0.0.1:0").await?
        }
        Target::Remote { url, data } => Controller::connect(url, data).await?,
    };
    let result = play(scenario, opts, &ctl, devices, started, deadline).await;
    ctl.stop().await;
    result
}

async fn play(
    scenario: &Scenario,
    opts: &Options,
    ctl: &Controller,
    devices: usize,
    started: Instant,
    deadline: Instant,
) -> Result<Report, SimError> {
    let tag = run_tag(&scenario.name);
    let largest = scenario
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Propose { image_kib: Some(k), .. } => Some(*k as usize * 1024),
            _ => None,
        })
        .max()
        .unwrap_or(64 * 1024);
    let slot_size = (largest.max(16 * 1024)).div_ceil(4096) as u32 * 4096;
    let dirs = tempfile::tempdir().map_err(|e| SimError::Io(format!("agents' directory: {e}")))?;
    let fleet_opts = FleetOptions {
        devices,
        slot_size,
        // An update erases and writes each sector of the image, plus a few state records.
        update_ops: 2 * (largest as u64).div_ceil(4096) + 12,
        prefix: tag.clone(),
        key_seed: crate::unix_now(),
        data_dir: dirs.path().to_path_buf(),
    };
    let bar = progress_bar(opts.progress);
    bar.set_message(format!("{}: enrolling {devices} devices", scenario.name));
    let fleet = Fleet::start(ctl, scenario, &fleet_opts).await?;
    let broker = (fleet.broker_url.clone(), fleet.embedded);

    // Online: every device that should be.
    let expected = fleet.expected_online();
    let online_by = Instant::now() + Duration::from_secs(60) + Duration::from_millis(20 * devices as u64);
    loop {
        let online = fleet.online();
        bar.set_message(format!("{}: {online}/{expected} devices online", scenario.name));
        if online >= expected {
            break;
        }
        // Flapping devices may be down right now: most of the fleet is enough for them.
        let flapping = fleet.devices.iter().filter(|d| d.fault == Fault::Flapping).count();
        if online + flapping >= expected && Instant::now() + Duration::from_secs(50) > online_by {
            break;
        }
        if Instant::now() > online_by {
            return Err(SimError::Timeout(format!("only {online} of {expected} devices came online")));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let online_after = started.elapsed().as_secs_f64();

    let rogue = if scenario.steps.iter().any(|s| matches!(s, Step::Rogue { .. })) {
        Some(Rogue::connect(ctl, &broker.0, broker.1, &tag).await?)
    } else {
        None
    };

    let mut tracked: BTreeMap<String, Tracked> = BTreeMap::new();
    let mut report = Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        devices,
        broker: broker.0.clone(),
        online_after_secs: online_after,
        ..Report::default()
    };
    let mut checks = Vec::new();
    let outcome =
        steps(scenario, ctl, &fleet, rogue.as_ref(), &tag, &bar, deadline, &mut tracked, &mut report, &mut checks)
            .await;
    drop(rogue);

    // Final state of each proposal, then stop the fleet and look for bricks.
    for t in tracked.values() {
        report.proposals.push(proposal_report(ctl, &fleet, t).await?);
    }
    for d in &fleet.devices {
        for e in d.events() {
            match e {
                Event::Refused { reason, .. } => *report.refusals.entry(reason.name().to_string()).or_default() += 1,
                Event::Reverted { reason, .. } | Event::ConfigReverted { reason, .. } => {
                    *report.reverts.entry(reason.name().to_string()).or_default() += 1
                }
                _ => {}
            }
        }
    }
    report.faults = fleet.faults().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    report.power_cuts = fleet.devices.iter().map(|d| d.power_cuts.load(std::sync::atomic::Ordering::Relaxed)).sum();
    report.restarts = fleet.devices.iter().map(|d| d.restarts.load(std::sync::atomic::Ordering::Relaxed)).sum();
    report.link_drops = fleet.link_drops();
    let mut approved: BTreeSet<Version> = fleet.devices.iter().map(|d| d.factory).collect();
    approved.extend(tracked.values().filter_map(|t| match t.target {
        Some(v) if t.approved_at.is_some() => Some(v),
        _ => None,
    }));
    bar.set_message(format!("{}: stopping the fleet and checking every flash", scenario.name));
    let heard: BTreeMap<String, usize> = tracked
        .values()
        .map(|t| (t.name.clone(), fleet.devices.iter().filter(|d| d.heard(&t.digest)).count()))
        .collect();
    let mut touched: Touched = BTreeMap::new();
    for t in tracked.values() {
        let per_model = touched.entry(t.name.clone()).or_default();
        for d in &fleet.devices {
            let entry = per_model.entry(d.hardware.clone()).or_default();
            entry.0 += usize::from(d.heard(&t.digest));
            entry.1 += 1;
        }
    }
    report.bricks = fleet.shutdown(&approved).await;
    bar.finish_and_clear();
    outcome?;
    for e in &scenario.expect {
        checks.extend(evaluate(e, &report, &heard, &touched));
    }
    report.expectations = checks;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn steps(
    scenario: &Scenario,
    ctl: &Controller,
    fleet: &Fleet,
    rogue: Option<&Rogue>,
    tag: &str,
    bar: &ProgressBar,
    deadline: Instant,
    tracked: &mut BTreeMap<String, Tracked>,
    report: &mut Report,
    checks: &mut Vec<Check>,
) -> Result<(), SimError> {
    for (i, step) in scenario.steps.iter().enumerate() {
        if Instant::now() > deadline {
            return Err(SimError::Timeout(format!("scenario timeout {} reached before steps[{i}]", scenario.timeout)));
        }
        match step {
            Step::Propose { name, by, image_kib, spec } => {
                bar.set_message(format!("{}: proposing {name}", scenario.name));
                let mut spec = serde_json::to_value(spec).map_err(|e| SimError::Scenario(e.to_string()))?;
                if let Some(kib) = image_kib {
                    let image = image_bytes(&format!("{tag}-{name}"), *kib as usize * 1024);
                    let fw = spec
                        .get_mut("firmware")
                        .and_then(Value::as_object_mut)
                        .ok_or_else(|| SimError::Scenario(format!("steps[{i}]: image_kib needs a [firmware] table")))?;
                    fw.insert("image_sha256".into(), hex::encode(crate::sha256(&image)).into());
                    fw.insert("image_size".into(), image.len().into());
                    ctl.upload(by, image).await?;
                }
                let goal = spec["firmware"]["version"]
                    .as_str()
                    .and_then(|v| airlock_agent::config::parse_version(v).ok())
                    .filter(|_| spec["kind"] == "firmware");
                let card = ctl.call("POST", "/api/proposals", by, Some(spec)).await?;
                let id = card["id"].as_i64().ok_or_else(|| SimError::Controller(format!("no id: {card}")))?;
                let digest = card_digest(&card)?;
                tracked.insert(
                    name.clone(),
                    Tracked {
                        name: name.clone(),
                        id,
                        digest,
                        target: goal,
                        approvers: Vec::new(),
                        approved_at: None,
                        samples: Vec::new(),
                    },
                );
                checks.push(Check {
                    expected: format!("{name}: proposed"),
                    actual: format!("#{id}, tier {}, {}", card["tier"].as_str().unwrap_or("?"), card["state"]),
                    passed: true,
                });
            }
            Step::Approve { name, by } => {
                let t = tracked.get_mut(name).ok_or_else(|| unknown(name))?;
                for who in by {
                    if t.approved_at.is_some() {
                        // The tier needed fewer approvers (the policy decides, e.g. by weekday).
                        break;
                    }
                    bar.set_message(format!("{}: {who} approves {name}", scenario.name));
                    let card = ctl.decide(t.id, who, Decision::Approve, "rehearsed in the simulator").await?;
                    t.approvers.push(who.clone());
                    t.digest = card_digest(&card)?;
                    if card["state"] != "awaiting_approval" && t.approved_at.is_none() {
                        t.approved_at = Some((Instant::now(), unix_ms()));
                    }
                }
            }
            Step::Check { name, state, approvals, heard } => {
                let t = tracked.get(name).ok_or_else(|| unknown(name))?;
                let card = ctl.call("GET", &format!("/api/proposals/{}", t.id), "admin", None).await?;
                if let Some(s) = state {
                    let actual = card["state"].as_str().unwrap_or("?").to_string();
                    checks.push(Check { expected: format!("{name}: state {s}"), passed: &actual == s, actual });
                }
                if let Some(n) = approvals {
                    let have = card["quorum"]["have"].as_u64().unwrap_or(0);
                    let needed = card["quorum"]["needed"].as_u64().unwrap_or(0);
                    checks.push(Check {
                        expected: format!("{name}: {n} approval(s) so far"),
                        actual: format!("{have} of {needed}"),
                        passed: have == u64::from(*n),
                    });
                }
                if let Some(n) = heard {
                    // Give anything in flight a moment to land before counting.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let actual = fleet.devices.iter().filter(|d| d.heard(&t.digest)).count();
                    checks.push(Check {
                        expected: format!("{name}: {n} devices heard of it"),
                        actual: actual.to_string(),
                        passed: actual == *n,
                    });
                }
            }
            Step::Wait { name, timeout } => {
                let limit = timeout.as_deref().map(duration).transpose().map_err(SimError::Scenario)?;
                let until = (Instant::now() + limit.unwrap_or(Duration::from_secs(300))).min(deadline);
                let t = tracked.get_mut(name).ok_or_else(|| unknown(name))?;
                wait(ctl, fleet, t, bar, &scenario.name, until).await?;
            }
            Step::Abort { name, by, reason } => {
                let t = tracked.get(name).ok_or_else(|| unknown(name))?;
                bar.set_message(format!("{}: {by} aborts {name}", scenario.name));
                let body = serde_json::json!({ "reason": reason });
                ctl.call("POST", &format!("/api/proposals/{}/rollout/abort", t.id), by, Some(body)).await?;
            }
            Step::Sleep { for_ } => {
                let d = duration(for_).map_err(SimError::Scenario)?;
                bar.set_message(format!("{}: waiting {for_}", scenario.name));
                sample_for(fleet, tracked, d).await;
            }
            Step::Rogue { name, attacks, targets } => {
                let t = tracked.get(name).ok_or_else(|| unknown(name))?;
                let rogue = rogue.ok_or_else(|| SimError::Scenario("no rogue client".into()))?;
                bar.set_message(format!("{}: the rogue attacks", scenario.name));
                let approvers = t.approvers.iter().map(|who| ctl.user_key(who)).collect::<Result<Vec<_>, _>>()?;
                let results =
                    rogue.attack(&fleet.devices, &t.digest, attacks, *targets, &ctl.release_key()?, &approvers).await?;
                for (attack, outcome) in results {
                    report.rogue.insert(attack.name().to_string(), outcome);
                }
            }
        }
    }
    Ok(())
}

fn unknown(name: &str) -> SimError {
    SimError::Scenario(format!("no proposal named {name:?}"))
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub(crate) fn card_digest(card: &Value) -> Result<Digest, SimError> {
    hex::decode(card["manifest_digest"].as_str().unwrap_or_default())
        .ok()
        .and_then(|d| <[u8; 32]>::try_from(d).ok())
        .map(Digest::from)
        .ok_or_else(|| SimError::Controller(format!("card without a manifest digest: {card}")))
}

async fn sample_for(fleet: &Fleet, tracked: &mut BTreeMap<String, Tracked>, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        for t in tracked.values_mut() {
            sample(fleet, t);
        }
        tokio::time::sleep(Duration::from_secs(1).min(until.saturating_duration_since(Instant::now()))).await;
    }
}

fn sample(fleet: &Fleet, t: &mut Tracked) {
    if let Some((at, _)) = t.approved_at {
        let n = fleet.confirmed(&t.digest) as u64;
        if t.samples.last().is_none_or(|(_, last)| *last != n) {
            t.samples.push((at.elapsed().as_secs_f64(), n));
        }
    }
}

/// Waits until the rollout leaves `rolling_out`, sampling progress every second.
async fn wait(
    ctl: &Controller,
    fleet: &Fleet,
    t: &mut Tracked,
    bar: &ProgressBar,
    scenario: &str,
    until: Instant,
) -> Result<(), SimError> {
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    loop {
        let status = ctl.rollout(t.id).await?;
        if last_sample.elapsed() >= Duration::from_secs(1) {
            sample(fleet, t);
            last_sample = Instant::now();
        }
        if let Some(s) = &status {
            let state = s["state"].as_str().unwrap_or("?");
            let waves = s["waves"].as_array().map_or(0, Vec::len);
            bar.set_length(s["totals"]["size"].as_u64().unwrap_or(0));
            bar.set_position(s["totals"]["confirmed"].as_u64().unwrap_or(0));
            bar.set_message(format!(
                "{scenario}: {} {state}, wave {}/{waves}, {} online",
                t.name,
                s["wave"].as_u64().unwrap_or(0) + 1,
                fleet.online()
            ));
            if state != "rolling_out" {
                sample(fleet, t);
                return Ok(());
            }
        }
        if Instant::now() > until {
            return Err(SimError::Timeout(format!(
                "{} still rolling out: {}",
                t.name,
                status.map(|s| s["totals"].to_string()).unwrap_or_else(|| "never started".into())
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn proposal_report(ctl: &Controller, fleet: &Fleet, t: &Tracked) -> Result<ProposalReport, SimError> {
    let card = ctl.call("GET", &format!("/api/proposals/{}", t.id), "admin", None).await?;
    let status = ctl.rollout(t.id).await?;
    let approved_ms = t.approved_at.map(|(_, ms)| ms);
    let after = |v: &Value| -> Option<f64> { Some((v.as_i64()? - approved_ms?) as f64 / 1000.0) };
    let mut p = ProposalReport {
        name: t.name.clone(),
        id: t.id,
        tier: card["tier"].as_str().unwrap_or("?").to_string(),
        proposal_state: card["state"].as_str().unwrap_or("?").to_string(),
        rollout_state: "none".into(),
        confirmed: fleet.confirmed(&t.digest) as u64,
        updated_over_time: t.samples.clone(),
        ..ProposalReport::default()
    };
    if let Some(s) = status {
        p.rollout_state = s["state"].as_str().unwrap_or("?").to_string();
        p.breach = s["breach"].as_str().map(str::to_string);
        p.cohort = s["totals"]["size"].as_u64().unwrap_or(0);
        for (i, w) in s["waves"].as_array().into_iter().flatten().enumerate() {
            let n = |k: &str| w[k].as_u64().unwrap_or(0);
            p.waves.push(WaveReport {
                wave: i as u32 + 1,
                size: n("size"),
                pending: n("pending"),
                confirmed: n("confirmed"),
                failed: n("failed"),
                refused: n("refused"),
                reverted: n("reverted"),
                started_after_secs: after(&w["first_sent_at"]),
                last_change_after_secs: after(&w["last_change_at"]),
            });
        }
        if p.confirmed > 0 {
            p.approval_to_last_confirm_secs = t.samples.iter().rev().find(|(_, n)| *n == p.confirmed).map(|(s, _)| *s);
        }
    }
    Ok(p)
}

/// One check per field of the expectation.
/// Per proposal and model: (devices that heard of it, devices).
type Touched = BTreeMap<String, BTreeMap<String, (usize, usize)>>;

fn evaluate(e: &Expect, r: &Report, heard: &BTreeMap<String, usize>, untouched: &Touched) -> Vec<Check> {
    let mut out = Vec::new();
    let mut push = |expected: String, actual: String, passed: bool| out.push(Check { expected, actual, passed });
    let p = e.proposal.as_ref().and_then(|n| r.proposals.iter().find(|p| &p.name == n));
    let name = e.proposal.clone().unwrap_or_default();
    if let Some(p) = p {
        if let Some(s) = &e.state {
            push(format!("{name}: rollout {s}"), p.rollout_state.clone(), &p.rollout_state == s);
        }
        if let Some(w) = e.stopped_in_wave {
            // The wave that breached: the last one that was sent to.
            let stopped = p.waves.iter().rev().find(|w| w.pending < w.size).map_or(0, |w| w.wave);
            let stopped_state = ["paused", "aborted"].contains(&p.rollout_state.as_str());
            push(
                format!("{name}: stopped in wave {w}"),
                format!("{} in wave {stopped}", p.rollout_state),
                stopped_state && stopped == w,
            );
        }
        if let Some(w) = e.reached_waves_at_most {
            let later_sent: u64 = p.waves.iter().skip(w as usize).map(|x| x.size - x.pending).sum();
            let first: u64 = p.waves.iter().take(w as usize).map(|x| x.size).sum();
            let h = heard.get(&name).copied().unwrap_or(0) as u64;
            push(
                format!("{name}: no device outside the first {w} wave(s) received it"),
                format!(
                    "{later_sent} sent beyond wave {w}; {h} devices heard of it, the first {w} wave(s) hold {first}"
                ),
                later_sent == 0 && h <= first,
            );
        }
        if let Some(share) = e.confirmed_share_at_least {
            let actual = if p.cohort == 0 { 0.0 } else { p.confirmed as f64 / p.cohort as f64 };
            push(
                format!("{name}: at least {:.0}% of the cohort confirmed", share * 100.0),
                format!("{} of {} ({:.1}%)", p.confirmed, p.cohort, actual * 100.0),
                actual + 1e-9 >= share,
            );
        }
        if let Some(n) = e.reverted_at_least {
            let reverted: u64 = p.waves.iter().map(|w| w.reverted).sum();
            push(format!("{name}: at least {n} devices reverted"), reverted.to_string(), reverted >= u64::from(n));
        }
        if let Some(share) = e.reverted_share_at_least {
            let reverted: u64 = p.waves.iter().map(|w| w.reverted).sum();
            let actual = if p.cohort == 0 { 0.0 } else { reverted as f64 / p.cohort as f64 };
            push(
                format!("{name}: at least {:.0}% of the cohort reverted", share * 100.0),
                format!("{reverted} of {} ({:.1}%)", p.cohort, actual * 100.0),
                actual + 1e-9 >= share,
            );
        }
        if !e.untouched_hardware.is_empty() {
            let models = e.untouched_hardware.join(", ");
            let (touched, of) = untouched.get(&name).map_or((0, 0), |m| {
                m.iter()
                    .filter(|(hw, _)| e.untouched_hardware.contains(hw))
                    .fold((0, 0), |a, (_, v)| (a.0 + v.0, a.1 + v.1))
            });
            push(
                format!("{name}: no {models} device heard of it"),
                format!("{touched} of {of} heard of it"),
                touched == 0 && of > 0,
            );
        }
        if let Some(n) = e.heard_at_most {
            let h = heard.get(&name).copied().unwrap_or(0);
            push(format!("{name}: at most {n} devices heard of it"), h.to_string(), h <= n);
        }
    }
    if let Some(n) = e.bricked_at_most {
        let b = r.bricks.bricked.len();
        push(
            format!("at most {n} devices bricked"),
            format!("{b} of {} checked", r.bricks.checked),
            b <= n && r.bricks.checked == r.devices,
        );
    }
    if let Some(true) = e.rogue_all_refused {
        let sent: usize = r.rogue.values().map(|a| a.sent).sum();
        let ok: usize = r.rogue.values().map(|a| a.refused_as_expected).sum();
        push(
            "every rogue manifest refused with its reason".into(),
            format!("{ok} of {sent} across {} attacks", r.rogue.len()),
            sent > 0 && ok == sent,
        );
    }
    if let Some(n) = e.power_cuts_at_least {
        push(format!("at least {n} power cuts happened"), r.power_cuts.to_string(), r.power_cuts >= n);
    }
    out
}

/// A tag for this run's device ids: the scenario and a per-run counter (shared brokers).
fn run_tag(scenario: &str) -> String {
    let short: String = scenario.chars().filter(|c| c.is_ascii_alphanumeric()).take(10).collect();
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    format!("{short}{:x}", (t as u64 ^ u64::from(std::process::id()) << 40) % 0xFFFF_FFFF)
}

fn progress_bar(enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} confirmed  {msg}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
