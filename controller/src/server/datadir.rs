//! The data directory `airlock serve` runs from, and what a first run puts in it.
//!
//! ```text
//! DATA/
//!   airlock.db            SQLite database (unless --database-url names PostgreSQL)
//!   keys/release.key      signs approved manifests and commands
//!   keys/root-{1,2,3}.key root keys (2 of 3) of the first-run TrustRoot: move them offline
//!   keys/users/NAME.key   first-run users' approver keys (hand each to its owner)
//!   tokens.txt            first-run users' bearer tokens (mode 0600)
//!   trust-root.bin        the signed TrustRoot devices are enrolled with
//!   artifacts/<sha256>    uploaded firmware images, named by their digest
//!
//! AUDIT/                  outside DATA: `--audit-dir`, by default DATA's sibling `<name>-audit`
//!   audit.key             signs audit checkpoints
//!   audit.witness         every committed checkpoint, copied out of the database
//! ```
//!
//! The audit key and the witness file are kept apart from the database's directory, so that
//! whoever holds the database (or a copy of the data directory) can neither re-sign a rewritten
//! trail nor hide a truncation: see `docs/deploy.md`. A data directory from before this split has
//! `keys/audit.key`; the first start moves it to AUDIT.

use crate::keys::{self, KeyError};
use crate::policy::Policy;
use crate::store::{Store, StoreError};
use crate::users::{self, User};
use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A file or directory could not be created or read.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// A key file is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The controller's own keys.
#[derive(Debug)]
pub struct ControllerKeys {
    /// Release key.
    pub release: SigningKey,
    /// Audit key.
    pub audit: SigningKey,
    /// Root keys found in the data directory (a production controller has none: they are offline).
    pub roots: Vec<SigningKey>,
}

/// What a first run created, to print.
#[derive(Debug, Default)]
pub struct FirstRun {
    /// Lines describing what was created.
    pub created: Vec<String>,
    /// Users created, with their tokens.
    pub users: Vec<(User, String)>,
}

/// Paths inside a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    /// The directory.
    pub root: PathBuf,
    /// The audit directory (audit key and witness file), outside `root`.
    pub audit: PathBuf,
}

impl DataDir {
    /// Uses `root`, creating it and its `keys/users` subdirectory, and the audit directory
    /// (`audit`, or `root`'s sibling `<name>-audit` when `None`).
    pub fn create(root: &Path, audit: Option<&Path>) -> Result<DataDir, DataDirError> {
        let audit = audit.map_or_else(|| default_audit_dir(root), Path::to_path_buf);
        let dir = DataDir { root: root.to_path_buf(), audit };
        for d in [dir.root.clone(), dir.keys(), dir.keys().join("users"), dir.audit.clone()] {
            std::fs::create_dir_all(&d).map_err(|source| DataDirError::Io { path: d.clone(), source })?;
        }
        Ok(dir)
    }

    /// The witness file of the audit trail.
    pub fn audit_witness(&self) -> PathBuf {
        self.audit.join("audit.witness")
    }

    /// The audit key: `AUDIT/audit.key`, moved there from a data directory of an older version.
    fn audit_key(&self, first: &mut FirstRun) -> Result<SigningKey, DataDirError> {
        let path = self.audit.join("audit.key");
        let legacy = self.keys().join("audit.key");
        if !path.exists() && legacy.exists() {
            let key = keys::read(&legacy)?;
            keys::write(&path, &key)?;
            std::fs::remove_file(&legacy).map_err(|source| DataDirError::Io { path: legacy.clone(), source })?;
            first.created.push(format!(
                "audit key moved out of the data directory: {} -> {}",
                legacy.display(),
                path.display()
            ));
            return Ok(key);
        }
        let (k, new) = keys::read_or_create(&path)?;
        if new {
            first.created.push(format!("audit key: {} (public {})", path.display(), keys::public_hex(&k)));
        }
        Ok(k)
    }

    /// `keys/`.
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The default SQLite URL.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.root.join("airlock.db").display())
    }

    /// `trust-root.bin`.
    pub fn trust_root(&self) -> PathBuf {
        self.root.join("trust-root.bin")
    }

    /// `artifacts/`.
    pub fn artifacts(&self) -> PathBuf {
        self.root.join("artifacts")
    }

    /// Loads or creates the controller's keys.
    pub fn controller_keys(&self, first: &mut FirstRun) -> Result<ControllerKeys, DataDirError> {
        let mut load = |name: &str, what: &str| -> Result<SigningKey, DataDirError> {
            let path = self.keys().join(name);
            let (k, new) = keys::read_or_create(&path)?;
            if new {
                first.created.push(format!("{what}: {} (public {})", path.display(), keys::public_hex(&k)));
            }
            Ok(k)
        };
        let release = load("release.key", "release key")?;
        let mut roots = Vec::new();
        for i in 1..=3 {
            roots.push(load(&format!("root-{i}.key"), "root key (move it offline)")?);
        }
        let audit = self.audit_key(first)?;
        Ok(ControllerKeys { release, audit, roots })
    }

    /// On an empty user table, creates an admin, a requester, and one user per pool member of
    /// the policy with the roles their pools need, each with a token and an approver key file.
    pub async fn first_users(
        &self,
        store: &Store,
        policy: &Policy,
        now_ms: i64,
        first: &mut FirstRun,
    ) -> Result<(), DataDirError> {
        if !users::all(store.pool()).await?.is_empty() {
            return Ok(());
        }
        let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
        roles.insert("admin".into(), vec!["admin".into()]);
        roles.insert("rita".into(), vec!["requester".into()]);
        let mut grant = |pool: &str, lane_roles: &[String]| {
            for member in policy.pools.get(pool).map(|p| p.members.clone()).unwrap_or_default() {
                let r = roles.entry(member).or_default();
                for role in lane_roles {
                    if !r.contains(role) {
                        r.push(role.clone());
                    }
                }
            }
        };
        for lane in policy.lanes.values() {
            let lane_roles = if lane.roles.is_empty() { vec!["approver".to_string()] } else { lane.roles.clone() };
            for pool in lane.pools.iter().chain(&lane.escalation) {
                grant(pool, &lane_roles);
            }
        }
        for pool in &policy.break_glass.pools {
            grant(pool, &["break_glass".to_string()]);
        }
        grant(&policy.break_glass.post_review_pool, &["security".to_string()]);
        let mut conn = store.pool().acquire().await.map_err(StoreError::Db)?;
        let tokens_path = self.root.join("tokens.txt");
        let mut tokens = String::from("# First-run bearer tokens: hand each to its owner, then delete this file.\n");
        for (name, roles) in roles {
            let token = users::new_token()?;
            let mut user = User { name: name.clone(), roles, public_key: None };
            if user.roles.iter().any(|r| ["approver", "expert", "security", "break_glass"].contains(&r.as_str())) {
                let path = self.keys().join("users").join(format!("{name}.key"));
                let (k, _) = keys::read_or_create(&path)?;
                user.public_key = Some(keys::public_hex(&k));
            }
            users::create(&mut conn, &user, &token, now_ms).await?;
            tokens.push_str(&format!("{name} {token}\n"));
            first.users.push((user, token));
        }
        write_private(&tokens_path, tokens.as_bytes())?;
        first.created.push(format!("users and tokens: {}", tokens_path.display()));
        first.created.push(format!("approver keys: {}", self.keys().join("users").display()));
        Ok(())
    }
}

/// `root`'s sibling `<name>-audit` (`./airlock-data` -> `./airlock-data-audit`).
pub fn default_audit_dir(root: &Path) -> PathBuf {
    let name = root.file_name().map_or_else(|| "airlock-data".into(), |n| n.to_string_lossy().into_owned());
    let parent = root.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join(format!("{name}-audit"))
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DataDirError> {
    let io = |source| DataDirError::Io { path: path.to_path_buf(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}
