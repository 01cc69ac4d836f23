//! The fleet benchmark (`airlock-sim bench`) and its measurements.
//!
//! - [`fleet`]: one rollout to a whole simulated fleet, timed, with the controller in its own
//!   process.
//! - [`lower`]: what one core (or the broker on loopback) can do at best on this machine, measured
//!   in the same run as the benchmark, so that fleet figures can be read against a floor that
//!   came from the same hardware: Ed25519 verifications, SHA-256 throughput, MQTT QoS 1 messages.
//! - [`process`]: CPU time and peak resident memory of a process, read from `/proc`.

pub mod fleet;
pub mod lower;
pub mod process;
