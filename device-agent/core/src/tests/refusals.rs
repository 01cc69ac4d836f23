//! One test per refusal reason. Each asserts the exact reason and that the flash is untouched.

use super::fixture::*;
use crate::mem_flash::MemFlash;
use crate::{Agent, Input};
use airlock_proto::build::{approve, sign_trust_root, SignedOwned};
use airlock_proto::sig::public_key;
use airlock_proto::*;

/// Delivers `bytes` to a fresh device and returns the refusal, checking nothing was written.
fn refused_delivery(fleet: &Fleet, bytes: &[u8]) -> Refusal {
    let mut agent = device(fleet);
    refused_on(&mut agent, Input::Delivery(bytes))
}

fn refused_on(agent: &mut Agent<MemFlash>, input: Input<'_>) -> Refusal {
    let before = agent.flash_mut().bytes().to_vec();
    let ops = agent.flash_mut().ops();
    let state = agent.state().clone();
    let r = refusal(agent.handle(NOW, input));
    assert_eq!(agent.flash_mut().ops(), ops, "a refusal must not write");
    assert!(agent.flash_mut().bytes() == before.as_slice(), "a refusal must not change flash");
    assert_eq!(agent.state(), &state, "a refusal must not change state");
    r
}

fn v2() -> (Fleet, Vec<u8>) {
    (Fleet::new(), image(2, 20_000))
}

#[test]
fn the_valid_delivery_used_by_these_tests_is_accepted() {
    let (fleet, img) = v2();
    let mut agent = device(&fleet);
    let out = agent.handle(NOW, Input::Delivery(&fleet.firmware(Version::new(2, 0, 0), &img).bytes())).unwrap();
    assert!(matches!(out[0], crate::Output::Report(Event::Accepted { .. })));
}

#[test]
fn garbage_is_refused_as_malformed() {
    let fleet = Fleet::new();
    assert_eq!(refused_delivery(&fleet, &[0xFF; 40]), Refusal::Malformed);
    assert_eq!(refused_delivery(&fleet, &[]), Refusal::Malformed);
}

#[test]
fn trailing_bytes_are_refused_as_malformed() {
    let (fleet, img) = v2();
    let mut bytes = fleet.firmware(Version::new(2, 0, 0), &img).bytes();
    bytes.push(0);
    assert_eq!(refused_delivery(&fleet, &bytes), Refusal::Malformed);
}

#[test]
fn manifest_signed_by_unknown_key_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.release = key(99);
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::UnknownKey);
}

#[test]
fn manifest_signed_by_an_approver_instead_of_a_release_key_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.release = fleet.approvers[0].clone();
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::UnknownKey);
}

#[test]
fn manifest_with_a_forged_signature_is_refused() {
    let (fleet, img) = v2();
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    let mut signed = spec.signed();
    // The attacker swaps the body for one with a wider cohort but keeps the old signature.
    let mut m: Manifest<'_> = decode(&signed.body).unwrap();
    m.cohort.size = 4;
    signed.body = airlock_proto::codec::encode(&m);
    let approvals = spec.approvals(&signed);
    assert_eq!(refused_delivery(&fleet, &spec.bytes_with(&signed, &approvals)), Refusal::BadSignature);
}

#[test]
fn manifest_signed_with_another_domain_is_refused() {
    let (fleet, img) = v2();
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    let good = spec.signed();
    let cross = SignedOwned::sign(Domain::Command, &decode::<Manifest<'_>>(&good.body).unwrap(), &fleet.release);
    let approvals = spec.approvals(&cross);
    assert_eq!(refused_delivery(&fleet, &spec.bytes_with(&cross, &approvals)), Refusal::BadSignature);
}

#[test]
fn delivery_under_an_expired_trust_root_is_refused() {
    let (fleet, img) = v2();
    let mut agent = device(&fleet);
    let bytes = fleet.firmware(Version::new(2, 0, 0), &img).bytes();
    let later = fleet.trust.expires_at + 1;
    let before = agent.state().clone();
    assert_eq!(refusal(agent.handle(later, Input::Delivery(&bytes))), Refusal::TrustRootExpired);
    assert_eq!(agent.state(), &before);
}

#[test]
fn expired_manifest_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.issued_at = NOW - 7200;
    spec.m.expires_at = NOW - 1;
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::Expired);
}

#[test]
fn replayed_manifest_is_refused() {
    let (fleet, img) = v2();
    let mut agent = device(&fleet);
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    Runtime::new(&img).run(&mut agent, Input::Delivery(&spec.bytes())).unwrap();
    assert_eq!(running_image(&mut agent).0, Version::new(2, 0, 0));
    // The very same bytes again, and an older sequence with a newer version.
    assert_eq!(refused_on(&mut agent, Input::Delivery(&spec.bytes())), Refusal::Replay);
    let mut older = fleet.firmware(Version::new(3, 0, 0), &img);
    older.m.sequence = 99;
    assert_eq!(refused_on(&mut agent, Input::Delivery(&older.bytes())), Refusal::Replay);
}

#[test]
fn device_outside_the_cohort_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.cohort = vec!["dev-0000".into(), "dev-0001".into()];
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::NotInCohort);
}

#[test]
fn understated_cohort_size_is_refused() {
    // The tree holds 5 devices; claiming 3 would dodge a size floor. The device at index 3
    // cannot prove membership in a 3-leaf tree.
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.declared_size = Some(3);
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::NotInCohort);
}

#[test]
fn firmware_for_other_hardware_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    if let Action::Firmware(f) = &mut spec.m.action {
        f.hardware = "other-board";
    }
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::WrongHardware);
}

#[test]
fn tier_below_the_floor_for_a_missing_rollback_plan_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.rollback = Rollback::None;
    spec.m.tier = Tier::AutoPass;
    spec.approvers.clear();
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::TierBelowFloor);
}

#[test]
fn security_change_tiered_single_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.security = true;
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::TierBelowFloor);
}

#[test]
fn large_cohort_tiered_below_its_size_floor_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    let mut cohort: Vec<String> = (0..1000).map(|i| format!("dev-{i:04}")).collect();
    cohort.sort();
    spec.cohort = cohort;
    spec.m.tier = Tier::Single;
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::TierBelowFloor);
}

#[test]
fn device_with_its_own_floor_refuses_auto_pass() {
    let (fleet, img) = v2();
    let mut id = identity();
    id.min_tier = Tier::Single;
    let mut agent = booted(provisioned(&fleet, &id));
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.tier = Tier::AutoPass;
    spec.approvers.clear();
    assert_eq!(refused_on(&mut agent, Input::Delivery(&spec.bytes())), Refusal::TierBelowFloor);
}

#[test]
fn blocked_tier_is_refused_whatever_its_approvals() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.tier = Tier::Blocked;
    spec.approvers = fleet.approvers[..3].to_vec();
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::TierBlocked);
}

#[test]
fn two_person_tier_with_one_approval_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.tier = Tier::TwoPerson;
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::QuorumShort);
}

#[test]
fn approval_stripped_delivery_is_refused() {
    let (fleet, img) = v2();
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    let signed = spec.signed();
    assert_eq!(refused_delivery(&fleet, &spec.bytes_with(&signed, &[])), Refusal::QuorumShort);
}

#[test]
fn expert_tier_without_an_expert_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.tier = Tier::Expert;
    spec.approvers = fleet.approvers[..2].to_vec();
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::MissingRole);
}

#[test]
fn requester_among_the_approvers_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.requester = public_key(&fleet.approvers[0]);
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::RequesterApproved);
}

#[test]
fn the_same_approver_twice_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.tier = Tier::TwoPerson;
    spec.approvers = vec![fleet.approvers[0].clone(), fleet.approvers[0].clone()];
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::DuplicateApprover);
}

#[test]
fn approval_by_a_key_off_the_roster_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.approvers = vec![key(99)];
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::UnknownApprover);
}

#[test]
fn approval_of_another_manifest_is_refused() {
    let (fleet, img) = v2();
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    let signed = spec.signed();
    let wrong = approve(Digest::from([1; 32]), Decision::Approve, &fleet.approvers[0]);
    assert_eq!(refused_delivery(&fleet, &spec.bytes_with(&signed, &[wrong])), Refusal::BadApprovalSignature);
}

#[test]
fn approval_with_its_decision_flipped_is_refused() {
    let (fleet, img) = v2();
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    let signed = spec.signed();
    let mut a = approve(manifest_digest(&signed.body), Decision::Reject, &fleet.approvers[0]);
    a.decision = Decision::Approve;
    assert_eq!(refused_delivery(&fleet, &spec.bytes_with(&signed, &[a])), Refusal::BadApprovalSignature);
}

#[test]
fn a_signed_rejection_refuses_the_delivery() {
    let (fleet, img) = v2();
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    let signed = spec.signed();
    let digest = manifest_digest(&signed.body);
    let approvals = [
        approve(digest, Decision::Approve, &fleet.approvers[0]),
        approve(digest, Decision::Reject, &fleet.approvers[1]),
    ];
    assert_eq!(refused_delivery(&fleet, &spec.bytes_with(&signed, &approvals)), Refusal::RejectedByApprover);
}

#[test]
fn older_firmware_version_is_refused() {
    let (fleet, img) = v2();
    let spec = fleet.firmware(Version::new(0, 9, 0), &img);
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::VersionDowngrade);
    let same = fleet.firmware(Version::new(1, 0, 0), &img);
    assert_eq!(refused_delivery(&fleet, &same.bytes()), Refusal::VersionDowngrade);
}

#[test]
fn security_counter_below_the_minimum_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    if let Action::Firmware(f) = &mut spec.m.action {
        f.security_counter = 0;
    }
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::SecurityCounterDowngrade);
}

#[test]
fn image_larger_than_the_slot_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    if let Action::Firmware(f) = &mut spec.m.action {
        f.image_size = SLOT + 1;
    }
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::ImageTooLarge);
}

#[test]
fn more_data_than_the_manifest_declares_is_refused() {
    let (fleet, img) = v2();
    let mut agent = device(&fleet);
    // The manifest declares 20,000 bytes; the sender streams a longer image with the same digest
    // field, so the last chunk runs past the declared end.
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    agent.handle(NOW, Input::Delivery(&spec.bytes())).unwrap();
    let rt = Runtime::new(&img);
    for off in (0..19 * CHUNK).step_by(CHUNK as usize) {
        agent.handle(NOW, Input::Chunk(&rt.chunk_bytes(off, CHUNK))).unwrap();
    }
    let mut long = img[19 * CHUNK as usize..].to_vec();
    long.extend_from_slice(&[0xAA; 200]);
    let chunk = Chunk { image: sha256(&img), offset: 19 * CHUNK, data: &long };
    let r = agent.handle(NOW, Input::Chunk(&postcard::to_allocvec(&chunk).unwrap()));
    assert_eq!(refusal(r), Refusal::ImageTooLarge);
    assert_eq!(agent.state().trial, None, "nothing became bootable");
    assert_eq!(agent.state().downloading, None, "the download is abandoned");
}

#[test]
fn image_that_does_not_match_its_digest_is_refused_and_never_bootable() {
    let (fleet, img) = v2();
    let mut agent = device(&fleet);
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    let mut evil = img.clone();
    evil[12_345] ^= 1;
    let mut rt = Runtime::new(&evil);
    // The runtime serves chunks of the tampered image under the manifest's image digest.
    let out = agent.handle(NOW, Input::Delivery(&spec.bytes())).unwrap();
    assert!(!out.is_empty());
    let mut last = Ok(crate::Outputs::new());
    for off in (0..img.len() as u32).step_by(CHUNK as usize) {
        let end = (off as usize + CHUNK as usize).min(evil.len());
        let c = Chunk { image: sha256(&img), offset: off, data: &evil[off as usize..end] };
        last = agent.handle(NOW, Input::Chunk(&postcard::to_allocvec(&c).unwrap()));
    }
    assert_eq!(refusal(last), Refusal::DigestMismatch);
    assert_eq!(agent.state().slots[1], None);
    assert_eq!(agent.state().trial, None);
    rt.image = &img;
    // A reboot still runs the factory image.
    agent.handle(NOW, Input::Boot).unwrap();
    assert_eq!(running_image(&mut agent).0, Version::new(1, 0, 0));
}

#[test]
fn break_glass_over_its_cohort_cap_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.break_glass = true;
    spec.approvers = vec![fleet.approvers[3].clone()];
    let mut cohort: Vec<String> = (0..11).map(|i| format!("dev-{i:04}")).collect();
    cohort.sort();
    spec.cohort = cohort;
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::BreakGlassCap);
}

#[test]
fn break_glass_over_its_lifetime_cap_is_refused() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.break_glass = true;
    spec.approvers = vec![fleet.approvers[3].clone()];
    spec.m.expires_at = spec.m.issued_at + 3601;
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::BreakGlassCap);
}

#[test]
fn break_glass_within_its_caps_needs_its_role_and_is_accepted_with_it() {
    let (fleet, img) = v2();
    let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
    spec.m.break_glass = true;
    spec.m.security = true;
    spec.m.expires_at = spec.m.issued_at + 3600;
    assert_eq!(refused_delivery(&fleet, &spec.bytes()), Refusal::MissingRole);
    spec.approvers = vec![fleet.approvers[3].clone()];
    let mut agent = device(&fleet);
    agent.handle(NOW, Input::Delivery(&spec.bytes())).unwrap();
}

#[test]
fn chunk_with_no_update_in_progress_is_refused() {
    let (fleet, img) = v2();
    let mut agent = device(&fleet);
    let c = Runtime::new(&img).chunk_bytes(0, CHUNK);
    assert_eq!(refused_on(&mut agent, Input::Chunk(&c)), Refusal::UnexpectedChunk);
}

#[test]
fn chunk_of_another_image_is_refused() {
    let (fleet, img) = v2();
    let mut agent = device(&fleet);
    agent.handle(NOW, Input::Delivery(&fleet.firmware(Version::new(2, 0, 0), &img).bytes())).unwrap();
    let other = image(9, 4000);
    let c = Runtime::new(&other).chunk_bytes(0, CHUNK);
    assert_eq!(refusal(agent.handle(NOW, Input::Chunk(&c))), Refusal::UnexpectedChunk);
}

#[test]
fn delivery_during_a_test_boot_is_refused_as_busy() {
    let (fleet, img) = v2();
    let mut agent = device(&fleet);
    let mut rt = Runtime::new(&img);
    rt.health = true;
    // Stop right after the install: deliver and stream, but do not reboot.
    let spec = fleet.firmware(Version::new(2, 0, 0), &img);
    agent.handle(NOW, Input::Delivery(&spec.bytes())).unwrap();
    for off in (0..img.len() as u32).step_by(CHUNK as usize) {
        agent.handle(NOW, Input::Chunk(&rt.chunk_bytes(off, CHUNK))).unwrap();
    }
    agent.handle(NOW, Input::Boot).unwrap();
    let mut next = fleet.firmware(Version::new(3, 0, 0), &img);
    next.m.sequence = 101;
    assert_eq!(refused_on(&mut agent, Input::Delivery(&next.bytes())), Refusal::Busy);
}

#[test]
fn decommissioned_device_refuses_everything() {
    let (fleet, img) = v2();
    let mut agent = device(&fleet);
    let mut spec = ManifestSpec::new(&fleet, Action::Decommission);
    spec.m.tier = Tier::Expert;
    spec.approvers = vec![fleet.approvers[2].clone(), fleet.approvers[0].clone()];
    agent.handle(NOW, Input::Delivery(&spec.bytes())).unwrap();
    let mut next = fleet.firmware(Version::new(2, 0, 0), &img);
    next.m.sequence = 200;
    assert_eq!(refused_on(&mut agent, Input::Delivery(&next.bytes())), Refusal::Decommissioned);
}

// ---- commands ----

fn command(fleet: &Fleet, device: &'static str, sequence: u64, action: CommandAction) -> Vec<u8> {
    let c = Command { device, sequence, issued_at: NOW - 10, expires_at: NOW + 600, action };
    SignedOwned::sign(Domain::Command, &c, &fleet.release).to_bytes()
}

#[test]
fn command_for_another_device_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let c = command(&fleet, "dev-0004", 1, CommandAction::Status);
    assert_eq!(refused_on(&mut agent, Input::Command(&c)), Refusal::WrongDevice);
}

#[test]
fn replayed_command_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let c = command(&fleet, DEVICE, 5, CommandAction::Status);
    agent.handle(NOW, Input::Command(&c)).unwrap();
    assert_eq!(refused_on(&mut agent, Input::Command(&c)), Refusal::Replay);
}

#[test]
fn command_signed_by_an_unknown_key_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let c =
        Command { device: DEVICE, sequence: 1, issued_at: NOW, expires_at: NOW + 60, action: CommandAction::Revert };
    let bytes = SignedOwned::sign(Domain::Command, &c, &key(99)).to_bytes();
    assert_eq!(refused_on(&mut agent, Input::Command(&bytes)), Refusal::UnknownKey);
}

#[test]
fn expired_command_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let c = Command {
        device: DEVICE,
        sequence: 1,
        issued_at: NOW - 100,
        expires_at: NOW - 1,
        action: CommandAction::Status,
    };
    let bytes = SignedOwned::sign(Domain::Command, &c, &fleet.release).to_bytes();
    assert_eq!(refused_on(&mut agent, Input::Command(&bytes)), Refusal::Expired);
}

#[test]
fn revert_with_nothing_to_revert_to_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let c = command(&fleet, DEVICE, 1, CommandAction::Revert);
    assert_eq!(refused_on(&mut agent, Input::Command(&c)), Refusal::NothingToRevert);
    let c = command(&fleet, DEVICE, 2, CommandAction::RevertConfig);
    assert_eq!(refused_on(&mut agent, Input::Command(&c)), Refusal::NothingToRevert);
}

// ---- trust root rotation ----

fn rotated(fleet: &Fleet, version: u32, signers: &[&ed25519_dalek::SigningKey]) -> Vec<u8> {
    let mut next = fleet.trust.clone();
    next.version = version;
    sign_trust_root(&next, signers)
}

#[test]
fn rotation_without_the_old_threshold_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let mut next = fleet.trust.clone();
    next.version = 2;
    // New root keys 4, 5, 6 sign; of the old ones only one does.
    let new: Vec<_> = (4..=6).map(key).collect();
    next.root_keys = new.iter().map(public_key).collect();
    let bytes = sign_trust_root(&next, &[&fleet.roots[0], &new[0], &new[1]]);
    assert_eq!(refused_on(&mut agent, Input::TrustRoot(&bytes)), Refusal::TrustRootThreshold);
}

#[test]
fn rotation_without_its_own_threshold_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let mut next = fleet.trust.clone();
    next.version = 2;
    let new: Vec<_> = (4..=6).map(key).collect();
    next.root_keys = new.iter().map(public_key).collect();
    let bytes = sign_trust_root(&next, &[&fleet.roots[0], &fleet.roots[1], &new[0]]);
    assert_eq!(refused_on(&mut agent, Input::TrustRoot(&bytes)), Refusal::TrustRootThreshold);
}

#[test]
fn rotation_to_an_older_or_equal_version_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let bytes = rotated(&fleet, 1, &[&fleet.roots[0], &fleet.roots[1]]);
    assert_eq!(refused_on(&mut agent, Input::TrustRoot(&bytes)), Refusal::TrustRootNotNewer);
}

#[test]
fn rotation_to_an_expired_root_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let mut next = fleet.trust.clone();
    next.version = 2;
    next.expires_at = NOW - 1;
    let bytes = sign_trust_root(&next, &[&fleet.roots[0], &fleet.roots[1]]);
    assert_eq!(refused_on(&mut agent, Input::TrustRoot(&bytes)), Refusal::TrustRootExpired);
}

#[test]
fn rotation_signed_by_a_stranger_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let bytes = rotated(&fleet, 2, &[&fleet.roots[0], &key(99)]);
    assert_eq!(refused_on(&mut agent, Input::TrustRoot(&bytes)), Refusal::UnknownKey);
}

#[test]
fn rotation_with_a_forged_signature_is_refused() {
    let fleet = Fleet::new();
    let mut agent = device(&fleet);
    let mut bytes = rotated(&fleet, 2, &[&fleet.roots[0], &fleet.roots[1]]);
    let n = bytes.len();
    bytes[n - 5] ^= 0x10;
    assert_eq!(refused_on(&mut agent, Input::TrustRoot(&bytes)), Refusal::BadSignature);
}

#[test]
fn a_chunk_size_above_what_the_device_can_receive_is_refused() {
    let (fleet, img) = v2();
    let settings = crate::Settings { max_chunk: 512, ..crate::Settings::default() };
    let mut agent = Agent::open(provisioned(&fleet, &identity()), layout(), settings).unwrap();
    agent.handle(NOW, Input::Boot).unwrap();
    let spec = fleet.firmware(Version::new(2, 0, 0), &img); // chunk size 1024
    assert_eq!(refused_on(&mut agent, Input::Delivery(&spec.bytes())), Refusal::ChunkTooLarge);
}
