//! Canonical encoding: postcard, decoded strictly.
//!
//! Every message is postcard (varint integers, length-prefixed byte strings, enum variants as
//! varint indices). Decoding refuses trailing bytes, and every message is checked against its
//! bounds ([`crate::limits`]) right after decoding, so a decoded value is always within limits.

use crate::Refusal;
use serde::{Deserialize, Serialize};

/// A wire message whose bounds can be checked after decoding.
pub trait Bounded {
    /// Checks every variable-length field and every value constraint.
    fn check_bounds(&self) -> Result<(), Refusal>;
}

/// Decodes exactly one `T` from `bytes`: no trailing bytes, all bounds checked.
pub fn decode<'a, T: Deserialize<'a> + Bounded>(bytes: &'a [u8]) -> Result<T, Refusal> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|_| Refusal::Malformed)?;
    if !rest.is_empty() {
        return Err(Refusal::Malformed);
    }
    value.check_bounds()?;
    Ok(value)
}

/// Encodes `value` into `buf`, returning the used prefix.
pub fn encode_into<'b, T: Serialize>(value: &T, buf: &'b mut [u8]) -> Result<&'b mut [u8], Refusal> {
    postcard::to_slice(value, buf).map_err(|_| Refusal::Malformed)
}

/// Encodes `value` into a new vector.
#[cfg(feature = "alloc")]
pub fn encode<T: Serialize>(value: &T) -> alloc::vec::Vec<u8> {
    // postcard's only failure for an in-memory vector is a serializer that returns a custom error;
    // none of our types do, so an empty vector here would be caught by every signature check.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Checks a bounded string field.
pub(crate) fn check_len(len: usize, max: usize) -> Result<(), Refusal> {
    if len > max {
        Err(Refusal::Malformed)
    } else {
        Ok(())
    }
}
