//! The controller a simulated fleet is enrolled into: started in this process (a temporary or
//! given data directory, the embedded broker or an external one), or already running elsewhere
//! (its URL and data directory). Either way the simulator talks to it the way operators do: over
//! the HTTP API with the first-run users' tokens, signing approvals with their key files.

use crate::SimError;
use airlock_controller::mqtt::MqttConfig;
use airlock_controller::server::datadir::FirstRun;
use airlock_controller::server::{self, Config};
use airlock_controller::workflow::Clock;
use airlock_proto::build::approve;
use airlock_proto::Decision;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which broker an in-process controller uses.
#[derive(Clone, Debug)]
pub enum Broker {
    /// The embedded rumqttd on this address (port 0: any free port).
    Embedded(SocketAddr),
    /// An external broker (`mqtt://host:port`), e.g. Mosquitto.
    External(String),
}

/// Where the controller is.
#[derive(Debug)]
pub struct Controller {
    /// `http://host:port`.
    pub base: String,
    /// The data directory (key files of approvers, the release key).
    pub data: PathBuf,
    /// The broker devices connect to (from the controller's own enrolment answers).
    pub broker_url: String,
    /// Whether it is the embedded broker (devices then log in with per-device passwords).
    pub embedded: bool,
    tokens: BTreeMap<String, String>,
    http: reqwest::Client,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _tmp: Option<tempfile::TempDir>,
}

/// A device's enrolment answer.
#[derive(Clone, Debug)]
pub struct Enrolled {
    /// The broker.
    pub url: String,
    /// Broker login (embedded broker).
    pub username: Option<String>,
    /// Broker password (embedded broker).
    pub password: Option<String>,
    /// The signed TrustRoot.
    pub trust_root: Vec<u8>,
}

impl Controller {
    /// Starts a controller in this process: `data` (a temporary directory if `None`), the
    /// given policies, SQLite, the given broker, HTTP on `listen`.
    pub async fn start(
        data: Option<PathBuf>,
        policies: PathBuf,
        broker: Broker,
        listen: &str,
    ) -> Result<Controller, SimError> {
        let (tmp, data) = match data {
            Some(d) => (None, d),
            None => {
                let t = tempfile::tempdir().map_err(|e| SimError::Io(format!("temporary data directory: {e}")))?;
                let d = t.path().join("data");
                (Some(t), d)
            }
        };
        let mqtt = match &broker {
            Broker::Embedded(addr) => MqttConfig::embedded(*addr),
            Broker::External(url) => {
                let mut m = MqttConfig::external(url);
                // A shared broker: our own client id and no session left behind.
                m.client_id = format!("airlock-sim-ctl-{}", std::process::id());
                m.persistent_session = false;
                m
            }
        };
        let config = Config {
            data_dir: data,
            policies,
            database_url: None,
            mqtt: Some(mqtt),
            max_artifact_bytes: 64 << 20,
            audit_dir: None,
        };
        let (mut c, _) = Self::start_with(&config, listen).await?;
        if let Some(r) = c.running.as_mut() {
            r._tmp = tmp;
        }
        Ok(c)
    }

    /// Starts a controller in this process from a full server configuration (`airlock-sim
    /// serve`); also returns what a first run created, for printing.
    pub async fn start_with(config: &Config, listen: &str) -> Result<(Controller, FirstRun), SimError> {
        let (state, first) =
            server::start(config, Clock::system()).await.map_err(|e| SimError::Controller(e.to_string()))?;
        let mut tokens: BTreeMap<String, String> =
            first.users.iter().map(|(u, t)| (u.name.clone(), t.clone())).collect();
        if tokens.is_empty() {
            tokens = read_tokens(&config.data_dir)?;
        }
        let delivery =
            state.delivery.clone().ok_or_else(|| SimError::Controller("started without MQTT delivery".into()))?;
        if !delivery.ready(Duration::from_secs(15)).await {
            return Err(SimError::Controller(format!("never reached its broker at {}", delivery.info.url)));
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| SimError::Io(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| SimError::Io(e.to_string()))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server::run(listener, state, async move {
            let _ = stopped.await;
        }));
        let c = Controller {
            base: format!("http://{addr}"),
            data: config.data_dir.clone(),
            broker_url: delivery.info.url.clone(),
            embedded: delivery.info.embedded,
            tokens,
            http: http_client(),
            running: Some(Running { stop, served, _tmp: None }),
        };
        Ok((c, first))
    }

    /// Where the HTTP API listens.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// A controller already running at `base` whose data directory is `data` (tokens from
    /// `DATA/tokens.txt`, approver keys from `DATA/keys/users/`).
    pub async fn connect(base: &str, data: &Path) -> Result<Controller, SimError> {
        let tokens = read_tokens(data)?;
        let c = Controller {
            base: base.trim_end_matches('/').to_string(),
            data: data.to_path_buf(),
            broker_url: String::new(),
            embedded: false,
            tokens,
            http: http_client(),
            running: None,
        };
        // Fails early on a wrong URL or token. The broker is named in enrolment answers.
        c.call("GET", "/api/me", "admin", None).await?;
        Ok(c)
    }

    /// A user's token.
    pub fn token(&self, who: &str) -> Result<&str, SimError> {
        self.tokens.get(who).map(String::as_str).ok_or_else(|| {
            SimError::Controller(format!("no token for user {who:?} (first-run users are in DATA/tokens.txt)"))
        })
    }

    /// Calls the API as `who`; a non-2xx answer is an error carrying the controller's message.
    pub async fn call(&self, method: &str, path: &str, who: &str, body: Option<Value>) -> Result<Value, SimError> {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.http.post(&url),
            _ => self.http.get(&url),
        }
        .bearer_auth(self.token(who)?);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| SimError::Controller(format!("{method} {path}: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| SimError::Controller(format!("{method} {path}: {e}")))?;
        if !status.is_success() {
            return Err(SimError::Controller(format!("{method} {path} as {who}: {status}: {text}")));
        }
        serde_json::from_str(&text).map_err(|e| SimError::Controller(format!("{method} {path}: bad JSON: {e}")))
    }

    /// Uploads an image as `who`.
    pub async fn upload(&self, who: &str, bytes: Vec<u8>) -> Result<(), SimError> {
        let resp = self
            .http
            .post(format!("{}/api/artifacts", self.base))
            .bearer_auth(self.token(who)?)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .map_err(|e| SimError::Controller(format!("upload: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(SimError::Controller(format!("upload: {status}: {text}")));
        }
        Ok(())
    }

    /// Enrols (or re-enrols, rotating the broker password) a device as admin.
    pub async fn enroll(&self, device: &Value) -> Result<Enrolled, SimError> {
        let e = self.call("POST", "/api/devices", "admin", Some(device.clone())).await?;
        let s = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let url = s(&e["mqtt"]["url"]).unwrap_or_else(|| self.broker_url.clone());
        let embedded = e["mqtt"]["embedded"].as_bool().unwrap_or(false);
        let trust_root = hex::decode(e["trust_root_hex"].as_str().unwrap_or_default())
            .map_err(|_| SimError::Controller("enrolment answer without a TrustRoot".into()))?;
        Ok(Enrolled {
            url,
            username: if embedded { s(&e["mqtt"]["username"]) } else { None },
            password: if embedded { s(&e["mqtt"]["password"]) } else { None },
            trust_root,
        })
    }

    /// `who`'s approver key file.
    pub fn user_key(&self, who: &str) -> Result<SigningKey, SimError> {
        let path = self.data.join("keys/users").join(format!("{who}.key"));
        airlock_controller::keys::read(&path).map_err(|e| SimError::Controller(format!("{}: {e}", path.display())))
    }

    /// The release key (only a compromised controller has it: the rogue's downgrade uses it).
    pub fn release_key(&self) -> Result<SigningKey, SimError> {
        let path = self.data.join("keys/release.key");
        airlock_controller::keys::read(&path).map_err(|e| SimError::Controller(format!("{}: {e}", path.display())))
    }

    /// Signs the card's manifest digest with `who`'s key and posts the decision; the new card.
    pub async fn decide(&self, id: i64, who: &str, decision: Decision, reason: &str) -> Result<Value, SimError> {
        let card = self.call("GET", &format!("/api/proposals/{id}"), who, None).await?;
        let digest: [u8; 32] = hex::decode(card["manifest_digest"].as_str().unwrap_or_default())
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| SimError::Controller(format!("proposal {id}: no manifest digest on the card: {card}")))?;
        let a = approve(airlock_proto::Digest::from(digest), decision, &self.user_key(who)?);
        let body = json!({ "revision": card["revision"], "decision": format!("{decision:?}"),
                           "signature": hex::encode(a.signature.0), "reason": reason });
        self.call("POST", &format!("/api/proposals/{id}/decisions"), who, Some(body)).await
    }

    /// The rollout of proposal `id` (`None` before it starts).
    pub async fn rollout(&self, id: i64) -> Result<Option<Value>, SimError> {
        match self.call("GET", &format!("/api/proposals/{id}/rollout"), "admin", None).await {
            Ok(v) => Ok(Some(v)),
            Err(SimError::Controller(e)) if e.contains("404") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stops an in-process controller (no-op for a remote one).
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let _ = r.served.await;
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap_or_default()
}

/// `DATA/tokens.txt`: `NAME TOKEN` per line, `#` comments.
fn read_tokens(data: &Path) -> Result<BTreeMap<String, String>, SimError> {
    let path = data.join("tokens.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        SimError::Controller(format!(
            "cannot read {} ({e}): the simulator acts as the first-run users, with their tokens",
            path.display()
        ))
    })?;
    let tokens: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(' ').map(|(n, t)| (n.trim().to_string(), t.trim().to_string())))
        .collect();
    if !tokens.contains_key("admin") {
        return Err(SimError::Controller(format!("{} has no admin token", path.display())));
    }
    Ok(tokens)
}
