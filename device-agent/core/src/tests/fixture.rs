//! A fleet (root, release, approver and requester keys), a provisioned device on in-memory
//! flash, and a loop that plays the runtime: it answers chunk requests, reboots and runs health
//! checks as the outputs ask.

use crate::mem_flash::MemFlash;
use crate::{provision, Agent, Error, Factory, Identity, Input, Layout, Output, Settings};
use airlock_proto::build::{approve, delivery, sign_trust_root, SignedOwned};
use airlock_proto::merkle::tree::CohortTree;
use airlock_proto::sig::public_key;
use airlock_proto::*;
use ed25519_dalek::SigningKey;
use std::collections::VecDeque;

/// 2027-01-15, unix seconds.
pub const NOW: u64 = 1_800_000_000;

pub const DEVICE: &str = "dev-0003";
pub const HARDWARE: &str = "gw-m4";
pub const SLOT: u32 = 64 * 1024;
pub const CHUNK: u32 = 1024;

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn layout() -> Layout {
    Layout::contiguous(MemFlash::ERASE as u32, SLOT)
}

/// Deterministic image bytes for a version.
pub fn image(version: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(u32::from(version)) as u8).collect()
}

pub fn sha256(b: &[u8]) -> Digest {
    use sha2::Digest as _;
    Digest::from(<[u8; 32]>::from(sha2::Sha256::digest(b)))
}

pub fn rules() -> TierRules {
    let req = |approvals, roles| Requirement { approvals, roles };
    TierRules {
        requirements: [req(0, Roles::NONE), req(1, Roles::APPROVER), req(2, Roles::APPROVER), req(2, Roles::EXPERT)],
        size_floors: heapless::Vec::from_slice(&[
            SizeFloor { min_size: 100, tier: Tier::Single },
            SizeFloor { min_size: 1000, tier: Tier::TwoPerson },
        ])
        .unwrap(),
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

/// Key seeds: roots 1-3, release 10, approvers 20.. (20, 21 approvers; 22 expert; 23 break-glass;
/// 24 security), requester 30, an outsider 99.
pub struct Fleet {
    pub roots: Vec<SigningKey>,
    pub release: SigningKey,
    pub approvers: Vec<SigningKey>,
    pub requester: SigningKey,
    pub trust: TrustRoot,
    pub trust_bytes: Vec<u8>,
    pub cohort: Vec<String>,
}

impl Fleet {
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
            release_keys: heapless::Vec::from_slice(&[public_key(&release)]).unwrap(),
            approvers: approvers.iter().zip(roles).map(|(k, roles)| Approver { key: public_key(k), roles }).collect(),
            rules: rules(),
        };
        let trust_bytes = sign_trust_root(&trust, &[&roots[0], &roots[1]]);
        let cohort = (0..5).map(|i| format!("dev-{i:04}")).collect();
        Fleet { roots, release, approvers, requester: key(30), trust, trust_bytes, cohort }
    }

    pub fn firmware(&self, version: Version, img: &[u8]) -> ManifestSpec {
        ManifestSpec::new(
            self,
            Action::Firmware(Firmware {
                hardware: HARDWARE,
                version,
                security_counter: 1,
                image_digest: sha256(img),
                image_size: img.len() as u32,
                chunk_size: CHUNK,
            }),
        )
    }
}

/// A manifest with defaults a test changes field by field.
pub struct ManifestSpec {
    pub m: Manifest<'static>,
    pub approvers: Vec<SigningKey>,
    pub release: SigningKey,
    pub cohort: Vec<String>,
    /// Index of the proof to attach (the device's own by default).
    pub proof_for: String,
    /// Declared cohort size, if different from the tree's.
    pub declared_size: Option<u32>,
}

impl ManifestSpec {
    pub fn new(fleet: &Fleet, action: Action<'static>) -> Self {
        let cohort = fleet.cohort.clone();
        let tree = CohortTree::new(&cohort);
        ManifestSpec {
            m: Manifest {
                proposal: 7,
                revision: 1,
                sequence: 100,
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
                requester: public_key(&fleet.requester),
            },
            approvers: vec![fleet.approvers[0].clone()],
            release: fleet.release.clone(),
            cohort,
            proof_for: DEVICE.to_string(),
            declared_size: None,
        }
    }

    pub fn signed(&self) -> SignedOwned {
        let mut m = self.m;
        let tree = CohortTree::new(&self.cohort);
        m.cohort = Cohort { root: tree.root(), size: self.declared_size.unwrap_or(tree.size()) };
        SignedOwned::sign(Domain::Manifest, &m, &self.release)
    }

    pub fn approvals(&self, signed: &SignedOwned) -> Vec<Approval> {
        let digest = manifest_digest(&signed.body);
        self.approvers.iter().map(|k| approve(digest, Decision::Approve, k)).collect()
    }

    /// The encoded delivery.
    pub fn bytes(&self) -> Vec<u8> {
        let signed = self.signed();
        self.bytes_with(&signed, &self.approvals(&signed))
    }

    pub fn bytes_with(&self, signed: &SignedOwned, approvals: &[Approval]) -> Vec<u8> {
        let tree = CohortTree::new(&self.cohort);
        let index = self.cohort.iter().position(|d| *d == self.proof_for).unwrap_or(0);
        let mut proof = tree.proof(index).unwrap();
        if !self.cohort.contains(&self.proof_for) {
            proof.index = 0;
        }
        delivery(signed, approvals, proof).unwrap()
    }

    pub fn digest(&self) -> Digest {
        manifest_digest(&self.signed().body)
    }
}

pub fn identity() -> Identity {
    Identity {
        device_id: DEVICE.try_into().unwrap(),
        hardware: HARDWARE.try_into().unwrap(),
        min_tier: Tier::AutoPass,
        key_seed: [42; 32],
    }
}

pub const FACTORY_LEN: usize = 9_000;

/// A flash with the factory image (1.0.0) in slot A and the device provisioned.
pub fn provisioned(fleet: &Fleet, identity: &Identity) -> MemFlash {
    let l = layout();
    let mut flash = MemFlash::new(l.end() as usize);
    let img = image(1, FACTORY_LEN);
    let a = l.slots[0] as usize;
    flash.bytes_mut()[a..a + img.len()].copy_from_slice(&img);
    let factory = Factory { version: Version::new(1, 0, 0), security_counter: 1, size: img.len() as u32 };
    provision(&mut flash, &l, identity, &fleet.trust_bytes, factory, NOW).unwrap();
    flash
}

/// Opens and boots a device.
pub fn booted(flash: MemFlash) -> Agent<MemFlash> {
    let mut agent = Agent::open(flash, layout(), Settings::default()).unwrap();
    agent.handle(NOW, Input::Boot).unwrap();
    agent
}

pub fn device(fleet: &Fleet) -> Agent<MemFlash> {
    booted(provisioned(fleet, &identity()))
}

/// Plays the runtime. Chunk requests are answered from `image`, reboots become boots, test
/// boots and trial configs get `health`. Returns every output, or the first error.
pub struct Runtime<'i> {
    pub image: &'i [u8],
    pub health: bool,
    pub now: u64,
    pub outputs: Vec<Output>,
    /// Chunk indices to drop once (simulating a lossy link).
    pub drop_once: Vec<u32>,
}

impl<'i> Runtime<'i> {
    pub fn new(image: &'i [u8]) -> Self {
        Runtime { image, health: true, now: NOW, outputs: Vec::new(), drop_once: Vec::new() }
    }

    pub fn chunk_bytes(&self, offset: u32, len: u32) -> Vec<u8> {
        let end = ((offset + len) as usize).min(self.image.len());
        let chunk = Chunk { image: sha256(self.image), offset, data: &self.image[offset as usize..end] };
        postcard::to_allocvec(&chunk).unwrap()
    }

    pub fn run(&mut self, agent: &mut Agent<MemFlash>, first: Input<'_>) -> Result<(), Error> {
        let mut queue: VecDeque<Owned> = VecDeque::new();
        let first_out = agent.handle(self.now, first)?;
        self.absorb(first_out, &mut queue);
        let mut steps = 0;
        while let Some(input) = queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "runtime loop did not settle");
            let out = match &input {
                Owned::Boot => agent.handle(self.now, Input::Boot)?,
                Owned::Health(ok) => agent.handle(self.now, Input::Health(*ok))?,
                Owned::Chunk(b) => agent.handle(self.now, Input::Chunk(b))?,
                Owned::Tick => {
                    self.now += 10;
                    agent.handle(self.now, Input::Tick)?
                }
            };
            self.absorb(out, &mut queue);
        }
        Ok(())
    }

    fn absorb(&mut self, out: crate::Outputs, queue: &mut VecDeque<Owned>) {
        for o in out {
            self.outputs.push(o);
            match o {
                Output::RequestChunks(r) => {
                    let mut at = r.offset;
                    while at < r.offset + r.len {
                        let idx = at / CHUNK;
                        if let Some(p) = self.drop_once.iter().position(|&d| d == idx) {
                            self.drop_once.remove(p);
                            queue.push_back(Owned::Tick);
                        } else {
                            queue.push_back(Owned::Chunk(self.chunk_bytes(at, CHUNK.min(r.offset + r.len - at))));
                        }
                        at += CHUNK;
                    }
                }
                Output::Reboot { .. } => queue.push_back(Owned::Boot),
                Output::Run { testing: true, .. } | Output::ApplyConfig { testing: true, .. } => {
                    queue.push_back(Owned::Health(self.health))
                }
                _ => {}
            }
        }
    }

    pub fn events(&self) -> Vec<Event> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Report(e) => Some(*e),
                _ => None,
            })
            .collect()
    }
}

enum Owned {
    Boot,
    Health(bool),
    Chunk(Vec<u8>),
    Tick,
}

/// The image a device would boot, read back from flash and checked against its record.
pub fn running_image(agent: &mut Agent<MemFlash>) -> (Version, Digest) {
    let state = agent.state().clone();
    let meta = state.active_image().copied().unwrap();
    let off = layout().slots[usize::from(state.active)] as usize;
    let bytes = agent.flash_mut().bytes()[off..off + meta.size as usize].to_vec();
    assert_eq!(sha256(&bytes), meta.digest, "active slot content does not match its record");
    (meta.version, meta.digest)
}

pub fn refusal(r: Result<crate::Outputs, Error>) -> Refusal {
    match r {
        Err(Error::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}
