//! Measurements for the fleet benchmark that do not depend on Airlock's own design.
//!
//! - [`lower`]: what one core (or the broker on loopback) can do at best on this machine, measured
//!   in the same run as the benchmark, so that fleet figures can be read against a floor that
//!   came from the same hardware: Ed25519 verifications, SHA-256 throughput, MQTT QoS 1 messages.
//! - [`process`]: CPU time and peak resident memory of a process, read from `/proc`.

pub mod lower;
pub mod process;
