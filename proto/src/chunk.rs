//! Image block transfer. The device *pulls*: it asks for a byte range, the controller answers
//! with chunks. Chunks are not signed; the device hashes them as it writes and the image digest
//! in the signed manifest decides.

use crate::bytes::Digest;
use crate::codec::{check_len, Bounded};
use crate::limits::MAX_CHUNK;
use crate::Refusal;
use serde::{Deserialize, Serialize};

/// Device → controller on `airlock/v1/d/{id}/chunk/req`: send `[offset, offset + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRequest {
    /// The image, by digest.
    pub image: Digest,
    /// First byte wanted.
    pub offset: u32,
    /// Bytes wanted (a whole number of chunks, or up to the end of the image).
    pub len: u32,
}

/// Controller → device on `airlock/v1/d/{id}/chunk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk<'a> {
    /// The image, by digest.
    pub image: Digest,
    /// Offset of `data` in the image.
    pub offset: u32,
    /// At most one chunk of the image.
    pub data: &'a [u8],
}

impl Bounded for ChunkRequest {
    const MAX_ENCODED: usize = 64;

    fn check_bounds(&self) -> Result<(), Refusal> {
        Ok(())
    }
}

impl Bounded for Chunk<'_> {
    const MAX_ENCODED: usize = crate::limits::MAX_CHUNK_MESSAGE;

    fn check_bounds(&self) -> Result<(), Refusal> {
        check_len(self.data.len(), MAX_CHUNK)
    }
}
