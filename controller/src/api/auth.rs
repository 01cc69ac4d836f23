//! Bearer-token authentication and role checks.

use super::error::AppError;
use crate::server::AppState;
use crate::users::User;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| AppError::unauthorized("missing Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AppError::unauthorized("Authorization header must be `Bearer <token>`"))?;
        let user = crate::users::by_token(state.wf.store.pool(), token)
            .await?
            .ok_or_else(|| AppError::unauthorized("unknown token"))?;
        Ok(Caller(user))
    }
}

impl Caller {
    /// Refuses unless the caller holds one of `roles`.
    pub fn require(&self, roles: &[&str]) -> Result<&User, AppError> {
        if roles.iter().any(|r| self.0.has(r)) {
            Ok(&self.0)
        } else {
            Err(AppError::forbidden(format!("{} needs role {} for this", self.0.name, roles.join(" or "))))
        }
    }
}
