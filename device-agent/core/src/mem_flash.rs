//! An in-memory NOR flash that behaves like the real thing, and can lose power.
//!
//! Writes can only clear bits (`old & new`), as on NOR, so a missing erase shows up as corrupt
//! data instead of passing silently. [`MemFlash::cut_power_at`] makes the Nth mutating operation
//! (write or erase) tear — a write lands only its first half, an erase clears only the first half
//! of its range — and every operation after it fail until [`MemFlash::power_on`].

#[cfg(not(test))]
use alloc::{vec, vec::Vec};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

/// The error of a [`MemFlash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemFlashError {
    /// Offset or length not aligned.
    NotAligned,
    /// Past the end.
    OutOfBounds,
    /// The power is off.
    PowerLoss,
}

impl NorFlashError for MemFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            MemFlashError::NotAligned => NorFlashErrorKind::NotAligned,
            MemFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            MemFlashError::PowerLoss => NorFlashErrorKind::Other,
        }
    }
}

/// In-memory NOR flash: 4-byte writes, 4 KiB erase sectors.
#[derive(Clone, Debug)]
pub struct MemFlash {
    data: Vec<u8>,
    ops: u64,
    cut_at: Option<u64>,
    powered: bool,
}

impl MemFlash {
    /// Erase sector size.
    pub const ERASE: usize = 4096;

    /// A fully erased flash of `size` bytes.
    pub fn new(size: usize) -> Self {
        MemFlash { data: vec![0xFF; size], ops: 0, cut_at: None, powered: true }
    }

    /// Mutating operations (writes and erases) so far.
    pub const fn ops(&self) -> u64 {
        self.ops
    }

    /// Tears operation number `n` (counted from now, 0-based) and fails everything after it.
    pub fn cut_power_at(&mut self, n: u64) {
        self.cut_at = Some(self.ops + n);
    }

    /// Restores power; the contents are whatever the cut left.
    pub fn power_on(&mut self) {
        self.powered = true;
        self.cut_at = None;
    }

    /// Whether the power is on.
    pub const fn powered(&self) -> bool {
        self.powered
    }

    /// The raw contents.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Mutable raw contents (to program a factory image or simulate corruption).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    fn range(&self, offset: u32, len: usize, align: usize) -> Result<core::ops::Range<usize>, MemFlashError> {
        let start = offset as usize;
        if start % align != 0 || len % align != 0 {
            return Err(MemFlashError::NotAligned);
        }
        let end = start.checked_add(len).filter(|&e| e <= self.data.len()).ok_or(MemFlashError::OutOfBounds)?;
        Ok(start..end)
    }

    /// Counts a mutating operation; `Some(true)` when this one is torn.
    fn begin_op(&mut self) -> Result<bool, MemFlashError> {
        if !self.powered {
            return Err(MemFlashError::PowerLoss);
        }
        let torn = self.cut_at == Some(self.ops);
        self.ops += 1;
        if torn {
            self.powered = false;
        }
        Ok(torn)
    }
}

impl ErrorType for MemFlash {
    type Error = MemFlashError;
}

impl ReadNorFlash for MemFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        if !self.powered {
            return Err(MemFlashError::PowerLoss);
        }
        let r = self.range(offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&self.data[r]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl NorFlash for MemFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = Self::ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let r = self.range(from, to.saturating_sub(from) as usize, Self::ERASE)?;
        let torn = self.begin_op()?;
        let end = if torn { r.start + r.len() / 2 } else { r.end };
        self.data[r.start..end].fill(0xFF);
        if torn {
            Err(MemFlashError::PowerLoss)
        } else {
            Ok(())
        }
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let r = self.range(offset, bytes.len(), Self::WRITE_SIZE)?;
        let torn = self.begin_op()?;
        let n = if torn { bytes.len() / 2 } else { bytes.len() };
        for (d, b) in self.data[r.start..r.start + n].iter_mut().zip(bytes) {
            *d &= *b;
        }
        if torn {
            Err(MemFlashError::PowerLoss)
        } else {
            Ok(())
        }
    }
}
