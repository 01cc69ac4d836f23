//! Rows: proposals, revisions, approvals, timers, tasks. Every writer takes the caller's
//! connection so it runs inside the caller's transaction.

use super::{State, WorkflowError};
use crate::policy::Kind;
use crate::store::corrupt;
use airlock_proto::Tier;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// A proposal row.
#[derive(Clone, Debug)]
pub(crate) struct ProposalRow {
    pub id: i64,
    pub kind: Kind,
    pub title: String,
    pub requester: String,
    pub revision: u32,
    pub state: State,
    pub tier: Tier,
    pub break_glass: bool,
    pub escalation_level: u32,
    pub created_at: i64,
    pub updated_at: i64,
    pub decided_at: Option<i64>,
}

/// A revision row.
#[derive(Clone, Debug)]
pub(crate) struct RevisionRow {
    pub revision: u32,
    pub created_at: i64,
    pub created_by: String,
    pub spec: String,
    pub cohort: Vec<String>,
    pub fleet_size: u32,
    pub decision: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub release_sig: Option<String>,
    pub signed_at: Option<i64>,
}

/// An approval row.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ApprovalRow {
    /// Who.
    pub approver: String,
    /// Their key, hex.
    pub public_key: String,
    /// `approve` or `reject`.
    pub decision: String,
    /// Ed25519 over the approval statement, hex.
    pub signature: String,
    /// Their reason.
    pub reason: String,
    /// Milliseconds spent on the card (web UI).
    pub card_ms: Option<i64>,
    /// Whether the diff was opened (web UI).
    pub diff_opened: Option<bool>,
    /// When, unix ms.
    pub at: i64,
    /// Voided by a material edit.
    pub voided: bool,
}

fn tier_of(s: &str) -> Result<Tier, crate::store::StoreError> {
    crate::policy::model::tier_by_name(s).ok_or_else(|| corrupt("proposals", format!("tier {s:?}")))
}

fn proposal_from(row: &AnyRow) -> Result<ProposalRow, WorkflowError> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let tier: String = row.try_get("tier")?;
    Ok(ProposalRow {
        id: row.try_get("id")?,
        kind: Kind::parse(&kind).ok_or_else(|| corrupt("proposals", format!("kind {kind:?}")))?,
        title: row.try_get("title")?,
        requester: row.try_get("requester")?,
        revision: row.try_get::<i64, _>("revision")? as u32,
        state: State::parse(&state).ok_or_else(|| corrupt("proposals", format!("state {state:?}")))?,
        tier: tier_of(&tier)?,
        break_glass: row.try_get::<i64, _>("break_glass")? != 0,
        escalation_level: row.try_get::<i64, _>("escalation_level")? as u32,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        decided_at: row.try_get("decided_at")?,
    })
}

/// `SELECT` of every proposal column; a macro so each query stays a compile-time literal.
macro_rules! select_proposals {
    ($rest:literal) => {
        concat!(
            "SELECT id, kind, title, requester, CAST(revision AS BIGINT) AS revision, state, tier, ",
            "CAST(CAST(break_glass AS INTEGER) AS BIGINT) AS break_glass, ",
            "CAST(escalation_level AS BIGINT) AS escalation_level, created_at, updated_at, decided_at FROM proposals ",
            $rest
        )
    };
}

pub(crate) async fn proposal(conn: &mut AnyConnection, id: i64) -> Result<ProposalRow, WorkflowError> {
    let row = sqlx::query(select_proposals!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(WorkflowError::NotFound(id))?;
    proposal_from(&row)
}

pub(crate) async fn proposals(
    conn: &mut AnyConnection,
    state: Option<State>,
    limit: i64,
) -> Result<Vec<ProposalRow>, WorkflowError> {
    let rows = match state {
        Some(s) => {
            sqlx::query(select_proposals!("WHERE state = $1 ORDER BY id DESC LIMIT $2"))
                .bind(s.name())
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?
        }
        None => sqlx::query(select_proposals!("ORDER BY id DESC LIMIT $1")).bind(limit).fetch_all(&mut *conn).await?,
    };
    rows.iter().map(proposal_from).collect()
}

/// Inserts a proposal and returns its id.
pub(crate) async fn insert_proposal(conn: &mut AnyConnection, p: &ProposalRow) -> Result<i64, WorkflowError> {
    let row = sqlx::query(
        "INSERT INTO proposals (kind, title, requester, revision, state, tier, break_glass, escalation_level, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(p.kind.name())
    .bind(&p.title)
    .bind(&p.requester)
    .bind(i64::from(p.revision))
    .bind(p.state.name())
    .bind(p.tier.name())
    .bind(p.break_glass)
    .bind(i64::from(p.escalation_level))
    .bind(p.created_at)
    .bind(p.updated_at)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get(0)?)
}

/// Writes the mutable fields of a proposal.
pub(crate) async fn update_proposal(conn: &mut AnyConnection, p: &ProposalRow) -> Result<(), WorkflowError> {
    sqlx::query(
        "UPDATE proposals SET title = $1, revision = $2, state = $3, tier = $4, break_glass = $5, escalation_level = $6, \
         updated_at = $7, decided_at = $8 WHERE id = $9",
    )
    .bind(&p.title)
    .bind(i64::from(p.revision))
    .bind(p.state.name())
    .bind(p.tier.name())
    .bind(p.break_glass)
    .bind(i64::from(p.escalation_level))
    .bind(p.updated_at)
    .bind(p.decided_at)
    .bind(p.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn insert_revision(conn: &mut AnyConnection, id: i64, r: &RevisionRow) -> Result<(), WorkflowError> {
    let cohort = serde_json::to_string(&r.cohort).map_err(|e| corrupt("revisions", e))?;
    sqlx::query(
        "INSERT INTO revisions (proposal_id, revision, created_at, created_by, spec, cohort, fleet_size, decision, manifest, \
         manifest_digest, release_sig, signed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(i64::from(r.revision))
    .bind(r.created_at)
    .bind(&r.created_by)
    .bind(&r.spec)
    .bind(cohort)
    .bind(i64::from(r.fleet_size))
    .bind(&r.decision)
    .bind(r.manifest.clone())
    .bind(&r.manifest_digest)
    .bind(&r.release_sig)
    .bind(r.signed_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn revision(conn: &mut AnyConnection, id: i64, revision: u32) -> Result<RevisionRow, WorkflowError> {
    let row = sqlx::query(
        "SELECT CAST(revision AS BIGINT) AS revision, created_at, created_by, spec, cohort, fleet_size, decision, manifest, \
         manifest_digest, release_sig, signed_at FROM revisions WHERE proposal_id = $1 AND revision = $2",
    )
    .bind(id)
    .bind(i64::from(revision))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(WorkflowError::NotFound(id))?;
    let cohort: String = row.try_get("cohort")?;
    Ok(RevisionRow {
        revision: row.try_get::<i64, _>("revision")? as u32,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        spec: row.try_get("spec")?,
        cohort: serde_json::from_str(&cohort).map_err(|e| corrupt("revisions", e))?,
        fleet_size: row.try_get::<i64, _>("fleet_size")? as u32,
        decision: row.try_get("decision")?,
        manifest: row.try_get("manifest")?,
        manifest_digest: row.try_get("manifest_digest")?,
        release_sig: row.try_get("release_sig")?,
        signed_at: row.try_get("signed_at")?,
    })
}

pub(crate) async fn set_release_signature(
    conn: &mut AnyConnection,
    id: i64,
    revision: u32,
    sig: &str,
    at: i64,
) -> Result<(), WorkflowError> {
    sqlx::query("UPDATE revisions SET release_sig = $1, signed_at = $2 WHERE proposal_id = $3 AND revision = $4")
        .bind(sig)
        .bind(at)
        .bind(id)
        .bind(i64::from(revision))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn insert_approval(
    conn: &mut AnyConnection,
    id: i64,
    revision: u32,
    a: &ApprovalRow,
) -> Result<(), WorkflowError> {
    sqlx::query(
        "INSERT INTO approvals (proposal_id, revision, approver, public_key, decision, signature, reason, card_ms, diff_opened, at, voided) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id)
    .bind(i64::from(revision))
    .bind(&a.approver)
    .bind(&a.public_key)
    .bind(&a.decision)
    .bind(&a.signature)
    .bind(&a.reason)
    .bind(a.card_ms)
    .bind(a.diff_opened)
    .bind(a.at)
    .bind(a.voided)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn approvals(
    conn: &mut AnyConnection,
    id: i64,
    revision: u32,
) -> Result<Vec<ApprovalRow>, WorkflowError> {
    let rows = sqlx::query(
        "SELECT approver, public_key, decision, signature, reason, card_ms, \
         CAST(CAST(diff_opened AS INTEGER) AS BIGINT) AS diff_opened, at, CAST(CAST(voided AS INTEGER) AS BIGINT) AS voided FROM approvals \
         WHERE proposal_id = $1 AND revision = $2 ORDER BY at, approver",
    )
    .bind(id)
    .bind(i64::from(revision))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ApprovalRow {
                approver: r.try_get("approver")?,
                public_key: r.try_get("public_key")?,
                decision: r.try_get("decision")?,
                signature: r.try_get("signature")?,
                reason: r.try_get("reason")?,
                card_ms: r.try_get("card_ms")?,
                diff_opened: r.try_get::<Option<i64>, _>("diff_opened")?.map(|v| v != 0),
                at: r.try_get("at")?,
                voided: r.try_get::<i64, _>("voided")? != 0,
            })
        })
        .collect()
}

/// Marks every approval of a revision void (a material edit superseded it).
pub(crate) async fn void_approvals(conn: &mut AnyConnection, id: i64, revision: u32) -> Result<u64, WorkflowError> {
    let r = sqlx::query("UPDATE approvals SET voided = $1 WHERE proposal_id = $2 AND revision = $3")
        .bind(true)
        .bind(id)
        .bind(i64::from(revision))
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}

/// A pending timer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimerRow {
    pub id: i64,
    pub proposal_id: i64,
    pub revision: u32,
    pub level: u32,
}

pub(crate) async fn insert_timer(
    conn: &mut AnyConnection,
    id: i64,
    revision: u32,
    level: u32,
    due_at: i64,
) -> Result<(), WorkflowError> {
    sqlx::query("INSERT INTO timers (proposal_id, revision, level, due_at, fired) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(i64::from(revision))
        .bind(i64::from(level))
        .bind(due_at)
        .bind(false)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Cancels every pending timer of a proposal.
pub(crate) async fn cancel_timers(conn: &mut AnyConnection, id: i64) -> Result<(), WorkflowError> {
    sqlx::query("UPDATE timers SET fired = $1 WHERE proposal_id = $2 AND fired = $3")
        .bind(true)
        .bind(id)
        .bind(false)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The earliest due, unfired timer not in `skip`.
pub(crate) async fn next_due_timer(
    conn: &mut AnyConnection,
    now: i64,
    skip: &[i64],
) -> Result<Option<TimerRow>, WorkflowError> {
    let rows = sqlx::query(
        "SELECT id, proposal_id, CAST(revision AS BIGINT) AS revision, CAST(level AS BIGINT) AS level FROM timers \
         WHERE fired = $1 AND due_at <= $2 ORDER BY due_at, id LIMIT 20",
    )
    .bind(false)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        let id: i64 = r.try_get("id")?;
        if skip.contains(&id) {
            continue;
        }
        return Ok(Some(TimerRow {
            id,
            proposal_id: r.try_get("proposal_id")?,
            revision: r.try_get::<i64, _>("revision")? as u32,
            level: r.try_get::<i64, _>("level")? as u32,
        }));
    }
    Ok(None)
}

/// Marks a timer fired, if it still is pending; false when another replica already fired it.
pub(crate) async fn fire_timer(conn: &mut AnyConnection, timer: i64) -> Result<bool, WorkflowError> {
    let r = sqlx::query("UPDATE timers SET fired = $1 WHERE id = $2 AND fired = $3")
        .bind(true)
        .bind(timer)
        .bind(false)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The due time of the proposal's pending timer, if any.
pub(crate) async fn pending_due(conn: &mut AnyConnection, id: i64) -> Result<Option<i64>, WorkflowError> {
    let row = sqlx::query("SELECT MIN(due_at) FROM timers WHERE proposal_id = $1 AND fired = $2")
        .bind(id)
        .bind(false)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get(0)?)
}

pub(crate) async fn insert_task(
    conn: &mut AnyConnection,
    id: i64,
    kind: &str,
    pool: &str,
    at: i64,
) -> Result<(), WorkflowError> {
    sqlx::query("INSERT INTO tasks (proposal_id, kind, pool, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(kind)
        .bind(pool)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Open tasks.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TaskRow {
    /// Task id.
    pub id: i64,
    /// Proposal.
    pub proposal_id: i64,
    /// `post_review`.
    pub kind: String,
    /// Pool it is routed to.
    pub pool: String,
    /// Created, unix ms.
    pub created_at: i64,
}

pub(crate) async fn open_tasks(conn: &mut AnyConnection) -> Result<Vec<TaskRow>, WorkflowError> {
    let rows =
        sqlx::query("SELECT id, proposal_id, kind, pool, created_at FROM tasks WHERE done_at IS NULL ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(TaskRow {
                id: r.try_get("id")?,
                proposal_id: r.try_get("proposal_id")?,
                kind: r.try_get("kind")?,
                pool: r.try_get("pool")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}
