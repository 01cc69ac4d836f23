//! The witness file: the trail's signed checkpoints, copied out of the database to a file the
//! database's owner cannot rewrite, so that deleting the newest entries (with their checkpoints,
//! with or without winding back the seq counter) or re-chaining the trail with a stolen audit key
//! shows when the trail is compared with it.
//!
//! # Format
//!
//! One line per checkpoint, in seq order, appended and never rewritten:
//!
//! ```text
//! airlock-audit-witness-v1 <seq> <hash: 64 hex> <audit key: 64 hex> <signature: 128 hex>
//! ```
//!
//! The signature is the checkpoint's own ([`super::chain`]), so a line is evidence on its own:
//! anyone holding the audit public key can check it, and no one without the audit key can forge
//! one. Lines are copied only after the entries they cover are committed, and only when the
//! entries since the last line chain onto it: [`Witness::sync`] refuses, and appends nothing,
//! when the trail no longer holds what the file last witnessed.
//!
//! # Where it lives
//!
//! Outside the data directory that holds the database, by default next to the audit key (see
//! `docs/deploy.md`): on a host where the database is run by someone else (PostgreSQL) or can be
//! copied and edited (SQLite backups), the file is what the trail is checked against. Keep it on
//! storage the database's owner cannot write (another user, an append-only file, a log shipper).

use super::chain::{self, Fields, GENESIS};
use super::{AuditError, Problem};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use std::io::Write as _;
use std::path::{Path, PathBuf};

const TAG: &str = "airlock-audit-witness-v1";

/// Rows read per query while syncing.
const PAGE: i64 = if cfg!(test) { 3 } else { 1000 };

/// One witnessed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The entry's seq.
    pub seq: u64,
    /// The entry's hash.
    pub hash: [u8; 32],
    /// The audit key that signed it.
    pub key: [u8; 32],
    /// The checkpoint signature.
    pub signature: [u8; 64],
}

impl Record {
    /// The line written to the file, without its newline.
    pub fn line(&self) -> String {
        format!(
            "{TAG} {} {} {} {}",
            self.seq,
            hex::encode(self.hash),
            hex::encode(self.key),
            hex::encode(self.signature)
        )
    }

    /// Parses one line; checks nothing but its shape.
    pub fn parse(line: &str) -> Result<Record, String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [tag, seq, hash, key, signature] = fields.as_slice() else {
            return Err(format!("expected 5 fields, found {}", fields.len()));
        };
        if *tag != TAG {
            return Err(format!("expected {TAG}, found {tag:?}"));
        }
        Ok(Record {
            seq: seq.parse().map_err(|_| format!("seq {seq:?} is not a number"))?,
            hash: chain::from_hex(hash)?,
            key: chain::from_hex(key)?,
            signature: chain::from_hex(signature)?,
        })
    }

    /// Whether `key` signed this checkpoint.
    pub fn signed_by(&self, key: &airlock_proto::PublicKey) -> bool {
        self.key == *key.as_array() && chain::checkpoint_signature_ok(&self.key, self.seq, &self.hash, &self.signature)
    }
}

/// Why the witness file cannot be used or extended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The file cannot be read or written.
    #[error("audit witness {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the file is not a witness record, or not signed by the audit key.
    #[error("audit witness {path} line {line}: {detail}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// The trail no longer holds what the file witnessed, or the entries since do not chain onto
    /// it: the trail was tampered with. Nothing is appended until someone looks.
    #[error("the audit trail diverges from the witness {path} at entry {seq}: {detail}; run `airlock audit verify --against {path}`")]
    Diverged {
        /// The file.
        path: PathBuf,
        /// Where.
        seq: u64,
        /// What differs.
        detail: String,
    },
    /// Reading the trail failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<sqlx::Error> for WitnessError {
    fn from(e: sqlx::Error) -> Self {
        WitnessError::Audit(AuditError::Db(e))
    }
}

/// The witness file of one trail, checked against one audit key.
#[derive(Clone, Debug)]
pub struct Witness {
    path: PathBuf,
    key: airlock_proto::PublicKey,
}

impl Witness {
    /// The file at `path` (created by the first [`Witness::sync`]), holding checkpoints by `key`.
    pub fn new(path: &Path, key: airlock_proto::PublicKey) -> Self {
        Witness { path: path.to_path_buf(), key }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every record, in file order (see [`read`]).
    pub fn records(&self) -> Result<Vec<Record>, WitnessError> {
        read(&self.path, Some(&self.key))
    }

    /// Copies every checkpoint committed since the last line into the file, after checking that
    /// the trail still holds the last witnessed hash and that every new entry hashes, chains onto
    /// it and carries a valid checkpoint. Returns how many lines were appended.
    pub async fn sync(&self, pool: &AnyPool) -> Result<usize, WitnessError> {
        let last = self.records()?.pop();
        let (mut seq, mut prev) = match &last {
            None => (0, GENESIS),
            Some(r) => {
                let stored = stored_hash(pool, r.seq).await?;
                if stored != Some(r.hash) {
                    let detail = match stored {
                        None => "the witnessed entry is gone".to_string(),
                        Some(_) => "the entry's hash is not the witnessed one".to_string(),
                    };
                    return Err(self.diverged(r.seq, detail));
                }
                (r.seq, r.hash)
            }
        };
        let mut lines = String::new();
        let mut added = 0;
        loop {
            let rows = sqlx::query(
                "SELECT a.seq, a.at, a.actor, a.kind, a.proposal_id, a.body, a.prev, a.hash, \
                 c.hash AS c_hash, c.key AS c_key, c.signature AS c_signature \
                 FROM audit a LEFT JOIN audit_checkpoints c ON c.seq = a.seq \
                 WHERE a.seq > $1 ORDER BY a.seq LIMIT $2",
            )
            .bind(seq as i64)
            .bind(PAGE)
            .fetch_all(pool)
            .await?;
            for row in &rows {
                let record = self.check_row(row, seq + 1, &prev)?;
                lines.push_str(&record.line());
                lines.push('\n');
                (seq, prev) = (record.seq, record.hash);
                added += 1;
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        if added > 0 {
            self.append(&lines)?;
        }
        Ok(added)
    }

    /// Checks one joined entry + checkpoint row: it is `seq`, follows `prev`, hashes, and its
    /// checkpoint is valid and signs that hash.
    fn check_row(&self, row: &AnyRow, seq: u64, prev: &[u8; 32]) -> Result<Record, WitnessError> {
        let found: i64 = row.try_get("seq")?;
        if u64::try_from(found).ok() != Some(seq) {
            return Err(self.diverged(seq, format!("the next entry is {found}")));
        }
        let diverged = |detail: &str| self.diverged(seq, detail.to_string());
        let stored_prev = chain::from_hex::<32>(&row.try_get::<String, _>("prev")?).map_err(|e| diverged(&e))?;
        let hash = chain::from_hex::<32>(&row.try_get::<String, _>("hash")?).map_err(|e| diverged(&e))?;
        if stored_prev != *prev {
            return Err(diverged("it does not follow the witnessed entry before it"));
        }
        let (actor, kind, body): (String, String, String) =
            (row.try_get("actor")?, row.try_get("kind")?, row.try_get("body")?);
        let fields = Fields {
            seq,
            at_ms: row.try_get("at")?,
            actor: &actor,
            kind: &kind,
            proposal_id: row.try_get("proposal_id")?,
            body: &body,
        };
        if chain::entry_hash(prev, &fields) != hash {
            return Err(diverged("its contents do not hash to its stored hash"));
        }
        let (c_hash, c_key, c_sig): (Option<String>, Option<String>, Option<String>) =
            (row.try_get("c_hash")?, row.try_get("c_key")?, row.try_get("c_signature")?);
        let (Some(c_hash), Some(c_key), Some(c_sig)) = (c_hash, c_key, c_sig) else {
            return Err(diverged("it has no checkpoint"));
        };
        let record = Record {
            seq,
            hash: chain::from_hex(&c_hash).map_err(|e| diverged(&e))?,
            key: chain::from_hex(&c_key).map_err(|e| diverged(&e))?,
            signature: chain::from_hex(&c_sig).map_err(|e| diverged(&e))?,
        };
        if record.hash != hash || !record.signed_by(&self.key) {
            return Err(diverged("its checkpoint is not a valid signature of its hash by the audit key"));
        }
        Ok(record)
    }

    fn diverged(&self, seq: u64, detail: String) -> WitnessError {
        WitnessError::Diverged { path: self.path.clone(), seq, detail }
    }

    /// Appends `lines` (mode 0600 on creation) and syncs them to disk.
    fn append(&self, lines: &str) -> Result<(), WitnessError> {
        let io = |source| WitnessError::Io { path: self.path.clone(), source };
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&self.path).map_err(io)?;
        f.write_all(lines.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)
    }

    /// Compares the trail with the newest witnessed checkpoint: the trail must still hold that
    /// entry with that hash. With a trail that [`super::verify`] finds clean, this proves every
    /// witnessed entry is intact (each hash covers all before it). Returns the problem found.
    pub async fn check(&self, pool: &AnyPool) -> Result<Option<Problem>, WitnessError> {
        let Some(newest) = self.records()?.pop() else { return Ok(None) };
        let head: Option<i64> = sqlx::query("SELECT MAX(seq) FROM audit").fetch_one(pool).await?.try_get(0)?;
        let head = head.and_then(|h| u64::try_from(h).ok()).unwrap_or(0);
        Ok(compare(&newest, head, stored_hash(pool, newest.seq).await?))
    }
}

/// Every record of the file at `path`, in file order; each must parse, be validly signed by `key`
/// (when `None`: by the key the first line names) and follow the one before. A missing file
/// holds none.
pub fn read(path: &Path, key: Option<&airlock_proto::PublicKey>) -> Result<Vec<Record>, WitnessError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(WitnessError::Io { path: path.to_path_buf(), source }),
    };
    let mut key = key.copied();
    let mut out: Vec<Record> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |detail: String| WitnessError::BadLine { path: path.to_path_buf(), line: i + 1, detail };
        if line.trim().is_empty() {
            continue;
        }
        let r = Record::parse(line).map_err(bad)?;
        let key = *key.get_or_insert_with(|| airlock_proto::PublicKey::from(r.key));
        if !r.signed_by(&key) {
            return Err(bad(format!("checkpoint {} is not signed by the audit key", r.seq)));
        }
        if out.last().is_some_and(|last| last.seq >= r.seq) {
            return Err(bad(format!("checkpoint {} does not follow the line before", r.seq)));
        }
        out.push(r);
    }
    Ok(out)
}

/// What the trail holds against the witnessed `newest`: `head` is the trail's newest seq,
/// `stored` the hash it holds at `newest.seq`. Shared by [`Witness::check`] and the CLI, which
/// reads both from the API.
pub fn compare(newest: &Record, head: u64, stored: Option<[u8; 32]>) -> Option<Problem> {
    if head < newest.seq {
        return Some(Problem::BehindWitness { seq: head + 1, witnessed: newest.seq });
    }
    match stored {
        Some(h) if h == newest.hash => None,
        _ => Some(Problem::WitnessMismatch { seq: newest.seq }),
    }
}

/// The stored hash of entry `seq`, if the row exists and its hash parses.
async fn stored_hash(pool: &AnyPool, seq: u64) -> Result<Option<[u8; 32]>, WitnessError> {
    let row: Option<AnyRow> =
        sqlx::query("SELECT hash FROM audit WHERE seq = $1").bind(seq as i64).fetch_optional(pool).await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(chain::from_hex::<32>(&row.try_get::<String, _>("hash")?).ok()),
    }
}
