//! The web UI on a real port, without a browser: sign-in, what each page shows whom, the
//! cross-site rules, and that no page carries a secret. (`controller/tests/web_e2e.rs` drives
//! the card in Chromium.)

use crate::server::{self, Config};
use crate::workflow::Clock;
use airlock_proto::build::approve;
use airlock_proto::Decision;
use serde_json::{json, Value};
use std::collections::BTreeMap;

struct Ui {
    base: String,
    host: String,
    tokens: BTreeMap<String, String>,
    data: std::path::PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Ui {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// 2026-11-25 12:00 UTC.
const T0: i64 = 1_795_608_000_000;

async fn ui() -> Ui {
    ui_with(None).await
}

/// The controller with `mqtt` (None: no delivery, no rollouts) and four production devices.
async fn ui_with(mqtt: Option<crate::mqtt::MqttConfig>) -> Ui {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().join("data"),
        policies: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        mqtt,
        ..Config::default()
    };
    let (state, first) = server::start(&config, Clock::fixed(T0)).await.unwrap();
    let tokens = first.users.iter().map(|(u, t)| (u.name.clone(), t.clone())).collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::run(listener, state, async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let ui =
        Ui { base: format!("http://{host}"), host, tokens, data: config.data_dir, http, _dir: dir, stop: Some(stop) };
    for i in 0..4 {
        let key = crate::keys::public_hex(&ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]));
        let d = json!({ "id": format!("production-{i:03}"), "public_key": key, "hardware": "gw-m4", "region": "eu",
                        "environment": "production", "firmware": "2.3.0", "tags": [], "enrolled_at": 0 });
        let resp = ui.http.post(format!("{}/api/devices", ui.base)).bearer_auth(&ui.tokens["admin"]).json(&d);
        assert_eq!(resp.send().await.unwrap().status().as_u16(), 201);
    }
    ui
}

impl Ui {
    /// A page as `who` (by the session cookie): status and body.
    async fn page(&self, who: &str, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("airlock_session={}", self.tokens[who]))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn propose(&self, spec: Value) -> i64 {
        let resp = self.http.post(format!("{}/api/proposals", self.base)).bearer_auth(&self.tokens["rita"]).json(&spec);
        let resp = resp.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    async fn card(&self, id: i64) -> Value {
        let resp = self.http.get(format!("{}/api/proposals/{id}", self.base)).bearer_auth(&self.tokens["rita"]);
        resp.send().await.unwrap().json().await.unwrap()
    }

    fn decision(&self, who: &str, card: &Value) -> Value {
        let key = crate::keys::read(&self.data.join("keys/users").join(format!("{who}.key"))).unwrap();
        let digest: [u8; 32] = hex::decode(card["manifest_digest"].as_str().unwrap()).unwrap().try_into().unwrap();
        let a = approve(airlock_proto::Digest::from(digest), Decision::Approve, &key);
        json!({ "revision": card["revision"], "decision": "Approve", "signature": hex::encode(a.signature.0),
                "reason": "read the diff", "card_ms": 42_000, "diff_opened": true })
    }

    /// A decision posted the way the card's script posts it, with extra headers.
    async fn decide_by_cookie(&self, who: &str, id: i64, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/api/proposals/{id}/decisions", self.base))
            .header("cookie", format!("airlock_session={}", self.tokens[who]))
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn firmware() -> Value {
    json!({
        "kind": "firmware", "title": "Patch CVE in the TLS stack", "reason": "because the TLS stack leaks keys",
        "cohort": { "environment": ["production"] },
        "firmware": { "version": "2.4.1", "hardware": "gw-m4", "security_counter": 2, "image_sha256": "ab".repeat(32), "image_size": 4096 },
        "security": true
    })
}

#[tokio::test]
async fn sign_in_names_a_wrong_token_and_a_right_one_sets_a_strict_http_only_cookie() {
    let ui = ui().await;
    let resp = ui.http.get(format!("{}/ui/queues", ui.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303, "signed out: to the sign-in page");
    assert_eq!(resp.headers()["location"], "/ui/sign-in");
    // A browser's form post (the token is URL-encoded; reqwest here has no `form` feature).
    let form = |t: &str| {
        let encoded: String = t
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        ui.http
            .post(format!("{}/ui/sign-in", ui.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={encoded}"))
    };
    let resp = form("alk_0000").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().get("set-cookie").is_none());
    assert!(resp.text().await.unwrap().contains("Unknown token: no user has it"));
    let resp = form("not a token <x>").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("That is not a token"));
    let resp = form(&ui.tokens["alice"]).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with(&format!("airlock_session={};", ui.tokens["alice"])), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    // Sign-in posted from another site is refused.
    let resp = form(&ui.tokens["alice"]).header("origin", "http://evil.example").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let (status, html) = ui.page("alice", "/ui/queues").await;
    assert_eq!(status, 200);
    assert!(html.contains(">alice</span>") && html.contains("Nothing is waiting"), "{html}");
}

#[tokio::test]
async fn the_requester_sees_no_approve_button_and_the_api_refuses_her_too() {
    let ui = ui().await;
    let id = ui.propose(firmware()).await;
    let (status, mine) = ui.page("rita", &format!("/ui/proposals/{id}")).await;
    assert_eq!(status, 200);
    assert!(!mine.contains("id=\"approve\""), "rita is shown an Approve button on her own proposal");
    assert!(mine.contains("someone else must approve it (separation of duties)"), "{mine}");
    let (_, theirs) = ui.page("alice", &format!("/ui/proposals/{id}")).await;
    assert!(theirs.contains("id=\"approve\" class=\"approve\" disabled"), "Approve starts disabled: {theirs}");
    assert!(theirs.contains("Install firmware 2.4.1 on 4 devices because the TLS stack leaks keys."));
    assert!(theirs.contains("data-count=\"4\""));
    let summary = super::manifest::summary_of_hex(ui.card(id).await["manifest_hex"].as_str().unwrap()).unwrap();
    assert!(summary.contains("| cohort of 4 devices,"), "{summary}");
    assert!(theirs.contains(&format!("data-summary=\"{summary}\"")), "the script compares its decoding with this");
    // The server refuses her exactly as over the API (she holds no approver role).
    let card = ui.card(id).await;
    let body = ui.decision("alice", &card);
    let same_origin = [("x-airlock-web", "1"), ("origin", &*format!("http://{}", ui.host))];
    let (status, err) = ui.decide_by_cookie("rita", id, &body, &same_origin).await;
    assert_eq!(status, 403, "{err}");
    assert!(err["error"].as_str().unwrap().contains("rita needs role"), "{err}");
    // The queue marks it as hers.
    let (_, queues) = ui.page("alice", "/ui/queues").await;
    assert!(queues.contains(&format!("href=\"/ui/proposals/{id}\"")) && queues.contains("fw-oncall"), "{queues}");
}

#[tokio::test]
async fn cookie_requests_need_the_script_header_and_this_origin_and_record_card_metrics() {
    let ui = ui().await;
    let id = ui.propose(firmware()).await;
    let card = ui.card(id).await;
    let body = ui.decision("alice", &card);
    let (status, err) = ui.decide_by_cookie("alice", id, &body, &[]).await;
    assert_eq!(status, 403, "a cookie alone (a forged form post) is refused: {err}");
    assert!(err["error"].as_str().unwrap().contains("x-airlock-web: 1"), "{err}");
    let (status, err) =
        ui.decide_by_cookie("alice", id, &body, &[("x-airlock-web", "1"), ("origin", "http://evil.example")]).await;
    assert_eq!(status, 403, "{err}");
    let origin = format!("http://{}", ui.host);
    let (status, after) = ui.decide_by_cookie("alice", id, &body, &[("x-airlock-web", "1"), ("origin", &origin)]).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["quorum"]["have"], 1);
    let (_, html) = ui.page("carol", &format!("/ui/proposals/{id}")).await;
    assert!(
        html.contains("1 of 2 approvals") && html.contains("Approved by: <span id=\"approved-by\">alice"),
        "{html}"
    );
    assert!(html.contains("<td>42 s</td><td>yes</td>"), "time on card and diff opened are shown: {html}");
    assert!(html.contains("<td>alice</td><td>approved</td><td>revision: 1; reason: read the diff</td>"), "{html}");
    assert!(html.contains("<td>rita</td><td>proposed</td>"), "the timeline starts with the proposal: {html}");
    let (_, dash) = ui.page("carol", "/ui/dashboard").await;
    assert!(
        dash.contains("id=\"diff-opened-rate\">100.0%") && dash.contains("id=\"median-card-secs\">42.0 s"),
        "{dash}"
    );
    assert!(dash.contains("<svg") && dash.contains(">rita</text>"), "volume by requester is charted: {dash}");
}

#[tokio::test]
async fn no_page_shows_a_secret_value() {
    let ui = ui().await;
    let spec = json!({
        "kind": "config", "title": "Rotate the upload token", "reason": "because it leaked in a log",
        "cohort": { "ids": ["production-000", "production-001"] },
        "config": { "version": 4, "values": { "upload_token": { "value": "tok-hunter2-xyz", "secret": true }, "interval": { "value": 30 } } }
    });
    let id = ui.propose(spec).await;
    for who in ["alice", "rita"] {
        for path in [format!("/ui/proposals/{id}"), "/ui/proposals".into(), "/ui/queues".into(), "/ui/dashboard".into()]
        {
            let (status, html) = ui.page(who, &path).await;
            assert_eq!(status, 200, "{path}: {html}");
            assert!(!html.contains("hunter2"), "secret on {path} for {who}");
            // Nor in the manifest bytes the card carries for the browser to decode.
            assert!(!html.contains(&hex::encode("hunter2")), "secret (as hex) on {path} for {who}");
        }
    }
    let (_, card) = ui.page("alice", &format!("/ui/proposals/{id}")).await;
    assert!(card.contains("upload_token") && card.contains("&lt;secret: redacted&gt;"), "{card}");
    assert!(card.contains("<td>interval</td>"), "the non-secret line is shown: {card}");
}

#[tokio::test]
async fn unknown_pages_and_proposals_say_what_is_missing() {
    let ui = ui().await;
    let (status, html) = ui.page("alice", "/ui/proposals/999").await;
    assert_eq!(status, 404);
    assert!(html.contains("no proposal 999"), "{html}");
    let (status, html) = ui.page("alice", "/ui/proposals?state=nope").await;
    assert_eq!(status, 400);
    assert!(html.contains("unknown state"), "{html}");
    let (status, _) = ui.page("alice", "/ui/rollouts/1").await;
    assert_eq!(status, 409, "no MQTT, no rollouts");
    let resp = ui.http.get(format!("{}/ui/static/card.js", ui.base)).send().await.unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(resp.text().await.unwrap().contains("function approvalMessage"));
    let (status, _) = ui.page("alice", "/ui/static/nope.js").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_rollout_is_listed_and_charted_by_wave_on_the_dashboards() {
    let ui = ui_with(Some(crate::mqtt::MqttConfig::embedded("127.0.0.1:0".parse().unwrap()))).await;
    let spec = json!({
        "kind": "config", "title": "Report every minute", "reason": "because we need finer telemetry",
        "cohort": { "environment": ["production"] },
        "config": { "version": 2, "values": { "interval": { "value": 60 } } }
    });
    let id = ui.propose(spec).await;
    for who in ["alice", "carol"] {
        let card = ui.card(id).await;
        if card["state"] != "awaiting_approval" {
            break;
        }
        let resp = ui
            .http
            .post(format!("{}/api/proposals/{id}/decisions", ui.base))
            .bearer_auth(&ui.tokens[who])
            .json(&ui.decision(who, &card));
        assert_eq!(resp.send().await.unwrap().status().as_u16(), 200);
    }
    // The serving loop starts the rollout of a signed proposal within a tick.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let resp = ui.http.get(format!("{}/api/proposals/{id}/rollout", ui.base)).bearer_auth(&ui.tokens["rita"]);
        if resp.send().await.unwrap().status().as_u16() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the rollout never started");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, dash) = ui.page("alice", "/ui/dashboard").await;
    assert_eq!(status, 200, "{dash}");
    assert!(dash.contains(&format!("href=\"/ui/rollouts/{id}\">Report every minute")), "{dash}");
    let (status, page) = ui.page("alice", &format!("/ui/rollouts/{id}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Progress by wave (devices)") && page.contains(">wave 1</text>"), "{page}");
    assert!(page.contains("Refusals by reason (devices): nothing recorded yet"), "{page}");
    let (status, _) = ui.page("alice", "/ui/rollouts/999").await;
    assert_eq!(status, 404);
}
