//! The HTTP API: JSON over axum, a bearer token on every route but `/healthz`, `/readyz` and
//! `/openapi.json`, roles checked per route (and separation of duties in the workflow). The web
//! UI's scripts call the same routes with its session cookie instead ([`auth`]).
//! `docs/api.md` is the reference.
//!
//! # Layout
//! - [`error`]: `AppError`, the one error type of every handler.
//! - [`auth`]: the `Caller` extractor and role checks.
//! - `health`: `/healthz` (liveness) and `/readyz` (database and broker up).
//! - `proposals`: propose, list, show, decide, edit, explain, queue.
//! - `rollouts`: rollout status per wave, resume, abort.
//! - `fleet`: devices (enrolment issues broker logins), users, TrustRoot, policy, tasks, audit,
//!   metrics.
//! - `artifacts`: firmware image upload (streamed, size-limited) and listing.
//! - [`openapi`]: the OpenAPI document, built from the same route table as the router.

mod artifacts;
pub mod auth;
pub mod error;
mod fleet;
mod health;
pub mod openapi;
mod proposals;
mod rollouts;

pub use proposals::{queues, Queue, QueueItem};

use crate::server::AppState;
use axum::routing::{get, post};
use axum::Router;

/// The API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::document))
        .route("/metrics", get(fleet::prometheus))
        .route("/api/me", get(fleet::me))
        .route("/api/proposals", post(proposals::propose).get(proposals::list))
        .route("/api/proposals/{id}", get(proposals::show))
        .route("/api/proposals/{id}/decisions", post(proposals::decide))
        .route("/api/proposals/{id}/revisions", post(proposals::edit))
        .route("/api/proposals/{id}/rollout", get(rollouts::status))
        .route("/api/proposals/{id}/rollout/resume", post(rollouts::resume))
        .route("/api/proposals/{id}/rollout/abort", post(rollouts::abort))
        .route("/api/explain", post(proposals::explain))
        .route("/api/queue", get(proposals::queue))
        .route("/api/devices", get(fleet::devices).post(fleet::enroll))
        .route("/api/artifacts", get(artifacts::list).post(artifacts::upload))
        .route("/api/users", get(fleet::users))
        .route("/api/trust-root", get(fleet::trust_root))
        .route("/api/policy", get(fleet::policy))
        .route("/api/audit", get(fleet::audit_log))
        .route("/api/audit/verify", get(fleet::audit_verify))
        .route("/api/metrics", get(fleet::metrics))
        .route("/api/tasks", get(fleet::tasks))
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
        .with_state(state)
}

#[cfg(test)]
mod storage_full_tests;
#[cfg(test)]
mod tests;
