//! Real brokers for the tests: an embedded rumqttd on an ephemeral port (with per-client
//! username/password auth through its external auth hook), the Mosquitto named by
//! `AIRLOCK_TEST_MQTT_URL`, and a TCP proxy that can cut a device off its broker.

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// The test controller's broker login.
pub const CONTROLLER_USER: &str = "controller";
pub const CONTROLLER_PASSWORD: &str = "controller-secret";

/// Which broker a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Mosquitto,
    Rumqttd,
}

/// A broker to connect to.
pub struct TestBroker {
    pub kind: Kind,
    pub url: String,
}

/// The Mosquitto under test, or `None` (and a loud SKIPPED line) when the variable is unset.
pub fn mosquitto(test: &str) -> Option<TestBroker> {
    match std::env::var("AIRLOCK_TEST_MQTT_URL") {
        Ok(url) if !url.is_empty() => Some(TestBroker { kind: Kind::Mosquitto, url }),
        _ => {
            // The harness captures eprintln!; write to the stream itself so the skip is seen.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: AIRLOCK_TEST_MQTT_URL is not set");
            None
        }
    }
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts rumqttd on an ephemeral port. `logins` are username → password; a client must log
/// in with its own client id as username (the controller with [`CONTROLLER_USER`]).
pub async fn rumqttd(logins: &[(&str, &str)]) -> TestBroker {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut logins: HashMap<String, String> = logins.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect();
    logins.insert(CONTROLLER_USER.into(), CONTROLLER_PASSWORD.into());
    let logins = Arc::new(logins);
    let mut server = ServerSettings {
        name: "v4-test".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: 20 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    server.set_auth_handler(move |client_id: String, user: String, pass: String| {
        let known = logins.get(&user).is_some_and(|p| *p == pass);
        let own_id = user == client_id || (user == CONTROLLER_USER && client_id.starts_with("ctl-"));
        async move { known && own_id }
    });
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 10 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    };
    // `start` blocks for the broker's lifetime (rumqttd has no shutdown): one thread per test.
    std::thread::Builder::new()
        .name(format!("rumqttd-{}", addr.port()))
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                let _ = writeln!(std::io::stderr(), "rumqttd failed: {e}");
            }
        })
        .unwrap();
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return TestBroker { kind: Kind::Rumqttd, url: format!("mqtt://{addr}") };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("rumqttd did not listen on {addr}");
}

/// A TCP proxy in front of a broker; [`Proxy::cut`] drops every connection and refuses new ones
/// until [`Proxy::restore`].
pub struct Proxy {
    pub url: String,
    down: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    pub async fn start(upstream_url: &str) -> Proxy {
        let upstream = upstream_url.trim_start_matches("mqtt://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("mqtt://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (d, l) = (down.clone(), links.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: connection reset
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                l.lock().unwrap().push(link.abort_handle());
            }
        })
        .abort_handle();
        Proxy { url, down, links, accept }
    }

    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
