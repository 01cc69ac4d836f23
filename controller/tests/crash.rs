//! The controller killed with SIGKILL at every workflow step: proposed, awaiting, partially
//! approved, approved and signed, and in the middle of a timer. After each restart nothing is
//! lost, nothing has run twice, timers still fire, and the audit trail verifies.
//!
//! Runs the real `airlock serve` binary on an ephemeral port with a SQLite data directory. To
//! kill it *inside* a step, `AIRLOCK_PAUSE_AT=<step>` makes it stop just before committing that
//! step's transaction (see `workflow::pause_point`).

// A test crate: its helpers assert by unwrapping, like its tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_proto::build::approve;
use airlock_proto::Decision;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

struct Env {
    data: PathBuf,
    policies: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        // The shipped policy with timeouts short enough to watch them fire.
        let policy =
            airlock_controller::policy::testing::without_calendar_rules(include_str!("../../policies/default.toml"))
                .replace("timeout = \"4h\"", "timeout = \"3s\"");
        std::fs::write(policies.join("default.toml"), policy).unwrap();
        Env { data: dir.path().join("data"), policies, _dir: dir, http: reqwest::Client::new() }
    }

    /// Starts `airlock serve`; `pause` names a step to stop before committing.
    // The child moves into `Server`, whose `Drop` kills and waits for it; clippy cannot see that.
    #[allow(clippy::zombie_processes)]
    fn start(&self, pause: Option<&str>) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
        // Both on ephemeral ports: several of these run at once, next to other brokers.
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0"])
            .arg("--data")
            .arg(&self.data)
            .arg("--policies")
            .arg(&self.policies)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match pause {
            Some(step) => cmd.env("AIRLOCK_PAUSE_AT", step),
            None => cmd.env_remove("AIRLOCK_PAUSE_AT"),
        };
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let started = Instant::now();
        loop {
            let text = log.lock().unwrap().clone();
            if let Some(addr) = text.lines().find_map(|l| l.split("listening on http://").nth(1)) {
                return Server { child, base: format!("http://{}", addr.trim()), log };
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("airlock serve did not start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn tokens(&self) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.data.join("tokens.txt"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(' ').map(|(n, t)| (n.to_string(), t.to_string())))
            .collect()
    }

    async fn call(&self, s: &Server, method: &str, path: &str, who: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", s.base);
        let token = &self.tokens()[who];
        let req = if method == "post" { self.http.post(url) } else { self.http.get(url) };
        let req = req.bearer_auth(token).timeout(Duration::from_secs(30));
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn sign(&self, who: &str, card: &Value) -> Value {
        let key = airlock_controller::keys::read(&self.data.join("keys/users").join(format!("{who}.key"))).unwrap();
        let digest: [u8; 32] = hex::decode(card["manifest_digest"].as_str().unwrap()).unwrap().try_into().unwrap();
        let a = approve(airlock_proto::Digest::from(digest), Decision::Approve, &key);
        json!({ "revision": card["revision"], "decision": "Approve", "signature": hex::encode(a.signature.0), "reason": "checked" })
    }

    /// Sends a request that will never be answered (the server pauses in it), waits until the
    /// server says it paused, then kills it.
    async fn kill_inside(&self, s: Server, step: &str, method: &'static str, path: String, who: &str, body: Value) {
        let url = format!("{}{path}", s.base);
        let req = if method == "post" { self.http.post(url) } else { self.http.get(url) };
        let pending = tokio::spawn(req.bearer_auth(&self.tokens()[who]).json(&body).send());
        let started = Instant::now();
        while !s.log.lock().unwrap().contains(&format!("paused before committing {step}")) {
            assert!(started.elapsed() < Duration::from_secs(30), "never paused at {step}:\n{}", s.log.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        kill(s);
        // The client sees the connection die: no answer, so nothing it could believe happened.
        assert!(pending.await.unwrap().is_err(), "a killed step answered");
    }
}

fn kill(mut s: Server) {
    s.child.kill().unwrap(); // SIGKILL on unix
    s.child.wait().unwrap();
}

impl Drop for Server {
    /// A failing test must not leave a controller running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn security_fix() -> Value {
    json!({
        "kind": "firmware", "title": "Patch the TLS stack", "reason": "because it leaks session keys",
        "cohort": { "ids": ["gw-001", "gw-002"] },
        "firmware": { "version": "2.4.1", "hardware": "gw-m4", "security_counter": 2, "image_sha256": "ab".repeat(32), "image_size": 4096 },
        "security": true
    })
}

fn audit_kinds(log: &Value, proposal: i64) -> Vec<String> {
    log.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["proposal_id"] == proposal)
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

async fn assert_audit_ok(env: &Env, s: &Server) {
    let (_, v) = env.call(s, "get", "/api/audit/verify", "admin", None).await;
    assert_eq!(v["ok"], true, "audit: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_every_workflow_step_the_controller_loses_nothing_and_repeats_nothing() {
    let env = Env::new();
    let s = env.start(None);
    for i in 0..10 {
        let key = airlock_controller::keys::public_hex(&ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32]));
        let d = json!({ "id": format!("gw-{i:03}"), "public_key": key, "hardware": "gw-m4", "region": "eu",
                        "environment": "production", "firmware": "2.3.0", "tags": [], "enrolled_at": 0 });
        assert_eq!(env.call(&s, "post", "/api/devices", "admin", Some(d)).await.0, 201);
    }
    kill(s);

    // 1. Killed inside `propose`: the proposal never existed; the requester, who got no answer,
    //    proposes again and gets exactly one.
    let s = env.start(Some("proposed"));
    env.kill_inside(s, "proposed", "post", "/api/proposals".into(), "rita", security_fix()).await;
    let s = env.start(None);
    let (_, list) = env.call(&s, "get", "/api/proposals", "rita", None).await;
    assert_eq!(list.as_array().unwrap().len(), 0, "a half-made proposal survived: {list}");
    let (status, card) = env.call(&s, "post", "/api/proposals", "rita", Some(security_fix())).await;
    assert_eq!(status, 201, "{card}");
    let id = card["id"].as_i64().unwrap();
    assert_eq!(card["manifest"]["sequence"], 1, "the rolled-back proposal consumed no sequence number");

    // 2. Killed while awaiting approval.
    kill(s);
    let s = env.start(None);
    let (_, card) = env.call(&s, "get", &format!("/api/proposals/{id}"), "alice", None).await;
    assert_eq!((card["state"].as_str(), card["quorum"]["have"].as_u64()), (Some("awaiting_approval"), Some(0)));
    kill(s);

    // 3. Killed inside the first approval; approved again after the restart: partially approved.
    let s = env.start(Some("decided"));
    let body = env.sign("alice", &card);
    env.kill_inside(s, "decided", "post", format!("/api/proposals/{id}/decisions"), "alice", body.clone()).await;
    let s = env.start(None);
    let (_, card) = env.call(&s, "get", &format!("/api/proposals/{id}"), "alice", None).await;
    assert_eq!(card["quorum"]["have"], 0, "the killed approval was half-recorded");
    let (status, card) = env.call(&s, "post", &format!("/api/proposals/{id}/decisions"), "alice", Some(body)).await;
    assert_eq!((status, card["quorum"]["have"].as_u64()), (200, Some(1)), "{card}");
    kill(s);

    // 4. Killed while partially approved; then inside the approval that meets the quorum (the
    //    approve-and-sign step).
    let s = env.start(Some("signed"));
    let (_, card) = env.call(&s, "get", &format!("/api/proposals/{id}"), "carol", None).await;
    assert_eq!(card["quorum"]["have"], 1, "the partial approval was lost");
    let body = env.sign("carol", &card);
    env.kill_inside(s, "signed", "post", format!("/api/proposals/{id}/decisions"), "carol", body.clone()).await;
    let s = env.start(None);
    let (_, card) = env.call(&s, "get", &format!("/api/proposals/{id}"), "carol", None).await;
    assert_eq!((card["state"].as_str(), card["quorum"]["have"].as_u64()), (Some("awaiting_approval"), Some(1)));
    let (status, card) = env.call(&s, "post", &format!("/api/proposals/{id}/decisions"), "carol", Some(body)).await;
    assert_eq!((status, card["state"].as_str()), (200, Some("signed")), "{card}");
    let signature = card["release_signature"].clone();
    kill(s);

    // 5. Killed after signing: still signed, with the same signature; each step happened once.
    let s = env.start(None);
    let (_, card) = env.call(&s, "get", &format!("/api/proposals/{id}"), "rita", None).await;
    // Signed, or already picked up by the rollout engine; the signature is the same either way.
    assert!(matches!(card["state"].as_str(), Some("signed" | "rolling_out")), "{card}");
    assert_eq!(&card["release_signature"], &signature);
    wait_for(&env, &s, id, |c| c["state"] == "rolling_out").await;
    let (_, log) = env.call(&s, "get", &format!("/api/audit?proposal={id}"), "rita", None).await;
    let kinds = audit_kinds(&log, id);
    for once in ["proposed", "tiered", "approved", "quorum_met", "signed", "rollout_started"] {
        let n = kinds.iter().filter(|k| *k == once).count();
        let expected = if once == "approved" { 2 } else { 1 };
        assert_eq!(n, expected, "{once} recorded {n} times: {kinds:?}");
    }
    assert_audit_ok(&env, &s).await;

    // 6. Timers survive a kill: a single-lane proposal times out (3 s) and escalates while the
    //    controller is down, then expires; killed inside the expiry, it expires exactly once.
    let mut single = security_fix();
    single["security"] = json!(false);
    single["cohort"] = json!({ "ids": ["gw-003", "gw-004", "gw-005"] });
    let (status, card) = env.call(&s, "post", "/api/proposals", "rita", Some(single)).await;
    assert_eq!((status, card["tier"].as_str()), (201, Some("single")), "{card}");
    let timed = card["id"].as_i64().unwrap();
    kill(s);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let s = env.start(None);
    let escalated = wait_for(&env, &s, timed, |c| c["escalation_level"] == 1).await;
    assert_eq!(escalated["routed_to"], json!(["fw-oncall", "fw-leads"]));
    kill(s);
    let s = env.start(Some("timer"));
    let started = Instant::now();
    while !s.log.lock().unwrap().contains("paused before committing timer") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the expiry timer never fired:\n{}",
            s.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill(s);
    let s = env.start(None);
    wait_for(&env, &s, timed, |c| c["state"] == "expired").await;
    let (_, log) = env.call(&s, "get", &format!("/api/audit?proposal={timed}"), "rita", None).await;
    let kinds = audit_kinds(&log, timed);
    assert_eq!(kinds.iter().filter(|k| *k == "escalated").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "expired").count(), 1, "{kinds:?}");
    assert_audit_ok(&env, &s).await;
    kill(s);
}

async fn wait_for(env: &Env, s: &Server, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, card) = env.call(s, "get", &format!("/api/proposals/{id}"), "rita", None).await;
        if done(&card) {
            return card;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting on proposal {id}: {card}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
