//! The in-process link: how the controller publishes and receives without TCP or MQTT encoding.
//!
//! [`crate::Broker::link`] returns a [`LinkTx`] (cheap to clone: publish, subscribe) and a
//! [`LinkRx`] (the messages of its subscriptions, on a bounded channel). A link acts as the
//! controller principal: every valid topic. Backpressure, both ways:
//! - into the link: QoS 1 messages wait (up to 5 s) for room in the channel, which stalls the
//!   publishing device's connection (TCP pushes back on it); QoS 0 messages are dropped when the
//!   channel is full; both counted in [`crate::MetricsSnapshot::dropped_link`];
//! - out of the link: [`LinkTx::publish`] returns [`Published`]: how many subscribers matched,
//!   how many queues took the message and how many dropped it (full QoS 0 queues), and in
//!   multi-process mode it waits for room in the channel to the worker process.
//!   [`LinkTx::queued`] is the number of messages waiting in every session's queue, for pacing a
//!   broadcast carousel.
//!
//! The link is not a persistent session: it lives as long as a [`LinkTx`] clone does.

use crate::metrics::Metrics;
use crate::router::{Origin, Router};
use crate::session::Session;
use crate::topic::{self, TopicError};
use crate::QoS;
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A message, as a link publishes or receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Topic name.
    pub topic: Arc<str>,
    /// Payload (refcounted: fan-out never copies it).
    pub payload: Bytes,
    /// QoS it was published (or, received, delivered) with.
    pub qos: QoS,
}

/// What one publish did in this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Subscriptions that matched.
    pub matched: usize,
    /// Queues (sessions, links) that took it.
    pub queued: usize,
    /// Subscribers that did not get it: a full QoS 0 queue, an offline session (QoS 0), a full
    /// or closed link.
    pub dropped: usize,
    /// Sent on to worker processes (multi-process mode), whose own counts show in the metrics.
    pub forwarded: bool,
}

/// Why a link operation failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The topic or filter is not valid.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// What was given.
        topic: String,
        /// Why it is invalid.
        reason: TopicError,
    },
}

#[derive(Debug)]
struct Inner {
    router: Arc<Router>,
    session: Arc<Session>,
    metrics: Arc<Metrics>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.router.remove_link(&self.session);
    }
}

/// The sending half of a link. Clones share the link; the last one dropped removes it.
#[derive(Clone, Debug)]
pub struct LinkTx {
    inner: Arc<Inner>,
}

/// The receiving half of a link.
#[derive(Debug)]
pub struct LinkRx {
    rx: mpsc::Receiver<Message>,
}

pub(crate) fn new(router: Arc<Router>, name: &str, capacity: usize) -> (LinkTx, LinkRx) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let session = router.add_link(name, tx);
    let metrics = router.metrics.clone();
    (LinkTx { inner: Arc::new(Inner { router, session, metrics }) }, LinkRx { rx })
}

impl LinkTx {
    /// Publishes `payload` on `topic` to every subscriber (QoS 1 deliveries reach persistent
    /// sessions that are offline when they reconnect).
    pub async fn publish(&self, topic: &str, payload: impl Into<Bytes>, qos: QoS) -> Result<Published, LinkError> {
        topic::check_name(topic).map_err(|reason| LinkError::InvalidTopic { topic: topic.into(), reason })?;
        self.inner.metrics.link_publish_in.fetch_add(1, Relaxed);
        let msg = Message { topic: topic.into(), payload: payload.into(), qos };
        Ok(self.inner.router.publish(msg, Origin::Local).await)
    }

    /// Receives, on the [`LinkRx`], every message on topics matching `filter`. QoS 1 here means
    /// device publishes at QoS 1 arrive at QoS 1 (and wait for room in the channel).
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), LinkError> {
        topic::check_filter(filter).map_err(|reason| LinkError::InvalidTopic { topic: filter.into(), reason })?;
        self.inner.router.subscribe(&self.inner.session, filter, qos);
        Ok(())
    }

    /// Stops receiving `filter`; says whether it was subscribed.
    pub fn unsubscribe(&self, filter: &str) -> bool {
        self.inner.router.unsubscribe(&self.inner.session, filter)
    }

    /// Messages waiting in this process's session queues and in flight (all sessions).
    pub fn queued(&self) -> u64 {
        self.inner.metrics.queued.load(Relaxed)
    }
}

impl LinkRx {
    /// The next message, or `None` once the broker and every [`LinkTx`] are gone.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// A message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.rx.try_recv().ok()
    }

    /// Messages waiting in the channel.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether none are waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}
