//! `serve`: one broker candidate and the controller side, in one process (as the controller
//! would embed it). Commands on stdin, results on stdout.
//!
//! - ours: `airlock-broker`, the controller side is its in-process link; more than one
//!   process's descriptors → worker processes (this binary's `worker` role).
//! - rumqttd 0.20: tuned (below); the controller side is a rumqttc client over loopback, as the
//!   controller uses it today (rumqttd's own local link publishes QoS 0 only).
//! - rmqtt 0.24 as a library: auth and ACL hooks (the same ACL as ours); controller side as for
//!   rumqttd.

use crate::{now_ns, DEVICE_PASSWORD_PREFIX};
use airlock_broker::{Broker, BrokerConfig, Principal, Processes, QoS, WorkerCommand};
use bytes::Bytes;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

pub const BROADCAST: &str = "airlock/v1/i/bench";
pub const CONTROLLER: &str = "airlock-controller";
pub const CONTROLLER_PASSWORD: &str = "controller-secret";

pub fn addrs(port: u16, k: u8) -> Vec<SocketAddr> {
    (1..=k).map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)), port)).collect()
}

/// Devices log in as `dev-{n}` with password `pw-dev-{n}`; the controller with its own.
pub fn check_login(user: &str, password: &str) -> Option<Principal> {
    if user == CONTROLLER {
        return (password == CONTROLLER_PASSWORD).then_some(Principal::Controller);
    }
    let ok = user.starts_with("dev-") && password.strip_prefix(DEVICE_PASSWORD_PREFIX) == Some(user);
    ok.then(|| Principal::Device(user.into()))
}

struct Auth;
impl airlock_broker::Authenticator for Auth {
    fn authenticate<'a>(&'a self, login: &'a airlock_broker::Login) -> airlock_broker::AuthFuture<'a> {
        let r = check_login(&login.username, &login.password)
            .ok_or_else(|| airlock_broker::AuthRefusal::WrongPassword(login.username.clone()));
        Box::pin(std::future::ready(r))
    }
}

/// The controller side: publish and answer chunk requests.
#[derive(Clone)]
enum Ctl {
    Link(airlock_broker::LinkTx),
    Client(rumqttc::AsyncClient),
}

impl Ctl {
    async fn publish(&self, topic: &str, payload: Bytes, qos: QoS) {
        match self {
            Ctl::Link(l) => {
                let _ = l.publish(topic, payload, qos).await;
            }
            Ctl::Client(c) => {
                let q = if qos == QoS::AtMostOnce { rumqttc::QoS::AtMostOnce } else { rumqttc::QoS::AtLeastOnce };
                let _ = c.publish_bytes(topic.to_string(), q, false, payload).await;
            }
        }
    }
}

pub async fn run(broker: &str, port: u16, k: u8, devices: u64) -> Result<(), String> {
    let answered = Arc::new(AtomicU64::new(0));
    let (ctl, ours, workers) = match broker {
        "ours" => {
            let mut config = BrokerConfig::new(addrs(port, k)[0]);
            config.listen = addrs(port, k);
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            config.processes = Processes::Auto {
                expected_connections: devices + 100,
                worker: WorkerCommand { program: exe, args: vec!["worker".into()], fd_limit: None },
            };
            let b = Broker::start(config, Arc::new(Auth)).await.map_err(|e| e.to_string())?;
            let (tx, mut rx) = b.link("controller", 65_536);
            tx.subscribe("airlock/v1/d/+/chunk/req", QoS::AtLeastOnce).map_err(|e| e.to_string())?;
            let answer = tx.clone();
            let answered = answered.clone();
            tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    let topic = m.topic.strip_suffix("/req").unwrap_or(&m.topic).to_string();
                    let _ = answer.publish(&topic, response(), QoS::AtLeastOnce).await;
                    answered.fetch_add(1, Relaxed);
                }
            });
            let pids = b.worker_pids();
            (Ctl::Link(tx), Some(b), pids)
        }
        "rumqttd" => {
            start_rumqttd(port, k, devices)?;
            (controller_client(port, answered.clone()).await?, None, vec![])
        }
        "rmqtt" => {
            start_rmqtt(port, k, devices).await?;
            (controller_client(port, answered.clone()).await?, None, vec![])
        }
        other => return Err(format!("unknown broker {other}")),
    };
    let pids: Vec<String> = workers.iter().map(|p| p.to_string()).collect();
    println!("ready {}", pids.join(" "));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["bcast", count, size, rate] => {
                let (count, size): (usize, usize) = (count.parse().unwrap_or(64), size.parse().unwrap_or(4096));
                let pace = Pace::new(rate.parse().unwrap_or(0));
                let t0 = now_ns();
                for n in 0..count {
                    pace.wait(n as u64 * devices).await;
                    let mut p = vec![0u8; size];
                    p[0] = n as u8;
                    ctl.publish(BROADCAST, Bytes::from(p), QoS::AtMostOnce).await;
                }
                println!("sent {t0} {}", now_ns());
            }
            ["unicast", count, size, rate] => {
                let (count, size): (usize, usize) = (count.parse().unwrap_or(16), size.parse().unwrap_or(4096));
                let pace = Pace::new(rate.parse().unwrap_or(0));
                let t0 = now_ns();
                let mut sent = 0u64;
                let mut p = vec![0u8; size];
                p[0] = 1;
                let payload = Bytes::from(p);
                for n in 0..count {
                    for d in 0..devices {
                        let _ = n;
                        if sent % 1000 == 0 {
                            pace.wait(sent).await;
                        }
                        sent += 1;
                        ctl.publish(&format!("airlock/v1/d/dev-{d}/chunk"), payload.clone(), QoS::AtLeastOnce).await;
                    }
                }
                println!("sent {t0} {}", now_ns());
            }
            ["stats"] => {
                let mut s = format!("stats answered={}", answered.load(Relaxed));
                if let Some(b) = &ours {
                    for (name, v) in b.metrics().iter() {
                        s.push_str(&format!(" {name}={v}"));
                    }
                }
                println!("{s}");
            }
            ["quit"] => break,
            _ => eprintln!("serve: unknown command {line:?}"),
        }
    }
    if let Some(b) = ours {
        b.shutdown().await;
    }
    Ok(())
}

/// A controller's send rate limit (messages delivered per second; 0: none), as a rollout engine
/// or a carousel paces itself.
struct Pace {
    per_second: u64,
    start: tokio::time::Instant,
}

impl Pace {
    fn new(per_second: u64) -> Pace {
        Pace { per_second, start: tokio::time::Instant::now() }
    }

    /// Waits until `delivered` messages are due.
    async fn wait(&self, delivered: u64) {
        if self.per_second > 0 {
            let due = self.start + Duration::from_secs_f64(delivered as f64 / self.per_second as f64);
            tokio::time::sleep_until(due).await;
        }
    }
}

fn response() -> Bytes {
    let mut p = vec![0u8; 4096];
    p[0] = 2;
    Bytes::from(p)
}

/// The controller over loopback (rumqttd, rmqtt): subscribed to chunk requests, answering each.
async fn controller_client(port: u16, answered: Arc<AtomicU64>) -> Result<Ctl, String> {
    let mut o = rumqttc::MqttOptions::new(CONTROLLER, "127.0.0.1", port);
    o.set_credentials(CONTROLLER, CONTROLLER_PASSWORD)
        .set_keep_alive(Duration::from_secs(60))
        .set_max_packet_size(64 * 1024, 64 * 1024)
        .set_inflight(1000)
        .set_clean_session(true);
    let (client, mut el) = rumqttc::AsyncClient::new(o, 10_000);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    let sub = client.clone();
    let answer = client.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    let _ = sub.try_subscribe("airlock/v1/d/+/chunk/req", rumqttc::QoS::AtLeastOnce);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    if let Some(t) = ready_tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let topic = p.topic.strip_suffix("/req").unwrap_or(&p.topic).to_string();
                    let answer = answer.clone();
                    // Not awaited in the event loop: the request channel is drained by this loop.
                    tokio::spawn(async move {
                        let _ = answer.publish_bytes(topic, rumqttc::QoS::AtLeastOnce, false, response()).await;
                    });
                    answered.fetch_add(1, Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("serve: controller connection: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(20), ready_rx)
        .await
        .map_err(|_| "the controller client did not connect".to_string())?
        .map_err(|_| "controller loop ended".to_string())?;
    Ok(Ctl::Client(client))
}

/// rumqttd 0.20, tuned: room for every connection, a deep outgoing batch, large segments (so
/// the broadcast log never laps a reader), the largest inflight window, no connection delay.
fn start_rumqttd(port: u16, k: u8, devices: u64) -> Result<(), String> {
    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 64 * 1024,
        max_inflight_count: 1000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    connections.set_auth_handler(|_client_id, user, pass| async move { check_login(&user, &pass).is_some() });
    let mut v4 = std::collections::HashMap::new();
    for (i, addr) in addrs(port, k).into_iter().enumerate() {
        v4.insert(
            format!("l{i}"),
            ServerSettings {
                name: format!("l{i}"),
                listen: addr,
                tls: None,
                next_connection_delay_ms: 0,
                connections: connections.clone(),
            },
        );
    }
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: devices as usize + 1000,
            max_outgoing_packet_count: 1000,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        ..Default::default()
    };
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                eprintln!("serve: rumqttd stopped: {e}");
            }
        })
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(500));
    Ok(())
}

/// rmqtt 0.24 as a library, tuned: no busy check, deep handshake and queue limits, nodelay.
async fn start_rmqtt(port: u16, k: u8, devices: u64) -> Result<(), String> {
    use rmqtt::context::ServerContext;
    use rmqtt::hook::Type;
    use rmqtt::net::Builder;
    use rmqtt::server::MqttServer;
    let scx = ServerContext::new().busy_check_enable(false).mqtt_max_sessions(0).build().await;
    let register = scx.extends.hook_mgr().register();
    register.add(Type::ClientAuthenticate, Box::new(crate::rmqtt_hooks::Hooks)).await;
    register.add(Type::ClientSubscribeCheckAcl, Box::new(crate::rmqtt_hooks::Hooks)).await;
    register.add(Type::MessagePublishCheckAcl, Box::new(crate::rmqtt_hooks::Hooks)).await;
    register.start().await;
    let mut server = MqttServer::new(scx);
    for (i, addr) in addrs(port, k).into_iter().enumerate() {
        let listener = Builder::new()
            .name("tcp")
            .laddr(addr)
            .backlog(4096)
            .nodelay(true)
            .max_connections(devices as usize + 1000)
            .max_handshaking_limit(10_000)
            .max_packet_size(64 * 1024)
            .max_inflight(std::num::NonZeroU16::new(1000).unwrap_or(std::num::NonZeroU16::MIN))
            .max_mqueue_len(10_000)
            .allow_anonymous(false)
            .handshake_timeout(Duration::from_secs(60))
            .bind()
            .map_err(|e| e.to_string())?
            .tcp()
            .map_err(|e| e.to_string())?;
        // rmqtt keys listeners by port unless told otherwise: one id per address.
        server = server.listener_by_id(listener, i as u16 + 1);
    }
    let server = server.build();
    tokio::spawn(async move {
        if let Err(e) = server.run().await {
            eprintln!("serve: rmqtt stopped: {e}");
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}
