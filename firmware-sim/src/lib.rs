//! The Airlock fleet simulator.
//!
//! Each virtual device runs the real `airlock-agent-core` over in-memory NOR flash that can lose
//! power at any write. The MQTT transport, scenario files and fault injection are built on this
//! by the simulator issue.
//!
//! # Layout
//! - [`device`]: a provisioned virtual device and the runtime loop that serves its requests.
//! - [`rehearsal`]: an in-process rollout rehearsal (the `airlock-sim` binary).

pub mod device;
pub mod rehearsal;

pub use device::{Served, SimError, VirtualDevice};
