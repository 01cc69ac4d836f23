//! Ed25519 key files: the controller's release and audit keys, the root keys of a first-run
//! TrustRoot, and approvers' personal keys (which the server never sees).
//!
//! Format: one line, `airlock-ed25519-seed-v1 <64 hex digits>`; the file is created with mode
//! 0600 and never overwritten.

use ed25519_dalek::SigningKey;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const TAG: &str = "airlock-ed25519-seed-v1";

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an Airlock key file.
    #[error("key file {path}: not an Airlock key ({TAG} followed by 64 hex digits expected)")]
    Format {
        /// The file.
        path: PathBuf,
    },
    /// The system random source failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// A new random key.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `key` to a new file at `path` (mode 0600); refuses to overwrite an existing file.
pub fn write(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    let io = |source| KeyError::Io { path: path.to_path_buf(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(io)?;
    writeln!(f, "{TAG} {}", hex::encode(key.to_bytes())).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Reads a key file.
pub fn read(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.to_path_buf(), source })?;
    let format = || KeyError::Format { path: path.to_path_buf() };
    let hex_seed = text.trim().strip_prefix(TAG).ok_or_else(format)?.trim();
    let bytes = hex::decode(hex_seed).map_err(|_| format())?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| format())?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads the key at `path`, creating it first if it does not exist. Returns whether it is new.
pub fn read_or_create(path: &Path) -> Result<(SigningKey, bool), KeyError> {
    if path.exists() {
        return Ok((read(path)?, false));
    }
    let key = generate()?;
    write(path, &key)?;
    Ok((key, true))
}

/// The public key in hex.
pub fn public_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// Parses a hex public key.
pub fn parse_public(hex_key: &str) -> Option<airlock_proto::PublicKey> {
    let bytes: [u8; 32] = hex::decode(hex_key).ok()?.try_into().ok()?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()?;
    Some(airlock_proto::PublicKey::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_round_trips_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let (k, new) = read_or_create(&path).unwrap();
        assert!(new);
        let (again, new) = read_or_create(&path).unwrap();
        assert!(!new);
        assert_eq!(k.to_bytes(), again.to_bytes());
        assert!(matches!(write(&path, &generate().unwrap()), Err(KeyError::Io { .. })));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_file_that_is_not_a_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        std::fs::write(&path, "hello").unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.to_string().contains("not an Airlock key"), "{e}");
    }
}
