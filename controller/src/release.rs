//! Turning a signed, approved manifest into one delivery per cohort member.

use crate::cohort::Cohort;
use airlock_proto::build::{delivery, SignedOwned};
use airlock_proto::{decode, manifest_digest, Approval, Manifest, Refusal};

/// Why a release cannot be assembled.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The signed body is not a valid manifest.
    #[error("manifest body does not decode: {0}")]
    Manifest(Refusal),
    /// The manifest names another cohort than the one given.
    #[error("manifest cohort (size {declared}) does not match the resolved cohort (size {resolved})")]
    CohortMismatch {
        /// Size in the manifest.
        declared: u32,
        /// Size of the cohort given.
        resolved: u32,
    },
    /// More approvals than a delivery carries.
    #[error("too many approvals for one delivery")]
    TooManyApprovals,
}

/// A manifest ready to send: signed, approved, with its cohort.
#[derive(Debug)]
pub struct Release<'c> {
    manifest: SignedOwned,
    approvals: Vec<Approval>,
    cohort: &'c Cohort,
}

impl<'c> Release<'c> {
    /// Checks that the manifest was built for exactly this cohort.
    pub fn new(manifest: SignedOwned, approvals: Vec<Approval>, cohort: &'c Cohort) -> Result<Self, ReleaseError> {
        let m: Manifest<'_> = decode(&manifest.body).map_err(ReleaseError::Manifest)?;
        if m.cohort.root != cohort.root() || m.cohort.size != cohort.size() {
            return Err(ReleaseError::CohortMismatch { declared: m.cohort.size, resolved: cohort.size() });
        }
        if approvals.len() > airlock_proto::limits::MAX_APPROVALS {
            return Err(ReleaseError::TooManyApprovals);
        }
        Ok(Release { manifest, approvals, cohort })
    }

    /// The digest approvers signed.
    pub fn digest(&self) -> airlock_proto::Digest {
        manifest_digest(&self.manifest.body)
    }

    /// The delivery for `device`, or `None` for a device outside the cohort: it is never sent one.
    pub fn delivery_for(&self, device: &str) -> Option<Vec<u8>> {
        let proof = self.cohort.proof(device)?;
        delivery(&self.manifest, &self.approvals, proof).ok()
    }
}
