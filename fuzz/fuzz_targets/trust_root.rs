//! Arbitrary bytes as a TrustRoot rotation to a provisioned, booted device.
//!
//! Asserts: no panic; accept or refuse only; a refusal leaves the installed TrustRoot, the state
//! and flash untouched; an acceptance is a valid rotation (threshold of the old root keys and of
//! the new root's own keys, every signature valid and distinct, higher version, unexpired),
//! checked independently, and it is what the device loads after a restart.
#![no_main]

use airlock_agent_core::Input;
use airlock_fuzz::device::{assert_handled_or_refused, boot, booted};
use airlock_fuzz::fleet::NOW;
use airlock_fuzz::oracle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut agent = booted();
    let trust = agent.trust_root().expect("a booted device has a TrustRoot");
    let state = agent.state().clone();
    let flash = agent.flash_mut().bytes().to_vec();
    let r = agent.handle(NOW, Input::TrustRoot(data));
    assert_handled_or_refused(&r, data);
    match r {
        Ok(_) => {
            let next = oracle::assert_valid_rotation(&trust, data);
            assert_eq!(agent.trust_root().ok().as_ref(), Some(&next), "installed TrustRoot differs from the rotation");
            let mut reopened = boot(agent.into_flash());
            assert_eq!(reopened.trust_root().ok().as_ref(), Some(&next), "the rotation did not persist");
        }
        Err(_) => {
            assert_eq!(agent.trust_root().ok().as_ref(), Some(&trust), "a refused rotation changed the TrustRoot");
            assert_eq!(agent.state(), &state, "a refused rotation changed the state");
            assert!(agent.flash_mut().bytes() == flash.as_slice(), "a refused rotation wrote to flash");
        }
    }
});
