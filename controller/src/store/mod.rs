//! The controller's database: SQLite (a file, the embedded default) or PostgreSQL (production,
//! several replicas), through one `sqlx::AnyPool` and portable SQL.
//!
//! Migrations differ per backend (`migrations/sqlite`, `migrations/postgres`): types, identity
//! columns and the triggers that make the audit trail append-only. Queries are written once;
//! placeholders are `$1, $2, ...` in order of first use (SQLite numbers named parameters by first
//! appearance, so every query binds them in ascending order). Booleans are written as `bool` but
//! read back as `CAST(CAST(col AS INTEGER) AS BIGINT)`: the Any driver cannot decode SQLite's
//! BOOLEAN, and PostgreSQL cannot cast a boolean straight to BIGINT.
//!
//! # Layout
//! - this file: opening, migrating, the error type, small shared helpers.
//! - [`testing`]: fresh stores for tests (a temp file, or a private PostgreSQL schema).

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod testing;

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    Url(String),
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not parse (hand-edited or corrupted row).
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// The database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: the largest database file, in pages (`PRAGMA max_page_count`), applied to
    /// every connection the pool opens; 0 leaves SQLite's default (no practical limit).
    page_limit: Arc<AtomicU64>,
}

impl Store {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://user@host/db`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let page_limit = Arc::new(AtomicU64::new(0));
        let limit = page_limit.clone();
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10)).after_connect(move |conn, _| {
            let pages = limit.load(Ordering::Acquire);
            Box::pin(async move {
                if pages > 0 {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA max_page_count = {pages}")))
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
        });
        // SQLite allows one writer at a time; one connection serialises every transaction
        // instead of failing some with SQLITE_BUSY.
        let options = match backend {
            Backend::Sqlite => options.max_connections(1),
            Backend::Postgres => options.max_connections(8),
        };
        let options =
            options.after_release(move |conn, _| Box::pin(async move { Ok(left_clean(conn, backend).await) }));
        let pool = options.connect(&url).await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
            sqlx::query("PRAGMA synchronous = FULL").execute(&pool).await?;
            sqlx::query("PRAGMA foreign_keys = ON").execute(&pool).await?;
        }
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Store { pool, backend, page_limit })
    }

    /// SQLite only: caps the database file at `pages` pages (of `PRAGMA page_size` bytes), now
    /// and on every connection opened later. Writes past it fail with "database or disk is
    /// full", as on a full disk; raising the cap is space returning. A no-op on PostgreSQL.
    pub async fn set_sqlite_page_limit(&self, pages: u64) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        self.page_limit.store(pages, Ordering::Release);
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA max_page_count = {pages}"))).execute(&self.pool).await?;
        Ok(())
    }

    /// SQLite only: the database's size in pages (0 on PostgreSQL).
    pub async fn sqlite_page_count(&self) -> Result<u64, StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(0);
        }
        let row =
            sqlx::query("SELECT CAST(page_count AS BIGINT) FROM pragma_page_count()").fetch_one(&self.pool).await?;
        Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether a connection going back to the pool is outside any transaction, and so safe to hand
/// out again; a connection that is not is closed, which rolls its transaction back.
///
/// This is the guard against acknowledged writes that never reach the file. After a storage
/// error ("database or disk is full", an I/O error) SQLite may roll the transaction back on its
/// own, or refuse the `ROLLBACK` sqlx then sends; either way sqlx's count of open transactions and
/// SQLite's disagree. With the count stuck above zero, every later `BEGIN` becomes a `SAVEPOINT`
/// and every `COMMIT` a `RELEASE` inside a transaction that is never committed: writes answer
/// 201 and vanish at the next restart. Asking SQLite itself (a raw `BEGIN` fails inside a
/// transaction) catches both sides of the disagreement.
async fn left_clean(conn: &mut sqlx::AnyConnection, backend: Backend) -> bool {
    use sqlx::Connection as _;
    let outside = match backend {
        // The first statement also runs any rollback sqlx queued when a transaction was dropped.
        Backend::Sqlite => match sqlx::raw_sql("BEGIN").execute(&mut *conn).await {
            Ok(_) => sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_ok(),
            Err(_) => false,
        },
        Backend::Postgres => conn.ping().await.is_ok(),
    };
    let clean = outside && !conn.is_in_transaction();
    if !clean {
        tracing::warn!(?backend, "closing a database connection left inside a transaction after an error");
    }
    clean
}

/// Takes the next value of a named counter inside `tx`. The row lock it takes serialises
/// concurrent writers on PostgreSQL; SQLite has one writer anyway.
pub async fn next_counter(tx: &mut sqlx::AnyConnection, name: &str) -> Result<i64, StoreError> {
    let row: Option<AnyRow> = sqlx::query("UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
    let row =
        row.ok_or_else(|| corrupt("counters", format!("counter {name:?} is missing (migrations not applied?)")))?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// How a database failure should be told to a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The database or its disk is full (SQLite `SQLITE_FULL`, PostgreSQL `53100`).
    Full,
    /// The database cannot be reached, is busy, failing I/O or shutting down.
    Down,
}

impl StoreError {
    /// Whether this failure is the database being unavailable (full, unreachable, failing I/O)
    /// rather than a fault in the request or the code: such writes were rolled back and may be
    /// retried later.
    pub fn unavailable(&self) -> Option<Unavailable> {
        match self {
            StoreError::Db(e) => unavailable(e),
            _ => None,
        }
    }
}

/// See [`StoreError::unavailable`].
pub fn unavailable(e: &sqlx::Error) -> Option<Unavailable> {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let message = db.message();
            // SQLite's primary result code is the low byte of the extended one.
            let sqlite = code.parse::<u32>().ok().map(|c| c & 0xff);
            if sqlite == Some(13) || code == "53100" || message.contains("database or disk is full") {
                Some(Unavailable::Full)
            } else if matches!(sqlite, Some(5 | 6 | 10 | 14))
                || code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
            {
                Some(Unavailable::Down)
            } else {
                None
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => Some(Unavailable::Down),
        _ => None,
    }
}

/// Builds a [`StoreError::Corrupt`].
pub(crate) fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table, detail: detail.to_string() }
}

#[cfg(test)]
mod tests;
