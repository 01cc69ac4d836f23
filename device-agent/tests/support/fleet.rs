//! A fleet (root, release and approver keys; a TrustRoot), deliveries built with airlock-proto's
//! `alloc` builders, and a provisioned device on in-memory flash. The small parts of the core's
//! `tests/fixture.rs` that these tests need, with real time instead of a fixed clock.

use airlock_agent::provision::program_and_provision;
use airlock_agent::{AgentConfig, FileFlash};
use airlock_agent_core::mem_flash::MemFlash;
use airlock_agent_core::Identity;
use airlock_proto::build::{approve, delivery, sign_trust_root, SignedOwned};
use airlock_proto::merkle::tree::CohortTree;
use airlock_proto::sig::public_key;
use airlock_proto::*;
use ed25519_dalek::SigningKey;

pub const HARDWARE: &str = "gw-linux";
pub const SLOT: u32 = 64 * 1024;
pub const CHUNK: u32 = 1024;
pub const FACTORY_LEN: usize = 9_000;

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Deterministic image bytes for a version.
pub fn image(version: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(u32::from(version)) as u8).collect()
}

pub fn sha256(b: &[u8]) -> Digest {
    use sha2::Digest as _;
    Digest::from(<[u8; 32]>::from(sha2::Sha256::digest(b)))
}

fn rules() -> TierRules {
    let req = |approvals, roles| Requirement { approvals, roles };
    TierRules {
        requirements: [req(0, Roles::NONE), req(1, Roles::APPROVER), req(2, Roles::APPROVER), req(2, Roles::EXPERT)],
        size_floors: heapless::Vec::new(),
        no_rollback: Tier::Single,
        security: Tier::TwoPerson,
        kind: [Tier::AutoPass, Tier::AutoPass, Tier::Single],
        break_glass: BreakGlassRule {
            requirement: req(1, Roles::BREAK_GLASS),
            max_cohort: 10,
            max_lifetime_secs: 3600,
        },
    }
}

/// Roots 1-3 (threshold 2), release key 10, approver 20, requester 30; the device key is 42.
pub struct Fleet {
    pub release: SigningKey,
    pub approver: SigningKey,
    pub requester: SigningKey,
    pub trust_bytes: Vec<u8>,
    pub device: String,
    pub cohort: Vec<String>,
    pub device_key: SigningKey,
}

impl Fleet {
    pub fn new(device: &str) -> Self {
        let roots: Vec<_> = (1..=3).map(key).collect();
        let release = key(10);
        let approver = key(20);
        let trust = TrustRoot {
            version: 1,
            expires_at: now() + 365 * 86_400,
            root_threshold: 2,
            root_keys: roots.iter().map(public_key).collect(),
            release_keys: heapless::Vec::from_slice(&[public_key(&release)]).unwrap(),
            approvers: [Approver { key: public_key(&approver), roles: Roles::APPROVER }].into_iter().collect(),
            rules: rules(),
        };
        let trust_bytes = sign_trust_root(&trust, &[&roots[0], &roots[1]]);
        let cohort = vec!["gw-other-1".to_string(), device.to_string(), "gw-other-2".to_string()];
        Fleet {
            release,
            approver,
            requester: key(30),
            trust_bytes,
            device: device.to_string(),
            cohort,
            device_key: key(42),
        }
    }

    pub fn identity(&self) -> Identity {
        Identity {
            device_id: self.device.as_str().try_into().unwrap(),
            hardware: HARDWARE.try_into().unwrap(),
            min_tier: Tier::AutoPass,
            key_seed: self.device_key.to_bytes(),
        }
    }

    /// In-memory flash with the factory image (1.0.0) in slot A, provisioned for the device.
    pub fn flash(&self, config: &AgentConfig) -> MemFlash {
        let mut flash = MemFlash::new(config.layout().end() as usize);
        self.provision(&mut flash, config);
        flash
    }

    /// `DATA/flash.bin`, provisioned the same way.
    pub fn file_flash(&self, config: &AgentConfig) -> FileFlash {
        let mut flash = FileFlash::open(&config.flash_path(), config.flash_size()).unwrap();
        self.provision(&mut flash, config);
        flash
    }

    fn provision<F: embedded_storage::nor_flash::NorFlash>(&self, flash: &mut F, config: &AgentConfig) {
        let img = image(1, FACTORY_LEN);
        let (identity, v1) = (self.identity(), Version::new(1, 0, 0));
        program_and_provision(flash, &config.layout(), &identity, &self.trust_bytes, &img, v1, 1, now()).unwrap();
    }

    fn manifest(&self, sequence: u64, action: Action<'static>) -> Manifest<'static> {
        let tree = CohortTree::new(&self.cohort);
        Manifest {
            proposal: 7,
            revision: 1,
            sequence,
            issued_at: now() - 60,
            expires_at: now() + 86_400,
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

    /// A delivery of `action`; `forge` flips one bit of the release signature. Returns the
    /// encoded delivery and the manifest digest.
    pub fn deliver(&self, sequence: u64, action: Action<'static>, forge: bool) -> (Vec<u8>, Digest) {
        let mut signed = SignedOwned::sign(Domain::Manifest, &self.manifest(sequence, action), &self.release);
        let digest = manifest_digest(&signed.body);
        let approvals = [approve(digest, Decision::Approve, &self.approver)];
        if forge {
            signed.signature.0[0] ^= 1;
        }
        let tree = CohortTree::new(&self.cohort);
        let index = self.cohort.iter().position(|d| *d == self.device).unwrap();
        (delivery(&signed, &approvals, tree.proof(index).unwrap()).unwrap(), digest)
    }

    pub fn firmware(&self, sequence: u64, version: Version, img: &[u8], forge: bool) -> (Vec<u8>, Digest) {
        let fw = Firmware {
            hardware: HARDWARE,
            version,
            security_counter: 1,
            image_digest: sha256(img),
            image_size: img.len() as u32,
            chunk_size: CHUNK,
        };
        self.deliver(sequence, Action::Firmware(fw), forge)
    }

    pub fn config(&self, sequence: u64, version: u32, payload: &'static [u8]) -> (Vec<u8>, Digest) {
        self.deliver(sequence, Action::Config(Config { version, payload }), false)
    }
}
