//! Canonical encoding: postcard, decoded strictly.
//!
//! Every message is postcard (varint integers, length-prefixed byte strings, enum variants as
//! varint indices). Decoding refuses input longer than the type's bound and trailing bytes, and
//! checks every bound in [`crate::limits`] right after decoding.
//!
//! With the `alloc` feature (controller, tools, tests) decoding also refuses any encoding that is
//! not the one canonical encoding of the value: postcard itself accepts over-long varints, so two
//! byte strings could decode to one manifest with two digests, and a controller must never show
//! or sign one of them for the other. Devices skip this check, which saves 3.3 KB of flash: every
//! decision a device makes binds the exact bytes it received (the release signature covers the
//! manifest bytes, approvals cover their digest), so a non-canonical encoding can only come from
//! the holders of those keys, who could sign a canonical one just as well.

use crate::Refusal;
use serde::{Deserialize, Serialize};

/// A wire message whose bounds can be checked after decoding.
pub trait Bounded {
    /// Longest encoding accepted, in bytes.
    const MAX_ENCODED: usize;

    /// Checks every variable-length field and every value constraint.
    fn check_bounds(&self) -> Result<(), Refusal>;
}

/// Decodes exactly one `T` from `bytes`: within `T::MAX_ENCODED`, no trailing bytes, all bounds
/// checked, and (with `alloc`) the canonical encoding.
pub fn decode<'a, T: Deserialize<'a> + Serialize + Bounded>(bytes: &'a [u8]) -> Result<T, Refusal> {
    if bytes.len() > T::MAX_ENCODED {
        return Err(Refusal::Malformed);
    }
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|_| Refusal::Malformed)?;
    if !rest.is_empty() {
        return Err(Refusal::Malformed);
    }
    #[cfg(feature = "alloc")]
    if postcard::serialize_with_flavor(&value, Compare { expected: bytes, at: 0 }) != Ok(bytes.len()) {
        return Err(Refusal::Malformed);
    }
    value.check_bounds()?;
    Ok(value)
}

/// A postcard output that stores nothing and fails at the first byte that differs from
/// `expected`: re-encoding a decoded value checks canonicity without a buffer.
#[cfg(feature = "alloc")]
struct Compare<'e> {
    expected: &'e [u8],
    at: usize,
}

#[cfg(feature = "alloc")]
impl postcard::ser_flavors::Flavor for Compare<'_> {
    type Output = usize;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.expected.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(postcard::Error::SerializeBufferFull)
        }
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.at)
    }
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
