//! Signing in and out, the session cookie, and the rules that keep it from being used
//! cross-site.
//!
//! The cookie holds the user's bearer token (the same credential the CLI uses) and is
//! `HttpOnly` (scripts never read it) and `SameSite=Strict` (the browser never sends it on a
//! request another site starts). State-changing requests are the API's own routes, called by
//! the card's script with the cookie: [`check_script_request`] also demands the custom header
//! [`SCRIPT_HEADER`], which a cross-origin page cannot send without a CORS preflight this server
//! never grants, and refuses any `Origin` or `Sec-Fetch-Site` that is not this origin.

use super::pages::{page, Page};
use crate::server::AppState;
use crate::users::User;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "airlock_session";

/// The header the web UI's scripts send with every API call they make.
pub const SCRIPT_HEADER: &str = "x-airlock-web";

/// The session token from the `Cookie` header, if any.
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Refuses a cookie-authenticated request unless it is one of the web UI's own script calls
/// from this origin.
pub fn check_script_request(headers: &HeaderMap) -> Result<(), String> {
    if headers.get(SCRIPT_HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
        return Err(format!(
            "a request authenticated by the session cookie must carry the {SCRIPT_HEADER}: 1 header \
             (sent by the web UI's own scripts); use Authorization: Bearer <token> otherwise"
        ));
    }
    check_same_origin(headers)
}

/// Refuses a request whose `Origin` or `Sec-Fetch-Site` names another site.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return Err(format!("cross-site request refused (Sec-Fetch-Site: {site})"));
        }
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let bare = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        if host.is_empty() || bare != Some(host) {
            return Err(format!("cross-site request refused (Origin {origin:?} is not this server, {host:?})"));
        }
    }
    Ok(())
}

/// The signed-in user of a page request; anyone else is sent to the sign-in page.
#[derive(Debug, Clone)]
pub struct WebUser(pub User);

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = token(&parts.headers) else {
            return Err(Redirect::to("/ui/sign-in").into_response());
        };
        match crate::users::by_token(state.wf.store.pool(), &token).await {
            Ok(Some(user)) => Ok(WebUser(user)),
            Ok(None) => Err((
                StatusCode::SEE_OTHER,
                [(LOCATION, HeaderValue::from_static("/ui/sign-in?expired=1")), (SET_COOKIE, clear_cookie())],
            )
                .into_response()),
            Err(e) => Err(super::pages::internal(e)),
        }
    }
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("airlock_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// `?expired=1` after a revoked token.
#[derive(Debug, Deserialize)]
pub(super) struct SignInQuery {
    expired: Option<u8>,
}

pub(super) async fn sign_in_page(q: axum::extract::Query<SignInQuery>) -> Response {
    let error = q.expired.map(|_| "Your session's token is no longer valid: sign in again.".to_string());
    sign_in_form(StatusCode::OK, error)
}

fn sign_in_form(status: StatusCode, error: Option<String>) -> Response {
    let ctx = minijinja::context! { error => error };
    (status, page(Page::SignIn, None, ctx)).into_response()
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub(super) struct SignIn {
    token: String,
}

pub(super) async fn sign_in(State(s): State<AppState>, headers: HeaderMap, form: Form<SignIn>) -> Response {
    if let Err(e) = check_same_origin(&headers) {
        return sign_in_form(StatusCode::FORBIDDEN, Some(e));
    }
    let token = form.token.trim();
    if token.is_empty() {
        return sign_in_form(StatusCode::BAD_REQUEST, Some("Paste your token (it starts with alk_).".into()));
    }
    if token.contains(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-') {
        return sign_in_form(
            StatusCode::BAD_REQUEST,
            Some("That is not a token: tokens are letters, digits, _ and - (alk_ followed by 48 hex digits).".into()),
        );
    }
    match crate::users::by_token(s.wf.store.pool(), token).await {
        Ok(Some(_)) => {
            let cookie = format!("{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/");
            match HeaderValue::from_str(&cookie) {
                Ok(c) => (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static("/ui/")), (SET_COOKIE, c)])
                    .into_response(),
                Err(e) => super::pages::internal(e),
            }
        }
        Ok(None) => sign_in_form(
            StatusCode::UNAUTHORIZED,
            Some("Unknown token: no user has it. Check tokens.txt in the data directory, or ask an admin.".into()),
        ),
        Err(e) => super::pages::internal(e),
    }
}

pub(super) async fn sign_out(headers: HeaderMap) -> Response {
    if let Err(e) = check_same_origin(&headers) {
        return (StatusCode::FORBIDDEN, e).into_response();
    }
    (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static("/ui/sign-in")), (SET_COOKIE, clear_cookie())])
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_session_token_is_found_among_other_cookies() {
        let h = headers(&[("cookie", "a=b; airlock_session=alk_123 ; c=d")]);
        assert_eq!(token(&h).as_deref(), Some("alk_123"));
        assert_eq!(token(&headers(&[("cookie", "airlock_sessionx=alk_1")])), None);
        assert_eq!(token(&headers(&[("cookie", "airlock_session=")])), None);
    }

    #[test]
    fn a_script_request_needs_the_header_and_this_origin() {
        let ok = headers(&[("x-airlock-web", "1"), ("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]);
        assert_eq!(check_script_request(&ok), Ok(()));
        let no_header = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]);
        assert!(check_script_request(&no_header).unwrap_err().contains("x-airlock-web: 1"));
        let other = headers(&[("x-airlock-web", "1"), ("host", "127.0.0.1:8080"), ("origin", "http://evil.example")]);
        assert!(check_script_request(&other).unwrap_err().contains("evil.example"));
        let cross = headers(&[("x-airlock-web", "1"), ("sec-fetch-site", "cross-site")]);
        assert!(check_script_request(&cross).unwrap_err().contains("cross-site"));
    }
}
