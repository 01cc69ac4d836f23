//! A rogue MQTT client on device topics. On the embedded broker it logs in with a stolen device
//! login (rumqttd has no topic ACLs: any login may publish on any device's topics); on an
//! external broker it connects anonymously (the test Mosquitto allows it; `deploy/mosquitto`
//! would not). From the start of the run it captures every delivery on `+/manifest`, and then
//! publishes forged, replayed, downgraded, approval-stripped and out-of-cohort manifests.
//! Signatures are what stop it: every device must refuse each one with the exact reason.

use crate::controller::Controller;
use crate::fleet::{Device, Fault};
use crate::scenario::Attack;
use crate::SimError;
use airlock_proto::build::{approve, delivery, SignedOwned};
use airlock_proto::topics::{self, Kind};
use airlock_proto::{Decision, Delivery, Digest, Domain, Event, Manifest, Version};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What one attack got.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AttackOutcome {
    /// Messages published.
    pub sent: usize,
    /// Refused with the expected reason.
    pub refused_as_expected: usize,
    /// Refused with another reason, by reason.
    pub refused_otherwise: BTreeMap<String, usize>,
    /// Accepted (must be 0).
    pub accepted: usize,
    /// No answer in time.
    pub unanswered: usize,
    /// The expected refusal.
    pub expected: String,
}

/// The rogue client.
#[derive(Debug)]
pub struct Rogue {
    client: rumqttc::AsyncClient,
    /// Deliveries seen, by device id.
    captured: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Rogue {
    /// Connects (stealing an enrolled login on the embedded broker) and subscribes to every
    /// device's manifest topic.
    pub async fn connect(ctl: &Controller, broker_url: &str, embedded: bool, tag: &str) -> Result<Rogue, SimError> {
        let (host, port) =
            airlock_agent::config::parse_mqtt_url(broker_url).map_err(|e| SimError::Io(format!("rogue: {e}")))?;
        let id = format!("{tag}-rogue");
        let mut o = rumqttc::MqttOptions::new(id.clone(), host, port);
        o.set_keep_alive(Duration::from_secs(30)).set_clean_session(true).set_max_packet_size(64 * 1024, 64 * 1024);
        if embedded {
            // The stolen login: an enrolled device that is not running.
            let key = SigningKey::from_bytes(&crate::sha256(id.as_bytes()));
            let body = json!({ "id": id, "public_key": hex::encode(key.verifying_key().to_bytes()),
                               "hardware": "stolen", "region": "nowhere", "environment": "lab",
                               "firmware": "1.0.0", "tags": [], "enrolled_at": 0 });
            let e = ctl.enroll(&body).await?;
            if let (Some(u), Some(p)) = (e.username, e.password) {
                o.set_credentials(u, p);
            }
        }
        let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 256);
        let captured: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let sink = captured.clone();
        let (subacked, mut subacks) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        if let Some((device, Kind::Manifest)) = topics::parse(&p.topic) {
                            sink.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .insert(device.to_string(), p.payload.to_vec());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = subacked.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        client
            .subscribe("airlock/v1/d/+/manifest", rumqttc::QoS::AtLeastOnce)
            .await
            .map_err(|e| SimError::Io(format!("rogue subscribe: {e}")))?;
        match tokio::time::timeout(Duration::from_secs(15), subacks.recv()).await {
            Ok(Some(())) => Ok(Rogue { client, captured, task }),
            _ => {
                task.abort();
                Err(SimError::Io(format!("the rogue client could not subscribe on {broker_url}")))
            }
        }
    }

    /// Captured deliveries of the manifest with this digest, by device.
    fn captured(&self, manifest: &Digest) -> BTreeMap<String, Vec<u8>> {
        let all = self.captured.lock().unwrap_or_else(PoisonError::into_inner).clone();
        all.into_iter()
            .filter(|(_, bytes)| {
                airlock_proto::decode::<Delivery<'_>>(bytes)
                    .is_ok_and(|d| &airlock_proto::manifest_digest(d.manifest.body) == manifest)
            })
            .collect()
    }

    /// Runs `attacks` against up to `targets` devices each; `approvers` sign the downgrade
    /// (a compromised controller holding the release key, replaying humans' habits).
    pub async fn attack(
        &self,
        devices: &[Arc<Device>],
        manifest: &Digest,
        attacks: &[Attack],
        targets: usize,
        release: &SigningKey,
        approvers: &[SigningKey],
    ) -> Result<BTreeMap<Attack, AttackOutcome>, SimError> {
        let captured = self.captured(manifest);
        let by_id: BTreeMap<&str, &Arc<Device>> = devices.iter().map(|d| (d.id.as_str(), d)).collect();
        // Victims: healthy devices that installed it (their delivery was captured).
        let victims: Vec<(&Arc<Device>, &Vec<u8>)> = captured
            .iter()
            .filter_map(|(id, bytes)| by_id.get(id.as_str()).map(|d| (*d, bytes)))
            .filter(|(d, _)| d.fault == Fault::Healthy && d.online())
            .filter(|(d, _)| d.confirmed(manifest))
            .take(targets)
            .collect();
        let outsiders: Vec<&Arc<Device>> = devices
            .iter()
            .filter(|d| d.fault == Fault::Healthy && d.online() && !captured.contains_key(&d.id) && !d.heard(manifest))
            .take(targets)
            .collect();
        let Some((_, sample)) = victims.first() else {
            return Err(SimError::Scenario(format!(
                "rogue: no healthy device confirmed manifest {} while the rogue listened: nothing to attack with",
                hex::encode(manifest.0)
            )));
        };
        let mut results = BTreeMap::new();
        for &attack in attacks {
            let mut plan: Vec<(&Arc<Device>, Vec<u8>)> = Vec::new();
            match attack {
                Attack::OutOfCohort => {
                    for d in &outsiders {
                        plan.push((d, sample.to_vec()));
                    }
                }
                _ => {
                    for (d, bytes) in &victims {
                        plan.push((d, forge(attack, bytes, release, approvers)?));
                    }
                }
            }
            results.insert(attack, self.send_and_watch(attack, plan).await?);
        }
        Ok(results)
    }

    async fn send_and_watch(
        &self,
        attack: Attack,
        plan: Vec<(&Arc<Device>, Vec<u8>)>,
    ) -> Result<AttackOutcome, SimError> {
        let expected = attack.refusal();
        let mut outcome = AttackOutcome { expected: expected.name().to_string(), ..AttackOutcome::default() };
        let mut watching = Vec::new();
        for (d, bytes) in plan {
            let before = d.events().len();
            let topic =
                topics::topic(&d.id, Kind::Manifest).ok_or_else(|| SimError::Io(format!("no topic for {}", d.id)))?;
            self.client
                .publish(topic.as_str(), rumqttc::QoS::AtLeastOnce, false, bytes)
                .await
                .map_err(|e| SimError::Io(format!("rogue publish: {e}")))?;
            outcome.sent += 1;
            watching.push((d, before));
        }
        let until = Instant::now() + Duration::from_secs(30);
        for (d, before) in watching {
            let answer = loop {
                let answer = d.events().into_iter().skip(before).find(|e| !matches!(e, Event::Status(_)));
                if answer.is_some() || Instant::now() > until {
                    break answer;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            match answer {
                Some(Event::Refused { reason, .. }) if reason == expected => outcome.refused_as_expected += 1,
                Some(Event::Refused { reason, .. }) => {
                    *outcome.refused_otherwise.entry(reason.name().to_string()).or_default() += 1
                }
                Some(_) => outcome.accepted += 1,
                None => outcome.unanswered += 1,
            }
        }
        Ok(outcome)
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Builds the attack message from a captured delivery.
fn forge(attack: Attack, captured: &[u8], release: &SigningKey, approvers: &[SigningKey]) -> Result<Vec<u8>, SimError> {
    let bad = |what: &str| SimError::Scenario(format!("rogue {}: {what}", attack.name()));
    let real: Delivery<'_> = airlock_proto::decode(captured).map_err(|_| bad("captured delivery does not decode"))?;
    let body = real.manifest.body.to_vec();
    let manifest: Manifest<'_> = airlock_proto::decode(&body).map_err(|_| bad("captured manifest does not decode"))?;
    let encode = |signed: &SignedOwned, approvals: &[airlock_proto::Approval]| {
        delivery(signed, approvals, real.proof.clone()).map_err(|_| bad("cannot encode"))
    };
    match attack {
        Attack::Forged => {
            let mut signature = real.manifest.signature;
            signature.0[0] ^= 1;
            let forged = SignedOwned { body, signer: real.manifest.signer, signature };
            encode(&forged, &real.approvals)
        }
        Attack::Replayed | Attack::OutOfCohort => Ok(captured.to_vec()),
        Attack::Downgraded => {
            let mut down = manifest;
            down.sequence += 10;
            down.action = match down.action {
                airlock_proto::Action::Firmware(mut f) => {
                    let v = f.version;
                    f.version = if v.patch > 0 {
                        Version::new(v.major, v.minor, v.patch - 1)
                    } else if v.minor > 0 {
                        Version::new(v.major, v.minor - 1, 99)
                    } else {
                        Version::new(v.major.saturating_sub(1), 99, 99)
                    };
                    airlock_proto::Action::Firmware(f)
                }
                _ => return Err(bad("a downgrade needs a firmware rollout to capture")),
            };
            let signed = SignedOwned::sign(Domain::Manifest, &down, release);
            let digest = airlock_proto::manifest_digest(&signed.body);
            let approvals: Vec<_> = approvers.iter().map(|k| approve(digest, Decision::Approve, k)).collect();
            encode(&signed, &approvals)
        }
        Attack::ApprovalStripped => {
            let mut up = manifest;
            up.sequence += 20;
            let signed = SignedOwned::sign(Domain::Manifest, &up, release);
            encode(&signed, &[])
        }
    }
}
