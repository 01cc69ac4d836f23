//! The runtime against real brokers: every scenario runs on an embedded rumqttd (ephemeral port,
//! per-client login) and on the Mosquitto named by `AIRLOCK_TEST_MQTT_URL` (skipped loudly
//! when unset). A stand-in controller publishes deliveries, serves chunks and verifies every
//! report's signature with the device's public key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use airlock_agent::{Exit, RebootHook, Runtime};
use airlock_proto::topics::Kind as Topic;
use airlock_proto::{Event, Refusal, RevertReason, Version};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::fleet::{image, CHUNK, FACTORY_LEN};
use support::{Env, Kind, WAIT};

/// Generates one `#[tokio::test]` per broker for a scenario `async fn(Kind)`.
macro_rules! on_both_brokers {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_rumqttd() {
                super::$scenario(super::Kind::Rumqttd).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_mosquitto() {
                super::$scenario(super::Kind::Mosquitto).await
            }
        }
    )*};
}

on_both_brokers!(
    a_delivered_firmware_installs_test_boots_passes_its_health_check_and_confirms,
    a_failed_health_check_reverts_to_the_previous_image,
    a_forged_delivery_is_refused_with_bad_signature,
    a_download_cut_off_from_the_broker_resumes_after_reconnect,
    a_pushed_config_is_written_and_confirmed_by_the_health_check,
    a_decommissioned_device_signs_its_last_report_and_stops_for_good,
    a_host_reboot_stops_the_agent_and_the_next_start_test_boots_the_new_image,
    a_delivery_published_while_the_device_is_offline_arrives_when_it_reconnects,
);

async fn a_delivered_firmware_installs_test_boots_passes_its_health_check_and_confirms(kind: Kind) {
    let Some(env) = Env::new(kind, "install").await else { return };
    let new = image(2, 40_000);
    let mut ctl = env.controller(&[&new]).await;
    let dev = env.start(&mut ctl, env.config(&["true"])).await;
    let (delivery, digest) = env.fleet.firmware(100, Version::new(2, 0, 0), &new, false);
    ctl.publish(Topic::Manifest, delivery).await;

    let accepted = ctl.expect(WAIT, |e| matches!(e, Event::Accepted { .. })).await;
    let installed = ctl.expect(WAIT, |e| matches!(e, Event::Installed { .. })).await;
    let confirmed = ctl.expect(WAIT, |e| matches!(e, Event::Confirmed { .. })).await;
    assert_eq!(accepted.event, Event::Accepted { manifest: digest });
    assert_eq!(installed.event, Event::Installed { manifest: digest });
    assert_eq!(confirmed.event, Event::Confirmed { manifest: digest, version: Version::new(2, 0, 0) });
    assert!(accepted.counter < installed.counter && installed.counter < confirmed.counter);

    let status = dev.status();
    assert_eq!((status.firmware, status.testing, status.sequence), (Version::new(2, 0, 0), false, 100));
    assert_eq!(std::fs::read(env.dir.path().join("firmware.bin")).unwrap(), new, "running image not exported");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.dir.path().join("firmware.json")).unwrap()).unwrap();
    assert_eq!(record["version"], "2.0.0");
    // The handle saw what the broker carried.
    let mine = dev.wait_for_event(WAIT, |e| matches!(e, Event::Confirmed { .. })).await;
    assert_eq!(mine, Some(confirmed.event));
    env.finish(dev).await;
}

async fn a_failed_health_check_reverts_to_the_previous_image(kind: Kind) {
    let Some(env) = Env::new(kind, "health-fails").await else { return };
    let new = image(2, 20_000);
    let mut ctl = env.controller(&[&new]).await;
    let dev = env.start(&mut ctl, env.config(&["sh", "-c", "exit 1"])).await;
    let (delivery, digest) = env.fleet.firmware(100, Version::new(2, 0, 0), &new, false);
    ctl.publish(Topic::Manifest, delivery).await;

    ctl.expect(WAIT, |e| matches!(e, Event::Installed { .. })).await;
    let reverted = ctl.expect(WAIT, |e| matches!(e, Event::Reverted { .. })).await;
    assert_eq!(reverted.event, Event::Reverted { manifest: Some(digest), reason: RevertReason::HealthCheckFailed });
    // Back on 1.0.0 after the reboot, and the factory image is what runs again.
    let status = ctl.expect(WAIT, |e| matches!(e, Event::Status(_))).await;
    let Event::Status(status) = status.event else { unreachable!() };
    assert_eq!((status.firmware, status.testing), (Version::new(1, 0, 0), false));
    assert_eq!(ctl.count(|e| matches!(e, Event::Confirmed { .. })), 0);
    assert_eq!(dev.status().firmware, Version::new(1, 0, 0));
    assert_eq!(std::fs::read(env.dir.path().join("firmware.bin")).unwrap(), image(1, FACTORY_LEN));
    env.finish(dev).await;
}

async fn a_forged_delivery_is_refused_with_bad_signature(kind: Kind) {
    let Some(env) = Env::new(kind, "forged").await else { return };
    let new = image(2, 20_000);
    let mut ctl = env.controller(&[&new]).await;
    let dev = env.start(&mut ctl, env.config(&["true"])).await;
    let (forged, digest) = env.fleet.firmware(100, Version::new(2, 0, 0), &new, true);
    ctl.publish(Topic::Manifest, forged).await;

    let refused = ctl.expect(WAIT, |e| matches!(e, Event::Refused { .. })).await;
    assert_eq!(refused.event, Event::Refused { manifest: Some(digest), reason: Refusal::BadSignature });
    assert_eq!(ctl.count(|e| matches!(e, Event::Accepted { .. })), 0);
    assert!(ctl.requests.lock().unwrap().is_empty(), "a refused delivery must not start a download");
    assert_eq!((dev.status().firmware, dev.status().sequence), (Version::new(1, 0, 0), 0));
    env.finish(dev).await;
}

async fn a_download_cut_off_from_the_broker_resumes_after_reconnect(kind: Kind) {
    let Some(env) = Env::new(kind, "reconnect").await else { return };
    let proxy = support::broker::Proxy::start(&env.broker.url).await;
    let new = image(3, 40_000);
    let mut ctl = env.controller(&[&new]).await;
    let mut config = env.config(&["true"]);
    config.mqtt.url = proxy.url.clone();
    let dev = env.start(&mut ctl, config).await;

    // Serve 12 chunks, then go quiet: the download stalls past its first progress report.
    ctl.budget.store(12, Ordering::SeqCst);
    let (delivery, digest) = env.fleet.firmware(100, Version::new(3, 0, 0), &new, false);
    ctl.publish(Topic::Manifest, delivery).await;
    let progress = ctl.expect(WAIT, |e| matches!(e, Event::Progress { .. })).await;
    let Event::Progress { received, .. } = progress.event else { unreachable!() };
    assert!(received >= 10 * CHUNK && received < new.len() as u32);

    // Cut the device off its broker; it retries chunks on tick and reconnects with backoff.
    proxy.cut();
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!dev.is_finished());
    ctl.budget.store(-1, Ordering::SeqCst);
    proxy.restore();

    let confirmed = ctl.expect(WAIT, |e| matches!(e, Event::Confirmed { .. })).await;
    assert_eq!(confirmed.event, Event::Confirmed { manifest: digest, version: Version::new(3, 0, 0) });
    assert!(dev.connections() >= 2, "no reconnect happened: {}", dev.connections());
    let after: Vec<_> = ctl.requests.lock().unwrap().iter().filter(|(at, _)| *at > cut_at).map(|(_, r)| *r).collect();
    assert!(!after.is_empty(), "no chunk request after the cut");
    assert!(after.iter().all(|r| r.offset >= received), "the download restarted instead of resuming: {after:?}");
    assert_eq!(std::fs::read(env.dir.path().join("firmware.bin")).unwrap(), new);
    env.finish(dev).await;
}

async fn a_delivery_published_while_the_device_is_offline_arrives_when_it_reconnects(kind: Kind) {
    let Some(env) = Env::new(kind, "offline").await else { return };
    let proxy = support::broker::Proxy::start(&env.broker.url).await;
    let mut ctl = env.controller(&[]).await;
    let mut config = env.config(&["true"]);
    config.mqtt.url = proxy.url.clone();
    let dev = env.start(&mut ctl, config).await;

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await; // the broker sees the device gone
    let (delivery, digest) = env.fleet.config(100, 3, br#"{"offline":true}"#);
    ctl.publish(Topic::Manifest, delivery).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ctl.count(|e| matches!(e, Event::ConfigApplied { .. })), 0, "the device was not offline");
    proxy.restore();

    // The persistent session kept the delivery for the device.
    let confirmed = ctl.expect(WAIT, |e| matches!(e, Event::ConfigConfirmed { .. })).await;
    assert_eq!(confirmed.event, Event::ConfigConfirmed { manifest: digest, version: 3 });
    assert!(dev.connections() >= 2);
    env.finish(dev).await;
}

async fn a_pushed_config_is_written_and_confirmed_by_the_health_check(kind: Kind) {
    let Some(env) = Env::new(kind, "config").await else { return };
    let mut ctl = env.controller(&[]).await;
    // The health check reads the config the runtime wrote before it ran.
    let check = r#"[ "$AIRLOCK_CHANGE" = config ] && grep -q sample_rate_hz "$AIRLOCK_CONFIG""#;
    let dev = env.start(&mut ctl, env.config(&["sh", "-c", check])).await;
    const PAYLOAD: &[u8] = br#"{"sample_rate_hz":10}"#;
    let (delivery, digest) = env.fleet.config(100, 7, PAYLOAD);
    ctl.publish(Topic::Manifest, delivery).await;

    let applied = ctl.expect(WAIT, |e| matches!(e, Event::ConfigApplied { .. })).await;
    assert_eq!(applied.event, Event::ConfigApplied { manifest: digest, version: 7 });
    let confirmed = ctl.expect(WAIT, |e| matches!(e, Event::ConfigConfirmed { .. })).await;
    assert_eq!(confirmed.event, Event::ConfigConfirmed { manifest: digest, version: 7 });
    assert_eq!(std::fs::read(env.dir.path().join("config.json")).unwrap(), PAYLOAD);
    assert_eq!((dev.status().config, dev.status().testing), (7, false));
    env.finish(dev).await;
}

async fn a_decommissioned_device_signs_its_last_report_and_stops_for_good(kind: Kind) {
    let Some(env) = Env::new(kind, "decommission").await else { return };
    let mut ctl = env.controller(&[]).await;
    let config = env.config(&["true"]);
    // A real flash file this time: the state must survive the runtime.
    let flash = env.fleet.file_flash(&config);
    let dev = env.start_on(&mut ctl, config.clone(), flash).await;
    let (delivery, digest) = env.fleet.deliver(100, airlock_proto::Action::Decommission, false);
    ctl.publish(Topic::Manifest, delivery).await;

    let last = ctl.expect(WAIT, |e| matches!(e, Event::Decommissioned { .. })).await;
    assert_eq!(last.event, Event::Decommissioned { manifest: digest });
    let exit = tokio::time::timeout(WAIT, dev.join()).await.unwrap().unwrap();
    assert_eq!(exit, airlock_agent::Exit::Decommissioned);
    let reopened = airlock_agent::FileFlash::open(&config.flash_path(), config.flash_size()).unwrap();
    let again = airlock_agent::Runtime::start(config, reopened);
    assert!(matches!(again, Err(airlock_agent::AgentError::Decommissioned)), "{again:?}");
    env.wipe().await;
}

/// Records reboots instead of rebooting the host.
struct HostReboot(Arc<Mutex<Vec<u8>>>);

impl RebootHook for HostReboot {
    fn in_process(&self) -> bool {
        false
    }
    fn reboot(&mut self, slot: u8) -> std::io::Result<()> {
        self.0.lock().unwrap().push(slot);
        Ok(())
    }
}

async fn a_host_reboot_stops_the_agent_and_the_next_start_test_boots_the_new_image(kind: Kind) {
    let Some(env) = Env::new(kind, "host-reboot").await else { return };
    let new = image(4, 20_000);
    let mut ctl = env.controller(&[&new]).await;
    let config = env.config(&["true"]);
    let flash = env.fleet.file_flash(&config);
    let reboots = Arc::new(Mutex::new(Vec::new()));
    let runtime = Runtime::new(config.clone()).with_reboot_hook(HostReboot(reboots.clone()));
    let dev = env.spawn(&mut ctl, runtime, flash).await;
    let (delivery, digest) = env.fleet.firmware(100, Version::new(4, 0, 0), &new, false);
    ctl.publish(Topic::Manifest, delivery).await;

    ctl.expect(WAIT, |e| matches!(e, Event::Installed { .. })).await;
    let exit = tokio::time::timeout(WAIT, dev.join()).await.unwrap().unwrap();
    assert_eq!(exit, Exit::Rebooting { slot: 1 });
    assert_eq!(*reboots.lock().unwrap(), vec![1]);
    assert_eq!(ctl.count(|e| matches!(e, Event::Confirmed { .. })), 0, "confirmed before the reboot");

    // The host came back: the next start is the test boot of slot B.
    let flash = airlock_agent::FileFlash::open(&config.flash_path(), config.flash_size()).unwrap();
    let dev = Runtime::start(config, flash).unwrap();
    let confirmed = ctl.expect(WAIT, |e| matches!(e, Event::Confirmed { .. })).await;
    assert_eq!(confirmed.event, Event::Confirmed { manifest: digest, version: Version::new(4, 0, 0) });
    assert_eq!(dev.status().firmware, Version::new(4, 0, 0));
    env.finish(dev).await;
}

/// rumqttd only: Mosquitto on this machine allows anonymous clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_the_wrong_broker_password_is_refused_and_keeps_retrying() {
    let Some(env) = Env::new(Kind::Rumqttd, "bad-login").await else { return };
    let mut config = env.config(&["true"]);
    config.mqtt.password = Some("not-the-password".into());
    let dev = airlock_agent::Runtime::start(config, env.fleet.flash(&env.config(&["true"]))).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(dev.connections(), 0, "rumqttd let a wrong password in");
    assert!(!dev.is_finished(), "the runtime gave up instead of retrying");
    // Reports are held for when the broker lets the device in.
    assert!(matches!(dev.events().borrow().first(), Some(Event::Status(_))));
    assert_eq!(dev.stop().await.unwrap(), airlock_agent::Exit::Stopped);
}
