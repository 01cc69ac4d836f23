//! What a requester asks for — "do X, on Y, because Z, with these parameters" — and the exact
//! manifest it becomes.

use crate::policy::Kind;
use crate::registry::Selector;
use airlock_proto::{Digest, Tier, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A proposal as submitted (and as edited: an edit submits a whole new spec).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// What it does.
    pub kind: Kind,
    /// The action in one line ("Install fw 2.4.1 on the EU gateways").
    pub title: String,
    /// Why ("because ...").
    pub reason: String,
    /// Which devices.
    pub cohort: Selector,
    /// Firmware parameters (kind firmware).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareSpec>,
    /// Config parameters (kind config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigSpec>,
    /// How it rolls out.
    #[serde(default)]
    pub rollout: RolloutPlan,
    /// How it comes back.
    #[serde(default)]
    pub rollback: RollbackSpec,
    /// Security-related change.
    #[serde(default)]
    pub security: bool,
    /// Emergency lane: the reason is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    /// How long the approved manifest stays valid ("7d"); break-glass is capped by policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<String>,
}

/// Firmware to install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareSpec {
    /// `major.minor.patch`.
    pub version: String,
    /// Hardware model it is built for.
    pub hardware: String,
    /// Anti-rollback counter.
    #[serde(default)]
    pub security_counter: u32,
    /// SHA-256 of the image, hex.
    pub image_sha256: String,
    /// Image size in bytes.
    pub image_size: u32,
    /// Chunk size devices pull (default 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u32>,
}

/// A configuration to push.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// Version of the configuration document.
    pub version: u32,
    /// Keys and values.
    pub values: BTreeMap<String, ConfigValue>,
}

/// One configuration value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigValue {
    /// The value.
    pub value: serde_json::Value,
    /// Never shown on a card or returned by the API; the manifest carries only a salted
    /// commitment to it.
    #[serde(default)]
    pub secret: bool,
}

/// Waves and thresholds (the rollout engine executes them; approvers sign their digest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    /// Cumulative shares of the cohort per wave, ascending, ending at 1.0.
    pub waves: Vec<f64>,
    /// Share of a wave that must confirm before the next wave starts.
    pub success_threshold: f64,
    /// Share of a wave failing that breaches the plan.
    pub failure_threshold: f64,
    /// A device that has not reported within this long counts as failed ("30m").
    pub device_timeout: String,
    /// At most this many deliveries per second.
    pub rate_per_sec: u32,
    /// On a breach: `pause` and ask, or `abort` and revert.
    pub on_breach: Breach,
}

impl Default for RolloutPlan {
    fn default() -> Self {
        RolloutPlan {
            waves: vec![0.01, 0.1, 0.5, 1.0],
            success_threshold: 0.95,
            failure_threshold: 0.05,
            device_timeout: "30m".into(),
            rate_per_sec: 100,
            on_breach: Breach::Pause,
        }
    }
}

/// What a breached rollout does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Breach {
    /// Pause and ask for approval to continue.
    Pause,
    /// Abort and send signed revert commands.
    Abort,
}

/// The rollback plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "plan", content = "version")]
pub enum RollbackSpec {
    /// None.
    None,
    /// Return to the previous image or config (kept on the device).
    #[default]
    Previous,
    /// Roll forward to this known-good version.
    Version(String),
}

/// Why a spec is refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// A field is missing or wrong; the message names it.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> SpecError {
    SpecError::Invalid(msg.into())
}

/// Parses `major.minor.patch`.
pub fn parse_version(s: &str) -> Option<Version> {
    let mut it = s.trim().split('.').map(|p| p.parse::<u16>().ok());
    let v = Version::new(it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(v)
}

impl Spec {
    /// Checks everything that does not need the database.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.title.trim().is_empty() || self.title.len() > 200 {
            return Err(invalid("title: one line of 1 to 200 characters"));
        }
        if self.reason.trim().is_empty() {
            return Err(invalid("reason: say why (\"because ...\")"));
        }
        match (self.kind, &self.firmware, &self.config) {
            (Kind::Firmware, Some(f), None) => f.validate()?,
            (Kind::Config, None, Some(c)) => c.validate()?,
            (Kind::Decommission, None, None) => {}
            (Kind::Firmware, ..) => return Err(invalid("kind firmware needs `firmware` and no `config`")),
            (Kind::Config, ..) => return Err(invalid("kind config needs `config` and no `firmware`")),
            (Kind::Decommission, ..) => return Err(invalid("kind decommission takes neither `firmware` nor `config`")),
        }
        self.rollout.validate()?;
        if let RollbackSpec::Version(v) = &self.rollback {
            parse_version(v).ok_or_else(|| invalid(format!("rollback.version {v:?} is not major.minor.patch")))?;
        }
        if let Some(reason) = &self.break_glass {
            if reason.trim().len() < 10 {
                return Err(invalid("break_glass: give the emergency reason (10 characters at least)"));
            }
        }
        if let Some(l) = &self.lifetime {
            crate::policy::load::duration_secs(l)
                .ok_or_else(|| invalid(format!("lifetime {l:?}: like \"7d\" or \"2h\"")))?;
        }
        Ok(())
    }

    /// Lifetime in seconds (default 7 days).
    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime.as_deref().and_then(crate::policy::load::duration_secs).unwrap_or(7 * 86_400)
    }

    /// Whether a rollback plan is present.
    pub fn has_rollback(&self) -> bool {
        self.rollback != RollbackSpec::None
    }

    /// The spec with secret config values replaced by a marker: what cards and the API show.
    pub fn redacted(&self) -> Spec {
        let mut s = self.clone();
        if let Some(c) = &mut s.config {
            for v in c.values.values_mut() {
                if v.secret {
                    v.value = serde_json::Value::String(REDACTED.into());
                }
            }
        }
        s
    }
}

/// What a secret value shows as.
pub const REDACTED: &str = "<secret: redacted>";

impl FirmwareSpec {
    fn validate(&self) -> Result<(), SpecError> {
        parse_version(&self.version)
            .ok_or_else(|| invalid(format!("firmware.version {:?} is not major.minor.patch", self.version)))?;
        if self.image_size == 0 {
            return Err(invalid("firmware.image_size must be above 0"));
        }
        if self.image_sha256.len() != 64 || hex::decode(&self.image_sha256).is_err() {
            return Err(invalid("firmware.image_sha256: 64 hex digits"));
        }
        let chunk = self.chunk_size.unwrap_or(4096) as usize;
        if chunk == 0 || chunk > airlock_proto::limits::MAX_CHUNK {
            return Err(invalid(format!("firmware.chunk_size: 1 to {}", airlock_proto::limits::MAX_CHUNK)));
        }
        airlock_proto::check_device_id(&self.hardware)
            .map_err(|_| invalid(format!("firmware.hardware {:?}: letters, digits, . _ -", self.hardware)))?;
        Ok(())
    }
}

impl ConfigSpec {
    fn validate(&self) -> Result<(), SpecError> {
        if self.values.is_empty() {
            return Err(invalid("config.values: at least one key"));
        }
        Ok(())
    }

    /// The payload devices receive in the manifest: canonical JSON (sorted keys), with each
    /// secret replaced by `{"secret_sha256": SHA-256(salt || value)}` so approvers sign a
    /// commitment to it without ever seeing it.
    pub fn payload(&self, salt: &[u8; 16]) -> Vec<u8> {
        let doc: BTreeMap<&String, serde_json::Value> = self
            .values
            .iter()
            .map(|(k, v)| {
                let shown = if v.secret {
                    use sha2::Digest as _;
                    let mut h = sha2::Sha256::new();
                    h.update(salt);
                    h.update(v.value.to_string().as_bytes());
                    serde_json::json!({ "secret_sha256": hex::encode(h.finalize()) })
                } else {
                    v.value.clone()
                };
                (k, shown)
            })
            .collect();
        serde_json::to_vec(&doc).unwrap_or_default()
    }
}

impl RolloutPlan {
    fn validate(&self) -> Result<(), SpecError> {
        let ascending = self.waves.windows(2).all(|w| w[0] < w[1]);
        let bounded = self.waves.iter().all(|w| *w > 0.0 && *w <= 1.0);
        if self.waves.is_empty() || !ascending || !bounded || self.waves.last() != Some(&1.0) {
            return Err(invalid("rollout.waves: ascending cumulative shares above 0, ending at 1.0"));
        }
        for (name, v) in [("success_threshold", self.success_threshold), ("failure_threshold", self.failure_threshold)]
        {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(format!("rollout.{name} must be between 0 and 1")));
            }
        }
        crate::policy::load::duration_secs(&self.device_timeout)
            .ok_or_else(|| invalid(format!("rollout.device_timeout {:?}: like \"30m\"", self.device_timeout)))?;
        if self.rate_per_sec == 0 {
            return Err(invalid("rollout.rate_per_sec must be above 0"));
        }
        Ok(())
    }

    /// SHA-256 of the plan's canonical JSON: what the manifest carries.
    pub fn digest(&self) -> Digest {
        use sha2::Digest as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        Digest::from(<[u8; 32]>::from(sha2::Sha256::digest(json)))
    }
}

/// The fields a manifest is built from besides the spec.
#[derive(Clone, Copy, Debug)]
pub struct ManifestInputs {
    /// Proposal id.
    pub proposal: u64,
    /// Revision.
    pub revision: u32,
    /// Manifest sequence.
    pub sequence: u64,
    /// Unix seconds.
    pub issued_at: u64,
    /// The tier decided.
    pub tier: Tier,
    /// The policy digest.
    pub policy: Digest,
    /// The requester's key.
    pub requester: airlock_proto::PublicKey,
    /// Cohort root and size.
    pub cohort: airlock_proto::Cohort,
}

/// Encodes the manifest body for `spec`: the bytes approvers sign the digest of.
pub fn manifest_body(spec: &Spec, i: &ManifestInputs, salt: &[u8; 16]) -> Result<Vec<u8>, SpecError> {
    use airlock_proto::{Action, Config, Firmware, Manifest, Rollback};
    let payload;
    let hardware;
    let action = match spec.kind {
        Kind::Firmware => {
            let f = spec.firmware.as_ref().ok_or_else(|| invalid("kind firmware needs `firmware`"))?;
            let digest: [u8; 32] = hex::decode(&f.image_sha256)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| invalid("firmware.image_sha256: 64 hex digits"))?;
            hardware = f.hardware.clone();
            Action::Firmware(Firmware {
                hardware: &hardware,
                version: parse_version(&f.version).ok_or_else(|| invalid("firmware.version"))?,
                security_counter: f.security_counter,
                image_digest: Digest::from(digest),
                image_size: f.image_size,
                chunk_size: f.chunk_size.unwrap_or(4096),
            })
        }
        Kind::Config => {
            let c = spec.config.as_ref().ok_or_else(|| invalid("kind config needs `config`"))?;
            payload = c.payload(salt);
            if payload.len() > airlock_proto::limits::MAX_CONFIG {
                return Err(invalid(format!(
                    "config payload is {} bytes, devices take at most {}",
                    payload.len(),
                    airlock_proto::limits::MAX_CONFIG
                )));
            }
            Action::Config(Config { version: c.version, payload: &payload })
        }
        Kind::Decommission => Action::Decommission,
    };
    let rollback = match &spec.rollback {
        RollbackSpec::None => Rollback::None,
        RollbackSpec::Previous => Rollback::Previous,
        RollbackSpec::Version(v) => Rollback::Version(parse_version(v).ok_or_else(|| invalid("rollback.version"))?),
    };
    let m = Manifest {
        proposal: i.proposal,
        revision: i.revision,
        sequence: i.sequence,
        issued_at: i.issued_at,
        expires_at: i.issued_at + spec.lifetime_secs(),
        action,
        cohort: i.cohort,
        rollout_plan: spec.rollout.digest(),
        rollback,
        security: spec.security,
        break_glass: spec.break_glass.is_some(),
        tier: i.tier,
        policy: i.policy,
        requester: i.requester,
    };
    Ok(airlock_proto::codec::encode(&m))
}
