//! Regression tests for the canonical-encoding finding of `decode_all` (README.md, "Findings"):
//! postcard decodes over-long (non-minimal) varints, so before `codec::decode` compared its
//! input with the re-encoding, one value had many accepted spellings.
//!
//! `cargo test --release` (stable, no RUSTC_BOOTSTRAP needed). These fail on a tree whose
//! decoder accepts non-canonical encodings, and pass once it refuses them.
//!
//! The check runs where `airlock-proto` has its `alloc` feature (controller, tools, this crate).
//! A microcontroller build skips it to save flash; see `proto/src/codec.rs` for why that is safe:
//! every decision a device makes binds the exact signed bytes.

use airlock_agent_core::{Error, Input};
use airlock_fuzz::device::booted;
use airlock_fuzz::device::world;
use airlock_fuzz::fleet::NOW;
use airlock_proto::build::{approve, delivery, SignedOwned};
use airlock_proto::merkle::tree::CohortTree;
use airlock_proto::sig::{public_key, sign};
use airlock_proto::{
    codec, decode, manifest_digest, Decision, Domain, InclusionProof, Manifest, Refusal, SignedTrustRoot,
};

#[test]
fn fuzzer_found_over_long_length_prefixes_are_refused() {
    // `80 00` is the length 0 in two bytes; the canonical spelling is `00`.
    assert_eq!(decode::<SignedTrustRoot<'_>>(&[0x80, 0x00, 0x00]), Err(Refusal::Malformed));
    assert_eq!(decode::<InclusionProof>(&[0x1a, 0x80, 0x00]), Err(Refusal::Malformed));
    // The canonical spellings of the same values still decode.
    assert!(decode::<SignedTrustRoot<'_>>(&[0x00, 0x00]).is_ok());
    assert!(decode::<InclusionProof>(&[0x1a, 0x00]).is_ok());
}

#[test]
fn a_delivery_with_a_respelled_envelope_is_refused_where_canonicity_is_checked() {
    let canonical = world().fleet.firmware_delivery();
    // The manifest body's length, 193 = `c1 01`, then the body (proposal 7 = `07`).
    assert_eq!(canonical[..3], [0xc1, 0x01, 0x07]);
    let mut respelled = vec![0xc1, 0x81, 0x00];
    respelled.extend_from_slice(&canonical[2..]);
    assert!(booted().handle(NOW, Input::Delivery(&canonical)).is_ok());
    // Signed bytes untouched, so every signature still verifies: only canonicity refuses it.
    let r = booted().handle(NOW, Input::Delivery(&respelled));
    assert_eq!(r, Err(Error::Refused(Refusal::Malformed)));
}

#[test]
fn a_signed_manifest_body_with_an_over_long_varint_is_refused() {
    // What a release-key holder could sign: proposal 7 written `87 00`. Same manifest value,
    // different bytes, hence a second manifest digest for one manifest.
    let fleet = &world().fleet;
    let body = codec::encode(&fleet.firmware_manifest());
    assert_eq!(body[0], 0x07);
    let mut respelled = vec![0x87, 0x00];
    respelled.extend_from_slice(&body[1..]);
    assert_ne!(manifest_digest(&body), manifest_digest(&respelled));
    assert_eq!(decode::<Manifest<'_>>(&respelled), Err(Refusal::Malformed));

    let signed = SignedOwned {
        signature: sign(Domain::Manifest, &respelled, &fleet.release),
        signer: public_key(&fleet.release),
        body: respelled,
    };
    let approval = approve(manifest_digest(&signed.body), Decision::Approve, &fleet.approvers[0]);
    let proof = CohortTree::new(&fleet.cohort).proof(3).expect("device 3 is in the cohort");
    let bytes = delivery(&signed, &[approval], proof).expect("one approval fits");
    let r = booted().handle(NOW, Input::Delivery(&bytes));
    assert_eq!(r, Err(Error::Refused(Refusal::Malformed)));
}
