//! Third-party check of the golden vectors: every signature in `tests/vectors/*.hex` verifies with
//! `ed25519-compact`, an Ed25519 implementation that shares no code with ed25519-dalek, using
//! nothing but the files (no fixture, no airlock-proto code), and no single-bit change of a
//! signed message still verifies.
// Test code: a panic is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ed25519_compact::{PublicKey, Signature};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("vectors")
}

/// One signature triple read from a file.
#[derive(Debug)]
struct Signed {
    file: String,
    message: Vec<u8>,
    public_key: Vec<u8>,
    signature: Vec<u8>,
}

/// `(keyword, bytes)` of each section of a file.
type Sections = Vec<(String, Vec<u8>)>;

/// `(keyword, bytes)` per section, following the format of `tests/vectors/README.md`; written
/// again here on purpose so this test depends on nothing but the files and the README.
fn sections(file: &str, text: &str) -> Sections {
    const KEYWORDS: [&str; 9] = [
        "encoding",
        "manifest-digest",
        "signed-message",
        "public-key",
        "signature",
        "tree-size",
        "device-id",
        "leaf-hash",
        "root",
    ];
    let mut out: Sections = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            let word = comment.split(':').next().unwrap_or("").trim();
            if KEYWORDS.contains(&word) {
                out.push((word.to_string(), Vec::new()));
            }
        } else if !line.is_empty() {
            let hex_part = line.split('#').next().unwrap_or("").trim();
            let bytes = hex::decode(hex_part).unwrap_or_else(|e| panic!("{file}:{}: not hex: {e}", n + 1));
            out.last_mut().unwrap_or_else(|| panic!("{file}:{}: hex before a section", n + 1)).1.extend(bytes);
        }
    }
    out
}

/// Every vector file, by name and parsed sections.
fn files() -> Vec<(String, Sections)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hex"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            let s = sections(&name, &text);
            (name, s)
        })
        .collect()
}

/// Every `signed-message` / `public-key` / `signature` triple of every file.
fn signed_messages() -> Vec<Signed> {
    let mut out = Vec::new();
    for (file, s) in files() {
        for (i, (keyword, message)) in s.iter().enumerate() {
            if keyword != "signed-message" {
                continue;
            }
            let (pk, sig) = (&s[i + 1], &s[i + 2]);
            assert_eq!((pk.0.as_str(), sig.0.as_str()), ("public-key", "signature"), "{file}: section {i}");
            out.push(Signed {
                file: file.clone(),
                message: message.clone(),
                public_key: pk.1.clone(),
                signature: sig.1.clone(),
            });
        }
    }
    out
}

fn verify(s: &Signed, message: &[u8]) -> Result<(), ed25519_compact::Error> {
    let pk = PublicKey::from_slice(&s.public_key)?;
    let sig = Signature::from_slice(&s.signature)?;
    pk.verify(message, &sig)
}

/// The signatures each file must contain: a file that lost a section must not pass quietly.
const EXPECTED: [(&str, usize); 12] = [
    ("approval.hex", 1),
    ("chunk.hex", 0),
    ("chunk_request.hex", 0),
    ("command.hex", 1),
    ("delivery.hex", 3),
    ("manifest_config.hex", 1),
    ("manifest_decommission.hex", 1),
    ("manifest_firmware.hex", 1),
    ("merkle.hex", 0),
    ("report.hex", 1),
    ("trust_root.hex", 2),
    ("trust_root_rotation.hex", 3),
];

#[test]
fn every_vector_file_has_its_signatures() {
    let all = signed_messages();
    let found: Vec<(String, usize)> =
        files().iter().map(|(f, _)| (f.clone(), all.iter().filter(|s| &s.file == f).count())).collect();
    let expected: Vec<(String, usize)> = EXPECTED.iter().map(|(f, n)| (f.to_string(), *n)).collect();
    assert_eq!(found, expected);
}

#[test]
fn every_signature_in_the_vectors_verifies_with_ed25519_compact() {
    let all = signed_messages();
    assert_eq!(all.len(), EXPECTED.iter().map(|e| e.1).sum::<usize>());
    for s in &all {
        assert_eq!(
            verify(s, &s.message),
            Ok(()),
            "{}: signature by {} does not verify",
            s.file,
            hex::encode(&s.public_key)
        );
    }
}

#[test]
fn every_signed_message_starts_with_its_domain() {
    let domains: [(&str, &[u8]); 5] = [
        ("trust_root", b"airlock/v1/trust-root\0"),
        ("manifest", b"airlock/v1/manifest\0"),
        ("approval", b"airlock/v1/approval\0"),
        ("command", b"airlock/v1/command\0"),
        ("report", b"airlock/v1/report\0"),
    ];
    for s in signed_messages() {
        let prefixes: Vec<&[u8]> = domains.iter().filter(|(f, _)| s.file.starts_with(f)).map(|d| d.1).collect();
        // A delivery carries a manifest signature and approval signatures.
        let allowed: Vec<&[u8]> = if s.file == "delivery.hex" { vec![domains[1].1, domains[2].1] } else { prefixes };
        assert!(
            allowed.iter().any(|p| s.message.starts_with(p)),
            "{}: signed message starts with {:?}",
            s.file,
            String::from_utf8_lossy(&s.message[..s.message.len().min(24)])
        );
    }
}

#[test]
fn approvals_sign_the_sha256_of_the_manifest_signed_message() {
    use sha2::{Digest as _, Sha256};
    let all = signed_messages();
    let find = |file: &str, domain: &[u8]| -> Vec<&Signed> {
        all.iter().filter(|s| s.file == file && s.message.starts_with(domain)).collect()
    };
    let manifest = find("manifest_firmware.hex", b"airlock/v1/manifest\0");
    let digest = Sha256::digest(&manifest[0].message);
    let (_, sections) = files().into_iter().find(|(f, _)| f == "manifest_firmware.hex").unwrap();
    let stated = &sections.iter().find(|(k, _)| k == "manifest-digest").unwrap().1;
    assert_eq!(stated.as_slice(), digest.as_slice(), "manifest-digest section");
    let approvals: Vec<&Signed> =
        ["approval.hex", "delivery.hex"].iter().flat_map(|f| find(f, b"airlock/v1/approval\0")).collect();
    assert_eq!(approvals.len(), 3);
    for a in approvals {
        let statement = &a.message[b"airlock/v1/approval\0".len()..];
        assert_eq!(statement.len(), 65, "{}: an ApprovalStatement is 65 bytes", a.file);
        assert_eq!(&statement[..32], digest.as_slice(), "{}: statement's manifest digest", a.file);
        assert_eq!(statement[32], 0, "{}: decision approve", a.file);
        assert_eq!(&statement[33..], a.public_key.as_slice(), "{}: statement names its signer", a.file);
    }
}

#[test]
fn flipping_any_bit_of_a_signed_message_breaks_its_signature() {
    let mut checked = 0;
    for s in signed_messages() {
        assert_eq!(verify(&s, &s.message), Ok(()), "{}: unflipped message must verify", s.file);
        let mut m = s.message.clone();
        for bit in 0..m.len() * 8 {
            m[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                verify(&s, &m),
                Err(ed25519_compact::Error::SignatureMismatch),
                "{}: message with bit {bit} flipped still verifies",
                s.file
            );
            m[bit / 8] ^= 1 << (bit % 8);
            checked += 1;
        }
    }
    assert!(checked > 0);
}
