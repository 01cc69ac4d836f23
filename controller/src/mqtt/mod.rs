//! Delivery over MQTT: the embedded broker, the controller's connection to a broker, chunk
//! serving and report checking.
//!
//! `airlock serve` runs the embedded rumqttd broker in-process unless `--mqtt-url` names an
//! external one (Mosquitto with `deploy/mosquitto/`). Either way the controller holds one client
//! connection ([`bus::Bus`]), which implements the rollout engine's
//! [`crate::rollout::transport::Transport`] and hands it verified reports on a channel
//! ([`Delivery::take_reports`]).
//!
//! Devices log in with their id as client id and username and the password issued at enrolment
//! (`airlock devices enroll`, stored hashed). Reports are signed by the device either way; the
//! broker's login only keeps strangers off it.
//!
//! # Layout
//! - [`broker`]: the embedded rumqttd broker and its login check.
//! - [`bus`]: the client connection, routing, and `Transport`.
//! - [`chunks`]: chunk requests answered from the artifact store.
//! - [`reports`]: report verification, replay refusal, registry update, forwarding.
//! - [`credentials`]: device passwords and broker URLs.
//! - [`stats`]: counters of what was done and refused.

pub mod broker;
pub mod bus;
pub mod chunks;
pub mod credentials;
pub mod reports;
pub mod stats;

use crate::artifacts::ArtifactStore;
use crate::rollout::transport::DeviceReport;
use crate::store::Store;
use crate::workflow::Clock;
use broker::{Auth, EmbeddedBroker};
use bus::{Bus, BusConfig};
use credentials::{BrokerUrl, UrlError, CONTROLLER_USER};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// Accepted reports waiting for the rollout engine.
pub const ENGINE_QUEUE: usize = 8192;

/// Enrolled devices beyond which the embedded broker is the wrong choice: measured, rumqttd
/// carries 1,000 devices (7 s for a 256 KiB rollout) and not 10,000 (`docs/benchmarks.md`).
pub const EMBEDDED_BROKER_DEVICES: u64 = 1000;

/// The default address of the embedded broker (1883 is usually taken by a system Mosquitto).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1884";

/// Which broker devices and controller meet on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerConfig {
    /// Run rumqttd in-process on this address (port 0: any free port).
    Embedded {
        /// Listen address.
        listen: SocketAddr,
    },
    /// Use a broker that runs elsewhere: `mqtt://[user[:password]@]host[:port]`.
    External {
        /// The URL (the controller's own login in it, if the broker wants one).
        url: String,
    },
}

/// MQTT settings of `airlock serve`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttConfig {
    /// The broker.
    pub broker: BrokerConfig,
    /// The controller's client id on an external broker (the embedded one always uses
    /// [`CONTROLLER_USER`]). Each controller replica needs its own.
    pub client_id: String,
    /// Keep the controller's session across reconnects (tests against a shared broker turn it
    /// off so they leave no sessions behind).
    pub persistent_session: bool,
}

impl MqttConfig {
    /// The embedded broker on `listen`, persistent session.
    pub fn embedded(listen: SocketAddr) -> MqttConfig {
        MqttConfig {
            broker: BrokerConfig::Embedded { listen },
            client_id: CONTROLLER_USER.into(),
            persistent_session: true,
        }
    }

    /// An external broker at `url`, persistent session.
    pub fn external(url: &str) -> MqttConfig {
        MqttConfig {
            broker: BrokerConfig::External { url: url.into() },
            client_id: CONTROLLER_USER.into(),
            persistent_session: true,
        }
    }
}

/// Why delivery cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The embedded broker cannot run.
    #[error("embedded MQTT broker on {addr}: {detail}")]
    Broker {
        /// Its address.
        addr: SocketAddr,
        /// What went wrong.
        detail: String,
    },
    /// The external broker URL is unusable.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// No randomness for the controller's password.
    #[error(transparent)]
    Random(#[from] crate::keys::KeyError),
}

/// What devices are told about the broker at enrolment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Where devices connect (`mqtt://host:port`, never a password).
    pub url: String,
    /// The embedded broker (logins are checked against the database) or an external one (the
    /// operator adds each device's login, see `deploy/mosquitto/README.md`).
    pub embedded: bool,
    /// The controller's username there, which no device may take.
    pub controller_user: String,
}

/// Delivery as the rest of the controller sees it: the bus (a `Transport`), the reports for the
/// rollout engine, and the embedded broker if there is one.
pub struct Delivery {
    /// The controller's connection; clone it to give the engine its `Transport`.
    pub bus: Bus,
    /// The broker devices use.
    pub info: BrokerInfo,
    reports: Mutex<Option<mpsc::Receiver<DeviceReport>>>,
    broker: Mutex<Option<EmbeddedBroker>>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery").field("bus", &self.bus).field("info", &self.info).finish_non_exhaustive()
    }
}

impl Delivery {
    /// Starts the embedded broker (if configured) and connects the bus. With the embedded broker
    /// it returns once the bus is connected and subscribed (at most 10 s, else an error); with an
    /// external one it returns at once and keeps trying in the background, logging why.
    pub async fn start(
        config: &MqttConfig,
        store: &Store,
        artifacts: &ArtifactStore,
        clock: Clock,
    ) -> Result<Delivery, MqttError> {
        let (engine_tx, engine_rx) = mpsc::channel(ENGINE_QUEUE);
        match &config.broker {
            BrokerConfig::Embedded { listen } => {
                let password = credentials::new_password()?;
                let auth = Auth {
                    pool: store.pool().clone(),
                    controller_password: password.clone(),
                    runtime: tokio::runtime::Handle::current(),
                };
                let mut broker = EmbeddedBroker::start(*listen, auth)?;
                let addr = broker.addr();
                let bus_config = BusConfig {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                    client_id: CONTROLLER_USER.into(),
                    login: Some((CONTROLLER_USER.into(), password)),
                    persistent_session: config.persistent_session,
                };
                let bus = Bus::connect(&bus_config, store.clone(), artifacts.clone(), clock, engine_tx);
                let ended = broker.take_ended();
                let failed = async move {
                    match ended {
                        Some(rx) => rx.await.unwrap_or_else(|_| "stopped".into()),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    ok = bus.ready(Duration::from_secs(10)) => {
                        if !ok {
                            bus.shutdown().await;
                            return Err(MqttError::Broker { addr, detail: "the controller could not connect to it within 10 s".into() });
                        }
                    }
                    why = failed => {
                        bus.shutdown().await;
                        return Err(MqttError::Broker { addr, detail: why });
                    }
                }
                let info = BrokerInfo {
                    url: format!("mqtt://{addr}"),
                    embedded: true,
                    controller_user: CONTROLLER_USER.into(),
                };
                Ok(Delivery { bus, info, reports: Mutex::new(Some(engine_rx)), broker: Mutex::new(Some(broker)) })
            }
            BrokerConfig::External { url } => {
                let url = BrokerUrl::parse(url)?;
                let login = url.username.clone().map(|u| (u, url.password.clone().unwrap_or_default()));
                let bus_config = BusConfig {
                    host: url.host.clone(),
                    port: url.port,
                    client_id: config.client_id.clone(),
                    login,
                    persistent_session: config.persistent_session,
                };
                let bus = Bus::connect(&bus_config, store.clone(), artifacts.clone(), clock, engine_tx);
                let shown = BrokerUrl { username: None, password: None, ..url.clone() };
                let info = BrokerInfo {
                    url: shown.to_string(),
                    embedded: false,
                    controller_user: url.username.unwrap_or_else(|| config.client_id.clone()),
                };
                Ok(Delivery { bus, info, reports: Mutex::new(Some(engine_rx)), broker: Mutex::new(None) })
            }
        }
    }

    /// The verified reports, for the rollout engine: `Some` the first time only.
    pub fn take_reports(&self) -> Option<mpsc::Receiver<DeviceReport>> {
        self.reports.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// The embedded broker's address, if it runs.
    pub fn broker_addr(&self) -> Option<SocketAddr> {
        self.broker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map(EmbeddedBroker::addr)
    }

    /// Waits until the bus is connected and subscribed, at most `timeout`.
    pub async fn ready(&self, timeout: Duration) -> bool {
        self.bus.ready(timeout).await
    }

    /// Disconnects the bus and stops the embedded broker.
    pub async fn shutdown(&self) {
        self.bus.shutdown().await;
        let broker = self.broker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(mut b) = broker {
            b.stop();
        }
    }
}
