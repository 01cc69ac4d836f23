//! Property tests: every wire message survives encode -> decode unchanged, and no single-bit
//! flip of a signed object is accepted.
//!
//! For the bit flips the encoded object is cut into regions (length prefix, signed body, signer,
//! signature, ...) and each region has the refusals a flip there can cause, so the tests assert
//! *why* a flipped object is refused, not just that it is.
// Test code: a panic is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use airlock_proto::build::{approve, SignedOwned};
use airlock_proto::codec::encode;
use airlock_proto::limits::{MAX_APPROVALS, MAX_APPROVERS, MAX_CHUNK, MAX_CONFIG, MAX_PROOF_DEPTH};
use airlock_proto::merkle::tree::CohortTree;
use airlock_proto::{
    decode, Action, Approval, Approver, BreakGlassRule, Bytes, Chunk, ChunkRequest, Cohort, Command, CommandAction,
    Config, Decision, Delivery, Digest, Domain, Event, Firmware, InclusionProof, Manifest, PublicKey, Refusal, Report,
    Requirement, RevertReason, Roles, Rollback, Signature, Signed, SignedTrustRoot, SizeFloor, Status, Tier, TierRules,
    TrustRoot, Version,
};
use common::*;
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use std::ops::Range;

// ---------------------------------------------------------------------------------------------
// Strategies

fn digest() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Bytes)
}

fn signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(r, s)| Bytes([r, s].concat().try_into().unwrap()))
}

fn device_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,64}"
}

fn tier() -> impl Strategy<Value = Tier> {
    (0..Tier::ALL.len()).prop_map(|i| Tier::ALL[i])
}

fn version() -> impl Strategy<Value = Version> {
    any::<(u16, u16, u16)>().prop_map(|(a, b, c)| Version::new(a, b, c))
}

/// `(issued_at, expires_at)` with `issued_at < expires_at`.
fn lifetime() -> impl Strategy<Value = (u64, u64)> {
    (0..u64::MAX / 2, 1..u64::MAX / 2).prop_map(|(i, d)| (i, i + d))
}

/// An owned manifest action (the wire type borrows its strings).
#[derive(Clone, Debug)]
enum ActionIn {
    Firmware { hardware: String, version: Version, counter: u32, image: Digest, size: u32, chunk: u32 },
    Config { version: u32, payload: Vec<u8> },
    Decommission,
}

fn action() -> impl Strategy<Value = ActionIn> {
    prop_oneof![
        ("[!-.0-~]{1,32}", version(), any::<u32>(), digest(), 1..=u32::MAX, 1..=MAX_CHUNK as u32).prop_map(
            |(hardware, version, counter, image, size, chunk)| ActionIn::Firmware {
                hardware,
                version,
                counter,
                image,
                size,
                chunk
            }
        ),
        (any::<u32>(), vec(any::<u8>(), 0..=MAX_CONFIG))
            .prop_map(|(version, payload)| ActionIn::Config { version, payload }),
        Just(ActionIn::Decommission),
    ]
}

/// An owned manifest; [`ManifestIn::manifest`] borrows the wire form from it.
#[derive(Clone, Debug)]
struct ManifestIn {
    ids: (u64, u32, u64),
    times: (u64, u64),
    action: ActionIn,
    cohort: Cohort,
    digests: (Digest, Digest),
    rollback: Rollback,
    flags: (bool, bool),
    tier: Tier,
    requester: PublicKey,
}

impl ManifestIn {
    fn manifest(&self) -> Manifest<'_> {
        let action = match &self.action {
            ActionIn::Firmware { hardware, version, counter, image, size, chunk } => Action::Firmware(Firmware {
                hardware,
                version: *version,
                security_counter: *counter,
                image_digest: *image,
                image_size: *size,
                chunk_size: *chunk,
            }),
            ActionIn::Config { version, payload } => Action::Config(Config { version: *version, payload }),
            ActionIn::Decommission => Action::Decommission,
        };
        Manifest {
            proposal: self.ids.0,
            revision: self.ids.1,
            sequence: self.ids.2,
            issued_at: self.times.0,
            expires_at: self.times.1,
            action,
            cohort: self.cohort,
            rollout_plan: self.digests.0,
            rollback: self.rollback,
            security: self.flags.0,
            break_glass: self.flags.1,
            tier: self.tier,
            policy: self.digests.1,
            requester: self.requester,
        }
    }
}

fn rollback() -> impl Strategy<Value = Rollback> {
    prop_oneof![Just(Rollback::None), Just(Rollback::Previous), version().prop_map(Rollback::Version)]
}

fn manifest_in() -> impl Strategy<Value = ManifestIn> {
    (
        any::<(u64, u32, u64)>(),
        lifetime(),
        action(),
        (digest(), 1..=u32::MAX).prop_map(|(root, size)| Cohort { root, size }),
        (digest(), digest()),
        rollback(),
        any::<(bool, bool)>(),
        tier(),
        digest(),
    )
        .prop_map(|(ids, times, action, cohort, digests, rollback, flags, tier, requester)| ManifestIn {
            ids,
            times,
            action,
            cohort,
            digests,
            rollback,
            flags,
            tier,
            requester,
        })
}

fn approval() -> impl Strategy<Value = Approval> {
    (digest(), any::<bool>(), signature()).prop_map(|(approver, reject, signature)| Approval {
        approver,
        decision: if reject { Decision::Reject } else { Decision::Approve },
        signature,
    })
}

fn proof() -> impl Strategy<Value = InclusionProof> {
    (any::<u32>(), vec(digest(), 0..=MAX_PROOF_DEPTH))
        .prop_map(|(index, path)| InclusionProof { index, path: heapless::Vec::from_slice(&path).unwrap() })
}

fn requirement() -> impl Strategy<Value = Requirement> {
    any::<(u8, u16)>().prop_map(|(approvals, roles)| Requirement { approvals, roles: Roles(roles) })
}

fn rules() -> impl Strategy<Value = TierRules> {
    (
        [requirement(), requirement(), requirement(), requirement()],
        vec((any::<u32>(), tier()), 0..=4),
        (tier(), tier(), [tier(), tier(), tier()]),
        (requirement(), any::<u32>(), any::<u32>()),
    )
        .prop_map(
            |(mut requirements, floors, (no_rollback, security, kind), (bg, max_cohort, max_lifetime_secs))| {
                // Stricter tiers never need fewer approvals: keep the rules in bounds.
                requirements.sort_by_key(|r| r.approvals);
                TierRules {
                    requirements,
                    size_floors: floors.into_iter().map(|(min_size, tier)| SizeFloor { min_size, tier }).collect(),
                    no_rollback,
                    security,
                    kind,
                    break_glass: BreakGlassRule { requirement: bg, max_cohort, max_lifetime_secs },
                }
            },
        )
}

/// A TrustRoot in bounds, with root keys `root_keys` and threshold picked by `threshold`.
fn trust_root_with(root_keys: Vec<PublicKey>) -> impl Strategy<Value = TrustRoot> {
    let n = root_keys.len();
    (
        any::<u32>(),
        any::<u64>(),
        1..=n,
        btree_set(any::<[u8; 32]>(), 1..=4),
        btree_set(any::<[u8; 32]>(), 0..=MAX_APPROVERS),
        vec(any::<u16>(), MAX_APPROVERS),
        rules(),
    )
        .prop_map(move |(version, expires_at, threshold, release, approvers, roles, rules)| TrustRoot {
            version,
            expires_at,
            root_threshold: threshold as u8,
            root_keys: heapless::Vec::from_slice(&root_keys).unwrap(),
            release_keys: release.into_iter().map(Bytes).collect(),
            approvers: approvers
                .into_iter()
                .zip(roles)
                .map(|(k, r)| Approver { key: Bytes(k), roles: Roles(r) })
                .collect(),
            rules,
        })
}

fn trust_root() -> impl Strategy<Value = TrustRoot> {
    btree_set(any::<[u8; 32]>(), 1..=5).prop_flat_map(|keys| trust_root_with(keys.into_iter().map(Bytes).collect()))
}

fn command_action() -> impl Strategy<Value = CommandAction> {
    prop_oneof![
        Just(CommandAction::Pause),
        Just(CommandAction::Resume),
        Just(CommandAction::Revert),
        Just(CommandAction::RevertConfig),
        Just(CommandAction::Status),
    ]
}

fn revert_reason() -> impl Strategy<Value = RevertReason> {
    prop_oneof![
        Just(RevertReason::HealthCheckFailed),
        Just(RevertReason::UnconfirmedReboot),
        Just(RevertReason::Command),
        Just(RevertReason::ImageCorrupt),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    let status = (version(), any::<(u32, u32, u64, u32, bool)>()).prop_map(
        |(firmware, (security_counter, config, sequence, trust_root, testing))| {
            Event::Status(Status { firmware, security_counter, config, sequence, trust_root, testing })
        },
    );
    prop_oneof![
        status,
        digest().prop_map(|manifest| Event::Accepted { manifest }),
        (digest(), any::<u32>(), any::<u32>()).prop_map(|(manifest, received, total)| Event::Progress {
            manifest,
            received,
            total
        }),
        (proptest::option::of(digest()), 0..Refusal::ALL.len())
            .prop_map(|(manifest, r)| Event::Refused { manifest, reason: Refusal::ALL[r] }),
        digest().prop_map(|manifest| Event::Installed { manifest }),
        (digest(), version()).prop_map(|(manifest, version)| Event::Confirmed { manifest, version }),
        (proptest::option::of(digest()), revert_reason())
            .prop_map(|(manifest, reason)| Event::Reverted { manifest, reason }),
        (digest(), any::<u32>()).prop_map(|(manifest, version)| Event::ConfigApplied { manifest, version }),
        (digest(), any::<u32>()).prop_map(|(manifest, version)| Event::ConfigConfirmed { manifest, version }),
        (proptest::option::of(digest()), revert_reason())
            .prop_map(|(manifest, reason)| Event::ConfigReverted { manifest, reason }),
        digest().prop_map(|manifest| Event::Decommissioned { manifest }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Round trips

/// Encodes `$v`, decodes it as `$ty` (bounds included), and checks both the value and the bytes.
macro_rules! prop_assert_round_trip {
    ($ty:ty, $v:expr) => {{
        let v = $v;
        let bytes = encode(&v);
        let back: Result<$ty, Refusal> = decode(&bytes);
        prop_assert_eq!(back.as_ref(), Ok(&v));
        prop_assert_eq!(encode(&back.unwrap()), bytes);
    }};
}

proptest! {
    #[test]
    fn every_manifest_survives_a_round_trip(m in manifest_in()) {
        prop_assert_round_trip!(Manifest<'_>, m.manifest());
    }

    #[test]
    fn every_delivery_survives_a_round_trip(
        body in vec(any::<u8>(), 0..=600),
        signer in digest(),
        sig in signature(),
        approvals in vec(approval(), 0..=MAX_APPROVALS),
        proof in proof(),
    ) {
        let d = Delivery {
            manifest: Signed { body: &body, signer, signature: sig },
            approvals: heapless::Vec::from_slice(&approvals).unwrap(),
            proof,
        };
        prop_assert_round_trip!(Delivery<'_>, d);
    }

    #[test]
    fn every_trust_root_survives_a_round_trip(root in trust_root()) {
        prop_assert_round_trip!(TrustRoot, root);
    }

    #[test]
    fn every_signed_trust_root_survives_a_round_trip(
        // Bounded so the whole envelope stays within MAX_TRUST_ROOT (longer ones are refused,
        // see checks.rs).
        body in vec(any::<u8>(), 0..=1500),
        sigs in vec((digest(), signature()), 0..=airlock_proto::limits::MAX_ROOT_SIGNATURES),
    ) {
        let signatures =
            sigs.into_iter().map(|(key, signature)| airlock_proto::RootSignature { key, signature }).collect();
        prop_assert_round_trip!(SignedTrustRoot<'_>, SignedTrustRoot { body: &body, signatures });
    }

    #[test]
    fn every_command_survives_a_round_trip(
        device in device_id(),
        sequence in any::<u64>(),
        (issued_at, expires_at) in lifetime(),
        action in command_action(),
    ) {
        prop_assert_round_trip!(Command<'_>, Command { device: &device, sequence, issued_at, expires_at, action });
    }

    #[test]
    fn every_report_survives_a_round_trip(
        device in device_id(),
        counter in any::<u64>(),
        at in any::<u64>(),
        event in event(),
    ) {
        prop_assert_round_trip!(Report<'_>, Report { device: &device, counter, at, event });
    }

    #[test]
    fn every_chunk_survives_a_round_trip(
        image in digest(),
        offset in any::<u32>(),
        data in vec(any::<u8>(), 0..=MAX_CHUNK),
    ) {
        prop_assert_round_trip!(Chunk<'_>, Chunk { image, offset, data: &data });
    }

    #[test]
    fn every_chunk_request_survives_a_round_trip(image in digest(), offset in any::<u32>(), len in any::<u32>()) {
        prop_assert_round_trip!(ChunkRequest, ChunkRequest { image, offset, len });
    }

    #[test]
    fn every_inclusion_proof_survives_a_round_trip(p in proof()) {
        prop_assert_round_trip!(InclusionProof, p);
    }
}

// ---------------------------------------------------------------------------------------------
// Bit flips

/// The encoded length of `v`.
fn len_of<T: serde::Serialize + ?Sized>(v: &T) -> usize {
    postcard::to_allocvec(v).unwrap().len()
}

/// Consecutive regions of an encoded object.
#[derive(Debug)]
struct Layout<R> {
    regions: Vec<(Range<usize>, R)>,
    end: usize,
}

impl<R: Copy> Layout<R> {
    fn new() -> Self {
        Layout { regions: Vec::new(), end: 0 }
    }

    fn push(&mut self, len: usize, r: R) {
        self.regions.push((self.end..self.end + len, r));
        self.end += len;
    }

    /// The region holding byte `at`.
    fn at(&self, at: usize) -> R {
        self.regions.iter().find(|(range, _)| range.contains(&at)).map(|(_, r)| *r).unwrap()
    }
}

/// Flips bit `bit` (0 = least significant bit of byte 0).
fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[bit / 8] ^= 1 << (bit % 8);
    v
}

/// Regions of a `Signed` envelope.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Envelope {
    LengthPrefix,
    Body,
    Signer,
    Signature,
}

fn envelope(s: &Signed<'_>) -> Layout<Envelope> {
    let mut l = Layout::new();
    l.push(len_of(&(s.body.len() as u64)), Envelope::LengthPrefix);
    l.push(s.body.len(), Envelope::Body);
    l.push(32, Envelope::Signer);
    l.push(64, Envelope::Signature);
    l
}

/// What a flip in a `Signed` envelope causes, whatever the body: the length prefix fixes the
/// total length, the signature is checked before a byte of the body is decoded.
fn envelope_refusal(r: Envelope) -> Refusal {
    match r {
        Envelope::LengthPrefix => Refusal::Malformed,
        Envelope::Body | Envelope::Signature => Refusal::BadSignature,
        Envelope::Signer => Refusal::UnknownKey,
    }
}

/// Checks every flip in `flips` of the signed message `bytes`, accepted by `accept`.
fn check_envelope_flips(
    bytes: &[u8],
    flips: &[Index],
    accept: impl Fn(&[u8]) -> Result<(), Refusal>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(accept(bytes), Ok(()), "unflipped message refused");
    let s: Signed<'_> = decode(bytes).unwrap();
    let layout = envelope(&s);
    prop_assert_eq!(layout.end, bytes.len());
    for f in flips {
        let bit = f.index(bytes.len() * 8);
        let region = layout.at(bit / 8);
        prop_assert_eq!(accept(&flip(bytes, bit)), Err(envelope_refusal(region)), "bit {} ({:?})", bit, region);
    }
    Ok(())
}

/// Regions of a `Delivery`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum InDelivery {
    Manifest(Envelope),
    ApprovalCount,
    Approver,
    Decision,
    ApprovalSignature,
    ProofIndex,
    PathLength,
    PathHash,
}

fn delivery_layout(d: &Delivery<'_>) -> Layout<InDelivery> {
    let mut l = Layout::new();
    for (range, r) in envelope(&d.manifest).regions {
        l.push(range.len(), InDelivery::Manifest(r));
    }
    l.push(len_of(&(d.approvals.len() as u64)), InDelivery::ApprovalCount);
    for _ in &d.approvals {
        l.push(32, InDelivery::Approver);
        l.push(1, InDelivery::Decision);
        l.push(64, InDelivery::ApprovalSignature);
    }
    l.push(len_of(&d.proof.index), InDelivery::ProofIndex);
    l.push(len_of(&(d.proof.path.len() as u64)), InDelivery::PathLength);
    l.push(32 * d.proof.path.len(), InDelivery::PathHash);
    l
}

/// The refusals a flip of bit `bit` (within its byte) in region `r` of a delivery can cause.
///
/// Where a flip changes a length, the rest of the message is read at the wrong offsets; that
/// almost always ends in `Malformed`, but a shifted parse can by chance decode, and then the
/// first check over the shifted fields refuses it. Those second outcomes are listed too.
fn delivery_refusals(r: InDelivery, bit: usize) -> &'static [Refusal] {
    use Refusal::*;
    match r {
        InDelivery::Manifest(Envelope::LengthPrefix) => &[Malformed, UnknownKey],
        InDelivery::Manifest(e) => match envelope_refusal(e) {
            BadSignature => &[BadSignature],
            _ => &[UnknownKey],
        },
        InDelivery::ApprovalCount => &[Malformed, QuorumShort, UnknownApprover],
        InDelivery::Approver => &[UnknownApprover],
        // 00 -> 01 turns Approve into Reject, which the approver did not sign; any other bit
        // makes an invalid variant or a varint that swallows the next byte.
        InDelivery::Decision if bit % 8 == 0 => &[BadApprovalSignature],
        InDelivery::Decision => &[Malformed, BadApprovalSignature],
        InDelivery::ApprovalSignature => &[BadApprovalSignature],
        // The high bit makes the index a two-byte varint that swallows the path length.
        InDelivery::ProofIndex if bit % 8 == 7 => &[Malformed],
        InDelivery::ProofIndex | InDelivery::PathHash => &[NotInCohort],
        InDelivery::PathLength => &[Malformed],
    }
}

/// A valid delivery to one device of a cohort of `n`, for any action, tier Expert (which every
/// floor of the fixture rules allows) approved by bob (expert) and alice.
#[derive(Debug)]
struct DeliveryCase {
    bytes: Vec<u8>,
    device: String,
}

fn delivery_case() -> impl Strategy<Value = DeliveryCase> {
    (1usize..=40, any::<Index>(), 0..3usize, any::<u64>(), any::<bool>()).prop_map(
        |(n, device, kind, sequence, swap)| {
            let ids: Vec<String> = (0..n).map(|i| format!("dev-{i:03}")).collect();
            let tree = CohortTree::new(&ids);
            let index = device.index(n);
            let base = [firmware_manifest(), config_manifest(), decommission_manifest()][kind];
            let m = Manifest {
                sequence,
                cohort: Cohort { root: tree.root(), size: tree.size() },
                tier: Tier::Expert,
                ..base
            };
            let signed = sign_manifest(&m);
            let digest = airlock_proto::manifest_digest(&signed.body);
            let seeds = if swap { [ALICE, BOB] } else { [BOB, ALICE] };
            let approvals: Vec<Approval> = seeds.iter().map(|s| approve(digest, Decision::Approve, &key(*s))).collect();
            let bytes = airlock_proto::build::delivery(&signed, &approvals, tree.proof(index).unwrap()).unwrap();
            DeliveryCase { bytes, device: ids[index].clone() }
        },
    )
}

/// Regions of a `SignedTrustRoot`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum InRoot {
    LengthPrefix,
    Body,
    SignatureCount,
    Key,
    Signature,
}

fn root_layout(s: &SignedTrustRoot<'_>) -> Layout<InRoot> {
    let mut l = Layout::new();
    l.push(len_of(&(s.body.len() as u64)), InRoot::LengthPrefix);
    l.push(s.body.len(), InRoot::Body);
    l.push(len_of(&(s.signatures.len() as u64)), InRoot::SignatureCount);
    for _ in &s.signatures {
        l.push(32, InRoot::Key);
        l.push(64, InRoot::Signature);
    }
    l
}

/// Seeds 0x01..=0x05 as root keys.
const ROOT_POOL: [u8; 5] = [0x01, 0x02, 0x03, 0x04, 0x05];

/// A self-signed TrustRoot, signed by exactly `root_threshold` of its root keys, in any order.
fn initial_root_case() -> impl Strategy<Value = (Vec<u8>, TrustRoot)> {
    proptest::sample::subsequence(ROOT_POOL.to_vec(), 1..=5)
        .prop_flat_map(|seeds| {
            let keys: Vec<PublicKey> = seeds.iter().map(|s| pk(*s)).collect();
            (Just(seeds.clone()), trust_root_with(keys), Just(seeds).prop_shuffle())
        })
        .prop_map(|(_, root, order)| {
            let root = TrustRoot { expires_at: root.expires_at.max(NOW + 1), ..root };
            let signers = &order[..usize::from(root.root_threshold)];
            (sign_root(&root, signers), root)
        })
}

/// A rotation from fixture TrustRoot v1 to a random v2 with root keys 0x02, 0x03, 0x04, signed by
/// 0x01, 0x03, 0x04 (and maybe also 0x02) in any order.
fn rotation_case() -> impl Strategy<Value = Vec<u8>> {
    let keys: Vec<PublicKey> = NEXT_ROOT_SEEDS.iter().map(|s| pk(*s)).collect();
    (trust_root_with(keys), 2..=u32::MAX, any::<bool>(), Just(vec![0x01u8, 0x03, 0x04, 0x02]).prop_shuffle()).prop_map(
        |(root, version, extra, order)| {
            let root = TrustRoot { version, expires_at: root.expires_at.max(NOW + 1), root_threshold: 2, ..root };
            let signers: Vec<u8> = order.into_iter().filter(|s| extra || *s != 0x02).collect();
            sign_root(&root, &signers)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_single_bit_flip_of_a_delivery_is_refused(case in delivery_case(), flips in vec(any::<Index>(), 16)) {
        let root = common::trust_root();
        let accept = |b: &[u8]| accept_delivery(b, &root, &case.device, Tier::AutoPass);
        prop_assert_eq!(accept(&case.bytes), Ok(()));
        let d: Delivery<'_> = decode(&case.bytes).unwrap();
        let layout = delivery_layout(&d);
        prop_assert_eq!(layout.end, case.bytes.len());
        for f in &flips {
            let bit = f.index(case.bytes.len() * 8);
            let region = layout.at(bit / 8);
            let got = accept(&flip(&case.bytes, bit));
            let allowed = delivery_refusals(region, bit);
            prop_assert!(
                matches!(got, Err(e) if allowed.contains(&e)),
                "bit {} ({:?}): got {:?}, expected one of {:?}", bit, region, got, allowed
            );
        }
    }

    #[test]
    fn any_single_bit_flip_of_an_initial_trust_root_is_refused(
        (bytes, root) in initial_root_case(),
        flips in vec(any::<Index>(), 16),
    ) {
        prop_assert_eq!(accept_initial(&bytes, NOW), Ok(root));
        let s: SignedTrustRoot<'_> = decode(&bytes).unwrap();
        let layout = root_layout(&s);
        prop_assert_eq!(layout.end, bytes.len());
        for f in &flips {
            let bit = f.index(bytes.len() * 8);
            let region = layout.at(bit / 8);
            let got = accept_initial(&flip(&bytes, bit), NOW);
            let allowed: &[Refusal] = match region {
                InRoot::LengthPrefix | InRoot::SignatureCount => &[Refusal::Malformed],
                // The body decodes (or not) before any signature is checked; a flipped root key
                // takes a signer out of the root, which makes its signature a foreign one.
                InRoot::Body => &[Refusal::Malformed, Refusal::BadSignature, Refusal::UnknownKey],
                // At provisioning every signer must be one of the root's own keys.
                InRoot::Key => &[Refusal::UnknownKey],
                InRoot::Signature => &[Refusal::BadSignature],
            };
            prop_assert!(
                matches!(got, Err(e) if allowed.contains(&e)),
                "bit {} ({:?}): got {:?}, expected one of {:?}", bit, region, got, allowed
            );
        }
    }

    #[test]
    fn any_single_bit_flip_of_a_trust_root_rotation_is_refused(
        bytes in rotation_case(),
        flips in vec(any::<Index>(), 16),
    ) {
        let current = common::trust_root();
        prop_assert!(accept_rotation(&bytes, &current, NOW).is_ok(), "{:?}", accept_rotation(&bytes, &current, NOW));
        let s: SignedTrustRoot<'_> = decode(&bytes).unwrap();
        let layout = root_layout(&s);
        prop_assert_eq!(layout.end, bytes.len());
        for f in &flips {
            let bit = f.index(bytes.len() * 8);
            let region = layout.at(bit / 8);
            let got = accept_rotation(&flip(&bytes, bit), &current, NOW);
            let allowed: &[Refusal] = match region {
                InRoot::LengthPrefix | InRoot::SignatureCount => &[Refusal::Malformed],
                // A flipped new root key makes its signer a key of neither root.
                InRoot::Body => &[Refusal::Malformed, Refusal::BadSignature, Refusal::UnknownKey],
                InRoot::Key => &[Refusal::UnknownKey],
                InRoot::Signature => &[Refusal::BadSignature],
            };
            prop_assert!(
                matches!(got, Err(e) if allowed.contains(&e)),
                "bit {} ({:?}): got {:?}, expected one of {:?}", bit, region, got, allowed
            );
        }
    }

    #[test]
    fn any_single_bit_flip_of_a_signed_command_is_refused(
        device in device_id(),
        sequence in any::<u64>(),
        (issued_at, expires_at) in lifetime(),
        action in command_action(),
        flips in vec(any::<Index>(), 16),
    ) {
        let c = Command { device: &device, sequence, issued_at, expires_at, action };
        let bytes = SignedOwned::sign(Domain::Command, &c, &key(RELEASE_SEED)).to_bytes();
        let root = common::trust_root();
        check_envelope_flips(&bytes, &flips, |b| accept_command(b, &root).map(|_| ()))?;
    }

    #[test]
    fn any_single_bit_flip_of_a_signed_report_is_refused(
        device in device_id(),
        counter in any::<u64>(),
        at in any::<u64>(),
        event in event(),
        flips in vec(any::<Index>(), 16),
    ) {
        let r = Report { device: &device, counter, at, event };
        let bytes = SignedOwned::sign(Domain::Report, &r, &key(DEVICE_SEED)).to_bytes();
        check_envelope_flips(&bytes, &flips, |b| accept_report(b, &pk(DEVICE_SEED)).map(|_| ()))?;
    }
}

/// The golden delivery, every bit: the random cases above sample bits, this covers all of them
/// once for the message in `tests/vectors/delivery.hex`.
#[test]
fn every_single_bit_flip_of_the_golden_delivery_is_refused() {
    let bytes = delivery();
    let root = common::trust_root();
    assert_eq!(accept_delivery(&bytes, &root, DEVICE, Tier::AutoPass), Ok(()));
    let d: Delivery<'_> = decode(&bytes).unwrap();
    let layout = delivery_layout(&d);
    for bit in 0..bytes.len() * 8 {
        let region = layout.at(bit / 8);
        let got = accept_delivery(&flip(&bytes, bit), &root, DEVICE, Tier::AutoPass);
        let allowed = delivery_refusals(region, bit);
        assert!(
            matches!(got, Err(e) if allowed.contains(&e)),
            "bit {bit} ({region:?}): got {got:?}, expected {allowed:?}"
        );
    }
}

/// Same for the golden signed command and report.
#[test]
fn every_single_bit_flip_of_the_golden_command_and_report_is_refused() {
    let root = common::trust_root();
    type Accept<'r> = Box<dyn Fn(&[u8]) -> Result<(), Refusal> + 'r>;
    let cases: [(Vec<u8>, Accept<'_>); 2] = [
        (signed_command().to_bytes(), Box::new(|b| accept_command(b, &root).map(|_| ()))),
        (signed_report().to_bytes(), Box::new(|b| accept_report(b, &pk(DEVICE_SEED)).map(|_| ()))),
    ];
    for (bytes, accept) in cases {
        assert_eq!(accept(&bytes), Ok(()));
        let s: Signed<'_> = decode(&bytes).unwrap();
        let layout = envelope(&s);
        for bit in 0..bytes.len() * 8 {
            let region = layout.at(bit / 8);
            assert_eq!(accept(&flip(&bytes, bit)), Err(envelope_refusal(region)), "bit {bit} ({region:?})");
        }
    }
}
