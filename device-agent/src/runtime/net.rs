//! The MQTT side: connection options, the task that polls rumqttc's event loop (reconnecting
//! with exponential backoff), and the outbox that never blocks the device loop.

use crate::config::AgentConfig;
use crate::error::AgentError;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, Publish, QoS,
};
use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;
use tokio::sync::mpsc;

/// Requests rumqttc buffers between the device loop and the event loop. While disconnected the
/// event loop takes none, and the [`Outbox`] holds the rest.
pub(crate) const REQUEST_CAPACITY: usize = 64;

/// Reports and requests held while the broker is unreachable; beyond this the oldest go.
const OUTBOX: usize = 1024;

/// Largest MQTT packet either way: a chunk message (4 KiB of data) plus topic and headers.
const MAX_PACKET: usize = 16 * 1024;

/// What the network task tells the device loop.
#[derive(Debug)]
pub(crate) enum NetEvent {
    /// A CONNACK: (re)connected.
    Connected { session_present: bool },
    /// A message on one of the device's topics (acknowledged after the core handled it).
    Message(Publish),
    /// The connection dropped or could not be made; retrying after a backoff.
    Disconnected,
}

/// rumqttc options: client id = device id, persistent session, manual acks.
pub(crate) fn options(config: &AgentConfig) -> Result<MqttOptions, AgentError> {
    let (host, port) = config.broker()?;
    // The device id is checked non-empty by `AgentConfig::validate`, which a persistent session
    // needs (rumqttc refuses `clean_session(false)` without a client id).
    let mut options = MqttOptions::new(config.device_id.clone(), host, port);
    options
        .set_keep_alive(Duration::from_secs(config.mqtt.keepalive_secs.max(1)))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    if let Some(user) = &config.mqtt.username {
        options.set_credentials(user.clone(), config.mqtt.password.clone().unwrap_or_default());
    }
    Ok(options)
}

/// TCP options: no Nagle delay. Chunk requests are small writes that wait for the answer to
/// the previous one; with Nagle and delayed ACKs each window costs ~40-90 ms on loopback.
pub(crate) fn network_options() -> NetworkOptions {
    let mut options = NetworkOptions::new();
    options.set_tcp_nodelay(true);
    options
}

/// Polls the event loop until the client disconnects or the device loop goes away. Errors are
/// logged and retried after `min`, doubling up to `max` (half of each delay is random, so a
/// fleet that lost its broker does not come back in lockstep); a CONNACK resets the delay.
pub(crate) async fn network(mut eventloop: EventLoop, tx: mpsc::Sender<NetEvent>, min: Duration, max: Duration) {
    let mut delay = min;
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                delay = min;
                tracing::info!(session_present = ack.session_present, "connected to the broker");
                NetEvent::Connected { session_present: ack.session_present }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => NetEvent::Message(publish),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                tracing::debug!("disconnected from the broker");
                return;
            }
            Ok(_) => continue,
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                let wait = jittered(delay);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "broker connection lost");
                if tx.send(NetEvent::Disconnected).await.is_err() {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = tx.closed() => return,
                }
                delay = delay.saturating_mul(2).min(max);
                continue;
            }
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

/// `delay / 2` plus a random part of up to `delay / 2`.
fn jittered(delay: Duration) -> Duration {
    let half = delay / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_nanos(RandomState::new().hash_one(nanos) % nanos)
}

/// Publishes that did not fit rumqttc's request channel yet.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: VecDeque<(String, Vec<u8>)>,
}

impl Outbox {
    pub(crate) fn push(&mut self, topic: String, payload: Vec<u8>) {
        if self.queue.len() >= OUTBOX {
            tracing::warn!(held = OUTBOX, "outbox full while offline: dropping the oldest message");
            self.queue.pop_front();
        }
        self.queue.push_back((topic, payload));
    }

    /// Hands queued messages to rumqttc (QoS 1) until its channel is full.
    pub(crate) fn flush(&mut self, client: &AsyncClient) {
        while let Some((topic, payload)) = self.queue.pop_front() {
            match client.try_publish(topic.as_str(), QoS::AtLeastOnce, false, payload) {
                Ok(()) => {}
                Err(rumqttc::ClientError::TryRequest(rumqttc::Request::Publish(p)))
                | Err(rumqttc::ClientError::Request(rumqttc::Request::Publish(p))) => {
                    self.queue.push_front((topic, p.payload.to_vec()));
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, %topic, "publish failed: dropped");
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_the_whole_delay() {
        for ms in [1, 2, 500, 30_000] {
            let d = Duration::from_millis(ms);
            let j = jittered(d);
            assert!(j >= d / 2 && j <= d, "{j:?} for {d:?}");
        }
    }

    #[test]
    fn the_outbox_drops_the_oldest_when_full() {
        let mut outbox = Outbox::default();
        for i in 0..OUTBOX + 2 {
            outbox.push(format!("t{i}"), vec![]);
        }
        assert_eq!(outbox.len(), OUTBOX);
        assert_eq!(outbox.queue.front().map(|m| m.0.as_str()), Some("t2"));
    }
}
