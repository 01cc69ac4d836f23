//! The audit trail: append-only, hash-chained, signed evidence of every step a proposal takes
//! (who asked, which policy tiered it, who approved, when, what was signed and executed).
//!
//! Three layers keep it honest, each catching what the one before cannot:
//! 1. **Triggers** (in the migrations) refuse `UPDATE`, `DELETE` and, on PostgreSQL, `TRUNCATE`
//!    of `audit` and `audit_checkpoints` to every client, the controller included.
//! 2. **A hash chain**: entry `n` stores `hash(n) = SHA-256(domain || hash(n - 1) || entry n)`
//!    (the exact bytes are in [`chain`]), so changing, removing or reordering a row breaks the
//!    chain at that row, unless whoever did it also rewrote every hash after it.
//! 3. **Signed checkpoints**: every append also stores an Ed25519 signature by the audit key over
//!    `(seq, hash)`. Someone who can rewrite the database but does not hold the key cannot
//!    recompute valid checkpoints, so a rewritten chain, a deleted tail or a forged entry shows.
//!
//! [`append`] runs inside the caller's transaction, so an entry commits or rolls back with the
//! change it records, and its seq with it (no gaps from rolled-back work). Seqs come from the
//! `audit_seq` counter, whose row lock serialises concurrent appenders on PostgreSQL.
//! [`verify`] walks the whole trail and names every problem with its seq. [`entries`] reads rows
//! for display; it does not verify them.
//!
//! 4. **A witness file** ([`witness`]) outside the database's directory: the server copies each
//!    committed checkpoint into it, after checking that the trail still chains onto what it
//!    witnessed before. The database alone cannot tell that its newest entries were deleted
//!    together with their checkpoints (with or without the `audit_seq` counter wound back), nor
//!    that the whole trail was re-chained by someone holding the audit key; the witness can, with
//!    `airlock audit verify --against FILE` or [`witness::Witness::check`].
//!
//! What remains: someone with the database, the audit key *and* write access to the witness file
//! can write any history; keep the three apart (`docs/deploy.md`).
//!
//! # Layout
//! - this file: the API types ([`Entry`], [`AuditKey`], [`Appended`], [`StoredEntry`],
//!   [`AuditError`]).
//! - [`chain`]: the canonical encoding, the entry hash, the checkpoint signature.
//! - `append`: [`append`].
//! - `read`: [`entries`].
//! - `verify`: [`verify`] and its [`VerifyReport`].
//! - `problem`: [`Problem`], what verification can find.
//! - [`witness`]: the witness file of signed checkpoints, kept outside the database.
//! - `tests`: both backends, a clean trail and every kind of tampering.

use ed25519_dalek::SigningKey;

pub mod chain;
pub mod witness;

mod append;
mod problem;
mod read;
mod verify;

pub use append::append;
pub use problem::Problem;
pub use read::entries;
pub use verify::{verify, VerifyReport};

/// One entry to append.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    /// Who acted: a user name, or `controller` for the controller's own steps.
    pub actor: &'a str,
    /// What happened (`proposed`, `approved`, `signed`, ...).
    pub kind: &'a str,
    /// The proposal it concerns, if any.
    pub proposal_id: Option<i64>,
    /// Details. Stored as the JSON text `serde_json::to_string` gives, and hashed as stored.
    /// Never put secrets here: the trail is kept forever and shown to every auditor.
    pub body: serde_json::Value,
    /// When, in unix milliseconds.
    pub at_ms: i64,
}

/// The key that signs audit checkpoints. Its `Debug` shows the public key only.
pub struct AuditKey {
    key: SigningKey,
    public: airlock_proto::PublicKey,
}

impl AuditKey {
    /// Wraps a signing key.
    pub fn new(key: SigningKey) -> Self {
        let public = airlock_proto::sig::public_key(&key);
        AuditKey { key, public }
    }

    /// The public key that [`verify`] checks checkpoints against.
    pub fn public_key(&self) -> airlock_proto::PublicKey {
        self.public
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey").field("public", &hex::encode(self.public.as_array())).finish_non_exhaustive()
    }
}

/// Where an appended entry landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its seq (1, 2, 3, ...).
    pub seq: u64,
    /// Its hash, lower-case hex.
    pub hash: String,
}

/// An entry as stored, for display. Read by [`entries`], which does not verify it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StoredEntry {
    /// Position in the trail.
    pub seq: u64,
    /// When, in unix milliseconds.
    pub at_ms: i64,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub kind: String,
    /// The proposal it concerns, if any.
    pub proposal_id: Option<i64>,
    /// Details.
    pub body: serde_json::Value,
    /// Hash of the entry before, lower-case hex.
    pub prev: String,
    /// Hash of this entry, lower-case hex.
    pub hash: String,
}

/// Why an audit operation failed. Tampering found by [`verify`] is not an error but a
/// [`Problem`] in its report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The database refused or failed.
    #[error("audit database: {0}")]
    Db(#[from] sqlx::Error),
    /// Taking the next seq failed.
    #[error("audit: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The entry body did not serialise.
    #[error("audit entry body: {0}")]
    Body(#[from] serde_json::Error),
    /// A stored value does not parse (hand-edited or corrupted row).
    #[error("corrupt audit entry {seq}: {detail}")]
    Corrupt {
        /// The row.
        seq: i64,
        /// What is wrong.
        detail: String,
    },
    /// The entry before the one being appended is missing or unreadable, so the new entry cannot
    /// be chained. The trail has been tampered with; nothing more is recorded (and so nothing
    /// more is done) until someone looks.
    #[error("cannot append audit entry {seq}: {detail}; run an audit verification")]
    Broken {
        /// The seq that was being appended.
        seq: u64,
        /// What is wrong with the entry before it.
        detail: String,
    },
}

#[cfg(test)]
mod tests;
