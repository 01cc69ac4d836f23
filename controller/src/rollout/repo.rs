//! Rows: `rollouts` and `rollout_devices` (migration 0003). Every writer takes the caller's
//! connection so it runs inside the caller's transaction; every state change is conditional on
//! the state it expects, so a second replica (or a stale decision) changes nothing.

use super::{DeviceState, RolloutError, RolloutState};
use crate::store::corrupt;
use crate::workflow::State;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// A rollout row.
#[derive(Clone, Debug)]
pub(crate) struct RolloutRow {
    pub proposal_id: i64,
    pub revision: u32,
    pub manifest_digest: String,
    pub state: RolloutState,
    pub wave: u32,
    pub waves: u32,
    pub wave_started_at: i64,
    pub started_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub rate_at_us: i64,
    pub breach: Option<String>,
}

/// `SELECT` of every rollout column; a macro so each query stays a compile-time literal.
macro_rules! select_rollouts {
    ($rest:literal) => {
        concat!(
            "SELECT r.proposal_id, CAST(r.revision AS BIGINT) AS revision, r.manifest_digest, r.state, ",
            "CAST(r.wave AS BIGINT) AS wave, CAST(r.waves AS BIGINT) AS waves, r.wave_started_at, r.started_at, ",
            "r.updated_at, r.finished_at, r.rate_at_us, r.breach FROM rollouts r ",
            $rest
        )
    };
}

fn rollout_from(row: &AnyRow) -> Result<RolloutRow, RolloutError> {
    let state: String = row.try_get("state")?;
    Ok(RolloutRow {
        proposal_id: row.try_get("proposal_id")?,
        revision: row.try_get::<i64, _>("revision")? as u32,
        manifest_digest: row.try_get("manifest_digest")?,
        state: RolloutState::parse(&state).ok_or_else(|| corrupt("rollouts", format!("state {state:?}")))?,
        wave: row.try_get::<i64, _>("wave")? as u32,
        waves: row.try_get::<i64, _>("waves")? as u32,
        wave_started_at: row.try_get("wave_started_at")?,
        started_at: row.try_get("started_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
        rate_at_us: row.try_get("rate_at_us")?,
        breach: row.try_get("breach")?,
    })
}

/// Takes the rollout's row lock for the rest of the transaction (a portable `SELECT ... FOR
/// UPDATE`: on PostgreSQL replicas queue here, so each decision reads a state nobody else is
/// changing; SQLite has one writer anyway), then reads it.
pub(crate) async fn lock(conn: &mut AnyConnection, id: i64) -> Result<Option<RolloutRow>, RolloutError> {
    sqlx::query("UPDATE rollouts SET updated_at = updated_at WHERE proposal_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    rollout(conn, id).await
}

pub(crate) async fn rollout(conn: &mut AnyConnection, id: i64) -> Result<Option<RolloutRow>, RolloutError> {
    let row = sqlx::query(select_rollouts!("WHERE r.proposal_id = $1")).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(rollout_from).transpose()
}

pub(crate) async fn rollout_by_digest(
    conn: &mut AnyConnection,
    digest_hex: &str,
) -> Result<Option<RolloutRow>, RolloutError> {
    let row = sqlx::query(select_rollouts!("WHERE r.manifest_digest = $1"))
        .bind(digest_hex)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(rollout_from).transpose()
}

/// Rollouts a tick has work in: rolling out or paused, or with devices still in flight (they may
/// time out), or aborted with devices still owed a revert command.
pub(crate) async fn active(conn: &mut AnyConnection) -> Result<Vec<RolloutRow>, RolloutError> {
    let rows = sqlx::query(select_rollouts!(
        "WHERE r.state IN ('rolling_out', 'paused') OR EXISTS (SELECT 1 FROM rollout_devices d \
         WHERE d.proposal_id = r.proposal_id AND (d.state IN ('sent', 'accepted', 'installed') \
         OR (r.state = 'aborted' AND d.state = 'confirmed' AND d.revert_seq IS NULL))) ORDER BY r.proposal_id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(rollout_from).collect()
}

pub(crate) async fn insert_rollout(conn: &mut AnyConnection, r: &RolloutRow) -> Result<(), RolloutError> {
    sqlx::query(
        "INSERT INTO rollouts (proposal_id, revision, manifest_digest, state, wave, waves, wave_started_at, started_at, \
         updated_at, finished_at, rate_at_us, breach) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(r.proposal_id)
    .bind(i64::from(r.revision))
    .bind(&r.manifest_digest)
    .bind(r.state.name())
    .bind(i64::from(r.wave))
    .bind(i64::from(r.waves))
    .bind(r.wave_started_at)
    .bind(r.started_at)
    .bind(r.updated_at)
    .bind(r.finished_at)
    .bind(r.rate_at_us)
    .bind(&r.breach)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves the rollout from the state and wave it was read in to `next`; false if anything moved
/// it meanwhile (another replica, a concurrent resume or abort), and then nothing changed.
pub(crate) async fn update_rollout(
    conn: &mut AnyConnection,
    from: &RolloutRow,
    next: &RolloutRow,
) -> Result<bool, RolloutError> {
    let r = sqlx::query(
        "UPDATE rollouts SET state = $1, wave = $2, waves = $3, wave_started_at = $4, updated_at = $5, finished_at = $6, \
         rate_at_us = $7, breach = $8 WHERE proposal_id = $9 AND state = $10 AND wave = $11 AND rate_at_us = $12",
    )
    .bind(next.state.name())
    .bind(i64::from(next.wave))
    .bind(i64::from(next.waves))
    .bind(next.wave_started_at)
    .bind(next.updated_at)
    .bind(next.finished_at)
    .bind(next.rate_at_us)
    .bind(&next.breach)
    .bind(from.proposal_id)
    .bind(from.state.name())
    .bind(i64::from(from.wave))
    .bind(from.rate_at_us)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Moves the proposal along with its rollout.
pub(crate) async fn set_proposal_state(
    conn: &mut AnyConnection,
    id: i64,
    from: State,
    to: State,
    now: i64,
) -> Result<bool, RolloutError> {
    let r = sqlx::query("UPDATE proposals SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
        .bind(to.name())
        .bind(now)
        .bind(id)
        .bind(from.name())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// `(id, revision)` of every proposal in state `signed`.
pub(crate) async fn signed_proposals(conn: &mut AnyConnection) -> Result<Vec<(i64, u32)>, RolloutError> {
    let rows =
        sqlx::query("SELECT id, CAST(revision AS BIGINT) AS revision FROM proposals WHERE state = $1 ORDER BY id")
            .bind(State::Signed.name())
            .fetch_all(&mut *conn)
            .await?;
    rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get::<i64, _>("revision")? as u32))).collect()
}

pub(crate) async fn requester(conn: &mut AnyConnection, id: i64) -> Result<Option<String>, RolloutError> {
    let row = sqlx::query("SELECT requester FROM proposals WHERE id = $1").bind(id).fetch_optional(&mut *conn).await?;
    Ok(row.map(|r| r.try_get("requester")).transpose()?)
}

pub(crate) async fn insert_device(
    conn: &mut AnyConnection,
    id: i64,
    device: &str,
    wave: u32,
    position: i64,
    now: i64,
) -> Result<(), RolloutError> {
    sqlx::query(
        "INSERT INTO rollout_devices (proposal_id, device_id, wave, position, state, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(device)
    .bind(i64::from(wave))
    .bind(position)
    .bind(DeviceState::Pending.name())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Devices of one wave by state.
pub(crate) async fn counts(conn: &mut AnyConnection, id: i64, wave: u32) -> Result<super::Counts, RolloutError> {
    let rows = sqlx::query(
        "SELECT state, COUNT(*) AS n FROM rollout_devices WHERE proposal_id = $1 AND wave = $2 GROUP BY state",
    )
    .bind(id)
    .bind(i64::from(wave))
    .fetch_all(&mut *conn)
    .await?;
    let mut c = super::Counts::default();
    for r in &rows {
        c.add(device_state(&r.try_get::<String, _>("state")?)?, r.try_get::<i64, _>("n")? as u32);
    }
    Ok(c)
}

/// Devices of the rollout, in any wave, still without an outcome (pending, sent, accepted or
/// installed).
pub(crate) async fn awaiting_outcome(conn: &mut AnyConnection, id: i64) -> Result<u64, RolloutError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM rollout_devices WHERE proposal_id = $1 \
         AND state IN ('pending', 'sent', 'accepted', 'installed')",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get::<i64, _>("n")?.unsigned_abs())
}

pub(crate) fn device_state(s: &str) -> Result<DeviceState, RolloutError> {
    Ok(DeviceState::parse(s).ok_or_else(|| corrupt("rollout_devices", format!("state {s:?}")))?)
}

/// The next device of `wave` to send to, in spread order.
pub(crate) async fn next_pending(conn: &mut AnyConnection, id: i64, wave: u32) -> Result<Option<String>, RolloutError> {
    let row = sqlx::query(
        "SELECT device_id FROM rollout_devices WHERE proposal_id = $1 AND wave = $2 AND state = $3 ORDER BY position LIMIT 1",
    )
    .bind(id)
    .bind(i64::from(wave))
    .bind(DeviceState::Pending.name())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| r.try_get("device_id")).transpose()?)
}

/// Marks a pending device `to` (`sent`, or `failed` when it cannot be sent); false if it was no
/// longer pending.
pub(crate) async fn claim_send(
    conn: &mut AnyConnection,
    id: i64,
    device: &str,
    to: DeviceState,
    detail: Option<&str>,
    now: i64,
) -> Result<bool, RolloutError> {
    let r = sqlx::query(
        "UPDATE rollout_devices SET state = $1, detail = $2, sent_at = $3, updated_at = $3 \
         WHERE proposal_id = $4 AND device_id = $5 AND state = $6",
    )
    .bind(to.name())
    .bind(detail)
    .bind(now)
    .bind(id)
    .bind(device)
    .bind(DeviceState::Pending.name())
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Puts back a device whose delivery the transport refused (it never left), unless a report
/// moved it meanwhile.
pub(crate) async fn unclaim_send(
    conn: &mut AnyConnection,
    id: i64,
    device: &str,
    sent_at: i64,
) -> Result<(), RolloutError> {
    sqlx::query(
        "UPDATE rollout_devices SET state = $1, sent_at = NULL WHERE proposal_id = $2 AND device_id = $3 AND state = $4 \
         AND sent_at = $5",
    )
    .bind(DeviceState::Pending.name())
    .bind(id)
    .bind(device)
    .bind(DeviceState::Sent.name())
    .bind(sent_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Devices in `state` silent since `cutoff` become `failed` with `detail`; how many.
pub(crate) async fn time_out(
    conn: &mut AnyConnection,
    id: i64,
    state: DeviceState,
    cutoff: i64,
    detail: &str,
    now: i64,
) -> Result<u64, RolloutError> {
    let r = sqlx::query(
        "UPDATE rollout_devices SET state = $1, detail = $2, updated_at = $3 WHERE proposal_id = $4 AND state = $5 \
         AND updated_at <= $6",
    )
    .bind(DeviceState::Failed.name())
    .bind(detail)
    .bind(now)
    .bind(id)
    .bind(state.name())
    .bind(cutoff)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected())
}

/// Moves the pending devices of one wave into another (a resume after a breach).
pub(crate) async fn move_pending(conn: &mut AnyConnection, id: i64, from: u32, to: u32) -> Result<u64, RolloutError> {
    let r = sqlx::query("UPDATE rollout_devices SET wave = $1 WHERE proposal_id = $2 AND wave = $3 AND state = $4")
        .bind(i64::from(to))
        .bind(id)
        .bind(i64::from(from))
        .bind(DeviceState::Pending.name())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}

/// One device's row, as a report needs it.
#[derive(Clone, Debug)]
pub(crate) struct DeviceRow {
    pub state: DeviceState,
    pub detail: Option<String>,
    pub last_counter: Option<i64>,
}

pub(crate) async fn device(conn: &mut AnyConnection, id: i64, device: &str) -> Result<Option<DeviceRow>, RolloutError> {
    let row = sqlx::query(
        "SELECT state, detail, last_counter FROM rollout_devices WHERE proposal_id = $1 AND device_id = $2",
    )
    .bind(id)
    .bind(device)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(DeviceRow {
        state: device_state(&row.try_get::<String, _>("state")?)?,
        detail: row.try_get("detail")?,
        last_counter: row.try_get("last_counter")?,
    }))
}

/// Applies a report: the new state and detail, the counter, a sign of life. Conditional on the
/// state read and on the counter still being above the last applied; false if either moved.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_report(
    conn: &mut AnyConnection,
    id: i64,
    device: &str,
    from: DeviceState,
    to: DeviceState,
    detail: Option<&str>,
    counter: i64,
    now: i64,
) -> Result<bool, RolloutError> {
    let r = sqlx::query(
        "UPDATE rollout_devices SET state = $1, detail = $2, last_counter = $3, updated_at = $4, \
         sent_at = COALESCE(sent_at, $5) WHERE proposal_id = $6 AND device_id = $7 AND state = $8 \
         AND (last_counter IS NULL OR last_counter < $3)",
    )
    .bind(to.name())
    .bind(detail)
    .bind(counter)
    .bind(now)
    .bind(now)
    .bind(id)
    .bind(device)
    .bind(from.name())
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A rollout in which a device was sent the manifest but is not known to run it yet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Unconfirmed {
    pub(crate) proposal: i64,
    pub(crate) revision: u32,
    /// The device's state in it.
    pub(crate) state: DeviceState,
    /// Whether the rollout is rolling out (not paused).
    pub(crate) rolling_out: bool,
}

/// The active rollouts (rolling out or paused) in which `device` was sent the manifest but is
/// not known to run it yet.
pub(crate) async fn unconfirmed(conn: &mut AnyConnection, device: &str) -> Result<Vec<Unconfirmed>, RolloutError> {
    let rows = sqlx::query(
        "SELECT d.proposal_id, CAST(r.revision AS BIGINT) AS revision, d.state, r.state AS rollout_state \
         FROM rollout_devices d JOIN rollouts r ON r.proposal_id = d.proposal_id \
         WHERE d.device_id = $1 AND d.state IN ('sent', 'accepted', 'installed', 'failed') \
         AND r.state IN ('rolling_out', 'paused')",
    )
    .bind(device)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let state: String = r.try_get("state")?;
            let rollout_state: String = r.try_get("rollout_state")?;
            Ok(Unconfirmed {
                proposal: r.try_get("proposal_id")?,
                revision: r.try_get::<i64, _>("revision")? as u32,
                state: DeviceState::parse(&state)
                    .ok_or_else(|| corrupt("rollout_devices", format!("state {state:?}")))?,
                rolling_out: rollout_state == "rolling_out",
            })
        })
        .collect()
}

/// Devices that run the aborted change and have no revert command yet.
pub(crate) async fn owed_revert(conn: &mut AnyConnection, id: i64) -> Result<Vec<String>, RolloutError> {
    let rows = sqlx::query(
        "SELECT device_id FROM rollout_devices WHERE proposal_id = $1 AND state IN ('installed', 'confirmed') \
         AND revert_seq IS NULL ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get("device_id")?)).collect()
}

/// Records the revert command `seq` for a device; false if one was already recorded.
pub(crate) async fn claim_revert(
    conn: &mut AnyConnection,
    id: i64,
    device: &str,
    seq: i64,
    now: i64,
) -> Result<bool, RolloutError> {
    let r = sqlx::query(
        "UPDATE rollout_devices SET revert_seq = $1, revert_at = $2 WHERE proposal_id = $3 AND device_id = $4 \
         AND revert_seq IS NULL",
    )
    .bind(seq)
    .bind(now)
    .bind(id)
    .bind(device)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Forgets a revert command the transport refused (it never left), so a later tick sends anew.
pub(crate) async fn unclaim_revert(
    conn: &mut AnyConnection,
    id: i64,
    device: &str,
    seq: i64,
) -> Result<(), RolloutError> {
    sqlx::query(
        "UPDATE rollout_devices SET revert_seq = NULL, revert_at = NULL WHERE proposal_id = $1 AND device_id = $2 \
         AND revert_seq = $3",
    )
    .bind(id)
    .bind(device)
    .bind(seq)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that `device` refused the revert command of an aborted rollout, in every aborted
/// rollout that sent it one and has no answer yet (a command refusal names no manifest); how
/// many rows it marked.
pub(crate) async fn revert_refused(conn: &mut AnyConnection, device: &str, reason: &str) -> Result<u64, RolloutError> {
    let done = sqlx::query(
        "UPDATE rollout_devices SET revert_refused = $1 WHERE device_id = $2 AND revert_seq IS NOT NULL \
         AND revert_refused IS NULL AND state IN ('installed', 'confirmed') \
         AND proposal_id IN (SELECT proposal_id FROM rollouts WHERE state = 'aborted')",
    )
    .bind(reason)
    .bind(device)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Per wave, state and detail: how many, how many revert commands, first send, last change.
pub(crate) struct StatusRow {
    pub wave: u32,
    pub state: DeviceState,
    pub detail: Option<String>,
    /// Why the revert command was refused, if it was.
    pub revert_refused: Option<String>,
    pub n: u32,
    pub reverts: u32,
    pub first_sent: Option<i64>,
    pub last_change: i64,
}

pub(crate) async fn status_rows(conn: &mut AnyConnection, id: i64) -> Result<Vec<StatusRow>, RolloutError> {
    let rows = sqlx::query(
        "SELECT CAST(wave AS BIGINT) AS wave, state, detail, revert_refused, COUNT(*) AS n, \
         COUNT(revert_seq) AS reverts, MIN(sent_at) AS first_sent, MAX(updated_at) AS last_change \
         FROM rollout_devices WHERE proposal_id = $1 \
         GROUP BY wave, state, detail, revert_refused ORDER BY wave, state, detail, revert_refused",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StatusRow {
                wave: r.try_get::<i64, _>("wave")? as u32,
                state: device_state(&r.try_get::<String, _>("state")?)?,
                detail: r.try_get("detail")?,
                revert_refused: r.try_get("revert_refused")?,
                n: r.try_get::<i64, _>("n")? as u32,
                reverts: r.try_get::<i64, _>("reverts")? as u32,
                first_sent: r.try_get("first_sent")?,
                last_change: r.try_get("last_change")?,
            })
        })
        .collect()
}
