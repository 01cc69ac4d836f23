//! The card script (`controller/static/card.js`) decodes manifests and builds and signs approval
//! bytes itself. These tests tie its constants to the golden vectors `proto/tests/vectors/`
//! (`approval.hex`, `manifest_*.hex`) and its algorithm to `airlock_proto`'s encoding. In the browser, the script's self-test checks its
//! own output against the same constants (and the browser test asserts that it passed), so:
//! script output = constants (browser) = golden vector (here).

use super::manifest::{summary, summary_of_hex};
use airlock_proto::sig::Domain;
use airlock_proto::{ApprovalStatement, Decision, Digest, Manifest, PublicKey, Rollback, Version};
use ed25519_dalek::{Signer as _, SigningKey};

const SCRIPT: &str = include_str!("../../static/card.js");

/// A `const NAME = "..." + "...";` string constant of the script, concatenated.
fn constant(name: &str) -> String {
    let start = SCRIPT.find(&format!("const {name} =")).unwrap_or_else(|| panic!("card.js has no const {name}"));
    let rest = &SCRIPT[start..];
    let end = rest.find(';').unwrap();
    rest[..end].split('"').skip(1).step_by(2).collect::<Vec<_>>().concat().replace("\\0", "\0")
}

/// A vector file of `proto/tests/vectors/`.
fn vector(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../proto/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The hex fields of a section of a vector file (`# name` header up to the next header).
fn section(text: &str, section: &str) -> String {
    let mut inside = false;
    let mut out = String::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("# ") {
            inside = h.starts_with(section);
            continue;
        }
        if inside {
            if let Some(field) = line.split_whitespace().next() {
                out.push_str(field);
            }
        }
    }
    assert!(!out.is_empty(), "no section {section:?}");
    out
}

/// A manifest vector's body, hex: its signed message without the 20-byte domain.
pub(super) fn vector_body(text: &str) -> String {
    let signed = section(text, "signed-message");
    assert!(signed.starts_with(&hex::encode(Domain::Manifest.prefix())));
    signed[40..].to_string()
}

fn vector_section(name: &str) -> String {
    section(&vector("approval.hex"), name)
}

/// The script's algorithm, step by step as `approvalMessage` does it, from its own constants.
fn script_message(digest: [u8; 32], decision: Decision, approver: [u8; 32]) -> Vec<u8> {
    let index: u8 = match decision {
        Decision::Approve => 0,
        Decision::Reject => 1,
    };
    let mut m = constant("APPROVAL_DOMAIN").into_bytes();
    m.extend_from_slice(&digest);
    m.push(index);
    m.extend_from_slice(&approver);
    m
}

#[test]
fn the_scripts_golden_constants_are_the_golden_vector() {
    let message = vector_section("signed-message");
    assert_eq!(constant("GOLDEN_MESSAGE"), message);
    assert_eq!(constant("GOLDEN_SIGNATURE"), vector_section("signature"));
    assert_eq!(constant("GOLDEN_APPROVER"), vector_section("public-key"));
    assert_eq!(constant("GOLDEN_DIGEST"), &message[40..104], "the digest follows the 20-byte domain");
    // The seed is the one the vector was made with: it yields the key and the signature.
    let seed: [u8; 32] = hex::decode(constant("GOLDEN_SEED")).unwrap().try_into().unwrap();
    let key = SigningKey::from_bytes(&seed);
    assert_eq!(hex::encode(key.verifying_key().to_bytes()), constant("GOLDEN_APPROVER"));
    let sig = key.sign(&hex::decode(&message).unwrap());
    assert_eq!(hex::encode(sig.to_bytes()), constant("GOLDEN_SIGNATURE"));
}

#[test]
fn the_scripts_algorithm_builds_what_proto_signs_for_both_decisions() {
    assert_eq!(constant("APPROVAL_DOMAIN").as_bytes(), Domain::Approval.prefix());
    assert_eq!(constant("MANIFEST_DOMAIN").as_bytes(), Domain::Manifest.prefix());
    for (i, decision) in [Decision::Approve, Decision::Reject].into_iter().enumerate() {
        let digest = [i as u8 * 17 + 3; 32];
        let key = SigningKey::from_bytes(&[i as u8 + 9; 32]);
        let approver = key.verifying_key().to_bytes();
        let statement =
            ApprovalStatement { manifest: Digest::from(digest), decision, approver: PublicKey::from(approver) };
        let mut expected = Domain::Approval.prefix().to_vec();
        expected.extend(airlock_proto::codec::encode(&statement));
        let built = script_message(digest, decision, approver);
        assert_eq!(built, expected, "{decision:?}");
        // A signature over the script's bytes is the approval proto builds and devices verify.
        let approval = airlock_proto::build::approve(Digest::from(digest), decision, &key);
        assert_eq!(key.sign(&built).to_bytes(), approval.signature.0);
        approval.verify(Digest::from(digest)).unwrap();
    }
}

#[test]
fn the_pkcs8_prefix_is_rfc_8410s_ed25519_private_key_info() {
    // SEQUENCE(46) { INTEGER 0, SEQUENCE(5) { OID 1.3.101.112 }, OCTET STRING(34) { OCTET STRING(32) seed } }
    let prefix = hex::decode(constant("PKCS8_ED25519_PREFIX")).unwrap();
    assert_eq!(
        prefix,
        [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
    );
    assert_eq!(usize::from(prefix[1]) + 2, prefix.len() + 32, "the outer length covers the seed");
    // The tag is the one key files are written with.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    crate::keys::write(&path, &SigningKey::from_bytes(&[5; 32])).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.split_whitespace().next(), Some(constant("KEY_FILE_TAG").as_str()));
}

#[test]
fn the_scripts_manifest_constants_are_the_vectors_and_proto_summarises_them_alike() {
    for (name, file) in [
        ("FIRMWARE", "manifest_firmware.hex"),
        ("CONFIG", "manifest_config.hex"),
        ("DECOMMISSION", "manifest_decommission.hex"),
    ] {
        let body = vector_body(&vector(file));
        assert_eq!(constant(&format!("GOLDEN_MANIFEST_{name}")), body, "{file}");
        assert_eq!(Some(constant(&format!("GOLDEN_SUMMARY_{name}"))), summary_of_hex(&body), "{file}");
    }
    // The firmware manifest is the one alice approved in approval.hex.
    let firmware = hex::decode(constant("GOLDEN_MANIFEST_FIRMWARE")).unwrap();
    assert_eq!(hex::encode(airlock_proto::manifest_digest(&firmware).0), constant("GOLDEN_DIGEST"));
    // The extra case holds what no vector does, and is what proto encodes for it.
    let extra = hex::decode(constant("CHECK_MANIFEST_ROLLFORWARD")).unwrap();
    let m: Manifest<'_> = airlock_proto::decode(&extra).unwrap();
    assert_eq!(m.rollback, Rollback::Version(Version::new(1, 4, 1)));
    assert!(m.break_glass && m.expires_at == u64::MAX);
    assert_eq!(airlock_proto::codec::encode(&m), extra);
    assert_eq!(constant("CHECK_SUMMARY_ROLLFORWARD"), summary(&m));
}
