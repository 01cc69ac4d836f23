//! Fleet, roster, policy, audit and metrics routes. Enrolment issues the device's broker login.

use super::auth::Caller;
use super::error::AppError;
use super::proposals::body;
use crate::mqtt::credentials::{self, CONTROLLER_USER};
use crate::registry::{BrokerLogin, Device, Enrolled};
use crate::server::AppState;
use crate::users::User;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

pub(super) async fn me(caller: Caller) -> Json<User> {
    Json(caller.0)
}

pub(super) async fn devices(State(s): State<AppState>, _caller: Caller) -> Result<Json<Vec<Device>>, AppError> {
    Ok(Json(crate::registry::all(s.wf.store.pool()).await?))
}

pub(super) async fn enroll(
    State(s): State<AppState>,
    caller: Caller,
    d: Result<Json<Device>, JsonRejection>,
) -> Result<(StatusCode, Json<Enrolled>), AppError> {
    caller.require(&["admin"])?;
    let mut d = body(d)?;
    airlock_proto::check_device_id(&d.id).map_err(|_| {
        AppError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("device id {:?}: 1-64 of A-Z a-z 0-9 . _ -", d.id))
    })?;
    if crate::keys::parse_public(&d.public_key).is_none() {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "public_key: 64 hex digits of an Ed25519 public key",
        ));
    }
    let controller_user = s.delivery.as_ref().map(|dl| dl.info.controller_user.as_str());
    if d.id == CONTROLLER_USER || controller_user == Some(d.id.as_str()) {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("device id {:?} is the controller's broker login", d.id),
        ));
    }
    let password = credentials::new_password().map_err(AppError::internal)?;
    d.enrolled_at = s.wf.clock.now_ms();
    let mut tx = s.wf.store.pool().begin().await?;
    let done = crate::registry::enroll(&mut tx, &d, &credentials::hash(&password)).await?;
    let entry = serde_json::json!({
        "device": d.id, "public_key": d.public_key, "hardware": d.hardware, "environment": d.environment,
        "broker_password_rotated": done.existed, "key_changed": done.key_changed,
    });
    s.wf.record(&mut tx, &caller.0.name, "device_enrolled", None, entry).await?;
    tx.commit().await?;
    if !done.existed && s.delivery.as_ref().is_some_and(|dl| dl.info.embedded) {
        warn_past_embedded_limit(s.wf.store.pool()).await?;
    }
    let device = crate::registry::get(s.wf.store.pool(), &d.id).await?.unwrap_or(d);
    let mqtt = BrokerLogin {
        url: s.delivery.as_ref().map(|dl| dl.info.url.clone()),
        embedded: s.delivery.as_ref().is_some_and(|dl| dl.info.embedded),
        username: device.id.clone(),
        password,
    };
    let enrolled = Enrolled {
        device,
        mqtt,
        rotated: done.existed,
        trust_root_version: s.wf.trust.root.version,
        trust_root_hex: hex::encode(&s.wf.trust.bytes),
    };
    let status = if done.existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(enrolled)))
}

pub(super) async fn users(State(s): State<AppState>, caller: Caller) -> Result<Json<Vec<User>>, AppError> {
    caller.require(&["admin"])?;
    Ok(Json(crate::users::all(s.wf.store.pool()).await?))
}

pub(super) async fn trust_root(State(s): State<AppState>, _caller: Caller) -> Json<serde_json::Value> {
    let t = &s.wf.trust;
    Json(serde_json::json!({
        "version": t.root.version,
        "expires_at": t.root.expires_at,
        "root_threshold": t.root.root_threshold,
        "root_keys": t.root.root_keys.iter().map(|k| hex::encode(k.0)).collect::<Vec<_>>(),
        "release_keys": t.root.release_keys.iter().map(|k| hex::encode(k.0)).collect::<Vec<_>>(),
        "approvers": t.root.approvers.iter().map(|a| serde_json::json!({ "key": hex::encode(a.key.0), "roles": a.roles.0 })).collect::<Vec<_>>(),
        "bytes_hex": hex::encode(&t.bytes),
    }))
}

pub(super) async fn policy(State(s): State<AppState>, _caller: Caller) -> Json<crate::policy::Policy> {
    Json((*s.wf.policy).clone())
}

#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    proposal: Option<i64>,
    limit: Option<i64>,
}

pub(super) async fn audit_log(
    State(s): State<AppState>,
    _caller: Caller,
    q: Query<AuditQuery>,
) -> Result<impl IntoResponse, AppError> {
    let entries =
        crate::audit::entries(s.wf.store.pool(), q.proposal, q.limit.unwrap_or(200).clamp(1, 10_000) as u32).await?;
    Ok(Json(entries))
}

pub(super) async fn audit_verify(State(s): State<AppState>, _caller: Caller) -> Result<impl IntoResponse, AppError> {
    let r = crate::audit::verify(s.wf.store.pool(), &s.wf.audit_key()).await?;
    Ok(Json(serde_json::json!({
        "ok": r.is_ok(),
        "entries": r.entries,
        "checkpoints": r.checkpoints,
        "head": r.head.as_ref().map(|(seq, hash)| serde_json::json!({ "seq": seq, "hash": hash })),
        "problems": r.problems.iter().map(|p| serde_json::json!({ "seq": p.seq(), "problem": p.to_string() })).collect::<Vec<_>>(),
    })))
}

pub(super) async fn metrics(
    State(s): State<AppState>,
    _caller: Caller,
) -> Result<Json<crate::metrics::Metrics>, AppError> {
    Ok(Json(crate::metrics::compute(s.wf.store.pool()).await?))
}

/// Warns once per process when the embedded broker has more devices than it carries well. Until
/// then each enrolment looks at most that many index entries past the first; after, nothing.
async fn warn_past_embedded_limit(pool: &sqlx::AnyPool) -> Result<(), AppError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    if WARNED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let past: Option<String> = sqlx::query_scalar("SELECT id FROM devices ORDER BY id LIMIT 1 OFFSET $1")
        .bind(crate::mqtt::EMBEDDED_BROKER_DEVICES as i64)
        .fetch_optional(pool)
        .await
        .map_err(AppError::internal)?;
    if past.is_some() && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            limit = crate::mqtt::EMBEDDED_BROKER_DEVICES,
            "more devices than the embedded broker carries well: run Mosquitto (--mqtt-url, deploy/mosquitto; see docs/benchmarks.md)"
        );
    }
    Ok(())
}

pub(super) async fn prometheus(State(s): State<AppState>, _caller: Caller) -> Result<impl IntoResponse, AppError> {
    let m = crate::metrics::compute(s.wf.store.pool()).await?;
    let mut text = m.prometheus();
    if let Some(d) = &s.delivery {
        // What the MQTT bus did and refused (`chunk_sent`, `report_dropped_replay`, ...).
        text.push_str("# HELP airlock_mqtt_total MQTT bus counters, by event\n# TYPE airlock_mqtt_total counter\n");
        for (counter, n) in d.bus.stats() {
            text.push_str(&format!("airlock_mqtt_total{{event=\"{counter}\"}} {n}\n"));
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

pub(super) async fn tasks(State(s): State<AppState>, _caller: Caller) -> Result<impl IntoResponse, AppError> {
    Ok(Json(s.wf.open_tasks().await?))
}
