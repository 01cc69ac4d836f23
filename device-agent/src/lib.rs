//! The Airlock device agent for Linux gateways: the std side around `airlock-agent-core`.
//!
//! The MQTT runtime arrives with the delivery work; what is here already is what every runtime
//! needs from the host: durable A/B slots and state in a file, and signed reports.
//!
//! # Layout
//! - [`file_flash`]: a file that behaves as NOR flash, synced at every operation.
//! - [`report`]: signing report bodies with the device's own key.

pub mod file_flash;
pub mod report;

pub use file_flash::FileFlash;
