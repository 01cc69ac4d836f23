//! Why a command failed, and the exit code that says so.

use std::path::PathBuf;

/// Why a command failed. `main` prints it as `error: <message>`; the exit code is 2 for usage
/// errors and 1 for everything else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The command line is incomplete or contradictory (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The controller answered with a non-2xx status.
    #[error("{message} (HTTP {status})")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The server's `error` message, or the status text when it sent none.
        message: String,
    },
    /// Nothing listens at the server URL.
    #[error("cannot reach the controller at {url}: is 'airlock serve' running?")]
    Unreachable {
        /// The server URL.
        url: String,
    },
    /// The request failed on the way (timeout, reset, bad URL).
    #[error("talking to the controller at {url}: {detail}")]
    Transport {
        /// The server URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The controller's answer is not what this client understands.
    #[error("the controller's answer to {what} does not parse: {detail}")]
    Reply {
        /// The request.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// A spec file cannot be read, parsed or validated.
    #[error("{}", located(path, *line, detail))]
    SpecFile {
        /// The file.
        path: PathBuf,
        /// 1-based line, when the problem has one.
        line: Option<usize>,
        /// The problem.
        detail: String,
    },
    /// A policy directory is refused: printed as `FILE:LINE: reason`, without the `error:` prefix,
    /// so editors can jump to it.
    #[error("{0}")]
    Policy(String),
    /// The manifest the controller asks to sign is not the one it shows.
    #[error("refusing to sign: {0}")]
    Manifest(String),
    /// A key file.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// The server could not start.
    #[error("cannot start: {0}")]
    Start(#[from] crate::server::StartError),
    /// A local file or terminal operation.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A check ran and found problems (already printed).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// How `main` prints it.
    pub fn message(&self) -> String {
        match self {
            CliError::Policy(located) => located.clone(),
            other => format!("error: {other}"),
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Io { what: what.into(), source }
    }
}

/// `FILE:LINE: detail`, or `FILE: detail` without a line.
pub(crate) fn located(path: &std::path::Path, line: Option<usize>, detail: &str) -> String {
    match line {
        Some(l) => format!("{}:{l}: {detail}", path.display()),
        None => format!("{}: {detail}", path.display()),
    }
}
