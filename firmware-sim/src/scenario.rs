//! A scenario file: the fleet, the faults, the steps and the expectations.
//!
//! ```toml
//! name = "happy-path"
//! description = "a firmware update in four waves reaches every gw-m4"
//! devices = 1000                      # default fleet size (`--devices` overrides)
//! seed = 7                            # which devices get which fault, reproducibly
//!
//! [[fleet]]                           # the composition: shares add up to 1
//! share = 0.7
//! hardware = "gw-m4"
//! region = "eu-west"
//! environment = "production"
//! firmware = "1.0.0"
//!
//! [faults]                            # disjoint shares of the fleet
//! offline = { share = 0.01 }          # never online during the run (`for = "30s"`: comes up late)
//! flapping = { share = 0.02, up = "3s", down = "2s" }    # the agent goes away and comes back
//! power_loss = { share = 0.05, cuts = 2 }   # power cut at random flash writes, then a reboot
//! slow_link = { share = 0.02, bytes_per_sec = 65536 }
//! lossy_link = { share = 0.02, drops_per_min = 6 }       # the connection dies at random
//! silent = { share = 0.01 }           # connected and subscribed, never answers
//! unhealthy = [{ hardware = ["gw-m7"], version = "2.0.0" }] # that build fails its health check there
//!
//! [[steps]]                           # in order
//! do = "propose"                      # the spec is what `airlock propose --file` takes; an
//! name = "fw"                         #   image of `image_kib` is generated and uploaded and
//! image_kib = 256                     #   its digest and size filled in
//! [steps.spec]
//! kind = "firmware"
//! # ...
//!
//! [[steps]]
//! do = "approve"
//! name = "fw"
//! by = ["alice", "carol"]
//!
//! [[steps]]
//! do = "wait"                         # until the rollout is no longer rolling out
//! name = "fw"
//!
//! [[expect]]                          # every field present is one check
//! proposal = "fw"
//! state = "completed"
//! ```
//!
//! Step kinds: `propose`, `approve` (signs with each user's key file), `check` (the proposal's
//! state and approvals so far, and how many devices heard of it), `wait`, `abort`, `sleep`, and
//! `rogue` (attacks on devices, with deliveries captured from `name`'s rollout).

use crate::SimError;
use serde::Deserialize;
use std::time::Duration;

/// A whole scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (the report's title).
    pub name: String,
    /// What it rehearses, in a sentence.
    pub description: String,
    /// Fleet size.
    #[serde(default = "default_devices")]
    pub devices: usize,
    /// Seed for fault assignment and power-cut points.
    #[serde(default)]
    pub seed: u64,
    /// Bound on the whole run.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// The fleet's composition.
    pub fleet: Vec<Group>,
    /// Faults.
    #[serde(default)]
    pub faults: Faults,
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// What must hold at the end.
    #[serde(default)]
    pub expect: Vec<Expect>,
}

fn default_devices() -> usize {
    1000
}

fn default_timeout() -> String {
    "10m".into()
}

/// A share of the fleet with the same attributes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Share of the fleet, 0 to 1.
    pub share: f64,
    /// Hardware model.
    pub hardware: String,
    /// Region.
    pub region: String,
    /// Environment.
    pub environment: String,
    /// Factory firmware version.
    pub firmware: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The faults, each on its own share of the fleet.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Devices that are offline (for the whole run, or for `for`).
    pub offline: Option<Offline>,
    /// Agents that go away and come back.
    pub flapping: Option<Flapping>,
    /// Power cuts at random flash operations.
    pub power_loss: Option<PowerLoss>,
    /// Bandwidth-limited links.
    pub slow_link: Option<SlowLink>,
    /// Links whose connection dies at random.
    pub lossy_link: Option<LossyLink>,
    /// Devices that are connected but never answer.
    pub silent: Option<Share>,
    /// Builds that fail their health check on some models.
    #[serde(default)]
    pub unhealthy: Vec<Unhealthy>,
}

/// Just a share.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// Share of the fleet.
    pub share: f64,
}

/// Offline devices.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offline {
    /// Share of the fleet.
    pub share: f64,
    /// Comes online after this long (absent: never during the run).
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
}

/// Flapping agents.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flapping {
    /// Share of the fleet.
    pub share: f64,
    /// Time up, on average (each period is drawn between half and 1.5 times this).
    pub up: String,
    /// Time down, on average.
    pub down: String,
}

/// Power loss.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerLoss {
    /// Share of the fleet.
    pub share: f64,
    /// Power cuts per device (each at a random flash write or erase of the update).
    #[serde(default = "one")]
    pub cuts: u32,
}

fn one() -> u32 {
    1
}

/// Slow links.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowLink {
    /// Share of the fleet.
    pub share: f64,
    /// Each direction's bandwidth.
    pub bytes_per_sec: u64,
}

/// Lossy links.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossyLink {
    /// Share of the fleet.
    pub share: f64,
    /// Connection drops per minute, on average (exponentially distributed lifetimes).
    pub drops_per_min: f64,
}

/// A build that fails its health check on some models.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unhealthy {
    /// The models it fails on.
    pub hardware: Vec<String>,
    /// The firmware version that fails.
    pub version: String,
}

/// One step.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Propose `spec` (as `airlock propose --file` takes it) as `by`.
    Propose {
        /// The name later steps use.
        name: String,
        /// Requester (default `rita`).
        #[serde(default = "rita")]
        by: String,
        /// Generate and upload an image of this many KiB, and fill in the firmware's
        /// `image_sha256` and `image_size`.
        #[serde(default)]
        image_kib: Option<u32>,
        /// The proposal.
        spec: toml::Value,
    },
    /// Approve (sign the manifest digest with each user's key file, in order).
    Approve {
        /// Proposal.
        name: String,
        /// Approvers.
        by: Vec<String>,
    },
    /// Check the proposal now.
    Check {
        /// Proposal.
        name: String,
        /// Its state (`awaiting_approval`, `signed`, `rolling_out`, ...).
        #[serde(default)]
        state: Option<String>,
        /// Approvals so far.
        #[serde(default)]
        approvals: Option<u32>,
        /// Devices that heard of its manifest.
        #[serde(default)]
        heard: Option<usize>,
    },
    /// Wait until the rollout is no longer rolling out.
    Wait {
        /// Proposal.
        name: String,
        /// Bound (default 5m).
        #[serde(default)]
        timeout: Option<String>,
    },
    /// Abort the rollout (devices revert on the signed command).
    Abort {
        /// Proposal.
        name: String,
        /// Who (default `alice`).
        #[serde(default = "alice")]
        by: String,
        /// Why.
        reason: String,
    },
    /// Wait a fixed time.
    Sleep {
        /// How long.
        #[serde(rename = "for")]
        for_: String,
    },
    /// A rogue publisher attacks, with deliveries captured from `name`'s rollout.
    Rogue {
        /// Proposal whose deliveries the rogue captured.
        name: String,
        /// Attacks: `forged`, `replayed`, `downgraded`, `approval_stripped`, `out_of_cohort`.
        attacks: Vec<Attack>,
        /// Devices attacked per attack.
        #[serde(default = "ten")]
        targets: usize,
    },
}

fn rita() -> String {
    "rita".into()
}

fn alice() -> String {
    "alice".into()
}

fn ten() -> usize {
    10
}

/// A rogue publisher's attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    /// A captured delivery with one bit of the release signature flipped.
    Forged,
    /// A delivery the device already installed, byte for byte.
    Replayed,
    /// A validly signed and approved manifest for an older version (a compromised controller).
    Downgraded,
    /// A validly signed manifest without its approvals.
    ApprovalStripped,
    /// A cohort member's delivery sent to a device outside the cohort.
    OutOfCohort,
}

impl Attack {
    /// The refusal every device must answer it with.
    pub fn refusal(self) -> airlock_proto::Refusal {
        use airlock_proto::Refusal;
        match self {
            Attack::Forged => Refusal::BadSignature,
            Attack::Replayed => Refusal::Replay,
            Attack::Downgraded => Refusal::VersionDowngrade,
            Attack::ApprovalStripped => Refusal::QuorumShort,
            Attack::OutOfCohort => Refusal::NotInCohort,
        }
    }

    /// Its name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Attack::Forged => "forged",
            Attack::Replayed => "replayed",
            Attack::Downgraded => "downgraded",
            Attack::ApprovalStripped => "approval_stripped",
            Attack::OutOfCohort => "out_of_cohort",
        }
    }
}

/// One expectation: every field present is one check.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The proposal the rollout checks are about.
    #[serde(default)]
    pub proposal: Option<String>,
    /// The rollout's final state (`completed`, `paused`, `aborted`, `rolling_out`).
    #[serde(default)]
    pub state: Option<String>,
    /// The wave (from 1) the rollout stopped in.
    #[serde(default)]
    pub stopped_in_wave: Option<u32>,
    /// Only the first N waves were ever sent to, and no more devices heard of the manifest than
    /// those waves hold ("no device outside the canary updated": 1).
    #[serde(default)]
    pub reached_waves_at_most: Option<u32>,
    /// Share of the cohort confirmed, at least.
    #[serde(default)]
    pub confirmed_share_at_least: Option<f64>,
    /// Devices that reverted it, at least.
    #[serde(default)]
    pub reverted_at_least: Option<u32>,
    /// Share of the cohort that reverted it, at least.
    #[serde(default)]
    pub reverted_share_at_least: Option<f64>,
    /// Devices that heard of it, at most.
    #[serde(default)]
    pub heard_at_most: Option<usize>,
    /// No device of these models heard of it (they are outside the cohort).
    #[serde(default)]
    pub untouched_hardware: Vec<String>,
    /// Bricked devices in the fleet, at most (a device is bricked when its flash does not open
    /// and boot an approved image whose bytes match its record).
    #[serde(default)]
    pub bricked_at_most: Option<usize>,
    /// Every rogue message was refused with its reason.
    #[serde(default)]
    pub rogue_all_refused: Option<bool>,
    /// Power cuts that happened, at least (the fault really fired).
    #[serde(default)]
    pub power_cuts_at_least: Option<u64>,
}

impl Scenario {
    /// Parses and validates a scenario file's text; errors name the file and what is wrong.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SimError> {
        let s: Scenario = toml::from_str(text).map_err(|e| SimError::Scenario(format!("{origin}: {e}")))?;
        s.validate().map_err(|e| SimError::Scenario(format!("{origin}: {e}")))?;
        Ok(s)
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &std::path::Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Scenario(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn validate(&self) -> Result<(), String> {
        if self.fleet.is_empty() {
            return Err("[[fleet]] is empty: a scenario needs at least one group of devices".into());
        }
        let total: f64 = self.fleet.iter().map(|g| g.share).sum();
        if self.fleet.iter().any(|g| !(g.share > 0.0 && g.share <= 1.0)) || (total - 1.0).abs() > 1e-6 {
            return Err(format!("[[fleet]] shares must each be in (0, 1] and add up to 1 (they add up to {total:.3})"));
        }
        for g in &self.fleet {
            airlock_agent::config::parse_version(&g.firmware)
                .map_err(|e| format!("[[fleet]] firmware {:?}: {e}", g.firmware))?;
        }
        let f = &self.faults;
        let shares = [
            ("offline", f.offline.as_ref().map(|o| o.share)),
            ("flapping", f.flapping.as_ref().map(|o| o.share)),
            ("power_loss", f.power_loss.as_ref().map(|o| o.share)),
            ("slow_link", f.slow_link.as_ref().map(|o| o.share)),
            ("lossy_link", f.lossy_link.as_ref().map(|o| o.share)),
            ("silent", f.silent.as_ref().map(|o| o.share)),
        ];
        let mut sum = 0.0;
        for (name, share) in shares {
            if let Some(s) = share {
                if !(0.0..=1.0).contains(&s) {
                    return Err(format!("faults.{name}.share must be between 0 and 1, not {s}"));
                }
                sum += s;
            }
        }
        if sum > 1.0 + 1e-9 {
            return Err(format!("fault shares add up to {sum:.3}: each device has at most one fault, so at most 1"));
        }
        if let Some(o) = &f.offline {
            if let Some(d) = &o.for_ {
                duration(d).map_err(|e| format!("faults.offline.for: {e}"))?;
            }
        }
        if let Some(fl) = &f.flapping {
            duration(&fl.up).map_err(|e| format!("faults.flapping.up: {e}"))?;
            duration(&fl.down).map_err(|e| format!("faults.flapping.down: {e}"))?;
        }
        if let Some(s) = &f.slow_link {
            if s.bytes_per_sec < 1024 {
                return Err("faults.slow_link.bytes_per_sec must be at least 1024".into());
            }
        }
        if let Some(l) = &f.lossy_link {
            if !(l.drops_per_min > 0.0 && l.drops_per_min <= 600.0) {
                return Err("faults.lossy_link.drops_per_min must be in (0, 600]".into());
            }
        }
        for u in &f.unhealthy {
            airlock_agent::config::parse_version(&u.version)
                .map_err(|e| format!("faults.unhealthy version {:?}: {e}", u.version))?;
        }
        duration(&self.timeout).map_err(|e| format!("timeout: {e}"))?;
        let mut names: Vec<&str> = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{i}]");
            match step {
                Step::Propose { name, spec, image_kib, .. } => {
                    if names.contains(&name.as_str()) {
                        return Err(format!("{at}: proposal {name:?} is proposed twice"));
                    }
                    if !spec.is_table() {
                        return Err(format!("{at}: spec must be a table (a proposal as `airlock propose` takes it)"));
                    }
                    if image_kib.is_some_and(|k| k == 0 || k > 16 * 1024) {
                        return Err(format!("{at}: image_kib must be between 1 and 16384"));
                    }
                    names.push(name);
                }
                Step::Approve { name, .. }
                | Step::Check { name, .. }
                | Step::Wait { name, .. }
                | Step::Abort { name, .. }
                | Step::Rogue { name, .. } => {
                    if !names.contains(&name.as_str()) {
                        return Err(format!("{at}: {name:?} is not proposed by an earlier step"));
                    }
                    if let Step::Wait { timeout: Some(t), .. } = step {
                        duration(t).map_err(|e| format!("{at}.timeout: {e}"))?;
                    }
                    if let Step::Rogue { attacks, .. } = step {
                        if attacks.is_empty() {
                            return Err(format!("{at}: a rogue step needs at least one attack"));
                        }
                    }
                }
                Step::Sleep { for_ } => {
                    duration(for_).map_err(|e| format!("{at}.for: {e}"))?;
                }
            }
        }
        for (i, e) in self.expect.iter().enumerate() {
            let rollout_checks = e.state.is_some()
                || e.stopped_in_wave.is_some()
                || e.reached_waves_at_most.is_some()
                || e.confirmed_share_at_least.is_some()
                || e.reverted_at_least.is_some()
                || e.reverted_share_at_least.is_some()
                || e.heard_at_most.is_some()
                || !e.untouched_hardware.is_empty();
            match &e.proposal {
                Some(p) if !names.contains(&p.as_str()) => {
                    return Err(format!("expect[{i}]: proposal {p:?} is not proposed by any step"));
                }
                None if rollout_checks => {
                    return Err(format!("expect[{i}]: rollout checks need `proposal = \"NAME\"`"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The run's bound.
    pub fn timeout(&self) -> Duration {
        duration(&self.timeout).unwrap_or(Duration::from_secs(600))
    }
}

/// `"250ms"`, `"30s"`, `"5m"`, `"1h"`.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = number.parse().map_err(|_| format!("{s:?} is not a duration like \"30s\", \"5m\" or \"250ms\""))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m or h")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "t"
        description = "d"
        [[fleet]]
        share = 1.0
        hardware = "gw-m4"
        region = "eu"
        environment = "lab"
        firmware = "1.0.0"
        [[steps]]
        do = "propose"
        name = "fw"
        [steps.spec]
        kind = "firmware"
        [[steps]]
        do = "wait"
        name = "fw"
        [[expect]]
        proposal = "fw"
        state = "completed"
    "#;

    #[test]
    fn every_shipped_scenario_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 6, "six scenarios ship, found {n}");
    }

    #[test]
    fn a_minimal_scenario_parses_with_defaults() {
        let s = Scenario::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!(s.devices, 1000);
        assert_eq!(s.steps.len(), 2);
        assert_eq!(s.timeout(), Duration::from_secs(600));
    }

    fn refused(text: &str) -> String {
        match Scenario::parse(text, "bad.toml") {
            Err(SimError::Scenario(e)) => e,
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn malformed_scenarios_are_refused_with_what_is_wrong() {
        let e = refused(&MINIMAL.replace("share = 1.0", "share = 0.5"));
        assert!(e.contains("bad.toml") && e.contains("add up to 1"), "{e}");
        let e = refused(&MINIMAL.replace("do = \"wait\"", "do = \"dance\""));
        assert!(e.contains("dance"), "{e}");
        let e = refused(&MINIMAL.replace("state = \"completed\"", "state = \"completed\"\nbogus = 1"));
        assert!(e.contains("bogus"), "{e}");
        let e =
            refused(&MINIMAL.replace("do = \"wait\"\n        name = \"fw\"", "do = \"wait\"\n        name = \"nope\""));
        assert!(e.contains("\"nope\" is not proposed"), "{e}");
        let e = refused(&MINIMAL.replace("firmware = \"1.0.0\"", "firmware = \"one\""));
        assert!(e.contains("firmware \"one\""), "{e}");
        let e = refused(&format!("{MINIMAL}\n[faults]\noffline = {{ share = 0.7 }}\nsilent = {{ share = 0.6 }}\n"));
        assert!(e.contains("add up to 1.300"), "{e}");
        let e =
            refused(&format!("{MINIMAL}\n[faults]\nflapping = {{ share = 0.1, up = \"3 parsecs\", down = \"1s\" }}\n"));
        assert!(e.contains("faults.flapping.up"), "{e}");
    }

    #[test]
    fn durations_take_the_usual_units_and_refuse_the_rest() {
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(duration("30").is_err());
        assert!(duration("s").is_err());
        assert!(duration("3d").is_err());
    }
}
