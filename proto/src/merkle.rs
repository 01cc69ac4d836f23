//! Cohort Merkle trees (RFC 6962 / RFC 9162 section 2.1) over device ids.
//!
//! Leaf hash `SHA-256(0x00 || device_id)`, node hash `SHA-256(0x01 || left || right)`. The
//! inclusion proof is verified with the algorithm of RFC 9162 section 2.1.3.2.
//!
//! What the declared size guarantees: the verification is a fixed function of `(index, size)`,
//! and the index must be below the size, so under a declared size `s` at most `s` distinct
//! device ids can prove membership against one root (a second id at the same position would be
//! a SHA-256 collision). A controller that understates the cohort size therefore cannot reach
//! more devices than the tier was decided for. (A proof's path shape may also fit other sizes;
//! that admits no additional device.)

use crate::bytes::Digest;
use crate::codec::Bounded;
use crate::limits::MAX_PROOF_DEPTH;
use crate::Refusal;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A device's place in the cohort tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// Leaf index of the device.
    pub index: u32,
    /// Sibling hashes from the leaf up.
    pub path: heapless::Vec<Digest, MAX_PROOF_DEPTH>,
}

impl Bounded for InclusionProof {
    const MAX_ENCODED: usize = 8 + 32 * MAX_PROOF_DEPTH;

    fn check_bounds(&self) -> Result<(), Refusal> {
        Ok(())
    }
}

/// `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    Digest::from(<[u8; 32]>::from(h.finalize()))
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.as_ref());
    h.update(right.as_ref());
    Digest::from(<[u8; 32]>::from(h.finalize()))
}

impl InclusionProof {
    /// Whether `leaf` is at `self.index` of the tree of `size` leaves with hash `root`.
    pub fn verify(&self, leaf: &[u8], size: u32, root: &Digest) -> Result<(), Refusal> {
        if self.index >= size {
            return Err(Refusal::NotInCohort);
        }
        let (mut f, mut s) = (self.index, size - 1);
        let mut r = leaf_hash(leaf);
        for p in &self.path {
            if s == 0 {
                return Err(Refusal::NotInCohort);
            }
            if f & 1 == 1 || f == s {
                r = node_hash(p, &r);
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            } else {
                r = node_hash(&r, p);
            }
            f >>= 1;
            s >>= 1;
        }
        if s == 0 && &r == root {
            Ok(())
        } else {
            Err(Refusal::NotInCohort)
        }
    }
}

/// Controller side: a whole tree over owned leaves.
#[cfg(feature = "alloc")]
pub mod tree {
    use super::{leaf_hash, node_hash, Digest, InclusionProof};
    use alloc::vec::Vec;

    /// `MTH(D[n])`: the Merkle tree hash of leaf hashes `leaves`.
    pub fn root(leaves: &[Digest]) -> Digest {
        match leaves.len() {
            0 => Digest::from(<[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest([]))),
            1 => leaves[0],
            n => {
                let k = split(n);
                node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
            }
        }
    }

    /// The largest power of two below `n` (n > 1).
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k << 1 < n {
            k <<= 1;
        }
        k
    }

    /// `PATH(m, D[n])` from RFC 9162 section 2.1.3.1, bottom-up.
    fn path(m: usize, leaves: &[Digest], out: &mut Vec<Digest>) {
        let n = leaves.len();
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            path(m, &leaves[..k], out);
            out.push(root(&leaves[k..]));
        } else {
            path(m - k, &leaves[k..], out);
            out.push(root(&leaves[..k]));
        }
    }

    /// A cohort tree with its leaf hashes.
    #[derive(Clone, Debug)]
    pub struct CohortTree {
        leaves: Vec<Digest>,
        root: Digest,
    }

    impl CohortTree {
        /// Builds the tree over device ids, in the given order.
        pub fn new<S: AsRef<[u8]>>(ids: &[S]) -> Self {
            let leaves: Vec<Digest> = ids.iter().map(|id| leaf_hash(id.as_ref())).collect();
            let root = root(&leaves);
            CohortTree { leaves, root }
        }

        /// The Merkle tree hash.
        pub fn root(&self) -> Digest {
            self.root
        }

        /// Number of leaves.
        pub fn size(&self) -> u32 {
            u32::try_from(self.leaves.len()).unwrap_or(u32::MAX)
        }

        /// The inclusion proof for leaf `index`, or `None` past the end.
        pub fn proof(&self, index: usize) -> Option<InclusionProof> {
            if index >= self.leaves.len() {
                return None;
            }
            let mut p = Vec::new();
            path(index, &self.leaves, &mut p);
            Some(InclusionProof { index: u32::try_from(index).ok()?, path: heapless::Vec::from_slice(&p).ok()? })
        }
    }
}
