//! A deterministic fleet and one valid example of every device-bound message.
//!
//! Copied in spirit from `device-agent/core/src/tests/fixture.rs` (test-only there): the same key
//! seeds, TrustRoot and tier rules, so a crash found here reads like a failing agent-core test.
//! Key seeds: roots 1-3 (rotation adds 4-6), release 10, approvers 20-24 (20, 21 approvers;
//! 22 approver + expert; 23 break-glass; 24 approver + security), requester 30.

use airlock_proto::build::{approve, delivery, sign_trust_root, SignedOwned};
use airlock_proto::merkle::tree::CohortTree;
use airlock_proto::sig::public_key;
use airlock_proto::{
    codec, manifest_digest, Action, Approver, BreakGlassRule, Chunk, Cohort, Command, CommandAction, Config, Decision,
    Digest, Domain, Firmware, Manifest, Requirement, Roles, Rollback, SizeFloor, Tier, TierRules, TrustRoot, Version,
};
use ed25519_dalek::SigningKey;
use sha2::{Digest as _, Sha256};

/// The device's clock in every target: 2027-01-15, in milliseconds.
pub const NOW: u64 = 1_800_000_000;
/// The fuzzed device.
pub const DEVICE: &str = "dev-0003";
/// Its hardware model.
pub const HARDWARE: &str = "gw-m4";
/// Image slot size.
pub const SLOT: u32 = 64 * 1024;
/// Chunk size of the fuzzed download: small, so that a whole image is a few short frames.
pub const CHUNK: u32 = 256;
/// Size of the image the firmware delivery announces: three full chunks and a short one.
pub const IMAGE_LEN: usize = 1000;
/// Size of the factory image in slot A (hashed at every boot; kept small for speed).
pub const FACTORY_LEN: usize = 2048;
/// Sequence of every seed manifest.
pub const SEQUENCE: u64 = 100;
/// A config payload.
pub const CONFIG_PAYLOAD: &[u8] = b"telemetry_interval=60\n";

/// The Ed25519 key with seed `[seed; 32]`.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// SHA-256 of `b`.
pub fn sha256(b: &[u8]) -> Digest {
    Digest::from(<[u8; 32]>::from(Sha256::digest(b)))
}

/// Deterministic image bytes for a version (the fixture's formula).
pub fn image(version: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(u32::from(version)) as u8).collect()
}

/// The tier rules of the fixture.
pub fn rules() -> TierRules {
    let req = |approvals, roles| Requirement { approvals, roles };
    let floors = [SizeFloor { min_size: 100, tier: Tier::Single }, SizeFloor { min_size: 1000, tier: Tier::TwoPerson }];
    TierRules {
        requirements: [req(0, Roles::NONE), req(1, Roles::APPROVER), req(2, Roles::APPROVER), req(2, Roles::EXPERT)],
        size_floors: heapless::Vec::from_slice(&floors).unwrap_or_default(),
        no_rollback: Tier::Single,
        security: Tier::TwoPerson,
        kind: [Tier::AutoPass, Tier::AutoPass, Tier::Expert],
        break_glass: BreakGlassRule {
            requirement: req(1, Roles::BREAK_GLASS),
            max_cohort: 10,
            max_lifetime_secs: 3600,
        },
    }
}

/// Keys, the installed TrustRoot (v1, 2-of-3 root keys) and the cohort.
#[derive(Debug)]
pub struct Fleet {
    /// Root keys 1-3.
    pub roots: Vec<SigningKey>,
    /// The one release key.
    pub release: SigningKey,
    /// Approvers 20-24.
    pub approvers: Vec<SigningKey>,
    /// The requester (never an approver).
    pub requester: SigningKey,
    /// The TrustRoot the device is provisioned with.
    pub trust: TrustRoot,
    /// Its encoded `SignedTrustRoot`, signed by roots 1 and 2.
    pub trust_bytes: Vec<u8>,
    /// Device ids of the cohort (the device is index 3).
    pub cohort: Vec<String>,
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}

impl Fleet {
    /// The fleet of the fixture.
    pub fn new() -> Self {
        let roots: Vec<_> = (1..=3).map(key).collect();
        let release = key(10);
        let approvers: Vec<_> = (20..=24).map(key).collect();
        let roles = [
            Roles::APPROVER,
            Roles::APPROVER,
            Roles::APPROVER.union(Roles::EXPERT),
            Roles::BREAK_GLASS,
            Roles::APPROVER.union(Roles::SECURITY),
        ];
        let trust = TrustRoot {
            version: 1,
            expires_at: NOW + 365 * 86_400,
            root_threshold: 2,
            root_keys: roots.iter().map(public_key).collect(),
            release_keys: core::iter::once(public_key(&release)).collect(),
            approvers: approvers.iter().zip(roles).map(|(k, roles)| Approver { key: public_key(k), roles }).collect(),
            rules: rules(),
        };
        let trust_bytes = sign_trust_root(&trust, &[&roots[0], &roots[1]]);
        let cohort = (0..5).map(|i| format!("dev-{i:04}")).collect();
        Fleet { roots, release, approvers, requester: key(30), trust, trust_bytes, cohort }
    }

    /// The image the firmware delivery announces.
    pub fn image(&self) -> Vec<u8> {
        image(2, IMAGE_LEN)
    }

    /// A manifest with the fixture's defaults (tier `Single`, sequence [`SEQUENCE`]).
    pub fn manifest<'a>(&self, action: Action<'a>) -> Manifest<'a> {
        let tree = CohortTree::new(&self.cohort);
        Manifest {
            proposal: 7,
            revision: 1,
            sequence: SEQUENCE,
            issued_at: NOW - 60,
            expires_at: NOW + 86_400,
            action,
            cohort: Cohort { root: tree.root(), size: tree.size() },
            rollout_plan: Digest::from([7; 32]),
            rollback: Rollback::Previous,
            security: false,
            break_glass: false,
            tier: Tier::Single,
            policy: Digest::from([9; 32]),
            requester: public_key(&self.requester),
        }
    }

    /// Signs `m` with the release key, has `approvers` approve it, and attaches the device's
    /// inclusion proof.
    pub fn delivery(&self, m: &Manifest<'_>, approvers: &[&SigningKey]) -> Vec<u8> {
        let signed = SignedOwned::sign(Domain::Manifest, m, &self.release);
        let digest = manifest_digest(&signed.body);
        let approvals: Vec<_> = approvers.iter().map(|k| approve(digest, Decision::Approve, k)).collect();
        let tree = CohortTree::new(&self.cohort);
        let index = self.cohort.iter().position(|d| d == DEVICE).unwrap_or(0);
        let proof = tree.proof(index).unwrap_or_else(|| unreachable!("device is in the cohort"));
        delivery(&signed, &approvals, proof).unwrap_or_else(|r| unreachable!("{r}"))
    }

    /// Firmware 2.0.0 ([`Fleet::image`]), tier `Single`, one approver.
    pub fn firmware_manifest(&self) -> Manifest<'static> {
        let img = self.image();
        self.manifest(Action::Firmware(Firmware {
            hardware: HARDWARE,
            version: Version::new(2, 0, 0),
            security_counter: 1,
            image_digest: sha256(&img),
            image_size: IMAGE_LEN as u32,
            chunk_size: CHUNK,
        }))
    }

    /// The firmware delivery.
    pub fn firmware_delivery(&self) -> Vec<u8> {
        self.delivery(&self.firmware_manifest(), &[&self.approvers[0]])
    }

    /// A config push, tier `Single`, one approver.
    pub fn config_delivery(&self) -> Vec<u8> {
        let m = self.manifest(Action::Config(Config { version: 3, payload: CONFIG_PAYLOAD }));
        self.delivery(&m, &[&self.approvers[0]])
    }

    /// A decommission: its kind floor is `Expert` (two approvers, one an expert).
    pub fn decommission_delivery(&self) -> Vec<u8> {
        let mut m = self.manifest(Action::Decommission);
        m.tier = Tier::Expert;
        self.delivery(&m, &[&self.approvers[0], &self.approvers[2]])
    }

    /// A break-glass firmware push (one break-glass approver, one-hour lifetime).
    pub fn break_glass_delivery(&self) -> Vec<u8> {
        let mut m = self.firmware_manifest();
        m.break_glass = true;
        m.tier = Tier::AutoPass;
        m.expires_at = m.issued_at + 3600;
        self.delivery(&m, &[&self.approvers[3]])
    }

    /// A signed command to the device.
    pub fn command(&self, sequence: u64, action: CommandAction) -> Vec<u8> {
        let cmd = Command { device: DEVICE, sequence, issued_at: NOW - 10, expires_at: NOW + 600, action };
        SignedOwned::sign(Domain::Command, &cmd, &self.release).to_bytes()
    }

    /// Rotation to v2 with new root keys 4-6 (2-of-3), signed by old roots 1, 2 and new 4, 5.
    pub fn rotation_new_keys(&self) -> Vec<u8> {
        let new: Vec<_> = (4..=6).map(key).collect();
        let mut next = self.trust.clone();
        next.version = 2;
        next.root_keys = new.iter().map(public_key).collect();
        sign_trust_root(&next, &[&self.roots[0], &self.roots[1], &new[0], &new[1]])
    }

    /// Rotation to v2 with the same root keys (each old signature counts for both sets).
    pub fn rotation_same_keys(&self) -> Vec<u8> {
        let mut next = self.trust.clone();
        next.version = 2;
        sign_trust_root(&next, &[&self.roots[1], &self.roots[2]])
    }

    /// The encoded chunk `[offset, offset + len)` of [`Fleet::image`].
    pub fn chunk(&self, offset: u32, len: u32) -> Vec<u8> {
        let img = self.image();
        let end = (offset + len).min(IMAGE_LEN as u32) as usize;
        codec::encode(&Chunk { image: sha256(&img), offset, data: &img[offset as usize..end] })
    }
}
