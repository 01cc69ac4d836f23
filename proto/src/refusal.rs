//! Why a device (or the controller, checking on a device's behalf) refuses a message.
//!
//! One variant per reason, each with a stable wire code: devices report refusals by code, and a
//! report must mean the same thing to every controller version. Codes are never reused.

use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A refusal reason. The discriminant is the wire code, encoded as a `u16` varint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u16)]
pub enum Refusal {
    /// Not a valid encoding of the expected message, trailing bytes, or a field out of bounds.
    Malformed = 1,
    /// Signed by a key that the device's TrustRoot does not list for that purpose.
    UnknownKey = 2,
    /// The Ed25519 signature does not verify (RFC 8032, strict).
    BadSignature = 3,
    /// The device's current TrustRoot is past its expiry.
    TrustRootExpired = 4,
    /// A new TrustRoot lacks the threshold of signatures from the old or from its own root keys.
    TrustRootThreshold = 5,
    /// A new TrustRoot whose version is not above the installed one.
    TrustRootNotNewer = 6,
    /// The manifest or command is past its expiry (freeze attack defence).
    Expired = 7,
    /// The sequence number is not above the last accepted one (replay defence).
    Replay = 8,
    /// The message names another device.
    WrongDevice = 9,
    /// The cohort inclusion proof does not place this device in the approved cohort.
    NotInCohort = 10,
    /// The firmware is built for another hardware model.
    WrongHardware = 11,
    /// The declared tier is below what the device's own rules demand for the declared fields.
    TierBelowFloor = 12,
    /// The manifest declares the blocked tier, which nobody can approve.
    TierBlocked = 13,
    /// Fewer distinct approvers than the tier needs.
    QuorumShort = 14,
    /// No approver holds a role that the tier requires.
    MissingRole = 15,
    /// The requester is among the approvers (separation of duties).
    RequesterApproved = 16,
    /// Two approvals from the same approver.
    DuplicateApprover = 17,
    /// An approval from a key that is not on the roster.
    UnknownApprover = 18,
    /// An approval's signature does not verify against the manifest digest.
    BadApprovalSignature = 19,
    /// An approver signed a rejection of this manifest.
    RejectedByApprover = 20,
    /// The firmware version is not above the installed one.
    VersionDowngrade = 21,
    /// The security counter is below the device's minimum.
    SecurityCounterDowngrade = 22,
    /// The image is larger than the slot, or more data arrived than the manifest declares.
    ImageTooLarge = 23,
    /// The streamed image does not hash to the manifest's digest.
    DigestMismatch = 24,
    /// A break-glass manifest over its cohort-size or lifetime cap.
    BreakGlassCap = 25,
    /// The device has been decommissioned and accepts nothing.
    Decommissioned = 26,
    /// A chunk for no update in progress, or for another image.
    UnexpectedChunk = 27,
    /// An update is already in its test boot; it must be confirmed or reverted first.
    Busy = 28,
    /// A revert with no approved previous image or config to return to.
    NothingToRevert = 29,
    /// The manifest's chunk size is above what this device can receive.
    ChunkTooLarge = 30,
}

impl Refusal {
    /// Every reason, in code order.
    pub const ALL: [Refusal; 30] = [
        Refusal::Malformed,
        Refusal::UnknownKey,
        Refusal::BadSignature,
        Refusal::TrustRootExpired,
        Refusal::TrustRootThreshold,
        Refusal::TrustRootNotNewer,
        Refusal::Expired,
        Refusal::Replay,
        Refusal::WrongDevice,
        Refusal::NotInCohort,
        Refusal::WrongHardware,
        Refusal::TierBelowFloor,
        Refusal::TierBlocked,
        Refusal::QuorumShort,
        Refusal::MissingRole,
        Refusal::RequesterApproved,
        Refusal::DuplicateApprover,
        Refusal::UnknownApprover,
        Refusal::BadApprovalSignature,
        Refusal::RejectedByApprover,
        Refusal::VersionDowngrade,
        Refusal::SecurityCounterDowngrade,
        Refusal::ImageTooLarge,
        Refusal::DigestMismatch,
        Refusal::BreakGlassCap,
        Refusal::Decommissioned,
        Refusal::UnexpectedChunk,
        Refusal::Busy,
        Refusal::NothingToRevert,
        Refusal::ChunkTooLarge,
    ];

    /// The reason with wire code `code`.
    pub fn from_code(code: u16) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The stable wire code.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// A short, stable, lower-case name (used in logs, reports and metrics labels).
    pub const fn name(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::UnknownKey => "unknown_key",
            Refusal::BadSignature => "bad_signature",
            Refusal::TrustRootExpired => "trust_root_expired",
            Refusal::TrustRootThreshold => "trust_root_threshold",
            Refusal::TrustRootNotNewer => "trust_root_not_newer",
            Refusal::Expired => "expired",
            Refusal::Replay => "replay",
            Refusal::WrongDevice => "wrong_device",
            Refusal::NotInCohort => "not_in_cohort",
            Refusal::WrongHardware => "wrong_hardware",
            Refusal::TierBelowFloor => "tier_below_floor",
            Refusal::TierBlocked => "tier_blocked",
            Refusal::QuorumShort => "quorum_short",
            Refusal::MissingRole => "missing_role",
            Refusal::RequesterApproved => "requester_approved",
            Refusal::DuplicateApprover => "duplicate_approver",
            Refusal::UnknownApprover => "unknown_approver",
            Refusal::BadApprovalSignature => "bad_approval_signature",
            Refusal::RejectedByApprover => "rejected_by_approver",
            Refusal::VersionDowngrade => "version_downgrade",
            Refusal::SecurityCounterDowngrade => "security_counter_downgrade",
            Refusal::ImageTooLarge => "image_too_large",
            Refusal::DigestMismatch => "digest_mismatch",
            Refusal::BreakGlassCap => "break_glass_cap",
            Refusal::Decommissioned => "decommissioned",
            Refusal::UnexpectedChunk => "unexpected_chunk",
            Refusal::Busy => "busy",
            Refusal::NothingToRevert => "nothing_to_revert",
            Refusal::ChunkTooLarge => "chunk_too_large",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Refusal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for Refusal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = u16::deserialize(d)?;
        Refusal::from_code(code).ok_or_else(|| serde::de::Error::custom("unknown refusal code"))
    }
}
