//! What the delivery tests share: a controller on ephemeral ports, device MQTT clients, signed
//! reports and deliveries, and the scenarios run against every broker.

// Each test file uses part of this.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_controller::mqtt::{Delivery, MqttConfig};
use airlock_controller::registry::Enrolled;
use airlock_controller::rollout::transport::{DeviceReport, Transport};
use airlock_controller::server::{self, AppState, Config};
use airlock_controller::workflow::Clock;
use airlock_proto::build::{delivery, SignedOwned};
use airlock_proto::topics::{self, Kind};
use airlock_proto::{
    Action, Chunk, ChunkRequest, Cohort, Digest, Domain, Event, Firmware, InclusionProof, Manifest, Report, Rollback,
    Status, Tier, Version,
};
use ed25519_dalek::SigningKey;
use rumqttc::{AsyncClient, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Writes past the test harness's capture, so a skipped test is seen.
pub fn skipped(what: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}");
}

/// A name no other test (in this process or another) uses: brokers are shared.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() % 1_000_000_000;
    format!("{prefix}-{}-{t}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A controller: `server::start` + `server::run` on 127.0.0.1:0, temp data directory.
pub struct Ctl {
    pub base: String,
    pub tokens: BTreeMap<String, String>,
    pub state: AppState,
    pub http: reqwest::Client,
    pub reports: Option<mpsc::Receiver<DeviceReport>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Ctl {
    pub async fn start(mqtt: Option<MqttConfig>, database_url: Option<String>, max_artifact_bytes: u64) -> Ctl {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            policies: airlock_controller::policy::testing::copy_without_calendar_rules(
                &repo().join("policies"),
                &dir.path().join("policies"),
            )
            .unwrap(),
            database_url,
            mqtt,
            max_artifact_bytes,
            audit_dir: None,
        };
        let (state, first) = server::start(&config, Clock::system()).await.unwrap();
        let tokens = first.users.iter().map(|(u, t)| (u.name.clone(), t.clone())).collect();
        let reports = state.delivery.as_ref().and_then(|d| d.take_reports());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server::run(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Ctl {
            base,
            tokens,
            state,
            http: reqwest::Client::new(),
            reports,
            stop: Some(stop),
            served: Some(served),
            _dir: dir,
        }
    }

    pub fn delivery(&self) -> &Arc<Delivery> {
        self.state.delivery.as_ref().unwrap()
    }

    pub async fn call(&self, method: &str, path: &str, who: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = if method == "post" { self.http.post(&url) } else { self.http.get(&url) };
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

    pub async fn upload(&self, who: &str, bytes: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/artifacts", self.base))
            .bearer_auth(&self.tokens[who])
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Enrols `id` with `key` as the admin; the status and what came back.
    pub async fn enroll(&self, id: &str, key: &SigningKey) -> (u16, Enrolled) {
        let d = json!({ "id": id, "public_key": hex::encode(key.verifying_key().to_bytes()), "hardware": "gw-m4",
                        "region": "eu", "environment": "lab", "firmware": "1.0.0", "tags": [], "enrolled_at": 0 });
        let (status, body) = self.call("post", "/api/devices", Some("admin"), Some(d)).await;
        assert!(status == 201 || status == 200, "{status} {body}");
        (status, serde_json::from_value(body).unwrap())
    }

    /// The next report forwarded to the engine, within `secs`.
    pub async fn next_report(&mut self, secs: u64) -> Option<DeviceReport> {
        let rx = self.reports.as_mut().unwrap();
        tokio::time::timeout(Duration::from_secs(secs), rx.recv()).await.ok().flatten()
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.delivery().bus.stat(name)
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

/// A device's MQTT connection: subscribed to its own manifest, chunk and cmd topics.
pub struct DeviceClient {
    pub id: String,
    pub client: AsyncClient,
    pub incoming: mpsc::UnboundedReceiver<rumqttc::Publish>,
    subacks: mpsc::UnboundedReceiver<rumqttc::SubAck>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DeviceClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a connection attempt ended.
pub async fn connect(
    host: &str,
    port: u16,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> Result<(AsyncClient, rumqttc::EventLoop), String> {
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_keep_alive(Duration::from_secs(10)).set_clean_session(true).set_max_packet_size(16 * 1024, 16 * 1024);
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
        Ok(Ok(rumqttc::Event::Incoming(Packet::ConnAck(ack)))) if ack.code == rumqttc::ConnectReturnCode::Success => {
            Ok((client, eventloop))
        }
        Ok(Ok(other)) => Err(format!("unexpected first event {other:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 10 s".into()),
    }
}

impl DeviceClient {
    /// Connects as `id` and subscribes to its own topics (or to `extra` filters too).
    pub async fn connect(host: &str, port: u16, id: &str, password: Option<&str>) -> Result<DeviceClient, String> {
        let (client, mut eventloop) = connect(host, port, id, password.map(|p| (id, p))).await?;
        let (tx, incoming) = mpsc::unbounded_channel();
        let (subacked_tx, subacks) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(rumqttc::Event::Incoming(Packet::SubAck(a))) => {
                        let _ = subacked_tx.send(a);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let mut d = DeviceClient { id: id.to_string(), client, incoming, subacks, task };
        for kind in [Kind::Manifest, Kind::Chunk, Kind::Command] {
            let topic = topics::topic(id, kind).unwrap();
            assert!(d.subscribe(topic.as_str()).await, "subscribing to {topic} refused");
        }
        Ok(d)
    }

    /// Subscribes to `filter`; whether the broker granted it.
    pub async fn subscribe(&mut self, filter: &str) -> bool {
        self.client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let ack = tokio::time::timeout(Duration::from_secs(10), self.subacks.recv()).await.unwrap().unwrap();
        ack.return_codes.iter().all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_)))
    }

    pub async fn publish(&self, kind: Kind, payload: Vec<u8>) {
        self.publish_as(&self.id.clone(), kind, payload).await;
    }

    /// Publishes on `device`'s topic (which may be another device's).
    pub async fn publish_as(&self, device: &str, kind: Kind, payload: Vec<u8>) {
        self.client
            .publish(topics::topic(device, kind).unwrap().as_str(), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    pub async fn next(&mut self, secs: u64) -> Option<rumqttc::Publish> {
        tokio::time::timeout(Duration::from_secs(secs), self.incoming.recv()).await.ok().flatten()
    }
}

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A signed report.
pub fn report(key: &SigningKey, device: &str, counter: u64, event: Event) -> Vec<u8> {
    let r = Report { device, counter, at: 1_800_000_000, event };
    SignedOwned::sign(Domain::Report, &r, key).to_bytes()
}

pub fn status(v: Version) -> Event {
    Event::Status(Status { firmware: v, security_counter: 1, config: 0, sequence: 0, trust_root: 1, testing: false })
}

/// A delivery of a firmware manifest for `image` with `chunk_size`, signed by some key (the bus
/// does not check it: the device does).
pub fn firmware_delivery(image: &[u8], chunk_size: u32) -> Vec<u8> {
    let m = Manifest {
        proposal: 1,
        revision: 1,
        sequence: 1,
        issued_at: 1_800_000_000,
        expires_at: 1_900_000_000,
        action: Action::Firmware(Firmware {
            hardware: "gw-m4",
            version: Version::new(2, 0, 0),
            security_counter: 1,
            image_digest: digest(image),
            image_size: image.len() as u32,
            chunk_size,
        }),
        cohort: Cohort { root: Digest::ZERO, size: 1 },
        rollout_plan: Digest::ZERO,
        rollback: Rollback::Previous,
        security: false,
        break_glass: false,
        tier: Tier::AutoPass,
        policy: Digest::ZERO,
        requester: airlock_proto::sig::public_key(&key(9)),
    };
    let signed = SignedOwned::sign(Domain::Manifest, &m, &key(8));
    delivery(&signed, &[], InclusionProof { index: 0, path: heapless::Vec::new() }).unwrap()
}

pub fn digest(bytes: &[u8]) -> Digest {
    Digest::from(<[u8; 32]>::from(sha2::Sha256::digest(bytes)))
}

/// Some image bytes that are not a repeating pattern.
pub fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8).collect()
}

/// Image bytes no other test uses: on a shared broker, another controller that knew the image
/// would answer this test's requests too.
pub fn unique_image(len: usize) -> Vec<u8> {
    let mut b = image(len);
    let tag = unique("img");
    b[..tag.len()].copy_from_slice(tag.as_bytes());
    b
}

pub fn chunk_request(image: &[u8], offset: u32, len: u32) -> Vec<u8> {
    airlock_proto::codec::encode(&ChunkRequest { image: digest(image), offset, len })
}

/// Receives chunks until `[offset, end)` is covered; checks each piece's bytes and that none is
/// longer than `max`.
pub async fn expect_chunks(dev: &mut DeviceClient, image: &[u8], offset: u32, end: u32, max: usize) -> usize {
    let chunk_topic = topics::topic(&dev.id, Kind::Chunk).unwrap();
    let mut at = offset;
    let mut pieces = 0;
    while at < end {
        let p = dev.next(10).await.unwrap_or_else(|| panic!("no chunk at {at} of {end}"));
        if p.topic != chunk_topic.as_str() {
            continue;
        }
        let c: Chunk<'_> = airlock_proto::decode(&p.payload).unwrap();
        assert_eq!(c.image, digest(image));
        assert_eq!(c.offset, at, "chunks arrive in order, without gaps");
        assert!(c.data.len() <= max, "a chunk of {} bytes, above {max}", c.data.len());
        assert_eq!(c.data, &image[at as usize..at as usize + c.data.len()]);
        at += c.data.len() as u32;
        pieces += 1;
    }
    assert_eq!(at, end, "nothing past the requested range");
    pieces
}

/// A device pulls an uploaded image through the bus: a window first, then one chunk, then the
/// tail, in pieces of the manifest's chunk size, never past the range asked for. On a shared
/// broker (`exclusive` false) other tests' devices may add to the drop counters.
pub async fn chunk_requests_are_answered(ctl: &Ctl, dev: &mut DeviceClient, exclusive: bool) {
    let img = unique_image(10_000);
    let (status, body) = ctl.upload("rita", img.clone()).await;
    assert_eq!(status, 201, "{body}");
    // The delivery teaches the bus the chunk size (1,000: an MCU-sized chunk, not a power of 2).
    let bus = ctl.delivery().bus.clone();
    bus.send_delivery(&dev.id, firmware_delivery(&img, 1000)).await.unwrap();
    let manifest_topic = topics::topic(&dev.id, Kind::Manifest).unwrap();
    let got = dev.next(10).await.expect("the delivery");
    assert_eq!(got.topic, manifest_topic.as_str());
    assert_eq!(&got.payload[..], &firmware_delivery(&img, 1000)[..]);
    // Window of 4 chunks.
    dev.publish(Kind::ChunkRequest, chunk_request(&img, 0, 4000)).await;
    assert_eq!(expect_chunks(dev, &img, 0, 4000, 1000).await, 4);
    // One more chunk, not aligned to the window.
    dev.publish(Kind::ChunkRequest, chunk_request(&img, 4000, 1000)).await;
    assert_eq!(expect_chunks(dev, &img, 4000, 5000, 1000).await, 1);
    // A range that runs past the end stops at the end: 9,000..10,000.
    dev.publish(Kind::ChunkRequest, chunk_request(&img, 9000, 4000)).await;
    assert_eq!(expect_chunks(dev, &img, 9000, 10_000, 1000).await, 1);
    // A request for an image no manifest names gets nothing, and is counted.
    let unknown = unique_image(77);
    let before = ctl.stat("chunk_dropped_unknown_image");
    dev.publish(Kind::ChunkRequest, chunk_request(&unknown, 0, 4000)).await;
    for _ in 0..100 {
        if ctl.stat("chunk_dropped_unknown_image") > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if exclusive {
        assert_eq!((before, ctl.stat("chunk_dropped_unknown_image")), (0, 1));
    } else {
        assert!(ctl.stat("chunk_dropped_unknown_image") > before);
    }
    assert!(dev.next(1).await.is_none(), "nothing sent for an unknown image");
    assert_eq!(ctl.stat("chunk_sent"), 6);
}

/// Good reports are forwarded; one signed by another device, a forged one, a replay, and one
/// naming another device are dropped with their reason, and the registry shows what it said.
pub async fn reports_are_verified_before_they_are_forwarded(ctl: &mut Ctl, a: &DeviceClient, b_id: &str) {
    let (ka, kb) = (key(1), key(2));
    let v = Version::new(1, 2, 3);
    let first = report(&ka, &a.id, 1, status(v));
    a.publish(Kind::Report, first.clone()).await;
    let r = ctl.next_report(10).await.expect("the first report");
    assert_eq!((r.device.as_str(), r.counter, r.event), (a.id.as_str(), 1, status(v)));

    // On A's topic, signed by B (naming A, then naming B).
    a.publish(Kind::Report, report(&kb, &a.id, 2, status(v))).await;
    a.publish(Kind::Report, report(&kb, b_id, 2, status(v))).await;
    // A's report with its signature altered.
    let mut forged = report(&ka, &a.id, 3, status(v));
    let last = forged.len() - 1;
    forged[last] ^= 1;
    a.publish(Kind::Report, forged).await;
    // The first report again.
    a.publish(Kind::Report, first).await;
    // Signed by A, on A's topic, but naming B.
    a.publish(Kind::Report, report(&ka, b_id, 4, status(v))).await;
    // Signed by A but an older counter than one accepted later is a replay too.
    let confirmed = Event::Confirmed { manifest: Digest::ZERO, version: Version::new(2, 0, 0) };
    a.publish(Kind::Report, report(&ka, &a.id, 7, confirmed)).await;
    a.publish(Kind::Report, report(&ka, &a.id, 6, status(v))).await;
    let r = ctl.next_report(10).await.expect("the next good report");
    assert_eq!((r.counter, r.event), (7, confirmed), "nothing in between was forwarded");
    // The replay of 6 after 7 came last; wait for it to be counted.
    for _ in 0..100 {
        if ctl.stat("report_dropped_replay") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ctl.stat("report_dropped_wrong_signer"), 2);
    assert_eq!(ctl.stat("report_dropped_bad_signature"), 1);
    assert_eq!(ctl.stat("report_dropped_device_mismatch"), 1);
    assert_eq!(ctl.stat("report_dropped_replay"), 2);
    assert_eq!(ctl.stat("report_forwarded"), 2);
    assert!(ctl.next_report(1).await.is_none());
    // A report that says nothing about the firmware leaves it as it was.
    let progress = Event::Progress { manifest: Digest::ZERO, received: 10, total: 100 };
    a.publish(Kind::Report, report(&ka, &a.id, 8, progress)).await;
    assert_eq!(ctl.next_report(10).await.expect("the progress report").event, progress);
    // The registry: firmware from the Confirmed report, the last event and counter.
    let (_, devices) = ctl.call("get", "/api/devices", Some("rita"), None).await;
    let d = devices.as_array().unwrap().iter().find(|d| d["id"] == a.id.as_str()).unwrap();
    assert_eq!(d["firmware"], "2.0.0");
    let row = sqlx::query("SELECT report_counter, last_event FROM devices WHERE id = $1")
        .bind(&a.id)
        .fetch_one(ctl.state.wf.store.pool())
        .await
        .unwrap();
    use sqlx::Row as _;
    assert_eq!(row.get::<i64, _>("report_counter"), 8);
    assert_eq!(row.get::<String, _>("last_event"), "progress:10/100");
}
