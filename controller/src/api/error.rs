//! One error type for every handler: clear 4xx messages for bad input, a logged 500 for
//! internal faults (never details or a stack trace to the client).

use crate::workflow::WorkflowError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An API error.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    message: String,
}

impl AppError {
    /// An error with a status and a message naming the problem.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AppError { status, message: message.into() }
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 500, logged with its cause; the client sees only that it was internal.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error (logged on the controller)")
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

impl From<WorkflowError> for AppError {
    fn from(e: WorkflowError) -> Self {
        use WorkflowError as W;
        let status = match &e {
            W::Spec(_) | W::Selector(_) | W::BadSignature { .. } | W::BreakGlassCap(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            W::NotFound(_) => StatusCode::NOT_FOUND,
            W::Forbidden { .. } | W::SelfApproval(_) => StatusCode::FORBIDDEN,
            W::DuplicateApprover(_) | W::StaleRevision { .. } | W::WrongState { .. } => StatusCode::CONFLICT,
            W::DeviceRefusal(_) | W::Store(_) | W::Audit(_) => return AppError::internal(e),
        };
        AppError::new(status, e.to_string())
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::internal(e)
    }
}

impl From<crate::audit::AuditError> for AppError {
    fn from(e: crate::audit::AuditError) -> Self {
        AppError::internal(e)
    }
}
