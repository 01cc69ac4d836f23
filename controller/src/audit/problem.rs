//! What [`super::verify`] can find wrong with the trail.

use std::fmt;

/// One problem found by [`super::verify`], at the seq where it shows. Its `Display` is the
/// message for a human; it serialises as `{"problem": "modified", "seq": 3, "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The row's contents do not hash to its stored hash: it was edited in place.
    Modified {
        /// The row.
        seq: u64,
    },
    /// The row at `seq` is the entry that was signed at `signed_as`: rows were swapped,
    /// renumbered or copied.
    Reordered {
        /// Where the row is now.
        seq: u64,
        /// Where it was written.
        signed_as: u64,
    },
    /// Rows `seq .. seq + count` are missing from the middle of the trail.
    Deleted {
        /// The first missing seq.
        seq: u64,
        /// How many are missing.
        count: u64,
    },
    /// The row is internally consistent, but its `prev` is not the hash the trail holds for
    /// `seq - 1`: the entry before it was rewritten, or this one was replaced.
    BrokenLink {
        /// The row whose `prev` does not match.
        seq: u64,
    },
    /// The newest rows were deleted: a valid checkpoint signs `signed_up_to`, but the newest row
    /// is `seq - 1`.
    Truncated {
        /// The first missing seq.
        seq: u64,
        /// The newest validly signed checkpoint.
        signed_up_to: u64,
    },
    /// The row has no checkpoint: it was written without the audit key, or its checkpoint was
    /// deleted.
    MissingCheckpoint {
        /// The row.
        seq: u64,
    },
    /// The checkpoint names the audit key but its signature does not verify.
    ForgedCheckpoint {
        /// The checkpoint.
        seq: u64,
    },
    /// The checkpoint names a key other than the audit key.
    ForeignCheckpoint {
        /// The checkpoint.
        seq: u64,
        /// The key it names, as stored.
        key: String,
    },
    /// The row hashes correctly but differs from what its validly signed checkpoint holds: it was
    /// rewritten and its hash recomputed.
    CheckpointMismatch {
        /// The row.
        seq: u64,
    },
    /// The trail ends before a checkpoint the witness file holds: the newest entries were deleted
    /// together with their checkpoints.
    BehindWitness {
        /// The first missing seq.
        seq: u64,
        /// The newest witnessed seq.
        witnessed: u64,
    },
    /// The entry at a witnessed seq is not the one witnessed: the trail was rewritten at or before
    /// it (re-chained with the audit key, or truncated and written again after winding back the
    /// seq counter).
    WitnessMismatch {
        /// The witnessed seq.
        seq: u64,
    },
    /// A stored value does not parse (seq 0 for a row whose seq is not positive).
    Corrupt {
        /// The row or checkpoint.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
}

impl Problem {
    /// The variant's name in `snake_case`, as serialised.
    pub fn name(&self) -> &'static str {
        match self {
            Problem::Modified { .. } => "modified",
            Problem::Reordered { .. } => "reordered",
            Problem::Deleted { .. } => "deleted",
            Problem::BrokenLink { .. } => "broken_link",
            Problem::Truncated { .. } => "truncated",
            Problem::MissingCheckpoint { .. } => "missing_checkpoint",
            Problem::ForgedCheckpoint { .. } => "forged_checkpoint",
            Problem::ForeignCheckpoint { .. } => "foreign_checkpoint",
            Problem::CheckpointMismatch { .. } => "checkpoint_mismatch",
            Problem::BehindWitness { .. } => "behind_witness",
            Problem::WitnessMismatch { .. } => "witness_mismatch",
            Problem::Corrupt { .. } => "corrupt",
        }
    }

    /// The seq where the problem shows (the first one, for a range).
    pub fn seq(&self) -> u64 {
        match self {
            Problem::Modified { seq }
            | Problem::Reordered { seq, .. }
            | Problem::Deleted { seq, .. }
            | Problem::BrokenLink { seq }
            | Problem::Truncated { seq, .. }
            | Problem::MissingCheckpoint { seq }
            | Problem::ForgedCheckpoint { seq }
            | Problem::ForeignCheckpoint { seq, .. }
            | Problem::CheckpointMismatch { seq }
            | Problem::BehindWitness { seq, .. }
            | Problem::WitnessMismatch { seq }
            | Problem::Corrupt { seq, .. } => *seq,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Modified { seq } => {
                write!(f, "entry {seq} was modified: its contents do not hash to its stored hash")
            }
            Problem::Reordered { seq, signed_as } => {
                write!(f, "entry {seq} holds the entry written as {signed_as}: rows were reordered or copied")
            }
            Problem::Deleted { seq, count: 1 } => write!(f, "entry {seq} was deleted"),
            Problem::Deleted { seq, count } => {
                write!(f, "entries {seq} to {} were deleted", seq.saturating_add(count.saturating_sub(1)))
            }
            Problem::BrokenLink { seq } => write!(
                f,
                "entry {seq} does not follow entry {}: its prev is not that entry's hash \
                 (that entry was rewritten, or this one was replaced)",
                seq.saturating_sub(1)
            ),
            Problem::Truncated { seq, signed_up_to } if seq == signed_up_to => write!(
                f,
                "the trail was truncated: entry {seq} was deleted from its end (its signed checkpoint remains)"
            ),
            Problem::Truncated { seq, signed_up_to } => write!(
                f,
                "the trail was truncated: entries {seq} to {signed_up_to} were deleted from its end \
                 (a signed checkpoint covers {signed_up_to})"
            ),
            Problem::MissingCheckpoint { seq } => write!(
                f,
                "entry {seq} has no checkpoint: it was written without the audit key, or its checkpoint was deleted"
            ),
            Problem::ForgedCheckpoint { seq } => {
                write!(f, "the checkpoint of entry {seq} is forged: its signature does not verify with the audit key")
            }
            Problem::ForeignCheckpoint { seq, key } => {
                write!(f, "the checkpoint of entry {seq} is forged: it names key {key}, not the audit key")
            }
            Problem::CheckpointMismatch { seq } => {
                write!(f, "entry {seq} was rewritten: its hash differs from the one its signed checkpoint holds")
            }
            Problem::BehindWitness { seq, witnessed } => write!(
                f,
                "the trail was truncated: it ends at entry {}, but the witness file holds a signed \
                 checkpoint of entry {witnessed} (entries {seq} to {witnessed} were deleted with their checkpoints)",
                seq.saturating_sub(1)
            ),
            Problem::WitnessMismatch { seq } => write!(
                f,
                "entry {seq} is not the entry the witness file holds: the trail was rewritten at or before it"
            ),
            Problem::Corrupt { seq, detail } => write!(f, "entry {seq} is unreadable: {detail}"),
        }
    }
}

impl serde::Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Problem", 3)?;
        s.serialize_field("problem", self.name())?;
        s.serialize_field("seq", &self.seq())?;
        s.serialize_field("message", &self.to_string())?;
        s.end()
    }
}
