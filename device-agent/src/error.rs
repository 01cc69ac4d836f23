//! The runtime's one error type.

use std::path::PathBuf;

/// Why the runtime (or `airlock-agent provision`) could not start or had to stop.
///
/// Refusals of individual messages are not errors here: the runtime reports them to the
/// controller (`Event::Refused`) and carries on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration file is missing, unreadable or invalid.
    #[error("config: {0}")]
    Config(String),
    /// A file the runtime reads or writes.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The flash file could not be opened.
    #[error("flash: {0}")]
    Flash(#[from] crate::file_flash::FileFlashError),
    /// The device core failed (not a refusal: flash faults, a missing provisioning, no image).
    #[error("device core: {0}")]
    Core(airlock_agent_core::Error),
    /// The device was decommissioned: it holds no identity and accepts nothing.
    #[error("the device is decommissioned")]
    Decommissioned,
    /// `Runtime::start` was called outside a tokio runtime.
    #[error("the runtime must be started from within a tokio runtime")]
    NoTokio,
    /// The runtime task ended abnormally (it panicked or was cancelled).
    #[error("runtime task: {0}")]
    Task(String),
    /// The reboot command could not be run.
    #[error("reboot command: {0}")]
    Reboot(std::io::Error),
}

impl From<airlock_agent_core::Error> for AgentError {
    fn from(e: airlock_agent_core::Error) -> Self {
        AgentError::Core(e)
    }
}

impl AgentError {
    /// An I/O error on `path`.
    pub fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AgentError::File { path: path.into(), source }
    }
}
