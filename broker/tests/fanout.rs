//! Broadcast fan-out and bounded queues, with real rumqttc clients over TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use airlock_broker::QoS as BQoS;
use common::*;
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test]
async fn a_broadcast_reaches_every_subscriber_exactly_once() {
    let b = broker(|_| {}).await;
    let addr = b.local_addrs()[0];
    let mut devices = Vec::new();
    for i in 0..20 {
        let (c, mut el, _) = device(addr, i, true).await;
        subscribe(&c, &mut el, &["airlock/v1/i/+"]).await;
        devices.push((c, el));
    }
    let (tx, _rx) = b.link("controller", 8);
    let chunk = vec![0xAB; 4096];
    for n in 0..8u8 {
        let mut payload = chunk.clone();
        payload[0] = n;
        let p = tx.publish("airlock/v1/i/feed", payload, BQoS::AtMostOnce).await.unwrap();
        assert_eq!((p.matched, p.queued, p.dropped), (20, 20, 0));
    }
    for (_c, el) in &mut devices {
        let mut seen: HashMap<u8, usize> = HashMap::new();
        while let Some(p) = next_publish(el, Duration::from_millis(300)).await {
            assert_eq!(p.payload.len(), 4096);
            *seen.entry(p.payload[0]).or_default() += 1;
        }
        assert_eq!(seen.len(), 8, "every message arrived");
        assert!(seen.values().all(|n| *n == 1), "none twice: {seen:?}");
    }
    assert_eq!(b.metrics().qos0_out, 160);
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_has_a_bounded_queue_and_drops_are_counted() {
    let b = broker(|c| c.max_queued_qos0 = 16).await;
    let addr = b.local_addrs()[0];
    let (c, mut el, _) = device(addr, 1, true).await;
    subscribe(&c, &mut el, &["airlock/v1/i/+"]).await;
    // The client stops reading: the kernel's socket buffers fill, then the broker's queue.
    let (tx, _rx) = b.link("controller", 8);
    let payload = vec![0u8; 8192];
    let mut dropped = 0;
    for _ in 0..2000 {
        dropped += tx.publish("airlock/v1/i/feed", payload.clone(), BQoS::AtMostOnce).await.unwrap().dropped;
        tokio::task::yield_now().await;
    }
    let m = b.metrics();
    assert!(dropped > 0, "a full queue drops");
    assert_eq!(m.dropped_qos0_full, dropped as u64);
    assert!(m.queued <= 16, "at most the bound stays queued: {}", m.queued);
    drop((c, el));
}

#[tokio::test]
async fn device_reports_reach_the_controller_link_and_its_answer_reaches_the_device() {
    let b = broker(|_| {}).await;
    let addr = b.local_addrs()[0];
    let (tx, mut rx) = b.link("controller", 64);
    tx.subscribe("airlock/v1/d/+/chunk/req", BQoS::AtLeastOnce).unwrap();
    let (c, mut el, _) = device(addr, 3, true).await;
    subscribe(&c, &mut el, &["airlock/v1/d/dev-3/chunk"]).await;
    c.publish("airlock/v1/d/dev-3/chunk/req", rumqttc::QoS::AtLeastOnce, false, b"req".to_vec()).await.unwrap();
    let req = tokio::select! {
        m = rx.recv() => m.unwrap(),
        () = pump(&mut el, WAIT) => panic!("no request"),
    };
    assert_eq!(req.qos, BQoS::AtLeastOnce);
    tx.publish("airlock/v1/d/dev-3/chunk", b"answer".to_vec(), BQoS::AtLeastOnce).await.unwrap();
    let got = next_publish(&mut el, WAIT).await.unwrap();
    assert_eq!(&got.payload[..], b"answer");
}
