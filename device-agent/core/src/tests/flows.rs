//! Whole update paths: install, test boot, confirm or revert; config push; decommission;
//! rotation; flow control.

use super::fixture::*;
use crate::{Agent, Input, Output, Settings};
use airlock_proto::build::{sign_trust_root, SignedOwned};
use airlock_proto::sig::public_key;
use airlock_proto::*;

#[test]
fn firmware_update_installs_boots_on_trial_and_confirms() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    let mut rt = Runtime::new(&img);
    rt.run(&mut agent, Input::Delivery(&spec.bytes())).unwrap();
    let events = rt.events();
    let digest = spec.digest();
    assert_eq!(events[0], Event::Accepted { manifest: digest });
    assert!(events.contains(&Event::Installed { manifest: digest }));
    assert!(events.contains(&Event::Confirmed { manifest: digest, version: Version::new(2, 0, 0) }));
    assert!(rt.outputs.contains(&Output::Run { slot: 1, testing: true }));
    assert_eq!(running_image(&mut agent), (Version::new(2, 0, 0), sha256(&img)));
    assert_eq!(agent.state().active, 1);
    assert_eq!(agent.state().last_sequence, 100);
    // The previous image stays for a later revert.
    assert_eq!(agent.state().slots[0].map(|i| i.version), Some(Version::new(1, 0, 0)));
}

#[test]
fn update_survives_a_reopen_of_the_agent() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    Runtime::new(&img).run(&mut agent, Input::Delivery(&fleet.firmware(Version::new(2, 0, 0), &img).bytes())).unwrap();
    let mut again = booted(agent.into_flash());
    assert_eq!(running_image(&mut again).0, Version::new(2, 0, 0));
    assert_eq!(again.status().firmware, Version::new(2, 0, 0));
}

#[test]
fn failed_health_check_reverts_to_the_previous_image() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    let mut rt = Runtime::new(&img);
    rt.health = false;
    rt.run(&mut agent, Input::Delivery(&spec.bytes())).unwrap();
    let reverted = Event::Reverted { manifest: Some(spec.digest()), reason: RevertReason::HealthCheckFailed };
    assert!(rt.events().contains(&reverted), "{:?}", rt.events());
    assert_eq!(running_image(&mut agent).0, Version::new(1, 0, 0));
    assert_eq!(agent.state().slots[1], None, "the failed image can never boot again");
}

#[test]
fn reboot_during_the_test_boot_reverts() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    agent.handle(NOW, Input::Delivery(&spec.bytes())).unwrap();
    let rt = Runtime::new(&img);
    for off in (0..img.len() as u32).step_by(CHUNK as usize) {
        agent.handle(NOW, Input::Chunk(&rt.chunk_bytes(off, CHUNK))).unwrap();
    }
    let first = agent.handle(NOW, Input::Boot).unwrap();
    assert!(first.contains(&Output::Run { slot: 1, testing: true }));
    // The new image hangs; the watchdog reboots before any health result.
    let second = agent.handle(NOW, Input::Boot).unwrap();
    let reverted = Event::Reverted { manifest: Some(spec.digest()), reason: RevertReason::UnconfirmedReboot };
    assert!(second.contains(&Output::Report(reverted)));
    assert!(second.contains(&Output::Run { slot: 0, testing: false }));
}

#[test]
fn corrupted_active_image_falls_back_to_the_previous_one() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    Runtime::new(&img).run(&mut agent, Input::Delivery(&fleet.firmware(Version::new(2, 0, 0), &img).bytes())).unwrap();
    let mut flash = agent.into_flash();
    let b = layout().slots[1] as usize + 100;
    flash.bytes_mut()[b] ^= 0xFF;
    let mut agent = Agent::open(flash, layout(), Settings::default()).unwrap();
    let out = agent.handle(NOW, Input::Boot).unwrap();
    assert!(out.contains(&Output::Run { slot: 0, testing: false }));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Report(Event::Reverted { reason: RevertReason::ImageCorrupt, .. }))));
}

#[test]
fn a_device_with_no_intact_image_says_so_instead_of_running_one() {
    let fleet = Fleet::new();
    let mut flash = provisioned(&fleet, &identity());
    let a = layout().slots[0] as usize;
    flash.bytes_mut()[a] ^= 1;
    let mut agent = Agent::open(flash, layout(), Settings::default()).unwrap();
    assert_eq!(agent.handle(NOW, Input::Boot), Err(crate::Error::NoBootableImage));
}

#[test]
fn lost_chunks_are_requested_again_after_the_timeout() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    let mut rt = Runtime::new(&img);
    rt.drop_once = vec![0, 3, 7, 19];
    rt.run(&mut agent, Input::Delivery(&fleet.firmware(Version::new(2, 0, 0), &img).bytes())).unwrap();
    assert_eq!(running_image(&mut agent).0, Version::new(2, 0, 0));
}

#[test]
fn the_device_never_has_more_than_its_window_in_flight() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    let out = agent.handle(NOW, Input::Delivery(&fleet.firmware(Version::new(2, 0, 0), &img).bytes())).unwrap();
    let window = u32::from(Settings::default().window) * CHUNK;
    let Some(Output::RequestChunks(first)) = out.iter().find(|o| matches!(o, Output::RequestChunks(_))) else {
        panic!("no request")
    };
    assert_eq!((first.offset, first.len), (0, window));
    // The window refills half at a time: the first chunk asks for nothing (three in flight),
    // the second for half a window (back to four), and so on.
    let rt = Runtime::new(&img);
    let half = window / 2;
    let mut requested = window;
    for k in 0..8u32 {
        let out = agent.handle(NOW, Input::Chunk(&rt.chunk_bytes(k * CHUNK, CHUNK))).unwrap();
        let reqs: Vec<_> =
            out.iter().filter_map(|o| if let Output::RequestChunks(r) = o { Some(*r) } else { None }).collect();
        if k % 2 == 0 {
            assert!(reqs.is_empty(), "chunk {k}: {reqs:?}");
        } else {
            assert_eq!(reqs.len(), 1, "chunk {k}");
            assert_eq!((reqs[0].offset, reqs[0].len), (requested, half), "chunk {k}");
            requested += half;
        }
        let in_flight = requested - (k + 1) * CHUNK;
        assert!((half..=window).contains(&in_flight), "chunk {k}: {in_flight} bytes in flight");
    }
}

#[test]
fn a_redelivered_manifest_restarts_an_interrupted_download() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    agent.handle(NOW, Input::Delivery(&spec.bytes())).unwrap();
    let rt = Runtime::new(&img);
    agent.handle(NOW, Input::Chunk(&rt.chunk_bytes(0, CHUNK))).unwrap();
    // Reboot mid-download: RAM is gone, the state remembers the manifest.
    let mut agent = booted(agent.into_flash());
    assert_eq!(agent.state().downloading, Some(spec.digest()));
    Runtime::new(&img).run(&mut agent, Input::Delivery(&spec.bytes())).unwrap();
    assert_eq!(running_image(&mut agent).0, Version::new(2, 0, 0));
}

#[test]
fn the_same_delivery_during_its_download_changes_nothing() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    agent.handle(NOW, Input::Delivery(&spec.bytes())).unwrap();
    let rt = Runtime::new(&img);
    agent.handle(NOW, Input::Chunk(&rt.chunk_bytes(0, CHUNK))).unwrap();
    let before = agent.state().clone();
    // No second Accepted, no new requests, nothing written: the download carries on.
    let out = agent.handle(NOW, Input::Delivery(&spec.bytes())).unwrap();
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(agent.state(), &before);
    let next = agent.handle(NOW, Input::Chunk(&rt.chunk_bytes(CHUNK, CHUNK))).unwrap();
    assert!(next.iter().any(|o| matches!(o, Output::RequestChunks(_))), "still downloading: {next:?}");
    // A copy with a bit flipped is still checked in full, and refused.
    let mut forged = spec.bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(agent.handle(NOW, Input::Delivery(&forged)).is_err());
}

#[test]
fn pause_stops_requests_and_resume_restarts_them() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    agent.handle(NOW, Input::Delivery(&fleet.firmware(Version::new(2, 0, 0), &img).bytes())).unwrap();
    let cmd = |seq, action| {
        let c = Command { device: DEVICE, sequence: seq, issued_at: NOW, expires_at: NOW + 60, action };
        SignedOwned::sign(Domain::Command, &c, &fleet.release).to_bytes()
    };
    agent.handle(NOW, Input::Command(&cmd(1, CommandAction::Pause))).unwrap();
    let rt = Runtime::new(&img);
    let out = agent.handle(NOW, Input::Chunk(&rt.chunk_bytes(0, CHUNK))).unwrap();
    assert!(!out.iter().any(|o| matches!(o, Output::RequestChunks(_))));
    assert!(agent.handle(NOW + 60, Input::Tick).unwrap().is_empty());
    let out = agent.handle(NOW, Input::Command(&cmd(2, CommandAction::Resume))).unwrap();
    assert!(matches!(out[0], Output::RequestChunks(ChunkRequest { offset: CHUNK, .. })));
}

#[test]
fn revert_command_returns_to_the_previous_approved_image() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    Runtime::new(&img).run(&mut agent, Input::Delivery(&fleet.firmware(Version::new(2, 0, 0), &img).bytes())).unwrap();
    let c =
        Command { device: DEVICE, sequence: 1, issued_at: NOW, expires_at: NOW + 60, action: CommandAction::Revert };
    let bytes = SignedOwned::sign(Domain::Command, &c, &fleet.release).to_bytes();
    let mut rt = Runtime::new(&img);
    rt.run(&mut agent, Input::Command(&bytes)).unwrap();
    assert_eq!(running_image(&mut agent).0, Version::new(1, 0, 0));
    assert!(rt.events().iter().any(|e| matches!(e, Event::Reverted { reason: RevertReason::Command, .. })));
}

#[test]
fn revert_never_goes_below_a_confirmed_security_fix() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    if let Action::Firmware(f) = &mut spec.m.action {
        f.security_counter = 5;
    }
    Runtime::new(&img).run(&mut agent, Input::Delivery(&spec.bytes())).unwrap();
    assert_eq!(agent.state().min_security_counter, 5);
    let c =
        Command { device: DEVICE, sequence: 1, issued_at: NOW, expires_at: NOW + 60, action: CommandAction::Revert };
    let bytes = SignedOwned::sign(Domain::Command, &c, &fleet.release).to_bytes();
    assert_eq!(refusal(agent.handle(NOW, Input::Command(&bytes))), Refusal::SecurityCounterDowngrade);
}

fn config_spec(fleet: &Fleet, version: u32, payload: &'static [u8], sequence: u64) -> ManifestSpec {
    let mut spec = ManifestSpec::new(fleet, Action::Config(Config { version, payload }));
    spec.m.sequence = sequence;
    spec
}

#[test]
fn config_push_applies_on_trial_confirms_and_keeps_the_previous_for_revert() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let mut rt = Runtime::new(&[]);
    rt.run(&mut agent, Input::Delivery(&config_spec(&fleet, 1, b"interval=60", 100).bytes())).unwrap();
    rt.run(&mut agent, Input::Delivery(&config_spec(&fleet, 2, b"interval=5", 101).bytes())).unwrap();
    let active = agent.state().config_active.unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(agent.read_config(active, &mut buf).unwrap(), b"interval=5");
    assert_eq!(agent.status().config, 2);
    let c = Command {
        device: DEVICE,
        sequence: 1,
        issued_at: NOW,
        expires_at: NOW + 60,
        action: CommandAction::RevertConfig,
    };
    let out =
        agent.handle(NOW, Input::Command(&SignedOwned::sign(Domain::Command, &c, &fleet.release).to_bytes())).unwrap();
    let Some(Output::ApplyConfig { slot, testing: false }) =
        out.iter().find(|o| matches!(o, Output::ApplyConfig { .. })).copied()
    else {
        panic!("no apply: {out:?}")
    };
    assert_eq!(agent.read_config(slot, &mut buf).unwrap(), b"interval=60");
    assert_eq!(agent.status().config, 1);
    // The state survives a reboot.
    let agent = booted(agent.into_flash());
    assert_eq!(agent.status().config, 1);
}

#[test]
fn config_that_fails_its_health_check_is_reverted() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let mut rt = Runtime::new(&[]);
    rt.run(&mut agent, Input::Delivery(&config_spec(&fleet, 1, b"good", 100).bytes())).unwrap();
    rt.health = false;
    let bad = config_spec(&fleet, 2, b"bad", 101);
    rt.run(&mut agent, Input::Delivery(&bad.bytes())).unwrap();
    let reverted = Event::ConfigReverted { manifest: Some(bad.digest()), reason: RevertReason::HealthCheckFailed };
    assert!(rt.events().contains(&reverted));
    assert_eq!(agent.status().config, 1);
}

#[test]
fn config_version_not_above_the_active_one_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    Runtime::new(&[]).run(&mut agent, Input::Delivery(&config_spec(&fleet, 5, b"a", 100).bytes())).unwrap();
    let r = agent.handle(NOW, Input::Delivery(&config_spec(&fleet, 5, b"b", 101).bytes()));
    assert_eq!(refusal(r), Refusal::VersionDowngrade);
}

#[test]
fn decommission_wipes_the_identity_from_flash() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let mut spec = ManifestSpec::new(&fleet, Action::Decommission);
    spec.m.tier = Tier::Expert;
    spec.approvers = vec![fleet.approvers[2].clone(), fleet.approvers[0].clone()];
    let out = agent.handle(NOW, Input::Delivery(&spec.bytes())).unwrap();
    assert!(out.contains(&Output::Report(Event::Decommissioned { manifest: spec.digest() })));
    assert!(out.contains(&Output::WipeKeys));
    // The final report can still be signed, then the RAM copy goes too.
    assert!(agent.report(NOW, Event::Decommissioned { manifest: spec.digest() }).is_some());
    agent.forget_identity();
    assert!(agent.identity().is_none());
    let flash = agent.into_flash();
    let seed = [42u8; 32];
    assert!(!flash.bytes().windows(32).any(|w| w == seed), "the device key seed is still in flash");
    let reopened = Agent::open(flash, layout(), Settings::default()).unwrap();
    assert!(reopened.identity().is_none());
    assert!(reopened.state().decommissioned);
}

#[test]
fn decommission_below_the_expert_tier_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let spec = ManifestSpec::new(&fleet, Action::Decommission);
    assert_eq!(refusal(agent.handle(NOW, Input::Delivery(&spec.bytes()))), Refusal::TierBelowFloor);
}

#[test]
fn trust_root_rotation_with_both_thresholds_is_installed_and_persists() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let new: Vec<_> = (4..=6).map(key).collect();
    let mut next = fleet.trust.clone();
    next.version = 2;
    next.root_keys = new.iter().map(public_key).collect();
    let new_release = key(11);
    next.release_keys = heapless::Vec::from_slice(&[public_key(&new_release)]).unwrap();
    let bytes = sign_trust_root(&next, &[&fleet.roots[0], &fleet.roots[2], &new[0], &new[1]]);
    agent.handle(NOW, Input::TrustRoot(&bytes)).unwrap();
    assert_eq!(agent.trust_root().unwrap().version, 2);
    let mut agent = booted(agent.into_flash());
    assert_eq!(agent.trust_root().unwrap().version, 2);
    // The old release key is now unknown; the new one works.
    let img = image(2, 20_000);
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    assert_eq!(refusal(agent.handle(NOW, Input::Delivery(&spec.bytes()))), Refusal::UnknownKey);
    let mut spec = spec;
    spec.release = new_release;
    agent.handle(NOW, Input::Delivery(&spec.bytes())).unwrap();
}

#[test]
fn inputs_before_the_first_boot_are_refused() {
    let fleet = Fleet::new();
    let mut agent = Agent::open(provisioned(&fleet, &identity()), layout(), Settings::default()).unwrap();
    assert_eq!(agent.handle(NOW, Input::Tick), Err(crate::Error::NotBooted));
}

#[test]
fn an_unprovisioned_flash_does_not_open() {
    let flash = crate::mem_flash::MemFlash::new(layout().end() as usize);
    assert!(matches!(Agent::open(flash, layout(), Settings::default()), Err(crate::Error::NotProvisioned)));
}

#[test]
fn reports_count_up_within_a_boot_and_across_boots() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let a = agent.report(NOW, Event::Status(agent.status())).unwrap().counter;
    let b = agent.report(NOW, Event::Status(agent.status())).unwrap().counter;
    let mut agent = booted(agent.into_flash());
    let c = agent.report(NOW, Event::Status(agent.status())).unwrap().counter;
    assert!(a < b && b < c, "{a} {b} {c}");
}

#[test]
fn a_late_duplicate_chunk_of_the_installed_image_is_dropped_quietly() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut agent = device(&fleet);
    let rt = Runtime::new(&img);
    Runtime::new(&img).run(&mut agent, Input::Delivery(&fleet.firmware(Version::new(2, 0, 0), &img).bytes())).unwrap();
    let late = agent.handle(NOW, Input::Chunk(&rt.chunk_bytes(3 * CHUNK, CHUNK))).unwrap();
    assert!(late.is_empty());
    assert_eq!(running_image(&mut agent).0, Version::new(2, 0, 0));
}
