//! One client connection: the CONNECT handshake, then a reader and a writer over any
//! `AsyncRead + AsyncWrite` stream (plain TCP here; a TLS stream from tokio-rustls fits the same
//! way).
//!
//! - Handshake: the first packet must be a CONNECT of MQTT 3.1.1 within the connect timeout;
//!   MQTT 5 or 3.1 get CONNACK "unacceptable protocol version". Wills are not supported: a
//!   CONNECT with one is served, but the will is never published (Airlock's clients set none).
//! - Reader: enforces keep-alive (no packet for 1.5 × the client's keep-alive closes the
//!   connection), checks every PUBLISH and SUBSCRIBE against the ACL, routes publishes and
//!   acknowledges QoS 1 after routing. QoS 2 PUBLISH is refused by closing the connection; a
//!   QoS 2 subscription is granted QoS 1. Retained flags are ignored (nothing is retained).
//!   A refused publish is acknowledged (QoS 1) and dropped, as Mosquitto does, so a client does
//!   not resend it forever.
//! - Writer: drains the session's queues ([`crate::session`]) into one vectored write per batch.

use crate::acl;
use crate::codec::{self, BufList};
use crate::link::Message;
use crate::ratelog::RateLog;
use crate::router::{Attached, Origin, Router};
use crate::session::{Drained, Session};
use crate::{Principal, QoS};
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet, SubscribeReasonCode};
use rumqttc::mqttbytes::{self, Protocol};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Bytes gathered into one write.
const WRITE_BATCH: usize = 256 * 1024;
/// Read buffer a connection starts with (devices send small packets; it grows for large ones).
const READ_BUFFER: usize = 1024;

static ACL_LOG: RateLog = RateLog::new(Duration::from_secs(5));

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("no CONNECT within {0:?}")]
    Timeout(Duration),
    #[error("closed before CONNECT")]
    Closed,
    #[error("reading CONNECT: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed CONNECT: {0}")]
    Malformed(mqttbytes::Error),
    #[error("the first packet was not a CONNECT")]
    NotConnect,
    #[error("not MQTT 3.1.1")]
    Protocol,
}

/// Reads the CONNECT. Returns it and whatever the client sent after it.
pub(crate) async fn read_connect<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_packet: usize,
    timeout: Duration,
) -> Result<(Connect, BytesMut), HandshakeError> {
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let read = async {
        loop {
            match Packet::read(&mut buf, max_packet) {
                Ok(Packet::Connect(c)) if c.protocol == Protocol::V4 => return Ok(c),
                Ok(Packet::Connect(_)) => return Err(HandshakeError::Protocol),
                Ok(_) => return Err(HandshakeError::NotConnect),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(mqttbytes::Error::InvalidProtocolLevel(_) | mqttbytes::Error::InvalidProtocol) => {
                    return Err(HandshakeError::Protocol)
                }
                Err(e) => return Err(HandshakeError::Malformed(e)),
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(HandshakeError::Closed);
            }
        }
    };
    let connect = tokio::time::timeout(timeout, read).await.map_err(|_| HandshakeError::Timeout(timeout))??;
    Ok((connect, buf))
}

/// Writes a refusing CONNACK and lets the stream close.
pub(crate) async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, code: ConnectReturnCode) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&codec::connack(code, false)).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// What an accepted client asked for.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) client_id: String,
    pub(crate) principal: Principal,
    pub(crate) keep_alive: u16,
    pub(crate) clean_session: bool,
}

/// Serves an authenticated client until it disconnects, is taken over, misses its keep-alive
/// or the broker shuts down.
pub(crate) async fn serve<S>(
    stream: S,
    leftover: BytesMut,
    client: Client,
    router: Arc<Router>,
    max_packet: usize,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let metrics = router.metrics.clone();
    let Attached { session, generation, session_present, mut kicked } =
        router.connect(&client.client_id, client.principal.clone(), !client.clean_session);
    let (rd, mut wr) = tokio::io::split(stream);
    let ack = codec::connack(ConnectReturnCode::Success, session_present);
    if wr.write_all(&ack).await.is_err() {
        router.disconnect(&session, generation);
        return;
    }
    metrics.connects.fetch_add(1, Relaxed);
    metrics.connections.fetch_add(1, Relaxed);
    let keep_alive = (client.keep_alive > 0).then(|| Duration::from_millis(u64::from(client.keep_alive) * 1500));
    let reader = read_loop(rd, leftover, &session, generation, &router, keep_alive, max_packet);
    let writer = write_loop(wr, &session, generation);
    tokio::select! {
        end = reader => {
            if let Err(why) = end {
                tracing::debug!(client = %client.client_id, %why, "connection closed");
            }
        }
        () = writer => {}
        _ = &mut kicked => tracing::debug!(client = %client.client_id, "taken over by a new connection"),
        _ = shutdown.wait_for(|s| *s) => {}
    }
    metrics.connections.fetch_sub(1, Relaxed);
    router.disconnect(&session, generation);
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, session: &Session, generation: u64) {
    loop {
        let mut out = BufList::default();
        match session.drain(generation, &mut out, WRITE_BATCH) {
            Drained::Stale => return,
            Drained::Some(0) => session.wake.notified().await,
            Drained::Some(_) => {
                if wr.write_all_buf(&mut out).await.is_err() || wr.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    mut buf: BytesMut,
    session: &Arc<Session>,
    generation: u64,
    router: &Router,
    keep_alive: Option<Duration>,
    max_packet: usize,
) -> Result<(), String> {
    let metrics = &router.metrics;
    loop {
        loop {
            let packet = match Packet::read(&mut buf, max_packet) {
                Ok(p) => p,
                Err(mqttbytes::Error::InsufficientBytes(_)) => break,
                Err(e) => return Err(format!("malformed packet: {e}")),
            };
            match packet {
                Packet::Publish(p) => {
                    let qos = match p.qos {
                        mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
                        mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
                        mqttbytes::QoS::ExactlyOnce => {
                            metrics.qos2_refused.fetch_add(1, Relaxed);
                            return Err("QoS 2 publish refused".into());
                        }
                    };
                    metrics.publish_in.fetch_add(1, Relaxed);
                    match acl::check_publish(&session.principal, &p.topic) {
                        Ok(()) => {
                            let msg = Message { topic: p.topic.as_str().into(), payload: p.payload, qos };
                            router.publish(msg, Origin::Local).await;
                        }
                        Err(why) => {
                            metrics.acl_publish_refused.fetch_add(1, Relaxed);
                            if let Some(held) = ACL_LOG.allow() {
                                tracing::warn!(client = %session.client_id, topic = %p.topic, reason = why.name(),
                                    held_back = held, "publish refused by the ACL (dropped)");
                            }
                        }
                    }
                    if qos == QoS::AtLeastOnce {
                        session.push_control(generation, codec::puback(p.pkid));
                    }
                }
                Packet::Subscribe(s) => {
                    let mut codes = Vec::with_capacity(s.filters.len());
                    for f in &s.filters {
                        let code = match acl::check_subscribe(&session.principal, &f.path) {
                            Ok(()) => {
                                let qos = if f.qos == mqttbytes::QoS::AtMostOnce {
                                    QoS::AtMostOnce
                                } else {
                                    QoS::AtLeastOnce
                                };
                                router.subscribe(session, &f.path, qos);
                                SubscribeReasonCode::Success(qos.into())
                            }
                            Err(why) => {
                                metrics.acl_subscribe_refused.fetch_add(1, Relaxed);
                                if let Some(held) = ACL_LOG.allow() {
                                    tracing::warn!(client = %session.client_id, filter = %f.path, reason = why.name(),
                                        held_back = held, "subscription refused by the ACL");
                                }
                                SubscribeReasonCode::Failure
                            }
                        };
                        codes.push(code);
                    }
                    session.push_control(generation, codec::suback(s.pkid, codes));
                }
                Packet::Unsubscribe(u) => {
                    for f in &u.topics {
                        router.unsubscribe(session, f);
                    }
                    session.push_control(generation, codec::unsuback(u.pkid));
                }
                Packet::PubAck(a) => session.acked(a.pkid),
                Packet::PingReq => session.push_control(generation, codec::pingresp()),
                Packet::Disconnect => return Ok(()),
                other => return Err(format!("unexpected packet {:?}", packet_name(&other))),
            }
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(READ_BUFFER);
        }
        let read = rd.read_buf(&mut buf);
        let n = match keep_alive {
            Some(limit) => match tokio::time::timeout(limit, read).await {
                Ok(r) => r,
                Err(_) => {
                    metrics.keepalive_timeouts.fetch_add(1, Relaxed);
                    return Err(format!("no packet within {limit:?} (keep-alive)"));
                }
            },
            None => read.await,
        }
        .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed by the client".into());
        }
    }
}

fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::SubAck(_) => "SUBACK",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingResp => "PINGRESP",
        _ => "other",
    }
}
