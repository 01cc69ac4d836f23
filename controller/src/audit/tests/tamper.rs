//! Tampering as someone with database admin rights would do it: drop the append-only triggers,
//! then edit, delete, reorder and forge. Each test asserts the exact problems reported.

use super::*;

/// What an attacker does first.
pub(super) async fn drop_triggers(t: &TestStore) {
    let statements: &[&'static str] = match t.store.backend() {
        Backend::Sqlite => &[
            "DROP TRIGGER audit_no_update",
            "DROP TRIGGER audit_no_delete",
            "DROP TRIGGER checkpoints_no_update",
            "DROP TRIGGER checkpoints_no_delete",
        ],
        Backend::Postgres => &[
            "DROP TRIGGER audit_append_only ON audit",
            "DROP TRIGGER audit_no_truncate ON audit",
            "DROP TRIGGER checkpoints_append_only ON audit_checkpoints",
            "DROP TRIGGER checkpoints_no_truncate ON audit_checkpoints",
        ],
    };
    for sql in statements {
        sqlx::query(*sql).execute(t.store.pool()).await.unwrap();
    }
}

/// A trail of five entries, its triggers dropped.
async fn five(t: &TestStore) -> Vec<Appended> {
    let appended = append_n(t, 5).await;
    drop_triggers(t).await;
    appended
}

pub(super) async fn run(t: &TestStore, sql: &'static str) {
    sqlx::query(sql).execute(t.store.pool()).await.unwrap();
}

/// Rewrites row `seq` with a new body and/or prev, recomputing its hash as an attacker who
/// read `chain` would. Returns the new hash.
pub(super) async fn reseal(t: &TestStore, seq: u64, body: Option<&str>, prev: Option<[u8; 32]>) -> [u8; 32] {
    let row = sqlx::query("SELECT at, actor, kind, proposal_id, body, prev FROM audit WHERE seq = $1")
        .bind(seq as i64)
        .fetch_one(t.store.pool())
        .await
        .unwrap();
    let (actor, kind, stored_body): (String, String, String) =
        (row.try_get("actor").unwrap(), row.try_get("kind").unwrap(), row.try_get("body").unwrap());
    let body = body.unwrap_or(&stored_body);
    let prev = prev.unwrap_or_else(|| chain::from_hex(&row.try_get::<String, _>("prev").unwrap()).unwrap());
    let fields = Fields {
        seq,
        at_ms: row.try_get("at").unwrap(),
        actor: &actor,
        kind: &kind,
        proposal_id: row.try_get("proposal_id").unwrap(),
        body,
    };
    let hash = chain::entry_hash(&prev, &fields);
    sqlx::query("UPDATE audit SET body = $1, prev = $2, hash = $3 WHERE seq = $4")
        .bind(body)
        .bind(hex::encode(prev))
        .bind(hex::encode(hash))
        .bind(seq as i64)
        .execute(t.store.pool())
        .await
        .unwrap();
    hash
}

pub(super) async fn set_checkpoint(t: &TestStore, seq: u64, hash: &[u8; 32], signer: &SigningKey, named: &[u8; 32]) {
    let signature = chain::sign_checkpoint(signer, seq, hash);
    sqlx::query("UPDATE audit_checkpoints SET hash = $1, key = $2, signature = $3 WHERE seq = $4")
        .bind(hex::encode(hash))
        .bind(hex::encode(named))
        .bind(hex::encode(signature))
        .bind(seq as i64)
        .execute(t.store.pool())
        .await
        .unwrap();
}

pub(super) fn mallory() -> SigningKey {
    SigningKey::from_bytes(&[66; 32])
}

both!(a_modified_body_is_reported_at_its_seq, |t: TestStore| async move {
    five(&t).await;
    run(&t, r#"UPDATE audit SET body = '{"i":3,"note":"nothing to see"}' WHERE seq = 3"#).await;
    assert_eq!(check(&t).await.problems, [Problem::Modified { seq: 3 }]);
});

both!(a_modified_actor_or_time_is_reported_at_its_seq, |t: TestStore| async move {
    five(&t).await;
    run(&t, "UPDATE audit SET actor = 'mallory' WHERE seq = 2").await;
    run(&t, "UPDATE audit SET at = at - 60000 WHERE seq = 4").await;
    assert_eq!(check(&t).await.problems, [Problem::Modified { seq: 2 }, Problem::Modified { seq: 4 }]);
});

both!(a_row_rewritten_with_its_hash_recomputed_fails_its_checkpoint, |t: TestStore| async move {
    five(&t).await;
    reseal(&t, 3, Some(r#"{"i":3,"note":"approved by nobody"}"#), None).await;
    assert_eq!(check(&t).await.problems, [Problem::CheckpointMismatch { seq: 3 }]);
});

both!(a_whole_rewritten_suffix_fails_every_checkpoint, |t: TestStore| async move {
    five(&t).await;
    let mut prev = reseal(&t, 3, Some(r#"{"i":3}"#), None).await;
    for seq in 4..=5 {
        prev = reseal(&t, seq, None, Some(prev)).await;
    }
    let expected: Vec<Problem> = (3..=5).map(|seq| Problem::CheckpointMismatch { seq }).collect();
    assert_eq!(check(&t).await.problems, expected);
});

both!(a_deleted_middle_row_is_reported, |t: TestStore| async move {
    five(&t).await;
    run(&t, "DELETE FROM audit WHERE seq = 3").await;
    let report = check(&t).await;
    assert_eq!((report.entries, report.checkpoints), (4, 5));
    assert_eq!(report.problems, [Problem::Deleted { seq: 3, count: 1 }]);
});

both!(deleted_rows_with_their_checkpoints_are_reported, |t: TestStore| async move {
    five(&t).await;
    run(&t, "DELETE FROM audit WHERE seq IN (2, 3)").await;
    run(&t, "DELETE FROM audit_checkpoints WHERE seq IN (2, 3)").await;
    assert_eq!(check(&t).await.problems, [Problem::Deleted { seq: 2, count: 2 }]);
});

both!(a_deleted_tail_is_reported_as_truncation, |t: TestStore| async move {
    let appended = five(&t).await;
    run(&t, "DELETE FROM audit WHERE seq = 5").await;
    let report = check(&t).await;
    assert_eq!(report.problems, [Problem::Truncated { seq: 5, signed_up_to: 5 }]);
    assert_eq!(report.head, Some((4, appended[3].hash.clone())));
    run(&t, "DELETE FROM audit WHERE seq = 4").await;
    assert_eq!(check(&t).await.problems, [Problem::Truncated { seq: 4, signed_up_to: 5 }]);
});

both!(swapped_rows_are_reported_as_reordered, |t: TestStore| async move {
    five(&t).await;
    run(&t, "UPDATE audit SET seq = 1000 WHERE seq = 2").await;
    run(&t, "UPDATE audit SET seq = 2 WHERE seq = 4").await;
    run(&t, "UPDATE audit SET seq = 4 WHERE seq = 1000").await;
    assert_eq!(
        check(&t).await.problems,
        [Problem::Reordered { seq: 2, signed_as: 4 }, Problem::Reordered { seq: 4, signed_as: 2 }]
    );
});

both!(a_gap_closed_by_renumbering_is_reported, |t: TestStore| async move {
    five(&t).await;
    run(&t, "DELETE FROM audit WHERE seq = 3").await;
    run(&t, "UPDATE audit SET seq = seq - 1 WHERE seq = 4").await;
    run(&t, "UPDATE audit SET seq = seq - 1 WHERE seq = 5").await;
    assert_eq!(
        check(&t).await.problems,
        [
            Problem::Reordered { seq: 3, signed_as: 4 },
            Problem::Reordered { seq: 4, signed_as: 5 },
            Problem::Truncated { seq: 5, signed_up_to: 5 },
        ]
    );
});

both!(a_forged_checkpoint_signature_is_reported, |t: TestStore| async move {
    let appended = five(&t).await;
    // Signed by someone else, but claiming the audit key.
    let hash = chain::from_hex(&appended[1].hash).unwrap();
    set_checkpoint(&t, 2, &hash, &mallory(), key().public_key().as_array()).await;
    assert_eq!(check(&t).await.problems, [Problem::ForgedCheckpoint { seq: 2 }]);
});

both!(a_rewrite_resigned_with_another_key_is_reported, |t: TestStore| async move {
    five(&t).await;
    let hash = reseal(&t, 3, Some(r#"{"i":3,"note":"all fine"}"#), None).await;
    let mallory = mallory();
    let named = mallory.verifying_key().to_bytes();
    set_checkpoint(&t, 3, &hash, &mallory, &named).await;
    // The forged checkpoint is not trusted, so entry 4 is checked against the rewritten row 3.
    assert_eq!(
        check(&t).await.problems,
        [Problem::ForeignCheckpoint { seq: 3, key: hex::encode(named) }, Problem::BrokenLink { seq: 4 }]
    );
});

both!(entries_without_checkpoints_are_reported, |t: TestStore| async move {
    let appended = five(&t).await;
    run(&t, "DELETE FROM audit_checkpoints WHERE seq = 2").await;
    // A well-chained entry added straight into the table, without the audit key.
    let prev: [u8; 32] = chain::from_hex(&appended[4].hash).unwrap();
    let body = r#"{"note":"approved"}"#;
    let fields = Fields { seq: 6, at_ms: T0 + 6, actor: "alice", kind: "approved", proposal_id: Some(1), body };
    let hash = chain::entry_hash(&prev, &fields);
    sqlx::query("INSERT INTO audit (seq, at, actor, kind, proposal_id, body, prev, hash) VALUES (6, $1, 'alice', 'approved', 1, $2, $3, $4)")
        .bind(T0 + 6)
        .bind(body)
        .bind(hex::encode(prev))
        .bind(hex::encode(hash))
        .execute(t.store.pool())
        .await
        .unwrap();
    assert_eq!(
        check(&t).await.problems,
        [Problem::MissingCheckpoint { seq: 2 }, Problem::MissingCheckpoint { seq: 6 }]
    );
});

both!(an_unreadable_hash_is_reported_and_the_chain_goes_on, |t: TestStore| async move {
    five(&t).await;
    run(&t, "UPDATE audit SET hash = 'not hex' WHERE seq = 2").await;
    assert_eq!(
        check(&t).await.problems,
        [Problem::Corrupt { seq: 2, detail: r#"hash: expected 64 lower-case hex digits, found "not hex""#.into() }]
    );
});

both!(checkpoints_are_checked_against_the_given_key, |t: TestStore| async move {
    append_n(&t, 3).await;
    let other = airlock_proto::sig::public_key(&mallory());
    let report = verify(t.store.pool(), &other).await.unwrap();
    let named = hex::encode(key().public_key().as_array());
    let expected: Vec<Problem> = (1..=3).map(|seq| Problem::ForeignCheckpoint { seq, key: named.clone() }).collect();
    assert_eq!(report.problems, expected);
});

both!(append_refuses_to_chain_onto_a_deleted_entry, |t: TestStore| async move {
    five(&t).await;
    run(&t, "DELETE FROM audit WHERE seq = 5").await;
    let mut tx = t.store.pool().begin().await.unwrap();
    let err = append(&mut tx, &key(), entry(6)).await.unwrap_err();
    assert!(matches!(&err, AuditError::Broken { seq: 6, detail } if detail == "entry 5 is missing"), "{err}");
    drop(tx);
    assert_eq!(check(&t).await.problems, [Problem::Truncated { seq: 5, signed_up_to: 5 }]);
});
