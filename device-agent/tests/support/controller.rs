//! A stand-in controller on its own MQTT connection: publishes deliveries, answers chunk
//! requests from in-memory images (with a budget, to stall a download on purpose), and checks
//! every report's signature against the device's public key.

use super::broker::{CONTROLLER_PASSWORD, CONTROLLER_USER};
use super::fleet::CHUNK;
use airlock_proto::topics::{topic, Kind};
use airlock_proto::{decode, Chunk, ChunkRequest, Digest, Domain, Event, PublicKey, Report, Signed};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

/// A report whose signature verified under the device key.
#[derive(Clone, Debug)]
pub struct Seen {
    pub counter: u64,
    pub event: Event,
}

pub struct Controller {
    client: AsyncClient,
    device: String,
    reports: mpsc::UnboundedReceiver<Result<Seen, String>>,
    pub seen: Vec<Seen>,
    /// Chunks still to be served; negative: unlimited.
    pub budget: Arc<AtomicI64>,
    /// Every chunk request, with when it arrived.
    pub requests: Arc<Mutex<Vec<(Instant, ChunkRequest)>>>,
    tasks: Vec<AbortHandle>,
}

fn options(url: &str, client_id: &str, clean: bool) -> MqttOptions {
    let (host, port) = airlock_agent::config::parse_mqtt_url(url).unwrap();
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_keep_alive(Duration::from_secs(30)).set_clean_session(clean).set_max_packet_size(16 * 1024, 16 * 1024);
    o
}

impl Controller {
    /// Connects, subscribes to the device's reports and chunk requests, and waits for the SUBACK.
    pub async fn connect(url: &str, device: &str, device_key: PublicKey, images: &[&[u8]]) -> Controller {
        let mut opts = options(url, &format!("ctl-{device}"), true);
        opts.set_credentials(CONTROLLER_USER, CONTROLLER_PASSWORD);
        let (client, mut eventloop) = AsyncClient::new(opts, 256);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);
        let images: HashMap<Digest, Vec<u8>> = images.iter().map(|i| (super::fleet::sha256(i), i.to_vec())).collect();
        let (report_tx, reports) = mpsc::unbounded_channel();
        let (req_tx, mut req_rx) = mpsc::unbounded_channel::<ChunkRequest>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let requests: Arc<Mutex<Vec<(Instant, ChunkRequest)>>> = Arc::default();
        let budget = Arc::new(AtomicI64::new(-1));
        let (report_topic, request_topic) = (t(device, Kind::Report), t(device, Kind::ChunkRequest));
        let (sub, dev, reqs) = (client.clone(), device.to_string(), requests.clone());
        let (mut ready_tx, mut subacks) = (Some(ready_tx), 0);
        let poll = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        sub.subscribe(report_topic.clone(), QoS::AtLeastOnce).await.unwrap();
                        sub.subscribe(request_topic.clone(), QoS::AtLeastOnce).await.unwrap();
                    }
                    Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                        subacks += 1;
                        if subacks == 2 {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == report_topic => {
                        let _ = report_tx.send(verify(&p.payload, &dev, device_key));
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == request_topic => {
                        let r: ChunkRequest = decode(&p.payload).unwrap();
                        reqs.lock().unwrap().push((Instant::now(), r));
                        let _ = req_tx.send(r);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let (answer, chunk_topic, left) = (client.clone(), t(device, Kind::Chunk), budget.clone());
        let serve = tokio::spawn(async move {
            while let Some(r) = req_rx.recv().await {
                let Some(img) = images.get(&r.image) else { continue };
                let mut at = r.offset;
                while at < r.offset + r.len {
                    if left.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| Some(if b > 0 { b - 1 } else { b }))
                        .unwrap();
                    let end = (at + CHUNK).min(r.offset + r.len).min(img.len() as u32);
                    let chunk = Chunk { image: r.image, offset: at, data: &img[at as usize..end as usize] };
                    let bytes = postcard::to_allocvec(&chunk).unwrap();
                    answer.publish(chunk_topic.clone(), QoS::AtLeastOnce, false, bytes).await.unwrap();
                    at = end;
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx).await.expect("controller SUBACKs").unwrap();
        Controller {
            client,
            device: device.to_string(),
            reports,
            seen: Vec::new(),
            budget,
            requests,
            tasks: vec![poll.abort_handle(), serve.abort_handle()],
        }
    }

    pub async fn publish(&self, kind: Kind, payload: Vec<u8>) {
        self.client.publish(t(&self.device, kind), QoS::AtLeastOnce, false, payload).await.unwrap();
    }

    /// The next report matching `pred` (earlier ones are kept in `seen`). Panics on a report whose
    /// signature does not verify, and on timeout.
    pub async fn expect(&mut self, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Seen {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.reports.recv()).await;
            match next {
                Ok(Some(Ok(seen))) => {
                    self.seen.push(seen.clone());
                    if pred(&seen.event) {
                        return seen;
                    }
                }
                Ok(Some(Err(e))) => panic!("a report failed verification: {e}"),
                Ok(None) => panic!("controller connection gone"),
                Err(_) => panic!("no matching report within {timeout:?}; seen: {:#?}", self.seen),
            }
        }
    }

    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.seen.iter().filter(|s| pred(&s.event)).count()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn t(device: &str, kind: Kind) -> String {
    topic(device, kind).unwrap().as_str().to_string()
}

/// Verifies a signed report under the device key and decodes it.
fn verify(payload: &[u8], device: &str, key: PublicKey) -> Result<Seen, String> {
    let signed: Signed<'_> = decode(payload).map_err(|e| format!("envelope: {e:?}"))?;
    let body = signed.verify_by(Domain::Report, &[key]).map_err(|e| format!("signature: {e:?}"))?;
    let report: Report<'_> = decode(body).map_err(|e| format!("body: {e:?}"))?;
    if report.device != device {
        return Err(format!("report for {} on {device}'s topic", report.device));
    }
    Ok(Seen { counter: report.counter, event: report.event })
}

/// Ends a persistent session left on the broker (connect clean, disconnect), so test runs do
/// not pile sessions up on a shared Mosquitto.
pub async fn wipe_session(url: &str, client_id: &str, password: &str) {
    let mut opts = options(url, client_id, true);
    opts.set_credentials(client_id, password);
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let wipe = async {
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.disconnect().await;
                }
                Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), wipe).await;
}
