//! A client's session: its subscriptions and its outbound queues, kept across reconnects when
//! the client asked for a persistent session (clean_session = false).
//!
//! Three queues, drained in this order by the connection's writer:
//! - control packets (CONNACK, PUBACK, SUBACK, PINGRESP): never dropped;
//! - QoS 1 messages: at most `max_inflight` sent and not yet acknowledged; at most
//!   `max_queued_qos1` waiting, online or offline; when full the **oldest** is dropped and
//!   counted (the newest manifest or command matters more than an old one);
//! - QoS 0 messages, as shared pre-encoded packets: at most `max_queued_qos0`; when full the new
//!   one is dropped and counted, and an offline session keeps none.
//!
//! Order holds per topic and QoS level. A new connection bumps the session's generation: the
//! old connection's writer sees it is stale and stops, and unacknowledged QoS 1 messages are sent
//! again first, with DUP set and their packet ids.

use crate::codec::{self, BufList};
use crate::link::Message;
use crate::metrics::Metrics;
use crate::Principal;
use crate::QoS;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify};

/// Queue bounds of one session.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueLimits {
    pub(crate) qos0: usize,
    pub(crate) qos1: usize,
    pub(crate) inflight: usize,
}

/// Where a session's messages go.
#[derive(Debug)]
pub(crate) enum Sink {
    /// A network connection's writer drains the queues.
    Socket,
    /// An in-process link receives them on a channel.
    Link(mpsc::Sender<Message>),
}

/// A QoS 1 message for one session.
#[derive(Debug)]
struct Pending {
    topic: Arc<str>,
    payload: Bytes,
    /// 0 until first sent.
    pkid: u16,
    dup: bool,
}

#[derive(Debug)]
struct State {
    generation: u64,
    online: bool,
    kick: Option<oneshot::Sender<()>>,
    control: VecDeque<Bytes>,
    qos0: VecDeque<Bytes>,
    qos1: VecDeque<Pending>,
    inflight: VecDeque<Pending>,
    next_pkid: u16,
    filters: HashMap<Arc<str>, QoS>,
}

/// One client's session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) client_id: Arc<str>,
    pub(crate) principal: Principal,
    pub(crate) persistent: bool,
    pub(crate) sink: Sink,
    pub(crate) wake: Notify,
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    limits: QueueLimits,
}

/// What a writer found when it asked for more to write.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Drained {
    /// This many buffers were added.
    Some(usize),
    /// Another connection took the session over: stop writing.
    Stale,
}

impl Session {
    pub(crate) fn new(
        id: u64,
        client_id: Arc<str>,
        principal: Principal,
        persistent: bool,
        sink: Sink,
        metrics: Arc<Metrics>,
        limits: QueueLimits,
    ) -> Session {
        Session {
            id,
            client_id,
            principal,
            persistent,
            sink,
            wake: Notify::new(),
            state: Mutex::new(State {
                generation: 0,
                online: false,
                kick: None,
                control: VecDeque::new(),
                qos0: VecDeque::new(),
                qos1: VecDeque::new(),
                inflight: VecDeque::new(),
                next_pkid: 1,
                filters: HashMap::new(),
            }),
            metrics,
            limits,
        }
    }

    /// Attaches a new connection: the previous one (if any) is told to go, unacknowledged QoS 1
    /// messages go back to the front of the queue. Returns the connection's generation and
    /// whether a previous connection was still attached (a takeover).
    pub(crate) fn attach(&self, kick: oneshot::Sender<()>) -> (u64, bool) {
        let mut s = self.state.lock();
        let took_over = match s.kick.take() {
            Some(old) => {
                let _ = old.send(());
                true
            }
            None => false,
        };
        s.generation += 1;
        s.online = true;
        s.kick = Some(kick);
        s.control.clear();
        while let Some(mut p) = s.inflight.pop_back() {
            p.dup = true;
            s.qos1.push_front(p);
        }
        (s.generation, took_over)
    }

    /// The connection of `generation` ended. QoS 0 messages are dropped; QoS 1 stay for the
    /// next connection. Says whether it was still the current connection.
    pub(crate) fn detach(&self, generation: u64) -> bool {
        let mut s = self.state.lock();
        if s.generation != generation || !s.online {
            return false;
        }
        s.online = false;
        s.kick = None;
        let dropped = s.qos0.len() as u64;
        s.qos0.clear();
        s.control.clear();
        self.metrics.queued.fetch_sub(dropped, Relaxed);
        self.metrics.dropped_qos0_offline.fetch_add(dropped, Relaxed);
        true
    }

    /// Tells the current connection (if any) to close, for a takeover by a clean session or a
    /// shutdown.
    pub(crate) fn kick(&self) {
        if let Some(k) = self.state.lock().kick.take() {
            let _ = k.send(());
        }
    }

    /// Forgets everything queued (the session is being removed).
    pub(crate) fn clear(&self) {
        let mut s = self.state.lock();
        let n = (s.qos0.len() + s.qos1.len() + s.inflight.len()) as u64;
        s.qos0.clear();
        s.qos1.clear();
        s.inflight.clear();
        self.metrics.queued.fetch_sub(n, Relaxed);
    }

    pub(crate) fn is_online(&self) -> bool {
        self.state.lock().online
    }

    /// Queues a shared, pre-encoded QoS 0 PUBLISH. Dropped (and counted) when offline or full.
    pub(crate) fn push_qos0(&self, packet: &Bytes) -> bool {
        let mut s = self.state.lock();
        if !s.online {
            self.metrics.dropped_qos0_offline.fetch_add(1, Relaxed);
            return false;
        }
        if s.qos0.len() >= self.limits.qos0 {
            self.metrics.dropped_qos0_full.fetch_add(1, Relaxed);
            return false;
        }
        s.qos0.push_back(packet.clone());
        self.metrics.queued.fetch_add(1, Relaxed);
        let wake = s.qos0.len() == 1;
        drop(s);
        if wake {
            self.wake.notify_one();
        }
        true
    }

    /// Queues a QoS 1 message; when the queue is full the oldest waiting one is dropped.
    pub(crate) fn push_qos1(&self, topic: &Arc<str>, payload: &Bytes) {
        let mut s = self.state.lock();
        if s.qos1.len() >= self.limits.qos1 {
            s.qos1.pop_front();
            self.metrics.dropped_qos1_full.fetch_add(1, Relaxed);
        } else {
            self.metrics.queued.fetch_add(1, Relaxed);
        }
        s.qos1.push_back(Pending { topic: topic.clone(), payload: payload.clone(), pkid: 0, dup: false });
        let online = s.online;
        drop(s);
        if online {
            self.wake.notify_one();
        }
    }

    /// Queues a control packet for the connection of `generation`.
    pub(crate) fn push_control(&self, generation: u64, packet: Bytes) {
        let mut s = self.state.lock();
        if s.generation != generation {
            return;
        }
        s.control.push_back(packet);
        drop(s);
        self.wake.notify_one();
    }

    /// A PUBACK: frees the window slot.
    pub(crate) fn acked(&self, pkid: u16) {
        let mut s = self.state.lock();
        if let Some(i) = s.inflight.iter().position(|p| p.pkid == pkid) {
            s.inflight.remove(i);
            self.metrics.queued.fetch_sub(1, Relaxed);
            let more = !s.qos1.is_empty();
            drop(s);
            if more {
                self.wake.notify_one();
            }
        }
    }

    /// Moves what may be written now into `out` (control, QoS 1 within the window, QoS 0), up to
    /// about `max_bytes`.
    pub(crate) fn drain(&self, generation: u64, out: &mut BufList, max_bytes: usize) -> Drained {
        let mut s = self.state.lock();
        if s.generation != generation || !s.online {
            return Drained::Stale;
        }
        let before = out.len();
        let mut bytes = 0;
        while let Some(c) = s.control.pop_front() {
            bytes += c.len();
            out.push(c);
        }
        while s.inflight.len() < self.limits.inflight && bytes < max_bytes {
            let Some(mut p) = s.qos1.pop_front() else { break };
            if p.pkid == 0 {
                p.pkid = next_pkid(&mut s);
            }
            let header = codec::publish_header(&p.topic, Some(p.pkid), p.dup, p.payload.len());
            bytes += header.len() + p.payload.len();
            out.push(header.freeze());
            out.push(p.payload.clone());
            s.inflight.push_back(p);
            self.metrics.qos1_out.fetch_add(1, Relaxed);
        }
        let mut sent0 = 0u64;
        while bytes < max_bytes {
            let Some(packet) = s.qos0.pop_front() else { break };
            bytes += packet.len();
            out.push(packet);
            sent0 += 1;
        }
        drop(s);
        if sent0 > 0 {
            self.metrics.qos0_out.fetch_add(sent0, Relaxed);
            self.metrics.queued.fetch_sub(sent0, Relaxed);
        }
        Drained::Some(out.len() - before)
    }

    /// Records a subscription; says whether it is new.
    pub(crate) fn add_filter(&self, filter: Arc<str>, qos: QoS) -> bool {
        self.state.lock().filters.insert(filter, qos).is_none()
    }

    pub(crate) fn remove_filter(&self, filter: &str) -> bool {
        self.state.lock().filters.remove(filter).is_some()
    }

    pub(crate) fn filters(&self) -> Vec<Arc<str>> {
        self.state.lock().filters.keys().cloned().collect()
    }

    /// Messages waiting or in flight.
    #[cfg(test)]
    pub(crate) fn depth(&self) -> usize {
        let s = self.state.lock();
        s.qos0.len() + s.qos1.len() + s.inflight.len()
    }
}

/// The next packet id not in flight (1..=65535; the window is far smaller than the id space).
fn next_pkid(s: &mut State) -> u16 {
    loop {
        let id = s.next_pkid;
        s.next_pkid = if id == u16::MAX { 1 } else { id + 1 };
        if !s.inflight.iter().any(|p| p.pkid == id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    fn session(qos0: usize, qos1: usize, inflight: usize) -> (Session, Arc<Metrics>) {
        let m = Arc::new(Metrics::default());
        let s = Session::new(
            1,
            "d".into(),
            Principal::Device("d".into()),
            true,
            Sink::Socket,
            m.clone(),
            QueueLimits { qos0, qos1, inflight },
        );
        (s, m)
    }

    #[test]
    fn a_full_qos0_queue_drops_new_messages_and_counts_them() {
        let (s, m) = session(2, 10, 4);
        let (tx, _rx) = oneshot::channel();
        s.attach(tx);
        let p = Bytes::from_static(b"x");
        assert!(s.push_qos0(&p));
        assert!(s.push_qos0(&p));
        assert!(!s.push_qos0(&p));
        assert_eq!(m.snapshot().dropped_qos0_full, 1);
        assert_eq!(s.depth(), 2);
    }

    #[test]
    fn an_offline_session_keeps_qos1_but_not_qos0() {
        let (s, m) = session(8, 8, 4);
        assert!(!s.push_qos0(&Bytes::from_static(b"x")));
        s.push_qos1(&"t".into(), &Bytes::from_static(b"y"));
        assert_eq!((m.snapshot().dropped_qos0_offline, s.depth()), (1, 1));
    }

    #[test]
    fn a_full_qos1_queue_drops_the_oldest() {
        let (s, m) = session(8, 2, 4);
        for p in [&b"1"[..], b"2", b"3"] {
            s.push_qos1(&"t".into(), &Bytes::copy_from_slice(p));
        }
        let (tx, _rx) = oneshot::channel();
        let (generation, _) = s.attach(tx);
        let mut out = BufList::default();
        assert_eq!(s.drain(generation, &mut out, 1 << 20), Drained::Some(4));
        let bytes = out.copy_to_bytes(out.remaining());
        assert!(bytes.ends_with(b"3") && !bytes.windows(1).any(|w| w == b"1"), "{bytes:?}");
        assert_eq!(m.snapshot().dropped_qos1_full, 1);
    }

    #[test]
    fn the_window_limits_unacknowledged_qos1_and_a_reconnect_resends_them_as_dup() {
        let (s, _m) = session(8, 8, 1);
        s.push_qos1(&"t".into(), &Bytes::from_static(b"a"));
        s.push_qos1(&"t".into(), &Bytes::from_static(b"b"));
        let (tx, _rx) = oneshot::channel();
        let (g1, _) = s.attach(tx);
        let mut out = BufList::default();
        assert_eq!(s.drain(g1, &mut out, 1 << 20), Drained::Some(2), "one message: header and payload");
        assert_eq!(s.drain(g1, &mut BufList::default(), 1 << 20), Drained::Some(0), "the window is full");
        let (tx2, _rx2) = oneshot::channel();
        let (g2, took_over) = s.attach(tx2);
        assert!(took_over);
        assert_eq!(s.drain(g1, &mut BufList::default(), 1 << 20), Drained::Stale);
        let mut out = BufList::default();
        assert_eq!(s.drain(g2, &mut out, 1 << 20), Drained::Some(2));
        assert_eq!(out.chunk()[0], 0x3A, "QoS 1 PUBLISH with DUP");
        s.acked(1);
        assert_eq!(s.drain(g2, &mut BufList::default(), 1 << 20), Drained::Some(2), "the next one after the ack");
    }
}
