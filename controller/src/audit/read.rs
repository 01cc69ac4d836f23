//! Reading entries for display (`airlock show`, the API).

use super::{AuditError, StoredEntry};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// The newest `limit` entries, oldest first: every entry when `proposal_id` is `None`, or those
/// about one proposal.
///
/// Rows are returned as stored and are not verified: run [`super::verify`] before treating them
/// as evidence.
pub async fn entries(pool: &AnyPool, proposal_id: Option<i64>, limit: u32) -> Result<Vec<StoredEntry>, AuditError> {
    let limit = i64::from(limit);
    let rows = match proposal_id {
        Some(id) => {
            sqlx::query(
                "SELECT seq, at, actor, kind, proposal_id, body, prev, hash FROM audit \
                 WHERE proposal_id = $1 ORDER BY seq DESC LIMIT $2",
            )
            .bind(id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT seq, at, actor, kind, proposal_id, body, prev, hash FROM audit ORDER BY seq DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    let mut out = rows.iter().map(stored_entry).collect::<Result<Vec<_>, _>>()?;
    out.reverse();
    Ok(out)
}

fn stored_entry(row: &AnyRow) -> Result<StoredEntry, AuditError> {
    let seq: i64 = row.try_get("seq")?;
    let corrupt = |detail: String| AuditError::Corrupt { seq, detail };
    let body: String = row.try_get("body")?;
    Ok(StoredEntry {
        seq: u64::try_from(seq).map_err(|_| corrupt("negative seq".into()))?,
        at_ms: row.try_get("at")?,
        actor: row.try_get("actor")?,
        kind: row.try_get("kind")?,
        proposal_id: row.try_get("proposal_id")?,
        body: serde_json::from_str(&body).map_err(|e| corrupt(format!("body is not JSON: {e}")))?,
        prev: row.try_get("prev")?,
        hash: row.try_get("hash")?,
    })
}
