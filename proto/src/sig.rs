//! Domain-separated Ed25519 signatures.
//!
//! Every signature in Airlock is a standard Ed25519 signature (RFC 8032, pure Ed25519, no
//! context) over the message `DOMAIN || body`, where `DOMAIN` is one of the NUL-terminated ASCII
//! strings below and `body` is the canonical postcard encoding of the signed structure. The NUL
//! terminator makes the domains prefix-free, so a signature of one kind can never be replayed as
//! another. Verification is strict (`verify_strict`: canonical `S`, no small-order `R` or `A`).

use crate::bytes::{Digest, PublicKey, Signature};
use crate::Refusal;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What a signature is for. The discriminant-free string is the signing domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// A TrustRoot, signed by root keys.
    TrustRoot,
    /// A manifest, signed by a release key. Also prefixes the manifest digest.
    Manifest,
    /// An approver's decision on a manifest digest.
    Approval,
    /// A controller command to one device, signed by a release key.
    Command,
    /// A device report, signed by the device's own key.
    Report,
}

impl Domain {
    /// The exact prefix bytes.
    pub const fn prefix(self) -> &'static [u8] {
        match self {
            Domain::TrustRoot => b"airlock/v1/trust-root\0",
            Domain::Manifest => b"airlock/v1/manifest\0",
            Domain::Approval => b"airlock/v1/approval\0",
            Domain::Command => b"airlock/v1/command\0",
            Domain::Report => b"airlock/v1/report\0",
        }
    }
}

/// A signed message as it travels: the body bytes exactly as signed, who signed, the signature.
///
/// The body stays as bytes so that the verifier checks the signature over exactly what it
/// received before decoding a single field of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<'a> {
    /// Canonical encoding of the signed structure.
    #[serde(borrow)]
    pub body: &'a [u8],
    /// The signer's public key.
    pub signer: PublicKey,
    /// Ed25519 over `domain || body`.
    pub signature: Signature,
}

/// SHA-256 of `domain || body`: the manifest digest that approvers sign.
pub fn digest(domain: Domain, body: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update(domain.prefix());
    h.update(body);
    Digest::from(<[u8; 32]>::from(h.finalize()))
}

/// Verifies `signature` by `key` over `domain || body`.
///
/// RFC 8032 verification with the strict checks of `verify_strict` on top: `S` must be
/// canonical (below the group order), and neither the public key nor `R` may be of small order.
/// The message is fed in two parts, so the device never copies a body into a buffer to prepend
/// the domain.
pub fn verify(domain: Domain, body: &[u8], key: &PublicKey, signature: &Signature) -> Result<(), Refusal> {
    use ed25519_dalek::ed25519::signature::MultipartVerifier;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(key.as_array()).map_err(|_| Refusal::BadSignature)?;
    if vk.is_weak() {
        return Err(Refusal::BadSignature);
    }
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature.0[..32]);
    let small_r = curve25519_dalek::edwards::CompressedEdwardsY(r).decompress().is_none_or(|p| p.is_small_order());
    if small_r {
        return Err(Refusal::BadSignature);
    }
    let sig = ed25519_dalek::Signature::from_bytes(signature.as_array());
    vk.multipart_verify(&[domain.prefix(), body], &sig).map_err(|_| Refusal::BadSignature)
}

/// Signs `domain || body` with `key`.
#[cfg(any(feature = "sign", feature = "alloc"))]
pub fn sign(domain: Domain, body: &[u8], key: &ed25519_dalek::SigningKey) -> Signature {
    use ed25519_dalek::ed25519::signature::MultipartSigner;
    Signature::from(key.multipart_sign(&[domain.prefix(), body]).to_bytes())
}

/// The public key of a signing key, in wire form.
#[cfg(any(feature = "sign", feature = "alloc"))]
pub fn public_key(key: &ed25519_dalek::SigningKey) -> PublicKey {
    PublicKey::from(key.verifying_key().to_bytes())
}

impl crate::codec::Bounded for Signed<'_> {
    /// The envelope is bounded by the largest message it carries; commands and reports are
    /// held to [`crate::limits::MAX_COMMAND`] and [`crate::limits::MAX_REPORT`] by their receivers
    /// ([`decode_signed`]).
    const MAX_ENCODED: usize = crate::limits::MAX_DELIVERY;

    fn check_bounds(&self) -> Result<(), Refusal> {
        crate::codec::check_len(self.body.len(), crate::limits::MAX_DELIVERY)
    }
}

/// Decodes a signed envelope of at most `max` encoded bytes.
pub fn decode_signed(bytes: &[u8], max: usize) -> Result<Signed<'_>, Refusal> {
    if bytes.len() > max {
        return Err(Refusal::Malformed);
    }
    crate::codec::decode(bytes)
}

impl<'a> Signed<'a> {
    /// Verifies the signature, then checks that the signer is one of `allowed`.
    ///
    /// The order matters only for the error: an unknown signer is reported as such even when its
    /// signature is valid, so a report names the real problem.
    pub fn verify_by(&self, domain: Domain, allowed: &[PublicKey]) -> Result<&'a [u8], Refusal> {
        if !allowed.contains(&self.signer) {
            return Err(Refusal::UnknownKey);
        }
        verify(domain, self.body, &self.signer, &self.signature)?;
        Ok(self.body)
    }
}
