//! The API on a real port: a first run in a temp data directory with the shipped policy.

use super::openapi::ROUTES;
use crate::server::{self, Config};
use crate::workflow::Clock;
use airlock_proto::build::approve;
use airlock_proto::Decision;
use serde_json::{json, Value};
use std::collections::BTreeMap;

struct Api {
    base: String,
    tokens: BTreeMap<String, String>,
    data: std::path::PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// 2026-11-25 (a Wednesday) 12:00 UTC.
const T0: i64 = 1_795_608_000_000;

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().join("data"),
        policies: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        ..Config::default()
    };
    let (state, first) = server::start(&config, Clock::fixed(T0)).await.unwrap();
    let tokens = first.users.iter().map(|(u, t)| (u.name.clone(), t.clone())).collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::run(listener, state, async {
        let _ = rx.await;
    }));
    Api { base, tokens, data: config.data_dir, http: reqwest::Client::new(), _dir: dir, stop: Some(stop) }
}

impl Api {
    async fn call(&self, method: &str, path: &str, who: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "post" => self.http.post(&url),
            _ => self.http.get(&url),
        };
        if let Some(w) = who {
            req = req.bearer_auth(&self.tokens[w]);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn enroll(&self, n: usize, environment: &str) {
        for i in 0..n {
            let key = crate::keys::public_hex(&ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]));
            let d = json!({ "id": format!("{environment}-{i:03}"), "public_key": key, "hardware": "gw-m4", "region": "eu",
                            "environment": environment, "firmware": "2.3.0", "tags": [], "enrolled_at": 0 });
            let (status, body) = self.call("post", "/api/devices", Some("admin"), Some(d)).await;
            assert_eq!(status, 201, "{body}");
        }
    }

    fn sign(&self, who: &str, card: &Value, decision: Decision) -> Value {
        let key = crate::keys::read(&self.data.join("keys/users").join(format!("{who}.key"))).unwrap();
        let digest: [u8; 32] = hex::decode(card["manifest_digest"].as_str().unwrap()).unwrap().try_into().unwrap();
        let a = approve(airlock_proto::Digest::from(digest), decision, &key);
        json!({ "revision": card["revision"], "decision": format!("{decision:?}"), "signature": hex::encode(a.signature.0), "reason": "looked at it" })
    }
}

fn security_fix() -> Value {
    json!({
        "kind": "firmware", "title": "Patch CVE in the TLS stack", "reason": "because the TLS stack leaks keys",
        "cohort": { "environment": ["production"], "ids": ["production-001", "production-002"] },
        "firmware": { "version": "2.4.1", "hardware": "gw-m4", "security_counter": 2, "image_sha256": "ab".repeat(32), "image_size": 4096 },
        "security": true
    })
}

#[tokio::test]
async fn every_documented_route_exists_and_needs_the_token_it_says() {
    let api = api().await;
    for r in ROUTES {
        let path = r.path.replace("{id}", "1");
        let (status, body) = api.call(r.method, &path, None, None).await;
        if r.roles.is_empty() {
            assert_eq!(status, 200, "{} {path}: {body}", r.method);
        } else {
            assert_eq!(status, 401, "{} {path} without a token: {body}", r.method);
            assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
        }
    }
    let (_, doc) = api.call("get", "/openapi.json", None, None).await;
    assert_eq!(
        doc["paths"].as_object().unwrap().len(),
        ROUTES.iter().map(|r| r.path).collect::<std::collections::BTreeSet<_>>().len()
    );
}

#[tokio::test]
async fn an_unknown_token_and_a_wrong_role_are_refused() {
    let mut api = api().await;
    api.tokens.insert("nobody".into(), "alk_not-a-token".into());
    let (status, body) = api.call("get", "/api/me", Some("nobody"), None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unknown token")));
    let (status, body) = api.call("get", "/api/users", Some("rita"), None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = api.call("post", "/api/proposals", Some("alice"), Some(security_fix())).await;
    assert_eq!(status, 403, "an approver without the requester role proposes: {body}");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_problem() {
    let api = api().await;
    api.enroll(3, "production").await;
    let resp = api
        .http
        .post(format!("{}/api/proposals", api.base))
        .bearer_auth(&api.tokens["rita"])
        .header("content-type", "application/json")
        .body("{ not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let mut spec = security_fix();
    spec["firmware"]["version"] = json!("two");
    let (status, body) = api.call("post", "/api/proposals", Some("rita"), Some(spec)).await;
    assert_eq!(status, 422);
    assert!(body["error"].as_str().unwrap().contains("firmware.version \"two\""), "{body}");
    let mut spec = security_fix();
    spec["cohort"]["ids"] = json!(["ghost"]);
    let (status, body) = api.call("post", "/api/proposals", Some("rita"), Some(spec)).await;
    assert_eq!(status, 422);
    assert!(body["error"].as_str().unwrap().contains("unknown device ids: ghost"), "{body}");
    let (status, _) = api.call("get", "/api/proposals/999", Some("rita"), None).await;
    assert_eq!(status, 404);
    let (status, body) = api.call("get", "/api/proposals?state=nope", Some("rita"), None).await;
    assert_eq!(status, 400, "{body}");
    // The refusal names every state a proposal can be in, and each of them is accepted.
    let named = body["error"].as_str().unwrap();
    for state in crate::workflow::State::ALL.map(crate::workflow::State::name) {
        assert!(named.contains(state), "{state} missing from {named}");
        let (status, body) = api.call("get", &format!("/api/proposals?state={state}"), Some("rita"), None).await;
        assert_eq!(status, 200, "{state}: {body}");
    }
}

#[tokio::test]
async fn a_two_person_proposal_is_approved_over_http_and_the_requester_cannot_approve() {
    let api = api().await;
    api.enroll(5, "production").await;
    let (status, card) = api.call("post", "/api/proposals", Some("rita"), Some(security_fix())).await;
    assert_eq!(status, 201, "{card}");
    assert_eq!(card["tier"], "two_person");
    let id = card["id"].as_i64().unwrap();
    // The queue shows it to fw-oncall members, per pool and kind, with its SLA.
    let (_, queues) = api.call("get", "/api/queue", Some("alice"), None).await;
    let q = queues.as_array().unwrap().iter().find(|q| q["pool"] == "fw-oncall" && q["kind"] == "firmware").unwrap();
    assert_eq!(q["items"][0]["id"], id);
    assert!(q["items"][0]["sla_left_ms"].as_i64().unwrap() > 0);
    // Separation of duties over HTTP too: rita holds no approver role, and cannot decide.
    let (status, _) = api
        .call(
            "post",
            &format!("/api/proposals/{id}/decisions"),
            Some("rita"),
            Some(api.sign("alice", &card, Decision::Approve)),
        )
        .await;
    assert_eq!(status, 403);
    let (status, card) = api
        .call(
            "post",
            &format!("/api/proposals/{id}/decisions"),
            Some("alice"),
            Some(api.sign("alice", &card, Decision::Approve)),
        )
        .await;
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["quorum"]["have"], 1);
    let (status, body) = api
        .call(
            "post",
            &format!("/api/proposals/{id}/decisions"),
            Some("alice"),
            Some(api.sign("alice", &card, Decision::Approve)),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, card) = api
        .call(
            "post",
            &format!("/api/proposals/{id}/decisions"),
            Some("carol"),
            Some(api.sign("carol", &card, Decision::Approve)),
        )
        .await;
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["state"], "signed");
    let (_, verify) = api.call("get", "/api/audit/verify", Some("rita"), None).await;
    assert_eq!(verify["ok"], true, "{verify}");
    let (_, metrics) = api.call("get", "/api/metrics", Some("rita"), None).await;
    assert_eq!(metrics["volume_by_tier"]["two_person"], 1);
    assert_eq!(metrics["approvals"], 2);
    let resp = api.http.get(format!("{}/metrics", api.base)).bearer_auth(&api.tokens["rita"]).send().await.unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(resp.text().await.unwrap().contains("airlock_proposals{tier=\"two_person\"} 1"));
}

#[tokio::test]
async fn no_response_carries_a_secret() {
    let api = api().await;
    api.enroll(3, "production").await;
    let spec = json!({
        "kind": "config", "title": "Rotate the upload token", "reason": "because it leaked in a log",
        "cohort": { "ids": ["production-000"] },
        "config": { "version": 4, "values": { "upload_token": { "value": "tok-hunter2-xyz", "secret": true }, "interval": { "value": 30 } } }
    });
    let (status, card) = api.call("post", "/api/proposals", Some("rita"), Some(spec.clone())).await;
    assert_eq!(status, 201, "{card}");
    let id = card["id"].as_i64().unwrap();
    let mut seen = vec![card.to_string()];
    for path in [
        format!("/api/proposals/{id}"),
        "/api/proposals".into(),
        format!("/api/audit?proposal={id}"),
        "/api/queue".into(),
    ] {
        seen.push(api.call("get", &path, Some("alice"), None).await.1.to_string());
    }
    seen.push(api.call("post", "/api/explain", Some("rita"), Some(spec)).await.1.to_string());
    for s in seen {
        assert!(!s.contains("hunter2"), "secret in a response: {s}");
    }
}
