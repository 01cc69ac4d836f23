//! The update flash driver: `embedded-storage` NOR traits over the memory-mapped NOR window.
//!
//! It keeps NOR semantics (a write can only clear bits, an erase sets a whole sector to `0xFF`)
//! so a missing erase corrupts data instead of passing, as on the real part. A production driver
//! for FSMC NOR would issue the CFI unlock/program/erase command cycles and poll the status
//! toggle bit where this one stores bytes directly; that is a few hundred bytes more code of the
//! same kind and changes nothing the core does.

use crate::board;
use crate::mmio::NOR;
use embedded_storage::nor_flash::{
    check_erase, check_read, check_write, ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Handle to the external NOR flash. The firmware holds at most one at a time (the agent owns it
/// once opened; provisioning borrows one before that).
#[derive(Debug)]
pub struct Nor {
    _private: (),
}

impl Nor {
    /// The flash.
    pub const fn new() -> Self {
        Nor { _private: () }
    }
}

/// Why the driver refused an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NorError(NorFlashErrorKind);

impl NorFlashError for NorError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

impl ErrorType for Nor {
    type Error = NorError;
}

impl ReadNorFlash for Nor {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NorError> {
        check_read(self, offset, bytes.len()).map_err(NorError)?;
        let base = offset as usize;
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = NOR.read_u8(base + i).ok_or(NorError(NorFlashErrorKind::OutOfBounds))?;
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        board::NOR_SIZE
    }
}

impl NorFlash for Nor {
    const WRITE_SIZE: usize = board::WRITE_SIZE;
    const ERASE_SIZE: usize = board::ERASE_SIZE as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), NorError> {
        check_erase(self, from, to).map_err(NorError)?;
        for at in from as usize..to as usize {
            if !NOR.write_u8(at, 0xFF) {
                return Err(NorError(NorFlashErrorKind::OutOfBounds));
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NorError> {
        check_write(self, offset, bytes.len()).map_err(NorError)?;
        let base = offset as usize;
        for (i, &b) in bytes.iter().enumerate() {
            let old = NOR.read_u8(base + i).ok_or(NorError(NorFlashErrorKind::OutOfBounds))?;
            NOR.write_u8(base + i, old & b);
        }
        Ok(())
    }
}
