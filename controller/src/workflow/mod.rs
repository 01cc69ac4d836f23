//! The durable approval workflow: proposals, revisions, approvals and timers, all in the
//! database, each step one transaction with its audit entries, so a controller killed at any
//! point loses nothing and does nothing twice.
//!
//! ```text
//! propose ─▶ tiered ─┬─ auto_pass ──────────────────────────────▶ signed
//!                    ├─ blocked (nobody can approve; edit to rework)
//!                    └─ awaiting_approval ─ approvals ─ quorum ─▶ approved ─▶ signed
//!                          │   │                                     (release key)
//!                          │   └─ reject ─▶ rejected
//!                          └─ timeout ─▶ escalate (next pool) ... ─▶ expired
//! signed ─▶ rolling_out (waves) ─▶ completed | paused (breach: ask) | aborted (breach: revert)
//! edit (awaiting/blocked) ─▶ new revision, re-tiered; a material change voids approvals
//! ```
//!
//! # Layout
//! - [`spec`]: what a requester asks for, validated, and the manifest it becomes.
//! - `propose`, `decide`, `edit`, `timers`: the transitions.
//! - `rollback`: whether the rollback plan can happen (the security counter), at propose time.
//! - [`view`]: proposals as the API, CLI and approval card show them.
//! - `repo`: the rows behind it all.

mod decide;
mod edit;
mod propose;
mod repo;
mod rollback;
pub mod spec;
mod timers;
pub mod view;

use crate::audit::AuditKey;
use crate::policy::Policy;
use crate::store::{Store, StoreError};
use airlock_proto::TrustRoot;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub use decide::DecisionRequest;
pub use repo::{ApprovalRow, TaskRow};
pub use spec::Spec;
pub use view::ProposalView;

/// A proposal's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for approvers.
    AwaitingApproval,
    /// The blocked lane: nobody can approve; escalated for rework.
    Blocked,
    /// Quorum met (a transient state inside the approving transaction).
    Approved,
    /// Signed with the release key, ready for rollout.
    Signed,
    /// An approver rejected it.
    Rejected,
    /// Nobody decided in time.
    Expired,
    /// Signed and being delivered in waves.
    RollingOut,
    /// Every wave went through.
    Completed,
    /// A wave breached its thresholds and the plan says pause: waiting for approval to continue.
    Paused,
    /// Stopped for good by a breach or an operator; devices that took it were told to revert.
    Aborted,
}

impl State {
    /// The name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            State::AwaitingApproval => "awaiting_approval",
            State::Blocked => "blocked",
            State::Approved => "approved",
            State::Signed => "signed",
            State::Rejected => "rejected",
            State::Expired => "expired",
            State::RollingOut => "rolling_out",
            State::Completed => "completed",
            State::Paused => "paused",
            State::Aborted => "aborted",
        }
    }

    /// Every state, in workflow order.
    pub const ALL: [State; 10] = [
        State::AwaitingApproval,
        State::Blocked,
        State::Approved,
        State::Signed,
        State::Rejected,
        State::Expired,
        State::RollingOut,
        State::Completed,
        State::Paused,
        State::Aborted,
    ];

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.name() == s)
    }
}

/// Why a workflow step was refused. Each variant is a 4xx in the API with its message.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The spec is invalid.
    #[error("invalid proposal: {0}")]
    Spec(#[from] spec::SpecError),
    /// The cohort selector is invalid.
    #[error("invalid cohort: {0}")]
    Selector(#[from] crate::registry::SelectorError),
    /// No such proposal.
    #[error("no proposal {0}")]
    NotFound(i64),
    /// The user lacks the role for this action.
    #[error("{user} may not {action}: needs role {role}")]
    Forbidden {
        /// Who.
        user: String,
        /// What they tried.
        action: &'static str,
        /// The role it takes.
        role: String,
    },
    /// The requester tried to approve their own proposal.
    #[error("separation of duties: {0} requested this proposal and cannot approve or reject it")]
    SelfApproval(String),
    /// The approver already decided on this revision.
    #[error("{0} has already decided on this revision")]
    DuplicateApprover(String),
    /// The approval is for another revision than the current one.
    #[error("revision {given} is not current (current: {current}); review the current revision")]
    StaleRevision {
        /// Revision in the request.
        given: u32,
        /// The current revision.
        current: u32,
    },
    /// The signature does not verify against the approver's key and the manifest digest.
    #[error("signature does not verify for {approver} over manifest digest {digest}")]
    BadSignature {
        /// Who claimed to sign.
        approver: String,
        /// The digest it must cover.
        digest: String,
    },
    /// The proposal is in a state where this step is not possible.
    #[error("proposal {id} is {state}: cannot {action}")]
    WrongState {
        /// Proposal.
        id: i64,
        /// Its state.
        state: &'static str,
        /// What was tried.
        action: &'static str,
    },
    /// A break-glass proposal over the policy's caps.
    #[error("break-glass cap: {0}")]
    BreakGlassCap(String),
    /// The result would be refused by devices (a policy/TrustRoot mismatch).
    #[error("devices would refuse this manifest: {0}")]
    DeviceRefusal(airlock_proto::Refusal),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit trail failed.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

impl From<sqlx::Error> for WorkflowError {
    fn from(e: sqlx::Error) -> Self {
        WorkflowError::Store(StoreError::Db(e))
    }
}

/// Fault injection for the crash test (`controller/tests/crash.rs`): with `AIRLOCK_PAUSE_AT`
/// naming a step (`proposed`, `decided`, `signed`, `edited`, `timer`), the controller stops just
/// before committing that step's transaction and waits to be killed. Unset, it costs one
/// environment lookup per step.
pub(crate) async fn pause_point(step: &str) {
    if std::env::var("AIRLOCK_PAUSE_AT").is_ok_and(|s| s == step) {
        tracing::warn!(step, "AIRLOCK_PAUSE_AT: paused before commit, waiting to be killed");
        eprintln!("airlock: paused before committing {step}");
        std::future::pending::<()>().await;
    }
}

/// The time source: the system clock, or a fixed time tests move by hand.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock fixed at `ms` until [`Clock::advance`].
    pub fn fixed(ms: i64) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(ms))))
    }

    /// Now, unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
            }
        }
    }

    /// Moves a fixed clock forward (no effect on the system clock).
    pub fn advance(&self, ms: i64) {
        if let Some(t) = &self.0 {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

/// The TrustRoot the controller issued: quorum checks use it, so what the controller approves is
/// exactly what devices accept.
#[derive(Clone, Debug)]
pub struct Trust {
    /// The decoded root.
    pub root: TrustRoot,
    /// Its signed encoding, as devices receive it.
    pub bytes: Vec<u8>,
}

/// The workflow engine.
#[derive(Clone, Debug)]
pub struct Workflow {
    /// The database.
    pub store: Store,
    /// The policy in force.
    pub policy: Arc<Policy>,
    /// The TrustRoot in force.
    pub trust: Arc<Trust>,
    /// Signs approved manifests.
    release: Arc<SigningKey>,
    /// Signs audit checkpoints.
    audit: Arc<AuditKey>,
    /// Time.
    pub clock: Clock,
}

impl Workflow {
    /// Assembles the engine.
    pub fn new(store: Store, policy: Policy, trust: Trust, release: SigningKey, audit: AuditKey, clock: Clock) -> Self {
        Workflow {
            store,
            policy: Arc::new(policy),
            trust: Arc::new(trust),
            release: Arc::new(release),
            audit: Arc::new(audit),
            clock,
        }
    }

    /// The release public key.
    pub fn release_key(&self) -> airlock_proto::PublicKey {
        airlock_proto::sig::public_key(&self.release)
    }

    /// The release signing key, for the rollout engine's signed commands (revert on abort).
    pub(crate) fn release_signing_key(&self) -> &SigningKey {
        &self.release
    }

    /// The audit public key.
    pub fn audit_key(&self) -> airlock_proto::PublicKey {
        self.audit.public_key()
    }

    /// Open post-review tasks.
    pub async fn open_tasks(&self) -> Result<Vec<TaskRow>, WorkflowError> {
        let mut conn = self.store.pool().acquire().await?;
        repo::open_tasks(&mut conn).await
    }

    /// Appends an audit entry inside the caller's transaction, so it commits or rolls back with
    /// the change it records (workflow steps, and actions outside it such as enrolment).
    pub async fn record(
        &self,
        conn: &mut sqlx::AnyConnection,
        actor: &str,
        kind: &str,
        proposal: Option<i64>,
        body: serde_json::Value,
    ) -> Result<(), WorkflowError> {
        let entry = crate::audit::Entry { actor, kind, proposal_id: proposal, body, at_ms: self.clock.now_ms() };
        crate::audit::append(conn, &self.audit, entry).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
