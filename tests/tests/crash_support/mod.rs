//! The crash test's helpers: the real `airlock serve` binary as a child process (killed with
//! SIGKILL on demand), HTTP calls with the first-run tokens, and provisioned in-process devices.

use airlock_agent::provision::program_and_provision;
use airlock_agent::{AgentConfig, Runtime, RuntimeHandle};
use airlock_agent_core::mem_flash::MemFlash;
use airlock_agent_core::Identity;
use airlock_proto::build::approve;
use airlock_proto::{Decision, Digest, Event, Tier, Version};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const HARDWARE: &str = "gw-m4";
pub const SLOT: u32 = 64 * 1024;

/// Writes past the test harness's capture, so a skip or a timing is seen.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The `airlock` binary of the profile this test was built in: `target/<profile>/airlock`, next to
/// this test's `deps/` directory.
pub fn airlock_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap().to_path_buf();
    let bin = profile.join(format!("airlock{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} does not exist: run `cargo build -p airlock-controller` (same profile) before this test",
        bin.display()
    );
    bin
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `airlock serve`.
pub struct Server {
    child: Child,
    pub base: String,
    pub log: Arc<Mutex<String>>,
}

impl Server {
    /// SIGKILL (on unix), then reap it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    /// A failing test must not leave a controller running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the controller's MQTT goes.
#[derive(Clone, Debug)]
pub enum Broker {
    /// `--mqtt-listen 127.0.0.1:PORT` (the same port on every start).
    Embedded(u16),
    /// `--mqtt-url URL --mqtt-client-id ID`.
    External { url: String, client_id: String },
}

impl Broker {
    /// The URL devices connect to.
    pub fn device_url(&self) -> String {
        match self {
            Broker::Embedded(port) => format!("mqtt://127.0.0.1:{port}"),
            Broker::External { url, .. } => url.clone(),
        }
    }
}

/// One controller data directory, started and killed as often as needed.
pub struct Env {
    pub data: PathBuf,
    /// The shipped policy without its calendar rules (the lanes must not depend on the weekday).
    pub policies: PathBuf,
    pub broker: Broker,
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Env {
    pub fn new(broker: Broker) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let policies = airlock_controller::policy::testing::copy_without_calendar_rules(
            &repo.join("policies"),
            &dir.path().join("policies"),
        )
        .unwrap();
        Env { data: dir.path().join("data"), policies, broker, _dir: dir, http: reqwest::Client::new() }
    }

    // The child moves into `Server`, whose `Drop` kills and waits for it.
    #[allow(clippy::zombie_processes)]
    pub fn start(&self) -> Server {
        let mut cmd = Command::new(airlock_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data")
            .arg(&self.data)
            .arg("--policies")
            .arg(&self.policies)
            .env("RUST_LOG", "info,rumqttd=warn")
            .env_remove("AIRLOCK_PAUSE_AT")
            .env_remove("AIRLOCK_MQTT_URL")
            .env_remove("AIRLOCK_MQTT_LISTEN")
            .env_remove("AIRLOCK_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &self.broker {
            Broker::Embedded(port) => cmd.arg("--mqtt-listen").arg(format!("127.0.0.1:{port}")),
            Broker::External { url, client_id } => {
                cmd.arg("--mqtt-url").arg(url).arg("--mqtt-client-id").arg(client_id)
            }
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
            if started.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("airlock serve did not start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn tokens(&self) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.data.join("tokens.txt"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(' ').map(|(n, t)| (n.to_string(), t.trim().to_string())))
            .collect()
    }

    pub async fn call(&self, s: &Server, method: &str, path: &str, who: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", s.base);
        let req = if method == "post" { self.http.post(url) } else { self.http.get(url) };
        let req = req.bearer_auth(&self.tokens()[who]).timeout(Duration::from_secs(30));
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn upload(&self, s: &Server, who: &str, bytes: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/artifacts", s.base))
            .bearer_auth(&self.tokens()[who])
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// `who`'s approval of the card's revision, signed with the first-run key file.
    pub fn sign(&self, who: &str, card: &Value) -> Value {
        let key = airlock_controller::keys::read(&self.data.join("keys/users").join(format!("{who}.key"))).unwrap();
        let a = approve(card_digest(card), Decision::Approve, &key);
        json!({ "revision": card["revision"], "decision": "Approve", "signature": hex::encode(a.signature.0),
                "reason": "crash test" })
    }
}

pub fn card_digest(card: &Value) -> Digest {
    let d: [u8; 32] = hex::decode(card["manifest_digest"].as_str().unwrap()).unwrap().try_into().unwrap();
    Digest::from(d)
}

pub fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(b).into()
}

/// Image bytes for a version, not a repeating pattern.
pub fn image(version: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(u32::from(version)) as u8).collect()
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A device: enrolled over HTTP, provisioned on in-memory flash with 1.0.0, running.
pub struct Device {
    pub id: String,
    pub handle: RuntimeHandle,
    pub _dir: tempfile::TempDir,
}

/// Enrols `id` (production, gw-m4, 1.0.0) and starts its runtime against `broker` with the
/// returned login and TrustRoot.
pub async fn enrol_and_start(env: &Env, s: &Server, id: &str, seed: u8) -> Device {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let d = json!({ "id": id, "public_key": hex::encode(key.verifying_key().to_bytes()), "hardware": HARDWARE,
                    "region": "eu", "environment": "production", "firmware": "1.0.0", "tags": [], "enrolled_at": 0 });
    let (status, e) = env.call(s, "post", "/api/devices", "admin", Some(d)).await;
    assert_eq!(status, 201, "enrolling {id}: {e}");
    let trust = hex::decode(e["trust_root_hex"].as_str().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = AgentConfig::new(id, &env.broker.device_url(), dir.path(), &["true"]);
    c.slot_size = SLOT;
    // The embedded broker checks logins; the shared Mosquitto takes anonymous clients.
    if matches!(env.broker, Broker::Embedded(_)) {
        c.mqtt.username = Some(e["mqtt"]["username"].as_str().unwrap().to_string());
        c.mqtt.password = Some(e["mqtt"]["password"].as_str().unwrap().to_string());
    }
    c.mqtt.keepalive_secs = 5;
    c.mqtt.backoff_min_ms = 100;
    c.mqtt.backoff_max_ms = 1_000;
    c.chunks.timeout_secs = 1;
    c.health.timeout_secs = 10;
    let identity = Identity {
        device_id: id.try_into().unwrap(),
        hardware: HARDWARE.try_into().unwrap(),
        min_tier: Tier::AutoPass,
        key_seed: key.to_bytes(),
    };
    let mut flash = MemFlash::new(c.layout().end() as usize);
    program_and_provision(
        &mut flash,
        &c.layout(),
        &identity,
        &trust,
        &image(1, 9_000),
        Version::new(1, 0, 0),
        1,
        now(),
    )
    .unwrap();
    let handle = Runtime::new(c).spawn(flash).unwrap();
    Device { id: id.to_string(), handle, _dir: dir }
}

/// How many of the device's events match.
pub fn count(d: &Device, pred: impl Fn(&Event) -> bool) -> usize {
    d.handle.events().borrow().iter().filter(|e| pred(e)).count()
}
