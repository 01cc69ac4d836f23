//! Lower bounds: what this machine can do at best, measured in the same run as the benchmark.
//!
//! - [`ed25519_verifies_per_sec`]: strict Ed25519 verifications on one core, with the very
//!   function devices call ([`airlock_proto::sig::verify`]).
//! - [`sha256_mb_per_sec`]: SHA-256 throughput on one core (MB = 10^6 bytes).
//! - [`mqtt_loopback_msgs_per_sec`]: QoS 1 messages from one publisher to one subscriber through
//!   a real MQTT 3.1.1 broker, with rumqttc as the devices and the controller use it.
//!
//! The CPU measurements run on the calling thread; call them from a thread that is not also
//! driving an async runtime, or expect them to stall it for `budget`.

use airlock_proto::sig::{self, Domain};
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::hint::black_box;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// Strict Ed25519 verifications per second of one signature over a 32-byte (digest-sized)
/// message, repeated for about `budget` on the calling thread. At least one verification runs.
/// Only successful verifications are counted, so a broken verifier shows up as 0.
pub fn ed25519_verifies_per_sec(budget: Duration) -> f64 {
    let key = ed25519_dalek::SigningKey::from_bytes(&[0x5a; 32]);
    let public = sig::public_key(&key);
    let body = [0xa5u8; 32];
    let signature = sig::sign(Domain::Approval, &body, &key);
    let start = Instant::now();
    let mut ok = 0u64;
    loop {
        if black_box(sig::verify(Domain::Approval, black_box(&body), &public, &signature)).is_ok() {
            ok += 1;
        }
        if start.elapsed() >= budget {
            break;
        }
    }
    ok as f64 / start.elapsed().as_secs_f64()
}

/// SHA-256 throughput in MB (10^6 bytes) per second: a 256 KiB buffer hashed repeatedly for
/// about `budget` on the calling thread. At least one pass runs.
pub fn sha256_mb_per_sec(budget: Duration) -> f64 {
    const LEN: usize = 256 * 1024;
    let buf: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    let mut bytes = 0u64;
    loop {
        black_box(Sha256::digest(black_box(buf.as_slice())));
        bytes += LEN as u64;
        if start.elapsed() >= budget {
            break;
        }
    }
    bytes as f64 / 1e6 / start.elapsed().as_secs_f64()
}

/// An MQTT broker login.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `mqtt://host:port` (also `tcp://`; the port defaults to 1883; IPv6 hosts in brackets).
    pub url: String,
    /// MQTT client id. The controller's embedded broker wants it equal to the username.
    pub client_id: String,
    /// Username, if the broker wants one.
    pub username: Option<String>,
    /// Password, sent only with a username.
    pub password: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Messages per second from `publisher` to `subscriber` through a broker, QoS 1 both ways.
///
/// The subscriber subscribes to a fresh topic (QoS 1) and waits for the SUBACK; then the
/// publisher sends `count` messages of `payload` bytes at QoS 1, with rumqttc's default bound of
/// 100 unacknowledged publishes in flight. The rate is the messages the subscriber received
/// divided by the seconds from the first publish to the last receipt. `timeout` bounds the whole
/// measurement, connecting included. The two endpoints need distinct client ids.
///
/// Errors name the problem: an unparsable URL, a refused connection, a refused login, a refused
/// subscription, a dropped connection, or a timeout with how many messages had arrived.
pub async fn mqtt_loopback_msgs_per_sec(
    publisher: &Endpoint,
    subscriber: &Endpoint,
    payload: usize,
    count: usize,
    timeout: Duration,
) -> Result<f64, String> {
    if count == 0 {
        return Err("mqtt loopback: count must be at least 1".into());
    }
    if publisher.client_id == subscriber.client_id {
        return Err(format!(
            "mqtt loopback: publisher and subscriber both use client id {:?}; the broker would disconnect one",
            publisher.client_id
        ));
    }
    parse_url(&publisher.url)?;
    parse_url(&subscriber.url)?;
    let progress = Arc::new(Progress::default());
    match tokio::time::timeout(timeout, loopback(publisher, subscriber, payload, count, &progress)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "mqtt loopback timed out after {timeout:?} while {}: {} of {count} messages arrived at the subscriber \
             ({} published)",
            progress.phase(),
            progress.received.load(Ordering::Relaxed),
            progress.sent.load(Ordering::Relaxed),
        )),
    }
}

/// How far a loopback measurement got, for the timeout message.
#[derive(Debug, Default)]
struct Progress {
    phase: AtomicU8,
    sent: AtomicUsize,
    received: AtomicUsize,
}

const PHASES: [&str; 5] = [
    "connecting the subscriber",
    "subscribing",
    "connecting the publisher",
    "publishing and receiving",
    "disconnecting",
];

impl Progress {
    fn set(&self, phase: usize) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    fn phase(&self) -> &'static str {
        PHASES.get(usize::from(self.phase.load(Ordering::Relaxed))).copied().unwrap_or("measuring")
    }
}

/// Aborts a spawned task when dropped (on error or timeout), so no event loop outlives the call.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn loopback(
    publisher: &Endpoint,
    subscriber: &Endpoint,
    payload: usize,
    count: usize,
    progress: &Arc<Progress>,
) -> Result<f64, String> {
    let topic = unique_topic();
    // Room for the payload plus topic and headers, and never below rumqttc's default.
    let max_packet = (payload + topic.len() + 64).max(10 * 1024);

    let (sub_client, mut sub_loop, sub_addr) = connect("subscriber", subscriber, max_packet).await?;
    progress.set(1);
    sub_client.subscribe(topic.as_str(), QoS::AtLeastOnce).await.map_err(|e| format!("subscribe: {e}"))?;
    loop {
        match sub_loop.poll().await {
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                    return Err(format!(
                        "the broker at {sub_addr} refused the subscription of {:?} to {topic:?} (SUBACK failure)",
                        subscriber.client_id
                    ));
                }
                break;
            }
            Ok(_) => {}
            Err(e) => return Err(after_connect("subscriber", subscriber, &sub_addr, &e)),
        }
    }

    progress.set(2);
    let (pub_client, mut pub_loop, pub_addr) = connect("publisher", publisher, max_packet).await?;

    progress.set(3);
    let sub_task = {
        let progress = Arc::clone(progress);
        let subscriber = subscriber.clone();
        let topic = topic.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                match sub_loop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic => {
                        if progress.received.fetch_add(1, Ordering::Relaxed) + 1 >= count {
                            return Ok((Instant::now(), sub_loop));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(after_connect("subscriber", &subscriber, &sub_addr, &e)),
                }
            }
        }))
    };
    let pub_task = {
        let publisher = publisher.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                match pub_loop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(ConnectionError::RequestsDone) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(after_connect("publisher", &publisher, &pub_addr, &e)),
                }
            }
        }))
    };

    let mut pub_task = pub_task;
    let mut sub_task = sub_task;
    let body = vec![0xa5u8; payload];
    let start = Instant::now();
    for _ in 0..count {
        if pub_client.publish(topic.as_str(), QoS::AtLeastOnce, false, body.clone()).await.is_err() {
            // The request channel closed: the publisher's event loop ended; say why.
            return Err(match join(&mut pub_task).await {
                Err(e) => e,
                Ok(()) => "the publisher's event loop stopped before all messages were sent".into(),
            });
        }
        progress.sent.fetch_add(1, Ordering::Relaxed);
    }
    let (last, mut sub_loop) = tokio::select! {
        r = join(&mut sub_task) => r?,
        // The publisher's loop ends early only on an error; otherwise keep waiting for receipts.
        Err(e) = join(&mut pub_task) => return Err(e),
    };
    let received = progress.received.load(Ordering::Relaxed);
    let secs = last.duration_since(start).as_secs_f64().max(1e-9);

    // Best effort: a clean DISCONNECT from both, so that brokers do not log lost clients.
    progress.set(4);
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        if pub_client.disconnect().await.is_ok() {
            let _ = join(&mut pub_task).await;
        }
        if sub_client.disconnect().await.is_ok() {
            while let Ok(event) = sub_loop.poll().await {
                if event == Event::Outgoing(Outgoing::Disconnect) {
                    break;
                }
            }
        }
    })
    .await;
    Ok(received as f64 / secs)
}

/// Awaits a spawned task, turning a panic or abort into an error.
async fn join<T>(task: &mut AbortOnDrop<Result<T, String>>) -> Result<T, String> {
    (&mut task.0).await.map_err(|e| format!("mqtt loopback task failed: {e}"))?
}

/// Connects one client and waits for its CONNACK.
async fn connect(role: &str, ep: &Endpoint, max_packet: usize) -> Result<(AsyncClient, EventLoop, String), String> {
    let (host, port) = parse_url(&ep.url)?;
    let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let mut options = MqttOptions::new(ep.client_id.clone(), host, port);
    options.set_keep_alive(Duration::from_secs(30)).set_max_packet_size(max_packet, max_packet);
    if let Some(user) = &ep.username {
        options.set_credentials(user.clone(), ep.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok((client, eventloop, addr)),
            Ok(_) => {}
            Err(e) => return Err(connect_error(role, ep, &addr, &e)),
        }
    }
}

/// What went wrong while connecting, in words.
fn connect_error(role: &str, ep: &Endpoint, addr: &str, e: &ConnectionError) -> String {
    let who = login(ep);
    match e {
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {addr} ({role} {who}): is an MQTT broker listening there?")
        }
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ) => {
            format!("auth refused: the broker at {addr} rejected the {role} login ({who}): {code:?}")
        }
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker at {addr} refused the {role} connection ({who}): {code:?}")
        }
        ConnectionError::NetworkTimeout => format!("timed out connecting the {role} to {addr} ({who})"),
        ConnectionError::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            format!(
                "the broker at {addr} closed the {role} connection during CONNECT ({who}): \
                 probably a refused login (some brokers drop the connection instead of answering): {io}"
            )
        }
        e => format!("connecting the {role} to {addr} ({who}): {e}"),
    }
}

/// What went wrong on an established connection, in words.
fn after_connect(role: &str, ep: &Endpoint, addr: &str, e: &ConnectionError) -> String {
    format!("the {role} connection to {addr} ({}) failed: {e}", login(ep))
}

fn login(ep: &Endpoint) -> String {
    match &ep.username {
        Some(user) => format!("client id {:?}, username {user:?}", ep.client_id),
        None => format!("client id {:?}, anonymous", ep.client_id),
    }
}

/// `mqtt://host[:port]` (or `tcp://`) to host and port; 1883 by default.
fn parse_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| format!("MQTT URL {url:?}: use mqtt://host:port (plain TCP)"))?
        .trim_end_matches('/');
    if rest.contains(['/', '?', '@']) {
        return Err(format!("MQTT URL {url:?}: no path, query or login in the URL; use mqtt://host:port"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| format!("MQTT URL {url:?}: unclosed [ in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(format!("MQTT URL {url:?}: no host"));
    }
    let port = match port {
        None => 1883,
        Some(p) => p.parse::<u16>().map_err(|_| format!("MQTT URL {url:?}: bad port {p:?}"))?,
    };
    Ok((host.to_string(), port))
}

/// A topic no other run uses: process id, time and a counter.
fn unique_topic() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("airlock-bench/loopback/{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn ed25519_rate_is_positive_and_finite() {
        let rate = ed25519_verifies_per_sec(Duration::from_millis(200));
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
        writeln!(std::io::stderr(), "ed25519 strict verifies/s on one core: {rate:.0}").unwrap();
    }

    #[test]
    fn sha256_rate_is_positive_and_finite() {
        let rate = sha256_mb_per_sec(Duration::from_millis(200));
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
        writeln!(std::io::stderr(), "sha256 MB/s on one core: {rate:.1}").unwrap();
    }

    #[test]
    fn urls_parse() {
        assert_eq!(parse_url("mqtt://127.0.0.1:1883").unwrap(), ("127.0.0.1".to_string(), 1883));
        assert_eq!(parse_url("tcp://broker/").unwrap(), ("broker".to_string(), 1883));
        assert_eq!(parse_url("mqtt://[::1]:1884").unwrap(), ("::1".to_string(), 1884));
        assert!(parse_url("mqtts://broker:8883").is_err());
        assert!(parse_url("mqtt://broker:x").is_err());
        assert!(parse_url("mqtt://:1883").is_err());
    }

    fn endpoint(url: &str, role: &str) -> Endpoint {
        Endpoint {
            url: url.to_string(),
            client_id: format!("airlock-bench-{role}-{}", std::process::id()),
            username: None,
            password: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loopback_through_mosquitto_delivers_every_message() {
        let Ok(url) = std::env::var("AIRLOCK_TEST_MQTT_URL") else {
            writeln!(std::io::stderr(), "SKIPPED mqtt loopback: AIRLOCK_TEST_MQTT_URL is not set").unwrap();
            return;
        };
        let (publisher, subscriber) = (endpoint(&url, "pub"), endpoint(&url, "sub"));
        let rate = mqtt_loopback_msgs_per_sec(&publisher, &subscriber, 4096, 2000, Duration::from_secs(60))
            .await
            .expect("loopback through the broker");
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
        writeln!(std::io::stderr(), "mqtt QoS 1 loopback via {url}, 2000 x 4 KiB: {rate:.0} msgs/s").unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loopback_to_a_dead_port_names_it() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("mqtt://127.0.0.1:{port}");
        let (publisher, subscriber) = (endpoint(&url, "pub"), endpoint(&url, "sub"));
        let err =
            mqtt_loopback_msgs_per_sec(&publisher, &subscriber, 16, 10, Duration::from_secs(10)).await.unwrap_err();
        assert!(err.contains("connection refused") && err.contains(&format!("127.0.0.1:{port}")), "{err}");
    }

    #[tokio::test]
    async fn same_client_id_and_zero_count_are_refused() {
        let ep = endpoint("mqtt://127.0.0.1:1", "x");
        let err = mqtt_loopback_msgs_per_sec(&ep, &ep, 16, 10, Duration::from_secs(1)).await.unwrap_err();
        assert!(err.contains("client id"), "{err}");
        let other = endpoint("mqtt://127.0.0.1:1", "y");
        let err = mqtt_loopback_msgs_per_sec(&ep, &other, 16, 0, Duration::from_secs(1)).await.unwrap_err();
        assert!(err.contains("count"), "{err}");
    }
}
