//! The virtual fleet: devices built from a scenario's composition, enrolled into the controller,
//! each running the real agent runtime (`airlock_agent::Runtime`) on its own [`SharedFlash`]
//! with its own MQTT connection, each with at most one fault.
//!
//! Every device has a supervisor task that plays its fault: an offline device starts late or
//! never; a flapping agent is stopped and started again; a power cut (a torn flash write) stops
//! the agent, restores power and boots it again on the same bytes; a device behind a bad link
//! connects through a [`LinkProxy`]; a silent device is a bare MQTT client that subscribes and
//! never answers. At the end, [`Fleet::shutdown`] stops everything and checks every flash for a
//! bricked device.

use crate::controller::Controller;
use crate::flash::SharedFlash;
use crate::link::{Impairment, LinkProxy};
use crate::scenario::{duration, Scenario};
use crate::{Rng, SimError};
use airlock_agent::{AgentConfig, HealthContext, Runtime, RuntimeHandle};
use airlock_agent_core::mem_flash::MemFlash;
use airlock_agent_core::{Agent, Identity, Input, Layout, Settings};
use airlock_proto::{Digest, Event, Status, Tier, Version};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The factory image's size.
const FACTORY_SIZE: usize = 4096;
/// Enrolments in flight at once.
const ENROL_CONCURRENCY: usize = 16;

/// A device's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// None.
    Healthy,
    /// Offline for the whole run or for a while.
    Offline,
    /// The agent goes away and comes back.
    Flapping,
    /// Power cuts during the update.
    PowerLoss,
    /// A bandwidth-limited link.
    SlowLink,
    /// A link whose connection dies at random.
    LossyLink,
    /// Connected, never answers.
    Silent,
}

impl Fault {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Healthy => "none",
            Fault::Offline => "offline",
            Fault::Flapping => "flapping",
            Fault::PowerLoss => "power_loss",
            Fault::SlowLink => "slow_link",
            Fault::LossyLink => "lossy_link",
            Fault::Silent => "silent",
        }
    }
}

/// How the fleet is built.
#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// Fleet size.
    pub devices: usize,
    /// Bytes per image slot (at least the largest image of the scenario).
    pub slot_size: u32,
    /// Mutating flash operations an update takes, about (where power cuts land).
    pub update_ops: u64,
    /// Device ids are `{prefix}-{n}`; distinct per run on a shared broker.
    pub prefix: String,
    /// Seed of each device's key (a fresh one gives fresh identities to a re-enrolled fleet).
    pub key_seed: u64,
    /// Where the agents keep their (empty) data directories.
    pub data_dir: PathBuf,
}

/// One virtual device.
#[derive(Debug)]
pub struct Device {
    /// Its id.
    pub id: String,
    /// Its group in the scenario's `[[fleet]]`.
    pub group: usize,
    /// Hardware model.
    pub hardware: String,
    /// Factory firmware.
    pub factory: Version,
    /// Its fault.
    pub fault: Fault,
    /// Its flash.
    pub flash: SharedFlash,
    /// Power cuts so far.
    pub power_cuts: AtomicU64,
    /// Agent restarts so far (power cuts and flaps).
    pub restarts: AtomicU64,
    /// A silent device's client has connected.
    silent_connected: AtomicBool,
    live: Mutex<Option<Live>>,
    history: Mutex<Vec<Event>>,
    failure: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Live {
    status: watch::Receiver<Status>,
    events: watch::Receiver<Vec<Event>>,
}

impl Device {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every event the device reported, across restarts.
    pub fn events(&self) -> Vec<Event> {
        let mut all = Self::lock(&self.history).clone();
        if let Some(live) = Self::lock(&self.live).as_ref() {
            all.extend(live.events.borrow().iter().copied());
        }
        all
    }

    /// The last status of the running agent (`None` while it is not running).
    pub fn status(&self) -> Option<Status> {
        Self::lock(&self.live).as_ref().map(|l| *l.status.borrow())
    }

    /// Whether it is connected and has said so (a status report) since its agent last started.
    pub fn online(&self) -> bool {
        if self.fault == Fault::Silent {
            return self.silent_connected.load(Ordering::Relaxed);
        }
        Self::lock(&self.live).as_ref().is_some_and(|l| l.events.borrow().iter().any(|e| matches!(e, Event::Status(_))))
    }

    /// Whether any event it reported, across restarts, holds `pred` (without copying them).
    pub fn any_event(&self, pred: impl Fn(&Event) -> bool) -> bool {
        Self::lock(&self.history).iter().any(&pred)
            || Self::lock(&self.live).as_ref().is_some_and(|l| l.events.borrow().iter().any(&pred))
    }

    /// Whether it took the manifest with this digest in: reported anything about it but a
    /// refusal (a refused manifest never touched flash).
    pub fn heard(&self, manifest: &Digest) -> bool {
        self.any_event(|e| !matches!(e, Event::Refused { .. }) && names_manifest(e, manifest))
    }

    /// Whether it confirmed the manifest with this digest (firmware or config).
    pub fn confirmed(&self, manifest: &Digest) -> bool {
        self.any_event(|e| {
            matches!(e, Event::Confirmed { manifest: m, .. } | Event::ConfigConfirmed { manifest: m, .. } if m == manifest)
        })
    }

    /// Why its agent could not run, if it could not.
    pub fn failure(&self) -> Option<String> {
        Self::lock(&self.failure).clone()
    }

    fn attach(&self, h: &RuntimeHandle) {
        *Self::lock(&self.live) = Some(Live { status: h.status_watch(), events: h.events() });
    }

    fn detach(&self) {
        if let Some(live) = Self::lock(&self.live).take() {
            Self::lock(&self.history).extend(live.events.borrow().iter().copied());
        }
    }
}

/// Whether `e` is about the manifest with this digest.
pub fn names_manifest(e: &Event, manifest: &Digest) -> bool {
    e.manifest().as_ref() == Some(manifest)
}

/// What the brick check found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BrickCheck {
    /// Devices checked.
    pub checked: usize,
    /// Bricked devices, with why.
    pub bricked: BTreeMap<String, String>,
}

/// The running fleet.
#[derive(Debug)]
pub struct Fleet {
    /// The devices.
    pub devices: Vec<Arc<Device>>,
    /// The broker devices connect to (unless their link is bad).
    pub broker_url: String,
    /// Whether devices log in with per-device credentials (the embedded broker).
    pub embedded: bool,
    /// The link proxies.
    proxies: Vec<LinkProxy>,
    layout: Layout,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Everything a device's supervisor needs.
struct Plan {
    config: AgentConfig,
    unhealthy: Vec<Version>,
    offline_for: Option<Option<Duration>>,
    flapping: Option<(Duration, Duration)>,
    cuts: u32,
    update_ops: u64,
    seed: u64,
}

impl Fleet {
    /// Builds the fleet: assigns groups and faults, enrols every device, provisions its flash
    /// with the TrustRoot from enrolment and a factory image, and starts it.
    pub async fn start(ctl: &Controller, scenario: &Scenario, opts: &FleetOptions) -> Result<Fleet, SimError> {
        let n = opts.devices;
        let mut rng = Rng::new(scenario.seed);
        // Groups: contiguous runs by share (the last takes the rounding).
        let mut groups = Vec::with_capacity(n);
        for (g, group) in scenario.fleet.iter().enumerate() {
            let count = if g + 1 == scenario.fleet.len() {
                n.saturating_sub(groups.len())
            } else {
                ((group.share * n as f64).round() as usize).min(n - groups.len())
            };
            groups.extend(std::iter::repeat_n(g, count));
        }
        // Faults: disjoint shares of a shuffled order.
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        let mut faults = vec![Fault::Healthy; n];
        let f = &scenario.faults;
        let mut at = 0usize;
        for (fault, share) in [
            (Fault::Offline, f.offline.as_ref().map(|x| x.share)),
            (Fault::Flapping, f.flapping.as_ref().map(|x| x.share)),
            (Fault::PowerLoss, f.power_loss.as_ref().map(|x| x.share)),
            (Fault::SlowLink, f.slow_link.as_ref().map(|x| x.share)),
            (Fault::LossyLink, f.lossy_link.as_ref().map(|x| x.share)),
            (Fault::Silent, f.silent.as_ref().map(|x| x.share)),
        ] {
            let k = ((share.unwrap_or(0.0) * n as f64).round() as usize).min(n - at);
            for &i in &order[at..at + k] {
                faults[i] = fault;
            }
            at += k;
        }

        let mut config_probe = AgentConfig::new("probe", "mqtt://127.0.0.1:1", &opts.data_dir, &["true"]);
        config_probe.slot_size = opts.slot_size;
        let layout = config_probe.layout();

        // Enrol (concurrently: one HTTP call each).
        let mut enrolled = Vec::with_capacity(n);
        let ids: Vec<String> = (0..n).map(|i| format!("{}-{i:05}", opts.prefix)).collect();
        for batch in (0..n).collect::<Vec<_>>().chunks(ENROL_CONCURRENCY) {
            let calls = batch.iter().map(|&i| {
                let group = &scenario.fleet[groups[i]];
                let key = device_key(opts.key_seed, &ids[i]);
                let body = json!({
                    "id": ids[i], "public_key": hex::encode(key.verifying_key().to_bytes()),
                    "hardware": group.hardware, "region": group.region, "environment": group.environment,
                    "firmware": group.firmware, "tags": group.tags, "enrolled_at": 0,
                });
                async move { ctl.enroll(&body).await.map(|e| (key, e)) }
            });
            for r in futures_util::future::join_all(calls).await {
                enrolled.push(r?);
            }
        }
        let first = &enrolled.first().ok_or_else(|| SimError::Scenario("a fleet of 0 devices".into()))?.1;
        let (broker_url, embedded) = (first.url.clone(), first.password.is_some());
        let broker: SocketAddr = {
            let url = &broker_url;
            let (host, port) = airlock_agent::config::parse_mqtt_url(url).map_err(|e| SimError::Io(e.to_string()))?;
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| SimError::Io(format!("cannot resolve the broker {url}")))?
        };

        // Link proxies, one per impairment.
        let mut proxies = Vec::new();
        let mut via: BTreeMap<Fault, String> = BTreeMap::new();
        if let Some(s) = &f.slow_link {
            let p = LinkProxy::start(broker, Impairment::Slow { bytes_per_sec: s.bytes_per_sec }, scenario.seed)
                .await
                .map_err(|e| SimError::Io(format!("slow-link proxy: {e}")))?;
            via.insert(Fault::SlowLink, format!("mqtt://{}", p.addr()));
            proxies.push(p);
        }
        if let Some(l) = &f.lossy_link {
            let mean_life = Duration::from_secs_f64(60.0 / l.drops_per_min);
            let p = LinkProxy::start(broker, Impairment::Lossy { mean_life }, scenario.seed ^ 1)
                .await
                .map_err(|e| SimError::Io(format!("lossy-link proxy: {e}")))?;
            via.insert(Fault::LossyLink, format!("mqtt://{}", p.addr()));
            proxies.push(p);
        }

        let (stop, _) = watch::channel(false);
        let mut devices = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        let now = crate::unix_now();
        for (i, (key, e)) in enrolled.into_iter().enumerate() {
            let group = &scenario.fleet[groups[i]];
            let id = ids[i].clone();
            let factory = airlock_agent::config::parse_version(&group.firmware)
                .map_err(|e| SimError::Scenario(format!("firmware {:?}: {e}", group.firmware)))?;
            let mut flash = MemFlash::new(layout.end() as usize);
            let identity = Identity {
                device_id: id.as_str().try_into().map_err(|_| dev_err(&id, "id too long"))?,
                hardware: group.hardware.as_str().try_into().map_err(|_| dev_err(&id, "hardware name too long"))?,
                min_tier: Tier::AutoPass,
                key_seed: key.to_bytes(),
            };
            let image =
                crate::run::image_bytes(&format!("factory-{}-{}", group.hardware, group.firmware), FACTORY_SIZE);
            airlock_agent::provision::program_and_provision(
                &mut flash,
                &layout,
                &identity,
                &e.trust_root,
                &image,
                factory,
                1,
                now,
            )
            .map_err(|err| dev_err(&id, &err.to_string()))?;
            let fault = faults[i];
            let url = via.get(&fault).cloned().unwrap_or_else(|| e.url.clone());
            let mut config = AgentConfig::new(&id, &url, &opts.data_dir.join(&id), &["true"]);
            config.slot_size = opts.slot_size;
            config.mqtt.username = e.username.clone();
            config.mqtt.password = e.password.clone();
            config.mqtt.keepalive_secs = 30;
            config.mqtt.backoff_min_ms = 250;
            config.mqtt.backoff_max_ms = 4_000;
            config.chunks.timeout_secs = 5;
            config.export_files = false;
            let device = Arc::new(Device {
                id: id.clone(),
                group: groups[i],
                hardware: group.hardware.clone(),
                factory,
                fault,
                flash: SharedFlash::new(flash),
                power_cuts: AtomicU64::new(0),
                restarts: AtomicU64::new(0),
                silent_connected: AtomicBool::new(false),
                live: Mutex::new(None),
                history: Mutex::new(Vec::new()),
                failure: Mutex::new(None),
            });
            let unhealthy = f
                .unhealthy
                .iter()
                .filter(|u| u.hardware.contains(&group.hardware))
                .filter_map(|u| airlock_agent::config::parse_version(&u.version).ok())
                .collect();
            let plan = Plan {
                config,
                unhealthy,
                offline_for: (fault == Fault::Offline)
                    .then(|| f.offline.as_ref().and_then(|o| o.for_.as_deref()).and_then(|d| duration(d).ok())),
                flapping: (fault == Fault::Flapping)
                    .then_some(f.flapping.as_ref())
                    .flatten()
                    .and_then(|fl| Some((duration(&fl.up).ok()?, duration(&fl.down).ok()?))),
                cuts: if fault == Fault::PowerLoss { f.power_loss.as_ref().map_or(1, |p| p.cuts) } else { 0 },
                update_ops: opts.update_ops,
                seed: scenario.seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D),
            };
            let task = if fault == Fault::Silent {
                tokio::spawn(silent(device.clone(), plan.config, stop.subscribe()))
            } else {
                tokio::spawn(supervise(device.clone(), plan, stop.subscribe()))
            };
            devices.push(device);
            tasks.push(task);
        }
        Ok(Fleet { devices, broker_url, embedded, proxies, layout, stop, tasks })
    }

    /// Devices expected online (neither offline nor failed).
    pub fn expected_online(&self) -> usize {
        self.devices.iter().filter(|d| d.fault != Fault::Offline).count()
    }

    /// Devices that confirmed the manifest with this digest.
    pub fn confirmed(&self, manifest: &Digest) -> usize {
        self.devices.iter().filter(|d| d.confirmed(manifest)).count()
    }

    /// Devices online now.
    pub fn online(&self) -> usize {
        self.devices.iter().filter(|d| d.online()).count()
    }

    /// Connections the link proxies cut.
    pub fn link_drops(&self) -> u64 {
        self.proxies.iter().map(LinkProxy::drops).sum()
    }

    /// Devices by fault.
    pub fn faults(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for d in &self.devices {
            *m.entry(d.fault.name()).or_default() += 1;
        }
        m
    }

    /// Stops every agent and checks every flash: a device is bricked unless its flash opens,
    /// boots, and runs an image whose bytes match its record and whose version is one of
    /// `approved` (factory versions and the versions humans approved).
    pub async fn shutdown(self, approved: &BTreeSet<Version>) -> BrickCheck {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        drop(self.proxies);
        let mut check = BrickCheck::default();
        let now = crate::unix_now();
        for d in &self.devices {
            check.checked += 1;
            if let Err(why) = brick_check(d, self.layout, now, approved) {
                check.bricked.insert(d.id.clone(), why);
            }
        }
        check
    }
}

fn brick_check(d: &Device, layout: Layout, now: u64, approved: &BTreeSet<Version>) -> Result<(), String> {
    d.flash.power_on();
    let flash = d.flash.snapshot();
    let mut agent = Agent::open(flash, layout, Settings::default()).map_err(|e| format!("flash does not open: {e}"))?;
    agent.handle(now, Input::Boot).map_err(|e| format!("does not boot: {e}"))?;
    let state = agent.state();
    let slot = usize::from(state.active);
    let meta = state.slots.get(slot).copied().flatten().ok_or("no image in the active slot")?;
    let start = layout.slots[slot] as usize;
    let bytes = agent.flash_mut().bytes().get(start..start + meta.size as usize).ok_or("image past the slot")?;
    if crate::sha256(bytes) != meta.digest.0 {
        return Err(format!("slot {slot} holds bytes that do not match its record ({})", meta.version));
    }
    if !approved.contains(&meta.version) {
        return Err(format!("runs {} which nobody approved", meta.version));
    }
    Ok(())
}

fn dev_err(id: &str, e: &str) -> SimError {
    SimError::Device { device: id.to_string(), error: e.to_string() }
}

/// Each device's key: from the run's key seed and its id.
fn device_key(seed: u64, id: &str) -> SigningKey {
    let mut material = seed.to_le_bytes().to_vec();
    material.extend_from_slice(id.as_bytes());
    SigningKey::from_bytes(&crate::sha256(&material))
}

enum Why {
    Stop,
    PowerCut,
    Flap,
    Ended,
}

/// Runs one device's agent and plays its fault until the fleet stops.
async fn supervise(d: Arc<Device>, plan: Plan, mut stop: watch::Receiver<bool>) {
    let mut rng = Rng::new(plan.seed);
    match plan.offline_for {
        Some(None) => return,
        Some(Some(late)) => {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(late) => {}
            }
        }
        None => {}
    }
    let mut cuts_left = plan.cuts;
    let arm = |rng: &mut Rng, cuts_left: &mut u32| {
        if *cuts_left > 0 {
            *cuts_left -= 1;
            d.flash.cut_power_at(rng.below(plan.update_ops.max(1)));
        }
    };
    arm(&mut rng, &mut cuts_left);
    let unhealthy = Arc::new(plan.unhealthy);
    loop {
        let bad = unhealthy.clone();
        let health = move |cx: &HealthContext| {
            !(cx.change == airlock_agent::Change::Firmware && bad.contains(&cx.firmware_version))
        };
        let handle = match Runtime::new(plan.config.clone()).with_health_check(health).spawn(d.flash.clone()) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(device = %d.id, error = %e, "the agent cannot start");
                *Device::lock(&d.failure) = Some(e.to_string());
                return;
            }
        };
        d.attach(&handle);
        let up = plan.flapping.map(|(up, _)| up.mul_f64(0.5 + rng.unit()));
        let why = loop {
            tokio::select! {
                _ = stop.changed() => break Why::Stop,
                () = d.flash.power_lost_signal() => break Why::PowerCut,
                () = sleep_or_forever(up) => break Why::Flap,
                () = tokio::time::sleep(Duration::from_secs(2)) => if handle.is_finished() { break Why::Ended },
            }
        };
        let exit = handle.stop().await;
        d.detach();
        match why {
            Why::Stop => return,
            Why::PowerCut => {
                d.power_cuts.fetch_add(1, Ordering::Relaxed);
                d.flash.power_on();
                arm(&mut rng, &mut cuts_left);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Why::Flap => {
                let down = plan.flapping.map_or(Duration::ZERO, |(_, down)| down.mul_f64(0.5 + rng.unit()));
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(down) => {}
                }
            }
            Why::Ended => {
                tracing::warn!(device = %d.id, ?exit, "the agent stopped on its own; restarting it");
                if matches!(exit, Ok(airlock_agent::Exit::Decommissioned)) {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        d.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// A device whose agent hangs: its login connects and subscribes to its topics, and nothing it
/// receives is ever answered.
async fn silent(d: Arc<Device>, config: AgentConfig, mut stop: watch::Receiver<bool>) {
    let Ok((host, port)) = config.broker() else { return };
    let mut o = rumqttc::MqttOptions::new(config.device_id.clone(), host, port);
    o.set_keep_alive(Duration::from_secs(30)).set_clean_session(true).set_max_packet_size(256 * 1024, 256 * 1024);
    if let (Some(u), Some(p)) = (&config.mqtt.username, &config.mqtt.password) {
        o.set_credentials(u, p);
    }
    let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 16);
    let topic = format!("airlock/v1/d/{}/#", config.device_id);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            event = eventloop.poll() => match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe(topic.clone(), rumqttc::QoS::AtLeastOnce);
                    d.silent_connected.store(true, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            },
        }
    }
}
