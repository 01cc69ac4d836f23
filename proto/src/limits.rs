//! Every bound on a variable-length field, in one place.
//!
//! A device decodes into fixed-capacity storage, so every list, string and byte field on the wire
//! has a maximum. Decoding a message that exceeds one is refused as [`crate::Refusal::Malformed`].
//! The bounds are chosen so that a Cortex-M4 device runs the whole update path within 4 KiB of
//! static RAM (`examples/firmware-m4`).

/// Longest device id, in bytes. Ids are also MQTT topic levels, see [`crate::DeviceId`].
pub const MAX_DEVICE_ID: usize = 64;
/// Longest hardware model name, in bytes.
pub const MAX_HARDWARE_MODEL: usize = 32;
/// Root keys in one TrustRoot.
pub const MAX_ROOT_KEYS: usize = 5;
/// Signatures on one TrustRoot: during rotation, old and new root keys both sign.
pub const MAX_ROOT_SIGNATURES: usize = 2 * MAX_ROOT_KEYS;
/// Release (controller) keys in one TrustRoot.
pub const MAX_RELEASE_KEYS: usize = 4;
/// Approvers on the roster of one TrustRoot.
pub const MAX_APPROVERS: usize = 32;
/// Cohort-size thresholds in the device-enforced tier rules.
pub const MAX_SIZE_FLOORS: usize = 4;
/// Approvals carried with one manifest.
pub const MAX_APPROVALS: usize = 6;
/// Hashes in one cohort inclusion proof: cohorts of up to 2^24 (16.7 million) devices.
pub const MAX_PROOF_DEPTH: usize = 24;
/// Largest inline config payload, in bytes.
pub const MAX_CONFIG: usize = 512;
/// Largest image chunk, in bytes.
pub const MAX_CHUNK: usize = 4096;
/// Largest encoded device-bound delivery (manifest + approvals + proof), in bytes. The worst case
/// within the other bounds is about 2,200 bytes (a 512-byte config, 6 approvals, a 24-hash proof);
/// a microcontroller's receive buffer is sized by this.
pub const MAX_DELIVERY: usize = 2304;
/// Largest encoded signed TrustRoot, in bytes.
pub const MAX_TRUST_ROOT: usize = 2560;
/// Largest encoded signed command, in bytes.
pub const MAX_COMMAND: usize = 256;
/// Largest encoded signed report, in bytes.
pub const MAX_REPORT: usize = 256;
/// Largest encoded chunk message (header + data), in bytes.
pub const MAX_CHUNK_MESSAGE: usize = MAX_CHUNK + 64;
