//! Verifying the whole trail: one walk over entries and checkpoints in seq order, in pages, so
//! memory stays bounded however long the trail grows.
//!
//! At each seq the walk knows the hash the trail should hold for the seq before: the hash in that
//! seq's checkpoint when its signature is valid (it cannot be forged without the audit key), else
//! the hash stored in that row. So one tampered row is reported once, at its own seq, and the
//! rows after it still check against what was signed.

use super::chain::{self, Fields, GENESIS};
use super::{AuditError, Problem};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use std::collections::{HashMap, VecDeque};

/// Rows per query. Tiny in tests, so that their trails of a few dozen rows cross many page
/// boundaries, in both tables, at different places.
const PAGE: usize = if cfg!(test) { 7 } else { 1000 };

/// What [`verify`] found. Serialises as JSON for the API (`head` as `[seq, hash]`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Rows in `audit`.
    pub entries: u64,
    /// Rows in `audit_checkpoints`.
    pub checkpoints: u64,
    /// The newest entry: seq and stored hash. Record it outside the database to detect a later
    /// deletion of the newest entries together with their checkpoints.
    pub head: Option<(u64, String)>,
    /// Every problem, in seq order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// No problem found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reads every entry and checkpoint in seq order and reports, with its seq, every modified,
/// deleted, reordered or inserted row, every missing, forged or mismatched checkpoint, and a
/// truncated tail. Checkpoints must be signed by `key`.
///
/// Tampering is reported in the [`VerifyReport`]; an error means the trail could not be read.
/// Entries appended while it runs are left for the next run.
pub async fn verify(pool: &AnyPool, key: &airlock_proto::PublicKey) -> Result<VerifyReport, AuditError> {
    // One statement, so one snapshot: appends commit an entry and its checkpoint together, in
    // seq order (the counter lock), so everything up to `hi` is complete.
    let bounds: AnyRow = sqlx::query(
        "SELECT (SELECT MAX(seq) FROM audit) AS entries, (SELECT MAX(seq) FROM audit_checkpoints) AS checkpoints",
    )
    .fetch_one(pool)
    .await?;
    let hi = [bounds.try_get::<Option<i64>, _>(0)?, bounds.try_get::<Option<i64>, _>(1)?].into_iter().flatten().max();
    let Some(hi) = hi else {
        return Ok(VerifyReport { entries: 0, checkpoints: 0, head: None, problems: Vec::new() });
    };

    let mut walk = Walk::new(*key.as_array());
    let mut rows = Pager::<RawEntry>::new(pool, hi);
    let mut checkpoints = Pager::<RawCheckpoint>::new(pool, hi);
    loop {
        let seq = match (rows.peek().await?, checkpoints.peek().await?) {
            (None, None) => break,
            (Some(a), Some(b)) => a.min(b),
            (Some(s), None) | (None, Some(s)) => s,
        };
        let row = rows.take_at(seq);
        let checkpoint = checkpoints.take_at(seq);
        walk.step(seq, row, checkpoint);
    }
    walk.finish();
    if !walk.modified.is_empty() {
        find_reordered(pool, hi, &mut walk).await?;
    }
    Ok(walk.report)
}

/// A row of `audit`, as stored.
struct RawEntry {
    seq: i64,
    at: i64,
    actor: String,
    kind: String,
    proposal_id: Option<i64>,
    body: String,
    prev: String,
    hash: String,
}

/// A row of `audit_checkpoints`, as stored.
struct RawCheckpoint {
    seq: i64,
    hash: String,
    key: String,
    signature: String,
}

/// A table read in seq order, a page at a time.
trait Paged: Sized {
    /// `$1`: after this seq; `$2`: up to this seq; `$3`: page size.
    const SQL: &'static str;
    fn seq(&self) -> i64;
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error>;
}

impl Paged for RawEntry {
    const SQL: &'static str = "SELECT seq, at, actor, kind, proposal_id, body, prev, hash FROM audit \
                               WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3";
    fn seq(&self) -> i64 {
        self.seq
    }
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(RawEntry {
            seq: row.try_get("seq")?,
            at: row.try_get("at")?,
            actor: row.try_get("actor")?,
            kind: row.try_get("kind")?,
            proposal_id: row.try_get("proposal_id")?,
            body: row.try_get("body")?,
            prev: row.try_get("prev")?,
            hash: row.try_get("hash")?,
        })
    }
}

impl Paged for RawCheckpoint {
    const SQL: &'static str = "SELECT seq, hash, key, signature FROM audit_checkpoints \
                               WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3";
    fn seq(&self) -> i64 {
        self.seq
    }
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(RawCheckpoint {
            seq: row.try_get("seq")?,
            hash: row.try_get("hash")?,
            key: row.try_get("key")?,
            signature: row.try_get("signature")?,
        })
    }
}

struct Pager<'p, T> {
    pool: &'p AnyPool,
    hi: i64,
    after: i64,
    buf: VecDeque<T>,
    done: bool,
}

impl<'p, T: Paged> Pager<'p, T> {
    fn new(pool: &'p AnyPool, hi: i64) -> Self {
        Pager { pool, hi, after: i64::MIN, buf: VecDeque::new(), done: false }
    }

    /// The next row's seq.
    async fn peek(&mut self) -> Result<Option<i64>, AuditError> {
        if self.buf.is_empty() && !self.done {
            let rows =
                sqlx::query(T::SQL).bind(self.after).bind(self.hi).bind(PAGE as i64).fetch_all(self.pool).await?;
            self.done = rows.len() < PAGE;
            for row in &rows {
                let item = T::from_row(row)?;
                self.after = item.seq();
                self.buf.push_back(item);
            }
        }
        Ok(self.buf.front().map(T::seq))
    }

    /// The next row, if its seq is `seq`.
    fn take_at(&mut self, seq: i64) -> Option<T> {
        match self.buf.front() {
            Some(item) if item.seq() == seq => self.buf.pop_front(),
            _ => None,
        }
    }
}

/// What [`Walk::row`] found.
#[derive(Clone, Copy)]
struct RowCheck {
    /// The stored hash, if readable.
    hash: Option<[u8; 32]>,
    /// Already reported as bad (modified, unreadable).
    flagged: bool,
    /// Hashes correctly, but its `prev` is not the hash held for the seq before.
    link_broken: bool,
}

/// The walk's state between seqs.
struct Walk {
    key: [u8; 32],
    key_hex: String,
    report: VerifyReport,
    /// The newest row seen (0: none yet).
    last_row: u64,
    /// The newest validly signed checkpoint (0: none yet).
    last_signed: u64,
    /// The hash the trail holds for the last seq seen, when known.
    trusted: Option<(u64, [u8; 32])>,
    /// `Modified` problems (index in `report.problems`) with the row's stored hash: if a valid
    /// checkpoint at another seq holds that hash, the row was moved, not edited.
    modified: Vec<(usize, [u8; 32])>,
}

impl Walk {
    fn new(key: [u8; 32]) -> Self {
        Walk {
            key,
            key_hex: hex::encode(key),
            report: VerifyReport { entries: 0, checkpoints: 0, head: None, problems: Vec::new() },
            last_row: 0,
            last_signed: 0,
            trusted: None,
            modified: Vec::new(),
        }
    }

    fn problem(&mut self, p: Problem) {
        self.report.problems.push(p);
    }

    /// Everything stored at one seq: its row, its checkpoint, or both.
    fn step(&mut self, seq: i64, row: Option<RawEntry>, checkpoint: Option<RawCheckpoint>) {
        self.report.entries += u64::from(row.is_some());
        self.report.checkpoints += u64::from(checkpoint.is_some());
        let Some(seq) = u64::try_from(seq).ok().filter(|s| *s >= 1) else {
            let what = if row.is_some() { "an entry" } else { "a checkpoint" };
            self.problem(Problem::Corrupt { seq: 0, detail: format!("{what} has seq {seq}; seqs start at 1") });
            return;
        };
        let trusted_prev = match self.trusted {
            _ if seq == 1 => Some(GENESIS),
            Some((s, hash)) if s + 1 == seq => Some(hash),
            _ => None,
        };
        let has_row = row.is_some();
        let checked = match row {
            Some(row) => self.row(seq, &row, trusted_prev),
            None => RowCheck { hash: None, flagged: false, link_broken: false },
        };
        let signed = match checkpoint {
            Some(c) => self.checkpoint(seq, &c),
            None => {
                if has_row {
                    self.problem(Problem::MissingCheckpoint { seq });
                }
                None
            }
        };
        match (signed, checked) {
            // A row rewritten in place (hash recomputed): its `prev` may well be wrong too, but
            // that is the same fact.
            (Some(signed), RowCheck { hash: Some(stored), flagged: false, .. }) if signed != stored => {
                self.problem(Problem::CheckpointMismatch { seq });
            }
            // The row is what was signed (or nothing signed it), yet does not follow the hash
            // held for the seq before: that entry was rewritten, or this one replaced.
            (_, RowCheck { link_broken: true, .. }) => self.problem(Problem::BrokenLink { seq }),
            _ => {}
        }
        self.trusted = signed.or(checked.hash).map(|h| (seq, h));
    }

    /// Checks one row on its own and against the hash held for the seq before.
    fn row(&mut self, seq: u64, row: &RawEntry, trusted_prev: Option<[u8; 32]>) -> RowCheck {
        if seq > self.last_row + 1 {
            let first = self.last_row + 1;
            self.problem(Problem::Deleted { seq: first, count: seq - first });
        }
        self.last_row = seq;
        self.report.head = Some((seq, row.hash.clone()));
        let (prev, stored) = match (chain::from_hex::<32>(&row.prev), chain::from_hex::<32>(&row.hash)) {
            (Ok(prev), Ok(stored)) => (prev, stored),
            (Err(e), _) => {
                self.problem(Problem::Corrupt { seq, detail: format!("prev: {e}") });
                return RowCheck { hash: None, flagged: true, link_broken: false };
            }
            (_, Err(e)) => {
                self.problem(Problem::Corrupt { seq, detail: format!("hash: {e}") });
                return RowCheck { hash: None, flagged: true, link_broken: false };
            }
        };
        let fields = Fields {
            seq,
            at_ms: row.at,
            actor: &row.actor,
            kind: &row.kind,
            proposal_id: row.proposal_id,
            body: &row.body,
        };
        if chain::entry_hash(&prev, &fields) != stored {
            self.modified.push((self.report.problems.len(), stored));
            self.problem(Problem::Modified { seq });
            return RowCheck { hash: Some(stored), flagged: true, link_broken: false };
        }
        RowCheck { hash: Some(stored), flagged: false, link_broken: trusted_prev.is_some_and(|t| t != prev) }
    }

    /// Checks one checkpoint; returns the hash it signs when its signature is valid.
    fn checkpoint(&mut self, seq: u64, c: &RawCheckpoint) -> Option<[u8; 32]> {
        if c.key != self.key_hex {
            // Named as stored, but bounded: the column is attacker-controlled.
            let key = if c.key.len() <= 80 {
                c.key.clone()
            } else {
                format!("{}...", c.key.chars().take(64).collect::<String>())
            };
            self.problem(Problem::ForeignCheckpoint { seq, key });
            return None;
        }
        let parsed = chain::from_hex::<32>(&c.hash).map_err(|e| format!("checkpoint hash: {e}")).and_then(|h| {
            Ok((h, chain::from_hex::<64>(&c.signature).map_err(|e| format!("checkpoint signature: {e}"))?))
        });
        let (hash, signature) = match parsed {
            Ok(p) => p,
            Err(detail) => {
                self.problem(Problem::Corrupt { seq, detail });
                return None;
            }
        };
        if !chain::checkpoint_signature_ok(&self.key, seq, &hash, &signature) {
            self.problem(Problem::ForgedCheckpoint { seq });
            return None;
        }
        self.last_signed = seq;
        Some(hash)
    }

    /// After the last seq: a valid checkpoint beyond the newest row means the tail was cut.
    fn finish(&mut self) {
        if self.last_signed > self.last_row {
            self.problem(Problem::Truncated { seq: self.last_row + 1, signed_up_to: self.last_signed });
        }
    }
}

/// Second pass, only when some rows did not hash: a row whose stored hash is the one a valid
/// checkpoint signed at another seq was moved there (swapped, renumbered, copied), not edited.
async fn find_reordered(pool: &AnyPool, hi: i64, walk: &mut Walk) -> Result<(), AuditError> {
    let mut wanted: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    for (index, hash) in &walk.modified {
        wanted.entry(*hash).or_default().push(*index);
    }
    let mut checkpoints = Pager::<RawCheckpoint>::new(pool, hi);
    while let Some(seq) = checkpoints.peek().await? {
        let Some(c) = checkpoints.take_at(seq) else { break };
        let Ok(signed_as) = u64::try_from(seq) else { continue };
        let Ok(hash) = chain::from_hex::<32>(&c.hash) else { continue };
        let Some(indices) = wanted.get(&hash) else { continue };
        let valid = c.key == walk.key_hex
            && chain::from_hex::<64>(&c.signature)
                .is_ok_and(|sig| chain::checkpoint_signature_ok(&walk.key, signed_as, &hash, &sig));
        if !valid {
            continue;
        }
        for &index in indices {
            if let Some(p) = walk.report.problems.get_mut(index) {
                if let Problem::Modified { seq } = *p {
                    if seq != signed_as {
                        *p = Problem::Reordered { seq, signed_as };
                    }
                }
            }
        }
    }
    Ok(())
}
