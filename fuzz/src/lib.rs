//! Shared fixtures and oracles for the Airlock fuzz targets (`fuzz_targets/*.rs`).
//!
//! The targets feed arbitrary bytes to a provisioned, booted device core on in-memory flash and
//! to the proto decoders. A fuzzer cannot forge Ed25519, so the interesting question is never
//! "can it produce an accepted message" but "when the device accepts one, is it really valid":
//! every acceptance is re-checked here by an independent oracle.
//!
//! # Layout
//! - [`fleet`]: fixed keys, the TrustRoot, and valid example messages (the seed corpus). Mirrors
//!   agent-core's test-only fixture, which cannot be imported.
//! - [`device`]: the provisioned flash, built once and cloned per input, and opened agents.
//! - [`oracle`]: independent validity checks for deliveries, commands and rotations.
//! - [`canonical`]: the decode / re-encode check of `decode_all`.
//! - [`frames`]: splitting one fuzz input into a sequence of device inputs.
#![forbid(unsafe_code)]

pub mod canonical;
pub mod device;
pub mod fleet;
pub mod frames;
pub mod oracle;
