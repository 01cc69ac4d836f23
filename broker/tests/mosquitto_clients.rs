//! The same logins and ACL seen through Mosquitto's own command-line clients (a second MQTT
//! implementation besides rumqttc). Skipped, saying so, where `mosquitto_pub`/`mosquitto_sub`
//! are not installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use airlock_broker::QoS;
use common::*;
use std::process::Output;

fn installed() -> bool {
    let ok =
        ["mosquitto_pub", "mosquitto_sub"].iter().all(|b| std::process::Command::new(b).arg("--help").output().is_ok());
    if !ok {
        eprintln!("SKIPPED: mosquitto_pub/mosquitto_sub are not installed (apt-get install mosquitto-clients)");
    }
    ok
}

async fn run(program: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(program).args(args).output().await.expect("runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_are_held_to_the_same_logins_and_acl() {
    if !installed() {
        return;
    }
    let b = broker(|_| {}).await;
    let port = b.local_addrs()[0].port().to_string();
    let (tx, mut rx) = b.link("controller", 16);
    tx.subscribe("airlock/v1/d/+/report", QoS::AtLeastOnce).unwrap();
    let base = ["-h", "127.0.0.1", "-p", port.as_str(), "-V", "mqttv311", "-q", "1"];

    let wrong = run(
        "mosquitto_pub",
        &[&base[..], &["-i", "dev-1", "-u", "dev-1", "-P", "nope", "-t", "airlock/v1/d/dev-1/report", "-m", "x"]]
            .concat(),
    )
    .await;
    assert!(!wrong.status.success(), "a wrong password is refused");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("bad user name or password"), "{wrong:?}");

    let own = run(
        "mosquitto_pub",
        &[&base[..], &["-i", "dev-1", "-u", "dev-1", "-P", "pw-1", "-t", "airlock/v1/d/dev-1/report", "-m", "ok"]]
            .concat(),
    )
    .await;
    assert!(own.status.success(), "{own:?}");
    let got = tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!((&*got.topic, &got.payload[..]), ("airlock/v1/d/dev-1/report", &b"ok"[..]));

    let foreign = run(
        "mosquitto_pub",
        &[&base[..], &["-i", "dev-1", "-u", "dev-1", "-P", "pw-1", "-t", "airlock/v1/d/dev-2/report", "-m", "forged"]]
            .concat(),
    )
    .await;
    assert!(foreign.status.success(), "a refused publish is acknowledged and dropped");
    assert!(rx.try_recv().is_none(), "the forged report never reached the controller");
    assert_eq!(b.metrics().acl_publish_refused, 1);

    let sub = run(
        "mosquitto_sub",
        &[
            &base[..],
            &["-i", "dev-1", "-u", "dev-1", "-P", "pw-1", "-t", "airlock/v1/d/dev-2/manifest", "-C", "1", "-W", "3"],
        ]
        .concat(),
    )
    .await;
    assert!(
        String::from_utf8_lossy(&sub.stderr).contains("All subscription requests were denied"),
        "the SUBACK refused it: {sub:?}"
    );
    assert_eq!(b.metrics().acl_subscribe_refused, 1);
}
