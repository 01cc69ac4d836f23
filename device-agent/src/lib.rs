//! The Airlock device agent for Linux gateways: the std runtime around `airlock-agent-core`.
//!
//! The core decides (every signature, quorum, digest and state transition); this crate carries
//! its decisions out on a gateway: MQTT with a persistent session and reconnects with backoff,
//! A/B slots and state records in a file that behaves as NOR flash, the running image and config
//! exported for the rest of the gateway, a health-check command whose exit status confirms or
//! reverts a change, and reports signed with the device's own key. Logs go through `tracing`.
//!
//! ```no_run
//! # async fn run() -> Result<(), airlock_agent::AgentError> {
//! use airlock_agent::{AgentConfig, FileFlash, Runtime};
//! let config = AgentConfig::load("/etc/airlock/agent.toml".as_ref())?;
//! let flash = FileFlash::open(&config.flash_path(), config.flash_size())?;
//! let handle = Runtime::start(config, flash)?;
//! println!("running {}", handle.status().firmware);
//! handle.stop().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: `agent.toml` ([`AgentConfig`]).
//! - [`runtime`]: [`Runtime`] and [`RuntimeHandle`]; inside, the device loop (`drive`), the
//!   synchronous step that runs the core and carries out its outputs (`device`), and the MQTT
//!   event-loop task with its backoff and outbox (`net`).
//! - [`hooks`]: the health check ([`HealthCheck`], a command or a closure) and the reboot hook
//!   ([`RebootHook`]; in process by default).
//! - [`file_flash`]: a file that behaves as NOR flash, synced at every operation.
//! - [`files`]: atomic file replacement for the exported image and config.
//! - [`report`]: signing report bodies with the device's own key.
//! - [`provision`]: first-time setup of the flash file (`airlock-agent provision`).
//! - [`error`]: the one error type, [`AgentError`].
//! - `main.rs`: the `airlock-agent` binary (`run`, `provision`).
//!
//! # Topics and messages
//! The device subscribes (QoS 1) to `airlock/v1/d/{id}/manifest`, `trust`, `chunk` and `cmd`,
//! publishes signed reports to `.../report` and chunk requests to `.../chunk/req`
//! ([`airlock_proto::topics`]). The MQTT client id is the device id with `clean_session =
//! false`, so the broker queues what the controller sends while the device is offline; each
//! message is acknowledged only after the core has handled it. A status report goes out on
//! every (re)connect.

pub mod config;
pub mod error;
pub mod file_flash;
pub mod files;
pub mod hooks;
pub mod provision;
pub mod report;
pub mod runtime;

pub use config::AgentConfig;
pub use error::AgentError;
pub use file_flash::FileFlash;
pub use hooks::{Change, CommandHealthCheck, CommandReboot, HealthCheck, HealthContext, InProcessReboot, RebootHook};
pub use runtime::{Exit, Runtime, RuntimeHandle};
