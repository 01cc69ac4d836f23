//! The provisioned device: its flash is built once per process and cloned for every input, so
//! that every input starts from the same state (a crash reproduces from its input alone).

use crate::fleet::{image, Fleet, FACTORY_LEN, NOW, SLOT};
use airlock_agent_core::mem_flash::MemFlash;
use airlock_agent_core::{provision, Agent, Error, Factory, Identity, Input, Layout, Outputs, Settings};
use airlock_proto::{Tier, Version};
use std::sync::OnceLock;

/// The flash layout of the fuzzed device.
pub fn layout() -> Layout {
    Layout::contiguous(MemFlash::ERASE as u32, SLOT)
}

/// The device's identity.
pub fn identity() -> Identity {
    Identity {
        device_id: heapless::String::try_from(crate::fleet::DEVICE).unwrap_or_default(),
        hardware: heapless::String::try_from(crate::fleet::HARDWARE).unwrap_or_default(),
        min_tier: Tier::AutoPass,
        key_seed: [42; 32],
    }
}

/// Everything built once per process.
#[derive(Debug)]
pub struct World {
    /// Keys and TrustRoot.
    pub fleet: Fleet,
    /// A flash with the factory image 1.0.0 in slot A and the device provisioned.
    pub flash: MemFlash,
}

/// The process-wide [`World`].
///
/// Built with a tripwire: a fresh device must accept the seed firmware delivery. If the core's
/// API drifts (say, `handle` taking seconds instead of milliseconds), every message would be
/// refused and every target would pass while testing nothing; this makes it fail at once.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let fleet = Fleet::new();
        let flash = provisioned(&fleet);
        let mut agent = boot(flash.clone());
        let r = agent.handle(NOW, Input::Delivery(&fleet.firmware_delivery()));
        assert!(r.is_ok(), "tripwire: a fresh device refused the seed firmware delivery: {r:?}");
        World { fleet, flash }
    })
}

/// Provisions a fresh flash for `fleet`.
pub fn provisioned(fleet: &Fleet) -> MemFlash {
    let l = layout();
    let mut flash = MemFlash::new(l.end() as usize);
    let img = image(1, FACTORY_LEN);
    let a = l.slots[0] as usize;
    flash.bytes_mut()[a..a + img.len()].copy_from_slice(&img);
    let factory = Factory { version: Version::new(1, 0, 0), security_counter: 1, size: FACTORY_LEN as u32 };
    let r = provision(&mut flash, &l, &identity(), &fleet.trust_bytes, factory, NOW);
    assert_eq!(r, Ok(()), "provisioning the fuzz device failed");
    flash
}

/// Opens an agent on `flash` and boots it.
pub fn boot(flash: MemFlash) -> Agent<MemFlash> {
    let agent = Agent::open(flash, layout(), Settings::default());
    let mut agent = match agent {
        Ok(a) => a,
        Err(e) => panic!("opening the fuzz device failed: {e}"),
    };
    let r = agent.handle(NOW, Input::Boot);
    assert!(r.is_ok(), "first boot failed: {r:?}");
    agent
}

/// A booted agent on a fresh copy of the provisioned flash.
pub fn booted() -> Agent<MemFlash> {
    boot(world().flash.clone())
}

/// A booted agent that accepted the firmware delivery and is waiting for chunks.
pub fn downloading() -> Agent<MemFlash> {
    let mut agent = booted();
    let d = world().fleet.firmware_delivery();
    let r = agent.handle(NOW, Input::Delivery(&d));
    assert!(r.is_ok(), "the firmware delivery was refused: {r:?}");
    agent
}

/// Every input a device can be given is either handled or refused: anything else (a flash or
/// layout error on a healthy in-memory flash, a broken state invariant) is a bug in the core.
pub fn assert_handled_or_refused(r: &Result<Outputs, Error>, input: &[u8]) {
    if let Err(e) = r {
        assert!(matches!(e, Error::Refused(_)), "input {input:02x?} gave a non-refusal error: {e:?}");
    }
}
