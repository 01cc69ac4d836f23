//! Every refusal proto can produce on its own, each asserted as the exact variant, next to the
//! valid case it departs from; and the cohort Merkle tree against an independent RFC 6962 model.
// Test code: a panic is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use airlock_proto::build::SignedOwned;
use airlock_proto::codec::encode;
use airlock_proto::limits::{MAX_APPROVALS, MAX_CHUNK, MAX_CONFIG, MAX_DEVICE_ID};
use airlock_proto::merkle::tree::CohortTree;
use airlock_proto::{
    check_device_id, check_quorum, decode, manifest_digest, Action, Approval, Bytes, Chunk, Cohort, Command, Config,
    Decision, Delivery, Digest, Domain, Firmware, InclusionProof, Manifest, PublicKey, Refusal, Report, Rollback,
    Signature, Signed, SignedTrustRoot, Tier, TrustRoot,
};
use common::*;
use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------------------------------------
// Helpers

/// `check_quorum` for `m` with approvals by `seeds`, against TrustRoot v1 and the given floor.
fn quorum_with_floor(m: &Manifest<'_>, seeds: &[u8], floor: Tier) -> Result<(), Refusal> {
    let digest = manifest_digest(&encode(m));
    check_quorum(&trust_root(), m, digest, &approvals_by(digest, seeds), floor)
}

fn quorum(m: &Manifest<'_>, seeds: &[u8]) -> Result<(), Refusal> {
    quorum_with_floor(m, seeds, Tier::AutoPass)
}

fn with_cohort_size(m: Manifest<'static>, size: u32) -> Manifest<'static> {
    Manifest { cohort: Cohort { size, ..m.cohort }, ..m }
}

/// A break-glass firmware manifest within the caps of [`common::rules`].
fn break_glass() -> Manifest<'static> {
    let m = firmware_manifest();
    Manifest { break_glass: true, expires_at: m.issued_at + 3_600, ..m }
}

fn decode_manifest(m: &Manifest<'_>) -> Result<(), Refusal> {
    let bytes = encode(m);
    decode::<Manifest<'_>>(&bytes).map(|_| ())
}

fn decode_command(c: &Command<'_>) -> Result<(), Refusal> {
    let bytes = encode(c);
    decode::<Command<'_>>(&bytes).map(|_| ())
}

fn decode_root(r: &TrustRoot) -> Result<(), Refusal> {
    decode::<TrustRoot>(&encode(r)).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Signatures: UnknownKey, BadSignature

#[test]
fn manifest_signed_by_the_release_key_is_accepted() {
    let signed = sign_manifest(&firmware_manifest());
    assert_eq!(signed.as_signed().verify_by(Domain::Manifest, &trust_root().release_keys), Ok(&signed.body[..]));
}

#[test]
fn manifest_signed_by_unknown_key_is_refused() {
    let signed = SignedOwned::sign(Domain::Manifest, &firmware_manifest(), &key(OUTSIDER_SEED));
    assert_eq!(signed.as_signed().verify_by(Domain::Manifest, &trust_root().release_keys), Err(Refusal::UnknownKey));
}

#[test]
fn manifest_signed_by_an_approver_instead_of_a_release_key_is_refused() {
    let signed = SignedOwned::sign(Domain::Manifest, &firmware_manifest(), &key(ALICE));
    assert_eq!(signed.as_signed().verify_by(Domain::Manifest, &trust_root().release_keys), Err(Refusal::UnknownKey));
}

#[test]
fn manifest_whose_body_changed_after_signing_is_refused() {
    let mut signed = sign_manifest(&firmware_manifest());
    signed.body[3] ^= 0x01; // the sequence number: 7 becomes 6
    assert_eq!(signed.as_signed().verify_by(Domain::Manifest, &trust_root().release_keys), Err(Refusal::BadSignature));
}

#[test]
fn manifest_signature_by_another_key_than_its_signer_field_is_refused() {
    let mut signed = SignedOwned::sign(Domain::Manifest, &firmware_manifest(), &key(OUTSIDER_SEED));
    signed.signer = pk(RELEASE_SEED);
    assert_eq!(signed.as_signed().verify_by(Domain::Manifest, &trust_root().release_keys), Err(Refusal::BadSignature));
}

#[test]
fn signature_made_for_another_domain_is_refused() {
    // The release key signs commands too: a command signature must never pass as a manifest one.
    let body = encode(&firmware_manifest());
    let signature = airlock_proto::sig::sign(Domain::Command, &body, &key(RELEASE_SEED));
    let s = Signed { body: &body, signer: pk(RELEASE_SEED), signature };
    assert_eq!(s.verify_by(Domain::Command, &trust_root().release_keys), Ok(&body[..]));
    assert_eq!(s.verify_by(Domain::Manifest, &trust_root().release_keys), Err(Refusal::BadSignature));
}

/// The Ed25519 group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

#[test]
fn signature_with_a_non_canonical_s_is_refused() {
    // (R, S + L) satisfies the verification equation of the original RFC 8032 paper; the strict
    // check refuses S >= L, so a signature has exactly one encoding.
    let signed = sign_manifest(&firmware_manifest());
    let mut sig = signed.signature.0;
    let mut carry = 0u16;
    for (s, l) in sig[32..].iter_mut().zip(L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    let s = Signed { signature: Signature::from(sig), ..signed.as_signed() };
    assert_eq!(s.verify_by(Domain::Manifest, &trust_root().release_keys), Err(Refusal::BadSignature));
}

#[test]
fn signature_by_a_small_order_key_is_refused() {
    // With A = the identity point, (R = identity, S = 0) satisfies [S]B = R + [k]A for every
    // message: only the weak-key check stands between this and a universal forgery.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = PublicKey::from(identity);
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let body = encode(&firmware_manifest());
    let s = Signed { body: &body, signer: weak, signature: Signature::from(sig) };
    assert_eq!(s.verify_by(Domain::Manifest, &[weak]), Err(Refusal::BadSignature));
}

#[test]
fn signature_under_a_public_key_that_is_not_a_curve_point_is_refused() {
    let signed = sign_manifest(&firmware_manifest());
    // The smallest y with no x on edwards25519: these bytes decode to no point.
    let bad = (2u8..)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            b
        })
        .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
        .unwrap();
    let bad = PublicKey::from(bad);
    let s = Signed { signer: bad, ..signed.as_signed() };
    assert_eq!(s.verify_by(Domain::Manifest, &[bad]), Err(Refusal::BadSignature));
}

// ---------------------------------------------------------------------------------------------
// TrustRoot: TrustRootThreshold, TrustRootNotNewer, TrustRootExpired, UnknownKey

#[test]
fn initial_trust_root_signed_by_two_of_three_root_keys_is_accepted() {
    assert_eq!(accept_initial(&signed_trust_root(), NOW), Ok(trust_root()));
}

#[test]
fn initial_trust_root_with_one_signature_of_two_needed_is_refused() {
    let bytes = sign_root(&trust_root(), &[0x01]);
    assert_eq!(accept_initial(&bytes, NOW), Err(Refusal::TrustRootThreshold));
}

#[test]
fn initial_trust_root_signed_by_a_foreign_key_is_refused() {
    let bytes = sign_root(&trust_root(), &[0x01, 0x04]);
    assert_eq!(accept_initial(&bytes, NOW), Err(Refusal::UnknownKey));
}

#[test]
fn initial_trust_root_with_an_extra_foreign_signature_is_refused() {
    // At provisioning every signature must be by the root's own keys: a signature nobody checks
    // would make a bit flip in it go unnoticed.
    let bytes = sign_root(&trust_root(), &[0x01, OUTSIDER_SEED, 0x02]);
    assert_eq!(accept_initial(&bytes, NOW), Err(Refusal::UnknownKey));
}

#[test]
fn stored_trust_root_is_rechecked_whatever_its_expiry() {
    let bytes = signed_trust_root();
    let s: SignedTrustRoot<'_> = decode(&bytes).unwrap();
    assert_eq!(s.verify_self(), Ok(trust_root()));
    // A rotated root carries its predecessor's signature (0x01), which the re-check skips.
    let bytes = signed_rotation();
    let s: SignedTrustRoot<'_> = decode(&bytes).unwrap();
    assert_eq!(s.verify_self(), Ok(next_trust_root()));
}

#[test]
fn stored_trust_root_short_of_its_own_threshold_is_refused() {
    // Signed by 0x01 (old only) and 0x03: one signature of v2's own keys.
    let bytes = sign_root(&next_trust_root(), &[0x01, 0x03]);
    let s: SignedTrustRoot<'_> = decode(&bytes).unwrap();
    assert_eq!(s.verify_self(), Err(Refusal::TrustRootThreshold));
}

#[test]
fn initial_trust_root_with_a_forged_root_signature_is_refused() {
    let bytes = signed_trust_root();
    let mut s: SignedTrustRoot<'_> = decode(&bytes).unwrap();
    s.signatures[1].signature.0[10] ^= 0x40;
    assert_eq!(accept_initial(&encode(&s), NOW), Err(Refusal::BadSignature));
}

#[test]
fn trust_root_signed_twice_by_the_same_key_is_refused() {
    let bytes = sign_root(&trust_root(), &[0x01, 0x01]);
    assert_eq!(accept_initial(&bytes, NOW), Err(Refusal::Malformed));
}

#[test]
fn trust_root_is_accepted_until_the_second_before_it_expires() {
    let expires = trust_root().expires_at;
    assert_eq!(accept_initial(&signed_trust_root(), expires - 1), Ok(trust_root()));
}

#[test]
fn trust_root_at_its_expiry_is_refused() {
    let expires = trust_root().expires_at;
    assert_eq!(accept_initial(&signed_trust_root(), expires), Err(Refusal::TrustRootExpired));
}

#[test]
fn rotation_signed_by_thresholds_of_old_and_new_root_keys_is_accepted() {
    assert_eq!(accept_rotation(&signed_rotation(), &trust_root(), NOW), Ok(next_trust_root()));
}

#[test]
fn rotation_without_a_threshold_of_the_old_root_keys_is_refused() {
    // 0x03 is in both roots, 0x04 only in the new one: one old signature of two needed.
    let bytes = sign_root(&next_trust_root(), &[0x03, 0x04]);
    assert_eq!(accept_rotation(&bytes, &trust_root(), NOW), Err(Refusal::TrustRootThreshold));
}

#[test]
fn rotation_without_a_threshold_of_its_own_root_keys_is_refused() {
    // 0x01 is only in the old root: one new signature (0x02) of two needed.
    let bytes = sign_root(&next_trust_root(), &[0x01, 0x02]);
    assert_eq!(accept_rotation(&bytes, &trust_root(), NOW), Err(Refusal::TrustRootThreshold));
}

#[test]
fn rotation_signed_by_a_key_in_neither_root_is_refused() {
    let bytes = sign_root(&next_trust_root(), &[0x01, 0x03, 0x04, OUTSIDER_SEED]);
    assert_eq!(accept_rotation(&bytes, &trust_root(), NOW), Err(Refusal::UnknownKey));
}

#[test]
fn rotation_to_the_same_version_is_refused() {
    let same = TrustRoot { version: 1, ..next_trust_root() };
    let bytes = sign_root(&same, &ROTATION_SIGNERS);
    assert_eq!(accept_rotation(&bytes, &trust_root(), NOW), Err(Refusal::TrustRootNotNewer));
}

#[test]
fn rotation_to_an_older_version_is_refused() {
    let current = TrustRoot { version: 5, ..trust_root() };
    let bytes = sign_root(&next_trust_root(), &ROTATION_SIGNERS);
    assert_eq!(accept_rotation(&bytes, &current, NOW), Err(Refusal::TrustRootNotNewer));
}

#[test]
fn rotation_to_an_expired_root_is_refused() {
    let expires = next_trust_root().expires_at;
    assert_eq!(accept_rotation(&signed_rotation(), &trust_root(), expires), Err(Refusal::TrustRootExpired));
}

// ---------------------------------------------------------------------------------------------
// Cohort: NotInCohort

#[test]
fn every_cohort_member_proves_its_membership() {
    let tree = cohort_tree();
    for (i, id) in COHORT.iter().enumerate() {
        let p = tree.proof(i).unwrap();
        assert_eq!(p.verify(id.as_bytes(), tree.size(), &tree.root()), Ok(()), "{id}");
    }
}

#[test]
fn proof_at_the_wrong_index_is_refused() {
    let tree = cohort_tree();
    let mut p = device_proof();
    for wrong in (0..8).filter(|i| *i != DEVICE_INDEX as u32) {
        p.index = wrong;
        assert_eq!(p.verify(DEVICE.as_bytes(), tree.size(), &tree.root()), Err(Refusal::NotInCohort), "index {wrong}");
    }
}

#[test]
fn proof_against_an_understated_cohort_size_is_refused() {
    let tree = cohort_tree();
    for (i, id) in COHORT.iter().enumerate() {
        let p = tree.proof(i).unwrap();
        for size in 0..tree.size() {
            assert_eq!(p.verify(id.as_bytes(), size, &tree.root()), Err(Refusal::NotInCohort), "{id} at size {size}");
        }
    }
}

#[test]
fn proof_against_another_cohort_root_is_refused() {
    let other = CohortTree::new(&["dev-000", "dev-001", "dev-002", "dev-003", "dev-005"]);
    assert_eq!(device_proof().verify(DEVICE.as_bytes(), 5, &other.root()), Err(Refusal::NotInCohort));
}

#[test]
fn proof_presented_by_another_device_is_refused() {
    let tree = cohort_tree();
    assert_eq!(device_proof().verify(b"dev-003", tree.size(), &tree.root()), Err(Refusal::NotInCohort));
}

#[test]
fn proof_with_an_index_past_the_cohort_is_refused() {
    let tree = cohort_tree();
    let p = InclusionProof { index: 5, ..tree.proof(4).unwrap() };
    assert_eq!(p.verify(b"dev-004", 5, &tree.root()), Err(Refusal::NotInCohort));
    let p = InclusionProof { index: u32::MAX, ..tree.proof(4).unwrap() };
    assert_eq!(p.verify(b"dev-004", u32::MAX, &tree.root()), Err(Refusal::NotInCohort));
}

#[test]
fn proof_with_an_extra_or_a_missing_hash_is_refused() {
    let tree = cohort_tree();
    let mut longer = device_proof();
    longer.path.push(tree.root()).unwrap();
    assert_eq!(longer.verify(DEVICE.as_bytes(), 5, &tree.root()), Err(Refusal::NotInCohort));
    let mut shorter = device_proof();
    shorter.path.pop();
    assert_eq!(shorter.verify(DEVICE.as_bytes(), 5, &tree.root()), Err(Refusal::NotInCohort));
}

#[test]
fn delivery_to_a_device_outside_the_cohort_is_refused() {
    assert_eq!(accept_delivery(&delivery(), &trust_root(), "dev-005", Tier::AutoPass), Err(Refusal::NotInCohort));
}

// ---------------------------------------------------------------------------------------------
// Tiers and quorum

#[test]
fn firmware_delivery_with_two_approvals_is_accepted() {
    assert_eq!(accept_delivery(&delivery(), &trust_root(), DEVICE, Tier::AutoPass), Ok(()));
}

#[test]
fn every_fixture_manifest_meets_its_quorum() {
    assert_eq!(quorum(&firmware_manifest(), &[ALICE, BOB]), Ok(()));
    assert_eq!(quorum(&config_manifest(), &[CAROL]), Ok(()));
    assert_eq!(quorum(&decommission_manifest(), &[ALICE, BOB]), Ok(()));
}

#[test]
fn security_manifest_declared_below_two_person_is_refused() {
    let m = Manifest { tier: Tier::Single, ..firmware_manifest() };
    assert_eq!(quorum(&m, &[ALICE, BOB]), Err(Refusal::TierBelowFloor));
}

#[test]
fn large_cohort_declared_single_is_refused() {
    let m = with_cohort_size(config_manifest(), 100);
    assert_eq!(quorum(&m, &[ALICE, BOB]), Err(Refusal::TierBelowFloor));
    assert_eq!(quorum(&Manifest { tier: Tier::TwoPerson, ..m }, &[ALICE, BOB]), Ok(()));
}

#[test]
fn manifest_without_a_rollback_plan_declared_single_is_refused() {
    let m = Manifest { rollback: Rollback::None, ..config_manifest() };
    assert_eq!(quorum(&m, &[ALICE, BOB]), Err(Refusal::TierBelowFloor));
}

#[test]
fn decommission_declared_below_expert_is_refused() {
    let m = Manifest { tier: Tier::TwoPerson, ..decommission_manifest() };
    assert_eq!(quorum(&m, &[ALICE, BOB]), Err(Refusal::TierBelowFloor));
}

#[test]
fn manifest_below_the_device_floor_is_refused() {
    // A production device provisioned with floor TwoPerson refuses a Single config push that
    // the TrustRoot rules alone would allow.
    assert_eq!(quorum_with_floor(&config_manifest(), &[ALICE, BOB], Tier::TwoPerson), Err(Refusal::TierBelowFloor));
}

#[test]
fn blocked_manifest_is_refused() {
    let m = Manifest { tier: Tier::Blocked, ..firmware_manifest() };
    assert_eq!(quorum(&m, &[ALICE, BOB, CAROL]), Err(Refusal::TierBlocked));
}

#[test]
fn two_person_manifest_with_one_approval_is_refused() {
    assert_eq!(quorum(&firmware_manifest(), &[ALICE]), Err(Refusal::QuorumShort));
}

#[test]
fn manifest_with_no_approvals_is_refused() {
    assert_eq!(quorum(&config_manifest(), &[]), Err(Refusal::QuorumShort));
}

#[test]
fn expert_manifest_without_an_expert_approver_is_refused() {
    assert_eq!(quorum(&decommission_manifest(), &[ALICE, CAROL]), Err(Refusal::MissingRole));
}

#[test]
fn requester_among_the_approvers_is_refused() {
    let m = Manifest { requester: pk(BOB), ..firmware_manifest() };
    assert_eq!(quorum(&m, &[ALICE, BOB]), Err(Refusal::RequesterApproved));
}

#[test]
fn same_approver_twice_is_refused() {
    assert_eq!(quorum(&firmware_manifest(), &[ALICE, ALICE]), Err(Refusal::DuplicateApprover));
}

#[test]
fn approval_by_a_key_off_the_roster_is_refused() {
    assert_eq!(quorum(&firmware_manifest(), &[ALICE, OUTSIDER_SEED]), Err(Refusal::UnknownApprover));
}

#[test]
fn approval_signed_for_another_manifest_is_refused() {
    let m = firmware_manifest();
    let other = manifest_digest(&encode(&config_manifest()));
    let approvals = approvals_by(other, &[ALICE, BOB]);
    let digest = manifest_digest(&encode(&m));
    assert_eq!(check_quorum(&trust_root(), &m, digest, &approvals, Tier::AutoPass), Err(Refusal::BadApprovalSignature));
}

#[test]
fn rejection_turned_into_an_approval_is_refused() {
    let m = firmware_manifest();
    let digest = manifest_digest(&encode(&m));
    let rejected = airlock_proto::build::approve(digest, Decision::Reject, &key(BOB));
    let forged = Approval { decision: Decision::Approve, ..rejected };
    let approvals = [approvals_by(digest, &[ALICE])[0], forged];
    assert_eq!(check_quorum(&trust_root(), &m, digest, &approvals, Tier::AutoPass), Err(Refusal::BadApprovalSignature));
}

#[test]
fn approval_signature_under_the_manifest_domain_is_refused() {
    let m = firmware_manifest();
    let digest = manifest_digest(&encode(&m));
    let mut approvals = approvals_by(digest, &[ALICE, BOB]);
    let statement = encode(&approvals[1].statement(digest));
    approvals[1].signature = airlock_proto::sig::sign(Domain::Manifest, &statement, &key(BOB));
    assert_eq!(check_quorum(&trust_root(), &m, digest, &approvals, Tier::AutoPass), Err(Refusal::BadApprovalSignature));
}

#[test]
fn rejection_by_an_approver_is_refused() {
    let m = firmware_manifest();
    let digest = manifest_digest(&encode(&m));
    let approvals = [
        airlock_proto::build::approve(digest, Decision::Approve, &key(ALICE)),
        airlock_proto::build::approve(digest, Decision::Reject, &key(BOB)),
        airlock_proto::build::approve(digest, Decision::Approve, &key(CAROL)),
    ];
    assert_eq!(check_quorum(&trust_root(), &m, digest, &approvals, Tier::AutoPass), Err(Refusal::RejectedByApprover));
}

#[test]
fn break_glass_manifest_within_its_caps_is_accepted() {
    assert_eq!(quorum(&break_glass(), &[DAVE]), Ok(()));
}

#[test]
fn break_glass_manifest_over_its_cohort_cap_is_refused() {
    assert_eq!(quorum(&with_cohort_size(break_glass(), 10), &[DAVE]), Ok(()));
    assert_eq!(quorum(&with_cohort_size(break_glass(), 11), &[DAVE]), Err(Refusal::BreakGlassCap));
}

#[test]
fn break_glass_manifest_over_its_lifetime_cap_is_refused() {
    let m = break_glass();
    let m = Manifest { expires_at: m.issued_at + 3_601, ..m };
    assert_eq!(quorum(&m, &[DAVE]), Err(Refusal::BreakGlassCap));
}

#[test]
fn break_glass_manifest_without_a_break_glass_approver_is_refused() {
    assert_eq!(quorum(&break_glass(), &[ALICE]), Err(Refusal::MissingRole));
}

// ---------------------------------------------------------------------------------------------
// Malformed

#[test]
fn message_with_trailing_bytes_is_refused() {
    let mut cmd = signed_command().to_bytes();
    assert_eq!(accept_command(&cmd, &trust_root()), Ok(command()));
    cmd.push(0);
    assert_eq!(accept_command(&cmd, &trust_root()), Err(Refusal::Malformed));

    let mut d = delivery();
    d.push(0);
    assert_eq!(decode::<Delivery<'_>>(&d).map(|_| ()), Err(Refusal::Malformed));

    let mut body = encode(&firmware_manifest());
    body.push(0);
    assert_eq!(decode::<Manifest<'_>>(&body).map(|_| ()), Err(Refusal::Malformed));
}

#[test]
fn truncated_message_is_refused() {
    let d = delivery();
    for len in [0, 1, d.len() / 2, d.len() - 1] {
        assert_eq!(decode::<Delivery<'_>>(&d[..len]).map(|_| ()), Err(Refusal::Malformed), "{len} bytes");
    }
}

#[test]
fn device_id_of_64_bytes_is_accepted() {
    let id = "d".repeat(MAX_DEVICE_ID);
    assert_eq!(decode_command(&Command { device: &id, ..command() }), Ok(()));
}

#[test]
fn over_long_device_id_is_refused() {
    let id = "d".repeat(MAX_DEVICE_ID + 1);
    assert_eq!(check_device_id(&id), Err(Refusal::Malformed));
    assert_eq!(decode_command(&Command { device: &id, ..command() }), Err(Refusal::Malformed));
    let r = Report { device: &id, ..report() };
    assert_eq!(decode::<Report<'_>>(&encode(&r)).map(|_| ()), Err(Refusal::Malformed));
}

#[test]
fn device_id_with_characters_outside_its_charset_is_refused() {
    for id in ["", "dev/002", "dev+", "dev#", "dev 002", "dev\0", "dév-002", "dev:002", "*"] {
        assert_eq!(check_device_id(id), Err(Refusal::Malformed), "{id:?}");
        assert_eq!(decode_command(&Command { device: id, ..command() }), Err(Refusal::Malformed), "{id:?}");
    }
    assert_eq!(check_device_id("Dev_0.1-a"), Ok(()));
}

#[test]
fn config_payload_at_the_limit_is_accepted() {
    let payload = vec![b'x'; MAX_CONFIG];
    let m = Manifest { action: Action::Config(Config { version: 1, payload: &payload }), ..config_manifest() };
    assert_eq!(decode_manifest(&m), Ok(()));
}

#[test]
fn config_payload_over_the_limit_is_refused() {
    let payload = vec![b'x'; MAX_CONFIG + 1];
    let m = Manifest { action: Action::Config(Config { version: 1, payload: &payload }), ..config_manifest() };
    assert_eq!(decode_manifest(&m), Err(Refusal::Malformed));
}

#[test]
fn manifest_expiring_when_it_is_issued_is_refused() {
    let m = firmware_manifest();
    assert_eq!(decode_manifest(&Manifest { expires_at: m.issued_at, ..m }), Err(Refusal::Malformed));
}

#[test]
fn manifest_for_an_empty_cohort_is_refused() {
    assert_eq!(decode_manifest(&with_cohort_size(firmware_manifest(), 0)), Err(Refusal::Malformed));
}

#[test]
fn firmware_with_a_bad_hardware_name_or_sizes_is_refused() {
    let Action::Firmware(f) = firmware_manifest().action else { unreachable!() };
    let bad = [
        Firmware { hardware: "", ..f },
        Firmware { hardware: "stm32/f4", ..f },
        Firmware { hardware: "a-very-long-hardware-model-name-xx", ..f },
        Firmware { image_size: 0, ..f },
        Firmware { chunk_size: 0, ..f },
        Firmware { chunk_size: MAX_CHUNK as u32 + 1, ..f },
    ];
    for fw in bad {
        let m = Manifest { action: Action::Firmware(fw), ..firmware_manifest() };
        assert_eq!(decode_manifest(&m), Err(Refusal::Malformed), "{fw:?}");
    }
}

#[test]
fn command_expiring_when_it_is_issued_is_refused() {
    let c = command();
    assert_eq!(decode_command(&Command { expires_at: c.issued_at, ..c }), Err(Refusal::Malformed));
}

#[test]
fn chunk_over_the_limit_is_refused() {
    let data = vec![0u8; MAX_CHUNK + 1];
    let c = Chunk { image: image_digest(), offset: 0, data: &data };
    assert_eq!(decode::<Chunk<'_>>(&encode(&c)).map(|_| ()), Err(Refusal::Malformed));
    let c = Chunk { data: &data[..MAX_CHUNK], ..c };
    assert_eq!(decode::<Chunk<'_>>(&encode(&c)).map(|_| ()), Ok(()));
}

#[test]
fn more_approvals_than_the_limit_is_refused() {
    let bytes = delivery();
    let d: Delivery<'_> = decode(&bytes).unwrap();
    let approval = d.approvals[0];
    // Encode the same shape with one approval too many, by hand: a heapless::Vec cannot hold it.
    let approvals: Vec<Approval> = vec![approval; MAX_APPROVALS + 1];
    let bytes = [encode(&d.manifest), encode(&approvals), encode(&d.proof)].concat();
    assert_eq!(decode::<Delivery<'_>>(&bytes).map(|_| ()), Err(Refusal::Malformed));
    let bytes = [encode(&d.manifest), encode(&&approvals[..MAX_APPROVALS]), encode(&d.proof)].concat();
    assert_eq!(decode::<Delivery<'_>>(&bytes).map(|d| d.approvals.len()), Ok(MAX_APPROVALS));
}

#[test]
fn unknown_enum_variant_is_refused() {
    let c = signed_command();
    let mut body = c.body.clone();
    let last = body.len() - 1; // the action, the last field of a command
    body[last] = 5;
    assert_eq!(decode::<Command<'_>>(&body).map(|_| ()), Err(Refusal::Malformed));
}

#[test]
fn non_boolean_flag_is_refused() {
    let m = firmware_manifest();
    let body = encode(&m);
    // security, break_glass, tier, policy (32), requester (32) end the body.
    let security = body.len() - 64 - 3;
    assert_eq!(body[security], 1);
    let mut bad = body.clone();
    bad[security] = 2;
    assert_eq!(decode::<Manifest<'_>>(&bad).map(|_| ()), Err(Refusal::Malformed));
}

#[test]
fn trust_root_with_a_threshold_of_zero_or_above_its_keys_is_refused() {
    assert_eq!(decode_root(&TrustRoot { root_threshold: 0, ..trust_root() }), Err(Refusal::Malformed));
    assert_eq!(decode_root(&TrustRoot { root_threshold: 3, ..trust_root() }), Ok(()));
    assert_eq!(decode_root(&TrustRoot { root_threshold: 4, ..trust_root() }), Err(Refusal::Malformed));
}

#[test]
fn trust_root_without_release_keys_is_refused() {
    assert_eq!(decode_root(&TrustRoot { release_keys: heapless::Vec::new(), ..trust_root() }), Err(Refusal::Malformed));
}

#[test]
fn trust_root_listing_a_key_twice_is_refused() {
    let mut r = trust_root();
    r.root_keys[2] = r.root_keys[0];
    assert_eq!(decode_root(&r), Err(Refusal::Malformed));
    let mut r = trust_root();
    r.release_keys.push(r.release_keys[0]).unwrap();
    assert_eq!(decode_root(&r), Err(Refusal::Malformed));
    let mut r = trust_root();
    r.approvers[1].key = r.approvers[0].key;
    assert_eq!(decode_root(&r), Err(Refusal::Malformed));
}

#[test]
fn trust_root_whose_stricter_tier_needs_fewer_approvals_is_refused() {
    let mut r = trust_root();
    r.rules.requirements[3].approvals = 1;
    assert_eq!(decode_root(&r), Err(Refusal::Malformed));
}

#[test]
fn signed_trust_root_that_decodes_but_carries_a_malformed_body_is_refused() {
    let r = TrustRoot { root_threshold: 0, ..trust_root() };
    assert_eq!(accept_initial(&sign_root(&r, &INITIAL_SIGNERS), NOW), Err(Refusal::Malformed));
}

/// Wire code n is `STABLE_NAMES[n - 1]`, forever: reports from old devices must keep meaning
/// what they meant. A new reason appends a name; nothing here is ever reordered or removed.
const STABLE_NAMES: [&str; 30] = [
    "malformed",
    "unknown_key",
    "bad_signature",
    "trust_root_expired",
    "trust_root_threshold",
    "trust_root_not_newer",
    "expired",
    "replay",
    "wrong_device",
    "not_in_cohort",
    "wrong_hardware",
    "tier_below_floor",
    "tier_blocked",
    "quorum_short",
    "missing_role",
    "requester_approved",
    "duplicate_approver",
    "unknown_approver",
    "bad_approval_signature",
    "rejected_by_approver",
    "version_downgrade",
    "security_counter_downgrade",
    "image_too_large",
    "digest_mismatch",
    "break_glass_cap",
    "decommissioned",
    "unexpected_chunk",
    "busy",
    "nothing_to_revert",
    "chunk_too_large",
];

#[test]
fn refusal_codes_are_stable() {
    assert_eq!(
        Refusal::ALL.len(),
        STABLE_NAMES.len(),
        "a refusal without a pinned code, or a pinned code without a refusal"
    );
    for (i, name) in STABLE_NAMES.iter().enumerate() {
        let code = i as u16 + 1;
        let r = Refusal::from_code(code).unwrap_or_else(|| panic!("code {code} ({name}) no longer decodes"));
        assert_eq!((r.code(), r.name()), (code, *name));
    }
}

// ---------------------------------------------------------------------------------------------
// Merkle: RFC 6962 against an independent model

/// RFC 6962 section 2.1, written from the RFC: MTH and PATH over raw leaves, top-down.
mod rfc6962 {
    use super::*;

    pub fn leaf(d: &[u8]) -> [u8; 32] {
        Sha256::new().chain_update([0u8]).chain_update(d).finalize().into()
    }

    fn node(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
        Sha256::new().chain_update([1u8]).chain_update(l).chain_update(r).finalize().into()
    }

    /// The largest power of two smaller than `n` (n > 1).
    fn k(n: usize) -> usize {
        1 << (usize::BITS - 1 - (n - 1).leading_zeros())
    }

    pub fn mth(d: &[Vec<u8>]) -> [u8; 32] {
        match d.len() {
            0 => Sha256::digest([]).into(),
            1 => leaf(&d[0]),
            n => node(&mth(&d[..k(n)]), &mth(&d[k(n)..])),
        }
    }

    /// PATH(m, D[n]), leaf to root.
    pub fn path(m: usize, d: &[Vec<u8>]) -> Vec<[u8; 32]> {
        let n = d.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = k(n);
        let (mut p, sibling) =
            if m < k { (path(m, &d[..k]), mth(&d[k..])) } else { (path(m - k, &d[k..]), mth(&d[..k])) };
        p.push(sibling);
        p
    }

    /// Which side each sibling of leaf `m` is on, leaf to root (`true`: on the left).
    pub fn shape(m: usize, n: usize) -> Vec<bool> {
        if n <= 1 {
            return Vec::new();
        }
        let k = k(n);
        let (mut s, left) = if m < k { (shape(m, k), false) } else { (shape(m - k, n - k), true) };
        s.push(left);
        s
    }
}

fn ids(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("device-{i:02}").into_bytes()).collect()
}

fn digests(v: &[[u8; 32]]) -> Vec<Digest> {
    v.iter().map(|d| Bytes(*d)).collect()
}

#[test]
fn cohort_root_matches_an_independent_rfc6962_implementation_for_sizes_1_to_20() {
    for n in 1..=20 {
        let d = ids(n);
        assert_eq!(CohortTree::new(&d).root(), Bytes(rfc6962::mth(&d)), "size {n}");
        assert_eq!(CohortTree::new(&d).size(), n as u32);
    }
}

#[test]
fn empty_tree_root_is_the_hash_of_the_empty_string() {
    let empty: [&str; 0] = [];
    assert_eq!(CohortTree::new(&empty).root(), Bytes(rfc6962::mth(&[])));
}

#[test]
fn leaf_and_node_hashes_are_domain_separated_as_in_rfc6962() {
    assert_eq!(airlock_proto::merkle::leaf_hash(b"dev-000"), Bytes(rfc6962::leaf(b"dev-000")));
    let (a, b) = (Bytes([1u8; 32]), Bytes([2u8; 32]));
    let mut input = vec![1u8];
    input.extend_from_slice(&[1u8; 32]);
    input.extend_from_slice(&[2u8; 32]);
    assert_eq!(airlock_proto::merkle::node_hash(&a, &b), sha256(&input));
}

#[test]
fn proof_paths_match_an_independent_rfc6962_implementation() {
    for n in 1..=20 {
        let d = ids(n);
        let tree = CohortTree::new(&d);
        for m in 0..n {
            let p = tree.proof(m).unwrap();
            assert_eq!(p.index, m as u32);
            assert_eq!(p.path.to_vec(), digests(&rfc6962::path(m, &d)), "leaf {m} of {n}");
        }
        assert_eq!(tree.proof(n), None);
    }
}

#[test]
fn every_proof_verifies_at_its_own_index_and_size() {
    for n in 1..=20 {
        let d = ids(n);
        let tree = CohortTree::new(&d);
        for (m, id) in d.iter().enumerate() {
            assert_eq!(tree.proof(m).unwrap().verify(id, n as u32, &tree.root()), Ok(()), "leaf {m} of {n}");
        }
    }
}

#[test]
fn no_proof_verifies_at_another_index_of_the_same_size() {
    for n in 1..=20 {
        let d = ids(n);
        let tree = CohortTree::new(&d);
        for (m, id) in d.iter().enumerate() {
            let p = tree.proof(m).unwrap();
            for other in (0..=n + 1).filter(|o| *o != m) {
                let q = InclusionProof { index: other as u32, ..p.clone() };
                assert_eq!(
                    q.verify(id, n as u32, &tree.root()),
                    Err(Refusal::NotInCohort),
                    "leaf {m} of {n} as {other}"
                );
            }
        }
    }
}

/// RFC 9162 proofs bind the path's *shape*, not the size itself: the same hashes verify at
/// every (index, size) whose path has the same length and the same left/right pattern, e.g.
/// leaf 2 of 3 also verifies as leaf 1 of 2 (path: [MTH(leaves 0..2)], sibling on the left).
/// This pins exactly that set, so any other acceptance fails the test.
#[test]
fn a_proof_verifies_elsewhere_only_where_its_path_has_the_same_shape() {
    let mut aliases = 0;
    for n in 1..=20 {
        let d = ids(n);
        let tree = CohortTree::new(&d);
        for (m, id) in d.iter().enumerate() {
            let p = tree.proof(m).unwrap();
            let own = rfc6962::shape(m, n);
            for size in 1..=20usize {
                for index in 0..=size {
                    let q = InclusionProof { index: index as u32, ..p.clone() };
                    let same_shape = index < size && rfc6962::shape(index, size) == own;
                    let want = if same_shape { Ok(()) } else { Err(Refusal::NotInCohort) };
                    assert_eq!(
                        q.verify(id, size as u32, &tree.root()),
                        want,
                        "leaf {m} of {n} as leaf {index} of {size}"
                    );
                    aliases += usize::from(same_shape && (index, size) != (m, n));
                }
            }
        }
    }
    // The aliasing is real (so this test checks something), e.g. leaf 2 of 3 as leaf 1 of 2.
    assert!(aliases > 0);
    let d = ids(3);
    let tree = CohortTree::new(&d);
    let q = InclusionProof { index: 1, ..tree.proof(2).unwrap() };
    assert_eq!(q.verify(&d[2], 2, &tree.root()), Ok(()));
}

/// What the size binding does guarantee: under a declared size `s`, at most `s` distinct devices
/// of the real cohort can prove membership, each at its own index, so understating the size can
/// never put more devices in reach than the size the tier was decided on.
#[test]
fn understating_the_cohort_size_admits_at_most_that_many_devices() {
    for n in 2..=20 {
        let d = ids(n);
        let tree = CohortTree::new(&d);
        for declared in 1..n {
            let mut claimed: Vec<usize> = Vec::new();
            for (m, id) in d.iter().enumerate() {
                let p = tree.proof(m).unwrap();
                for index in 0..declared {
                    let q = InclusionProof { index: index as u32, ..p.clone() };
                    if q.verify(id, declared as u32, &tree.root()) == Ok(()) {
                        assert!(!claimed.contains(&index), "two devices at index {index} of declared size {declared}");
                        claimed.push(index);
                    }
                }
            }
            assert!(claimed.len() <= declared, "{} devices of {n} under declared size {declared}", claimed.len());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hardening found in review: strict signatures, stable codes, canonical encoding, size bounds.

#[test]
fn signature_with_a_small_order_r_is_refused() {
    // S = 0 and R = the identity point: verifies for any message under a non-strict verifier
    // only if the key is small-order too; here it must fail on R before anything else.
    let mut sig = [0u8; 64];
    sig[0] = 1; // the compressed identity point
    let key = pk(0x11);
    let r = airlock_proto::sig::verify(Domain::Manifest, b"any body", &key, &airlock_proto::Signature::from(sig));
    assert_eq!(r, Err(Refusal::BadSignature));
}

#[test]
fn refusals_travel_as_their_stable_codes() {
    for r in Refusal::ALL {
        let bytes = encode(&r);
        assert_eq!(postcard::from_bytes::<u16>(&bytes).unwrap(), r.code(), "{r}");
        assert_eq!(postcard::from_bytes::<Refusal>(&bytes).unwrap(), r);
    }
    assert_eq!(Refusal::ALL.len(), Refusal::ChunkTooLarge.code() as usize, "codes are dense from 1");
    assert!(postcard::from_bytes::<Refusal>(&encode(&0u16)).is_err());
    assert!(postcard::from_bytes::<Refusal>(&encode(&999u16)).is_err());
}

#[test]
fn an_overlong_varint_is_refused_as_non_canonical() {
    let c = command();
    let canonical = encode(&c);
    assert!(decode::<Command<'_>>(&canonical).is_ok());
    // Re-encode the sequence number (the first varint after the device id) with a redundant
    // continuation byte: same value, different bytes.
    let id_len = 1 + c.device.len();
    let mut v = encode(&c.sequence);
    let last = v.len() - 1;
    v[last] |= 0x80;
    v.push(0x00);
    let mut overlong = canonical[..id_len].to_vec();
    overlong.extend_from_slice(&v);
    overlong.extend_from_slice(&canonical[id_len + encode(&c.sequence).len()..]);
    assert_eq!(postcard::from_bytes::<Command<'_>>(&overlong).unwrap(), c, "postcard alone accepts it");
    assert_eq!(decode::<Command<'_>>(&overlong), Err(Refusal::Malformed));
}

#[test]
fn a_command_envelope_over_its_bound_is_refused() {
    let mut c = signed_command();
    c.body.resize(airlock_proto::limits::MAX_COMMAND, 0);
    let bytes = c.to_bytes();
    assert!(bytes.len() > airlock_proto::limits::MAX_COMMAND);
    assert_eq!(accept_command(&bytes, &trust_root()), Err(Refusal::Malformed));
}

#[test]
fn break_glass_cannot_unblock_a_blocked_tier() {
    let m = Manifest { tier: Tier::Blocked, ..break_glass() };
    assert_eq!(quorum(&m, &[DAVE]), Err(Refusal::TierBlocked));
}

#[test]
fn a_trust_root_whose_release_key_is_also_an_approver_is_refused() {
    let mut root = trust_root();
    let release = root.release_keys[0];
    root.approvers[0].key = release;
    assert_eq!(decode_root(&root), Err(Refusal::Malformed));
}
