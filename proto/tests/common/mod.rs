//! Fixed inputs shared by the proto test binaries: deterministic keys, timestamps and messages.
//!
//! Every key comes from a 32-byte seed `[s; 32]`, every time is a constant, so the golden vectors
//! in `tests/vectors/` are reproducible byte for byte (Ed25519 signing is deterministic).
//! Each test binary uses a different part of this module.
#![allow(dead_code)]

use airlock_proto::build::{approve, SignedOwned};
use airlock_proto::merkle::tree::CohortTree;
use airlock_proto::sig::public_key;
use airlock_proto::{
    Action, Approval, BreakGlassRule, Chunk, ChunkRequest, Cohort, Command, CommandAction, Config, Decision, Digest,
    Domain, Event, Firmware, InclusionProof, Manifest, PublicKey, Refusal, Report, Requirement, Roles, Rollback,
    SizeFloor, Tier, TierRules, TrustRoot, Version,
};
use ed25519_dalek::SigningKey;
use sha2::{Digest as _, Sha256};

/// 2026-01-01T00:00:00Z.
pub const T0: u64 = 1_767_225_600;
pub const HOUR: u64 = 3_600;
pub const DAY: u64 = 86_400;
/// The device's clock in the checks: inside every fixture's validity window.
pub const NOW: u64 = T0 + 2 * HOUR;

/// Root keys of TrustRoot v1 (2-of-3).
pub const ROOT_SEEDS: [u8; 3] = [0x01, 0x02, 0x03];
/// Root keys of TrustRoot v2: key 0x01 rotated out, 0x04 rotated in (2-of-3).
pub const NEXT_ROOT_SEEDS: [u8; 3] = [0x02, 0x03, 0x04];
/// The controller's release key.
pub const RELEASE_SEED: u8 = 0x11;
/// A second release key, added by the rotation.
pub const NEXT_RELEASE_SEED: u8 = 0x12;
/// Approver with the plain approver role.
pub const ALICE: u8 = 0x21;
/// Approver who is also a domain expert.
pub const BOB: u8 = 0x22;
/// Approver who is also a security reviewer.
pub const CAROL: u8 = 0x23;
/// May approve break-glass manifests only.
pub const DAVE: u8 = 0x24;
/// The engineer who requested the change (not on the roster).
pub const REQUESTER_SEED: u8 = 0x31;
/// The key of device `dev-002`, which signs its reports.
pub const DEVICE_SEED: u8 = 0x41;
/// A key that appears on no list.
pub const OUTSIDER_SEED: u8 = 0x51;

/// Every seed the fixtures sign with, to find a signing key from a public key.
pub const ALL_SEEDS: [u8; 12] =
    [0x01, 0x02, 0x03, 0x04, RELEASE_SEED, NEXT_RELEASE_SEED, ALICE, BOB, CAROL, DAVE, REQUESTER_SEED, DEVICE_SEED];

/// The cohort of the firmware and config manifests, in tree order.
pub const COHORT: [&str; 5] = ["dev-000", "dev-001", "dev-002", "dev-003", "dev-004"];
/// The device that receives the delivery, sends the report and gets the command.
pub const DEVICE: &str = "dev-002";
pub const DEVICE_INDEX: usize = 2;
/// The one-device cohort of the decommission manifest.
pub const DECOMMISSION_COHORT: [&str; 1] = ["dev-004"];

/// The firmware image the manifests and chunks describe.
pub const IMAGE_SIZE: u32 = 40_000;
pub const CHUNK_SIZE: u32 = 1_024;
/// The last (short) chunk: 39 whole chunks precede it.
pub const LAST_CHUNK_OFFSET: u32 = 39 * CHUNK_SIZE;

/// The config payload of the config manifest.
pub const CONFIG_PAYLOAD: &[u8] = br#"{"report_interval_s":300}"#;

/// The signing key with seed `[seed; 32]`.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The public keys of [`ALL_SEEDS`], derived once (a scalar multiplication is slow in debug builds).
fn fixture_keys() -> &'static [(u8, PublicKey)] {
    static KEYS: std::sync::OnceLock<Vec<(u8, PublicKey)>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| ALL_SEEDS.iter().map(|s| (*s, public_key(&key(*s)))).collect())
}

/// The public key of [`key`]`(seed)`.
pub fn pk(seed: u8) -> PublicKey {
    match fixture_keys().iter().find(|(s, _)| *s == seed) {
        Some((_, k)) => *k,
        None => public_key(&key(seed)),
    }
}

/// The fixture seed whose public key is `k`, if any.
pub fn seed_of(k: &PublicKey) -> Option<u8> {
    fixture_keys().iter().find(|(_, p)| p == k).map(|(s, _)| *s)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    Digest::from(<[u8; 32]>::from(Sha256::digest(data)))
}

/// The firmware image: `byte[i] = i mod 251`.
pub fn image() -> Vec<u8> {
    (0..IMAGE_SIZE).map(|i| (i % 251) as u8).collect()
}

pub fn image_digest() -> Digest {
    sha256(&image())
}

/// Digest of the rollout plan document the controller shows approvers.
pub fn rollout_plan() -> Digest {
    sha256(b"waves: 1 device, then 100% after 1h healthy")
}

/// Digest of the policy files that decided the tier.
pub fn policy() -> Digest {
    sha256(b"policies/tiers.rego@v12")
}

pub fn rules() -> TierRules {
    let req = |approvals, roles| Requirement { approvals, roles };
    TierRules {
        requirements: [req(0, Roles::NONE), req(1, Roles::APPROVER), req(2, Roles::APPROVER), req(2, Roles::EXPERT)],
        size_floors: heapless::Vec::from_slice(&[
            SizeFloor { min_size: 2, tier: Tier::Single },
            SizeFloor { min_size: 100, tier: Tier::TwoPerson },
            SizeFloor { min_size: 1_000, tier: Tier::Expert },
        ])
        .expect("3 size floors fit"),
        no_rollback: Tier::TwoPerson,
        security: Tier::TwoPerson,
        kind: [Tier::AutoPass, Tier::AutoPass, Tier::Expert],
        break_glass: BreakGlassRule {
            requirement: req(1, Roles::BREAK_GLASS),
            max_cohort: 10,
            max_lifetime_secs: 3_600,
        },
    }
}

fn roster() -> heapless::Vec<airlock_proto::Approver, { airlock_proto::limits::MAX_APPROVERS }> {
    let a = |seed, roles| airlock_proto::Approver { key: pk(seed), roles };
    heapless::Vec::from_slice(&[
        a(ALICE, Roles::APPROVER),
        a(BOB, Roles::APPROVER.union(Roles::EXPERT)),
        a(CAROL, Roles::APPROVER.union(Roles::SECURITY)),
        a(DAVE, Roles::BREAK_GLASS),
    ])
    .expect("4 approvers fit")
}

fn keys<const N: usize>(seeds: &[u8]) -> heapless::Vec<PublicKey, N> {
    seeds.iter().map(|s| pk(*s)).collect()
}

/// TrustRoot v1: 2-of-3 root keys, one release key, four approvers.
pub fn trust_root() -> TrustRoot {
    TrustRoot {
        version: 1,
        expires_at: T0 + 365 * DAY,
        root_threshold: 2,
        root_keys: keys(&ROOT_SEEDS),
        release_keys: keys(&[RELEASE_SEED]),
        approvers: roster(),
        rules: rules(),
    }
}

/// TrustRoot v2: root key 0x01 replaced by 0x04, a second release key.
pub fn next_trust_root() -> TrustRoot {
    TrustRoot {
        version: 2,
        expires_at: T0 + 2 * 365 * DAY,
        root_threshold: 2,
        root_keys: keys(&NEXT_ROOT_SEEDS),
        release_keys: keys(&[RELEASE_SEED, NEXT_RELEASE_SEED]),
        approvers: roster(),
        rules: rules(),
    }
}

/// Signers of the initial TrustRoot: two of its three root keys.
pub const INITIAL_SIGNERS: [u8; 2] = [0x01, 0x02];
/// Signers of the rotation: 0x01 (old only), 0x03 (old and new), 0x04 (new only), so the
/// threshold is met among the old keys (0x01, 0x03) and among the new keys (0x03, 0x04).
pub const ROTATION_SIGNERS: [u8; 3] = [0x01, 0x03, 0x04];

pub fn sign_root(root: &TrustRoot, seeds: &[u8]) -> Vec<u8> {
    let ks: Vec<SigningKey> = seeds.iter().map(|s| key(*s)).collect();
    let refs: Vec<&SigningKey> = ks.iter().collect();
    airlock_proto::build::sign_trust_root(root, &refs)
}

/// The encoded initial SignedTrustRoot.
pub fn signed_trust_root() -> Vec<u8> {
    sign_root(&trust_root(), &INITIAL_SIGNERS)
}

/// The encoded rotation v1 -> v2.
pub fn signed_rotation() -> Vec<u8> {
    sign_root(&next_trust_root(), &ROTATION_SIGNERS)
}

pub fn cohort_tree() -> CohortTree {
    CohortTree::new(&COHORT)
}

pub fn cohort() -> Cohort {
    let t = cohort_tree();
    Cohort { root: t.root(), size: t.size() }
}

/// The inclusion proof of [`DEVICE`].
pub fn device_proof() -> InclusionProof {
    cohort_tree().proof(DEVICE_INDEX).expect("device is in the cohort")
}

/// Fields shared by the three manifest fixtures.
fn manifest(action: Action<'static>, sequence: u64) -> Manifest<'static> {
    Manifest {
        proposal: 1_000 + sequence,
        revision: 1,
        sequence,
        issued_at: T0 + HOUR,
        expires_at: T0 + HOUR + 7 * DAY,
        action,
        cohort: cohort(),
        rollout_plan: rollout_plan(),
        rollback: Rollback::Previous,
        security: false,
        break_glass: false,
        tier: Tier::Single,
        policy: policy(),
        requester: pk(REQUESTER_SEED),
    }
}

/// A security firmware update to the five-device cohort; its floor is TwoPerson (security).
pub fn firmware_manifest() -> Manifest<'static> {
    Manifest {
        revision: 2,
        security: true,
        tier: Tier::TwoPerson,
        ..manifest(
            Action::Firmware(Firmware {
                hardware: "stm32f4-eval",
                version: Version::new(1, 4, 2),
                security_counter: 3,
                image_digest: image_digest(),
                image_size: IMAGE_SIZE,
                chunk_size: CHUNK_SIZE,
            }),
            7,
        )
    }
}

/// A config push to the five-device cohort; its floor is Single (cohort size >= 2).
pub fn config_manifest() -> Manifest<'static> {
    manifest(Action::Config(Config { version: 7, payload: CONFIG_PAYLOAD }), 8)
}

pub fn decommission_tree() -> CohortTree {
    CohortTree::new(&DECOMMISSION_COHORT)
}

/// Retiring one device, with no way back; its floor is Expert (kind).
pub fn decommission_manifest() -> Manifest<'static> {
    let t = decommission_tree();
    Manifest {
        cohort: Cohort { root: t.root(), size: t.size() },
        rollback: Rollback::None,
        tier: Tier::Expert,
        ..manifest(Action::Decommission, 9)
    }
}

/// `m` encoded and signed by the release key.
pub fn sign_manifest(m: &Manifest<'_>) -> SignedOwned {
    SignedOwned::sign(Domain::Manifest, m, &key(RELEASE_SEED))
}

/// Who approves the firmware manifest in the delivery: two approvers, as TwoPerson needs.
pub const DELIVERY_APPROVERS: [u8; 2] = [ALICE, BOB];

pub fn approvals_by(digest: Digest, seeds: &[u8]) -> Vec<Approval> {
    seeds.iter().map(|s| approve(digest, Decision::Approve, &key(*s))).collect()
}

/// The encoded delivery of the firmware manifest to [`DEVICE`].
pub fn delivery() -> Vec<u8> {
    let signed = sign_manifest(&firmware_manifest());
    let digest = airlock_proto::manifest_digest(&signed.body);
    airlock_proto::build::delivery(&signed, &approvals_by(digest, &DELIVERY_APPROVERS), device_proof())
        .expect("two approvals fit")
}

/// The firmware manifest's digest, as approvers sign it.
pub fn firmware_digest() -> Digest {
    airlock_proto::manifest_digest(&sign_manifest(&firmware_manifest()).body)
}

pub fn command() -> Command<'static> {
    Command {
        device: DEVICE,
        sequence: 42,
        issued_at: T0 + 2 * HOUR,
        expires_at: T0 + 2 * HOUR + 300,
        action: CommandAction::Revert,
    }
}

pub fn signed_command() -> SignedOwned {
    SignedOwned::sign(Domain::Command, &command(), &key(RELEASE_SEED))
}

/// Boot 3, report 17.
pub const REPORT_COUNTER: u64 = (3 << 32) | 17;

/// The device refuses a replayed firmware manifest.
pub fn report() -> Report<'static> {
    Report {
        device: DEVICE,
        counter: REPORT_COUNTER,
        at: T0 + 2 * HOUR + 60,
        event: Event::Refused { manifest: Some(firmware_digest()), reason: Refusal::Replay },
    }
}

pub fn signed_report() -> SignedOwned {
    SignedOwned::sign(Domain::Report, &report(), &key(DEVICE_SEED))
}

/// The device asks for the last chunk of the image.
pub fn chunk_request() -> ChunkRequest {
    ChunkRequest { image: image_digest(), offset: LAST_CHUNK_OFFSET, len: IMAGE_SIZE - LAST_CHUNK_OFFSET }
}

/// The image bytes of [`chunk`].
pub fn last_chunk_data() -> Vec<u8> {
    image()[LAST_CHUNK_OFFSET as usize..].to_vec()
}

pub fn chunk(data: &[u8]) -> Chunk<'_> {
    Chunk { image: image_digest(), offset: LAST_CHUNK_OFFSET, data }
}

/// The checks proto gives a device for a delivery, in the order a device makes them: decode,
/// release signature, manifest bounds, quorum for the declared tier, own cohort membership.
/// (Expiry, replay, hardware and version checks belong to the agent core.)
pub fn accept_delivery(bytes: &[u8], root: &TrustRoot, device: &str, floor: Tier) -> Result<(), Refusal> {
    let d: airlock_proto::Delivery<'_> = airlock_proto::decode(bytes)?;
    let body = d.manifest.verify_by(Domain::Manifest, &root.release_keys)?;
    let m: Manifest<'_> = airlock_proto::decode(body)?;
    airlock_proto::check_quorum(root, &m, airlock_proto::manifest_digest(body), &d.approvals, floor)?;
    d.proof.verify(device.as_bytes(), m.cohort.size, &m.cohort.root)
}

/// Decode and verify a signed command the way a device does.
pub fn accept_command<'a>(bytes: &'a [u8], root: &TrustRoot) -> Result<Command<'a>, Refusal> {
    let s = airlock_proto::sig::decode_signed(bytes, airlock_proto::limits::MAX_COMMAND)?;
    let body = s.verify_by(Domain::Command, &root.release_keys)?;
    airlock_proto::decode(body)
}

/// Decode and verify a signed report the way the controller does, knowing the device's key.
pub fn accept_report<'a>(bytes: &'a [u8], device_key: &PublicKey) -> Result<Report<'a>, Refusal> {
    let s = airlock_proto::sig::decode_signed(bytes, airlock_proto::limits::MAX_REPORT)?;
    let body = s.verify_by(Domain::Report, core::slice::from_ref(device_key))?;
    airlock_proto::decode(body)
}

/// Decode and verify an initial (factory) TrustRoot.
pub fn accept_initial(bytes: &[u8], now: u64) -> Result<TrustRoot, Refusal> {
    airlock_proto::decode::<airlock_proto::SignedTrustRoot<'_>>(bytes)?.verify_initial(now)
}

/// Decode and verify a TrustRoot rotation from `current`.
pub fn accept_rotation(bytes: &[u8], current: &TrustRoot, now: u64) -> Result<TrustRoot, Refusal> {
    airlock_proto::decode::<airlock_proto::SignedTrustRoot<'_>>(bytes)?.verify_rotation(current, now)
}
