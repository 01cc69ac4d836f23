//! First-time setup of a device, as the factory does it: wipe every record region, verify the
//! self-signed TrustRoot, hash the factory image already programmed into slot A, and write the
//! identity, the TrustRoot and the initial state.

use crate::error::{Error, Invariant};
use crate::flash_io::hash_region;
use crate::layout::Layout;
use crate::record::Pair;
use crate::state::{Identity, ImageMeta, State, MAX_STATE};
use airlock_proto::{decode, Digest, Refusal, SignedTrustRoot};
use embedded_storage::nor_flash::NorFlash;

/// First-time setup of a device, as the factory does it.
#[derive(Clone, Copy, Debug)]
pub struct Factory {
    /// Version of the image already programmed into slot A.
    pub version: airlock_proto::Version,
    /// Its security counter.
    pub security_counter: u32,
    /// Its size in bytes.
    pub size: u32,
}

/// Provisions a device: wipes every record region, verifies the self-signed TrustRoot, hashes
/// the factory image in slot A, and writes identity, TrustRoot and the initial state.
pub fn provision<F: NorFlash>(
    flash: &mut F,
    layout: &Layout,
    identity: &Identity,
    trust_root: &[u8],
    factory: Factory,
    now: u64,
) -> Result<(), Error> {
    layout.check(flash)?;
    airlock_proto::check_device_id(identity.device_id.as_str())?;
    let signed: SignedTrustRoot<'_> = decode(trust_root)?;
    signed.verify_initial(now)?;
    if factory.size == 0 || factory.size > layout.slot_size {
        return Err(Refusal::ImageTooLarge.into());
    }
    let digest = hash_region(flash, layout.slots[0], factory.size)?;
    let image = ImageMeta {
        manifest: Digest::ZERO,
        digest: Digest::from(digest),
        size: factory.size,
        version: factory.version,
        security_counter: factory.security_counter,
    };
    for offset in layout.state.iter().chain(&layout.trust).chain(&layout.identity).chain(&layout.config) {
        crate::record::wipe(flash, *offset, layout.record_size)?;
    }
    let mut buf = [0u8; MAX_STATE];
    let id = postcard::to_slice(identity, &mut buf).map_err(|_| Refusal::Malformed)?;
    Pair::new(layout.identity, layout.record_size).store(flash, id)?;
    Pair::new(layout.trust, layout.record_size).store(flash, trust_root)?;
    let state = State::factory(image);
    let body = postcard::to_slice(&state, &mut buf).map_err(|_| Error::Invariant(Invariant::StateTooLarge))?;
    Pair::new(layout.state, layout.record_size).store(flash, body)
}
