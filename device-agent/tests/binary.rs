//! The `airlock-agent` binary end to end, on a flash file: `provision` from an `agent.toml`,
//! `run` until a firmware update is confirmed, SIGTERM, exit status 0; on both brokers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use airlock_proto::topics::Kind as Topic;
use airlock_proto::{Event, Version};
use std::process::{Command, Stdio};
use support::fleet::{image, FACTORY_LEN, SLOT};
use support::{Env, Kind, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_airlock-agent");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_provisions_runs_an_update_and_stops_on_sigterm_on_rumqttd() {
    binary_end_to_end(Kind::Rumqttd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_provisions_runs_an_update_and_stops_on_sigterm_on_mosquitto() {
    binary_end_to_end(Kind::Mosquitto).await
}

async fn binary_end_to_end(kind: Kind) {
    let Some(env) = Env::new(kind, "binary").await else { return };
    let dir = env.dir.path();
    let key = format!("airlock-ed25519-seed-v1 {}\n", hex::encode(env.fleet.device_key.to_bytes()));
    std::fs::write(dir.join("device.key"), key).unwrap();
    std::fs::write(dir.join("trust-root.bin"), &env.fleet.trust_bytes).unwrap();
    std::fs::write(dir.join("factory.img"), image(1, FACTORY_LEN)).unwrap();
    let toml = format!(
        r#"
device_id = "{device}"
data_dir = "{data}"
slot_size = {SLOT}

[mqtt]
url = "{url}"
username = "{device}"
password = "{password}"
keepalive_secs = 5
backoff_min_ms = 100
backoff_max_ms = 1000

[health]
command = ["sh", "-c", "cmp -s \"$AIRLOCK_FIRMWARE\" {data}/expected.img"]
timeout_secs = 10

[chunks]
timeout_secs = 1

[provision]
hardware = "{hardware}"
key_file = "{root}/device.key"
trust_root_file = "{root}/trust-root.bin"
factory_image = "{root}/factory.img"
factory_version = "1.0.0"
factory_security_counter = 1
"#,
        device = env.device,
        root = dir.display(),
        data = dir.join("state").display(),
        url = env.broker.url,
        password = env.password,
        hardware = support::fleet::HARDWARE,
    );
    let config = dir.join("agent.toml");
    std::fs::write(&config, toml).unwrap();

    // provision: prints "<device> <public key hex>"; a second run without --force is refused.
    let out = Command::new(BIN).args(["provision", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "provision failed: {}", String::from_utf8_lossy(&out.stderr));
    let public = airlock_proto::sig::public_key(&env.fleet.device_key);
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), format!("{} {}", env.device, hex::encode(public.0)));
    let again = Command::new(BIN).args(["provision", "--config"]).arg(&config).output().unwrap();
    assert!(!again.status.success(), "re-provisioning without --force must be refused");

    // run: the health check passes only if the exported image is the new one.
    let new = image(2, 30_000);
    std::fs::write(dir.join("state/expected.img"), &new).unwrap();
    let mut ctl = env.controller(&[&new]).await;
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    ctl.expect(WAIT, |e| matches!(e, Event::Status(_))).await;
    ctl.expect(WAIT, |e| matches!(e, Event::Status(_))).await;
    let (delivery, digest) = env.fleet.firmware(100, Version::new(2, 0, 0), &new, false);
    ctl.publish(Topic::Manifest, delivery).await;
    let confirmed = ctl.expect(WAIT, |e| matches!(e, Event::Confirmed { .. })).await;
    assert_eq!(confirmed.event, Event::Confirmed { manifest: digest, version: Version::new(2, 0, 0) });

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "agent exited with {status}");
    assert_eq!(std::fs::read(dir.join("state/firmware.bin")).unwrap(), new);
    env.wipe().await;
}
