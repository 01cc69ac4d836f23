//! Counters and gauges the controller can show (`/metrics`), one atomic each.
//!
//! In multi-process mode each worker sends its snapshot to the main process once a second;
//! [`crate::Broker::metrics`] adds them up.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! metrics {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters (monotonic) and gauges (current values), updated with relaxed atomics.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of the [`Metrics`] at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Metrics {
            /// Reads every counter.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($name: self.$name.load(Relaxed),)* }
            }
        }

        impl MetricsSnapshot {
            /// Every value with its stable name, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($name), self.$name),)*].into_iter()
            }

            /// Adds `other` to these (gauges add too: a fleet's connections are the sum of the
            /// processes' connections).
            pub fn add(&mut self, other: &MetricsSnapshot) {
                $(self.$name = self.$name.saturating_add(other.$name);)*
            }

            /// The values in declaration order (the worker wire format).
            pub(crate) fn to_vec(self) -> Vec<u64> {
                vec![$(self.$name,)*]
            }

            /// Back from [`MetricsSnapshot::to_vec`]; missing values read as zero.
            pub(crate) fn from_slice(values: &[u64]) -> MetricsSnapshot {
                let mut it = values.iter().copied();
                MetricsSnapshot { $($name: it.next().unwrap_or(0),)* }
            }
        }
    };
}

metrics! {
    /// Gauge: connections currently open (after CONNACK).
    connections,
    /// Gauge: sessions held (connected or persistent and offline).
    sessions,
    /// Gauge: messages waiting in outbound queues and in flight, over every session.
    queued,
    /// Connections accepted (CONNACK sent).
    connects,
    /// CONNECTs refused: bad login, client id not the username, hook failure.
    connects_refused,
    /// Connections dropped before a valid CONNECT (timeout, protocol error, not MQTT 3.1.1).
    handshakes_failed,
    /// Sessions taken over by a new connection with the same client id.
    takeovers,
    /// Connections closed for missing their keep-alive.
    keepalive_timeouts,
    /// Accept errors (EMFILE and the like); each is followed by a backoff.
    accept_errors,
    /// PUBLISH packets received from clients.
    publish_in,
    /// Messages published through in-process links.
    link_publish_in,
    /// QoS 0 messages written to sockets (broadcast and other QoS 0 traffic).
    qos0_out,
    /// QoS 1 messages written to sockets (first sends and resends).
    qos1_out,
    /// Messages handed to in-process links.
    link_out,
    /// QoS 0 messages dropped because the connection's queue was full.
    dropped_qos0_full,
    /// QoS 0 messages not kept for an offline session.
    dropped_qos0_offline,
    /// QoS 1 messages dropped because the session's queue was full (oldest first).
    dropped_qos1_full,
    /// Messages dropped because an in-process link's channel stayed full or was closed.
    dropped_link,
    /// Publishes refused by the ACL (dropped).
    acl_publish_refused,
    /// Subscriptions refused by the ACL (SUBACK failure).
    acl_subscribe_refused,
    /// QoS 2 publishes refused (the connection is closed; QoS 2 subscriptions are granted QoS 1).
    qos2_refused,
    /// Sockets handed to worker processes.
    handoffs,
}
