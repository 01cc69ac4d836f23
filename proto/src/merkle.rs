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

    /// `PATH(m, D[n])` from RFC 9162 section 2.1.3.1, bottom-up: the definition the stored
    /// levels of [`CohortTree`] are tested against.
    #[cfg(test)]
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

    /// A cohort tree with every level of its nodes, so a proof costs `log n` lookups (a rollout
    /// builds one per device: recomputing subtree roots for each made 10,000 proofs cost 10^8
    /// hashes).
    ///
    /// Levels are built bottom-up by pairing nodes left to right and carrying an odd last node
    /// up unchanged, which is the same tree as RFC 9162's split at the largest power of two
    /// (tested against [`root`] and `path`, RFC 9162's definitions, for every size up to 70 and
    /// around 128 and 256).
    #[derive(Clone, Debug)]
    pub struct CohortTree {
        levels: Vec<Vec<Digest>>,
        root: Digest,
    }

    impl CohortTree {
        /// Builds the tree over device ids, in the given order.
        pub fn new<S: AsRef<[u8]>>(ids: &[S]) -> Self {
            let leaves: Vec<Digest> = ids.iter().map(|id| leaf_hash(id.as_ref())).collect();
            let mut levels = alloc::vec![leaves];
            while let Some(level) = levels.last().filter(|l| l.len() > 1) {
                let up = level.chunks(2).map(|c| if let [l, r] = c { node_hash(l, r) } else { c[0] }).collect();
                levels.push(up);
            }
            // The top level's one node; an empty tree's root is defined apart.
            let root = match levels.last().map(Vec::as_slice) {
                Some([top]) => *top,
                _ => root(&[]),
            };
            CohortTree { levels, root }
        }

        /// The Merkle tree hash.
        pub fn root(&self) -> Digest {
            self.root
        }

        /// Number of leaves.
        pub fn size(&self) -> u32 {
            u32::try_from(self.levels[0].len()).unwrap_or(u32::MAX)
        }

        /// The inclusion proof for leaf `index`, or `None` past the end.
        pub fn proof(&self, index: usize) -> Option<InclusionProof> {
            if index >= self.levels[0].len() {
                return None;
            }
            let mut p = Vec::new();
            let mut i = index;
            for level in &self.levels {
                // A node without a right sibling was carried up: nothing to prove at this level.
                if let Some(sibling) = level.get(i ^ 1) {
                    p.push(*sibling);
                }
                i >>= 1;
            }
            Some(InclusionProof { index: u32::try_from(index).ok()?, path: heapless::Vec::from_slice(&p).ok()? })
        }
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    mod tests {
        use super::*;

        #[test]
        fn stored_levels_give_the_rfc_9162_root_and_paths_for_every_size_up_to_70_and_around_powers_of_two() {
            for n in (1..=70usize).chain([127, 128, 129, 255, 256, 257]) {
                let ids: Vec<alloc::string::String> = (0..n).map(|i| alloc::format!("dev-{i}")).collect();
                let tree = CohortTree::new(&ids);
                let leaves: Vec<Digest> = ids.iter().map(|id| leaf_hash(id.as_bytes())).collect();
                assert_eq!(tree.root(), root(&leaves), "root of {n}");
                for (m, id) in ids.iter().enumerate() {
                    let mut want = Vec::new();
                    path(m, &leaves, &mut want);
                    let got = tree.proof(m).unwrap();
                    assert_eq!(got.path.as_slice(), want.as_slice(), "path of {m} in {n}");
                    got.verify(id.as_bytes(), tree.size(), &tree.root()).unwrap();
                }
                assert!(tree.proof(n).is_none());
            }
        }
    }
}
