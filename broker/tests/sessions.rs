//! Persistent sessions, takeover and keep-alive, with real rumqttc clients over TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use airlock_broker::QoS as BQoS;
use common::*;
use std::time::Duration;

#[tokio::test]
async fn a_qos1_message_reaches_a_device_that_was_offline_when_it_was_sent() {
    let b = broker(|_| {}).await;
    let addr = b.local_addrs()[0];
    let (c, mut el, present) = device(addr, 1, false).await;
    assert!(!present);
    subscribe(&c, &mut el, &["airlock/v1/d/dev-1/manifest"]).await;
    c.disconnect().await.unwrap();
    pump(&mut el, Duration::from_millis(200)).await;
    drop((c, el));
    assert!(eventually(|| b.metrics().connections == 0).await);

    let (tx, _rx) = b.link("controller", 8);
    let p = tx.publish("airlock/v1/d/dev-1/manifest", b"delivery".to_vec(), BQoS::AtLeastOnce).await.unwrap();
    assert_eq!((p.matched, p.queued), (1, 1), "queued for the offline session");

    let (_c, mut el, present) = device(addr, 1, false).await;
    assert!(present, "the session was kept");
    let got = next_publish(&mut el, WAIT).await.expect("the delivery arrives after reconnecting");
    assert_eq!((got.topic.as_str(), &got.payload[..]), ("airlock/v1/d/dev-1/manifest", &b"delivery"[..]));
}

#[tokio::test]
async fn after_a_clean_session_nothing_sent_while_offline_arrives() {
    let b = broker(|_| {}).await;
    let addr = b.local_addrs()[0];
    let (c, mut el, _) = device(addr, 1, true).await;
    subscribe(&c, &mut el, &["airlock/v1/d/dev-1/manifest"]).await;
    c.disconnect().await.unwrap();
    pump(&mut el, Duration::from_millis(200)).await;
    drop((c, el));
    assert!(eventually(|| b.metrics().sessions == 0).await, "a clean session ends with its connection");
    let (tx, _rx) = b.link("controller", 8);
    let p = tx.publish("airlock/v1/d/dev-1/manifest", b"delivery".to_vec(), BQoS::AtLeastOnce).await.unwrap();
    assert_eq!(p.matched, 0);
    let (c, mut el, present) = device(addr, 1, false).await;
    assert!(!present);
    subscribe(&c, &mut el, &["airlock/v1/d/dev-1/manifest"]).await;
    assert!(next_publish(&mut el, Duration::from_millis(500)).await.is_none());
}

#[tokio::test]
async fn a_second_connection_with_the_same_client_id_takes_the_session_over() {
    let b = broker(|_| {}).await;
    let addr = b.local_addrs()[0];
    let (c1, mut el1, _) = device(addr, 1, false).await;
    subscribe(&c1, &mut el1, &["airlock/v1/d/dev-1/cmd"]).await;
    let (_c2, mut el2, present) = device(addr, 1, false).await;
    assert!(present, "the new connection resumes the session");
    let old_closed = tokio::time::timeout(WAIT, async {
        loop {
            if el1.poll().await.is_err() {
                return true;
            }
        }
    })
    .await
    .unwrap();
    assert!(old_closed, "the old connection was closed");
    assert_eq!(b.metrics().takeovers, 1);
    let (tx, _rx) = b.link("controller", 8);
    tx.publish("airlock/v1/d/dev-1/cmd", b"pause".to_vec(), BQoS::AtLeastOnce).await.unwrap();
    let got = next_publish(&mut el2, WAIT).await.expect("the new connection gets the command");
    assert_eq!(&got.payload[..], b"pause");
}

#[tokio::test]
async fn a_client_silent_past_its_keep_alive_is_disconnected() {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    let b = broker(|_| {}).await;
    let mut s = tokio::net::TcpStream::connect(b.local_addrs()[0]).await.unwrap();
    // CONNECT 3.1.1, clean session, username+password flags, keep-alive 1 s, id/user "dev-1", password "pw-1".
    let mut pkt = vec![0x10, 0];
    pkt.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 1]);
    for field in [&b"dev-1"[..], b"dev-1", b"pw-1"] {
        pkt.extend_from_slice(&(field.len() as u16).to_be_bytes());
        pkt.extend_from_slice(field);
    }
    pkt[1] = (pkt.len() - 2) as u8;
    s.write_all(&pkt).await.unwrap();
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, s.read_to_end(&mut rest)).await.expect("closed by the broker").unwrap_or(0);
    assert_eq!(n, 0);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1400) && waited < Duration::from_secs(4), "closed after {waited:?}");
    assert_eq!(b.metrics().keepalive_timeouts, 1);
}
