//! MQTT topic names: one versioned namespace, one subtree per device.
//!
//! | topic | direction | payload |
//! |---|---|---|
//! | `airlock/v1/d/{id}/manifest` | controller → device | [`crate::Delivery`] |
//! | `airlock/v1/d/{id}/trust` | controller → device | [`crate::SignedTrustRoot`] |
//! | `airlock/v1/d/{id}/chunk/req` | device → controller | [`crate::ChunkRequest`] |
//! | `airlock/v1/d/{id}/chunk` | controller → device | [`crate::Chunk`] |
//! | `airlock/v1/d/{id}/report` | device → controller | [`crate::Signed`] [`crate::Report`] |
//! | `airlock/v1/d/{id}/cmd` | controller → device | [`crate::Signed`] [`crate::Command`] |

use core::fmt::Write as _;

/// Longest topic: prefix, 64-byte id, longest suffix.
pub type Topic = heapless::String<96>;

/// Prefix of every device topic.
pub const PREFIX: &str = "airlock/v1/d/";

/// The kinds of device topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Manifest deliveries.
    Manifest,
    /// TrustRoot rotations.
    Trust,
    /// Chunk requests.
    ChunkRequest,
    /// Chunks.
    Chunk,
    /// Signed reports.
    Report,
    /// Signed commands.
    Command,
}

impl Kind {
    /// The topic suffix after the device id.
    pub const fn suffix(self) -> &'static str {
        match self {
            Kind::Manifest => "manifest",
            Kind::Trust => "trust",
            Kind::ChunkRequest => "chunk/req",
            Kind::Chunk => "chunk",
            Kind::Report => "report",
            Kind::Command => "cmd",
        }
    }
}

/// `airlock/v1/d/{device}/{kind}`. The id must already be checked
/// ([`crate::check_device_id`]); an over-long one yields `None`.
pub fn topic(device: &str, kind: Kind) -> Option<Topic> {
    let mut t = Topic::new();
    write!(t, "{PREFIX}{device}/{}", kind.suffix()).ok()?;
    Some(t)
}

/// Splits a device topic into its device id and kind.
pub fn parse(topic: &str) -> Option<(&str, Kind)> {
    let rest = topic.strip_prefix(PREFIX)?;
    let (device, suffix) = rest.split_once('/')?;
    crate::check_device_id(device).ok()?;
    let kind = [Kind::Manifest, Kind::Trust, Kind::ChunkRequest, Kind::Chunk, Kind::Report, Kind::Command]
        .into_iter()
        .find(|k| k.suffix() == suffix)?;
    Some((device, kind))
}
