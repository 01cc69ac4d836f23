//! The HTTP client: bearer token, JSON in and out, and every non-2xx answer turned into the
//! server's own error message with its status.
//!
//! Every call returns the server's JSON as a [`Value`]: `--json` prints it as is, and the human
//! output parses it into the mirror types of [`super::types`] with [`parse`].

use super::error::CliError;
use crate::registry::Device;
use crate::workflow::{DecisionRequest, Spec};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// A client of one controller, as one user.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client of the controller at `base` (`http://host:port`), authenticating with `token`.
    pub fn new(base: &str, token: Option<&str>) -> Result<Client, CliError> {
        let token = token.map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| {
            CliError::Usage(
                "no token: pass --token TOKEN or set AIRLOCK_TOKEN (a first run writes them to DATA/tokens.txt)".into(),
            )
        })?;
        let base = base.trim().trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(CliError::Usage(format!("--server {base:?}: give a URL like http://127.0.0.1:7700")));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::Transport { url: base.clone(), detail: e.to_string() })?;
        Ok(Client { http, base, token: token.to_string() })
    }

    /// The server URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.get(self.url(path))).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<Value, CliError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// `POST path` with raw bytes (`application/octet-stream`).
    pub async fn post_bytes(&self, path: &str, body: Vec<u8>) -> Result<Value, CliError> {
        let req = self.http.post(self.url(path)).header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
        self.send(req.body(body)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(CliError::Http { status: status.as_u16(), message: error_message(status, &text) });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| CliError::Reply { what: format!("HTTP {}", status.as_u16()), detail: e.to_string() })
    }

    fn transport(&self, e: reqwest::Error) -> CliError {
        if e.is_connect() {
            CliError::Unreachable { url: self.base.clone() }
        } else if e.is_timeout() {
            CliError::Transport { url: self.base.clone(), detail: "timed out".into() }
        } else {
            CliError::Transport { url: self.base.clone(), detail: e.to_string() }
        }
    }
}

/// The server's `{"error": ...}` message, or its body, or the status text.
fn error_message(status: reqwest::StatusCode, body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string));
    let text = body.trim();
    from_json
        .or_else(|| (!text.is_empty() && text.len() <= 500).then(|| text.to_string()))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_string())
}

/// Parses a server answer into a mirror type; `what` names the request in the error.
pub fn parse<T: DeserializeOwned>(what: &str, v: Value) -> Result<T, CliError> {
    serde_json::from_value(v).map_err(|e| CliError::Reply { what: what.into(), detail: e.to_string() })
}

/// `POST /api/proposals`.
pub async fn propose(c: &Client, spec: &Spec) -> Result<Value, CliError> {
    c.post("/api/proposals", spec).await
}

/// `GET /api/proposals/{id}`: the approval card.
pub async fn proposal(c: &Client, id: i64) -> Result<Value, CliError> {
    c.get(&format!("/api/proposals/{id}")).await
}

/// `GET /api/proposals?state=S&limit=N`.
pub async fn proposals(c: &Client, state: Option<&str>, limit: u32) -> Result<Value, CliError> {
    let mut path = format!("/api/proposals?limit={limit}");
    if let Some(s) = state {
        // State names are lower-case words with underscores; anything else is refused here
        // rather than sent unescaped.
        if !s.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(CliError::Usage(format!("--state {s:?}: a state name like awaiting_approval")));
        }
        path.push_str(&format!("&state={s}"));
    }
    c.get(&path).await
}

/// `POST /api/proposals/{id}/decisions`.
pub async fn decide(c: &Client, id: i64, req: &DecisionRequest) -> Result<Value, CliError> {
    c.post(&format!("/api/proposals/{id}/decisions"), req).await
}

/// `POST /api/proposals/{id}/revisions`.
pub async fn revise(c: &Client, id: i64, spec: &Spec) -> Result<Value, CliError> {
    c.post(&format!("/api/proposals/{id}/revisions"), spec).await
}

/// `POST /api/explain`.
pub async fn explain(c: &Client, spec: &Spec) -> Result<Value, CliError> {
    c.post("/api/explain", spec).await
}

/// `GET /api/queue`.
pub async fn queue(c: &Client) -> Result<Value, CliError> {
    c.get("/api/queue").await
}

/// `GET /api/devices`.
pub async fn devices(c: &Client) -> Result<Value, CliError> {
    c.get("/api/devices").await
}

/// `POST /api/devices`.
pub async fn enroll(c: &Client, d: &Device) -> Result<Value, CliError> {
    c.post("/api/devices", d).await
}

/// `POST /api/artifacts`: a firmware image.
pub async fn upload_artifact(c: &Client, bytes: Vec<u8>) -> Result<Value, CliError> {
    c.post_bytes("/api/artifacts", bytes).await
}

/// `GET /api/artifacts`.
pub async fn artifacts(c: &Client) -> Result<Value, CliError> {
    c.get("/api/artifacts").await
}

/// `GET /api/trust-root`.
pub async fn trust_root(c: &Client) -> Result<Value, CliError> {
    c.get("/api/trust-root").await
}

/// `GET /api/audit?proposal=ID&limit=N`.
pub async fn audit(c: &Client, proposal: Option<i64>, limit: Option<u32>) -> Result<Value, CliError> {
    let mut q: Vec<String> = Vec::new();
    if let Some(p) = proposal {
        q.push(format!("proposal={p}"));
    }
    if let Some(l) = limit {
        q.push(format!("limit={l}"));
    }
    let query = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
    c.get(&format!("/api/audit{query}")).await
}

/// `GET /api/audit/verify`.
pub async fn audit_verify(c: &Client) -> Result<Value, CliError> {
    c.get("/api/audit/verify").await
}

/// `GET /api/metrics`.
pub async fn metrics(c: &Client) -> Result<Value, CliError> {
    c.get("/api/metrics").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_error_message_is_preferred_over_the_status_text() {
        let s = reqwest::StatusCode::CONFLICT;
        assert_eq!(
            error_message(s, r#"{"error":"proposal 3 is signed: cannot approve"}"#),
            "proposal 3 is signed: cannot approve"
        );
        assert_eq!(error_message(s, "plain text"), "plain text");
        assert_eq!(error_message(s, ""), "Conflict");
    }

    #[test]
    fn a_client_without_a_token_is_a_usage_error() {
        let e = Client::new("http://127.0.0.1:7700", None).unwrap_err();
        assert!(matches!(&e, CliError::Usage(m) if m.contains("AIRLOCK_TOKEN")), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn a_server_that_is_not_a_url_is_a_usage_error() {
        let e = Client::new("127.0.0.1:7700", Some("t")).unwrap_err();
        assert!(matches!(&e, CliError::Usage(m) if m.contains("http://")), "{e}");
    }

    #[tokio::test]
    async fn nothing_listening_says_to_start_the_controller() {
        // Bind then drop a listener: the port is free and refuses connections.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let c = Client::new(&url, Some("t")).unwrap();
        let e = c.get("/api/me").await.unwrap_err();
        assert_eq!(e.to_string(), format!("cannot reach the controller at {url}: is 'airlock serve' running?"));
    }
}
