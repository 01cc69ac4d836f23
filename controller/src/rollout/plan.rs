//! The arithmetic of a rollout, without I/O: which wave each device is in, when a wave is done
//! or breached, and how many sends the rate limit allows.

use super::DeviceState;
use serde::{Deserialize, Serialize};

/// Floating-point slack for shares and thresholds (`0.1 * 200` is not exactly 20).
const EPSILON: f64 = 1e-9;

/// The rate limit's burst: a tick may use at most one second's worth of sends, so a controller
/// that was down for an hour does not send an hour's worth at once. Tick at least once a second
/// for the full rate.
pub(crate) const BURST_US: i64 = 1_000_000;

/// Orders the cohort by the SHA-256 of each id (a stable spread across regions and models, like
/// cohort shares) and cuts it at the plan's cumulative shares. Returns `(id, wave)` in spread
/// order. Every wave has at least one device: a share that would give a wave none takes one
/// more device, and waves beyond the cohort's size are dropped (a cohort of 2 has at most 2).
pub(crate) fn assign_waves(shares: &[f64], ids: &[String]) -> Vec<(String, u32)> {
    let mut ordered: Vec<&String> = ids.iter().collect();
    ordered.sort_by_cached_key(|id| (spread_key(id), id.to_string()));
    let n = ordered.len();
    let mut out = Vec::with_capacity(n);
    let mut done = 0usize;
    let mut wave = 0u32;
    for share in shares {
        if done == n {
            break;
        }
        let cut = ((share * n as f64) - EPSILON).ceil().max(0.0) as usize;
        let cut = cut.max(done + 1).min(n);
        out.extend(ordered[done..cut].iter().map(|id| ((*id).clone(), wave)));
        done = cut;
        wave += 1;
    }
    // A plan always ends at 1.0 (the spec is validated); this only guards a hand-edited row.
    let last = wave.saturating_sub(1);
    out.extend(ordered[done..].iter().map(|id| ((*id).clone(), last)));
    out
}

fn spread_key(id: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(id.as_bytes()).into()
}

/// Devices of one wave by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Devices in the wave.
    pub size: u32,
    /// Not sent yet.
    pub pending: u32,
    /// Sent, no report yet.
    pub sent: u32,
    /// Accepted the manifest, downloading.
    pub accepted: u32,
    /// Installed, in the test boot.
    pub installed: u32,
    /// Confirmed (passed the health check).
    pub confirmed: u32,
    /// Timed out (no report within the device timeout).
    pub failed: u32,
    /// Refused the delivery.
    pub refused: u32,
    /// Went back to the previous image or config.
    pub reverted: u32,
}

impl Counts {
    /// Adds `n` devices in `state`.
    pub(crate) fn add(&mut self, state: DeviceState, n: u32) {
        self.size += n;
        let slot = match state {
            DeviceState::Pending => &mut self.pending,
            DeviceState::Sent => &mut self.sent,
            DeviceState::Accepted => &mut self.accepted,
            DeviceState::Installed => &mut self.installed,
            DeviceState::Confirmed => &mut self.confirmed,
            DeviceState::Failed => &mut self.failed,
            DeviceState::Refused => &mut self.refused,
            DeviceState::Reverted => &mut self.reverted,
        };
        *slot += n;
    }

    /// Failed, refused or reverted: what the failure threshold counts.
    pub fn failures(&self) -> u32 {
        self.failed + self.refused + self.reverted
    }

    /// Sent and not yet settled.
    pub fn in_flight(&self) -> u32 {
        self.sent + self.accepted + self.installed
    }
}

/// What a wave's counts mean.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Keep sending and waiting.
    Continue,
    /// Every device was sent and enough confirmed: on to the next wave.
    Advance,
    /// Too many failed, or every device settled below the success threshold.
    Breach(String),
}

/// Judges wave `wave` (0-based, named from 1 in its messages, as people count): breach first (more failures than `failure × size`), then
/// success (nothing left to send and at least `success × size` confirmed), then a wave that can
/// no longer succeed (everything settled, too few confirmed) is a breach too, or it would wait
/// forever.
pub(crate) fn judge(success: f64, failure: f64, wave: u32, c: &Counts) -> Verdict {
    let size = f64::from(c.size);
    let pct = |x: f64| format!("{}%", (x * 1000.0).round() / 10.0);
    let wave = wave + 1;
    if f64::from(c.failures()) > failure * size + EPSILON {
        return Verdict::Breach(format!(
            "wave {wave}: {} of {} devices failed (timed out {}, refused {}, reverted {}), above the failure threshold of {}",
            c.failures(),
            c.size,
            c.failed,
            c.refused,
            c.reverted,
            pct(failure)
        ));
    }
    if c.pending == 0 && f64::from(c.confirmed) >= success * size - EPSILON {
        return Verdict::Advance;
    }
    if c.pending == 0 && c.in_flight() == 0 {
        return Verdict::Breach(format!(
            "wave {wave}: every device settled with {} of {} confirmed, below the success threshold of {}",
            c.confirmed,
            c.size,
            pct(success)
        ));
    }
    Verdict::Continue
}

/// Takes one send from the token bucket whose clock is `rate_at_us`: the new clock, or `None`
/// when the rate is used up. Each send costs `1 s / rate` (floored to whole microseconds, so
/// rates above a million per second are a million per second); the clock never lags `now` by
/// more than [`BURST_US`].
pub(crate) fn take_token(rate_at_us: i64, now_us: i64, rate_per_sec: u32) -> Option<i64> {
    let cost = (1_000_000 / i64::from(rate_per_sec.max(1))).max(1);
    let next = rate_at_us.max(now_us - BURST_US) + cost;
    (next <= now_us).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("dev-{i:04}")).collect()
    }

    fn sizes(assigned: &[(String, u32)]) -> Vec<usize> {
        let waves = assigned.iter().map(|a| a.1).max().map_or(0, |w| w as usize + 1);
        (0..waves).map(|w| assigned.iter().filter(|a| a.1 == w as u32).count()).collect()
    }

    #[test]
    fn waves_follow_the_cumulative_shares() {
        let a = assign_waves(&[0.01, 0.1, 0.5, 1.0], &ids(200));
        assert_eq!(sizes(&a), [2, 18, 80, 100]);
        // Every device exactly once, in a stable order.
        let mut seen: Vec<&String> = a.iter().map(|x| &x.0).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 200);
        assert_eq!(a, assign_waves(&[0.01, 0.1, 0.5, 1.0], &ids(200)));
    }

    #[test]
    fn every_wave_has_a_device_and_small_cohorts_have_fewer_waves() {
        assert_eq!(sizes(&assign_waves(&[0.01, 0.1, 0.5, 1.0], &ids(10))), [1, 1, 3, 5]);
        assert_eq!(sizes(&assign_waves(&[0.01, 0.1, 0.5, 1.0], &ids(2))), [1, 1]);
        assert_eq!(sizes(&assign_waves(&[1.0], &ids(7))), [7]);
    }

    #[test]
    fn the_spread_order_does_not_follow_the_ids() {
        let a = assign_waves(&[0.1, 1.0], &ids(100));
        let canary: Vec<&str> = a.iter().filter(|x| x.1 == 0).map(|x| x.0.as_str()).collect();
        assert_ne!(canary, (0..10).map(|i| format!("dev-{i:04}")).collect::<Vec<_>>());
    }

    fn counts(pending: u32, sent: u32, confirmed: u32, failed: u32) -> Counts {
        let mut c = Counts::default();
        c.add(DeviceState::Pending, pending);
        c.add(DeviceState::Sent, sent);
        c.add(DeviceState::Confirmed, confirmed);
        c.add(DeviceState::Failed, failed);
        c
    }

    #[test]
    fn a_wave_breaches_above_the_failure_threshold_and_advances_at_the_success_threshold() {
        assert!(matches!(judge(0.95, 0.05, 0, &counts(0, 0, 1, 1)), Verdict::Breach(m) if m.contains("1 of 2")));
        // People count waves from 1: the first wave's breach says so.
        let first = judge(0.95, 0.05, 0, &counts(0, 0, 1, 1));
        assert!(matches!(first, Verdict::Breach(ref m) if m.starts_with("wave 1: ")), "{first:?}");
        assert_eq!(judge(0.95, 0.05, 2, &counts(0, 4, 76, 0)), Verdict::Advance);
        assert_eq!(judge(0.95, 0.05, 2, &counts(0, 4, 75, 1)), Verdict::Continue);
        // Exactly at the failure threshold is not a breach: 4 of 80 is 5%.
        assert_eq!(judge(0.95, 0.05, 2, &counts(0, 0, 76, 4)), Verdict::Advance);
        // Confirmed enough but devices still unsent: keep sending.
        assert_eq!(judge(0.5, 0.05, 1, &counts(3, 0, 17, 0)), Verdict::Continue);
    }

    #[test]
    fn a_wave_that_settled_below_the_success_threshold_is_a_breach() {
        let v = judge(0.95, 0.5, 1, &counts(0, 0, 6, 4));
        assert!(matches!(v, Verdict::Breach(ref m) if m.contains("6 of 10 confirmed")), "{v:?}");
    }

    #[test]
    fn the_rate_limit_allows_rate_sends_per_second_and_bursts_one_second() {
        let now = 1_000_000_000;
        let mut clock = 0; // long idle: a full bucket of one second
        let mut sent = 0;
        while let Some(next) = take_token(clock, now, 3) {
            clock = next;
            sent += 1;
        }
        assert_eq!(sent, 3);
        // The next send is due one third of a second after the burst was used up.
        assert_eq!(take_token(clock, now + 333_331, 3), None);
        assert!(take_token(clock, now + 333_332, 3).is_some());
    }
}
