//! The core's one error type.

use airlock_proto::Refusal;
use core::fmt;
use embedded_storage::nor_flash::NorFlashErrorKind;

/// Why `handle` (or opening the agent) failed.
///
/// A [`Error::Refused`] leaves the device exactly as it was: nothing written, nothing marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A message was refused; the reason is reported to the controller as is.
    Refused(Refusal),
    /// The flash driver failed (for example: power lost mid-write).
    Flash(NorFlashErrorKind),
    /// The layout does not fit the flash geometry.
    Layout,
    /// No valid identity, TrustRoot or state record: the device was never provisioned.
    NotProvisioned,
    /// Neither slot holds an image whose digest holds: nothing approved can run.
    NoBootableImage,
    /// An input other than [`crate::Input::Boot`] before the first boot.
    NotBooted,
    /// A state transition would have broken an invariant of the state record; nothing was
    /// written. Always a bug in the core, surfaced rather than persisted.
    Invariant(Invariant),
}

/// Which invariant (codes rather than messages: the strings cost flash on a device).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invariant {
    /// The active slot holds no recorded image.
    ActiveSlotEmpty,
    /// The trial slot is not a written slot other than the active one.
    TrialSlotInvalid,
    /// A config role names a slot without a config.
    ConfigWithoutRecord,
    /// Two config roles share one slot.
    ConfigRolesShareSlot,
    /// The state record does not fit its buffer.
    StateTooLarge,
    /// A test boot with no image recorded in its slot.
    TrialSlotEmpty,
    /// A config trial with no config recorded in its slot.
    TrialConfigEmpty,
    /// A config slot the state names holds no valid record.
    ConfigRecordMissing,
    /// A config record that does not decode.
    ConfigRecordCorrupt,
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::Refused(r)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Refused(r) => write!(f, "refused: {r}"),
            Error::Flash(k) => write!(f, "flash error: {k:?}"),
            Error::Layout => f.write_str("flash layout does not fit the flash"),
            Error::NotProvisioned => f.write_str("device not provisioned"),
            Error::NoBootableImage => f.write_str("no bootable image"),
            Error::NotBooted => f.write_str("input before the first boot"),
            Error::Invariant(what) => write!(f, "state invariant broken: {what:?}"),
        }
    }
}

/// Maps a driver error to [`Error::Flash`].
pub(crate) fn flash<E: embedded_storage::nor_flash::NorFlashError>(e: E) -> Error {
    Error::Flash(e.kind())
}
