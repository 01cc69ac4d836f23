//! The manifest: what will happen, to whom, at which tier. Signed by a release key; its digest is
//! what every approver signs.

use crate::bytes::{Digest, PublicKey};
use crate::codec::{check_len, Bounded};
use crate::device_id::check_label;
use crate::limits::{MAX_CHUNK, MAX_CONFIG, MAX_HARDWARE_MODEL};
use crate::tier::Tier;
use crate::Refusal;
use core::fmt;
use serde::{Deserialize, Serialize};

/// A firmware version; ordered field by field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Patch.
    pub patch: u16,
}

impl Version {
    /// `major.minor.patch`.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Version { major, minor, patch }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A firmware update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firmware<'a> {
    /// The hardware model the image is built for.
    pub hardware: &'a str,
    /// The new version; must be above the installed one.
    pub version: Version,
    /// Anti-rollback counter; never below the device's minimum.
    pub security_counter: u32,
    /// SHA-256 of the whole image.
    pub image_digest: Digest,
    /// Exact image size in bytes.
    pub image_size: u32,
    /// Size of each chunk the device pulls (the last may be shorter).
    pub chunk_size: u32,
}

/// A configuration push, carried inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config<'a> {
    /// Version of the configuration document.
    pub version: u32,
    /// The configuration bytes (opaque to Airlock's wire format).
    pub payload: &'a [u8],
}

/// What the manifest does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action<'a> {
    /// Install a firmware image.
    #[serde(borrow)]
    Firmware(Firmware<'a>),
    /// Apply a configuration.
    #[serde(borrow)]
    Config(Config<'a>),
    /// Wipe the device's credentials and retire it.
    Decommission,
}

/// The approved cohort: a Merkle root over device ids and the number of leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cohort {
    /// RFC 6962 Merkle tree hash over the cohort's device ids, in order.
    pub root: Digest,
    /// Number of devices (leaves); inclusion proofs are bound to it.
    pub size: u32,
}

/// What happens if the change goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rollback {
    /// No rollback plan.
    None,
    /// Return to the previous image or config (kept on the device).
    Previous,
    /// Roll forward to a known-good version published separately.
    Version(Version),
}

/// A manifest body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest<'a> {
    /// Controller proposal id.
    pub proposal: u64,
    /// Revision of that proposal (an edit makes a new one).
    pub revision: u32,
    /// Strictly increasing across all manifests a device may see (replay defence).
    pub sequence: u64,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; refused at or after this moment.
    pub expires_at: u64,
    /// What to do.
    #[serde(borrow)]
    pub action: Action<'a>,
    /// Who may do it.
    pub cohort: Cohort,
    /// SHA-256 of the rollout plan document (waves, thresholds).
    pub rollout_plan: Digest,
    /// The rollback plan.
    pub rollback: Rollback,
    /// Security-related change.
    pub security: bool,
    /// Emergency (break-glass) lane.
    pub break_glass: bool,
    /// The tier the controller's policy decided.
    pub tier: Tier,
    /// Digest of the policy files that decided it.
    pub policy: Digest,
    /// The requester's key; never among the approvers.
    pub requester: PublicKey,
}

impl Bounded for Manifest<'_> {
    const MAX_ENCODED: usize = crate::limits::MAX_DELIVERY;

    fn check_bounds(&self) -> Result<(), Refusal> {
        if self.expires_at <= self.issued_at || self.cohort.size == 0 {
            return Err(Refusal::Malformed);
        }
        match &self.action {
            Action::Firmware(f) => {
                check_label(f.hardware, MAX_HARDWARE_MODEL)?;
                let chunk = f.chunk_size as usize;
                if f.image_size == 0 || chunk == 0 || chunk > MAX_CHUNK {
                    return Err(Refusal::Malformed);
                }
                Ok(())
            }
            Action::Config(c) => check_len(c.payload.len(), MAX_CONFIG),
            Action::Decommission => Ok(()),
        }
    }
}
