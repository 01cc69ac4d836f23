//! Drift test: the golden vectors in `tests/vectors/` are exactly what this crate encodes and signs.
//!
//! Each test builds one message from the fixed inputs in `common`, field by field (`golden`), and
//! compares it with the checked-in file: first the bytes of every section (failing at the first
//! differing byte offset), then every signature in the file (ed25519-dalek, strict, and re-signed
//! with the fixture key: Ed25519 is deterministic), then the comments.
//!
//! After an intended wire change, regenerate the files and review the diff:
//!
//! ```text
//! AIRLOCK_REGEN_VECTORS=1 cargo test -p airlock-proto --test vectors
//! ```
// Test code: a panic is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod golden;

use airlock_proto::Domain;
use ed25519_dalek::Signer as _;
use golden::{Vector, KEYWORDS};
use std::io::Write as _;
use std::path::PathBuf;

const REGEN_VAR: &str = "AIRLOCK_REGEN_VECTORS";
const REGEN_CMD: &str = "AIRLOCK_REGEN_VECTORS=1 cargo test -p airlock-proto --test vectors";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("vectors")
}

fn regenerating() -> bool {
    std::env::var(REGEN_VAR).is_ok_and(|v| v == "1")
}

/// `(keyword, bytes)` of each section of a vector file.
type Sections = Vec<(String, Vec<u8>)>;

/// Parses a vector file: hex lines belong to the section opened by the last `# keyword` or
/// `# keyword: note` line; other `#` lines, trailing `# ...` comments and blank lines are ignored.
fn parse(file: &str, text: &str) -> Result<Sections, String> {
    let mut sections: Sections = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let word = comment.split(':').next().unwrap_or("").trim();
            if KEYWORDS.contains(&word) {
                sections.push((word.to_string(), Vec::new()));
            }
            continue;
        }
        let hex_part = line.split('#').next().unwrap_or("").trim();
        let bytes = hex::decode(hex_part).map_err(|e| format!("{file}:{}: not hex ({e}): {line}", n + 1))?;
        let (_, section) =
            sections.last_mut().ok_or_else(|| format!("{file}:{}: hex before any section header", n + 1))?;
        section.extend_from_slice(&bytes);
    }
    Ok(sections)
}

/// The first offset at which `a` and `b` differ, if they do.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

fn compare(file: &str, want: &Vector, found: &str) -> Result<(), String> {
    let expected = parse(file, &want.text)?;
    let got = parse(file, found)?;
    for (i, ((wk, wb), (gk, gb))) in expected.iter().zip(&got).enumerate() {
        if wk != gk {
            return Err(format!("{file}: section {i} is `# {gk}`, expected `# {wk}`"));
        }
        if let Some(at) = first_difference(wb, gb) {
            let show = |b: &[u8]| b.get(at).map_or("end of section".to_string(), |x| format!("0x{x:02x}"));
            return Err(format!(
                "{file}: section {i} (`# {wk}`) differs at byte offset {at}: expected {}, file has {} \
                 (expected {} bytes, file has {})",
                show(wb),
                show(gb),
                wb.len(),
                gb.len()
            ));
        }
    }
    if expected.len() != got.len() {
        return Err(format!("{file}: {} sections, expected {}", got.len(), expected.len()));
    }
    // Same bytes: the comments must be current too (the file is generated).
    for (n, (w, g)) in want.text.lines().zip(found.lines()).enumerate() {
        if w != g {
            return Err(format!(
                "{file}:{}: bytes match but the text differs\n  expected: {w}\n  file:     {g}",
                n + 1
            ));
        }
    }
    if want.text.lines().count() != found.lines().count() {
        return Err(format!("{file}: bytes match but the number of lines differs"));
    }
    Ok(())
}

/// Verifies every `signed-message` / `public-key` / `signature` triple of a file with
/// ed25519-dalek (strict) and checks that the fixture key re-signs to the same 64 bytes.
/// Returns the number of signatures checked.
fn check_signatures(file: &str, sections: &Sections) -> Result<usize, String> {
    let mut count = 0;
    for (i, (keyword, msg)) in sections.iter().enumerate() {
        if keyword != "signed-message" {
            continue;
        }
        let (Some((k1, public)), Some((k2, sig))) = (sections.get(i + 1), sections.get(i + 2)) else {
            return Err(format!("{file}: signed-message section {i} is not followed by public-key and signature"));
        };
        if k1 != "public-key" || k2 != "signature" {
            return Err(format!("{file}: signed-message section {i} is followed by `{k1}`, `{k2}`"));
        }
        let public: [u8; 32] =
            public.as_slice().try_into().map_err(|_| format!("{file}: public key {i} is not 32 bytes"))?;
        let sig: [u8; 64] = sig.as_slice().try_into().map_err(|_| format!("{file}: signature {i} is not 64 bytes"))?;
        let vk =
            ed25519_dalek::VerifyingKey::from_bytes(&public).map_err(|e| format!("{file}: public key {i}: {e}"))?;
        vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
            .map_err(|e| format!("{file}: signature of signed-message section {i} does not verify: {e}"))?;
        let seed = common::seed_of(&airlock_proto::PublicKey::from(public))
            .ok_or_else(|| format!("{file}: public key {i} is not a fixture key"))?;
        let again = common::key(seed).sign(msg).to_bytes();
        if again != sig {
            return Err(format!(
                "{file}: signature {i} is valid but is not the deterministic signature of the fixture key"
            ));
        }
        count += 1;
    }
    Ok(count)
}

/// Compares (or, with `AIRLOCK_REGEN_VECTORS=1`, rewrites) one vector file.
fn check(want: Vector, signatures: usize) {
    let file = format!("{}.hex", want.file);
    let path = dir().join(&file);
    let mine = parse(&file, &want.text).unwrap();
    assert_eq!(check_signatures(&file, &mine), Ok(signatures), "{file}: signatures in the generated text");
    if regenerating() {
        std::fs::create_dir_all(dir()).unwrap();
        std::fs::write(&path, &want.text).unwrap();
        // Straight to stderr, past the test harness's output capture, so the rewrite is never silent.
        let _ = writeln!(std::io::stderr(), "{REGEN_VAR}=1: rewrote {}", path.display());
        return;
    }
    let found = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: cannot read ({e}); generate it with `{REGEN_CMD}`", path.display()));
    if let Err(e) = compare(&file, &want, &found) {
        panic!("golden vector drift: {e}\nIf the wire change is intended, run `{REGEN_CMD}` and review the diff.");
    }
    let sections = parse(&file, &found).unwrap();
    assert_eq!(check_signatures(&file, &sections), Ok(signatures), "{file}: signatures in the checked-in file");
}

#[test]
fn trust_root_vector_is_unchanged() {
    check(golden::trust_root(), 2);
}

#[test]
fn trust_root_rotation_vector_is_unchanged() {
    check(golden::trust_root_rotation(), 3);
}

#[test]
fn firmware_manifest_vector_is_unchanged() {
    check(golden::manifest_firmware(), 1);
}

#[test]
fn config_manifest_vector_is_unchanged() {
    check(golden::manifest_config(), 1);
}

#[test]
fn decommission_manifest_vector_is_unchanged() {
    check(golden::manifest_decommission(), 1);
}

#[test]
fn approval_vector_is_unchanged() {
    check(golden::approval(), 1);
}

#[test]
fn delivery_vector_is_unchanged() {
    check(golden::delivery(), 3);
}

#[test]
fn command_vector_is_unchanged() {
    check(golden::command(), 1);
}

#[test]
fn report_vector_is_unchanged() {
    check(golden::report(), 1);
}

#[test]
fn chunk_request_vector_is_unchanged() {
    check(golden::chunk_request(), 0);
}

#[test]
fn chunk_vector_is_unchanged() {
    check(golden::chunk(), 0);
}

#[test]
fn merkle_vector_is_unchanged() {
    check(golden::merkle(), 0);
}

#[test]
fn every_vector_file_is_generated_by_this_test() {
    let known: Vec<String> = golden::all().iter().map(|v| format!("{}.hex", v.file)).collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".hex"))
        .collect();
    on_disk.sort();
    let stale: Vec<&String> = on_disk.iter().filter(|n| !known.contains(n)).collect();
    assert!(stale.is_empty(), "vector files no test generates (stale?): {stale:?}");
    if !regenerating() {
        let missing: Vec<&String> = known.iter().filter(|n| !on_disk.contains(n)).collect();
        assert!(missing.is_empty(), "vector files missing: {missing:?}; run `{REGEN_CMD}`");
    }
}

#[test]
fn the_parser_reports_the_first_differing_byte_offset() {
    let want = golden::command();
    let mut sections = parse("command.hex", &want.text).unwrap();
    let flipped_at = 5;
    sections[0].1[flipped_at] ^= 0x01;
    // Rebuild a file whose encoding section has one flipped byte, as one hex line.
    let mut text = String::from("# encoding\n");
    text.push_str(&hex::encode(&sections[0].1));
    text.push('\n');
    let err = compare("command.hex", &want, &text).unwrap_err();
    assert!(err.contains("section 0 (`# encoding`) differs at byte offset 5"), "unexpected message: {err}");
}

#[test]
fn readme_documents_every_signing_domain() {
    let readme = std::fs::read_to_string(dir().join("README.md")).unwrap();
    for d in [Domain::TrustRoot, Domain::Manifest, Domain::Approval, Domain::Command, Domain::Report] {
        let text = String::from_utf8_lossy(d.prefix()).replace('\0', "\\0");
        assert!(readme.contains(&format!("`\"{text}\"`")), "README.md does not name domain {text}");
        assert!(readme.contains(&hex::encode(d.prefix())), "README.md does not give the hex of domain {text}");
    }
}
