//! Aligned reads and streaming writes over a NOR flash.

use crate::error::{flash, Error};
use crate::layout::WRITE_UNIT;
use embedded_storage::nor_flash::NorFlash;

/// Reads `buf.len()` bytes at `offset`, which must be a multiple of [`WRITE_UNIT`]; a partial
/// last unit goes through a small staging buffer so every driver read is unit-aligned.
pub(crate) fn read<F: NorFlash>(f: &mut F, offset: u32, buf: &mut [u8]) -> Result<(), Error> {
    let whole = buf.len() - buf.len() % WRITE_UNIT;
    let (head, tail) = buf.split_at_mut(whole);
    if !head.is_empty() {
        f.read(offset, head).map_err(flash)?;
    }
    if !tail.is_empty() {
        let mut unit = [0u8; WRITE_UNIT];
        f.read(offset + whole as u32, &mut unit).map_err(flash)?;
        tail.copy_from_slice(&unit[..tail.len()]);
    }
    Ok(())
}

/// Streams bytes into a region that starts erased-on-demand: sectors are erased just before
/// the write pointer enters them, and writes go out in whole [`WRITE_UNIT`]s.
#[derive(Debug)]
pub(crate) struct Writer {
    /// Region start.
    base: u32,
    /// Region length.
    len: u32,
    /// Bytes of the region written to flash so far (a multiple of `WRITE_UNIT`).
    flushed: u32,
    /// End of the erased part of the region, relative to `base`.
    erased: u32,
    /// Staged bytes not yet written.
    unit: [u8; WRITE_UNIT],
    staged: usize,
}

impl Writer {
    pub(crate) const fn new(base: u32, len: u32) -> Writer {
        Writer { base, len, flushed: 0, erased: 0, unit: [0xFF; WRITE_UNIT], staged: 0 }
    }

    /// Bytes accepted so far.
    pub(crate) const fn position(&self) -> u32 {
        self.flushed + self.staged as u32
    }

    fn ensure_erased<F: NorFlash>(&mut self, f: &mut F, upto: u32) -> Result<(), Error> {
        let sector = F::ERASE_SIZE as u32;
        while self.erased < upto {
            let from = self.base + self.erased;
            f.erase(from, from + sector).map_err(flash)?;
            self.erased += sector;
        }
        Ok(())
    }

    fn write_units<F: NorFlash>(&mut self, f: &mut F, data: &[u8]) -> Result<(), Error> {
        let end = self.flushed + data.len() as u32;
        if end > self.len {
            return Err(Error::Layout);
        }
        self.ensure_erased(f, end)?;
        f.write(self.base + self.flushed, data).map_err(flash)?;
        self.flushed = end;
        Ok(())
    }

    /// Appends `data`.
    pub(crate) fn push<F: NorFlash>(&mut self, f: &mut F, mut data: &[u8]) -> Result<(), Error> {
        if self.staged > 0 {
            let take = (WRITE_UNIT - self.staged).min(data.len());
            self.unit[self.staged..self.staged + take].copy_from_slice(&data[..take]);
            self.staged += take;
            data = &data[take..];
            if self.staged < WRITE_UNIT {
                return Ok(());
            }
            let unit = self.unit;
            self.write_units(f, &unit)?;
            self.staged = 0;
        }
        let whole = data.len() - data.len() % WRITE_UNIT;
        if whole > 0 {
            self.write_units(f, &data[..whole])?;
        }
        let rest = &data[whole..];
        self.unit = [0xFF; WRITE_UNIT];
        self.unit[..rest.len()].copy_from_slice(rest);
        self.staged = rest.len();
        Ok(())
    }

    /// Writes the staged tail, padded with erased bytes.
    pub(crate) fn finish<F: NorFlash>(&mut self, f: &mut F) -> Result<(), Error> {
        if self.staged > 0 {
            let unit = self.unit;
            self.write_units(f, &unit)?;
            self.staged = 0;
        }
        Ok(())
    }

    /// Erases the whole region now (records are small; erase before writing).
    pub(crate) fn erase_all<F: NorFlash>(&mut self, f: &mut F) -> Result<(), Error> {
        self.ensure_erased(f, self.len)
    }
}

/// SHA-256 over `len` bytes of flash at `offset`.
pub(crate) fn hash_region<F: NorFlash>(f: &mut F, offset: u32, len: u32) -> Result<[u8; 32], Error> {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    let mut buf = [0u8; 256];
    let mut done = 0u32;
    while done < len {
        let n = (len - done).min(buf.len() as u32) as usize;
        read(f, offset + done, &mut buf[..n])?;
        h.update(&buf[..n]);
        done += n as u32;
    }
    Ok(h.finalize().into())
}
