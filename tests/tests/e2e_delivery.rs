//! The delivery path end to end: a real controller (HTTP API, policy, approvals, rollout engine,
//! MQTT bus) and real device agents (`airlock_agent::Runtime` on in-memory flash) talking over
//! a real broker. Every scenario runs on the controller's embedded rumqttd (ephemeral port) and
//! on the Mosquitto named by `AIRLOCK_TEST_MQTT_URL` (skipped loudly when unset).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod delivery_support;

use airlock_proto::{Event, RevertReason, Version};
use delivery_support::{fleet, image, names_manifest, sha256_hex, stop_all, timing, Broker, Ctl, FACTORY};
use serde_json::{json, Value};
use std::time::Instant;

/// One `#[tokio::test]` per broker for a scenario `async fn(Broker)`.
macro_rules! on_both_brokers {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_embedded_rumqttd() {
                super::$scenario(super::Broker::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_mosquitto() {
                super::$scenario(super::Broker::Mosquitto).await
            }
        }
    )*};
}

on_both_brokers!(
    a_two_person_firmware_rollout_reaches_every_cohort_device_and_none_outside_it,
    a_canary_whose_firmware_fails_its_health_check_pauses_and_later_waves_never_receive_it,
    a_config_push_is_applied_and_then_reverted,
    a_rogue_publisher_on_device_topics_gets_every_manifest_refused_with_its_reason,
    a_canary_whose_firmware_fails_its_health_check_aborts_when_the_plan_says_abort,
);

fn firmware_spec(ids: &[String], img: &[u8], version: &str, waves: &[f64], on_breach: &str, security: bool) -> Value {
    json!({
        "kind": "firmware",
        "title": format!("Install firmware {version} on the lab gateways"),
        "reason": "because the end-to-end test says so",
        "cohort": { "ids": ids },
        "rollback": { "plan": "previous" },
        "security": security,
        "lifetime": "1d",
        "firmware": { "version": version, "hardware": "gw-m4", "security_counter": 2,
                      "image_sha256": sha256_hex(img), "image_size": img.len(), "chunk_size": 1024 },
        "rollout": { "waves": waves, "success_threshold": 0.9, "failure_threshold": 0.01,
                     "device_timeout": "20s", "rate_per_sec": 100, "on_breach": on_breach }
    })
}

fn config_spec(ids: &[String], version: u32, interval: u32, timeout: &str) -> Value {
    json!({
        "kind": "config",
        "title": format!("Set the report interval to {interval} s"),
        "reason": "because the end-to-end test says so",
        "cohort": { "ids": ids },
        "rollback": { "plan": "previous" },
        "lifetime": "1d",
        "config": { "version": version, "values": { "interval": { "value": interval } } },
        "rollout": { "waves": [1.0], "success_threshold": 0.5, "failure_threshold": 0.5,
                     "device_timeout": timeout, "rate_per_sec": 100, "on_breach": "pause" }
    })
}

async fn a_two_person_firmware_rollout_reaches_every_cohort_device_and_none_outside_it(broker: Broker) {
    let name = "a_two_person_firmware_rollout_reaches_every_cohort_device_and_none_outside_it";
    let started = Instant::now();
    let Some(ctl) = Ctl::start(broker, name).await else { return };
    let prefix = delivery_support::unique("tp");
    let devs = fleet(&ctl, &prefix, 12, |_: &airlock_agent::HealthContext| true).await;
    let (cohort, outside) = devs.split_at(8);
    let ids: Vec<String> = cohort.iter().map(|d| d.id.clone()).collect();
    let img = image(&prefix, 30_000);
    ctl.upload(img.clone()).await;
    let spec = firmware_spec(&ids, &img, "2.0.0", &[0.25, 1.0], "pause", true);
    let (_, explained) = ctl.call("post", "/api/explain", "rita", Some(spec.clone())).await;
    assert_eq!(explained["decision"]["tier"], "two_person", "{explained}");
    let id = ctl.propose_and_approve(spec).await;

    let status = ctl.rollout_until(id, |s| s["state"] != "rolling_out" || s["totals"]["confirmed"] == 8).await;
    let digest = status["manifest_digest"].as_str().unwrap().to_string();
    for d in cohort {
        let e = d.wait("Confirmed", |e| matches!(e, Event::Confirmed { .. })).await;
        assert!(names_manifest(&e, &digest), "{}: {e:?}", d.id);
        assert!(matches!(e, Event::Confirmed { version, .. } if version == Version::new(2, 0, 0)), "{}: {e:?}", d.id);
        d.wait_status("2.0.0, confirmed", |s| s.firmware == Version::new(2, 0, 0) && !s.testing).await;
        assert_eq!(std::fs::read(d.dir.path().join("firmware.bin")).unwrap(), img, "{}", d.id);
    }
    let status = ctl.rollout_until(id, |s| s["state"] != "rolling_out").await;
    assert_eq!(status["state"], "completed", "{status}");
    let waves = status["waves"].as_array().unwrap();
    assert_eq!(waves.len(), 2, "{status}");
    let sizes: Vec<u64> = waves.iter().map(|w| w["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes.iter().sum::<u64>(), 8, "{status}");
    assert_eq!(sizes[0], 2, "a quarter of 8 in the canary: {status}");
    for w in waves {
        assert_eq!(w["confirmed"], w["size"], "{status}");
    }
    // The bus's counters are on /metrics: 8 deliveries, every chunk of 8 images (30 of 1 KiB).
    let (_, metrics) = ctl.call("get", "/metrics", "admin", None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    let counter = |event: &str| -> u64 {
        let line = format!("airlock_mqtt_total{{event=\"{event}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&line)).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    assert_eq!(counter("delivery_sent"), 8, "{metrics}");
    assert!(counter("chunk_sent") >= 8 * 30, "{metrics}");
    assert!(counter("chunk_request_received") >= 8 && counter("report_received") >= 8 * 3, "{metrics}");
    // Nobody outside the cohort heard of it.
    for d in outside {
        let touched: Vec<Event> = d.events().into_iter().filter(|e| !matches!(e, Event::Status(_))).collect();
        assert!(touched.is_empty(), "{} outside the cohort reported {touched:?}", d.id);
        assert_eq!(d.handle.status().firmware, FACTORY, "{}", d.id);
        assert_eq!(std::fs::read(d.dir.path().join("firmware.bin")).unwrap(), d.factory, "{}", d.id);
    }
    stop_all(devs).await;
    ctl.stop().await;
    timing(&format!("{name}/{broker:?}"), started);
}

async fn a_canary_whose_firmware_fails_its_health_check_pauses_and_later_waves_never_receive_it(broker: Broker) {
    let name = "a_canary_whose_firmware_fails_its_health_check_pauses_and_later_waves_never_receive_it";
    failing_canary(broker, name, "pause", "paused").await;
}

async fn a_canary_whose_firmware_fails_its_health_check_aborts_when_the_plan_says_abort(broker: Broker) {
    let name = "a_canary_whose_firmware_fails_its_health_check_aborts_when_the_plan_says_abort";
    failing_canary(broker, name, "abort", "aborted").await;
}

/// Ten devices, a one-device canary whose new firmware fails its health check everywhere: the
/// canary reverts on its own, the rollout ends `end_state`, and nobody else hears of it.
async fn failing_canary(broker: Broker, name: &str, on_breach: &str, end_state: &str) {
    let started = Instant::now();
    let Some(ctl) = Ctl::start(broker, name).await else { return };
    let prefix = delivery_support::unique("cf");
    // The factory image is healthy; anything else fails its check.
    let devs = fleet(&ctl, &prefix, 10, |cx: &airlock_agent::HealthContext| cx.firmware_version == FACTORY).await;
    let ids: Vec<String> = devs.iter().map(|d| d.id.clone()).collect();
    let img = image(&prefix, 20_000);
    ctl.upload(img.clone()).await;
    let id = ctl.propose_and_approve(firmware_spec(&ids, &img, "2.0.0", &[0.1, 1.0], on_breach, false)).await;

    let status = ctl.rollout_until(id, |s| s["state"] != "rolling_out").await;
    assert_eq!(status["state"], end_state, "{status}");
    assert!(status["breach"].is_string(), "{status}");
    let digest = status["manifest_digest"].as_str().unwrap().to_string();
    let waves = status["waves"].as_array().unwrap();
    let canary_size = waves[0]["size"].as_u64().unwrap();
    assert_eq!(canary_size, 1, "{status}");
    assert_eq!(waves[0]["reverted"], canary_size, "{status}");
    assert_eq!(waves[0]["reverted_by_reason"]["health_check_failed"], canary_size, "{status}");
    assert_eq!(waves[1]["pending"], waves[1]["size"], "wave 1 was never sent to: {status}");
    let mut canaries = 0;
    for d in &devs {
        let heard = d.events().into_iter().any(|e| names_manifest(&e, &digest));
        if heard {
            canaries += 1;
            let e = d.wait("Reverted", |e| matches!(e, Event::Reverted { .. })).await;
            assert!(
                matches!(e, Event::Reverted { reason: RevertReason::HealthCheckFailed, .. })
                    && names_manifest(&e, &digest),
                "{}: {e:?}",
                d.id
            );
        }
        d.wait_status("back on the factory image", |s| s.firmware == FACTORY && !s.testing).await;
    }
    assert_eq!(canaries, canary_size, "only the canary heard of the manifest");
    // A while later, still paused and still nobody else.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, again) = ctl.call("get", &format!("/api/proposals/{id}/rollout"), "rita", None).await;
    assert_eq!(again["state"], end_state, "{again}");
    assert_eq!(again["waves"][1]["pending"], again["waves"][1]["size"], "{again}");
    let heard = devs.iter().filter(|d| d.events().iter().any(|e| names_manifest(e, &digest))).count() as u64;
    assert_eq!(heard, canary_size);
    stop_all(devs).await;
    ctl.stop().await;
    timing(&format!("{name}/{broker:?}"), started);
}

async fn a_config_push_is_applied_and_then_reverted(broker: Broker) {
    let name = "a_config_push_is_applied_and_then_reverted";
    let started = Instant::now();
    let Some(ctl) = Ctl::start(broker, name).await else { return };
    let prefix = delivery_support::unique("cfg");
    let devs = fleet(&ctl, &prefix, 3, |_: &airlock_agent::HealthContext| true).await;
    let ids: Vec<String> = devs.iter().map(|d| d.id.clone()).collect();

    // v1 everywhere: applied, confirmed, written.
    let v1 = ctl.propose_and_approve(config_spec(&ids, 1, 30, "20s")).await;
    let s1 = ctl.rollout_until(v1, |s| s["state"] != "rolling_out").await;
    assert_eq!(s1["state"], "completed", "{s1}");
    let d1 = s1["manifest_digest"].as_str().unwrap().to_string();
    let mut first = Vec::new();
    for d in &devs {
        let e = d.wait("ConfigConfirmed v1", |e| matches!(e, Event::ConfigConfirmed { version: 1, .. })).await;
        assert!(names_manifest(&e, &d1));
        let c = d.config_json().unwrap_or_else(|| panic!("{}: no config.json", d.id));
        assert!(c.to_string().contains("30"), "{}: {c}", d.id);
        first.push(c);
    }

    // v2 to the same three and one enrolled device that never comes online: the rollout stays
    // rolling out (that device is silent) while the three confirm, and is aborted.
    let offline = format!("{prefix}-off");
    let k = ed25519_dalek::SigningKey::from_bytes(&[0x77; 32]);
    let d = json!({ "id": offline, "public_key": hex::encode(k.verifying_key().to_bytes()), "hardware": "gw-m4",
                    "region": "eu", "environment": "lab", "firmware": "1.0.0", "tags": [], "enrolled_at": 0 });
    assert_eq!(ctl.call("post", "/api/devices", "admin", Some(d)).await.0, 201);
    let mut ids2 = ids.clone();
    ids2.push(offline);
    let v2 = ctl.propose_and_approve(config_spec(&ids2, 2, 60, "10m")).await;
    let s2 = ctl.rollout_until(v2, |s| s["totals"]["confirmed"] == 3 || s["state"] != "rolling_out").await;
    assert_eq!(s2["state"], "rolling_out", "{s2}");
    let d2 = s2["manifest_digest"].as_str().unwrap().to_string();
    for (d, c1) in devs.iter().zip(&first) {
        let e = d.wait("ConfigConfirmed v2", |e| matches!(e, Event::ConfigConfirmed { version: 2, .. })).await;
        assert!(names_manifest(&e, &d2), "{}: {e:?}", d.id);
        let c = d.config_json().unwrap();
        assert_ne!(&c, c1, "{}: v2 written", d.id);
        assert!(c.to_string().contains("60"), "{}: {c}", d.id);
    }
    let (status, aborted) = ctl
        .call(
            "post",
            &format!("/api/proposals/{v2}/rollout/abort"),
            "alice",
            Some(json!({ "reason": "wrong interval" })),
        )
        .await;
    assert_eq!(status, 200, "{aborted}");
    assert_eq!(aborted["state"], "aborted", "{aborted}");
    for (d, c1) in devs.iter().zip(&first) {
        let e = d.wait("ConfigReverted", |e| matches!(e, Event::ConfigReverted { .. })).await;
        assert!(matches!(e, Event::ConfigReverted { reason: RevertReason::Command, .. }), "{}: {e:?}", d.id);
        let until = Instant::now() + delivery_support::WAIT;
        while d.config_json().as_ref() != Some(c1) {
            assert!(Instant::now() < until, "{}: config.json {:?}, not v1 {c1}", d.id, d.config_json());
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // The status watch is updated once the whole input is handled, just after the event.
        while d.handle.status().config != 1 {
            assert!(Instant::now() < until, "{}: status {:?}", d.id, d.handle.status());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let s2 = ctl.rollout_until(v2, |s| s["waves"][0]["reverted"] == 3).await;
    assert_eq!(s2["waves"][0]["revert_commands"], 3, "{s2}");
    stop_all(devs).await;
    ctl.stop().await;
    timing(&format!("{name}/{broker:?}"), started);
}

/// A rogue MQTT client: on Mosquitto anonymous, on the embedded broker logged in with a stolen
/// device login (rumqttd has no topic ACLs: any login may publish on any device's topics).
struct Rogue {
    client: rumqttc::AsyncClient,
    incoming: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>,
    subacks: tokio::sync::mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Rogue {
    async fn connect(url: &str, id: &str, login: Option<(&str, &str)>) -> Rogue {
        let rest = url.strip_prefix("mqtt://").unwrap();
        let (host, port) = rest.rsplit_once(':').unwrap();
        let mut o = rumqttc::MqttOptions::new(id, host, port.parse::<u16>().unwrap());
        o.set_keep_alive(std::time::Duration::from_secs(10)).set_clean_session(true);
        o.set_max_packet_size(64 * 1024, 64 * 1024);
        if let Some((u, p)) = login {
            o.set_credentials(u, p);
        }
        let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 64);
        let (tx, incoming) = tokio::sync::mpsc::unbounded_channel();
        let (up_tx, subacks) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = up_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
        });
        Rogue { client, incoming, subacks, task }
    }

    /// Subscribes and waits for the broker's SUBACK.
    async fn subscribe(&mut self, topic: &str) {
        self.client.subscribe(topic, rumqttc::QoS::AtLeastOnce).await.unwrap();
        let acked = tokio::time::timeout(std::time::Duration::from_secs(10), self.subacks.recv()).await;
        assert!(matches!(acked, Ok(Some(()))), "the rogue's subscription was not acknowledged");
    }

    async fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.client.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload).await.unwrap();
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn a_rogue_publisher_on_device_topics_gets_every_manifest_refused_with_its_reason(broker: Broker) {
    use airlock_proto::build::{approve, delivery, SignedOwned};
    use airlock_proto::{Decision, Delivery, Domain, Manifest, Refusal};
    let name = "a_rogue_publisher_on_device_topics_gets_every_manifest_refused_with_its_reason";
    let started = Instant::now();
    let Some(ctl) = Ctl::start(broker, name).await else { return };
    let prefix = delivery_support::unique("rg");
    let devs = fleet(&ctl, &prefix, 1, |_: &airlock_agent::HealthContext| true).await;
    let victim = &devs[0];
    let manifest_topic = airlock_proto::topics::topic(&victim.id, airlock_proto::topics::Kind::Manifest).unwrap();
    // The stolen login: an enrolled device that is not running (taking over a running device's
    // client id would just kick it off).
    let stolen = format!("{prefix}-stolen");
    let k = ed25519_dalek::SigningKey::from_bytes(&[0x66; 32]);
    let d = json!({ "id": stolen, "public_key": hex::encode(k.verifying_key().to_bytes()), "hardware": "gw-m4",
                    "region": "eu", "environment": "lab", "firmware": "1.0.0", "tags": [], "enrolled_at": 0 });
    let (status, enrolled) = ctl.call("post", "/api/devices", "admin", Some(d)).await;
    assert_eq!(status, 201, "{enrolled}");
    let mut rogue = if ctl.embedded {
        let password = enrolled["mqtt"]["password"].as_str().unwrap().to_string();
        Rogue::connect(&ctl.broker_url, &stolen, Some((&stolen, &password))).await
    } else {
        Rogue::connect(&ctl.broker_url, &delivery_support::unique("rogue"), None).await
    };
    // It listens on the victim's manifest topic, to capture a real delivery.
    rogue.subscribe(manifest_topic.as_str()).await;

    // A real, approved security fix (two_person) to the victim: installed and confirmed.
    let img = image(&prefix, 20_000);
    ctl.upload(img.clone()).await;
    let id = ctl
        .propose_and_approve(firmware_spec(std::slice::from_ref(&victim.id), &img, "2.0.0", &[1.0], "pause", true))
        .await;
    let done = ctl.rollout_until(id, |s| s["state"] != "rolling_out").await;
    assert_eq!(done["state"], "completed", "{done}");
    victim.wait("Confirmed", |e| matches!(e, Event::Confirmed { .. })).await;
    let installed = victim.wait_status("2.0.0, confirmed", |s| s.firmware == Version::new(2, 0, 0) && !s.testing).await;
    let captured = tokio::time::timeout(std::time::Duration::from_secs(10), rogue.incoming.recv())
        .await
        .expect("the rogue saw the delivery")
        .unwrap()
        .payload
        .to_vec();
    let real: Delivery<'_> = airlock_proto::decode(&captured).unwrap();
    let body = real.manifest.body.to_vec();
    let manifest: Manifest<'_> = airlock_proto::decode(&body).unwrap();
    let release = delivery_support::key_file(&ctl.data.join("keys/release.key"));
    let approvers = [ctl.user_key("alice"), ctl.user_key("carol")];

    // What each attack looks like, and the refusal it must get.
    let mut attacks: Vec<(&str, Vec<u8>, Refusal)> = Vec::new();
    // 1. Forged: the real delivery with one bit of the release signature flipped.
    let mut sig = real.manifest.signature;
    sig.0[0] ^= 1;
    let forged = SignedOwned { body: body.clone(), signer: real.manifest.signer, signature: sig };
    attacks.push(("forged", delivery(&forged, &real.approvals, real.proof.clone()).unwrap(), Refusal::BadSignature));
    // 2. Replay of the installed delivery, byte for byte.
    attacks.push(("replay", captured.clone(), Refusal::Replay));
    // 3. Downgrade: a correctly signed and approved manifest for 1.5.0, newer sequence. Only a
    //    holder of the release key (a compromised controller) can build it.
    let mut down = manifest;
    down.sequence += 10;
    down.action = match down.action {
        airlock_proto::Action::Firmware(mut f) => {
            f.version = Version::new(1, 5, 0);
            airlock_proto::Action::Firmware(f)
        }
        other => panic!("not firmware: {other:?}"),
    };
    let signed = SignedOwned::sign(Domain::Manifest, &down, &release);
    let digest = airlock_proto::manifest_digest(&signed.body);
    let approvals: Vec<_> = approvers.iter().map(|k| approve(digest, Decision::Approve, k)).collect();
    attacks.push(("downgrade", delivery(&signed, &approvals, real.proof.clone()).unwrap(), Refusal::VersionDowngrade));
    // 4. Approval-stripped: validly signed (3.0.0, newer sequence), approvals removed.
    let mut up = manifest;
    up.sequence += 20;
    up.action = match up.action {
        airlock_proto::Action::Firmware(mut f) => {
            f.version = Version::new(3, 0, 0);
            airlock_proto::Action::Firmware(f)
        }
        other => panic!("not firmware: {other:?}"),
    };
    let signed = SignedOwned::sign(Domain::Manifest, &up, &release);
    attacks.push(("approval-stripped", delivery(&signed, &[], real.proof.clone()).unwrap(), Refusal::QuorumShort));

    for (what, bytes, reason) in attacks {
        let before = victim.events().len();
        rogue.publish(manifest_topic.as_str(), bytes).await;
        let until = Instant::now() + delivery_support::WAIT;
        let got = loop {
            let events = victim.events();
            if let Some(e) = events.iter().skip(before).find(|e| !matches!(e, Event::Status(_))) {
                break *e;
            }
            assert!(Instant::now() < until, "{what}: no answer from the device; events {events:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert!(matches!(got, Event::Refused { reason: r, .. } if r == reason), "{what}: {got:?}, wanted {reason:?}");
    }
    // Nothing was installed: the same firmware, sequence and counter; nothing after the
    // refusals but status reports.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let after = victim.handle.status();
    assert_eq!(
        (after.firmware, after.sequence, after.security_counter),
        (installed.firmware, installed.sequence, installed.security_counter)
    );
    assert!(!after.testing);
    let accepted = victim.events().iter().filter(|e| matches!(e, Event::Accepted { .. })).count();
    assert_eq!(accepted, 1, "only the real delivery was accepted: {:?}", victim.events());
    assert_eq!(std::fs::read(victim.dir.path().join("firmware.bin")).unwrap(), img);
    drop(rogue);
    stop_all(devs).await;
    ctl.stop().await;
    timing(&format!("{name}/{broker:?}"), started);
}
