//! People: who they are, what they may do, and the key approvers sign with.
//!
//! Roles: `requester`, `approver`, `expert`, `security`, `break_glass` (the last four are also
//! device roles on the TrustRoot roster) and `admin`. The bearer token is stored as its SHA-256
//! only.

use crate::store::{corrupt, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

/// Every role name.
pub const ROLES: [&str; 6] = ["requester", "approver", "expert", "security", "break_glass", "admin"];

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Unique name.
    pub name: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Ed25519 public key, hex.
    pub public_key: Option<String>,
}

impl User {
    /// Whether the user holds `role`.
    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the user may approve anything at all (holds a device role and has a key).
    pub fn is_approver(&self) -> bool {
        self.public_key.is_some() && ["approver", "expert", "security", "break_glass"].iter().any(|r| self.has(r))
    }
}

/// SHA-256 of a bearer token, hex.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A new random bearer token.
pub fn new_token() -> Result<String, crate::keys::KeyError> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| crate::keys::KeyError::Random(e.to_string()))?;
    Ok(format!("alk_{}", hex::encode(b)))
}

fn from_row(row: &AnyRow) -> Result<User, StoreError> {
    let roles: String = row.try_get("roles")?;
    Ok(User {
        name: row.try_get("name")?,
        roles: serde_json::from_str(&roles).map_err(|e| corrupt("users", e))?,
        public_key: row.try_get("public_key")?,
    })
}

/// Creates a user with the given token; fails if the name exists.
pub async fn create(conn: &mut AnyConnection, user: &User, token: &str, at_ms: i64) -> Result<(), StoreError> {
    let roles = serde_json::to_string(&user.roles).map_err(|e| corrupt("users", e))?;
    sqlx::query("INSERT INTO users (name, roles, token_sha256, public_key, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&user.name)
        .bind(roles)
        .bind(token_hash(token))
        .bind(&user.public_key)
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The user a bearer token belongs to.
pub async fn by_token(pool: &AnyPool, token: &str) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT name, roles, public_key FROM users WHERE token_sha256 = $1")
        .bind(token_hash(token))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A user by name (on `conn`, so it can run inside the caller's transaction).
pub async fn by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT name, roles, public_key FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every user.
pub async fn all(pool: &AnyPool) -> Result<Vec<User>, StoreError> {
    let rows = sqlx::query("SELECT name, roles, public_key FROM users ORDER BY name").fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}
