//! The controller's MQTT connection: one rumqttc client (QoS 1, persistent session by default,
//! reconnecting with backoff) subscribed to every device's `report` and `chunk/req` topics.
//!
//! The event loop only routes: a report goes to the report checker's queue ([`super::reports`]),
//! a chunk request to the chunk server's queue ([`super::chunks`]); a full queue drops the
//! message with a count and a log line, so a flood never stalls the connection (stalling it
//! would miss keep-alives and disconnect). Publishing is [`Transport`]: deliveries and commands
//! at QoS 1 to the device's own topic, so a device offline now gets them when it reconnects with
//! its persistent session.

use super::chunks::{self, Chunks};
use super::reports::{self, Reports};
use super::stats::Stats;
use crate::artifacts::ArtifactStore;
use crate::rollout::transport::{DeviceReport, Transport, TransportError};
use crate::store::Store;
use crate::workflow::Clock;
use airlock_proto::topics::{self, Kind};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, SubscribeReasonCode};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Every device's reports.
pub const REPORTS: &str = "airlock/v1/d/+/report";
/// Every device's chunk requests.
pub const CHUNK_REQUESTS: &str = "airlock/v1/d/+/chunk/req";

/// First wait after a failed connection; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How the bus logs in.
#[derive(Clone)]
pub struct BusConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id (the username too, on the embedded broker and with Mosquitto's
    /// `use_username_as_clientid`).
    pub client_id: String,
    /// Login, if the broker wants one.
    pub login: Option<(String, String)>,
    /// Keep the session (subscriptions, queued QoS 1 messages) across disconnects.
    pub persistent_session: bool,
}

impl fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.login.as_ref().map(|(u, _)| u))
            .field("persistent_session", &self.persistent_session)
            .finish()
    }
}

/// The controller's connection to the broker. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Bus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: AsyncClient,
    chunks: Arc<Chunks>,
    stats: Arc<Stats>,
    ready: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    driver: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Bus {
    /// Connects in the background (see [`Bus::ready`]); accepted reports go to `engine`.
    pub fn connect(
        config: &BusConfig,
        store: Store,
        artifacts: ArtifactStore,
        clock: Clock,
        engine: mpsc::Sender<DeviceReport>,
    ) -> Bus {
        let mut options = MqttOptions::new(config.client_id.clone(), config.host.clone(), config.port);
        options
            .set_clean_session(!config.persistent_session)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(16 * 1024, 16 * 1024)
            .set_inflight(100);
        if let Some((u, p)) = &config.login {
            options.set_credentials(u.clone(), p.clone());
        }
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        // Chunks are small writes a device waits for: no Nagle delay on them.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let stats = Arc::new(Stats::default());
        let chunks = Arc::new(Chunks::new(client.clone(), artifacts, store.pool().clone(), stats.clone()));
        let (chunk_tx, chunk_rx) = mpsc::channel(chunks::QUEUE);
        let (report_tx, report_rx) = mpsc::channel(reports::QUEUE);
        tokio::spawn(chunks.clone().run(chunk_rx));
        tokio::spawn(Reports::new(store, clock, engine, stats.clone()).run(report_rx));
        let (ready_tx, ready) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let router = Router { client: client.clone(), chunks: chunk_tx, reports: report_tx, stats: stats.clone() };
        let driver = tokio::spawn(drive(eventloop, router, ready_tx, stop_rx));
        Bus {
            inner: Arc::new(Inner {
                client,
                chunks,
                stats,
                ready,
                stop,
                driver: tokio::sync::Mutex::new(Some(driver)),
            }),
        }
    }

    /// Waits until the bus is connected and subscribed, at most `timeout`; says whether it is.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let mut ready = self.inner.ready.clone();
        tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await.is_ok_and(|r| r.is_ok())
    }

    /// What the bus did and refused, by counter name.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        self.inner.stats.snapshot()
    }

    /// One counter (see [`super::stats`]).
    pub fn stat(&self, name: &str) -> u64 {
        self.inner.stats.get(name)
    }

    /// Records the chunk size of an image, as a delivery naming it would.
    pub fn note_image(&self, image: airlock_proto::Digest, chunk_size: u32) {
        self.inner.chunks.note(image, chunk_size);
    }

    /// Publishes a signed TrustRoot on the device's `trust` topic (QoS 1).
    pub async fn send_trust_root(&self, device: &str, root: Vec<u8>) -> Result<(), TransportError> {
        self.publish(device, Kind::Trust, root).await
    }

    /// Disconnects cleanly (the session stays on the broker) and stops the event loop.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        if let Some(driver) = self.inner.driver.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
        }
    }

    async fn publish(&self, device: &str, kind: Kind, payload: Vec<u8>) -> Result<(), TransportError> {
        airlock_proto::check_device_id(device).map_err(|_| TransportError(format!("bad device id {device:?}")))?;
        let topic = topics::topic(device, kind).ok_or_else(|| TransportError(format!("no topic for {device:?}")))?;
        self.inner
            .client
            .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| TransportError(format!("publishing to {topic}: {e}")))
    }
}

impl Transport for Bus {
    async fn send_delivery(&self, device: &str, delivery: Vec<u8>) -> Result<(), TransportError> {
        // The chunk size of the image comes from the signed manifest itself.
        self.inner
            .chunks
            .note_delivery(&delivery)
            .map_err(|r| TransportError(format!("delivery for {device} does not decode: {}", r.name())))?;
        self.publish(device, Kind::Manifest, delivery).await?;
        self.inner.stats.bump("delivery_sent");
        Ok(())
    }

    async fn send_command(&self, device: &str, command: Vec<u8>) -> Result<(), TransportError> {
        self.publish(device, Kind::Command, command).await?;
        self.inner.stats.bump("command_sent");
        Ok(())
    }
}

/// Routes incoming messages to their queues.
struct Router {
    client: AsyncClient,
    chunks: mpsc::Sender<(String, Vec<u8>)>,
    reports: mpsc::Sender<(String, Vec<u8>)>,
    stats: Arc<Stats>,
}

impl Router {
    fn route(&self, topic: &str, payload: &[u8]) {
        let Some((device, kind)) = topics::parse(topic) else {
            self.stats.bump("unexpected_topic");
            tracing::debug!(%topic, "message on an unexpected topic ignored");
            return;
        };
        let (queue, dropped) = match kind {
            Kind::Report => {
                self.stats.bump("report_received");
                (&self.reports, reports::Dropped::Overloaded.counter())
            }
            Kind::ChunkRequest => {
                self.stats.bump("chunk_request_received");
                (&self.chunks, chunks::Dropped::Overloaded.counter())
            }
            _ => {
                self.stats.bump("unexpected_topic");
                return;
            }
        };
        if queue.try_send((device.to_string(), payload.to_vec())).is_err() {
            self.stats.bump(dropped);
            tracing::warn!(%device, %topic, "queue full: message dropped (the device retries)");
        }
    }
}

/// Polls the event loop until stopped: routes messages, subscribes after every connection,
/// backs off after failures.
async fn drive(mut eventloop: EventLoop, router: Router, ready: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = stop.changed() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) => router.route(&p.topic, &p.payload),
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = MIN_BACKOFF;
                tracing::info!(session_present = ack.session_present, "connected to the MQTT broker");
                // Not awaited here: the request goes through the event loop this task polls.
                if let Err(e) = router.client.try_subscribe_many([
                    rumqttc::SubscribeFilter::new(REPORTS.into(), QoS::AtLeastOnce),
                    rumqttc::SubscribeFilter::new(CHUNK_REQUESTS.into(), QoS::AtLeastOnce),
                ]) {
                    tracing::error!(error = %e, "subscribing failed");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                    tracing::error!(codes = ?ack.return_codes,
                        "the broker refused the controller's subscriptions (check its ACL): no reports or chunk requests will arrive");
                } else {
                    let _ = ready.send(true);
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = ready.send(false);
                router.stats.bump("connection_errors");
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT connection failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    let _ = ready.send(false);
    // A clean DISCONNECT keeps a persistent session and drops no will.
    if router.client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}
