//! Where everything lives in flash.
//!
//! One NOR flash holds ten regions: two copies each of the state, TrustRoot and identity records,
//! two config slots, and the two image slots A and B. Every region starts on an erase boundary.

use crate::error::Error;
use embedded_storage::nor_flash::NorFlash;

/// Granularity of every write the core makes: writes are staged and issued in aligned 32-byte
/// units, so any flash whose write size divides 32 works unchanged.
pub const WRITE_UNIT: usize = 32;

/// Smallest record region: a record holds at most a signed TrustRoot plus its header.
pub const MIN_RECORD_REGION: u32 = 4096;

/// Region offsets, in bytes from the start of the flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The two copies of the state record.
    pub state: [u32; 2],
    /// The two copies of the installed TrustRoot.
    pub trust: [u32; 2],
    /// The two copies of the device identity (wiped on decommission).
    pub identity: [u32; 2],
    /// The two config slots.
    pub config: [u32; 2],
    /// Size of each record or config region.
    pub record_size: u32,
    /// Image slots A and B.
    pub slots: [u32; 2],
    /// Size of each image slot.
    pub slot_size: u32,
}

impl Layout {
    /// Packs all regions from offset 0: eight record regions, then the two slots.
    pub const fn contiguous(erase_size: u32, slot_size: u32) -> Layout {
        let r = round_up(MIN_RECORD_REGION, erase_size);
        let s = round_up(slot_size, erase_size);
        Layout {
            state: [0, r],
            trust: [2 * r, 3 * r],
            identity: [4 * r, 5 * r],
            config: [6 * r, 7 * r],
            record_size: r,
            slots: [8 * r, 8 * r + s],
            slot_size: s,
        }
    }

    /// Total bytes the layout spans.
    pub const fn end(&self) -> u32 {
        let mut end = 0;
        let mut i = 0;
        while i < 2 {
            end = max(end, self.slots[i] + self.slot_size);
            i += 1;
        }
        end
    }

    /// Checks alignment, sizes and overlap against the flash.
    pub fn check<F: NorFlash>(&self, flash: &F) -> Result<(), Error> {
        let erase = F::ERASE_SIZE as u32;
        let unit_ok = WRITE_UNIT % F::WRITE_SIZE == 0 && WRITE_UNIT % F::READ_SIZE == 0;
        let mut regions: heapless::Vec<(u32, u32), 10> = heapless::Vec::new();
        for &o in self.state.iter().chain(&self.trust).chain(&self.identity).chain(&self.config) {
            regions.push((o, self.record_size)).map_err(|_| Error::Layout)?;
        }
        for &o in &self.slots {
            regions.push((o, self.slot_size)).map_err(|_| Error::Layout)?;
        }
        let aligned = regions.iter().all(|&(o, len)| o % erase == 0 && len % erase == 0 && len > 0);
        let fits = regions.iter().all(|&(o, len)| o.checked_add(len).is_some_and(|e| e as usize <= flash.capacity()));
        let disjoint =
            regions.iter().enumerate().all(|(i, a)| regions[..i].iter().all(|b| a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0));
        if unit_ok && aligned && fits && disjoint && self.record_size >= MIN_RECORD_REGION {
            Ok(())
        } else {
            Err(Error::Layout)
        }
    }
}

const fn round_up(n: u32, to: u32) -> u32 {
    n.div_ceil(to) * to
}

const fn max(a: u32, b: u32) -> u32 {
    if a > b {
        a
    } else {
        b
    }
}
