//! Shared setup for the MQTT tests: a broker, a fleet, a device runtime, a controller.
#![allow(dead_code)]

pub mod broker;
pub mod controller;
pub mod fleet;

pub use broker::Kind;
use broker::TestBroker;
use controller::Controller;
use fleet::Fleet;

use airlock_agent::{AgentConfig, Runtime, RuntimeHandle};
use airlock_proto::Event;
use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Generous bound on every wait: the tests pass in seconds, a slow CI machine gets slack.
pub const WAIT: Duration = Duration::from_secs(30);

/// One scenario against one broker.
pub struct Env {
    pub name: String,
    pub broker: TestBroker,
    pub device: String,
    pub password: String,
    pub fleet: Fleet,
    pub dir: tempfile::TempDir,
    started: Instant,
}

impl Env {
    /// A fresh device id (persistent sessions must not leak between runs), a broker that knows
    /// its login, a fleet. `None` when the broker is Mosquitto and no URL is configured.
    pub async fn new(kind: Kind, scenario: &str) -> Option<Env> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        if let Ok(filter) = std::env::var("AIRLOCK_TEST_LOG") {
            // Logs on demand (`AIRLOCK_TEST_LOG=airlock_agent=debug`), straight to stderr.
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
        }
        let name = format!("{scenario}/{kind:?}");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let device = format!("gw-{}-{}-{nanos}-{n}", std::process::id(), kind_tag(kind));
        let password = format!("pw-{device}");
        let broker = match kind {
            Kind::Mosquitto => broker::mosquitto(&name)?,
            Kind::Rumqttd => broker::rumqttd(&[(&device, &password)]).await,
        };
        let fleet = Fleet::new(&device);
        Some(Env { name, broker, device, password, fleet, dir: tempfile::tempdir().unwrap(), started: Instant::now() })
    }

    /// The agent's config: fast retries, a 1 s chunk timeout, the given health command.
    pub fn config(&self, health: &[&str]) -> AgentConfig {
        let mut c = AgentConfig::new(&self.device, &self.broker.url, self.dir.path(), health);
        c.slot_size = fleet::SLOT;
        c.mqtt.username = Some(self.device.clone());
        c.mqtt.password = Some(self.password.clone());
        c.mqtt.keepalive_secs = 5;
        c.mqtt.backoff_min_ms = 100;
        c.mqtt.backoff_max_ms = 1_000;
        c.chunks.timeout_secs = 1;
        c.health.timeout_secs = 10;
        c
    }

    pub async fn controller(&self, images: &[&[u8]]) -> Controller {
        let key = airlock_proto::sig::public_key(&self.fleet.device_key);
        Controller::connect(&self.broker.url, &self.device, key, images).await
    }

    /// Starts the device on in-memory flash and waits until it is subscribed: its status report
    /// at connect goes out after its SUBSCRIBE, so once the controller has it (after the one
    /// from boot), deliveries reach the device.
    pub async fn start(&self, ctl: &mut Controller, config: AgentConfig) -> RuntimeHandle {
        let flash = self.fleet.flash(&config);
        self.start_on(ctl, config, flash).await
    }

    pub async fn start_on<F>(&self, ctl: &mut Controller, config: AgentConfig, flash: F) -> RuntimeHandle
    where
        F: embedded_storage::nor_flash::NorFlash + Send + 'static,
    {
        self.spawn(ctl, Runtime::new(config), flash).await
    }

    pub async fn spawn<F>(&self, ctl: &mut Controller, runtime: Runtime, flash: F) -> RuntimeHandle
    where
        F: embedded_storage::nor_flash::NorFlash + Send + 'static,
    {
        let handle = runtime.spawn(flash).unwrap();
        ctl.expect(WAIT, |e| matches!(e, Event::Status(_))).await;
        ctl.expect(WAIT, |e| matches!(e, Event::Status(_))).await;
        assert!(handle.connections() >= 1);
        handle
    }

    /// Stops the device, removes its session from the broker, prints the scenario's time.
    pub async fn finish(self, handle: RuntimeHandle) {
        assert_eq!(handle.stop().await.unwrap(), airlock_agent::Exit::Stopped);
        self.wipe().await;
    }

    /// Removes the device's session from the broker, prints the scenario's time.
    pub async fn wipe(self) {
        controller::wipe_session(&self.broker.url, &self.device, &self.password).await;
        let secs = self.started.elapsed().as_secs_f64();
        let _ = writeln!(std::io::stderr(), "TIMING {:<48} {secs:6.2} s", self.name);
    }
}

fn kind_tag(kind: Kind) -> &'static str {
    match kind {
        Kind::Mosquitto => "mq",
        Kind::Rumqttd => "rd",
    }
}
