//! Device ids: bounded, and safe as an MQTT topic level.

use crate::limits::MAX_DEVICE_ID;
use crate::Refusal;

/// Checks a device id: 1 to [`MAX_DEVICE_ID`] bytes of `A-Z a-z 0-9 . _ -`.
///
/// The id is a topic level (`airlock/v1/d/{id}/...`), so `/`, `+`, `#` and NUL must never appear,
/// and it is a Merkle leaf, so it has exactly one spelling.
pub fn check_device_id(id: &str) -> Result<(), Refusal> {
    let ok = !id.is_empty()
        && id.len() <= MAX_DEVICE_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Refusal::Malformed)
    }
}

/// Same charset for hardware model names, with their own bound.
pub(crate) fn check_label(s: &str, max: usize) -> Result<(), Refusal> {
    let ok = !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    if ok {
        Ok(())
    } else {
        Err(Refusal::Malformed)
    }
}
