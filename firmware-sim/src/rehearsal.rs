//! An in-process rehearsal: a fleet of virtual devices, one two-person-approved firmware
//! manifest for a cohort drawn from it, and every device offered the delivery — members update,
//! everyone else refuses on their own.
//!
//! No broker and no controller yet: the keys are minted here from fixed seeds, which makes the
//! run reproducible and is fine for a rehearsal, never for a fleet.

use crate::device::{Served, SimError, VirtualDevice};
use airlock_agent_core::{Factory, Identity, Layout};
use airlock_proto::build::{approve, delivery, sign_trust_root, SignedOwned};
use airlock_proto::merkle::tree::CohortTree;
use airlock_proto::sig::public_key;
use airlock_proto::*;
use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What to rehearse.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Fleet size.
    pub devices: usize,
    /// Share of the fleet in the cohort, 0 to 1.
    pub cohort_share: f64,
    /// New image size in bytes.
    pub image_size: usize,
    /// Whether the new image passes its health check.
    pub healthy: bool,
}

/// What happened.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Devices in the cohort.
    pub cohort: usize,
    /// Devices that confirmed the new image.
    pub updated: usize,
    /// Devices that reverted, by reason.
    pub reverted: BTreeMap<&'static str, usize>,
    /// Devices that refused the delivery, by reason.
    pub refused: BTreeMap<&'static str, usize>,
    /// Provisioning time.
    pub provision: Duration,
    /// Delivery time, all devices.
    pub deliver: Duration,
}

/// Unix seconds.
const NOW: u64 = 1_800_000_000;
const CHUNK: u32 = 4096;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn rules() -> TierRules {
    let req = |approvals, roles| Requirement { approvals, roles };
    let mut size_floors = heapless::Vec::new();
    let _ = size_floors.push(SizeFloor { min_size: 100, tier: Tier::TwoPerson });
    TierRules {
        requirements: [req(0, Roles::NONE), req(1, Roles::APPROVER), req(2, Roles::APPROVER), req(2, Roles::EXPERT)],
        size_floors,
        no_rollback: Tier::Single,
        security: Tier::TwoPerson,
        kind: [Tier::Single, Tier::Single, Tier::Expert],
        break_glass: BreakGlassRule {
            requirement: req(1, Roles::BREAK_GLASS),
            max_cohort: 10,
            max_lifetime_secs: 3600,
        },
    }
}

fn sha256(b: &[u8]) -> Digest {
    use sha2::Digest as _;
    Digest::from(<[u8; 32]>::from(sha2::Sha256::digest(b)))
}

/// Runs the rehearsal.
pub fn run(plan: Plan) -> Result<Outcome, SimError> {
    let roots = [key(1), key(2), key(3)];
    let release = key(10);
    let approvers = [key(20), key(21)];
    let trust = TrustRoot {
        version: 1,
        expires_at: NOW + 365 * 86_400,
        root_threshold: 2,
        root_keys: roots.iter().map(public_key).collect(),
        release_keys: core::iter::once(public_key(&release)).collect(),
        approvers: approvers.iter().map(|k| Approver { key: public_key(k), roles: Roles::APPROVER }).collect(),
        rules: rules(),
    };
    let trust_bytes = sign_trust_root(&trust, &[&roots[0], &roots[1]]);
    let layout =
        Layout::contiguous(airlock_agent_core::mem_flash::MemFlash::ERASE as u32, plan.image_size.max(4096) as u32);
    let factory_image = vec![0x5A; 4096];
    let factory = Factory { version: Version::new(1, 0, 0), security_counter: 1, size: factory_image.len() as u32 };

    let started = Instant::now();
    let mut fleet = Vec::with_capacity(plan.devices);
    for i in 0..plan.devices {
        let identity = Identity {
            device_id: format!("sim-{i:05}").as_str().try_into().unwrap_or_default(),
            hardware: "sim-m4".try_into().unwrap_or_default(),
            min_tier: Tier::Single,
            key_seed: [(i % 251) as u8; 32],
        };
        fleet.push(VirtualDevice::provision(identity, &trust_bytes, &factory_image, factory, layout, NOW)?);
    }
    let provision = started.elapsed();

    // The cohort: every k-th device, so members and outsiders interleave.
    let members = ((plan.devices as f64 * plan.cohort_share).round() as usize).clamp(1, plan.devices.max(1));
    let stride = (plan.devices / members).max(1);
    let cohort_ids: Vec<String> = (0..members).map(|i| format!("sim-{:05}", i * stride)).collect();
    let tree = CohortTree::new(&cohort_ids);
    let image: Vec<u8> = (0..plan.image_size).map(|i| (i * 31 % 251) as u8).collect();
    let manifest = Manifest {
        proposal: 1,
        revision: 1,
        sequence: 1,
        issued_at: NOW - 60,
        expires_at: NOW + 86_400,
        action: Action::Firmware(Firmware {
            hardware: "sim-m4",
            version: Version::new(2, 0, 0),
            security_counter: 1,
            image_digest: sha256(&image),
            image_size: image.len() as u32,
            chunk_size: CHUNK,
        }),
        cohort: Cohort { root: tree.root(), size: tree.size() },
        rollout_plan: Digest::ZERO,
        rollback: Rollback::Previous,
        security: false,
        break_glass: false,
        tier: Tier::TwoPerson,
        policy: Digest::ZERO,
        requester: public_key(&key(30)),
    };
    let signed = SignedOwned::sign(Domain::Manifest, &manifest, &release);
    let digest = manifest_digest(&signed.body);
    let approvals: Vec<Approval> = approvers.iter().map(|k| approve(digest, Decision::Approve, k)).collect();
    let served = Served { bytes: &image, digest: sha256(&image), chunk: CHUNK as usize };

    let mut outcome = Outcome { cohort: members, provision, ..Outcome::default() };
    let started = Instant::now();
    for device in &mut fleet {
        // Outsiders get a member's proof: the best a rogue sender could do.
        let index = cohort_ids.iter().position(|c| c == device.id()).unwrap_or(0);
        let Some(proof) = tree.proof(index) else {
            continue;
        };
        let Ok(bytes) = delivery(&signed, &approvals, proof) else {
            continue;
        };
        match device.deliver(NOW, &bytes, served, plan.healthy) {
            Ok(events) => {
                for e in events {
                    match e {
                        Event::Confirmed { .. } => outcome.updated += 1,
                        Event::Reverted { reason, .. } => *outcome.reverted.entry(reason.name()).or_default() += 1,
                        _ => {}
                    }
                }
            }
            Err(SimError::Core { error: airlock_agent_core::Error::Refused(r), .. }) => {
                *outcome.refused.entry(r.name()).or_default() += 1;
            }
            Err(e) => return Err(e),
        }
    }
    outcome.deliver = started.elapsed();
    Ok(outcome)
}
