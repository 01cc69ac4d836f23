//! Logins and ACLs against real rumqttc clients over TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use airlock_broker::QoS as BQoS;
use common::*;
use rumqttc::{ConnectReturnCode, ConnectionError, QoS, SubscribeReasonCode};
use std::time::Duration;

fn refused(r: Result<(rumqttc::AsyncClient, rumqttc::EventLoop, bool), ConnectionError>) -> ConnectReturnCode {
    match r {
        Err(ConnectionError::ConnectionRefused(code)) => code,
        Err(e) => panic!("expected a refusing CONNACK, got {e}"),
        Ok(_) => panic!("expected a refusal, the login was accepted"),
    }
}

#[tokio::test]
async fn logins_without_credentials_with_a_wrong_password_or_a_foreign_client_id_are_refused() {
    let b = broker(|_| {}).await;
    let addr = b.local_addrs()[0];
    assert_eq!(refused(try_connect(options(addr, "dev-1", None, true)).await), ConnectReturnCode::BadUserNamePassword);
    assert_eq!(
        refused(try_connect(options(addr, "dev-1", Some(("dev-1", "wrong")), true)).await),
        ConnectReturnCode::BadUserNamePassword
    );
    assert_eq!(
        refused(try_connect(options(addr, "dev-2", Some(("dev-1", "pw-1")), true)).await),
        ConnectReturnCode::BadClientId,
        "client id must be the username"
    );
    assert_eq!(
        refused(try_connect(options(addr, "nobody", Some(("nobody", "pw-1")), true)).await),
        ConnectReturnCode::BadUserNamePassword
    );
    assert!(try_connect(options(addr, "dev-1", Some(("dev-1", "pw-1")), true)).await.is_ok());
    assert_eq!(b.metrics().connects_refused, 4);
    assert_eq!(b.metrics().connects, 1);
}

#[tokio::test]
async fn a_device_cannot_subscribe_to_another_devices_topics_but_to_its_own_and_broadcasts() {
    let b = broker(|_| {}).await;
    let addr = b.local_addrs()[0];
    let (c, mut el, _) = device(addr, 1, true).await;
    let codes = subscribe(
        &c,
        &mut el,
        &[
            "airlock/v1/d/dev-1/manifest",
            "airlock/v1/d/dev-2/manifest",
            "airlock/v1/d/dev-1/report",
            "airlock/v1/d/+/chunk",
            "airlock/v1/i/+",
            "#",
        ],
    )
    .await;
    assert_eq!(
        codes,
        vec![
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
            SubscribeReasonCode::Failure,
            SubscribeReasonCode::Failure,
            SubscribeReasonCode::Failure,
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
            SubscribeReasonCode::Failure,
        ]
    );
    assert_eq!(b.metrics().acl_subscribe_refused, 4);
}

#[tokio::test]
async fn a_device_cannot_publish_on_another_devices_topics_nor_on_broadcasts() {
    let b = broker(|_| {}).await;
    let addr = b.local_addrs()[0];
    let (tx, mut rx) = b.link("controller", 64);
    tx.subscribe("#", BQoS::AtLeastOnce).unwrap();
    let (victim, mut victim_el, _) = device(addr, 2, true).await;
    subscribe(&victim, &mut victim_el, &["airlock/v1/d/dev-2/manifest", "airlock/v1/i/+"]).await;
    let (c, mut el, _) = device(addr, 1, true).await;
    for topic in
        ["airlock/v1/d/dev-2/report", "airlock/v1/d/dev-2/manifest", "airlock/v1/i/abcd", "airlock/v1/d/dev-1/cmd"]
    {
        c.publish(topic, QoS::AtLeastOnce, false, b"forged".to_vec()).await.unwrap();
    }
    c.publish("airlock/v1/d/dev-1/report", QoS::AtLeastOnce, false, b"mine".to_vec()).await.unwrap();
    pump(&mut el, Duration::from_millis(500)).await;
    let got = tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!((&*got.topic, &got.payload[..]), ("airlock/v1/d/dev-1/report", &b"mine"[..]));
    assert!(rx.try_recv().is_none(), "nothing forged reached the controller");
    assert!(next_publish(&mut victim_el, Duration::from_millis(300)).await.is_none(), "nothing forged reached dev-2");
    assert_eq!(b.metrics().acl_publish_refused, 4);
}

#[tokio::test]
async fn a_qos2_publish_closes_the_connection_and_is_counted() {
    let b = broker(|_| {}).await;
    let (c, mut el, _) = device(b.local_addrs()[0], 1, true).await;
    c.publish("airlock/v1/d/dev-1/report", QoS::ExactlyOnce, false, b"x".to_vec()).await.unwrap();
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            if el.poll().await.is_err() {
                return true;
            }
        }
    })
    .await
    .unwrap();
    assert!(closed);
    assert!(eventually(|| b.metrics().qos2_refused == 1).await);
}

#[tokio::test]
async fn a_client_speaking_mqtt5_is_refused_with_the_protocol_code() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = broker(|_| {}).await;
    let mut s = tokio::net::TcpStream::connect(b.local_addrs()[0]).await.unwrap();
    // CONNECT, protocol "MQTT" level 5, clean start, keep-alive 10, no properties, client id "x".
    s.write_all(&[0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 10, 0, 0, 1, b'x']).await.unwrap();
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack, [0x20, 2, 0, 1], "CONNACK 0x01: unacceptable protocol version");
}

#[tokio::test]
async fn a_stream_accepted_elsewhere_gets_the_same_handshake_and_login_check() {
    // What a TLS acceptor would hand over: any AsyncRead + AsyncWrite (here an in-memory pipe).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = broker(|_| {}).await;
    let connect = |password: &[u8]| {
        let mut pkt = vec![0x10, 0];
        pkt.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 30]);
        for field in [&b"dev-1"[..], b"dev-1", password] {
            pkt.extend_from_slice(&(field.len() as u16).to_be_bytes());
            pkt.extend_from_slice(field);
        }
        pkt[1] = (pkt.len() - 2) as u8;
        pkt
    };
    for (password, code) in [(&b"pw-1"[..], 0u8), (b"wrong", 4)] {
        let (mut ours, theirs) = tokio::io::duplex(4096);
        b.serve_stream(theirs);
        ours.write_all(&connect(password)).await.unwrap();
        let mut ack = [0u8; 4];
        ours.read_exact(&mut ack).await.unwrap();
        assert_eq!(ack, [0x20, 2, 0, code]);
    }
}
