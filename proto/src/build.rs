//! Controller-side construction: encode, sign, assemble. Everything here produces exactly the
//! bytes a device verifies; nothing here is needed on a device.

use crate::bytes::{Digest, PublicKey};
use crate::codec::encode;
use crate::delivery::{Approval, ApprovalStatement, Decision, Delivery};
use crate::merkle::InclusionProof;
use crate::sig::{public_key, sign, Domain, Signed};
use crate::trust_root::{RootSignature, SignedTrustRoot, TrustRoot};
use crate::Refusal;
use alloc::vec::Vec;
use ed25519_dalek::SigningKey;
use serde::Serialize;

/// A signed message that owns its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedOwned {
    /// Canonical encoding of the signed value.
    pub body: Vec<u8>,
    /// The signer's public key.
    pub signer: PublicKey,
    /// Ed25519 over `domain || body`.
    pub signature: crate::Signature,
}

impl SignedOwned {
    /// Encodes and signs `value` for `domain`.
    pub fn sign<T: Serialize>(domain: Domain, value: &T, key: &SigningKey) -> Self {
        let body = encode(value);
        let signature = sign(domain, &body, key);
        SignedOwned { body, signer: public_key(key), signature }
    }

    /// The borrowed wire form.
    pub fn as_signed(&self) -> Signed<'_> {
        Signed { body: &self.body, signer: self.signer, signature: self.signature }
    }

    /// The encoded wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(&self.as_signed())
    }
}

/// An approver's signed decision on a manifest digest.
pub fn approve(manifest: Digest, decision: Decision, key: &SigningKey) -> Approval {
    let approver = public_key(key);
    let statement = ApprovalStatement { manifest, decision, approver };
    let signature = sign(Domain::Approval, &encode(&statement), key);
    Approval { approver, decision, signature }
}

/// Encodes a TrustRoot and signs it with each of `keys`.
pub fn sign_trust_root(root: &TrustRoot, keys: &[&SigningKey]) -> Vec<u8> {
    let body = encode(root);
    let mut signatures = heapless::Vec::new();
    for k in keys {
        let s = RootSignature { key: public_key(k), signature: sign(Domain::TrustRoot, &body, k) };
        // More keys than the wire allows is a caller bug; the device would refuse the result.
        if signatures.push(s).is_err() {
            break;
        }
    }
    encode(&SignedTrustRoot { body: &body, signatures })
}

/// Assembles a device-bound delivery.
pub fn delivery(manifest: &SignedOwned, approvals: &[Approval], proof: InclusionProof) -> Result<Vec<u8>, Refusal> {
    let approvals = heapless::Vec::from_slice(approvals).map_err(|_| Refusal::Malformed)?;
    Ok(encode(&Delivery { manifest: manifest.as_signed(), approvals, proof }))
}
