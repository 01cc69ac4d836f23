//! The rollout engine: a signed proposal reaches its cohort in waves (a canary, then growing
//! shares), each wave judged against the signed plan's thresholds before the next one starts.
//!
//! ```text
//! signed ─▶ rolling_out ─ wave 0 ─▶ wave 1 ─▶ ... ─▶ completed
//!               │  breach (too many failed, or settled below the success threshold)
//!               ├─ plan says pause ─▶ paused ─ resume (an approver) ─▶ next wave
//!               └─ plan says abort ─▶ aborted: signed revert commands to every device that
//!                                     installed or confirmed; later waves never receive it
//! ```
//!
//! # What the engine guarantees
//! - **Only the approved cohort.** Devices are the revision's cohort, checked against the signed
//!   manifest's root and size ([`crate::release::Release`]); a delivery is built only with the
//!   device's inclusion proof, which no outsider has.
//! - **Only the approved plan.** The plan is read from the revision's spec and must hash to the
//!   manifest's signed `rollout_plan` digest, or the rollout does not start.
//! - **Progress lives in the database.** Every decision (start, send, time out, next wave,
//!   breach, resume, abort) is one transaction, with its audit entry where it is one of the
//!   aggregated steps (start, wave, completion, breach, resume, abort; never one per device).
//!   A controller killed at any point resumes where it stopped.
//! - **Nothing is sent twice.** See below.
//!
//! # Sending exactly once, and what a crash can cost
//! A send cannot be atomic with a database commit: either the commit or the publish comes first,
//! and a kill between them loses one of the two. The engine commits first. For each device, one
//! transaction takes a token from the rate limit, checks that the rollout is still rolling out
//! in that wave, and marks the device `sent` (only if it is still `pending`); after the commit
//! the delivery is handed to the transport. So:
//! - a device marked `sent` is never chosen again, by this controller, by a restarted one, or
//!   by another replica (each send takes the rollout's row lock, and the device is claimed by an
//!   update conditional on `pending`): at most once;
//! - a kill between the commit and the publish loses that one delivery. The device never
//!   reports, and after the plan's device timeout it counts as failed, like any silent device.
//!   The window is one publish per controller process. Failing safe there can cost a breach a
//!   person then reviews (a two-device canary that loses one delivery pauses); getting the
//!   device its update afterwards is an operator's decision (a new rollout);
//! - a publish the transport refuses (it returned an error, so nothing left) puts the device
//!   back to `pending` for a later tick: transport outages lose nothing.
//!
//! The other order (mark `sending`, publish, mark `sent`, re-send what is still `sending` after
//! a restart) would lose nothing and send that one delivery twice instead. Devices would shrug
//! it off (a repeated manifest is refused as a replay, and the engine ignores a refusal from a
//! device that already accepted), but the plan says "sends nothing twice", and a lost delivery
//! is visible (a timeout in the status) where a repeat is not. "Once" is the engine's decision:
//! the transport's own at-least-once delivery (MQTT QoS 1) may still hand a device the same
//! message twice, with the same harmless outcome. Revert commands follow the same rule: the
//! command sequence is claimed in the device's row, committed, then the command is signed and
//! published.
//!
//! # Devices
//! `pending ─▶ sent ─▶ accepted ─▶ installed ─▶ confirmed`; `refused` and `reverted` from any
//! point after sending; `failed` when nothing was heard within the device timeout of the last
//! send or report (progress reports count as signs of life). A report later than its timeout
//! still moves a `failed` device on: the record follows the device. Reports carry a counter;
//! one not above the last applied for that device is stale and ignored, as are reports for
//! manifests or devices outside every rollout.
//!
//! # Driving it
//! The server calls [`Engine::start_signed`] and [`Engine::tick`] about once a second (a tick
//! sends at most one second's worth at the plan's rate) and hands every verified report to
//! [`Engine::on_report`]; people call [`Engine::resume`], [`Engine::abort`] and
//! [`Engine::status`]. Every method is safe to run concurrently, and on several replicas.
//!
//! # Layout
//! - this file: [`Engine`], the states, [`RolloutError`].
//! - `plan`: wave assignment, the thresholds, the rate limit (pure functions).
//! - `material`: what a rollout sends, loaded from the signed revision and verified.
//! - `repo`: the rows (`rollouts`, `rollout_devices`, migration 0003).
//! - `control`: start, wave transitions, breach, resume, abort.
//! - `send`: ticks, deliveries and revert commands.
//! - `report`: device reports.
//! - [`status`]: [`RolloutStatus`] for the API and dashboards.
//! - [`transport`]: the seam to MQTT (or a test fake).

mod control;
mod material;
mod plan;
mod repo;
mod report;
mod send;
pub mod status;
pub mod transport;

use crate::store::StoreError;
use crate::workflow::{Workflow, WorkflowError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use plan::Counts;
pub use status::{RolloutStatus, WaveStatus};
pub use transport::{DeviceReport, Transport, TransportError};

/// A rollout's state (the proposal's state follows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Sending wave by wave.
    RollingOut,
    /// A wave breached and the plan says pause: waiting for an approver to resume.
    Paused,
    /// Every wave went through.
    Completed,
    /// Stopped for good; devices that took it were told to revert.
    Aborted,
}

impl RolloutState {
    /// The name stored and shown (the same as the proposal state's).
    pub fn name(self) -> &'static str {
        match self {
            RolloutState::RollingOut => "rolling_out",
            RolloutState::Paused => "paused",
            RolloutState::Completed => "completed",
            RolloutState::Aborted => "aborted",
        }
    }

    /// The proposal's state while its rollout is in this one.
    pub fn proposal_state(self) -> crate::workflow::State {
        use crate::workflow::State;
        match self {
            RolloutState::RollingOut => State::RollingOut,
            RolloutState::Paused => State::Paused,
            RolloutState::Completed => State::Completed,
            RolloutState::Aborted => State::Aborted,
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<RolloutState> {
        [RolloutState::RollingOut, RolloutState::Paused, RolloutState::Completed, RolloutState::Aborted]
            .into_iter()
            .find(|st| st.name() == s)
    }
}

/// Where one device of a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Not sent yet.
    Pending,
    /// Sent (the decision is committed); no report yet.
    Sent,
    /// The device accepted the manifest.
    Accepted,
    /// Installed (firmware) or applied (config), in the test state.
    Installed,
    /// Passed its health check (or decommissioned).
    Confirmed,
    /// Nothing heard within the device timeout.
    Failed,
    /// The device refused the delivery.
    Refused,
    /// Back on the previous image or config.
    Reverted,
}

impl DeviceState {
    /// The name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            DeviceState::Pending => "pending",
            DeviceState::Sent => "sent",
            DeviceState::Accepted => "accepted",
            DeviceState::Installed => "installed",
            DeviceState::Confirmed => "confirmed",
            DeviceState::Failed => "failed",
            DeviceState::Refused => "refused",
            DeviceState::Reverted => "reverted",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<DeviceState> {
        use DeviceState::*;
        [Pending, Sent, Accepted, Installed, Confirmed, Failed, Refused, Reverted].into_iter().find(|st| st.name() == s)
    }
}

/// Why a rollout step was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// No rollout for this proposal.
    #[error("no rollout for proposal {0}")]
    NotFound(i64),
    /// The rollout is in a state where this step is not possible.
    #[error("rollout of proposal {id} is {state}: cannot {action}")]
    WrongState {
        /// Proposal.
        id: i64,
        /// The rollout's state.
        state: &'static str,
        /// What was tried.
        action: &'static str,
    },
    /// The user may not do this.
    #[error("{user} may not {action}: {needs}")]
    Forbidden {
        /// Who.
        user: String,
        /// What they tried.
        action: &'static str,
        /// What it takes.
        needs: String,
    },
    /// A reason is required.
    #[error("give a reason to {0}")]
    NoReason(&'static str),
    /// The signed revision cannot be rolled out as stored (plan digest, release signature,
    /// cohort): it is never sent.
    #[error("proposal {id} cannot be rolled out: {detail}")]
    Unreleasable {
        /// Proposal.
        id: i64,
        /// What does not hold.
        detail: String,
    },
    /// The release does not match its cohort.
    #[error(transparent)]
    Release(#[from] crate::release::ReleaseError),
    /// The workflow (audit trail, proposal rows) failed.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RolloutError {
    fn from(e: sqlx::Error) -> Self {
        RolloutError::Store(StoreError::Db(e))
    }
}

impl From<crate::audit::AuditError> for RolloutError {
    fn from(e: crate::audit::AuditError) -> Self {
        RolloutError::Workflow(WorkflowError::Audit(e))
    }
}

/// The rollout engine over a transport. Cheap to share behind an `Arc`; every method may run
/// concurrently with the others (and, on PostgreSQL, on several replicas).
pub struct Engine<T: Transport> {
    wf: Workflow,
    transport: T,
    /// Verified release material per proposal (immutable once signed).
    material: Mutex<BTreeMap<i64, Arc<material::Material>>>,
}

impl<T: Transport> std::fmt::Debug for Engine<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("store", &self.wf.store).finish_non_exhaustive()
    }
}

impl<T: Transport> Engine<T> {
    /// The engine over the workflow's store, clock and release key.
    pub fn new(wf: Workflow, transport: T) -> Self {
        Engine { wf, transport, material: Mutex::new(BTreeMap::new()) }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The workflow it runs on.
    pub fn workflow(&self) -> &Workflow {
        &self.wf
    }
}

#[cfg(test)]
mod tests;
