//! The fleet benchmark: one firmware rollout to every device of a simulated fleet, timed from the
//! last approval to the last device confirmed, with the controller in its own process (the
//! `controller` subcommand of this binary, which is `airlock serve`) so that 10,000 device
//! connections and the broker's do not share one process's 20,000 open files. The lower bounds
//! (Ed25519 verifies, SHA-256, MQTT through the same broker) are measured in the same run.

use super::lower::{self, Endpoint};
use super::process::{self, Usage};
use crate::controller::Controller;
use crate::fleet::{Fleet, FleetOptions};
use crate::scenario::Scenario;
use crate::SimError;
use airlock_proto::Decision;
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Fleet size.
    pub devices: usize,
    /// Image size in KiB.
    pub image_kib: u32,
    /// An external broker (`mqtt://host:port`); `None`: the controller's embedded rumqttd.
    pub broker: Option<String>,
    /// The policy directory.
    pub policies: PathBuf,
    /// Longest wait for the rollout.
    pub timeout: Duration,
}

/// What was measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BenchResult {
    /// Fleet size.
    pub devices: usize,
    /// Image size, KiB.
    pub image_kib: u32,
    /// `embedded rumqttd` or the external broker's URL.
    pub broker: String,
    /// Enrolling and starting the fleet, seconds.
    pub setup_secs: f64,
    /// Devices that confirmed.
    pub confirmed: usize,
    /// Seconds from the last approval to the last device confirmed.
    pub approval_to_last_confirmed_secs: f64,
    /// Messages that crossed the broker to and from the controller during the rollout
    /// (deliveries, chunks, chunk requests, reports).
    pub messages: u64,
    /// `messages` per second of the rollout.
    pub messages_per_sec: f64,
    /// Controller CPU seconds during the rollout.
    pub controller_cpu_secs: f64,
    /// Controller peak resident memory, MiB (whole run; includes the embedded broker).
    pub controller_peak_rss_mib: f64,
    /// Simulator CPU seconds during the rollout.
    pub simulator_cpu_secs: f64,
    /// Simulator peak resident memory, MiB (whole run).
    pub simulator_peak_rss_mib: f64,
    /// Lower bound: Ed25519 strict verifies per second, one core.
    pub ed25519_verifies_per_sec: f64,
    /// Lower bound: SHA-256 MB/s, one core.
    pub sha256_mb_per_sec: f64,
    /// Lower bound: QoS 1 4 KiB messages per second between two clients of the same broker.
    pub mqtt_loopback_msgs_per_sec: f64,
}

impl BenchResult {
    /// The table header.
    pub fn header() -> String {
        format!(
            "{:>7} {:>6} {:<16} {:>9} {:>9} {:>10} {:>9} {:>9} {:>8} {:>9} {:>8} {:>9} {:>8} {:>9}",
            "devices",
            "KiB",
            "broker",
            "confirmed",
            "approval",
            "messages",
            "msg/s",
            "ctl CPU",
            "ctl RSS",
            "sim CPU",
            "sim RSS",
            "verify/s",
            "SHA MB/s",
            "mqtt m/s"
        )
    }

    /// One table row.
    pub fn row(&self) -> String {
        format!(
            "{:>7} {:>6} {:<16} {:>9} {:>8.1}s {:>10} {:>9.0} {:>8.1}s {:>5.0}MiB {:>8.1}s {:>5.0}MiB {:>9.0} {:>8.0} {:>9.0}",
            self.devices,
            self.image_kib,
            truncate(&self.broker, 16),
            self.confirmed,
            self.approval_to_last_confirmed_secs,
            self.messages,
            self.messages_per_sec,
            self.controller_cpu_secs,
            self.controller_peak_rss_mib,
            self.simulator_cpu_secs,
            self.simulator_peak_rss_mib,
            self.ed25519_verifies_per_sec,
            self.sha256_mb_per_sec,
            self.mqtt_loopback_msgs_per_sec
        )
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Kills the controller process however the benchmark ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, SimError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| SimError::Io(format!("no free port: {e}")))?;
    Ok(l.local_addr().map_err(|e| SimError::Io(e.to_string()))?.port())
}

const FLEET: &str = r#"
name = "bench"
description = "every device a gw-m4 on 1.0.0, no faults"
steps = []
[[fleet]]
share = 1.0
hardware = "gw-m4"
region = "eu-west"
environment = "production"
firmware = "1.0.0"
"#;

/// Runs the benchmark once.
pub async fn run(cfg: &BenchConfig, progress: impl Fn(&str)) -> Result<BenchResult, SimError> {
    let mut r = BenchResult {
        devices: cfg.devices,
        image_kib: cfg.image_kib,
        broker: cfg.broker.clone().unwrap_or_else(|| "embedded rumqttd".into()),
        ..BenchResult::default()
    };
    progress("lower bounds: Ed25519 and SHA-256 on one core");
    r.ed25519_verifies_per_sec = lower::ed25519_verifies_per_sec(Duration::from_secs(1));
    r.sha256_mb_per_sec = lower::sha256_mb_per_sec(Duration::from_secs(1));

    // The controller, in its own process.
    let dir = tempfile::tempdir().map_err(|e| SimError::Io(format!("data directory: {e}")))?;
    let data = dir.path().join("data");
    let http = format!("127.0.0.1:{}", free_port()?);
    let exe = std::env::current_exe().map_err(|e| SimError::Io(format!("own executable: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("controller").arg("--data").arg(&data).arg("--listen").arg(&http).arg("--policies").arg(&cfg.policies);
    match &cfg.broker {
        Some(url) => {
            cmd.arg("--mqtt-url").arg(url).arg("--mqtt-client-id").arg(format!("airlock-bench-{}", std::process::id()));
        }
        None => {
            cmd.arg("--mqtt-listen").arg(format!("127.0.0.1:{}", free_port()?));
        }
    }
    let log = std::fs::File::create(dir.path().join("controller.log")).map_err(|e| SimError::Io(e.to_string()))?;
    let err = log.try_clone().map_err(|e| SimError::Io(e.to_string()))?;
    cmd.env("RUST_LOG", "warn,rumqttd=off").stdout(Stdio::from(log)).stderr(Stdio::from(err));
    let child = ChildGuard(cmd.spawn().map_err(|e| SimError::Io(format!("starting the controller: {e}")))?);
    let pid = child.0.id();
    let base = format!("http://{http}");
    let until = Instant::now() + Duration::from_secs(60);
    let ctl = loop {
        if let Ok(c) = Controller::connect(&base, &data).await {
            break c;
        }
        if Instant::now() > until {
            let log = std::fs::read_to_string(dir.path().join("controller.log")).unwrap_or_default();
            return Err(SimError::Controller(format!("the controller never answered on {base}:\n{log}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Lower bound: two clients of the same broker.
    progress("lower bound: MQTT through the same broker");
    let mut ends = Vec::new();
    for name in ["bench-loop-pub", "bench-loop-sub"] {
        let key = ed25519_dalek::SigningKey::from_bytes(&crate::sha256(name.as_bytes()));
        let body = json!({ "id": name, "public_key": hex::encode(key.verifying_key().to_bytes()),
                           "hardware": "bench", "region": "none", "environment": "lab",
                           "firmware": "1.0.0", "tags": [], "enrolled_at": 0 });
        let e = ctl.enroll(&body).await?;
        let client_id = if e.username.is_some() { name.to_string() } else { format!("{name}-{}", std::process::id()) };
        ends.push(Endpoint { url: e.url, client_id, username: e.username, password: e.password });
    }
    r.mqtt_loopback_msgs_per_sec =
        lower::mqtt_loopback_msgs_per_sec(&ends[0], &ends[1], 4096, 20_000, Duration::from_secs(120))
            .await
            .map_err(|e| SimError::Io(format!("MQTT lower bound: {e}")))?;

    // The fleet.
    let setup = Instant::now();
    progress(&format!("enrolling and starting {} devices", cfg.devices));
    let scenario = Scenario::parse(FLEET, "bench fleet")?;
    let agents = tempfile::tempdir().map_err(|e| SimError::Io(e.to_string()))?;
    let image_len = cfg.image_kib as usize * 1024;
    let opts = FleetOptions {
        devices: cfg.devices,
        slot_size: (image_len.max(16 * 1024)).div_ceil(4096) as u32 * 4096,
        update_ops: 0,
        prefix: format!("bench{:x}", crate::unix_now() % 0xFFFFFF),
        key_seed: crate::unix_now(),
        data_dir: agents.path().to_path_buf(),
    };
    let fleet = Fleet::start(&ctl, &scenario, &opts).await?;
    let online_by = Instant::now() + Duration::from_secs(120) + Duration::from_millis(20 * cfg.devices as u64);
    while fleet.online() < cfg.devices {
        if Instant::now() > online_by {
            return Err(SimError::Timeout(format!("{} of {} devices online", fleet.online(), cfg.devices)));
        }
        progress(&format!("{} of {} devices online", fleet.online(), cfg.devices));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    r.setup_secs = setup.elapsed().as_secs_f64();

    // The rollout.
    let image = crate::run::image_bytes(&format!("bench-{}", opts.prefix), image_len);
    ctl.upload("rita", image.clone()).await?;
    let spec = json!({
        "kind": "firmware", "title": "Benchmark: firmware 2.0.0 to every device", "reason": "because we measure",
        "cohort": { "hardware": ["gw-m4"] }, "rollback": { "plan": "previous" }, "lifetime": "1d",
        "firmware": { "version": "2.0.0", "hardware": "gw-m4", "security_counter": 2,
                      "image_sha256": hex::encode(crate::sha256(&image)), "image_size": image.len() },
        "rollout": { "waves": [1.0], "success_threshold": 0.99, "failure_threshold": 0.5,
                     "device_timeout": "20m", "rate_per_sec": 100000, "on_breach": "pause" },
    });
    let card = ctl.call("POST", "/api/proposals", "rita", Some(spec)).await?;
    let id = card["id"].as_i64().ok_or_else(|| SimError::Controller(format!("no id: {card}")))?;
    let digest = crate::run::card_digest(&card)?;
    let before = counters(&ctl).await?;
    let (ctl_before, sim_before) = usage(pid)?;
    let mut approved = None;
    for who in ["alice", "carol"] {
        let card = ctl.decide(id, who, Decision::Approve, "benchmark").await?;
        if card["state"] != "awaiting_approval" {
            approved = Some(Instant::now());
            break;
        }
    }
    let approved = approved.ok_or_else(|| SimError::Controller("two approvals were not enough".into()))?;
    let until = approved + cfg.timeout;
    let mut last = 0;
    loop {
        let confirmed = fleet.confirmed(&digest);
        if confirmed != last {
            last = confirmed;
            r.approval_to_last_confirmed_secs = approved.elapsed().as_secs_f64();
        }
        progress(&format!("{confirmed} of {} confirmed after {:.0} s", cfg.devices, approved.elapsed().as_secs_f64()));
        if confirmed == cfg.devices || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r.confirmed = last;
    let (ctl_after, sim_after) = usage(pid)?;
    let after = counters(&ctl).await?;
    r.messages = after.saturating_sub(before);
    r.messages_per_sec = r.messages as f64 / r.approval_to_last_confirmed_secs.max(1e-3);
    r.controller_cpu_secs = ctl_after.cpu_secs - ctl_before.cpu_secs;
    r.simulator_cpu_secs = sim_after.cpu_secs - sim_before.cpu_secs;
    r.controller_peak_rss_mib = ctl_after.peak_rss_bytes as f64 / (1 << 20) as f64;
    r.simulator_peak_rss_mib = sim_after.peak_rss_bytes as f64 / (1 << 20) as f64;
    progress("stopping");
    let _ = fleet.shutdown(&Default::default()).await;
    drop(child);
    Ok(r)
}

fn usage(pid: u32) -> Result<(Usage, Usage), SimError> {
    let ctl = process::of_pid(pid).map_err(|e| SimError::Io(format!("controller usage: {e}")))?;
    let sim = process::of_self().map_err(|e| SimError::Io(format!("own usage: {e}")))?;
    Ok((ctl, sim))
}

/// Messages the controller's bus sent and received so far (from `/metrics`).
async fn counters(ctl: &Controller) -> Result<u64, SimError> {
    let url = format!("{}/metrics", ctl.base);
    let text = reqwest::Client::new()
        .get(&url)
        .bearer_auth(ctl.token("admin")?)
        .send()
        .await
        .map_err(|e| SimError::Controller(format!("{url}: {e}")))?
        .text()
        .await
        .map_err(|e| SimError::Controller(format!("{url}: {e}")))?;
    let events = ["delivery_sent", "command_sent", "chunk_sent", "chunk_request_received", "report_received"];
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("airlock_mqtt_total{event=\""))
        .filter_map(|l| l.split_once("\"} "))
        .filter(|(event, _)| events.contains(event))
        .filter_map(|(_, n)| n.trim().parse::<u64>().ok())
        .sum())
}
