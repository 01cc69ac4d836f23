//! A controller-side release of a two-person-approved firmware manifest reaches exactly its
//! cohort: members install it, nobody else is sent it, and an outsider handed a member's
//! delivery refuses it on its own.
// A test crate: its helpers assert by unwrapping, like its tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_agent_core::harness::{Served, VirtualDevice};
use airlock_agent_core::{Error, Factory, Identity, Layout};
use airlock_controller::cohort::Cohort;
use airlock_controller::release::{Release, ReleaseError};
use airlock_proto::build::{approve, sign_trust_root, SignedOwned};
use airlock_proto::sig::public_key;
use airlock_proto::*;
use ed25519_dalek::SigningKey;

/// Unix seconds.
const NOW: u64 = 1_800_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn sha256(b: &[u8]) -> Digest {
    use sha2::Digest as _;
    Digest::from(<[u8; 32]>::from(sha2::Sha256::digest(b)))
}

struct World {
    release_key: SigningKey,
    approvers: Vec<SigningKey>,
    devices: Vec<VirtualDevice>,
}

fn world(n: usize) -> World {
    let roots = [key(1), key(2)];
    let release_key = key(10);
    let approvers = vec![key(20), key(21), key(22)];
    let req = |approvals, roles| Requirement { approvals, roles };
    let trust = TrustRoot {
        version: 1,
        expires_at: NOW + 86_400,
        root_threshold: 2,
        root_keys: roots.iter().map(public_key).collect(),
        release_keys: std::iter::once(public_key(&release_key)).collect(),
        approvers: approvers.iter().map(|k| Approver { key: public_key(k), roles: Roles::APPROVER }).collect(),
        rules: TierRules {
            requirements: [
                req(0, Roles::NONE),
                req(1, Roles::APPROVER),
                req(2, Roles::APPROVER),
                req(2, Roles::EXPERT),
            ],
            size_floors: heapless::Vec::new(),
            no_rollback: Tier::Single,
            security: Tier::TwoPerson,
            kind: [Tier::Single, Tier::Single, Tier::Expert],
            break_glass: BreakGlassRule {
                requirement: req(1, Roles::BREAK_GLASS),
                max_cohort: 1,
                max_lifetime_secs: 60,
            },
        },
    };
    let trust_bytes = sign_trust_root(&trust, &[&roots[0], &roots[1]]);
    let factory_image = vec![7u8; 5000];
    let factory = Factory { version: Version::new(1, 0, 0), security_counter: 1, size: 5000 };
    let layout = Layout::contiguous(4096, 32 * 1024);
    let devices = (0..n)
        .map(|i| {
            let identity = Identity {
                device_id: format!("dev-{i:03}").as_str().try_into().unwrap(),
                hardware: "m4".try_into().unwrap(),
                min_tier: Tier::Single,
                key_seed: [i as u8; 32],
            };
            VirtualDevice::provision(identity, &trust_bytes, &factory_image, factory, layout, NOW).unwrap()
        })
        .collect();
    World { release_key, approvers, devices }
}

fn manifest(cohort: &Cohort, image: &[u8]) -> Manifest<'static> {
    Manifest {
        proposal: 1,
        revision: 1,
        sequence: 10,
        issued_at: NOW - 10,
        expires_at: NOW + 3600,
        action: Action::Firmware(Firmware {
            hardware: "m4",
            version: Version::new(1, 1, 0),
            security_counter: 1,
            image_digest: sha256(image),
            image_size: image.len() as u32,
            chunk_size: 1024,
        }),
        cohort: airlock_proto::Cohort { root: cohort.root(), size: cohort.size() },
        rollout_plan: Digest::ZERO,
        rollback: Rollback::Previous,
        security: true,
        break_glass: false,
        tier: Tier::TwoPerson,
        policy: Digest::ZERO,
        requester: public_key(&key(30)),
    }
}

#[test]
fn two_person_release_reaches_every_member_and_no_one_else() {
    let mut w = world(12);
    let cohort = Cohort::new(["dev-001", "dev-004", "dev-005", "dev-009"]).unwrap();
    let image: Vec<u8> = (0..12_345u32).map(|i| (i % 253) as u8).collect();
    let signed = SignedOwned::sign(Domain::Manifest, &manifest(&cohort, &image), &w.release_key);
    let digest = manifest_digest(&signed.body);
    let approvals = w.approvers[..2].iter().map(|k| approve(digest, Decision::Approve, k)).collect();
    let release = Release::new(signed, approvals, &cohort).unwrap();
    let served = Served { bytes: &image, digest: sha256(&image), chunk: 1024 };
    let member_delivery = release.delivery_for("dev-001").unwrap();
    for d in &mut w.devices {
        match release.delivery_for(d.id()) {
            Some(bytes) => {
                let events = d.deliver(NOW, &bytes, served, true).unwrap();
                assert!(events.contains(&Event::Confirmed { manifest: digest, version: Version::new(1, 1, 0) }));
                assert_eq!(d.agent().status().firmware, Version::new(1, 1, 0));
            }
            None => {
                assert!(!cohort.contains(d.id()));
                // A rogue sender hands the outsider a member's delivery: refused on the device.
                match d.deliver(NOW, &member_delivery, served, true) {
                    Err(Error::Refused(Refusal::NotInCohort)) => {}
                    other => panic!("{}: expected not_in_cohort, got {other:?}", d.id()),
                }
                assert_eq!(d.agent().status().firmware, Version::new(1, 0, 0));
            }
        }
    }
}

#[test]
fn one_approval_short_is_refused_by_every_member() {
    let mut w = world(4);
    let cohort = Cohort::new(["dev-000", "dev-001", "dev-002", "dev-003"]).unwrap();
    let image = vec![1u8; 3000];
    let signed = SignedOwned::sign(Domain::Manifest, &manifest(&cohort, &image), &w.release_key);
    let digest = manifest_digest(&signed.body);
    let approvals = vec![approve(digest, Decision::Approve, &w.approvers[0])];
    let release = Release::new(signed, approvals, &cohort).unwrap();
    let served = Served { bytes: &image, digest: sha256(&image), chunk: 1024 };
    for d in &mut w.devices {
        let bytes = release.delivery_for(d.id()).unwrap();
        match d.deliver(NOW, &bytes, served, true) {
            Err(Error::Refused(Refusal::QuorumShort)) => {}
            other => panic!("{}: expected quorum_short, got {other:?}", d.id()),
        }
    }
}

#[test]
fn a_release_for_another_cohort_is_refused_before_anything_is_sent() {
    let w = world(0);
    let cohort = Cohort::new(["dev-000", "dev-001"]).unwrap();
    let wider = Cohort::new(["dev-000", "dev-001", "dev-002"]).unwrap();
    let image = vec![1u8; 100];
    let signed = SignedOwned::sign(Domain::Manifest, &manifest(&cohort, &image), &w.release_key);
    let err = Release::new(signed, vec![], &wider).unwrap_err();
    assert_eq!(err, ReleaseError::CohortMismatch { declared: 2, resolved: 3 });
}
