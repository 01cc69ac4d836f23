//! Firmware artifacts: upload (raw bytes, streamed to disk) and list.

use super::auth::Caller;
use super::error::AppError;
use crate::artifacts::{Artifact, ArtifactError};
use crate::server::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use http_body_util::BodyExt as _;

impl From<ArtifactError> for AppError {
    fn from(e: ArtifactError) -> Self {
        match e {
            ArtifactError::TooLarge { .. } => AppError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
            ArtifactError::Empty => AppError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            ArtifactError::Io { .. } => AppError::internal(e),
        }
    }
}

/// `POST /api/artifacts`: the body is the image. Streams it to a temporary file, hashing it,
/// and refuses it (413) as soon as it passes the limit, or at once if its Content-Length does.
pub(super) async fn upload(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Artifact>), AppError> {
    caller.require(&["admin", "requester"])?;
    let limit = s.artifacts.max_bytes();
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ArtifactError::TooLarge { limit }.into());
    }
    let mut upload = s.artifacts.upload()?;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| AppError::new(StatusCode::BAD_REQUEST, format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            upload.write(&data).await?;
        }
    }
    let artifact = upload.finish().await?;
    let mut tx = s.wf.store.pool().begin().await?;
    let entry = serde_json::json!({ "sha256": artifact.sha256, "size": artifact.size });
    s.wf.record(&mut tx, &caller.0.name, "artifact_uploaded", None, entry).await?;
    tx.commit().await?;
    tracing::info!(sha256 = %artifact.sha256, size = artifact.size, by = %caller.0.name, "artifact stored");
    Ok((StatusCode::CREATED, Json(artifact)))
}

/// `GET /api/artifacts`: every stored artifact, newest first.
pub(super) async fn list(State(s): State<AppState>, _caller: Caller) -> Result<Json<Vec<Artifact>>, AppError> {
    Ok(Json(s.artifacts.list().await?))
}
