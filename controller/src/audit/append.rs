//! Appending an entry and its signed checkpoint, inside the caller's transaction.

use super::chain::{self, Fields, GENESIS};
use super::{Appended, AuditError, AuditKey, Entry};
use sqlx::any::AnyRow;
use sqlx::Row;

/// The counter that hands out seqs.
const SEQ_COUNTER: &str = "audit_seq";

/// Appends `entry` and a checkpoint signed with `key`, inside the transaction `conn` is in (pass
/// `&mut *tx`): the entry commits or rolls back with the change it records, and so does its seq.
///
/// On PostgreSQL the seq counter's row lock is held until the caller's transaction ends, so
/// concurrent appenders queue there: keep audited transactions short.
///
/// Fails closed with [`AuditError::Broken`] when the entry before the new one is missing or
/// unreadable: an action whose evidence cannot be chained is not recorded, so the caller's
/// transaction should fail with it.
pub async fn append(conn: &mut sqlx::AnyConnection, key: &AuditKey, entry: Entry<'_>) -> Result<Appended, AuditError> {
    let body = serde_json::to_string(&entry.body)?;
    // The migrations create other counters but not this one; creating it here keeps the audit
    // trail self-contained. A no-op once it exists, on both backends.
    sqlx::query("INSERT INTO counters (name, value) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING")
        .bind(SEQ_COUNTER)
        .execute(&mut *conn)
        .await?;
    let seq_db = crate::store::next_counter(conn, SEQ_COUNTER).await?;
    let seq = u64::try_from(seq_db)
        .ok()
        .filter(|s| *s >= 1)
        .ok_or_else(|| AuditError::Corrupt { seq: seq_db, detail: "the audit_seq counter is negative".into() })?;

    let prev = if seq == 1 { GENESIS } else { previous_hash(conn, seq, seq_db - 1).await? };
    let fields = Fields {
        seq,
        at_ms: entry.at_ms,
        actor: entry.actor,
        kind: entry.kind,
        proposal_id: entry.proposal_id,
        body: &body,
    };
    let hash = chain::entry_hash(&prev, &fields);
    let hash_hex = hex::encode(hash);

    sqlx::query(
        "INSERT INTO audit (seq, at, actor, kind, proposal_id, body, prev, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq_db)
    .bind(entry.at_ms)
    .bind(entry.actor)
    .bind(entry.kind)
    .bind(entry.proposal_id)
    .bind(&body)
    .bind(hex::encode(prev))
    .bind(&hash_hex)
    .execute(&mut *conn)
    .await?;

    let signature = chain::sign_checkpoint(key.signing_key(), seq, &hash);
    sqlx::query("INSERT INTO audit_checkpoints (seq, hash, key, signature, at) VALUES ($1, $2, $3, $4, $5)")
        .bind(seq_db)
        .bind(&hash_hex)
        .bind(hex::encode(key.public_key().as_array()))
        .bind(hex::encode(signature))
        .bind(entry.at_ms)
        .execute(&mut *conn)
        .await?;

    Ok(Appended { seq, hash: hash_hex })
}

/// The stored hash of entry `before`, the one that entry `seq` follows.
async fn previous_hash(conn: &mut sqlx::AnyConnection, seq: u64, before: i64) -> Result<[u8; 32], AuditError> {
    let row: Option<AnyRow> =
        sqlx::query("SELECT hash FROM audit WHERE seq = $1").bind(before).fetch_optional(&mut *conn).await?;
    let Some(row) = row else {
        return Err(AuditError::Broken { seq, detail: format!("entry {before} is missing") });
    };
    let text: String = row.try_get("hash")?;
    chain::from_hex::<32>(&text)
        .map_err(|e| AuditError::Broken { seq, detail: format!("entry {before} has a corrupt hash: {e}") })
}
