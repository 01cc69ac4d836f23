//! Arbitrary bytes as a signed command to a provisioned, booted device.
//!
//! Asserts: no panic; accept or refuse only; a refusal changes neither the state nor flash; an
//! acceptance is a command for this device, signed by a release key (checked independently),
//! unexpired, with a fresh sequence; and the same bytes a second time are refused as a replay.
#![no_main]

use airlock_agent_core::{Error, Input};
use airlock_fuzz::device::{assert_handled_or_refused, booted, world};
use airlock_fuzz::fleet::NOW;
use airlock_fuzz::oracle;
use airlock_proto::Refusal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut agent = booted();
    let state = agent.state().clone();
    let flash = agent.flash_mut().bytes().to_vec();
    let r = agent.handle(NOW, Input::Command(data));
    assert_handled_or_refused(&r, data);
    match r {
        Ok(_) => {
            oracle::assert_valid_command(&world().fleet.trust, data, state.last_command);
            let again = agent.handle(NOW, Input::Command(data));
            assert_eq!(again, Err(Error::Refused(Refusal::Replay)), "a command was accepted twice");
        }
        Err(_) => {
            assert_eq!(agent.state(), &state, "a refused command changed the state");
            assert!(agent.flash_mut().bytes() == flash.as_slice(), "a refused command wrote to flash");
        }
    }
});
