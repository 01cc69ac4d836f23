//! The embedded broker: rumqttd 0.20 in-process, MQTT 3.1.1 over plain TCP.
//!
//! rumqttd checks logins with a static `auth` map per listener (`ConnectionSettings::auth`,
//! fixed at start) or with an external handler (`ConnectionSettings::set_auth_handler`, an async
//! `Fn(client_id, username, password) -> bool` consulted on every CONNECT). Device passwords are
//! issued at runtime, so the handler is the one used: it looks the device's password hash up in
//! the database on each connect. A client without a login, with a client id other than its
//! username, with an unknown username or a wrong password gets no CONNACK: rumqttd closes the
//! connection.
//!
//! rumqttd has no topic ACLs: an authenticated device could subscribe to another device's topics
//! or publish on them. Reports stay safe (each is verified against the key of the device its
//! topic names), chunks are hashed against the signed digest and manifests and commands are
//! signed, but an enrolled device can read other devices' images and cause them extra traffic.
//! Fleets that need confinement use Mosquitto with `deploy/mosquitto/acl`.
//!
//! `Broker::start` would block its caller and can never be stopped, so this runs rumqttd's public
//! `Router` and `Server` itself: the router on rumqttd's own thread, the listener on a thread of
//! ours with a current-thread runtime (as `Broker::start` does), which [`EmbeddedBroker::stop`]
//! drops, closing every connection. The router thread has no stop and stays, idle, until the
//! process exits.

use super::credentials::{self, CONTROLLER_USER};
use super::MqttError;
use rumqttd::protocol::v4::V4;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use sqlx::AnyPool;
use std::fmt;
use std::net::SocketAddr;

/// Most concurrent connections (rumqttd preallocates per-connection slots for them).
const MAX_CONNECTIONS: usize = 10_000;
/// Largest MQTT packet payload accepted: a chunk message is at most 4,160 bytes.
const MAX_PAYLOAD: usize = 16 * 1024;

/// Who may log in.
#[derive(Clone)]
pub struct Auth {
    /// Device password hashes are read from here.
    pub pool: AnyPool,
    /// The controller's own password for this process.
    pub controller_password: String,
    /// The controller's runtime: the database is only used from there.
    pub runtime: tokio::runtime::Handle,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// Whether a CONNECT with this login may proceed.
    pub async fn check(&self, client_id: String, username: String, password: String) -> bool {
        if client_id != username {
            tracing::warn!(%client_id, %username, "MQTT login refused: the client id must be the username");
            return false;
        }
        if username == CONTROLLER_USER {
            return credentials::constant_time_eq(password.as_bytes(), self.controller_password.as_bytes());
        }
        if airlock_proto::check_device_id(&username).is_err() {
            tracing::warn!(%username, "MQTT login refused: not a device id");
            return false;
        }
        let pool = self.pool.clone();
        let user = username.clone();
        let lookup = self.runtime.spawn(async move { crate::registry::mqtt_password_sha256(&pool, &user).await });
        match lookup.await {
            Ok(Ok(Some(stored))) => {
                let ok = credentials::matches(&password, &stored);
                if !ok {
                    tracing::warn!(device = %username, "MQTT login refused: wrong password");
                }
                ok
            }
            Ok(Ok(None)) => {
                tracing::warn!(device = %username, "MQTT login refused: unknown device (or enrolled without a broker password)");
                false
            }
            Ok(Err(e)) => {
                tracing::error!(device = %username, error = %e, "MQTT login refused: the password lookup failed");
                false
            }
            Err(e) => {
                tracing::error!(device = %username, error = %e, "MQTT login refused: the password lookup did not finish");
                false
            }
        }
    }
}

/// A running embedded broker.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    ended: Option<tokio::sync::oneshot::Receiver<String>>,
}

impl fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedBroker").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl EmbeddedBroker {
    /// Starts listening on `listen` (port 0: a free port, see [`EmbeddedBroker::addr`]) in the
    /// background.
    pub fn start(listen: SocketAddr, auth: Auth) -> Result<EmbeddedBroker, MqttError> {
        let addr = free_addr(listen)?;
        let mut connections = ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: MAX_PAYLOAD,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        connections.set_auth_handler(move |client_id, username, password| {
            let auth = auth.clone();
            async move { auth.check(client_id, username, password).await }
        });
        let settings = ServerSettings {
            name: "airlock-mqtt".into(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 0,
            connections,
        };
        let router = RouterConfig {
            max_connections: MAX_CONNECTIONS,
            max_outgoing_packet_count: 200,
            // Messages stay in a per-topic in-memory log of up to this many segments of this
            // size; a reader left behind by more skips ahead (a device re-requests on its tick).
            max_segment_size: 1024 * 1024,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: rumqttd::Strategy::default(),
        };
        let router_tx = Router::new(0, router).spawn();
        let mut server = Server::new(settings, router_tx, V4);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ended_tx, ended) = tokio::sync::oneshot::channel::<String>();
        std::thread::Builder::new()
            .name("airlock-mqtt".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ended_tx.send(format!("no runtime: {e}"));
                        return;
                    }
                };
                runtime.block_on(async move {
                    tokio::select! {
                        r = server.start(LinkType::Remote) => {
                            let why = match r { Ok(()) => "stopped".to_string(), Err(e) => e.to_string() };
                            tracing::error!(%addr, error = %why, "embedded MQTT broker stopped");
                            let _ = ended_tx.send(why);
                        }
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here cancels every connection task: their sockets close.
            })
            .map_err(|e| MqttError::Broker { addr, detail: format!("no thread: {e}") })?;
        tracing::info!(%addr, "embedded MQTT broker starting");
        Ok(EmbeddedBroker { addr, stop: Some(stop), ended: Some(ended) })
    }

    /// Resolves with the reason if the listener ends (it cannot bind, say); never resolves while
    /// it runs. Readiness is the controller's own connection succeeding ([`super::Delivery`]):
    /// a bare TCP probe would make rumqttd log an error for a client that never sent CONNECT.
    /// The second call returns `None`.
    pub fn take_ended(&mut self) -> Option<tokio::sync::oneshot::Receiver<String>> {
        self.ended.take()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening and closes every connection.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `listen` itself, checked to be free, or with port 0 a free port on its address. rumqttd binds
/// its listener from an address and cannot hand back the port it got, so a free one is found
/// here first. Another process could take it in between (it only matters for tests, which ask for
/// port 0); then the listener ends and [`EmbeddedBroker::take_ended`] says so.
fn free_addr(listen: SocketAddr) -> Result<SocketAddr, MqttError> {
    let probe = std::net::TcpListener::bind(listen)
        .map_err(|e| MqttError::Broker { addr: listen, detail: format!("cannot listen: {e}") })?;
    probe.local_addr().map_err(|e| MqttError::Broker { addr: listen, detail: e.to_string() })
}
