//! The routing table: sessions by client id, subscriptions in a trie, and the publish path.
//!
//! One mutex guards both maps; it is held only to look up and queue (never across an await),
//! and lock order is always router → session. A publish matches the trie once; for QoS 0 the
//! PUBLISH is encoded once, on the first socket subscriber, and every other subscriber's queue
//! gets a clone of the same refcounted bytes. Link subscribers (in-process) are collected and
//! fed after the lock is released, so a slow link applies backpressure to the publisher only.
//! In multi-process mode a [`Forward`] hook sends what this process does not hold to the
//! process that does ([`crate::cluster`]).

use crate::codec;
use crate::link::{Message, Published};
use crate::metrics::Metrics;
use crate::session::{QueueLimits, Session, Sink};
use crate::topic::Trie;
use crate::{Principal, QoS};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a QoS 1 message waits for room in a full link channel before it is dropped.
const LINK_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a message came from, for deciding whether to forward it to other processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A client or link of this process.
    Local,
    /// Another broker process (never forwarded again).
    Remote,
}

/// Sends messages to other broker processes.
pub(crate) trait Forward: Send + Sync + 'static {
    /// Forwards `msg` where it belongs; says whether it went anywhere.
    fn forward<'a>(&'a self, msg: &'a Message) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

#[derive(Debug)]
struct Sub {
    session: Arc<Session>,
    qos: QoS,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<Arc<str>, Arc<Session>>,
    links: HashMap<u64, Arc<Session>>,
    subs: Trie<u64, Sub>,
}

/// The routing table of one broker process.
pub(crate) struct Router {
    state: Mutex<State>,
    pub(crate) metrics: Arc<Metrics>,
    limits: QueueLimits,
    next_id: AtomicU64,
    forward: OnceLock<Arc<dyn Forward>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// A connection attached to its session.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) session: Arc<Session>,
    pub(crate) generation: u64,
    pub(crate) session_present: bool,
    pub(crate) kicked: oneshot::Receiver<()>,
}

impl Router {
    pub(crate) fn new(metrics: Arc<Metrics>, limits: QueueLimits) -> Router {
        Router { state: Mutex::default(), metrics, limits, next_id: AtomicU64::new(1), forward: OnceLock::new() }
    }

    /// Installs the multi-process forwarding hook (once).
    pub(crate) fn set_forward(&self, f: Arc<dyn Forward>) {
        let _ = self.forward.set(f);
    }

    /// Attaches a new connection for `client_id`: resumes its persistent session (taking it
    /// over from an older connection) or starts a new one.
    pub(crate) fn connect(&self, client_id: &str, principal: Principal, persistent: bool) -> Attached {
        let (kick, kicked) = oneshot::channel();
        let mut st = self.state.lock();
        if let Some(old) = st.sessions.get(client_id).cloned() {
            if persistent && old.persistent && old.principal == principal {
                let (generation, took_over) = old.attach(kick);
                if took_over {
                    self.metrics.takeovers.fetch_add(1, Relaxed);
                }
                return Attached { session: old, generation, session_present: true, kicked };
            }
            if old.is_online() {
                self.metrics.takeovers.fetch_add(1, Relaxed);
            }
            old.kick();
            self.remove_session(&mut st, &old);
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let session = Arc::new(Session::new(
            id,
            client_id.into(),
            principal,
            persistent,
            Sink::Socket,
            self.metrics.clone(),
            self.limits,
        ));
        let (generation, _) = session.attach(kick);
        st.sessions.insert(session.client_id.clone(), session.clone());
        self.metrics.sessions.fetch_add(1, Relaxed);
        Attached { session, generation, session_present: false, kicked }
    }

    /// The connection of `generation` ended: a clean session goes, a persistent one stays.
    pub(crate) fn disconnect(&self, session: &Arc<Session>, generation: u64) {
        if session.detach(generation) && !session.persistent {
            let mut st = self.state.lock();
            self.remove_session(&mut st, session);
        }
    }

    /// Drops the session of `client_id` (a decommissioned device), closing its connection.
    /// Says whether there was one.
    pub(crate) fn remove_client(&self, client_id: &str) -> bool {
        let mut st = self.state.lock();
        let Some(s) = st.sessions.get(client_id).cloned() else { return false };
        s.kick();
        self.remove_session(&mut st, &s);
        true
    }

    fn remove_session(&self, st: &mut State, session: &Arc<Session>) {
        for f in session.filters() {
            st.subs.remove(&f, session.id);
        }
        session.clear();
        let ours = st.sessions.get(&session.client_id).is_some_and(|s| Arc::ptr_eq(s, session));
        if ours {
            st.sessions.remove(&session.client_id);
            self.metrics.sessions.fetch_sub(1, Relaxed);
        }
    }

    /// Subscribes `session` to a filter the ACL allowed.
    pub(crate) fn subscribe(&self, session: &Arc<Session>, filter: &str, qos: QoS) {
        let mut st = self.state.lock();
        st.subs.insert(filter, session.id, Sub { session: session.clone(), qos });
        session.add_filter(filter.into(), qos);
    }

    /// Says whether there was such a subscription.
    pub(crate) fn unsubscribe(&self, session: &Arc<Session>, filter: &str) -> bool {
        let mut st = self.state.lock();
        session.remove_filter(filter);
        st.subs.remove(filter, session.id)
    }

    /// A new in-process link session delivering to `tx`.
    pub(crate) fn add_link(&self, name: &str, tx: mpsc::Sender<Message>) -> Arc<Session> {
        let id = self.next_id.fetch_add(1, Relaxed);
        let session = Arc::new(Session::new(
            id,
            name.into(),
            Principal::Controller,
            false,
            Sink::Link(tx),
            self.metrics.clone(),
            self.limits,
        ));
        self.state.lock().links.insert(id, session.clone());
        session
    }

    pub(crate) fn remove_link(&self, session: &Arc<Session>) {
        let mut st = self.state.lock();
        for f in session.filters() {
            st.subs.remove(&f, session.id);
        }
        st.links.remove(&session.id);
    }

    /// Sessions held and subscriptions, for tests and metrics.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let st = self.state.lock();
        (st.sessions.len(), st.subs.len())
    }

    /// Delivers `msg` to every matching subscriber of this process, then (for a local message in
    /// multi-process mode) to the process that holds its subscribers.
    pub(crate) async fn publish(&self, msg: Message, origin: Origin) -> Published {
        let mut out = Published::default();
        let mut links: Vec<(mpsc::Sender<Message>, QoS)> = Vec::new();
        {
            let st = self.state.lock();
            let mut encoded: Option<Bytes> = None;
            st.subs.for_each_match(&msg.topic, |_, sub| {
                out.matched += 1;
                let qos = msg.qos.min(sub.qos);
                match &sub.session.sink {
                    Sink::Link(tx) => links.push((tx.clone(), qos)),
                    Sink::Socket => match qos {
                        QoS::AtMostOnce => {
                            let packet = encoded.get_or_insert_with(|| codec::qos0_publish(&msg.topic, &msg.payload));
                            if sub.session.push_qos0(packet) {
                                out.queued += 1;
                            } else {
                                out.dropped += 1;
                            }
                        }
                        QoS::AtLeastOnce => {
                            sub.session.push_qos1(&msg.topic, &msg.payload);
                            out.queued += 1;
                        }
                    },
                }
            });
        }
        for (tx, qos) in links {
            let m = Message { topic: msg.topic.clone(), payload: msg.payload.clone(), qos };
            let sent = match qos {
                QoS::AtMostOnce => tx.try_send(m).is_ok(),
                QoS::AtLeastOnce => {
                    matches!(tokio::time::timeout(LINK_SEND_TIMEOUT, tx.send(m)).await, Ok(Ok(())))
                }
            };
            if sent {
                out.queued += 1;
                self.metrics.link_out.fetch_add(1, Relaxed);
            } else {
                out.dropped += 1;
                self.metrics.dropped_link.fetch_add(1, Relaxed);
            }
        }
        if origin == Origin::Local {
            if let Some(f) = self.forward.get() {
                out.forwarded = f.forward(&msg).await;
            }
        }
        out
    }
}
