//! Controller commands to one device (pause, resume, revert, status), signed by a release key.

use crate::codec::Bounded;
use crate::device_id::check_device_id;
use crate::Refusal;
use serde::{Deserialize, Serialize};

/// What the controller asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandAction {
    /// Stop pulling image chunks (the download resumes on `Resume`).
    Pause,
    /// Resume pulling.
    Resume,
    /// Return to the previous approved image (a rollout abort).
    Revert,
    /// Return to the previous config.
    RevertConfig,
    /// Send a status report.
    Status,
}

/// A command body (domain `"airlock/v1/command\0"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command<'a> {
    /// The one device this command is for.
    pub device: &'a str,
    /// Strictly increasing per device (replay defence).
    pub sequence: u64,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; refused at or after this moment.
    pub expires_at: u64,
    /// What to do.
    pub action: CommandAction,
}

impl Bounded for Command<'_> {
    const MAX_ENCODED: usize = crate::limits::MAX_COMMAND;

    fn check_bounds(&self) -> Result<(), Refusal> {
        check_device_id(self.device)?;
        if self.expires_at <= self.issued_at {
            return Err(Refusal::Malformed);
        }
        Ok(())
    }
}
