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
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        // SQLite allows one writer at a time; one connection serialises every transaction
        // instead of failing some with SQLITE_BUSY.
        let options = match backend {
            Backend::Sqlite => options.max_connections(1),
            Backend::Postgres => options.max_connections(8),
        };
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
        Ok(Store { pool, backend })
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

/// Builds a [`StoreError::Corrupt`].
pub(crate) fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table, detail: detail.to_string() }
}
