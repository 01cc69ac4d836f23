//! One error type for every handler: clear 4xx messages for bad input, a 503 saying the write
//! was not saved when the database is full or unavailable, a logged 500 for internal faults
//! (never details or a stack trace to the client).

use crate::store::Unavailable;
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

    /// 503 when the database is unavailable (full, unreachable, failing I/O): the write was
    /// rolled back and the message says so; 500 for any other database fault.
    pub fn storage(e: &sqlx::Error) -> Self {
        match crate::store::unavailable(e) {
            Some(kind) => Self::unavailable(kind, e),
            None => Self::internal(e),
        }
    }

    fn unavailable(kind: Unavailable, cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "database unavailable; request refused with 503");
        let message = match kind {
            Unavailable::Full => {
                "database or disk is full: nothing was saved; retry once space has been freed on the controller"
            }
            Unavailable::Down => "database unavailable: nothing was saved; retry later",
        };
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    fn store(e: crate::store::StoreError) -> Self {
        match e.unavailable() {
            Some(kind) => Self::unavailable(kind, e),
            None => Self::internal(e),
        }
    }

    fn audit(e: crate::audit::AuditError) -> Self {
        use crate::audit::AuditError as A;
        let kind = match &e {
            A::Db(db) => crate::store::unavailable(db),
            A::Store(s) => s.unavailable(),
            _ => None,
        };
        match kind {
            Some(kind) => Self::unavailable(kind, e),
            None => Self::internal(e),
        }
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
            W::DeviceRefusal(_) => return AppError::internal(e),
            W::Store(_) | W::Audit(_) => {
                return match e {
                    W::Store(s) => AppError::store(s),
                    W::Audit(a) => AppError::audit(a),
                    other => AppError::internal(other),
                };
            }
        };
        AppError::new(status, e.to_string())
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::store(e)
    }
}

impl From<crate::audit::AuditError> for AppError {
    fn from(e: crate::audit::AuditError) -> Self {
        AppError::audit(e)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::storage(&e)
    }
}
