//! The Airlock fleet controller.
//!
//! Today it holds what turns an approved manifest into device-bound bytes; the `airlock` binary
//! (API, policy, durable workflow, audit) is built on it by the controller issue.
//!
//! # Layout
//! - [`cohort`]: a resolved cohort as a sorted set of device ids, its Merkle root and proofs.
//! - [`policy`]: tiering policy files, decisions and their explanation.
//! - [`release`]: per-device deliveries of a signed, approved manifest.

pub mod cohort;
pub mod policy;
pub mod release;
