//! Arbitrary bytes as a delivery, to `decode::<Delivery>` and to a provisioned, booted device.
//!
//! Asserts: no panic; the decoder round-trips (`canonical`); the device either accepts or refuses
//! (no flash, layout or invariant error); a refusal changes neither the state nor one byte of
//! flash; an acceptance is a genuinely valid delivery (release signature, quorum, approval
//! signatures, cohort proof, expiry, sequence), re-checked independently (`oracle`).
#![no_main]

use airlock_agent_core::Input;
use airlock_fuzz::device::{assert_handled_or_refused, booted, world};
use airlock_fuzz::fleet::NOW;
use airlock_fuzz::{canonical, oracle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    canonical::check_delivery(data);

    let w = world();
    let mut agent = booted();
    let state = agent.state().clone();
    let flash = agent.flash_mut().bytes().to_vec();
    let r = agent.handle(NOW, Input::Delivery(data));
    assert_handled_or_refused(&r, data);
    match r {
        Ok(_) => {
            oracle::assert_valid_delivery(&w.fleet.trust, data, state.last_sequence);
            assert!(agent.state().last_sequence > state.last_sequence, "acceptance did not move the sequence");
            assert_eq!(agent.trust_root().ok().as_ref(), Some(&w.fleet.trust), "a delivery changed the TrustRoot");
        }
        Err(_) => {
            assert_eq!(agent.state(), &state, "a refused delivery changed the state");
            assert!(agent.flash_mut().bytes() == flash.as_slice(), "a refused delivery wrote to flash");
        }
    }
});
