//! Shared test helpers: a broker on port 0 with a fixed set of logins, and rumqttc clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_broker::{Broker, BrokerConfig, StaticAuth};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn auth(devices: usize) -> StaticAuth {
    let mut a = StaticAuth::new().controller("ctl", "ctl-pw");
    for i in 0..devices {
        a = a.device(&format!("dev-{i}"), &format!("pw-{i}"));
    }
    a
}

pub async fn broker(config: impl FnOnce(&mut BrokerConfig)) -> Broker {
    let mut c = BrokerConfig::new("127.0.0.1:0".parse().unwrap());
    config(&mut c);
    Broker::start(c, Arc::new(auth(300))).await.expect("broker starts")
}

pub fn options(addr: SocketAddr, id: &str, login: Option<(&str, &str)>, clean: bool) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_clean_session(clean).set_keep_alive(Duration::from_secs(30));
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    o
}

/// Connects and waits for the CONNACK; the error if refused.
pub async fn try_connect(o: MqttOptions) -> Result<(AsyncClient, EventLoop, bool), ConnectionError> {
    let (client, mut el) = AsyncClient::new(o, 256);
    let present = tokio::time::timeout(WAIT, async {
        loop {
            match el.poll().await? {
                Event::Incoming(Packet::ConnAck(a)) => return Ok::<bool, ConnectionError>(a.session_present),
                _ => continue,
            }
        }
    })
    .await
    .expect("CONNACK or an error within the wait")?;
    Ok((client, el, present))
}

/// A device `dev-{i}` with its own login.
pub async fn device(addr: SocketAddr, i: usize, clean: bool) -> (AsyncClient, EventLoop, bool) {
    let id = format!("dev-{i}");
    let pw = format!("pw-{i}");
    try_connect(options(addr, &id, Some((&id, &pw)), clean)).await.expect("device connects")
}

/// Subscribes and returns the SUBACK's return codes.
pub async fn subscribe(c: &AsyncClient, el: &mut EventLoop, filters: &[&str]) -> Vec<rumqttc::SubscribeReasonCode> {
    c.subscribe_many(filters.iter().map(|f| rumqttc::SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce)))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(Packet::SubAck(a)) = el.poll().await.expect("connection holds") {
                return a.return_codes;
            }
        }
    })
    .await
    .expect("SUBACK")
}

/// The next PUBLISH within `wait`, if any.
pub async fn next_publish(el: &mut EventLoop, wait: Duration) -> Option<Publish> {
    tokio::time::timeout(wait, async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => return Some(p),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Polls the event loop (acks, pings) for `d`.
pub async fn pump(el: &mut EventLoop, d: Duration) {
    let _ = tokio::time::timeout(d, async {
        loop {
            if el.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
}

/// Waits until `f` holds (checked every 20 ms), at most `WAIT`.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}
