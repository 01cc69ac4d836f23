//! What a device receives on its manifest topic: the signed manifest, the approvals, and the
//! device's own cohort inclusion proof.

use crate::bytes::{Digest, PublicKey, Signature};
use crate::codec::Bounded;
use crate::limits::{MAX_APPROVALS, MAX_DELIVERY};
use crate::merkle::InclusionProof;
use crate::sig::Signed;
use crate::Refusal;
use serde::{Deserialize, Serialize};

/// An approver's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Decision {
    /// Approve the manifest as is.
    Approve,
    /// Reject it.
    Reject,
}

/// Exactly what an approver signs (domain `"airlock/v1/approval\0"`): 65 fixed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalStatement {
    /// `SHA-256("airlock/v1/manifest\0" || manifest body)`.
    pub manifest: Digest,
    /// The decision.
    pub decision: Decision,
    /// The approver's own key (binds the statement to its signer).
    pub approver: PublicKey,
}

/// One approver's signed decision, as carried with the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The approver's key, which must be on the TrustRoot roster.
    pub approver: PublicKey,
    /// The decision.
    pub decision: Decision,
    /// Ed25519 over the [`ApprovalStatement`].
    pub signature: Signature,
}

impl Approval {
    /// The statement this approval claims to sign, for a given manifest digest.
    pub const fn statement(&self, manifest: Digest) -> ApprovalStatement {
        ApprovalStatement { manifest, decision: self.decision, approver: self.approver }
    }

    /// Verifies the signature over the statement for `manifest`.
    pub fn verify(&self, manifest: Digest) -> Result<(), Refusal> {
        let mut buf = [0u8; 80];
        let body = crate::codec::encode_into(&self.statement(manifest), &mut buf)?;
        crate::sig::verify(crate::sig::Domain::Approval, body, &self.approver, &self.signature)
            .map_err(|_| Refusal::BadApprovalSignature)
    }
}

/// The device-bound bundle on `airlock/v1/d/{id}/manifest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery<'a> {
    /// The manifest body, signed by a release key.
    #[serde(borrow)]
    pub manifest: Signed<'a>,
    /// The approvals over the manifest digest.
    pub approvals: heapless::Vec<Approval, MAX_APPROVALS>,
    /// This device's place in the approved cohort.
    pub proof: InclusionProof,
}

impl Bounded for Delivery<'_> {
    const MAX_ENCODED: usize = MAX_DELIVERY;

    fn check_bounds(&self) -> Result<(), Refusal> {
        crate::codec::check_len(self.manifest.body.len(), MAX_DELIVERY)
    }
}
