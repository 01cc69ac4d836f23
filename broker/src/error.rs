//! Why the broker cannot start or a worker cannot run.

use std::net::SocketAddr;

/// Errors of starting and running the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No listen address was configured.
    #[error("no listen address configured")]
    NoListener,
    /// The open-file limit cannot be read or changed.
    #[error("open-file limit: {0}")]
    FdLimit(std::io::Error),
    /// A configuration value is out of range.
    #[error("invalid broker configuration: {0}")]
    Config(String),
    /// Worker processes could not be started or did not report in.
    #[error("worker process {index}: {detail}")]
    Worker {
        /// Its index.
        index: usize,
        /// What went wrong.
        detail: String,
    },
    /// This process was started as a worker but its environment is wrong.
    #[error("not a broker worker: {0}")]
    NotAWorker(String),
    /// I/O on the control channel between processes.
    #[error("broker control channel: {0}")]
    Control(std::io::Error),
}
