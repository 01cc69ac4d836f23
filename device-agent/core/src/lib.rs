//! The Airlock device core: decides whether a payload may ever touch flash, and keeps the device
//! bootable through every power cut.
//!
//! `no_std` and no allocator. Sans-IO: [`Agent::handle`] takes the time and one [`Input`] and
//! returns [`Output`]s; it never opens a socket, reads a clock or sleeps. The MQTT runtime
//! (`airlock-agent`), the simulator (`airlock-sim`) and bare-metal firmware drive the same core.
//!
//! # What the core guarantees
//! - A delivery is checked completely ([`checks`] order: TrustRoot expiry, release key and
//!   signature, manifest expiry, sequence, cohort inclusion, hardware, tier floor and quorum,
//!   version and security counter, size) before anything is written.
//! - An image is hashed while it streams into the inactive slot; the slot becomes bootable only
//!   when signature and digest both held, and only on trial: the next boot runs it in a test
//!   state, and anything but a passing health check returns to the previous image.
//! - The state record is written as one of two checksummed copies, so a power cut at any write
//!   leaves either the old or the new record, and the device boots an approved image.
//!
//! # Layout
//! - [`agent`]: the state machine ([`Agent`], [`Input`], [`Output`]); `agent::commands` holds
//!   signed commands and TrustRoot rotation.
//! - [`provision`]: first-time setup at the factory.
//! - `checks`: every check a delivery must pass, as one pure function.
//! - [`state`]: the persisted state record and the device identity.
//! - [`layout`]: where each region lives in flash.
//! - `record`, `flash_io`: checksummed two-copy records, aligned streaming writes.
//! - [`error`]: the one error type; refusals carry a [`airlock_proto::Refusal`].
//! - [`mem_flash`] (feature `mem-flash`): in-memory NOR flash that can cut power at the Nth write.
//! - [`harness`] (feature `mem-flash`): a device without a network, for in-process fleets.
#![cfg_attr(not(test), no_std)]

#[cfg(all(feature = "mem-flash", not(test)))]
extern crate alloc;

pub mod agent;
mod checks;
pub mod error;
mod flash_io;
#[cfg(any(test, feature = "mem-flash"))]
pub mod harness;
pub mod layout;
#[cfg(any(test, feature = "mem-flash"))]
pub mod mem_flash;
pub mod provision;
mod record;
pub mod state;

pub use agent::{Agent, Input, Output, Outputs, Settings};
pub use error::Error;
pub use layout::Layout;
pub use provision::{provision, Factory};
pub use state::{Identity, ImageMeta, State};

#[cfg(test)]
mod tests;
