//! The bytes behind the trail: the canonical encoding an entry's hash covers, and the message a
//! checkpoint signature covers. Everything here is pure; the database is elsewhere.
//!
//! # Entry hash
//!
//! `hash(n) = SHA-256(ENTRY_DOMAIN || prev || entry)`, where `prev` is the 32 raw bytes of
//! `hash(n - 1)` (32 zero bytes for seq 1) and `entry` is, in this order:
//!
//! | field         | bytes                                                              |
//! |---------------|--------------------------------------------------------------------|
//! | `seq`         | u64, little-endian (8)                                             |
//! | `at`          | i64 unix milliseconds, little-endian two's complement (8)          |
//! | `actor`       | length as u64 LE (8), then the UTF-8 bytes                         |
//! | `kind`        | length as u64 LE (8), then the UTF-8 bytes                         |
//! | `proposal_id` | `0x00` when absent; `0x01` then i64 LE (9) when present            |
//! | `body`        | length as u64 LE (8), then the stored JSON text, byte for byte     |
//!
//! Every variable field is length-prefixed and the option is tagged, so two different entries
//! never encode to the same bytes. The body is hashed as the exact text stored in the `body`
//! column, never a re-serialisation of the parsed value: JSON has many spellings of one value,
//! and verification must not depend on how a serialiser spells it today.
//!
//! # Checkpoint signature
//!
//! Ed25519 (RFC 8032, pure) over `CHECKPOINT_DOMAIN || seq (u64 LE) || hash(seq)` (32 raw
//! bytes), in the style of `airlock_proto::sig`: NUL-terminated, prefix-free domains, so neither
//! message can be replayed as any other Airlock signature. Verification is strict.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// Prefix of every entry hash.
pub const ENTRY_DOMAIN: &[u8] = b"airlock/v1/audit\0";

/// Prefix of every checkpoint signature.
pub const CHECKPOINT_DOMAIN: &[u8] = b"airlock/v1/audit-checkpoint\0";

/// The `prev` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The fields of one entry that its hash covers, as stored.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields<'a> {
    pub seq: u64,
    pub at_ms: i64,
    pub actor: &'a str,
    pub kind: &'a str,
    pub proposal_id: Option<i64>,
    /// The JSON text exactly as stored.
    pub body: &'a str,
}

/// `SHA-256(ENTRY_DOMAIN || prev || canonical(fields))`.
pub(crate) fn entry_hash(prev: &[u8; 32], f: &Fields<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ENTRY_DOMAIN);
    h.update(prev);
    h.update(f.seq.to_le_bytes());
    h.update(f.at_ms.to_le_bytes());
    for text in [f.actor, f.kind] {
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    match f.proposal_id {
        None => h.update([0u8]),
        Some(id) => {
            h.update([1u8]);
            h.update(id.to_le_bytes());
        }
    }
    h.update((f.body.len() as u64).to_le_bytes());
    h.update(f.body.as_bytes());
    <[u8; 32]>::from(h.finalize())
}

/// The 68 bytes a checkpoint signature covers.
fn checkpoint_message(seq: u64, hash: &[u8; 32]) -> [u8; CHECKPOINT_DOMAIN.len() + 8 + 32] {
    let mut m = [0u8; CHECKPOINT_DOMAIN.len() + 8 + 32];
    let (domain, rest) = m.split_at_mut(CHECKPOINT_DOMAIN.len());
    let (seq_le, digest) = rest.split_at_mut(8);
    domain.copy_from_slice(CHECKPOINT_DOMAIN);
    seq_le.copy_from_slice(&seq.to_le_bytes());
    digest.copy_from_slice(hash);
    m
}

/// Signs the checkpoint `(seq, hash)`.
pub(crate) fn sign_checkpoint(key: &SigningKey, seq: u64, hash: &[u8; 32]) -> [u8; 64] {
    key.sign(&checkpoint_message(seq, hash)).to_bytes()
}

/// Whether `signature` by `key` covers the checkpoint `(seq, hash)`: strict Ed25519 (canonical
/// `S`, no small-order `R` or key).
pub(crate) fn checkpoint_signature_ok(key: &[u8; 32], seq: u64, hash: &[u8; 32], signature: &[u8; 64]) -> bool {
    let Ok(vk) = VerifyingKey::from_bytes(key) else { return false };
    let sig = ed25519_dalek::Signature::from_bytes(signature);
    vk.verify_strict(&checkpoint_message(seq, hash), &sig).is_ok()
}

/// Decodes `N` bytes of lower-case hex, as every digest, key and signature is stored.
pub(crate) fn from_hex<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
        let found = if text.len() <= 2 * N + 16 { format!("{text:?}") } else { format!("{} bytes", text.len()) };
        return Err(format!("expected {} lower-case hex digits, found {found}", 2 * N));
    }
    hex::decode_to_slice(text, &mut out).map_err(|e| format!("{e} in {text:?}"))?;
    Ok(out)
}
