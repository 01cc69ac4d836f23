//! Frames between the device and its modem: what arrives (a message for the core, or the time)
//! and what leaves (reports, chunk requests).
//!
//! On the wire (UART build) a frame is `kind: u8, len: u16 LE, payload`. The modem runs MQTT
//! and maps topics to kinds; the payloads are exactly the Airlock messages of `airlock-proto`.

use airlock_proto::limits::{MAX_CHUNK_MESSAGE, MAX_COMMAND, MAX_DELIVERY, MAX_TRUST_ROOT};

#[cfg(feature = "qemu")]
pub use crate::script::Link;
#[cfg(not(feature = "qemu"))]
pub use crate::uart::Link;

/// The largest image chunk this device takes (`Settings::max_chunk`): a manifest with a larger
/// chunk size is refused before anything is written, so the receive buffer need not hold 4 KiB.
pub const MAX_CHUNK: u32 = 1024;

/// The one receive buffer: every incoming message fits, and only one is in flight at a time.
/// A signed TrustRoot and a delivery are the two largest; a chunk message of at most
/// [`MAX_CHUNK`] bytes and a command are smaller.
pub const RX_LEN: usize = max(MAX_DELIVERY, MAX_TRUST_ROOT);
const _: () = assert!(
    RX_LEN >= MAX_CHUNK as usize + (MAX_CHUNK_MESSAGE - airlock_proto::limits::MAX_CHUNK) && RX_LEN >= MAX_COMMAND
);
/// The transmit buffer: an encoded report body or chunk request.
pub const TX_LEN: usize = airlock_proto::limits::MAX_REPORT;

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// A received frame; message frames hold their length in the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Unix time in milliseconds (the modem's network time).
    Time(u64),
    /// Factory provisioning data ([`crate::provisioning`]).
    Provision(usize),
    /// A delivery on the manifest topic.
    Delivery(usize),
    /// An image chunk.
    Chunk(usize),
    /// A signed command.
    Command(usize),
    /// A signed TrustRoot (rotation).
    TrustRoot(usize),
}

impl Frame {
    /// Decodes a frame kind byte and length (UART framing).
    #[cfg_attr(feature = "qemu", allow(dead_code))]
    pub const fn from_kind(kind: u8, len: usize) -> Option<Frame> {
        Some(match kind {
            2 => Frame::Provision(len),
            3 => Frame::Delivery(len),
            4 => Frame::Chunk(len),
            5 => Frame::Command(len),
            6 => Frame::TrustRoot(len),
            _ => return None,
        })
    }
}

/// Kinds of outgoing frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Out {
    /// An encoded `airlock_proto::Report` body (the device signs it before publishing; report
    /// signing is not part of the core and not linked here).
    Report = 0x81,
    /// An encoded `airlock_proto::ChunkRequest`.
    ChunkRequest = 0x82,
    /// A config payload handed to the application.
    Config = 0x83,
    /// A core error that is not a refusal (flash fault, invariant), as one code byte.
    Fault = 0x84,
}
