//! What the device remembers across power cuts: the state record and the identity.

use crate::error::Invariant;
use airlock_proto::{Digest, Tier, Version};
use core::fmt;
use serde::{Deserialize, Serialize};

/// An image in a slot, recorded only after its release signature, quorum and digest all held
/// (or, for the factory image, after provisioning hashed it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    /// Digest of the manifest that delivered it (zero for the factory image).
    pub manifest: Digest,
    /// SHA-256 of the image.
    pub digest: Digest,
    /// Image size in bytes.
    pub size: u32,
    /// Firmware version.
    pub version: Version,
    /// Security counter.
    pub security_counter: u32,
}

/// A config in a config slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigMeta {
    /// Digest of the manifest that delivered it.
    pub manifest: Digest,
    /// Config version.
    pub version: u32,
}

/// A change in its test phase: booted (or applied) once, awaiting the health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// The slot under test.
    pub slot: u8,
    /// Whether the device has already started it once. A second start without a confirmation
    /// means the test run died, and the device reverts.
    pub started: bool,
}

/// The state record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Boot count (the high half of report counters).
    pub boots: u32,
    /// The confirmed image slot.
    pub active: u8,
    /// What each image slot holds; `None` while being written or after a failed test.
    pub slots: [Option<ImageMeta>; 2],
    /// An image under test.
    pub trial: Option<Trial>,
    /// Lowest security counter the device accepts (raised on every confirmation).
    pub min_security_counter: u32,
    /// Last accepted manifest sequence.
    pub last_sequence: u64,
    /// Digest of the accepted manifest whose image is still downloading (a delivery of the same
    /// manifest resumes it instead of counting as a replay).
    pub downloading: Option<Digest>,
    /// Last accepted command sequence.
    pub last_command: u64,
    /// The confirmed config slot.
    pub config_active: Option<u8>,
    /// The config kept for revert.
    pub config_previous: Option<u8>,
    /// A config under test (applied; a reboot before its health check reverts it).
    pub config_trial: Option<u8>,
    /// What each config slot holds.
    pub configs: [Option<ConfigMeta>; 2],
    /// Set before the identity is wiped; never cleared.
    pub decommissioned: bool,
}

/// Largest encoded state record.
pub const MAX_STATE: usize = 512;

impl State {
    /// The state right after provisioning, with the factory image in slot A.
    pub const fn factory(image: ImageMeta) -> State {
        State {
            boots: 0,
            active: 0,
            slots: [Some(image), None],
            trial: None,
            min_security_counter: image.security_counter,
            last_sequence: 0,
            downloading: None,
            last_command: 0,
            config_active: None,
            config_previous: None,
            config_trial: None,
            configs: [None, None],
            decommissioned: false,
        }
    }

    /// The confirmed image.
    pub fn active_image(&self) -> Option<&ImageMeta> {
        self.slots[usize::from(self.active)].as_ref()
    }

    /// Checks the record's own invariants; a record that fails this is never written.
    pub fn check(&self) -> Result<(), Invariant> {
        let slot_ok = |s: u8| s < 2;
        if !slot_ok(self.active) || self.active_image().is_none() {
            return Err(Invariant::ActiveSlotEmpty);
        }
        if let Some(t) = self.trial {
            if !slot_ok(t.slot) || t.slot == self.active || self.slots[usize::from(t.slot)].is_none() {
                return Err(Invariant::TrialSlotInvalid);
            }
        }
        let cfg = |s: Option<u8>| s.is_none_or(|s| slot_ok(s) && self.configs[usize::from(s)].is_some());
        if !cfg(self.config_active) || !cfg(self.config_previous) || !cfg(self.config_trial) {
            return Err(Invariant::ConfigWithoutRecord);
        }
        let distinct = |a: Option<u8>, b: Option<u8>| a.is_none() || a != b;
        if !distinct(self.config_active, self.config_previous)
            || !distinct(self.config_active, self.config_trial)
            || !distinct(self.config_previous, self.config_trial)
        {
            return Err(Invariant::ConfigRolesShareSlot);
        }
        Ok(())
    }
}

/// Who the device is. Written at provisioning, wiped on decommission.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Device id (a Merkle leaf and a topic level).
    pub device_id: heapless::String<{ airlock_proto::limits::MAX_DEVICE_ID }>,
    /// Hardware model; firmware for another model is refused.
    pub hardware: heapless::String<{ airlock_proto::limits::MAX_HARDWARE_MODEL }>,
    /// The lowest tier this device accepts, whatever the TrustRoot's floor says.
    pub min_tier: Tier,
    /// Ed25519 seed of the device's report-signing key.
    pub key_seed: [u8; 32],
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("device_id", &self.device_id)
            .field("hardware", &self.hardware)
            .field("min_tier", &self.min_tier)
            .field("key_seed", &"<redacted>")
            .finish()
    }
}
