//! The fuzz targets report through the oracles, so each oracle must be able to fail: every seed
//! passes it, and a seed with one thing wrong does not.
//!
//! `cargo test --release` (stable, no RUSTC_BOOTSTRAP needed).

use airlock_agent_core::Input;
use airlock_fuzz::device::{downloading, layout, world};
use airlock_fuzz::fleet::{image, sha256, CHUNK, FACTORY_LEN, IMAGE_LEN, NOW};
use airlock_fuzz::oracle;
use airlock_proto::CommandAction;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn fails(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

#[test]
fn delivery_oracle_passes_seeds_and_catches_a_bad_release_signature() {
    let fleet = &world().fleet;
    for d in [
        fleet.firmware_delivery(),
        fleet.config_delivery(),
        fleet.decommission_delivery(),
        fleet.break_glass_delivery(),
    ] {
        oracle::assert_valid_delivery(&fleet.trust, &d, 0);
    }
    let mut bad = fleet.firmware_delivery();
    // Layout: body length (2 bytes), body (193), signer (32), signature (64).
    let sig = 2 + 193 + 32;
    bad[sig] ^= 1;
    assert!(fails(|| oracle::assert_valid_delivery(&fleet.trust, &bad, 0)));
    // Also a replay: the seed's sequence is not above itself.
    assert!(fails(|| oracle::assert_valid_delivery(&fleet.trust, &fleet.firmware_delivery(), 100)));
}

#[test]
fn command_oracle_passes_a_seed_and_catches_a_bad_signature() {
    let fleet = &world().fleet;
    let good = fleet.command(1, CommandAction::Status);
    oracle::assert_valid_command(&fleet.trust, &good, 0);
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    assert!(fails(|| oracle::assert_valid_command(&fleet.trust, &bad, 0)));
    assert!(fails(|| oracle::assert_valid_command(&fleet.trust, &good, 1)));
}

#[test]
fn rotation_oracle_passes_seeds_and_catches_a_root_that_is_not_newer() {
    let fleet = &world().fleet;
    oracle::assert_valid_rotation(&fleet.trust, &fleet.rotation_new_keys());
    oracle::assert_valid_rotation(&fleet.trust, &fleet.rotation_same_keys());
    assert!(fails(|| {
        oracle::assert_valid_rotation(&fleet.trust, &fleet.trust_bytes);
    }));
}

#[test]
fn slot_oracle_catches_an_image_that_no_longer_matches_its_record() {
    let fleet = &world().fleet;
    let allowed = [sha256(&image(1, FACTORY_LEN)), sha256(&fleet.image())];
    let mut agent = downloading();
    for at in (0..IMAGE_LEN as u32).step_by(CHUNK as usize) {
        let r = agent.handle(NOW, Input::Chunk(&fleet.chunk(at, CHUNK)));
        assert!(r.is_ok(), "{r:?}");
    }
    let trial = agent.state().trial.expect("the image is installed on trial");
    oracle::assert_slots_hold_recorded_images(&mut agent, &layout(), &allowed);
    assert!(fails(|| oracle::assert_slots_hold_recorded_images(&mut agent, &layout(), &allowed[..1])));
    let at = layout().slots[usize::from(trial.slot)] as usize;
    agent.flash_mut().bytes_mut()[at] ^= 1;
    assert!(fails(|| oracle::assert_slots_hold_recorded_images(&mut agent, &layout(), &allowed)));
}
