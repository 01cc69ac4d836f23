//! Checksummed records, and pairs of them that survive a power cut at any write.
//!
//! A record region holds one record: a 32-byte header (magic, generation, length, and the first
//! 16 bytes of SHA-256 over header fields and body) followed by the body. A torn erase or write
//! leaves a record whose checksum fails, which reads as absent.
//!
//! A [`Pair`] keeps two copies and always overwrites the one that is not the newest valid copy,
//! so after a power cut at any point the newest complete record is either the new one or the
//! previous one — never a mix.

use crate::error::Error;
use crate::flash_io::{read, Writer};
use crate::layout::WRITE_UNIT;
use embedded_storage::nor_flash::NorFlash;
use sha2::{Digest as _, Sha256};

const MAGIC: [u8; 4] = *b"ALR1";
const HEADER: usize = WRITE_UNIT;

fn checksum(generation: u32, body: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(generation.to_le_bytes());
    h.update((body.len() as u32).to_le_bytes());
    h.update(body);
    let d: [u8; 32] = h.finalize().into();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// Reads the record at `offset` into `buf`; `None` if absent or torn.
pub(crate) fn read_record<'b, F: NorFlash>(
    f: &mut F,
    offset: u32,
    region: u32,
    buf: &'b mut [u8],
) -> Result<Option<(u32, &'b [u8])>, Error> {
    let mut head = [0u8; HEADER];
    read(f, offset, &mut head)?;
    if head[..4] != MAGIC {
        return Ok(None);
    }
    let generation = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
    if len > buf.len() || HEADER + len > region as usize {
        return Ok(None);
    }
    let body = &mut buf[..len];
    read(f, offset + HEADER as u32, body)?;
    if head[12..28] != checksum(generation, body) {
        return Ok(None);
    }
    Ok(Some((generation, body)))
}

/// Erases the region at `offset` and writes one record.
pub(crate) fn write_record<F: NorFlash>(
    f: &mut F,
    offset: u32,
    region: u32,
    generation: u32,
    body: &[u8],
) -> Result<(), Error> {
    if HEADER + body.len() > region as usize {
        return Err(Error::Layout);
    }
    let mut head = [0xFFu8; HEADER];
    head[..4].copy_from_slice(&MAGIC);
    head[4..8].copy_from_slice(&generation.to_le_bytes());
    head[8..12].copy_from_slice(&(body.len() as u32).to_le_bytes());
    head[12..28].copy_from_slice(&checksum(generation, body));
    let mut w = Writer::new(offset, region);
    w.erase_all(f)?;
    w.push(f, &head)?;
    w.push(f, body)?;
    w.finish(f)
}

/// Erases a region (wiping whatever record it held).
pub(crate) fn wipe<F: NorFlash>(f: &mut F, offset: u32, region: u32) -> Result<(), Error> {
    Writer::new(offset, region).erase_all(f)
}

/// Two copies of one record; see the module docs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pair {
    offsets: [u32; 2],
    region: u32,
    /// Generation of the newest valid copy (0: none yet).
    generation: u32,
    /// Which copy holds it.
    newest: usize,
}

impl Pair {
    pub(crate) const fn new(offsets: [u32; 2], region: u32) -> Pair {
        Pair { offsets, region, generation: 0, newest: 1 }
    }

    /// Loads the newest valid copy into `buf`.
    pub(crate) fn load<'b, F: NorFlash>(&mut self, f: &mut F, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, Error> {
        let mut best: Option<(usize, u32, usize)> = None;
        for i in 0..2 {
            if let Some((g, body)) = read_record(f, self.offsets[i], self.region, buf)? {
                if best.is_none_or(|(_, bg, _)| g > bg) {
                    best = Some((i, g, body.len()));
                }
            }
        }
        let Some((i, g, _)) = best else {
            return Ok(None);
        };
        self.generation = g;
        self.newest = i;
        // Re-read the winner (the buffer may hold the other copy now).
        Ok(read_record(f, self.offsets[i], self.region, buf)?.map(|(_, b)| b))
    }

    /// Reads the newest copy [`Pair::load`] found (one record read instead of two).
    pub(crate) fn load_newest<'b, F: NorFlash>(
        &mut self,
        f: &mut F,
        buf: &'b mut [u8],
    ) -> Result<Option<&'b [u8]>, Error> {
        if self.generation == 0 {
            return self.load(f, buf);
        }
        Ok(read_record(f, self.offsets[self.newest], self.region, buf)?.map(|(_, b)| b))
    }

    /// Writes `body` as the new newest copy, over the older one.
    pub(crate) fn store<F: NorFlash>(&mut self, f: &mut F, body: &[u8]) -> Result<(), Error> {
        let target = 1 - self.newest;
        let generation = self.generation.wrapping_add(1);
        write_record(f, self.offsets[target], self.region, generation, body)?;
        self.generation = generation;
        self.newest = target;
        Ok(())
    }

    /// Erases both copies.
    pub(crate) fn wipe<F: NorFlash>(&mut self, f: &mut F) -> Result<(), Error> {
        for o in self.offsets {
            wipe(f, o, self.region)?;
        }
        self.generation = 0;
        self.newest = 1;
        Ok(())
    }
}
