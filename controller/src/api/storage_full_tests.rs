//! The API on a database that fills up: SQLite capped with `PRAGMA max_page_count` (SQLite's own
//! limit, the portable stand-in for a full disk; a tmpfs or loop mount needs privileges).

use crate::server::{self, Config};
use crate::store::Store;
use crate::workflow::Clock;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// 2026-11-25 (a Wednesday) 12:00 UTC.
const T0: i64 = 1_795_608_000_000;

struct Running {
    base: String,
    admin: String,
    store: Store,
    audit_key: airlock_proto::PublicKey,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve(config: &Config) -> Running {
    let (state, first) = server::start(config, Clock::fixed(T0)).await.unwrap();
    let admin = first.users.iter().find(|(u, _)| u.name == "admin").map(|(_, t)| t.clone()).unwrap();
    let store = state.wf.store.clone();
    let audit_key = state.wf.audit_key();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::run(listener, state, async {
        let _ = rx.await;
    }));
    Running { base, admin, store, audit_key, stop, served }
}

async fn enroll(http: &reqwest::Client, r: &Running, i: usize) -> (u16, Value) {
    let key = crate::keys::public_hex(&ed25519_dalek::SigningKey::from_bytes(&[(i % 250) as u8 + 1; 32]));
    let d = json!({ "id": format!("dev-{i:04}"), "public_key": key, "hardware": "gw-m4", "region": "eu",
                    "environment": "lab", "firmware": "2.3.0", "tags": ["x".repeat(200)], "enrolled_at": 0 });
    let resp = http.post(format!("{}/api/devices", r.base)).bearer_auth(&r.admin).json(&d).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Every acknowledged enrolment is in the database file, with its audit entry, and the audit
/// trail verifies.
async fn assert_all_persisted(url: &str, acknowledged: &BTreeSet<String>, audit_key: &airlock_proto::PublicKey) {
    let store = Store::open(url).await.unwrap();
    let stored: BTreeSet<String> =
        crate::registry::all(store.pool()).await.unwrap().into_iter().map(|d| d.id).collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost after reopening: {lost:?}");
    let report = crate::audit::verify(store.pool(), audit_key).await.unwrap();
    assert!(report.is_ok(), "audit trail after reopening: {:?}", report.problems);
    let entries = crate::audit::entries(store.pool(), None, 100_000).await.unwrap();
    let enrolled = entries.iter().filter(|e| e.kind == "device_enrolled").count();
    assert_eq!(enrolled, stored.len(), "one audit entry per stored enrolment");
    store.close().await;
}

#[tokio::test]
async fn a_full_database_answers_503_loses_nothing_acknowledged_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().join("data"),
        policies: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        ..Config::default()
    };
    let url = format!("sqlite://{}?mode=rwc", config.data_dir.join("airlock.db").display());
    let r = serve(&config).await;
    let http = reqwest::Client::new();
    let pages = r.store.sqlite_page_count().await.unwrap();
    r.store.set_sqlite_page_limit(pages + 12).await.unwrap();

    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for i in 0..300 {
        let (status, body) = enroll(&http, &r, i).await;
        match status {
            201 => {
                acknowledged.insert(format!("dev-{i:04}"));
            }
            503 => {
                refused += 1;
                let message = body["error"].as_str().unwrap_or_default();
                assert!(message.contains("full"), "a 503 names the problem: {body}");
            }
            other => panic!("enrolment {i} on a full database answered {other}: {body}"),
        }
    }
    assert!(acknowledged.len() >= 5, "the cap left room for a few enrolments: {}", acknowledged.len());
    assert!(refused >= 100, "the database filled up: {refused} refusals");

    // Space returns: the same running controller accepts writes again.
    r.store.set_sqlite_page_limit(1 << 30).await.unwrap();
    for i in 1000..1010 {
        let (status, body) = enroll(&http, &r, i).await;
        assert_eq!(status, 201, "enrolment after space returned: {body}");
        acknowledged.insert(format!("dev-{i:04}"));
    }

    let audit_key = r.audit_key;
    let _ = r.stop.send(());
    r.served.await.unwrap().unwrap();
    r.store.close().await;
    assert_all_persisted(&url, &acknowledged, &audit_key).await;
}
