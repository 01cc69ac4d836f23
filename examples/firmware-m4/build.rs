//! Puts `memory.x` and `device.x` on the linker's search path, and for the `qemu` feature signs
//! the messages the QEMU run replays.
// A build script that cannot do its job must stop the build, loudly: `expect` is the right tool
// here, as in tests.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // QEMU's `netduinoplus2` (STM32F405) has the same flash and RAM as memory.x, so both builds
    // link with one memory map.
    for script in ["memory.x", "device.x"] {
        fs::copy(script, out.join(script)).expect("copy linker script");
        println!("cargo:rerun-if-changed={script}");
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "qemu")]
    vectors::write(&out);
}

/// Real signed messages, built exactly as the core's tests build them
/// (`device-agent/core/src/tests/fixture.rs`): same key seeds, roles and tier rules.
#[cfg(feature = "qemu")]
mod vectors {
    use super::*;
    use airlock_proto::build::{approve, delivery, sign_trust_root, SignedOwned};
    use airlock_proto::merkle::tree::CohortTree;
    use airlock_proto::sig::public_key;
    use airlock_proto::*;
    use host_ed25519::SigningKey;
    use std::fmt::Write as _;
    use std::path::Path;

    /// 2027-01-15, unix seconds (the fixture's `NOW`).
    const NOW: u64 = 1_800_000_000;
    const DEVICE: &str = "dev-0003";
    const HARDWARE: &str = "gw-m4";
    /// The largest chunk this device takes (`transport::MAX_CHUNK`), so the receive buffer is
    /// exercised at its limit.
    const CHUNK: u32 = 1024;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn sha256(b: &[u8]) -> Digest {
        use host_sha2::Digest as _;
        Digest::from(<[u8; 32]>::from(host_sha2::Sha256::digest(b)))
    }

    fn image(version: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(u32::from(version)) as u8).collect()
    }

    fn rules() -> TierRules {
        let req = |approvals, roles| Requirement { approvals, roles };
        TierRules {
            requirements: [
                req(0, Roles::NONE),
                req(1, Roles::APPROVER),
                req(2, Roles::APPROVER),
                req(2, Roles::EXPERT),
            ],
            size_floors: heapless::Vec::from_slice(&[
                SizeFloor { min_size: 100, tier: Tier::Single },
                SizeFloor { min_size: 1000, tier: Tier::TwoPerson },
            ])
            .expect("two floors"),
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

    fn trust_root(version: u32, roots: &[SigningKey], release: &SigningKey, approvers: &[SigningKey]) -> TrustRoot {
        let roles = [
            Roles::APPROVER,
            Roles::APPROVER,
            Roles::APPROVER.union(Roles::EXPERT),
            Roles::BREAK_GLASS,
            Roles::APPROVER.union(Roles::SECURITY),
        ];
        TrustRoot {
            version,
            expires_at: NOW + 365 * 86_400,
            root_threshold: 2,
            root_keys: roots.iter().map(public_key).collect(),
            release_keys: heapless::Vec::from_slice(&[public_key(release)]).expect("one key"),
            approvers: approvers.iter().zip(roles).map(|(k, roles)| Approver { key: public_key(k), roles }).collect(),
            rules: rules(),
        }
    }

    struct Fleet {
        release: SigningKey,
        approvers: Vec<SigningKey>,
        requester: SigningKey,
        cohort: Vec<String>,
    }

    impl Fleet {
        fn manifest(&self, sequence: u64, action: Action<'_>, tier: Tier) -> SignedOwned {
            let tree = CohortTree::new(&self.cohort);
            let m = Manifest {
                proposal: 7,
                revision: 1,
                sequence,
                issued_at: NOW - 60,
                expires_at: NOW + 86_400,
                action,
                cohort: Cohort { root: tree.root(), size: tree.size() },
                rollout_plan: Digest::from([7; 32]),
                rollback: Rollback::Previous,
                security: false,
                break_glass: false,
                tier,
                policy: Digest::from([9; 32]),
                requester: public_key(&self.requester),
            };
            SignedOwned::sign(Domain::Manifest, &m, &self.release)
        }

        fn delivery(&self, signed: &SignedOwned, approvers: &[usize]) -> Vec<u8> {
            let digest = manifest_digest(&signed.body);
            let approvals: Vec<Approval> =
                approvers.iter().map(|&i| approve(digest, Decision::Approve, &self.approvers[i])).collect();
            let tree = CohortTree::new(&self.cohort);
            let index = self.cohort.iter().position(|d| d == DEVICE).expect("device in cohort");
            delivery(signed, &approvals, tree.proof(index).expect("proof")).expect("delivery")
        }
    }

    pub fn write(out: &Path) {
        let roots: Vec<_> = (1..=3).map(key).collect();
        let new_roots: Vec<_> = (4..=6).map(key).collect();
        let fleet = Fleet {
            release: key(10),
            approvers: (20..=24).map(key).collect(),
            requester: key(30),
            cohort: (0..5).map(|i| format!("dev-{i:04}")).collect(),
        };

        // Factory: image 1.0.0 in slot A, provisioned with a self-signed TrustRoot v1.
        let factory = image(1, 9_000);
        let root_v1 = trust_root(1, &roots, &fleet.release, &fleet.approvers);
        let root_v1_bytes = sign_trust_root(&root_v1, &[&roots[0], &roots[1]]);
        let mut provision = Vec::new();
        for s in [DEVICE, HARDWARE] {
            provision.push(s.len() as u8);
            provision.extend_from_slice(s.as_bytes());
        }
        provision.push(Tier::AutoPass as u8);
        provision.extend_from_slice(&[42; 32]);
        for v in [1u16, 0, 0] {
            provision.extend_from_slice(&v.to_le_bytes());
        }
        provision.extend_from_slice(&1u32.to_le_bytes());
        provision.extend_from_slice(&(factory.len() as u32).to_le_bytes());
        provision.extend_from_slice(&root_v1_bytes);

        // Firmware 1.1.0, two-person tier, 3.5 chunks of the largest size this device takes.
        let new_image = image(2, 3 * CHUNK as usize + CHUNK as usize / 2);
        let fw = Action::Firmware(Firmware {
            hardware: HARDWARE,
            version: Version::new(1, 1, 0),
            security_counter: 2,
            image_digest: sha256(&new_image),
            image_size: new_image.len() as u32,
            chunk_size: CHUNK,
        });
        let fw_signed = fleet.manifest(100, fw, Tier::TwoPerson);
        let fw_delivery = fleet.delivery(&fw_signed, &[0, 1]);
        // The same delivery with one bit of the release signature flipped: refused, BadSignature.
        let mut forged = fw_signed.clone();
        forged.signature.0[17] ^= 0x04;
        let fw_forged = fleet.delivery(&forged, &[0, 1]);

        // A config of the largest size, single tier.
        let payload: Vec<u8> = (0..limits::MAX_CONFIG).map(|i| (i * 7) as u8).collect();
        let cfg = Action::Config(Config { version: 1, payload: &payload });
        let cfg_delivery = fleet.delivery(&fleet.manifest(101, cfg, Tier::Single), &[0]);

        // A status command.
        let cmd = Command {
            device: DEVICE,
            sequence: 1,
            issued_at: NOW - 60,
            expires_at: NOW + 3600,
            action: CommandAction::Status,
        };
        let command = SignedOwned::sign(Domain::Command, &cmd, &fleet.release).to_bytes();

        // Rotation to new root keys: signed by a threshold of the old and of the new keys.
        let root_v2 = trust_root(2, &new_roots, &fleet.release, &fleet.approvers);
        let root_v2_bytes = sign_trust_root(&root_v2, &[&roots[0], &roots[1], &new_roots[0], &new_roots[1]]);

        // Decommission: expert tier, two approvers, one of them an expert.
        let decom_delivery = fleet.delivery(&fleet.manifest(102, Action::Decommission, Tier::Expert), &[0, 2]);

        let files: [(&str, &[u8]); 10] = [
            ("factory", &factory),
            ("provision", &provision),
            ("image", &new_image),
            ("delivery_forged", &fw_forged),
            ("delivery_firmware", &fw_delivery),
            ("command_status", &command),
            ("delivery_config", &cfg_delivery),
            ("trust_root_v2", &root_v2_bytes),
            ("delivery_decommission", &decom_delivery),
            ("image_digest", &sha256(&new_image).0),
        ];
        let mut rs = String::from("// Generated by build.rs (feature `qemu`).\n");
        writeln!(rs, "pub const NOW: u64 = {NOW};").ok();
        writeln!(rs, "pub const CHUNK: u32 = {CHUNK};").ok();
        for (name, bytes) in files {
            fs::write(out.join(format!("{name}.bin")), bytes).expect("write vector");
            writeln!(
                rs,
                "pub static {}: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}.bin\"));",
                name.to_uppercase()
            )
            .ok();
        }
        fs::write(out.join("vectors.rs"), rs).expect("write vectors.rs");
        println!("cargo:rerun-if-changed=../../proto/src");
    }
}
