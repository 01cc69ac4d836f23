//! Device reports (device → controller), signed with the device's own key so that no device,
//! and no broker, can speak for another.

use crate::bytes::Digest;
use crate::codec::Bounded;
use crate::device_id::check_device_id;
use crate::manifest::Version;
use crate::Refusal;
use serde::{Deserialize, Serialize};

/// Why a device went back to its previous image or config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RevertReason {
    /// The health check failed in the test boot.
    HealthCheckFailed,
    /// The device rebooted in the test state without confirming (crash, watchdog, power loss).
    UnconfirmedReboot,
    /// A signed revert command.
    Command,
    /// The image in the slot to boot no longer matched its digest.
    ImageCorrupt,
}

impl RevertReason {
    /// A short, stable, lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            RevertReason::HealthCheckFailed => "health_check_failed",
            RevertReason::UnconfirmedReboot => "unconfirmed_reboot",
            RevertReason::Command => "command",
            RevertReason::ImageCorrupt => "image_corrupt",
        }
    }
}

/// What a device runs and has accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Firmware version running.
    pub firmware: Version,
    /// Minimum security counter the device accepts.
    pub security_counter: u32,
    /// Version of the active configuration (0: none).
    pub config: u32,
    /// Last accepted manifest sequence.
    pub sequence: u64,
    /// Installed TrustRoot version.
    pub trust_root: u32,
    /// Running in a test boot, awaiting the health check.
    pub testing: bool,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Current state (at boot and on request).
    Status(Status),
    /// A manifest passed every check; the update starts.
    Accepted { manifest: Digest },
    /// Bytes of the image received and verified so far.
    Progress { manifest: Digest, received: u32, total: u32 },
    /// A message was refused.
    Refused { manifest: Option<Digest>, reason: Refusal },
    /// The image is written and its digest holds; rebooting into it in the test state.
    Installed { manifest: Digest },
    /// The new image (or config) passed its health check and is now permanent.
    Confirmed { manifest: Digest, version: Version },
    /// Back on the previous image.
    Reverted { manifest: Option<Digest>, reason: RevertReason },
    /// A config was applied in the test state.
    ConfigApplied { manifest: Digest, version: u32 },
    /// The config passed its health check.
    ConfigConfirmed { manifest: Digest, version: u32 },
    /// Back on the previous config.
    ConfigReverted { manifest: Option<Digest>, reason: RevertReason },
    /// Credentials wiped; the device accepts nothing from now on.
    Decommissioned { manifest: Digest },
}

impl Event {
    /// The manifest the event is about, if it names one.
    pub const fn manifest(&self) -> Option<Digest> {
        match *self {
            Event::Accepted { manifest }
            | Event::Progress { manifest, .. }
            | Event::Installed { manifest }
            | Event::Confirmed { manifest, .. }
            | Event::ConfigApplied { manifest, .. }
            | Event::ConfigConfirmed { manifest, .. }
            | Event::Decommissioned { manifest } => Some(manifest),
            Event::Refused { manifest, .. }
            | Event::Reverted { manifest, .. }
            | Event::ConfigReverted { manifest, .. } => manifest,
            Event::Status(_) => None,
        }
    }
}

/// A report body (domain `"airlock/v1/report\0"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report<'a> {
    /// The reporting device.
    pub device: &'a str,
    /// Strictly increasing per device (boot count in the high half), so replays are detectable.
    pub counter: u64,
    /// Device time, unix seconds.
    pub at: u64,
    /// What happened.
    pub event: Event,
}

impl Bounded for Report<'_> {
    const MAX_ENCODED: usize = crate::limits::MAX_REPORT;

    fn check_bounds(&self) -> Result<(), Refusal> {
        check_device_id(self.device)
    }
}
