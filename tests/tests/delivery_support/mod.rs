//! What the delivery end-to-end tests share: a real controller (embedded rumqttd or an external
//! Mosquitto), enrolled devices running `airlock_agent::Runtime` on in-memory flash, and the
//! HTTP calls of a proposal's life (upload, propose, approve, watch the rollout).

// Test support: a failed unwrap is a failed test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_agent::{AgentConfig, HealthContext, Runtime, RuntimeHandle};
use airlock_agent_core::mem_flash::MemFlash;
use airlock_agent_core::Identity;
use airlock_controller::mqtt::MqttConfig;
use airlock_controller::server::{self, Config};
use airlock_controller::workflow::Clock;
use airlock_proto::build::approve;
use airlock_proto::{Decision, Event, Tier, Version};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bound on every wait.
pub const WAIT: Duration = Duration::from_secs(60);
pub const SLOT: u32 = 64 * 1024;
pub const FACTORY: Version = Version::new(1, 0, 0);

/// Which broker a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    Embedded,
    Mosquitto,
}

pub fn skipped(what: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}");
}

pub fn timing(what: &str, started: Instant) {
    let _ = writeln!(std::io::stderr(), "TIMING {what:<90} {:6.2} s", started.elapsed().as_secs_f64());
}

/// A tag no other run uses: Mosquitto is shared.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() % 1_000_000_000;
    format!("{prefix}{}x{t}x{}", std::process::id() % 100_000, N.fetch_add(1, Ordering::Relaxed))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Deterministic image bytes, different per `tag` (a shared broker must not see another test's
/// image digest).
pub fn image(tag: &str, len: usize) -> Vec<u8> {
    let mut b: Vec<u8> = (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8).collect();
    b[..tag.len()].copy_from_slice(tag.as_bytes());
    b
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// A controller on 127.0.0.1:0 with a temp data directory.
pub struct Ctl {
    pub base: String,
    pub tokens: BTreeMap<String, String>,
    pub data: PathBuf,
    pub http: reqwest::Client,
    pub broker_url: String,
    pub embedded: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Ctl {
    /// `None` (and a SKIPPED line) for Mosquitto without `AIRLOCK_TEST_MQTT_URL`.
    pub async fn start(broker: Broker, test: &str) -> Option<Ctl> {
        let mqtt = match broker {
            Broker::Embedded => MqttConfig::embedded("127.0.0.1:0".parse().unwrap()),
            Broker::Mosquitto => {
                let Ok(url) = std::env::var("AIRLOCK_TEST_MQTT_URL") else {
                    skipped(&format!("{test} on Mosquitto: AIRLOCK_TEST_MQTT_URL is not set"));
                    return None;
                };
                let mut m = MqttConfig::external(&url);
                m.client_id = unique("airlock-ctl-");
                m.persistent_session = false;
                m
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            policies: airlock_controller::policy::testing::copy_without_calendar_rules(
                &repo().join("policies"),
                &dir.path().join("policies"),
            )
            .unwrap(),
            database_url: None,
            mqtt: Some(mqtt),
            max_artifact_bytes: 1 << 20,
            audit_dir: None,
        };
        let (state, first) = server::start(&config, Clock::system()).await.unwrap();
        let tokens = first.users.iter().map(|(u, t)| (u.name.clone(), t.clone())).collect();
        let delivery = state.delivery.clone().unwrap();
        assert!(delivery.ready(Duration::from_secs(10)).await, "the controller never reached its broker");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server::run(listener, state, async move {
            let _ = stopped.await;
        }));
        Some(Ctl {
            base,
            tokens,
            data: config.data_dir,
            http: reqwest::Client::new(),
            broker_url: delivery.info.url.clone(),
            embedded: delivery.info.embedded,
            stop: Some(stop),
            served: Some(served),
            _dir: dir,
        })
    }

    pub async fn call(&self, method: &str, path: &str, who: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = if method == "post" { self.http.post(&url) } else { self.http.get(&url) };
        req = req.bearer_auth(&self.tokens[who]);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn upload(&self, bytes: Vec<u8>) {
        let resp = self
            .http
            .post(format!("{}/api/artifacts", self.base))
            .bearer_auth(&self.tokens["rita"])
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(status == 201 || status == 200, "upload: {status} {}", resp.text().await.unwrap());
    }

    /// Signs `card`'s manifest digest with `who`'s first-run key file.
    pub fn sign(&self, who: &str, card: &Value, decision: Decision) -> Value {
        let key = self.user_key(who);
        let digest: [u8; 32] = hex::decode(card["manifest_digest"].as_str().unwrap()).unwrap().try_into().unwrap();
        let a = approve(airlock_proto::Digest::from(digest), decision, &key);
        json!({ "revision": card["revision"], "decision": format!("{decision:?}"),
                "signature": hex::encode(a.signature.0), "reason": "looked at it" })
    }

    pub fn user_key(&self, who: &str) -> SigningKey {
        key_file(&self.data.join("keys/users").join(format!("{who}.key")))
    }

    /// Proposes `spec` as rita and approves it (alice, then carol) until it is signed; the id.
    pub async fn propose_and_approve(&self, spec: Value) -> i64 {
        let (status, mut card) = self.call("post", "/api/proposals", "rita", Some(spec)).await;
        assert_eq!(status, 201, "{card}");
        let id = card["id"].as_i64().unwrap();
        for who in ["alice", "carol"] {
            if card["state"] != "awaiting_approval" {
                break;
            }
            let (status, c) = self
                .call(
                    "post",
                    &format!("/api/proposals/{id}/decisions"),
                    who,
                    Some(self.sign(who, &card, Decision::Approve)),
                )
                .await;
            assert_eq!(status, 200, "{c}");
            card = c;
        }
        assert!(["signed", "rolling_out"].contains(&card["state"].as_str().unwrap_or("")), "not signed: {card}");
        id
    }

    /// Polls `GET /api/proposals/{id}/rollout` until `done` holds; the last status.
    pub async fn rollout_until(&self, id: i64, done: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + WAIT;
        let mut last = Value::Null;
        while Instant::now() < until {
            let (status, body) = self.call("get", &format!("/api/proposals/{id}/rollout"), "rita", None).await;
            if status == 200 {
                if done(&body) {
                    return body;
                }
                last = body;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("rollout of {id} never got there; last: {last}");
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(s) = self.served.take() {
            s.await.unwrap().unwrap();
        }
    }
}

/// A first-run key file.
pub fn key_file(path: &std::path::Path) -> SigningKey {
    airlock_controller::keys::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An enrolled device running the real agent.
pub struct Dev {
    pub id: String,
    pub key: SigningKey,
    pub handle: RuntimeHandle,
    pub dir: tempfile::TempDir,
    pub username: Option<String>,
    pub password: Option<String>,
    pub trust_hex: String,
    pub factory: Vec<u8>,
}

impl Dev {
    pub fn events(&self) -> Vec<Event> {
        self.handle.events().borrow().clone()
    }

    pub async fn wait(&self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        match self.handle.wait_for_event(WAIT, pred).await {
            Some(e) => e,
            None => panic!("{}: no {what}; events {:?}", self.id, self.events()),
        }
    }

    /// Waits until the status holds `pred` (the status watch is updated once an input is fully
    /// handled, so just after the events it produced).
    pub async fn wait_status(
        &self,
        what: &str,
        pred: impl Fn(&airlock_proto::Status) -> bool,
    ) -> airlock_proto::Status {
        let until = Instant::now() + WAIT;
        loop {
            let s = self.handle.status();
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < until, "{}: status never {what}: {s:?}", self.id);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn config_json(&self) -> Option<Value> {
        let bytes = std::fs::read(self.dir.path().join("config.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Enrols `n` devices named `{prefix}-{i}` (environment lab) and starts each on in-memory flash
/// with the factory image 1.0.0 and `health` as its health check.
pub async fn fleet<H>(ctl: &Ctl, prefix: &str, n: usize, health: H) -> Vec<Dev>
where
    H: Fn(&HealthContext) -> bool + Clone + Send + Sync + 'static,
{
    let mut devs = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}-{i:02}");
        let mut seed = [0u8; 32];
        seed[..id.len().min(32)].copy_from_slice(&id.as_bytes()[..id.len().min(32)]);
        seed[31] ^= 0x5a;
        let key = SigningKey::from_bytes(&seed);
        let d = json!({ "id": id, "public_key": hex::encode(key.verifying_key().to_bytes()), "hardware": "gw-m4",
                        "region": "eu", "environment": "lab", "firmware": "1.0.0", "tags": [], "enrolled_at": 0 });
        let (status, e) = ctl.call("post", "/api/devices", "admin", Some(d)).await;
        assert_eq!(status, 201, "{e}");
        let url = e["mqtt"]["url"].as_str().map(str::to_string).unwrap_or_else(|| ctl.broker_url.clone());
        let username = e["mqtt"]["username"].as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let password = e["mqtt"]["password"].as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let trust_hex = e["trust_root_hex"].as_str().unwrap().to_string();
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::new(&id, &url, dir.path(), &["true"]);
        config.slot_size = SLOT;
        config.mqtt.username = if ctl.embedded { username.clone() } else { None };
        config.mqtt.password = if ctl.embedded { password.clone() } else { None };
        config.mqtt.keepalive_secs = 5;
        config.mqtt.backoff_min_ms = 100;
        config.mqtt.backoff_max_ms = 1_000;
        config.chunks.timeout_secs = 1;
        let factory = image(&format!("factory-{id}"), 9_000);
        let mut flash = MemFlash::new(config.layout().end() as usize);
        let identity = Identity {
            device_id: id.as_str().try_into().unwrap(),
            hardware: "gw-m4".try_into().unwrap(),
            min_tier: Tier::AutoPass,
            key_seed: key.to_bytes(),
        };
        let trust = hex::decode(&trust_hex).unwrap();
        airlock_agent::provision::program_and_provision(
            &mut flash,
            &config.layout(),
            &identity,
            &trust,
            &factory,
            FACTORY,
            1,
            now(),
        )
        .unwrap();
        let handle = Runtime::new(config).with_health_check(health.clone()).spawn(flash).unwrap();
        devs.push(Dev { id, key, handle, dir, username, password, trust_hex, factory });
    }
    // Connected and subscribed: the status report at connect follows the SUBSCRIBE.
    for d in &devs {
        let until = Instant::now() + WAIT;
        while d.handle.connections() == 0 || d.events().iter().filter(|e| matches!(e, Event::Status(_))).count() < 2 {
            assert!(Instant::now() < until, "{} never connected: {:?}", d.id, d.events());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    devs
}

pub async fn stop_all(devs: Vec<Dev>) {
    for d in devs {
        let _ = d.handle.stop().await;
    }
}

/// Whether `e` is about the manifest with this hex digest.
pub fn names_manifest(e: &Event, digest_hex: &str) -> bool {
    e.manifest().is_some_and(|m| hex::encode(m.as_ref()) == digest_hex)
}
