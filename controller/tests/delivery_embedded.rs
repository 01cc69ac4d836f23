//! Delivery through the embedded rumqttd broker, started by `server::start` on an ephemeral
//! port: who may connect, chunks, reports (on SQLite and on PostgreSQL).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use airlock_controller::mqtt::MqttConfig;
use airlock_controller::store::testing;
use support::{connect, key, Ctl, DeviceClient};

async fn embedded(database_url: Option<String>) -> (Ctl, String, u16) {
    let ctl = Ctl::start(Some(MqttConfig::embedded("127.0.0.1:0".parse().unwrap())), database_url, 1 << 20).await;
    let addr = ctl.delivery().broker_addr().unwrap();
    assert_ne!(addr.port(), 0);
    assert!(ctl.delivery().info.embedded);
    assert_eq!(ctl.delivery().info.url, format!("mqtt://{addr}"));
    (ctl, addr.ip().to_string(), addr.port())
}

#[tokio::test]
async fn only_enrolled_devices_with_their_own_password_get_in() {
    let (ctl, host, port) = embedded(None).await;
    // Nobody: no login, an unknown device, a made-up controller password.
    let e = connect(&host, port, "stranger", None).await.err().expect("no login is refused");
    assert!(!e.is_empty());
    connect(&host, port, "gw-x", Some(("gw-x", "guess"))).await.err().expect("an unknown device is refused");
    connect(&host, port, "airlock-controller", Some(("airlock-controller", "guess")))
        .await
        .err()
        .expect("the controller's login needs the controller's password");

    let (status, e1) = ctl.enroll("gw-1", &key(1)).await;
    assert_eq!(status, 201);
    assert!(!e1.rotated);
    assert_eq!(e1.mqtt.username, "gw-1");
    assert_eq!(e1.mqtt.url.as_deref(), Some(ctl.delivery().info.url.as_str()));
    assert!(e1.mqtt.embedded);
    assert_eq!(e1.mqtt.password.len(), 48);
    // The TrustRoot it is provisioned with is the controller's, signed by its root keys.
    let bytes = hex::decode(&e1.trust_root_hex).unwrap();
    let root = airlock_proto::decode::<airlock_proto::SignedTrustRoot<'_>>(&bytes).unwrap().verify_self().unwrap();
    assert_eq!(root.version, e1.trust_root_version);
    assert_eq!(bytes, ctl.state.wf.trust.bytes);

    let dev = DeviceClient::connect(&host, port, "gw-1", Some(&e1.mqtt.password)).await.expect("enrolled: in");
    drop(dev);
    connect(&host, port, "gw-1", Some(("gw-1", "wrong"))).await.err().expect("a wrong password is refused");
    // The login is the client id: gw-1's password does not open another client id.
    connect(&host, port, "gw-2", Some(("gw-1", &e1.mqtt.password))).await.err().expect("client id must be username");

    // Enrolling again rotates the password: the old one stops working.
    let (status, e2) = ctl.enroll("gw-1", &key(1)).await;
    assert_eq!(status, 200);
    assert!(e2.rotated);
    assert_ne!(e2.mqtt.password, e1.mqtt.password);
    connect(&host, port, "gw-1", Some(("gw-1", &e1.mqtt.password))).await.err().expect("the old password is dead");
    connect(&host, port, "gw-1", Some(("gw-1", &e2.mqtt.password))).await.expect("the new one works");
    // Nobody enrols as the controller.
    let d = serde_json::json!({ "id": "airlock-controller", "public_key": hex::encode(key(3).verifying_key().to_bytes()),
        "hardware": "gw-m4", "region": "eu", "environment": "lab", "firmware": "1.0.0", "tags": [], "enrolled_at": 0 });
    let (status, body) = ctl.call("post", "/api/devices", Some("admin"), Some(d)).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("controller's broker login"), "{body}");
    // The audit trail records the rotation, never the password.
    let (_, audit) = ctl.call("get", "/api/audit?limit=50", Some("rita"), None).await;
    let text = audit.to_string();
    assert!(text.contains("\"broker_password_rotated\":true"), "{text}");
    assert!(!text.contains(&e1.mqtt.password) && !text.contains(&e2.mqtt.password));
    ctl.stop().await;
}

#[tokio::test]
async fn a_chunk_request_is_answered_with_the_uploaded_bytes() {
    let (ctl, host, port) = embedded(None).await;
    let (_, e) = ctl.enroll("gw-1", &key(1)).await;
    let mut dev = DeviceClient::connect(&host, port, "gw-1", Some(&e.mqtt.password)).await.unwrap();
    support::chunk_requests_are_answered(&ctl, &mut dev, true).await;
    ctl.stop().await;
}

#[tokio::test]
async fn reports_are_verified_and_forwarded_on_sqlite() {
    let (mut ctl, host, port) = embedded(None).await;
    let (_, ea) = ctl.enroll("gw-a", &key(1)).await;
    ctl.enroll("gw-b", &key(2)).await;
    let a = DeviceClient::connect(&host, port, "gw-a", Some(&ea.mqtt.password)).await.unwrap();
    support::reports_are_verified_before_they_are_forwarded(&mut ctl, &a, "gw-b").await;
    ctl.stop().await;
}

#[tokio::test]
async fn reports_are_verified_and_forwarded_on_postgres() {
    let Some(db) = testing::postgres("reports_are_verified_and_forwarded_on_postgres").await.unwrap() else { return };
    let (mut ctl, host, port) = embedded(Some(db.url.clone())).await;
    let (_, ea) = ctl.enroll("gw-a", &key(1)).await;
    ctl.enroll("gw-b", &key(2)).await;
    let a = DeviceClient::connect(&host, port, "gw-a", Some(&ea.mqtt.password)).await.unwrap();
    support::reports_are_verified_before_they_are_forwarded(&mut ctl, &a, "gw-b").await;
    ctl.stop().await;
}

#[tokio::test]
async fn a_device_re_enrolled_with_a_new_key_starts_its_counter_again() {
    let (mut ctl, host, port) = embedded(None).await;
    let (_, e) = ctl.enroll("gw-a", &key(1)).await;
    let a = DeviceClient::connect(&host, port, "gw-a", Some(&e.mqtt.password)).await.unwrap();
    let v = airlock_proto::Version::new(1, 0, 0);
    a.publish(airlock_proto::topics::Kind::Report, support::report(&key(1), "gw-a", 1 << 32, support::status(v))).await;
    assert_eq!(ctl.next_report(10).await.unwrap().counter, 1 << 32);
    drop(a);
    // Replaced hardware: a new key, a device that has booted once.
    let (_, e) = ctl.enroll("gw-a", &key(5)).await;
    let a = DeviceClient::connect(&host, port, "gw-a", Some(&e.mqtt.password)).await.unwrap();
    a.publish(airlock_proto::topics::Kind::Report, support::report(&key(1), "gw-a", 2 << 32, support::status(v))).await;
    a.publish(airlock_proto::topics::Kind::Report, support::report(&key(5), "gw-a", 1, support::status(v))).await;
    let r = ctl.next_report(10).await.unwrap();
    assert_eq!(r.counter, 1, "the new key's first report");
    assert_eq!(ctl.stat("report_dropped_wrong_signer"), 1, "the old key no longer speaks for gw-a");
    ctl.stop().await;
}

#[tokio::test]
async fn the_controller_stops_its_broker_when_it_stops() {
    let (ctl, host, port) = embedded(None).await;
    let (_, e) = ctl.enroll("gw-1", &key(1)).await;
    connect(&host, port, "gw-1", Some(("gw-1", &e.mqtt.password))).await.unwrap();
    ctl.stop().await;
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect((host.as_str(), port)).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "the embedded broker still listens after the controller stopped");
}
