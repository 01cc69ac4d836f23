//! The store after storage errors: nothing acknowledged is lost.

use super::testing;
use super::Store;
use sqlx::Row;

async fn count(store: &Store) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM scratch").fetch_one(store.pool()).await.unwrap().try_get::<i64, _>(0).unwrap()
}

/// SQLite answers a full disk or an I/O error in the middle of a transaction by rolling the
/// whole transaction back on its own (sqlite.org/lang_transaction.html, "Response To Errors
/// Within A Transaction"); the raw `ROLLBACK` below is that. sqlx does not know, its own
/// `ROLLBACK` then fails, and on today's pool the next transactions nest inside one that is
/// never committed.
#[tokio::test]
async fn a_transaction_sqlite_rolled_back_on_its_own_does_not_swallow_later_commits() {
    let t = testing::sqlite().await.unwrap();
    sqlx::raw_sql("CREATE TABLE scratch (x BIGINT NOT NULL)").execute(t.store.pool()).await.unwrap();

    // The failing write: SQLite rolls it back itself, then the handler gives up (drops it).
    let mut tx = t.store.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO scratch (x) VALUES (1)").execute(&mut *tx).await.unwrap();
    sqlx::raw_sql("ROLLBACK").execute(&mut *tx).await.unwrap();
    drop(tx);
    // A second failing write, dropped too.
    let tx = t.store.pool().begin().await.unwrap();
    drop(tx);
    // An acknowledged write.
    let mut tx = t.store.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO scratch (x) VALUES (2)").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();

    let other = Store::open(&t.url).await.unwrap();
    assert_eq!(count(&other).await, 1, "the committed write is in the file, seen from another connection");
    other.close().await;
    t.store.close().await;
    let reopened = Store::open(&t.url).await.unwrap();
    assert_eq!(count(&reopened).await, 1, "the committed write survives a reopen");
}

#[tokio::test]
async fn a_full_database_is_told_apart_from_other_database_errors() {
    let t = testing::sqlite().await.unwrap();
    sqlx::raw_sql("CREATE TABLE scratch (x BLOB NOT NULL)").execute(t.store.pool()).await.unwrap();
    let pages = t.store.sqlite_page_count().await.unwrap();
    t.store.set_sqlite_page_limit(pages + 2).await.unwrap();
    let mut full = None;
    for _ in 0..64 {
        if let Err(e) = sqlx::query("INSERT INTO scratch (x) VALUES (zeroblob(4096))").execute(t.store.pool()).await {
            full = Some(e);
            break;
        }
    }
    let full = full.expect("the capped database fills up");
    assert_eq!(super::unavailable(&full), Some(super::Unavailable::Full), "{full}");
    let bad = sqlx::query("INSERT INTO nowhere (x) VALUES (1)").execute(t.store.pool()).await.unwrap_err();
    assert_eq!(super::unavailable(&bad), None, "{bad}");
    t.store.set_sqlite_page_limit(1 << 30).await.unwrap();
    sqlx::query("INSERT INTO scratch (x) VALUES (zeroblob(4096))").execute(t.store.pool()).await.unwrap();
}
