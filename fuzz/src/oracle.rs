//! Independent validity checks, asserted whenever the device accepts something.
//!
//! Signatures are checked here with `ed25519_dalek::VerifyingKey::verify_strict` over the
//! concatenated `domain || body`, not through airlock-proto's `sig::verify` (multipart, with its
//! own weak-key check), so a bug in that path cannot hide itself. The protocol-level checks
//! (`check_quorum`, `Signed::verify_by`, `InclusionProof::verify`) are re-run as the brief asks:
//! the device's own check is `checks::check_delivery`, which calls them, so the assertion is that
//! the agent's state machine reached acceptance only through them.

use crate::fleet::{sha256, DEVICE, NOW};
use airlock_agent_core::mem_flash::MemFlash;
use airlock_agent_core::{Agent, Layout};
use airlock_proto::{
    check_quorum, codec, decode, manifest_digest, Command, Decision, Delivery, Domain, Manifest, PublicKey, Signature,
    Signed, SignedTrustRoot, Tier, TrustRoot,
};
use sha2::{Digest as _, Sha256};

/// Strict Ed25519 over `domain || body`, without airlock-proto's verifier.
pub fn ed25519_ok(domain: Domain, body: &[u8], key: &PublicKey, sig: &Signature) -> bool {
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(key.as_array()) else {
        return false;
    };
    let mut msg = domain.prefix().to_vec();
    msg.extend_from_slice(body);
    vk.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(sig.as_array())).is_ok()
}

/// Panics unless `bytes` is a delivery the device with `trust` (and min tier `AutoPass`) must
/// accept at [`NOW`] with last sequence below `last_sequence`.
pub fn assert_valid_delivery(trust: &TrustRoot, bytes: &[u8], last_sequence: u64) {
    let d: Delivery<'_> = decode(bytes).unwrap_or_else(|r| panic!("accepted delivery does not decode: {r}"));
    let s = d.manifest;
    assert!(trust.release_keys.contains(&s.signer), "accepted manifest signed by non-release key {:?}", s.signer);
    assert!(
        ed25519_ok(Domain::Manifest, s.body, &s.signer, &s.signature),
        "accepted manifest has a bad release signature"
    );
    assert_eq!(s.verify_by(Domain::Manifest, &trust.release_keys), Ok(s.body));
    let m: Manifest<'_> = decode(s.body).unwrap_or_else(|r| panic!("accepted manifest body does not decode: {r}"));
    let digest = manifest_digest(s.body);
    let mut h = Sha256::new();
    h.update(Domain::Manifest.prefix());
    h.update(s.body);
    assert_eq!(digest.0, <[u8; 32]>::from(h.finalize()), "manifest digest is not SHA-256(domain || body)");
    assert!(!trust.expired(NOW) && NOW < m.expires_at, "accepted an expired manifest or root");
    assert!(m.sequence > last_sequence, "accepted a replayed sequence {}", m.sequence);
    assert_eq!(check_quorum(trust, &m, digest, &d.approvals, Tier::AutoPass), Ok(()));
    for a in &d.approvals {
        assert!(trust.approver(&a.approver).is_some(), "approval by off-roster key {:?}", a.approver);
        assert_eq!(a.decision, Decision::Approve, "accepted with a rejection");
        assert_ne!(a.approver, m.requester, "the requester approved");
        let statement = codec::encode(&a.statement(digest));
        assert!(
            ed25519_ok(Domain::Approval, &statement, &a.approver, &a.signature),
            "accepted a bad approval signature"
        );
    }
    assert_eq!(d.proof.verify(DEVICE.as_bytes(), m.cohort.size, &m.cohort.root), Ok(()));
}

/// Panics unless `bytes` is a command for this device, signed by a release key of `trust`,
/// unexpired at [`NOW`], with a sequence above `last_command`.
pub fn assert_valid_command(trust: &TrustRoot, bytes: &[u8], last_command: u64) {
    let s: Signed<'_> = decode(bytes).unwrap_or_else(|r| panic!("accepted command does not decode: {r}"));
    assert!(trust.release_keys.contains(&s.signer), "accepted command signed by non-release key {:?}", s.signer);
    assert!(ed25519_ok(Domain::Command, s.body, &s.signer, &s.signature), "accepted command has a bad signature");
    let c: Command<'_> = decode(s.body).unwrap_or_else(|r| panic!("accepted command body does not decode: {r}"));
    assert_eq!(c.device, DEVICE, "accepted a command for another device");
    assert!(NOW < c.expires_at, "accepted an expired command");
    assert!(c.sequence > last_command, "accepted a replayed command sequence {}", c.sequence);
}

/// Panics unless `bytes` is a valid rotation from `current` at [`NOW`]: every signature valid
/// and by a distinct old or new root key, a threshold of each, a higher version, not expired.
/// Returns the new TrustRoot.
pub fn assert_valid_rotation(current: &TrustRoot, bytes: &[u8]) -> TrustRoot {
    let s: SignedTrustRoot<'_> = decode(bytes).unwrap_or_else(|r| panic!("accepted rotation does not decode: {r}"));
    let next: TrustRoot = decode(s.body).unwrap_or_else(|r| panic!("accepted TrustRoot body does not decode: {r}"));
    let (mut old, mut new) = (0usize, 0usize);
    for (i, sig) in s.signatures.iter().enumerate() {
        assert!(!s.signatures[..i].iter().any(|p| p.key == sig.key), "accepted a repeated root signer");
        let (a, b) = (current.root_keys.contains(&sig.key), next.root_keys.contains(&sig.key));
        assert!(a || b, "accepted a signature by a key in neither root set");
        assert!(ed25519_ok(Domain::TrustRoot, s.body, &sig.key, &sig.signature), "accepted a bad root signature");
        old += usize::from(a);
        new += usize::from(b);
    }
    assert!(old >= usize::from(current.root_threshold), "rotation short of the old threshold ({old})");
    assert!(new >= usize::from(next.root_threshold), "rotation short of its own threshold ({new})");
    assert!(next.version > current.version, "rotation to version {} from {}", next.version, current.version);
    assert!(!next.expired(NOW), "accepted an expired TrustRoot");
    next
}

/// Panics unless every image slot the state record names holds bytes that hash to the recorded
/// digest, and that digest is one of `allowed` (the images something approved).
pub fn assert_slots_hold_recorded_images(
    agent: &mut Agent<MemFlash>,
    layout: &Layout,
    allowed: &[airlock_proto::Digest],
) {
    let slots = agent.state().slots;
    for (i, meta) in slots.iter().enumerate() {
        let Some(meta) = meta else { continue };
        assert!(allowed.contains(&meta.digest), "slot {i} records an unapproved image {:?}", meta.digest);
        let at = layout.slots[i] as usize;
        let bytes = &agent.flash_mut().bytes()[at..at + meta.size as usize];
        assert_eq!(sha256(bytes), meta.digest, "slot {i} content does not hash to its recorded digest");
    }
}
