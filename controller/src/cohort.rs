//! A resolved cohort: the exact set of devices a manifest may reach.

use airlock_proto::merkle::tree::CohortTree;
use airlock_proto::{check_device_id, Digest, InclusionProof};

/// Why a cohort cannot be built.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CohortError {
    /// No devices.
    #[error("a cohort needs at least one device")]
    Empty,
    /// A device id that could not be a topic level or Merkle leaf.
    #[error("invalid device id {0:?}: 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadId(String),
}

/// Device ids in canonical (sorted, deduplicated) order with their Merkle tree.
#[derive(Clone, Debug)]
pub struct Cohort {
    ids: Vec<String>,
    tree: CohortTree,
}

impl Cohort {
    /// Builds the cohort; order and duplicates in `ids` do not matter.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(ids: I) -> Result<Self, CohortError> {
        let mut ids: Vec<String> = ids.into_iter().map(Into::into).collect();
        if let Some(bad) = ids.iter().find(|id| check_device_id(id).is_err()) {
            return Err(CohortError::BadId(bad.clone()));
        }
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Err(CohortError::Empty);
        }
        let tree = CohortTree::new(&ids);
        Ok(Cohort { ids, tree })
    }

    /// The Merkle root approvers sign (inside the manifest).
    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    /// Number of devices.
    pub fn size(&self) -> u32 {
        self.tree.size()
    }

    /// The ids, sorted.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Whether `id` is in the cohort.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.binary_search_by(|p| p.as_str().cmp(id)).is_ok()
    }

    /// The inclusion proof for `id`, or `None` if it is not in the cohort.
    pub fn proof(&self, id: &str) -> Option<InclusionProof> {
        let index = self.ids.binary_search_by(|p| p.as_str().cmp(id)).ok()?;
        self.tree.proof(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohort_order_and_duplicates_do_not_change_the_root() {
        let a = Cohort::new(["b", "a", "c"]).unwrap();
        let b = Cohort::new(["c", "a", "b", "a"]).unwrap();
        assert_eq!(a.root(), b.root());
        assert_eq!(a.size(), 3);
    }

    #[test]
    fn every_member_proves_membership_and_no_outsider_gets_a_proof() {
        let ids: Vec<String> = (0..37).map(|i| format!("dev-{i:03}")).collect();
        let c = Cohort::new(ids.clone()).unwrap();
        for id in &ids {
            c.proof(id).unwrap().verify(id.as_bytes(), c.size(), &c.root()).unwrap();
        }
        assert!(c.proof("dev-999").is_none());
        assert!(!c.contains("dev-999"));
    }

    #[test]
    fn invalid_ids_and_empty_cohorts_are_refused_by_name() {
        assert_eq!(Cohort::new(["ok", "a/b"]).unwrap_err(), CohortError::BadId("a/b".into()));
        assert_eq!(Cohort::new(Vec::<String>::new()).unwrap_err(), CohortError::Empty);
    }
}
