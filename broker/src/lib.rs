//! `airlock-broker`: the embedded MQTT 3.1.1 broker that carries an Airlock fleet.
//!
//! A narrow broker on tokio with the codec devices already use (`rumqttc::mqttbytes::v4`),
//! chosen by measurement over rumqttd 0.20 and rmqtt 0.24 (`docs/benchmarks.md`, "Embedded
//! broker candidates"): it only has to do what Airlock's topics need, and that makes the hot
//! paths short.
//!
//! - **Logins** through an async hook ([`Authenticator`]) that names a [`Principal`]: the
//!   controller, or device `{id}`. Client id must equal username; refusals get CONNACK codes.
//! - **Per-device topic ACLs** ([`acl`]): a device publishes only its own `report` and
//!   `chunk/req`, subscribes only to its own `manifest`, `trust`, `chunk`, `cmd` and to the
//!   broadcast topics `airlock/v1/i/...`. Refused subscriptions get a SUBACK failure; refused
//!   publishes are dropped and counted, logged at a bounded rate.
//! - **QoS 0 and 1.** QoS 2 publishes are refused (the connection is closed); QoS 2
//!   subscriptions are granted QoS 1. No retained messages, no wills.
//! - **Persistent sessions** (clean_session = false): subscriptions and up to
//!   [`BrokerConfig::max_queued_qos1`] QoS 1 messages per device are kept while it is offline;
//!   a reconnect with the same client id takes the session over; keep-alive is enforced
//!   (1.5 × the client's interval).
//! - **Broadcast fan-out** encodes a QoS 0 PUBLISH once and queues the same refcounted bytes to
//!   every subscriber; per-connection queues are bounded and drop QoS 0 when full (counted).
//!   Writes are vectored: one `writev` per batch, no payload copies in the broker.
//! - **Sockets**: TCP_NODELAY and a 64 KiB SO_SNDBUF on every accepted socket (100,000
//!   autotuned send buffers would exhaust the kernel's TCP memory; the broker's own queues hold
//!   the backlog); accept errors backed off (5 ms → 1 s) and logged at most every 5 s; the
//!   open-file soft limit raised to the hard limit at start.
//! - **Worker processes** ([`Processes`]) when the fleet needs more sockets than one process may
//!   hold: the main process authenticates, then hands each device socket to the worker that
//!   owns its client id ([`cluster`]).
//! - **In-process link** ([`Broker::link`]): the controller publishes and receives without TCP or
//!   MQTT encoding, with backpressure ([`link`]).
//! - **Metrics** ([`MetricsSnapshot`]) and a clean [`Broker::shutdown`].
//! - **TLS**: connections are served over any `AsyncRead + AsyncWrite`;
//!   [`Broker::serve_stream`] takes a stream a TLS acceptor produced (not built in yet).
//!
//! ```no_run
//! # async fn example() -> Result<(), airlock_broker::BrokerError> {
//! use airlock_broker::{Broker, BrokerConfig, QoS, StaticAuth};
//! use std::sync::Arc;
//! let auth = Arc::new(StaticAuth::new().device("gw-1", "secret"));
//! let broker = Broker::start(BrokerConfig::new("127.0.0.1:0".parse().unwrap()), auth).await?;
//! let (tx, mut rx) = broker.link("controller", 8192);
//! tx.subscribe("airlock/v1/d/+/report", QoS::AtLeastOnce).ok();
//! tx.publish("airlock/v1/d/gw-1/manifest", b"...".to_vec(), QoS::AtLeastOnce).await.ok();
//! while let Some(msg) = rx.recv().await { /* a device's report */ let _ = msg; }
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`auth`]: principals, the login hook, the broker's own login checks.
//! - [`acl`]: what each principal may publish and subscribe to.
//! - [`topic`]: topic and filter validation, the subscription trie.
//! - `session`: a client's session and its bounded outbound queues.
//! - `router`: sessions, subscriptions, the publish path.
//! - `connection`: CONNECT handshake, reader (keep-alive, ACL, routing), writer.
//! - `listener`: accept loop (TCP_NODELAY, backoff), login, handoff to workers.
//! - `codec`: outgoing packets and vectored write buffers.
//! - [`link`]: the in-process link.
//! - [`limits`]: the open-file limit.
//! - [`cluster`]: worker processes (main side, worker side, wire format, SCM_RIGHTS).
//! - `metrics`, `config`, `error`, `ratelog` (bounded-rate logging), `broker` ([`Broker`]).

#![forbid(unsafe_code)]

pub mod acl;
pub mod auth;
mod broker;
pub mod cluster;
mod codec;
mod config;
mod connection;
mod error;
pub mod limits;
pub mod link;
mod listener;
mod metrics;
mod ratelog;
mod router;
mod session;
pub mod topic;

pub use auth::{AuthFuture, AuthRefusal, Authenticator, Login, Principal, StaticAuth};
pub use broker::Broker;
pub use cluster::worker::run_worker;
pub use cluster::WORKER_ENV;
pub use config::{BrokerConfig, Processes, WorkerCommand};
pub use error::BrokerError;
pub use limits::FdLimit;
pub use link::{LinkError, LinkRx, LinkTx, Message, Published};
pub use metrics::{Metrics, MetricsSnapshot};

/// Delivery guarantee of a message or subscription. QoS 2 is not offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum QoS {
    /// At most once: no acknowledgement, dropped when a queue is full or the client offline.
    AtMostOnce = 0,
    /// At least once: acknowledged, kept for offline persistent sessions, resent after a
    /// reconnect.
    AtLeastOnce = 1,
}

impl From<QoS> for rumqttc::mqttbytes::QoS {
    fn from(q: QoS) -> Self {
        match q {
            QoS::AtMostOnce => rumqttc::mqttbytes::QoS::AtMostOnce,
            QoS::AtLeastOnce => rumqttc::mqttbytes::QoS::AtLeastOnce,
        }
    }
}
