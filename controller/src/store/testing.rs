//! Fresh stores for tests: a SQLite file in a temp directory, or a private schema on the
//! PostgreSQL server named by `AIRLOCK_TEST_POSTGRES_URL`.

use super::{Store, StoreError};

/// The environment variable `.ci/run` sets to the local PostgreSQL server.
pub const POSTGRES_ENV: &str = "AIRLOCK_TEST_POSTGRES_URL";

/// A store that lives as long as this value.
#[derive(Debug)]
pub struct TestStore {
    /// The store.
    pub store: Store,
    /// The URL it was opened with (to reopen it, as after a crash).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// A new SQLite store in its own temp directory.
pub async fn sqlite() -> Result<TestStore, StoreError> {
    let dir = tempfile::tempdir().map_err(|e| super::corrupt("tempdir", e))?;
    let url = format!("sqlite://{}", dir.path().join("airlock.db").display());
    let store = Store::open(&url).await?;
    Ok(TestStore { store, url, _dir: Some(dir) })
}

/// A new PostgreSQL store in a schema of its own, or `None` (said loudly on stderr) when
/// `AIRLOCK_TEST_POSTGRES_URL` is not set.
pub async fn postgres(test: &str) -> Result<Option<TestStore>, StoreError> {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        // Written to the stream itself: the test harness captures eprintln!, which would hide it.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test} on PostgreSQL: set {POSTGRES_ENV} (for example postgres://postgres@127.0.0.1:5432/test)"
        );
        return Ok(None);
    };
    sqlx::any::install_default_drivers();
    let schema = format!("t_{}_{}", std::process::id(), unique());
    let admin = sqlx::AnyPool::connect(&base).await?;
    // The schema name is built from the process id and a counter: digits only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await?;
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let store = Store::open(&url).await?;
    Ok(Some(TestStore { store, url, _dir: None }))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    (t % 1_000_000_000) * 1000 + N.fetch_add(1, Ordering::Relaxed)
}
