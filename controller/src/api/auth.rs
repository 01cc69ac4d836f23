//! Bearer-token authentication and role checks.
//!
//! The web UI's scripts call the same routes with the session cookie instead of the header; such
//! requests must also carry the web UI's custom header and come from the same origin
//! ([`crate::web::session::check_script_request`]), so no other site can forge them.

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
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            // The web UI's session cookie, accepted only on requests its own scripts make.
            if let Some(token) = crate::web::session::token(&parts.headers) {
                crate::web::session::check_script_request(&parts.headers).map_err(AppError::forbidden)?;
                let user = crate::users::by_token(state.wf.store.pool(), &token)
                    .await?
                    .ok_or_else(|| AppError::unauthorized("session expired or token revoked: sign in again"))?;
                return Ok(Caller(user));
            }
            return Err(AppError::unauthorized("missing Authorization: Bearer <token>"));
        };
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
