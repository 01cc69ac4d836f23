//! `clients`: rumqttc 0.25 device connections (as the agent uses them: client id = username,
//! persistent session, QoS 1), spread over destination addresses 127.0.0.1..k so no address
//! pair runs out of ephemeral ports. Each device subscribes to its own `chunk` topic and the
//! broadcast topic, counts what arrives and reports when every device of this process has all.

use crate::serve::{addrs, BROADCAST};
use crate::{now_ns, DEVICE_PASSWORD_PREFIX};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

/// SO_RCVBUF of every device connection (the kernel doubles it).
const RECV_BUFFER: u32 = 8 * 1024;

/// Counters of one phase over all devices of this process.
#[derive(Default)]
struct Phase {
    /// Devices that have everything of this phase.
    complete: AtomicUsize,
    /// When the last of them completed (ns since the epoch).
    last_ns: AtomicU64,
    /// Messages received in this phase.
    received: AtomicU64,
}

impl Phase {
    fn done(&self) {
        self.complete.fetch_add(1, Relaxed);
        self.last_ns.fetch_max(now_ns(), Relaxed);
    }
}

#[derive(Default)]
struct Shared {
    bcast: Phase,
    unicast: Phase,
    resp: Phase,
    connected: AtomicUsize,
    failed: AtomicUsize,
}

pub async fn run(port: u16, k: u8, from: u64, count: u64, bcast: u32, unicast: u32) -> Result<(), String> {
    let limit = airlock_broker::limits::raise_fd_limit().map_err(|e| e.to_string())?;
    if limit.soft < count + 100 {
        return Err(format!("{count} connections need more than the open-file limit {}", limit.soft));
    }
    let shared = Arc::new(Shared::default());
    let targets = addrs(port, k);
    let gate = Arc::new(Semaphore::new(256));
    let t_start = now_ns();
    let mut clients = Vec::with_capacity(count as usize);
    let mut pending = Vec::with_capacity(count as usize);
    for n in from..from + count {
        let addr = targets[(n % u64::from(k)) as usize];
        let id = format!("dev-{n}");
        let mut o = rumqttc::MqttOptions::new(id.clone(), addr.ip().to_string(), addr.port());
        o.set_credentials(id.clone(), format!("{DEVICE_PASSWORD_PREFIX}{id}"))
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(300))
            .set_max_packet_size(16 * 1024, 16 * 1024)
            .set_inflight(16);
        let (client, mut el) = rumqttc::AsyncClient::new(o, 8);
        // A device-sized receive window (a microcontroller's is a few KiB): without it 100,000
        // autotuned receive buffers exceed the kernel's TCP memory and it starts dropping.
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_tcp_recv_buffer_size(RECV_BUFFER);
        el.set_network_options(net);
        clients.push(client.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        pending.push(rx);
        tokio::spawn(device(el, client, id, shared.clone(), gate.clone(), tx, bcast, unicast));
    }
    for rx in pending {
        let _ = rx.await;
    }
    println!("connected {t_start} {} {} {}", now_ns(), shared.connected.load(Relaxed), shared.failed.load(Relaxed));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["request"] => {
                let t0 = now_ns();
                for (i, c) in clients.iter().enumerate() {
                    let topic = format!("airlock/v1/d/dev-{}/chunk/req", from + i as u64);
                    let _ = c.publish(topic, rumqttc::QoS::AtLeastOnce, false, vec![0u8; 16]).await;
                }
                println!("requested {t0} {}", now_ns());
            }
            ["wait", what, secs] => {
                let phase = match *what {
                    "bcast" => &shared.bcast,
                    "unicast" => &shared.unicast,
                    _ => &shared.resp,
                };
                let deadline = tokio::time::Instant::now() + Duration::from_secs(secs.parse().unwrap_or(120));
                let connected = shared.connected.load(Relaxed);
                while phase.complete.load(Relaxed) < connected && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                println!(
                    "{what} {} {} {}",
                    phase.complete.load(Relaxed),
                    phase.last_ns.load(Relaxed),
                    phase.received.load(Relaxed)
                );
            }
            ["quit"] => break,
            _ => eprintln!("clients: unknown command {line:?}"),
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn device(
    mut el: rumqttc::EventLoop,
    client: rumqttc::AsyncClient,
    id: String,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    ready: tokio::sync::oneshot::Sender<()>,
    bcast: u32,
    unicast: u32,
) {
    let permit = gate.acquire_owned().await;
    let mut ready = Some((ready, permit));
    let chunk = format!("airlock/v1/d/{id}/chunk");
    let (mut nb, mut nu, mut nr) = (0u32, 0u32, 0u32);
    let mut failures = 0;
    loop {
        match el.poll().await {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                let _ = client.try_subscribe_many([
                    rumqttc::SubscribeFilter::new(chunk.clone(), rumqttc::QoS::AtLeastOnce),
                    rumqttc::SubscribeFilter::new(BROADCAST.into(), rumqttc::QoS::AtMostOnce),
                ]);
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                if let Some((tx, _permit)) = ready.take() {
                    shared.connected.fetch_add(1, Relaxed);
                    let _ = tx.send(());
                }
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                if p.topic == BROADCAST {
                    shared.bcast.received.fetch_add(1, Relaxed);
                    nb += 1;
                    if nb == bcast {
                        shared.bcast.done();
                    }
                } else if p.payload.first() == Some(&2) {
                    shared.resp.received.fetch_add(1, Relaxed);
                    nr += 1;
                    if nr == 1 {
                        shared.resp.done();
                    }
                } else {
                    shared.unicast.received.fetch_add(1, Relaxed);
                    nu += 1;
                    if nu == unicast {
                        shared.unicast.done();
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                if ready.is_some() && failures >= 20 {
                    eprintln!("clients: {id} gave up connecting: {e}");
                    if let Some((tx, _permit)) = ready.take() {
                        shared.failed.fetch_add(1, Relaxed);
                        let _ = tx.send(());
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
