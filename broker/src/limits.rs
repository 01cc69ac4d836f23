//! The open-file limit: raised to the hard limit at start, and what it allows.
//!
//! Every connection is one file descriptor. The soft limit (often 1,024) is raised to the hard
//! limit (20,000 on the project's machines; raising the hard limit needs CAP_SYS_RESOURCE, which
//! the broker never asks for). [`RESERVED_FDS`] stay free for the database, logs, artifact files
//! and the listener itself; the rest is the connection capacity that decides whether the broker
//! runs in one process or spreads devices over workers ([`crate::Processes::Auto`]).

use crate::error::BrokerError;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept free for everything that is not a client connection.
pub const RESERVED_FDS: u64 = 512;

/// The process's open-file limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// Current (soft) limit: what the process may open now.
    pub soft: u64,
    /// Hard limit: the most the soft limit may be raised to.
    pub hard: u64,
}

impl FdLimit {
    /// Client connections this limit leaves room for: the soft limit less [`RESERVED_FDS`] (or a
    /// quarter of it, for small limits).
    pub fn connections(&self) -> u64 {
        self.soft.saturating_sub(RESERVED_FDS.min(self.soft / 4))
    }
}

/// The current limit (`None` from the OS means unlimited).
pub fn fd_limit() -> FdLimit {
    let l = getrlimit(Resource::Nofile);
    FdLimit { soft: l.current.unwrap_or(u64::MAX), hard: l.maximum.unwrap_or(u64::MAX) }
}

/// Raises the soft limit to the hard limit and returns the new limit.
pub fn raise_fd_limit() -> Result<FdLimit, BrokerError> {
    let l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        setrlimit(Resource::Nofile, Rlimit { current: l.maximum, maximum: l.maximum })
            .map_err(|e| BrokerError::FdLimit(e.into()))?;
    }
    Ok(fd_limit())
}

/// Sets the soft limit to `soft` (at most the hard limit): workers in tests lower theirs to show
/// a fleet larger than one process's limit.
pub fn set_fd_soft_limit(soft: u64) -> Result<FdLimit, BrokerError> {
    let l = getrlimit(Resource::Nofile);
    let soft = l.maximum.map_or(soft, |hard| soft.min(hard));
    setrlimit(Resource::Nofile, Rlimit { current: Some(soft), maximum: l.maximum })
        .map_err(|e| BrokerError::FdLimit(e.into()))?;
    Ok(fd_limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_the_reserve_free() {
        assert_eq!(FdLimit { soft: 20_000, hard: 20_000 }.connections(), 19_488);
        assert_eq!(FdLimit { soft: 128, hard: 1024 }.connections(), 96);
    }
}
