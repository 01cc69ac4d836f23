//! A file that behaves as NOR flash, for gateways that keep their A/B slots and state records
//! on a filesystem.
//!
//! Same semantics as the chip: erase sets sectors to `0xFF`, a write can only clear bits. Every
//! operation is followed by `fdatasync`, so the order of writes the core relies on (image data
//! before the state record that names it) is the order on disk after a power cut.

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Erase sector size of a [`FileFlash`].
pub const SECTOR: usize = 4096;

/// Why a file-flash operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FileFlashError {
    /// The file could not be read, written or synced.
    #[error("flash file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Offset or length not aligned to the write or erase size.
    #[error("flash access not aligned")]
    NotAligned,
    /// Past the end of the file.
    #[error("flash access out of bounds")]
    OutOfBounds,
    /// The file exists with another size than the one asked for.
    #[error("flash file is {actual} bytes, expected {expected}")]
    WrongSize {
        /// Size asked for.
        expected: u64,
        /// Size found.
        actual: u64,
    },
}

impl NorFlashError for FileFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FileFlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FileFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FileFlashError::Io(_) | FileFlashError::WrongSize { .. } => NorFlashErrorKind::Other,
        }
    }
}

/// NOR flash backed by one file.
#[derive(Debug)]
pub struct FileFlash {
    file: File,
    size: u64,
}

impl FileFlash {
    /// Opens `path`, creating it fully erased (`0xFF`) with `size` bytes if it does not exist.
    pub fn open(path: &Path, size: u64) -> Result<Self, FileFlashError> {
        if size % SECTOR as u64 != 0 {
            return Err(FileFlashError::NotAligned);
        }
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let actual = file.metadata()?.len();
        if actual == 0 {
            let sector = vec![0xFF; SECTOR];
            for i in 0..size / SECTOR as u64 {
                file.write_all_at(&sector, i * SECTOR as u64)?;
            }
            file.sync_all()?;
        } else if actual != size {
            return Err(FileFlashError::WrongSize { expected: size, actual });
        }
        Ok(FileFlash { file, size })
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<u64, FileFlashError> {
        if offset as usize % align != 0 || len % align != 0 {
            return Err(FileFlashError::NotAligned);
        }
        let end = u64::from(offset) + len as u64;
        if end > self.size {
            return Err(FileFlashError::OutOfBounds);
        }
        Ok(u64::from(offset))
    }
}

impl ErrorType for FileFlash {
    type Error = FileFlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.check(offset, bytes.len(), 1)?;
        self.file.read_exact_at(bytes, at)?;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.size as usize
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let at = self.check(from, to.saturating_sub(from) as usize, SECTOR)?;
        let sector = vec![0xFF; SECTOR];
        for i in 0..u64::from(to - from) / SECTOR as u64 {
            self.file.write_all_at(&sector, at + i * SECTOR as u64)?;
        }
        self.file.sync_data()?;
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = self.check(offset, bytes.len(), Self::WRITE_SIZE)?;
        let mut current = vec![0u8; bytes.len()];
        self.file.read_exact_at(&mut current, at)?;
        for (c, b) in current.iter_mut().zip(bytes) {
            *c &= *b;
        }
        self.file.write_all_at(&current, at)?;
        self.file.sync_data()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_reads_erased_and_writes_only_clear_bits() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = FileFlash::open(&dir.path().join("flash"), 2 * SECTOR as u64).unwrap();
        let mut buf = [0u8; 8];
        f.read(100, &mut buf).unwrap();
        assert_eq!(buf, [0xFF; 8]);
        f.write(100, &[0x0F, 0xF0, 0x00, 0xFF]).unwrap();
        f.write(100, &[0xFF, 0x0F, 0xFF, 0x0F]).unwrap();
        f.read(100, &mut buf[..4]).unwrap();
        assert_eq!(&buf[..4], &[0x0F, 0x00, 0x00, 0x0F]);
        f.erase(0, SECTOR as u32).unwrap();
        f.read(100, &mut buf[..4]).unwrap();
        assert_eq!(&buf[..4], &[0xFF; 4]);
    }

    #[test]
    fn misaligned_and_out_of_bounds_access_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = FileFlash::open(&dir.path().join("flash"), SECTOR as u64).unwrap();
        assert!(matches!(f.write(2, &[0; 4]), Err(FileFlashError::NotAligned)));
        assert!(matches!(f.erase(0, 100), Err(FileFlashError::NotAligned)));
        assert!(matches!(f.read(SECTOR as u32 - 2, &mut [0; 4]), Err(FileFlashError::OutOfBounds)));
    }

    #[test]
    fn a_file_of_another_size_is_refused_rather_than_reinterpreted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash");
        FileFlash::open(&path, SECTOR as u64).unwrap();
        let err = FileFlash::open(&path, 2 * SECTOR as u64).unwrap_err();
        assert!(matches!(err, FileFlashError::WrongSize { expected: 8192, actual: 4096 }));
    }
}
