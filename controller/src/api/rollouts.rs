//! Rollout routes: status per wave, resume after a pause, abort.

use super::auth::Caller;
use super::error::AppError;
use super::proposals::body;
use crate::rollout::{RolloutError, RolloutStatus};
use crate::server::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

/// Why a rollout step is taken.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Reason {
    reason: String,
}

impl From<RolloutError> for AppError {
    fn from(e: RolloutError) -> Self {
        let status = match &e {
            RolloutError::NotFound(_) => StatusCode::NOT_FOUND,
            RolloutError::WrongState { .. } | RolloutError::Unreleasable { .. } => StatusCode::CONFLICT,
            RolloutError::Forbidden { .. } => StatusCode::FORBIDDEN,
            RolloutError::NoReason(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => return AppError::internal(e),
        };
        AppError::new(status, e.to_string())
    }
}

fn engine(s: &AppState) -> Result<&crate::rollout::Engine<crate::mqtt::bus::Bus>, AppError> {
    s.rollouts
        .as_deref()
        .ok_or_else(|| AppError::new(StatusCode::CONFLICT, "no rollouts: this controller runs without an MQTT broker"))
}

pub(super) async fn status(
    State(s): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<RolloutStatus>, AppError> {
    Ok(Json(engine(&s)?.status(id).await?))
}

pub(super) async fn resume(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    r: Result<Json<Reason>, JsonRejection>,
) -> Result<Json<RolloutStatus>, AppError> {
    let r = body(r)?;
    Ok(Json(engine(&s)?.resume(&caller.0, id, &r.reason).await?))
}

pub(super) async fn abort(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    r: Result<Json<Reason>, JsonRejection>,
) -> Result<Json<RolloutStatus>, AppError> {
    let r = body(r)?;
    Ok(Json(engine(&s)?.abort(&caller.0, id, &r.reason).await?))
}
