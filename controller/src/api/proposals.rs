//! Proposal routes.

use super::auth::Caller;
use super::error::AppError;
use crate::server::AppState;
use crate::users::User;
use crate::workflow::{DecisionRequest, ProposalView, Spec, State as ProposalState, WorkflowError};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A JSON body whose rejection (malformed JSON, wrong fields) is a 400 naming the problem.
pub(super) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, AppError> {
    b.map(|Json(v)| v).map_err(|e| AppError::new(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text())))
}

pub(super) async fn propose(
    State(s): State<AppState>,
    caller: Caller,
    spec: Result<Json<Spec>, JsonRejection>,
) -> Result<(StatusCode, Json<ProposalView>), AppError> {
    let user = caller.require(&["requester"])?;
    let view = s.wf.propose(user, body(spec)?).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

pub(super) async fn list(
    State(s): State<AppState>,
    _caller: Caller,
    q: Query<ListQuery>,
) -> Result<Json<Vec<ProposalView>>, AppError> {
    let state = match &q.state {
        Some(name) => Some(ProposalState::parse(name).ok_or_else(|| {
            AppError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown state {name:?}: one of {}", ProposalState::ALL.map(ProposalState::name).join(", ")),
            )
        })?),
        None => None,
    };
    Ok(Json(s.wf.list(state, q.limit.unwrap_or(50).clamp(1, 500)).await?))
}

pub(super) async fn show(
    State(s): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<ProposalView>, AppError> {
    Ok(Json(s.wf.view(id).await?))
}

pub(super) async fn decide(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    req: Result<Json<DecisionRequest>, JsonRejection>,
) -> Result<Json<ProposalView>, AppError> {
    let user = caller.require(&["approver", "expert", "security", "break_glass"])?;
    Ok(Json(s.wf.decide(user, id, body(req)?).await?))
}

pub(super) async fn edit(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    spec: Result<Json<Spec>, JsonRejection>,
) -> Result<Json<ProposalView>, AppError> {
    let user = caller.require(&["requester", "approver", "expert", "security", "break_glass"])?;
    Ok(Json(s.wf.edit(user, id, body(spec)?).await?))
}

pub(super) async fn explain(
    State(s): State<AppState>,
    _caller: Caller,
    spec: Result<Json<Spec>, JsonRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    let (decision, preview) = s.wf.explain(&body(spec)?).await?;
    Ok(Json(serde_json::json!({ "decision": decision, "preview": preview })))
}

/// One approver queue: a pool and a proposal kind.
#[derive(Debug, Serialize)]
pub struct Queue {
    /// The pool.
    pub pool: String,
    /// The proposal kind.
    pub kind: String,
    /// Who is on call.
    pub on_call: Option<String>,
    /// Waiting proposals, oldest first.
    pub items: Vec<QueueItem>,
}

/// A waiting proposal in a queue.
#[derive(Debug, Serialize)]
pub struct QueueItem {
    /// Proposal id.
    pub id: i64,
    /// The action in one sentence.
    pub action: String,
    /// Tier.
    pub tier: String,
    /// Milliseconds since it was proposed.
    pub age_ms: i64,
    /// When the lane's timeout fires (escalation or expiry), unix ms.
    pub due_at: Option<i64>,
    /// Milliseconds left before then (negative: overdue).
    pub sla_left_ms: Option<i64>,
    /// Approvals so far and needed.
    pub quorum: (u8, u8),
    /// Whether the caller requested it (and so cannot approve it).
    pub own: bool,
}

pub(super) async fn queue(State(s): State<AppState>, caller: Caller) -> Result<Json<Vec<Queue>>, AppError> {
    Ok(Json(queues(&s, &caller.0).await?))
}

/// `user`'s queues: one per pool they are in and proposal kind, oldest first (the API's
/// `/api/queue` and the web UI's queue page).
pub async fn queues(s: &AppState, user: &User) -> Result<Vec<Queue>, WorkflowError> {
    let now = s.wf.clock.now_ms();
    let waiting = s.wf.list(Some(ProposalState::AwaitingApproval), 500).await?;
    let mine: Vec<&String> =
        s.wf.policy.pools.iter().filter(|(_, p)| p.members.contains(&user.name)).map(|(n, _)| n).collect();
    let mut queues: BTreeMap<(String, String), Queue> = BTreeMap::new();
    for v in waiting.iter().rev() {
        for pool in v.routed_to.iter().filter(|p| mine.contains(p)) {
            let q = queues.entry((pool.clone(), v.kind.to_string())).or_insert_with(|| Queue {
                pool: pool.clone(),
                kind: v.kind.to_string(),
                on_call: v.on_call.get(pool).cloned(),
                items: Vec::new(),
            });
            q.items.push(QueueItem {
                id: v.id,
                action: v.action.clone(),
                tier: v.tier.to_string(),
                age_ms: now - v.created_at,
                due_at: v.due_at,
                sla_left_ms: v.due_at.map(|d| d - now),
                quorum: (v.quorum.have, v.quorum.needed),
                own: v.requester == user.name,
            });
        }
    }
    Ok(queues.into_values().collect())
}
