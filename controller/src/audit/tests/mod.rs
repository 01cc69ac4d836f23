//! The audit trail on both backends: golden bytes, a clean trail, the triggers, transactions.
//! Tampering is in [`tamper`]; what only the witness file catches, in [`witness`].

use super::chain::{self, Fields, GENESIS};
use super::*;
use crate::store::testing::{self, TestStore};
use crate::store::Backend;
use serde_json::json;
use sqlx::Row;

const T0: i64 = 1_700_000_000_000;

fn key() -> AuditKey {
    AuditKey::new(SigningKey::from_bytes(&[7; 32]))
}

/// Entry `i` of the test trails: mixed actors, proposals (some none) and non-ASCII bodies.
fn entry(i: i64) -> Entry<'static> {
    Entry {
        actor: if i % 2 == 0 { "alice" } else { "controller" },
        kind: if i % 3 == 0 { "escalated" } else { "approved" },
        proposal_id: (i % 4 != 0).then_some(1 + i % 2),
        body: json!({ "i": i, "note": "déjà vu ✓", "pools": ["ops", "security"] }),
        at_ms: T0 + i,
    }
}

/// Appends entries `1..=n`, each in a transaction of its own.
async fn append_n(t: &TestStore, n: i64) -> Vec<Appended> {
    let key = key();
    let mut out = Vec::new();
    for i in 1..=n {
        let mut tx = t.store.pool().begin().await.unwrap();
        out.push(append(&mut tx, &key, entry(i)).await.unwrap());
        tx.commit().await.unwrap();
    }
    out
}

async fn check(t: &TestStore) -> VerifyReport {
    verify(t.store.pool(), &key().public_key()).await.unwrap()
}

async fn count(t: &TestStore, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(t.store.pool()).await.unwrap().try_get::<i64, _>(0).unwrap()
}

/// Runs an async test body against SQLite and against PostgreSQL.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                ($body)(testing::sqlite().await.unwrap()).await;
            }
            #[tokio::test]
            async fn postgres() {
                let Some(t) = testing::postgres(concat!("audit::", stringify!($name))).await.unwrap() else { return };
                ($body)(t).await;
            }
        }
    };
}

#[test]
fn entry_hashes_match_the_documented_bytes() {
    // Golden values computed independently (Python hashlib) from the layout in `chain`'s docs.
    let first = Fields {
        seq: 1,
        at_ms: 1_700_000_000_000,
        actor: "alice",
        kind: "approved",
        proposal_id: Some(42),
        body: r#"{"decision":"approve","revision":2}"#,
    };
    let h1 = chain::entry_hash(&GENESIS, &first);
    assert_eq!(hex::encode(h1), "38dabddcd676fd99db1d242d072d6288b6c2dc83f7ba23b14afdaece94c9b451");
    let second =
        Fields { seq: 2, at_ms: 1_700_000_000_001, actor: "controller", kind: "signed", proposal_id: None, body: "{}" };
    let h2 = chain::entry_hash(&h1, &second);
    assert_eq!(hex::encode(h2), "038a118ac7a903909bd086ac9883957757960946ebb73a74fad5ddf6aebc0f9f");

    // Each field is covered, and the length prefixes keep field boundaries apart.
    let moved = Fields { actor: "alic", kind: "eapproved", ..first };
    assert_ne!(chain::entry_hash(&GENESIS, &moved), h1);
    assert_ne!(chain::entry_hash(&GENESIS, &Fields { proposal_id: None, ..first }), h1);
    assert_ne!(chain::entry_hash(&GENESIS, &Fields { seq: 2, ..first }), h1);
    assert_ne!(chain::entry_hash(&[1; 32], &first), h1);
}

#[test]
fn checkpoint_signatures_match_an_independent_implementation() {
    // Signature computed with Python `cryptography` (OpenSSL) over
    // "airlock/v1/audit-checkpoint\0" || 2u64 LE || h2, with the seed [7; 32].
    let h2: [u8; 32] = chain::from_hex("038a118ac7a903909bd086ac9883957757960946ebb73a74fad5ddf6aebc0f9f").unwrap();
    let k = key();
    assert_eq!(
        hex::encode(k.public_key().as_array()),
        "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
    );
    let sig = chain::sign_checkpoint(k.signing_key(), 2, &h2);
    assert_eq!(
        hex::encode(sig),
        "12552362cbeabbb190eddfc268ac23e707adfd7eef4e48c3994869e925109c0f\
         5e85ce786fdcd535dd45f3398cbd46a1503820d7abd1f9e3a2ecd7cf68611001"
    );
    let public = *k.public_key().as_array();
    assert!(chain::checkpoint_signature_ok(&public, 2, &h2, &sig));
    assert!(!chain::checkpoint_signature_ok(&public, 3, &h2, &sig), "another seq");
    let mut other = h2;
    other[31] ^= 1;
    assert!(!chain::checkpoint_signature_ok(&public, 2, &other, &sig), "another hash");
}

#[test]
fn hex_fields_must_be_exact_lower_case() {
    assert_eq!(chain::from_hex::<2>("0aff").unwrap(), [0x0a, 0xff]);
    assert!(chain::from_hex::<2>("0AFF").unwrap_err().contains("lower-case"));
    assert!(chain::from_hex::<2>("0aff00").is_err());
    assert!(chain::from_hex::<2>("0agg").is_err());
}

#[test]
fn the_audit_key_debug_shows_only_the_public_key() {
    let shown = format!("{:?}", key());
    assert!(shown.contains("ea4a6c63e29c520a"), "{shown}");
    assert!(!shown.contains(&hex::encode([7u8; 32])), "secret in {shown}");
}

#[test]
fn problems_read_as_sentences() {
    assert_eq!(Problem::Deleted { seq: 3, count: 1 }.to_string(), "entry 3 was deleted");
    assert_eq!(Problem::Deleted { seq: 3, count: 2 }.to_string(), "entries 3 to 4 were deleted");
    assert_eq!(Problem::Reordered { seq: 2, signed_as: 4 }.seq(), 2);
}

#[test]
fn reports_serialise_for_the_api() {
    let report = VerifyReport {
        entries: 4,
        checkpoints: 5,
        head: Some((4, "ab".into())),
        problems: vec![Problem::Truncated { seq: 5, signed_up_to: 5 }],
    };
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        json!({
            "entries": 4, "checkpoints": 5, "head": [4, "ab"],
            "problems": [{
                "problem": "truncated", "seq": 5,
                "message": "the trail was truncated: entry 5 was deleted from its end (its signed checkpoint remains)"
            }]
        })
    );
}

both!(an_empty_trail_verifies, |t: TestStore| async move {
    assert_eq!(check(&t).await, VerifyReport { entries: 0, checkpoints: 0, head: None, problems: vec![] });
});

both!(a_clean_trail_verifies_and_reads_back, |t: TestStore| async move {
    let appended = append_n(&t, 25).await;
    assert_eq!(appended.iter().map(|a| a.seq).collect::<Vec<_>>(), (1..=25).collect::<Vec<u64>>());
    let report = check(&t).await;
    let head = appended.last().map(|a| (a.seq, a.hash.clone()));
    assert_eq!(report, VerifyReport { entries: 25, checkpoints: 25, head, problems: vec![] });
    assert!(report.is_ok());

    let all = entries(t.store.pool(), None, 100).await.unwrap();
    assert_eq!(all.len(), 25);
    let e = entry(7);
    assert_eq!(
        (all[6].seq, all[6].at_ms, all[6].actor.as_str(), all[6].kind.as_str(), all[6].proposal_id, &all[6].body),
        (7, e.at_ms, e.actor, e.kind, e.proposal_id, &e.body)
    );
    assert_eq!(all[0].prev, hex::encode(GENESIS));
    assert!(all.windows(2).all(|w| w[1].prev == w[0].hash), "chained");
    // The newest `limit`, oldest first; filtered by proposal.
    let newest = entries(t.store.pool(), None, 3).await.unwrap();
    assert_eq!(newest.iter().map(|e| e.seq).collect::<Vec<_>>(), [23, 24, 25]);
    let one = entries(t.store.pool(), Some(1), 100).await.unwrap();
    assert_eq!(one.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 6, 10, 14, 18, 22]);
});

both!(concurrent_appenders_get_consecutive_seqs, |t: TestStore| async move {
    let key = std::sync::Arc::new(key());
    let mut tasks = Vec::new();
    for task in 0..8 {
        let (pool, key) = (t.store.pool().clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let mut tx = pool.begin().await.unwrap();
                append(&mut tx, &key, entry(task * 100 + i)).await.unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let report = check(&t).await;
    assert_eq!((report.entries, report.checkpoints, report.problems), (80, 80, vec![]));
    assert_eq!(report.head.map(|h| h.0), Some(80));
});

both!(a_rolled_back_append_leaves_no_row_and_no_gap, |t: TestStore| async move {
    let key = key();
    // The very first append, counter row included, rolls back.
    let mut tx = t.store.pool().begin().await.unwrap();
    assert_eq!(append(&mut tx, &key, entry(1)).await.unwrap().seq, 1);
    tx.rollback().await.unwrap();
    assert_eq!(count(&t, "SELECT COUNT(*) FROM audit").await, 0);

    append_n(&t, 2).await;
    let mut tx = t.store.pool().begin().await.unwrap();
    assert_eq!(append(&mut tx, &key, entry(3)).await.unwrap().seq, 3);
    drop(tx); // dropped without commit: rolled back
    assert_eq!(count(&t, "SELECT COUNT(*) FROM audit").await, 2);
    assert_eq!(count(&t, "SELECT COUNT(*) FROM audit_checkpoints").await, 2);
    assert_eq!(count(&t, "SELECT value FROM counters WHERE name = 'audit_seq'").await, 2);

    let mut tx = t.store.pool().begin().await.unwrap();
    assert_eq!(append(&mut tx, &key, entry(4)).await.unwrap().seq, 3);
    tx.commit().await.unwrap();
    let report = check(&t).await;
    assert_eq!((report.entries, report.problems), (3, vec![]));
});

/// The error a trigger raised, as the database words it.
fn refusal(result: Result<sqlx::any::AnyQueryResult, sqlx::Error>) -> String {
    match result {
        Err(sqlx::Error::Database(e)) => e.message().to_string(),
        other => format!("not refused by the database: {other:?}"),
    }
}

both!(the_triggers_refuse_update_delete_and_truncate, |t: TestStore| async move {
    append_n(&t, 2).await;
    let pool = t.store.pool();
    let mut refused = vec![
        refusal(sqlx::query("UPDATE audit SET actor = 'mallory' WHERE seq = 1").execute(pool).await),
        refusal(sqlx::query("DELETE FROM audit WHERE seq = 2").execute(pool).await),
        refusal(sqlx::query("UPDATE audit_checkpoints SET signature = '00' WHERE seq = 1").execute(pool).await),
        refusal(sqlx::query("DELETE FROM audit_checkpoints").execute(pool).await),
    ];
    if t.store.backend() == Backend::Postgres {
        // SQLite has no TRUNCATE: `DELETE FROM audit` without WHERE is refused above.
        refused.push(refusal(sqlx::query("TRUNCATE audit").execute(pool).await));
        refused.push(refusal(sqlx::query("TRUNCATE audit_checkpoints").execute(pool).await));
    }
    for message in &refused {
        assert_eq!(message, "audit log is append-only");
    }
    let report = check(&t).await;
    assert_eq!((report.entries, report.checkpoints, report.problems), (2, 2, vec![]));
});

// After `both!`, which they use.
mod tamper;
mod witness;
