//! The factory's provisioning frame: the device identity, the factory image's facts, and the
//! self-signed TrustRoot, in one flat layout the production line writes.
//!
//! ```text
//! id_len: u8, id, hw_len: u8, hw, min_tier: u8, key_seed: [u8; 32],
//! major: u16 LE, minor: u16 LE, patch: u16 LE, security_counter: u32 LE, size: u32 LE,
//! signed TrustRoot (the rest)
//! ```
//! Only the layout is checked here; `airlock_agent_core::provision` checks the content (device id
//! charset, the TrustRoot's signatures and expiry, the image size) and hashes the factory image.

use airlock_agent_core::{Factory, Identity};
use airlock_proto::{Tier, Version};

/// What the frame provisions.
#[derive(Debug)]
pub struct Provisioning<'a> {
    /// Who the device is.
    pub identity: Identity,
    /// The image the factory programmed into slot A.
    pub factory: Factory,
    /// The self-signed TrustRoot, as received.
    pub trust_root: &'a [u8],
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn str(&mut self) -> Option<&'a str> {
        let [len] = self.array::<1>()?;
        core::str::from_utf8(self.take(usize::from(len))?).ok()
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }
}

/// Parses a provisioning frame; `None` if it is not one.
pub fn parse(frame: &[u8]) -> Option<Provisioning<'_>> {
    let mut r = Reader(frame);
    let device_id = r.str()?.try_into().ok()?;
    let hardware = r.str()?.try_into().ok()?;
    let [tier] = r.array::<1>()?;
    let min_tier = *Tier::ALL.get(usize::from(tier))?;
    let key_seed = r.array::<32>()?;
    let version = Version::new(r.u16()?, r.u16()?, r.u16()?);
    let factory = Factory { version, security_counter: r.u32()?, size: r.u32()? };
    Some(Provisioning { identity: Identity { device_id, hardware, min_tier, key_seed }, factory, trust_root: r.0 })
}
