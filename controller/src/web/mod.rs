//! The approver web UI, served by `airlock serve` under `/ui`: server-rendered pages
//! (minijinja templates in `controller/templates/`, compiled in), one small script and one
//! stylesheet (`controller/static/`, compiled in; no CDN, no build step). `docs/web-ui.md`
//! describes the pages, the signing flow and the rules against rubber-stamping.
//!
//! The approval card makes the approver see what will change and for whom before they can say
//! yes: Approve stays disabled until they have opened the diff and typed the number of affected
//! devices. Approvers sign in the browser with their own Ed25519 key (WebCrypto, imported
//! non-extractable from their key file); the private key never reaches the server.
//!
//! # Layout
//! - [`session`]: sign-in with a token, the `HttpOnly`, `SameSite=Strict` session cookie, and
//!   the same-origin rules for requests authenticated by it.
//! - `pages`: queues, history, the approval card, static files.
//! - [`manifest`]: the manifest as one line, which the card's script must reproduce from the bytes.
//! - `dashboard`: approval metrics and rollouts as charts.
//! - [`svg`]: the charts, as pure functions.
//! - `templates`: the template environment and its filters.
//! - `signing`: (tests) the browser's approval bytes against the golden vector.

mod dashboard;
pub mod manifest;
mod pages;
pub mod session;
#[cfg(test)]
mod signing;
pub mod svg;
mod templates;
#[cfg(test)]
mod tests;

use crate::server::AppState;
use axum::routing::{get, post};
use axum::Router;

/// The web UI's routes (all under `/ui`, none in the API's OpenAPI table).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ui", get(pages::home))
        .route("/ui/", get(pages::home))
        .route("/ui/sign-in", get(session::sign_in_page).post(session::sign_in))
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/queues", get(pages::queues))
        .route("/ui/proposals", get(pages::history))
        .route("/ui/proposals/{id}", get(pages::card))
        .route("/ui/dashboard", get(dashboard::dashboard))
        .route("/ui/rollouts/{id}", get(dashboard::rollout))
        .route("/ui/static/{name}", get(pages::asset))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .with_state(state)
}
