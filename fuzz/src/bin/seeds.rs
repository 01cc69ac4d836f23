//! Writes the seed corpus: one or more valid examples of each target's input, into
//! `fuzz/corpus/<target>/` (git-ignored, hence generated). Every seed is first checked against
//! a real device (or decoder), so a seed that no longer does what it claims fails loudly here
//! instead of silently weakening a fuzz run.
//!
//! `cargo run --release --bin seeds [<output dir>]` (default: `corpus` next to Cargo.toml).

use airlock_agent_core::{Error, Input, Output};
use airlock_fuzz::device::{booted, downloading, world};
use airlock_fuzz::fleet::{key, CHUNK, DEVICE, IMAGE_LEN, NOW, SEQUENCE};
use airlock_fuzz::frames::{push_chunk, push_step, Step};
use airlock_fuzz::{canonical, fleet::Fleet};
use airlock_proto::build::SignedOwned;
use airlock_proto::merkle::tree::CohortTree;
use airlock_proto::{codec, ChunkRequest, CommandAction, Domain, Event, Refusal, Report, Status, Version};
use std::path::{Path, PathBuf};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    let p = d.join(format!("seed-{name}"));
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    println!("{:>6} bytes  {}", bytes.len(), p.display());
}

fn deliveries(fleet: &Fleet, dir: &Path) {
    let seeds = [
        ("firmware", fleet.firmware_delivery()),
        ("config", fleet.config_delivery()),
        ("decommission", fleet.decommission_delivery()),
        ("break-glass", fleet.break_glass_delivery()),
    ];
    for (name, bytes) in &seeds {
        let r = booted().handle(NOW, Input::Delivery(bytes));
        assert!(r.is_ok(), "seed delivery {name} refused: {r:?}");
        write(dir, "delivery", name, bytes);
    }
}

/// The whole image in order, then a Boot (test boot) and a passing health check.
fn chunks(fleet: &Fleet, dir: &Path) {
    let mut stream = Vec::new();
    let mut offsets = (0..IMAGE_LEN as u32).step_by(CHUNK as usize);
    for at in offsets.by_ref() {
        push_chunk(&mut stream, &fleet.chunk(at, CHUNK));
    }
    let mut install = stream.clone();
    push_step(&mut install, Step::Boot);
    push_step(&mut install, Step::Health(true));

    // Check: streaming it installs the image on trial, and it boots in its test state.
    let mut agent = downloading();
    let mut last = None;
    for at in (0..IMAGE_LEN as u32).step_by(CHUNK as usize) {
        last = Some(agent.handle(NOW, Input::Chunk(&fleet.chunk(at, CHUNK))));
    }
    let out = last.and_then(Result::ok).unwrap_or_default();
    assert!(out.iter().any(|o| matches!(o, Output::Reboot { .. })), "seed stream did not install: {out:?}");
    assert!(agent.state().trial.is_some(), "seed stream left no trial");
    write(dir, "chunk", "image", &stream);
    write(dir, "chunk", "install-and-confirm", &install);

    // Paused after the first chunk, resumed after a tick, then the rest.
    let mut paused = Vec::new();
    push_chunk(&mut paused, &fleet.chunk(0, CHUNK));
    push_step(&mut paused, Step::Command(0));
    push_step(&mut paused, Step::Tick);
    push_step(&mut paused, Step::Command(1));
    for at in (CHUNK..IMAGE_LEN as u32).step_by(CHUNK as usize) {
        push_chunk(&mut paused, &fleet.chunk(at, CHUNK));
    }
    write(dir, "chunk", "pause-resume", &paused);
}

fn commands(fleet: &Fleet, dir: &Path) {
    use CommandAction::*;
    for (seq, action) in (1..).zip([Pause, Resume, Status, Revert, RevertConfig]) {
        let bytes = fleet.command(seq, action);
        let r = booted().handle(NOW, Input::Command(&bytes));
        // A fresh device has nothing to revert: that refusal comes after the signature check.
        let want_refusal = matches!(action, Revert | RevertConfig);
        if want_refusal {
            assert_eq!(r, Err(Error::Refused(Refusal::NothingToRevert)), "seed command {action:?}");
        } else {
            assert!(r.is_ok(), "seed command {action:?} refused: {r:?}");
        }
        write(dir, "command", &format!("{action:?}").to_lowercase(), &bytes);
    }
}

fn trust_roots(fleet: &Fleet, dir: &Path) {
    for (name, bytes) in
        [("rotate-new-keys", fleet.rotation_new_keys()), ("rotate-same-keys", fleet.rotation_same_keys())]
    {
        let r = booted().handle(NOW, Input::TrustRoot(&bytes));
        assert!(r.is_ok(), "seed rotation {name} refused: {r:?}");
        write(dir, "trust_root", name, &bytes);
    }
    let r = booted().handle(NOW, Input::TrustRoot(&fleet.trust_bytes));
    assert_eq!(r, Err(Error::Refused(Refusal::TrustRootNotNewer)), "re-sending the installed root");
    write(dir, "trust_root", "installed", &fleet.trust_bytes);
}

fn every_type(fleet: &Fleet, dir: &Path) {
    let m = fleet.firmware_manifest();
    let signed = SignedOwned::sign(Domain::Manifest, &m, &fleet.release);
    let cmd = fleet.command(1, CommandAction::Status);
    let cmd_body = airlock_proto::decode::<airlock_proto::Signed<'_>>(&cmd).map(|s| s.body.to_vec());
    let report = Report {
        device: DEVICE,
        counter: (1 << 32) | 1,
        at: NOW,
        event: Event::Status(Status {
            firmware: Version::new(1, 0, 0),
            security_counter: 1,
            config: 0,
            sequence: SEQUENCE,
            trust_root: 1,
            testing: false,
        }),
    };
    let report = SignedOwned::sign(Domain::Report, &report, &key(42));
    let refused = Report {
        device: DEVICE,
        counter: 2,
        at: NOW,
        event: Event::Refused { manifest: None, reason: Refusal::Replay },
    };
    let proof = CohortTree::new(&fleet.cohort).proof(3);
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("delivery", fleet.firmware_delivery()),
        ("signed-manifest", signed.to_bytes()),
        ("manifest", signed.body.clone()),
        ("trust-root", codec::encode(&fleet.trust)),
        ("signed-trust-root", fleet.trust_bytes.clone()),
        ("command", cmd_body.unwrap_or_default()),
        ("signed-command", cmd),
        ("signed-report", report.to_bytes()),
        ("report-body", report.body.clone()),
        ("report-refused", codec::encode(&refused)),
        ("chunk", fleet.chunk(0, CHUNK)),
        (
            "chunk-request",
            codec::encode(&ChunkRequest { image: airlock_proto::Digest::from([5; 32]), offset: 1024, len: 4096 }),
        ),
        ("inclusion-proof", proof.map(|p| codec::encode(&p)).unwrap_or_default()),
    ];
    for (name, bytes) in &seeds {
        assert!(canonical::check_all(bytes) > 0, "seed {name} decodes as no message type");
        write(dir, "decode_all", name, bytes);
    }
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"), PathBuf::from);
    let fleet = &world().fleet;
    deliveries(fleet, &dir);
    chunks(fleet, &dir);
    commands(fleet, &dir);
    trust_roots(fleet, &dir);
    every_type(fleet, &dir);
}
