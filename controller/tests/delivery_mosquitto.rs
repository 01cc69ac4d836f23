//! Delivery through Mosquitto: the shared broker named by `AIRLOCK_TEST_MQTT_URL` (anonymous
//! clients, so names are unique per test), and a private Mosquitto started here with the shipped
//! `deploy/mosquitto/` configuration and ACL, logins added with `mosquitto_passwd` exactly as the
//! README says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use airlock_controller::mqtt::credentials::BrokerUrl;
use airlock_controller::mqtt::{BrokerConfig, MqttConfig};
use airlock_proto::topics::{self, Kind};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{connect, key, repo, skipped, unique, Ctl, DeviceClient};

const MQTT_ENV: &str = "AIRLOCK_TEST_MQTT_URL";

/// A controller on the shared broker, with a session that does not outlive the test.
async fn shared(test: &str) -> Option<(Ctl, BrokerUrl)> {
    let Ok(url) = std::env::var(MQTT_ENV) else {
        skipped(&format!("{test} on Mosquitto: set {MQTT_ENV} (for example mqtt://127.0.0.1:1883)"));
        return None;
    };
    let mqtt = MqttConfig {
        broker: BrokerConfig::External { url: url.clone() },
        client_id: unique("airlock-test-ctl"),
        persistent_session: false,
    };
    let ctl = Ctl::start(Some(mqtt), None, 1 << 20).await;
    assert!(ctl.delivery().ready(Duration::from_secs(10)).await, "not connected to {url}");
    assert!(!ctl.delivery().info.embedded);
    Some((ctl, BrokerUrl::parse(&url).unwrap()))
}

#[tokio::test]
async fn a_chunk_request_is_answered_through_mosquitto() {
    let Some((ctl, url)) = shared("a_chunk_request_is_answered_through_mosquitto").await else { return };
    let id = unique("gw");
    ctl.enroll(&id, &key(1)).await;
    let mut dev = DeviceClient::connect(&url.host, url.port, &id, None).await.unwrap();
    support::chunk_requests_are_answered(&ctl, &mut dev, false).await;
    ctl.stop().await;
}

#[tokio::test]
async fn reports_are_verified_and_forwarded_through_mosquitto() {
    let Some((mut ctl, url)) = shared("reports_are_verified_and_forwarded_through_mosquitto").await else { return };
    let (a, b) = (unique("gw-a"), unique("gw-b"));
    ctl.enroll(&a, &key(1)).await;
    ctl.enroll(&b, &key(2)).await;
    let dev = DeviceClient::connect(&url.host, url.port, &a, None).await.unwrap();
    support::reports_are_verified_before_they_are_forwarded(&mut ctl, &dev, &b).await;
    ctl.stop().await;
}

/// A Mosquitto of our own, killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    passwd: std::path::PathBuf,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    /// `deploy/mosquitto/mosquitto.conf` with the listener, file paths and logging moved into a
    /// temp directory; `deploy/mosquitto/acl` as it is.
    fn start(controller_password: &str) -> Option<Mosquitto> {
        if Command::new("mosquitto").arg("-h").output().is_err() || Command::new("mosquitto_passwd").output().is_err() {
            skipped("the shipped Mosquitto configuration: mosquitto and mosquitto_passwd are not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let passwd = dir.path().join("passwd");
        let log = dir.path().join("mosquitto.log");
        let shipped = std::fs::read_to_string(repo().join("deploy/mosquitto/mosquitto.conf")).unwrap();
        let mut conf = String::new();
        let mut seen = Vec::new();
        for line in shipped.lines() {
            let key = line.split_whitespace().next().unwrap_or("");
            let replaced = match key {
                "listener" => format!("listener {port} 127.0.0.1"),
                "password_file" => format!("password_file {}", passwd.display()),
                "acl_file" => format!("acl_file {}", repo().join("deploy/mosquitto/acl").display()),
                "persistence" => "persistence false".into(),
                "persistence_location" | "log_dest" => continue,
                _ => line.to_string(),
            };
            seen.push(key.to_string());
            conf.push_str(&replaced);
            conf.push('\n');
        }
        for required in ["allow_anonymous", "use_username_as_clientid", "password_file", "acl_file", "listener"] {
            assert!(seen.iter().any(|k| k == required), "the shipped mosquitto.conf lacks {required}");
        }
        conf.push_str(&format!("log_dest file {}\n", log.display()));
        // As root Mosquitto would switch to the `mosquitto` user, who cannot read the temp dir.
        conf.push_str("user root\n");
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).unwrap();
        passwd_add(&passwd, "airlock-controller", controller_password, true);
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Owned (and killed on drop) before anything can fail.
        let m = Mosquitto { child, port, passwd, log, _dir: dir };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(m);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("mosquitto did not listen: {}", std::fs::read_to_string(&m.log).unwrap_or_default());
    }

    /// As the README says: `mosquitto_passwd -b`, then SIGHUP.
    fn add(&self, user: &str, password: &str) {
        passwd_add(&self.passwd, user, password, false);
        let ok = Command::new("kill").arg("-HUP").arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
    }
}

fn passwd_add(file: &std::path::Path, user: &str, password: &str, create: bool) {
    let mut cmd = Command::new("mosquitto_passwd");
    if create {
        cmd.arg("-c");
    }
    let out = cmd.arg("-b").arg(file).arg(user).arg(password).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn the_shipped_mosquitto_config_admits_enrolled_devices_and_confines_each_to_its_topics() {
    let controller_password = "controller-secret";
    let Some(mosq) = Mosquitto::start(controller_password) else { return };
    let url = format!("mqtt://airlock-controller:{controller_password}@127.0.0.1:{}", mosq.port);
    let mut ctl = Ctl::start(Some(MqttConfig::external(&url)), None, 1 << 20).await;
    assert!(
        ctl.delivery().ready(Duration::from_secs(10)).await,
        "the controller's login and subscriptions: {}",
        std::fs::read_to_string(&mosq.log).unwrap_or_default()
    );
    assert_eq!(ctl.delivery().info.url, format!("mqtt://127.0.0.1:{}", mosq.port), "no password in what devices see");
    let (_, ea) = ctl.enroll("gw-a", &key(1)).await;
    let (_, eb) = ctl.enroll("gw-b", &key(2)).await;
    assert!(!ea.mqtt.embedded);
    mosq.add(&ea.mqtt.username, &ea.mqtt.password);
    mosq.add(&eb.mqtt.username, &eb.mqtt.password);

    // Strangers and wrong passwords are refused by Mosquitto itself.
    let e = connect("127.0.0.1", mosq.port, "nobody", None).await.err().expect("anonymous refused");
    assert!(e.contains("refused") || e.contains("NotAuthorized"), "{e}");
    let mut admitted = None;
    for _ in 0..100 {
        // The SIGHUP reload is asynchronous.
        match DeviceClient::connect("127.0.0.1", mosq.port, "gw-a", Some(&ea.mqtt.password)).await {
            Ok(d) => {
                admitted = Some(d);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut a = admitted.expect("gw-a with its enrolment password");
    connect("127.0.0.1", mosq.port, "gw-a", Some(("gw-a", &eb.mqtt.password)))
        .await
        .err()
        .expect("B's password is not A's");
    let mut b = DeviceClient::connect("127.0.0.1", mosq.port, "gw-b", Some(&eb.mqtt.password)).await.unwrap();

    // A cannot listen to B, nor to everyone: Mosquitto 2.0 grants the subscriptions (its
    // acl_file checks read access per message, not per filter) but delivers nothing of B's.
    for filter in ["airlock/v1/d/gw-b/manifest", "airlock/v1/d/+/manifest", "airlock/v1/#"] {
        a.subscribe(filter).await;
    }
    let bus = ctl.delivery().bus.clone();
    let img = support::image(100);
    airlock_controller::rollout::transport::Transport::send_delivery(
        &bus,
        "gw-b",
        support::firmware_delivery(&img, 100),
    )
    .await
    .unwrap();
    let got = b.next(10).await.expect("B's delivery");
    assert_eq!(got.topic, topics::topic("gw-b", Kind::Manifest).unwrap().as_str());
    assert!(a.next(1).await.is_none(), "A read B's delivery");
    // A cannot publish for B: its report on B's topic and its chunk request for B never reach
    // the controller; its own report, published after them, does.
    let v = airlock_proto::Version::new(1, 0, 0);
    a.publish_as("gw-b", Kind::Report, support::report(&key(1), "gw-b", 1, support::status(v))).await;
    a.publish_as("gw-b", Kind::ChunkRequest, support::chunk_request(&support::image(10), 0, 10)).await;
    a.publish(Kind::Report, support::report(&key(1), "gw-a", 1, support::status(v))).await;
    let r = ctl.next_report(10).await.expect("A's own report");
    assert_eq!(r.device, "gw-a");
    // The chunk queue is not ordered with the report queue: give it time to show a leak.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ctl.stat("report_dropped_wrong_signer") + ctl.stat("report_dropped_device_mismatch"), 0);
    assert_eq!(ctl.stat("chunk_dropped_unknown_image"), 0, "A's chunk request on B's topic got through");
    assert!(b.next(1).await.is_none(), "B got nothing");

    // And the whole chunk flow works within those rules.
    support::chunk_requests_are_answered(&ctl, &mut a, true).await;
    ctl.stop().await;
}
