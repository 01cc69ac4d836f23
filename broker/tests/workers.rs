//! Multi-process mode: more devices than one worker's open-file limit, spread over worker
//! processes (the `airlock-broker-worker` binary), with unicast, broadcast and device publishes
//! all routed across processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use airlock_broker::{Broker, BrokerConfig, Processes, QoS as BQoS, WorkerCommand};
use common::*;
use std::sync::Arc;
use std::time::Duration;

const DEVICES: usize = 300;
/// Each worker's own soft limit: far below the fleet.
const WORKER_FDS: u64 = 128;

fn worker() -> WorkerCommand {
    WorkerCommand {
        program: env!("CARGO_BIN_EXE_airlock-broker-worker").into(),
        args: vec![],
        fd_limit: Some(WORKER_FDS),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_carry_more_devices_than_one_process_may_hold_with_unicast_and_broadcast_routed() {
    let mut config = BrokerConfig::new("127.0.0.1:0".parse().unwrap());
    config.processes = Processes::Workers { count: 4, worker: worker() };
    let b = Broker::start(config, Arc::new(auth(DEVICES))).await.expect("broker with workers starts");
    assert_eq!(b.workers(), 4);
    for pid in b.worker_pids() {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
        assert_eq!(line.split_whitespace().nth(3), Some("128"), "worker {pid}: {line}");
    }
    let addr = b.local_addrs()[0];
    let (tx, mut rx) = b.link("controller", 4096);
    tx.subscribe("airlock/v1/d/+/report", BQoS::AtLeastOnce).unwrap();

    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let (c, mut el, _) = device(addr, i, false).await;
        let codes = subscribe(
            &c,
            &mut el,
            &[&format!("airlock/v1/d/dev-{i}/manifest"), "airlock/v1/i/+", "airlock/v1/d/dev-0/cmd"],
        )
        .await;
        assert_eq!(codes[2] == rumqttc::SubscribeReasonCode::Failure, i != 0, "the ACL holds in the workers too");
        devices.push((c, el));
    }
    assert!(eventually(|| b.metrics().connections == DEVICES as u64).await, "connections: {:?}", b.metrics());
    assert_eq!(b.metrics().handoffs, DEVICES as u64);
    let per_worker_max = DEVICES.div_ceil(4) + 40;
    assert!((per_worker_max as u64) < WORKER_FDS, "each worker stays under its limit");

    for i in 0..DEVICES {
        let p = tx
            .publish(&format!("airlock/v1/d/dev-{i}/manifest"), format!("for {i}").into_bytes(), BQoS::AtLeastOnce)
            .await
            .unwrap();
        assert!(p.forwarded);
    }
    let p = tx.publish("airlock/v1/i/cafe", vec![7u8; 4096], BQoS::AtMostOnce).await.unwrap();
    assert!(p.forwarded);

    for (i, (c, el)) in devices.iter_mut().enumerate() {
        let mut unicast = 0;
        let mut broadcast = 0;
        while let Some(p) =
            next_publish(el, Duration::from_millis(if unicast + broadcast < 2 { 5000 } else { 10 })).await
        {
            match p.topic.as_str() {
                t if t == format!("airlock/v1/d/dev-{i}/manifest") => {
                    assert_eq!(p.payload, format!("for {i}").into_bytes());
                    unicast += 1;
                }
                "airlock/v1/i/cafe" => broadcast += 1,
                other => panic!("dev-{i} got {other}"),
            }
        }
        assert_eq!((unicast, broadcast), (1, 1), "dev-{i}");
        c.publish(format!("airlock/v1/d/dev-{i}/report"), rumqttc::QoS::AtLeastOnce, false, b"ok".to_vec())
            .await
            .unwrap();
        pump(el, Duration::from_millis(5)).await;
    }
    let mut reports = 0;
    while reports < DEVICES {
        let m = tokio::time::timeout(WAIT, rx.recv()).await.expect("every report reaches the main process").unwrap();
        assert!(m.topic.ends_with("/report"));
        reports += 1;
    }
    b.shutdown().await;
}

#[tokio::test]
async fn auto_mode_stays_in_one_process_when_the_fleet_fits() {
    let mut config = BrokerConfig::new("127.0.0.1:0".parse().unwrap());
    config.processes = Processes::Auto { expected_connections: 1000, worker: worker() };
    let b = Broker::start(config, Arc::new(auth(1))).await.unwrap();
    assert_eq!(b.workers(), 0);
    assert!(b.fd_limit().connections() >= 1000);
}
