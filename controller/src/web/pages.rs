//! The pages approvers read: their queues, the proposal history and the approval card.
//!
//! Pages only read. Every decision and edit the card's script makes goes to the API's own
//! routes (`POST /api/proposals/{id}/decisions`, `.../revisions`), so roles and separation of
//! duties are enforced by exactly the code the CLI meets.

use super::session::WebUser;
pub use super::templates::{error_page, internal, page, Page};
use crate::policy::Policy;
use crate::server::AppState;
use crate::users::User;
use crate::workflow::spec::Breach;
use crate::workflow::{ProposalView, State as ProposalState, WorkflowError};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use serde::Deserialize;

/// A workflow error as a page: 404 and 4xx in words, anything else a logged 500.
pub(super) fn workflow_error(me: &User, e: WorkflowError) -> Response {
    match e {
        WorkflowError::NotFound(_) => error_page(StatusCode::NOT_FOUND, Some(me), &e.to_string()),
        WorkflowError::Store(_) | WorkflowError::Audit(_) | WorkflowError::DeviceRefusal(_) => internal(e),
        other => error_page(StatusCode::UNPROCESSABLE_ENTITY, Some(me), &other.to_string()),
    }
}

pub(super) async fn home(_me: WebUser) -> Redirect {
    Redirect::to("/ui/queues")
}

pub(super) async fn queues(State(s): State<AppState>, WebUser(me): WebUser) -> Response {
    let now = s.wf.clock.now_ms();
    match crate::api::queues(&s, &me).await {
        Ok(queues) => page(Page::Queues, Some(&me), context! { queues => super::templates::ser(&queues), now => now }),
        Err(e) => workflow_error(&me, e),
    }
}

/// `?state=` filters the history.
#[derive(Debug, Deserialize)]
pub(super) struct HistoryQuery {
    state: Option<String>,
}

pub(super) async fn history(State(s): State<AppState>, WebUser(me): WebUser, q: Query<HistoryQuery>) -> Response {
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(name) => match ProposalState::parse(name) {
            Some(st) => Some(st),
            None => return error_page(StatusCode::BAD_REQUEST, Some(&me), &format!("unknown state {name:?}")),
        },
        None => None,
    };
    match s.wf.list(state, 200).await {
        Ok(list) => {
            let rows: Vec<Value> = list.iter().map(summary).collect();
            page(Page::History, Some(&me), context! { proposals => rows, state => q.state.clone() })
        }
        Err(e) => workflow_error(&me, e),
    }
}

/// One line of the history.
fn summary(v: &ProposalView) -> Value {
    context! {
        id => v.id, title => v.title.clone(), action => v.action.clone(), kind => v.kind, tier => v.tier,
        state => v.state.name(), requester => v.requester.clone(), created_at => v.created_at,
        decided_at => v.decided_at, revision => v.revision, have => v.quorum.have, needed => v.quorum.needed,
    }
}

pub(super) async fn card(State(s): State<AppState>, WebUser(me): WebUser, Path(id): Path<i64>) -> Response {
    let view = match s.wf.view(id).await {
        Ok(v) => v,
        Err(e) => return workflow_error(&me, e),
    };
    let timeline = match crate::audit::entries(s.wf.store.pool(), Some(id), 200).await {
        Ok(entries) => entries.iter().map(timeline_entry).collect::<Vec<Value>>(),
        Err(e) => return internal(e),
    };
    let ctx = card_context(&view, &me, &s.wf.policy, s.wf.clock.now_ms());
    page(Page::Card, Some(&me), context! { timeline => timeline, ..ctx })
}

/// One audit entry of the proposal's history, with the details people read.
fn timeline_entry(e: &crate::audit::StoredEntry) -> Value {
    let mut detail = Vec::new();
    for key in ["revision", "tier", "state", "reason", "breach", "wave"] {
        match e.body.get(key) {
            Some(serde_json::Value::String(v)) if !v.is_empty() => detail.push(format!("{key}: {v}")),
            Some(v @ serde_json::Value::Number(_)) => detail.push(format!("{key}: {v}")),
            _ => {}
        }
    }
    context! { seq => e.seq, at => e.at_ms, actor => e.actor.clone(), kind => e.kind.clone(), detail => detail.join("; ") }
}

/// Whether `me` gets the decision panel, and if not, why not. The server decides for real
/// (`Workflow::decide`); this only spares people a button that cannot work.
fn decision_panel(view: &ProposalView, me: &User, policy: &Policy) -> Result<(), String> {
    if view.state != ProposalState::AwaitingApproval {
        return Err(format!("This proposal is {}: there is nothing to decide.", view.state.name()));
    }
    if view.requester == me.name {
        return Err("You requested this proposal: someone else must approve it (separation of duties).".into());
    }
    if !me.is_approver() {
        return Err(format!("{} holds no approver role with a registered key.", me.name));
    }
    if !view.quorum.roles.iter().any(|r| me.has(r)) {
        return Err(format!("Deciding on this proposal needs role {}.", view.quorum.roles.join(" or ")));
    }
    if !view.routed_to.iter().any(|p| policy.pools.get(p).is_some_and(|pool| pool.members.contains(&me.name))) {
        return Err(format!(
            "This request is routed to {}; you are in none of those pools (it may reach yours if it escalates).",
            view.routed_to.join(", ")
        ));
    }
    if view.approvals.iter().any(|a| a.approver == me.name && !a.voided) {
        return Err("You have already decided on this revision.".into());
    }
    Ok(())
}

/// What the rollout plan does when things go wrong, in one sentence.
fn rollback_trigger(view: &ProposalView) -> String {
    let plan = &view.spec.rollout;
    let on_breach = match plan.on_breach {
        Breach::Abort => "abort and tell every device that took it to revert",
        Breach::Pause => "pause and wait for an approver to resume or abort",
    };
    format!(
        "A wave breaches when more than {:.0}% of its devices fail (no report within {} counts as a failure) \
         or fewer than {:.0}% confirm; on a breach the rollout will {on_breach}. A device whose health check \
         fails reverts on its own ({}).",
        plan.failure_threshold * 100.0,
        plan.device_timeout,
        plan.success_threshold * 100.0,
        view.manifest.rollback,
    )
}

fn card_context(view: &ProposalView, me: &User, policy: &Policy, now: i64) -> Value {
    let panel = decision_panel(view, me, policy);
    let spec_json = serde_json::to_string_pretty(&view.spec).unwrap_or_default();
    let alternatives: Vec<Value> = view
        .alternatives
        .iter()
        .map(|a| context! { label => a.label.clone(), spec => serde_json::to_string(&a.spec).unwrap_or_default() })
        .collect();
    let waves: Vec<String> = view.spec.rollout.waves.iter().map(|w| format!("{:.0}%", w * 100.0)).collect();
    context! {
        view => super::templates::ser(view),
        state => view.state.name(),
        count => view.manifest.cohort_size,
        manifest_summary => super::manifest::summary_of_hex(&view.manifest_hex).unwrap_or_default(),
        can_decide => panel.is_ok(),
        why_not => panel.err(),
        can_edit => matches!(view.state, ProposalState::AwaitingApproval | ProposalState::Blocked),
        spec_json => spec_json,
        alternatives => alternatives,
        waves => waves,
        rollback_trigger => rollback_trigger(view),
        age_ms => now - view.created_at,
        due_in_ms => view.due_at.map(|d| d - now),
    }
}

/// Static files, compiled in.
pub(super) async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "card.js" => (include_str!("../../static/card.js"), "text/javascript; charset=utf-8"),
        "style.css" => (include_str!("../../static/style.css"), "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, format!("no static file {name:?}")).into_response(),
    };
    ([(axum::http::header::CONTENT_TYPE, kind), (axum::http::header::CACHE_CONTROL, "no-cache")], body).into_response()
}
