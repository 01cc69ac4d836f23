//! What the database alone cannot show and the witness file does: the newest entries deleted with
//! their checkpoints (with and without the seq counter wound back), and a trail re-chained with the
//! audit key taken from the data directory. Each case first shows that [`verify`] alone finds the
//! trail clean, then that the witness catches it.

use super::tamper::{drop_triggers, mallory, reseal, run, set_checkpoint};
use super::*;
use crate::audit::witness::{Record, Witness, WitnessError};

/// A trail of five entries, witnessed, its triggers dropped.
async fn witnessed_five(t: &TestStore) -> (tempfile::TempDir, Witness) {
    append_n(t, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let w = Witness::new(&dir.path().join("audit.witness"), key().public_key());
    assert_eq!(w.sync(t.store.pool()).await.unwrap(), 5);
    drop_triggers(t).await;
    (dir, w)
}

fn diverged_at(result: Result<usize, WitnessError>) -> u64 {
    match result {
        Err(WitnessError::Diverged { seq, .. }) => seq,
        other => panic!("expected the sync to refuse, got {other:?}"),
    }
}

both!(the_witness_copies_each_committed_checkpoint_once, |t: TestStore| async move {
    let dir = tempfile::tempdir().unwrap();
    let w = Witness::new(&dir.path().join("audit.witness"), key().public_key());
    assert_eq!(w.sync(t.store.pool()).await.unwrap(), 0, "an empty trail");
    assert!(!w.path().exists());
    let appended = append_n(&t, 8).await;
    assert_eq!(w.sync(t.store.pool()).await.unwrap(), 8);
    assert_eq!(w.sync(t.store.pool()).await.unwrap(), 0);
    let records = w.records().unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=8).collect::<Vec<u64>>());
    assert_eq!(hex::encode(records[7].hash), appended[7].hash);
    assert_eq!(w.check(t.store.pool()).await.unwrap(), None);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(w.path()).unwrap().permissions().mode() & 0o777, 0o600);
    }
});

both!(deleted_newest_entries_with_their_checkpoints_are_caught_by_the_witness, |t: TestStore| async move {
    let (_dir, w) = witnessed_five(&t).await;
    run(&t, "DELETE FROM audit WHERE seq >= 4").await;
    run(&t, "DELETE FROM audit_checkpoints WHERE seq >= 4").await;
    assert!(check(&t).await.is_ok(), "the database alone cannot tell");
    assert_eq!(w.check(t.store.pool()).await.unwrap(), Some(Problem::BehindWitness { seq: 4, witnessed: 5 }));
    assert_eq!(diverged_at(w.sync(t.store.pool()).await), 5);
});

both!(a_truncation_with_the_counter_wound_back_is_caught_by_the_witness, |t: TestStore| async move {
    let (_dir, w) = witnessed_five(&t).await;
    run(&t, "DELETE FROM audit WHERE seq >= 4").await;
    run(&t, "DELETE FROM audit_checkpoints WHERE seq >= 4").await;
    run(&t, "UPDATE counters SET value = 3 WHERE name = 'audit_seq'").await;
    // The controller goes on appending, with its genuine key: entries 4 and 5 are new ones.
    let key = key();
    for i in [40, 50] {
        let mut tx = t.store.pool().begin().await.unwrap();
        append(&mut tx, &key, entry(i)).await.unwrap();
        tx.commit().await.unwrap();
    }
    let report = check(&t).await;
    assert_eq!((report.entries, report.problems.clone()), (5, vec![]), "the database alone cannot tell");
    assert_eq!(w.check(t.store.pool()).await.unwrap(), Some(Problem::WitnessMismatch { seq: 5 }));
    assert_eq!(diverged_at(w.sync(t.store.pool()).await), 5);
});

both!(a_trail_rechained_with_the_audit_key_is_caught_by_the_witness, |t: TestStore| async move {
    let (_dir, w) = witnessed_five(&t).await;
    // Whoever holds the data directory's audit key rewrites entry 2 and re-signs everything after.
    let k = key();
    let mut prev = reseal(&t, 2, Some(r#"{"i":2,"note":"approved by nobody"}"#), None).await;
    set_checkpoint(&t, 2, &prev, k.signing_key(), k.public_key().as_array()).await;
    for seq in 3..=5 {
        prev = reseal(&t, seq, None, Some(prev)).await;
        set_checkpoint(&t, seq, &prev, k.signing_key(), k.public_key().as_array()).await;
    }
    assert!(check(&t).await.is_ok(), "the database alone cannot tell");
    assert_eq!(w.check(t.store.pool()).await.unwrap(), Some(Problem::WitnessMismatch { seq: 5 }));
    assert_eq!(diverged_at(w.sync(t.store.pool()).await), 5);
});

both!(entries_added_after_tampering_are_not_witnessed, |t: TestStore| async move {
    let (_dir, w) = witnessed_five(&t).await;
    // Entry 5 rewritten in place and re-signed with the audit key, then a genuine append.
    let k = key();
    let hash = reseal(&t, 5, Some(r#"{"i":5,"note":"edited"}"#), None).await;
    set_checkpoint(&t, 5, &hash, k.signing_key(), k.public_key().as_array()).await;
    let mut tx = t.store.pool().begin().await.unwrap();
    append(&mut tx, &k, entry(6)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(diverged_at(w.sync(t.store.pool()).await), 5);
    assert_eq!(w.records().unwrap().len(), 5, "nothing appended");
});

#[test]
fn a_witness_line_not_signed_by_the_audit_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.witness");
    let hash = [9; 32];
    let m = mallory();
    let forged =
        Record { seq: 1, hash, key: *key().public_key().as_array(), signature: chain::sign_checkpoint(&m, 1, &hash) };
    std::fs::write(&path, format!("{}\n", forged.line())).unwrap();
    let w = Witness::new(&path, key().public_key());
    let e = w.records().unwrap_err();
    assert!(
        matches!(&e, WitnessError::BadLine { line: 1, detail, .. } if detail == "checkpoint 1 is not signed by the audit key"),
        "{e}"
    );
    let genuine = Record { signature: chain::sign_checkpoint(key().signing_key(), 1, &hash), ..forged };
    assert_eq!(Record::parse(&genuine.line()).unwrap(), genuine);
    std::fs::write(&path, format!("{}\n{}\n", genuine.line(), genuine.line())).unwrap();
    assert!(w.records().unwrap_err().to_string().contains("does not follow the line before"));
}

#[test]
fn witness_problems_read_as_sentences() {
    assert_eq!(
        Problem::BehindWitness { seq: 4, witnessed: 5 }.to_string(),
        "the trail was truncated: it ends at entry 3, but the witness file holds a signed checkpoint of entry 5 \
         (entries 4 to 5 were deleted with their checkpoints)"
    );
    assert_eq!(Problem::WitnessMismatch { seq: 5 }.name(), "witness_mismatch");
}
