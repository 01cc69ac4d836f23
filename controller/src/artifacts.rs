//! Firmware artifacts: image files stored content-addressed under `DATA/artifacts/<sha256>`.
//!
//! An upload streams into a temporary file in the same directory while it is hashed and counted,
//! is refused as soon as it passes the configured maximum, and is renamed to its digest only once
//! complete and synced: a reader never sees a partial artifact, and an interrupted upload leaves
//! only a temporary file that the next start removes. The same bytes uploaded twice are one
//! artifact. Devices fetch them in chunks over MQTT ([`crate::mqtt`]); the digest in the signed
//! manifest is what they check, so the store itself needs no signature.

use airlock_proto::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt as _;

/// Temporary upload files start with this; listing skips them.
const UPLOAD_PREFIX: &str = ".upload-";

/// A stored artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// SHA-256 of the bytes, hex: the manifest's `image_sha256`.
    pub sha256: String,
    /// Size in bytes: the manifest's `image_size`.
    pub size: u64,
    /// When it was stored, unix ms.
    pub stored_at: i64,
}

/// Why an artifact cannot be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The upload is larger than the configured maximum.
    #[error("artifact larger than the limit of {limit} bytes (airlock serve --max-artifact-size)")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Nothing was uploaded.
    #[error("artifact is empty")]
    Empty,
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// The artifact directory and its size limit.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    dir: PathBuf,
    max_bytes: u64,
}

impl ArtifactStore {
    /// Uses `dir` (created if missing), removing temporary files that interrupted uploads left.
    /// Uploads above `max_bytes` are refused; no image can exceed `u32::MAX` bytes (the
    /// manifest's size field), whatever the limit says.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<ArtifactStore, ArtifactError> {
        let io = |source| ArtifactError::Io { path: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            if entry.file_name().to_string_lossy().starts_with(UPLOAD_PREFIX) {
                // A leftover of a crash; failing to remove it only costs disk space.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(ArtifactStore { dir: dir.to_path_buf(), max_bytes: max_bytes.min(u64::from(u32::MAX)) })
    }

    /// The largest upload accepted, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The file of an artifact (which may not exist).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(hex::encode(digest.0))
    }

    /// Starts an upload.
    pub fn upload(&self) -> Result<Upload, ArtifactError> {
        let temp = tempfile::Builder::new()
            .prefix(UPLOAD_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(|source| ArtifactError::Io { path: self.dir.clone(), source })?;
        let (file, path) = temp.into_parts();
        Ok(Upload {
            file: tokio::fs::File::from_std(file),
            temp: path,
            dir: self.dir.clone(),
            hasher: Sha256::new(),
            size: 0,
            limit: self.max_bytes,
        })
    }

    /// Every stored artifact, newest first.
    pub async fn list(&self) -> Result<Vec<Artifact>, ArtifactError> {
        let io = |source| ArtifactError::Io { path: self.dir.clone(), source };
        let mut out = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await.map_err(io)?;
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                continue;
            }
            let meta = entry.metadata().await.map_err(io)?;
            out.push(Artifact { sha256: name, size: meta.len(), stored_at: modified_ms(&meta) });
        }
        out.sort_by(|a, b| b.stored_at.cmp(&a.stored_at).then_with(|| a.sha256.cmp(&b.sha256)));
        Ok(out)
    }

    /// The whole artifact, or `None` if it is not stored.
    pub async fn read(&self, digest: &Digest) -> Result<Option<Vec<u8>>, ArtifactError> {
        let path = self.path(digest);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ArtifactError::Io { path, source }),
        }
    }

    /// `len` bytes at `offset` (fewer at the end of the file), or `None` if it is not stored.
    pub async fn read_range(&self, digest: &Digest, offset: u64, len: usize) -> Result<Option<Vec<u8>>, ArtifactError> {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let path = self.path(digest);
        let io = |source| ArtifactError::Io { path: path.clone(), source };
        let mut f = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ArtifactError::Io { path, source }),
        };
        f.seek(std::io::SeekFrom::Start(offset)).await.map_err(io)?;
        let mut buf = Vec::with_capacity(len);
        f.take(len as u64).read_to_end(&mut buf).await.map_err(io)?;
        Ok(Some(buf))
    }

    /// The size of a stored artifact, or `None`.
    pub async fn size(&self, digest: &Digest) -> Result<Option<u64>, ArtifactError> {
        let path = self.path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ArtifactError::Io { path, source }),
        }
    }
}

fn modified_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An upload in progress. Dropping it before [`Upload::finish`] removes the temporary file.
#[derive(Debug)]
pub struct Upload {
    file: tokio::fs::File,
    temp: tempfile::TempPath,
    dir: PathBuf,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl Upload {
    /// Appends bytes; refuses them once the total passes the limit.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ArtifactError> {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > self.limit {
            return Err(ArtifactError::TooLarge { limit: self.limit });
        }
        self.hasher.update(bytes);
        self.file.write_all(bytes).await.map_err(|source| ArtifactError::Io { path: self.temp.to_path_buf(), source })
    }

    /// Syncs the file and renames it to its digest. The same bytes stored before are the same
    /// artifact: the rename replaces them with identical content.
    pub async fn finish(mut self) -> Result<Artifact, ArtifactError> {
        if self.size == 0 {
            return Err(ArtifactError::Empty);
        }
        let io = |path: &Path, source| ArtifactError::Io { path: path.to_path_buf(), source };
        self.file.flush().await.map_err(|e| io(&self.temp, e))?;
        self.file.sync_all().await.map_err(|e| io(&self.temp, e))?;
        let sha256 = hex::encode(self.hasher.finalize());
        let path = self.dir.join(&sha256);
        let temp = self.temp;
        let target = path.clone();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> Result<(), ArtifactError> {
            temp.persist(&target).map_err(|e| io(&target, e.error))?;
            // The rename is durable once the directory is synced too.
            std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| io(&dir, e))
        })
        .await
        .map_err(|e| io(&path, std::io::Error::other(e.to_string())))??;
        let meta = tokio::fs::metadata(&path).await.map_err(|e| io(&path, e))?;
        Ok(Artifact { sha256, size: self.size, stored_at: modified_ms(&meta) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(bytes: &[u8]) -> Digest {
        Digest::from(<[u8; 32]>::from(Sha256::digest(bytes)))
    }

    #[tokio::test]
    async fn an_upload_is_stored_under_its_digest_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path(), 1 << 20).unwrap();
        let mut up = store.upload().unwrap();
        up.write(b"firmware ").await.unwrap();
        up.write(b"image").await.unwrap();
        let a = up.finish().await.unwrap();
        assert_eq!(a.sha256, hex::encode(Sha256::digest(b"firmware image")));
        assert_eq!(a.size, 14);
        assert_eq!(store.read(&digest(b"firmware image")).await.unwrap().unwrap(), b"firmware image");
        assert_eq!(store.read_range(&digest(b"firmware image"), 9, 100).await.unwrap().unwrap(), b"image");
        let listed = store.list().await.unwrap();
        assert_eq!(listed, vec![a]);
        assert_eq!(store.read(&digest(b"other")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_upload_over_the_limit_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path(), 8).unwrap();
        let mut up = store.upload().unwrap();
        up.write(b"12345").await.unwrap();
        let e = up.write(b"6789").await.unwrap_err();
        assert!(matches!(e, ArtifactError::TooLarge { limit: 8 }), "{e}");
        drop(up);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let e = store.upload().unwrap().finish().await.unwrap_err();
        assert!(matches!(e, ArtifactError::Empty), "{e}");
    }

    #[tokio::test]
    async fn leftovers_of_an_interrupted_upload_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".upload-abc"), b"half").unwrap();
        let store = ArtifactStore::open(dir.path(), 8).unwrap();
        assert!(store.list().await.unwrap().is_empty());
        assert!(!dir.path().join(".upload-abc").exists());
    }
}
