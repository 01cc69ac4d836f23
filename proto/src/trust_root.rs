//! The TrustRoot: which keys a device believes, and the tier rules it enforces.
//!
//! Signed by a threshold of root keys (kept offline). A device installs a new TrustRoot only if
//! its version is higher and it carries a threshold of valid signatures from the *old* root keys
//! and a threshold from its *own* (TUF-style rotation), so a stolen minority of root keys can
//! neither rotate the root nor roll it back.

use crate::bytes::{PublicKey, Signature};
use crate::codec::Bounded;
use crate::limits::{MAX_APPROVERS, MAX_RELEASE_KEYS, MAX_ROOT_KEYS, MAX_ROOT_SIGNATURES};
use crate::sig::{verify, Domain};
use crate::tier::{Roles, TierRules};
use crate::Refusal;
use serde::{Deserialize, Serialize};

/// An approver on the roster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    /// The approver's Ed25519 public key; also their identity on the device.
    pub key: PublicKey,
    /// What they may approve.
    pub roles: Roles,
}

/// The body of a TrustRoot. Entirely fixed-capacity, so a device keeps it in RAM as is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustRoot {
    /// Strictly increasing across rotations.
    pub version: u32,
    /// Unix seconds after which the device refuses manifests until it gets a newer root.
    pub expires_at: u64,
    /// How many distinct root keys must sign the next TrustRoot (and this one).
    pub root_threshold: u8,
    /// The root keys.
    pub root_keys: heapless::Vec<PublicKey, MAX_ROOT_KEYS>,
    /// Keys that may sign manifests and commands (the controller's).
    pub release_keys: heapless::Vec<PublicKey, MAX_RELEASE_KEYS>,
    /// Who may approve, with their roles.
    pub approvers: heapless::Vec<Approver, MAX_APPROVERS>,
    /// The device-enforced tier rules.
    pub rules: TierRules,
}

/// One root key's signature over a TrustRoot body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootSignature {
    /// The signing root key.
    pub key: PublicKey,
    /// Ed25519 over `"airlock/v1/trust-root\0" || body`.
    pub signature: Signature,
}

/// A TrustRoot as it travels: the body bytes and the root signatures over them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTrustRoot<'a> {
    /// Canonical encoding of [`TrustRoot`].
    #[serde(borrow)]
    pub body: &'a [u8],
    /// Root signatures; during a rotation, from old and new root keys.
    pub signatures: heapless::Vec<RootSignature, MAX_ROOT_SIGNATURES>,
}

impl Bounded for TrustRoot {
    const MAX_ENCODED: usize = crate::limits::MAX_TRUST_ROOT;

    fn check_bounds(&self) -> Result<(), Refusal> {
        let t = usize::from(self.root_threshold);
        if t == 0 || t > self.root_keys.len() || self.release_keys.is_empty() {
            return Err(Refusal::Malformed);
        }
        // A key that signs manifests must never also count as an approval of them.
        if self.approvers.iter().any(|a| self.release_keys.contains(&a.key)) {
            return Err(Refusal::Malformed);
        }
        let approver_twice =
            self.approvers.iter().enumerate().any(|(i, a)| self.approvers[..i].iter().any(|b| b.key == a.key));
        if has_duplicates(&self.root_keys) || has_duplicates(&self.release_keys) || approver_twice {
            return Err(Refusal::Malformed);
        }
        self.rules.check_bounds()
    }
}

impl Bounded for SignedTrustRoot<'_> {
    const MAX_ENCODED: usize = crate::limits::MAX_TRUST_ROOT;

    fn check_bounds(&self) -> Result<(), Refusal> {
        crate::codec::check_len(self.body.len(), crate::limits::MAX_TRUST_ROOT)
    }
}

/// What [`SignedTrustRoot::count_valid`] does with a signature by a key in neither set.
#[derive(Clone, Copy)]
enum Foreign {
    Refuse,
    Skip,
}

fn has_duplicates<T: PartialEq>(items: &[T]) -> bool {
    items.iter().enumerate().any(|(i, a)| items[..i].contains(a))
}

impl TrustRoot {
    /// The roster entry for `key`, if any.
    pub fn approver(&self, key: &PublicKey) -> Option<&Approver> {
        self.approvers.iter().find(|a| &a.key == key)
    }

    /// Whether this root has expired at `now` (unix seconds).
    pub const fn expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }
}

impl SignedTrustRoot<'_> {
    /// Verifies every signature once and counts distinct valid signers among `first` and among
    /// `second`. Any signature that is invalid or repeated refuses the whole object: a TrustRoot
    /// is never half-valid. A signature from a key in neither set refuses it too, unless
    /// `foreign` is [`Foreign::Skip`].
    fn count_valid(
        &self,
        first: &[PublicKey],
        second: &[PublicKey],
        foreign: Foreign,
    ) -> Result<(usize, usize), Refusal> {
        let (mut in_first, mut in_second) = (0, 0);
        for (i, s) in self.signatures.iter().enumerate() {
            let (a, b) = (first.contains(&s.key), second.contains(&s.key));
            if !a && !b {
                match foreign {
                    Foreign::Refuse => return Err(Refusal::UnknownKey),
                    Foreign::Skip => continue,
                }
            }
            if self.signatures[..i].iter().any(|p| p.key == s.key) {
                return Err(Refusal::Malformed);
            }
            verify(Domain::TrustRoot, self.body, &s.key, &s.signature)?;
            in_first += usize::from(a);
            in_second += usize::from(b);
        }
        Ok((in_first, in_second))
    }

    /// Verifies a threshold of signatures by the TrustRoot's own root keys, whatever its expiry
    /// (a device re-checks its stored root this way at every start). Signatures by other keys
    /// are skipped unverified: a rotated root still carries its predecessor's signatures, which
    /// only [`Self::verify_rotation`] needs.
    pub fn verify_self(&self) -> Result<TrustRoot, Refusal> {
        let root: TrustRoot = crate::codec::decode(self.body)?;
        let (own, _) = self.count_valid(&root.root_keys, &[], Foreign::Skip)?;
        if own < usize::from(root.root_threshold) {
            return Err(Refusal::TrustRootThreshold);
        }
        Ok(root)
    }

    /// Verifies a TrustRoot at factory provisioning: signed only by its own root keys, at least
    /// a threshold of them, and not expired. A rotated root still carrying its predecessor's
    /// signatures is refused here (`unknown_key`): provision with its own signatures only.
    pub fn verify_initial(&self, now: u64) -> Result<TrustRoot, Refusal> {
        let root: TrustRoot = crate::codec::decode(self.body)?;
        let (own, _) = self.count_valid(&root.root_keys, &[], Foreign::Refuse)?;
        if own < usize::from(root.root_threshold) {
            return Err(Refusal::TrustRootThreshold);
        }
        if root.expired(now) {
            return Err(Refusal::TrustRootExpired);
        }
        Ok(root)
    }

    /// Verifies a rotation from `current`: a threshold of signatures from the current root keys
    /// *and* a threshold from the new root's own keys, a higher version, and not expired.
    pub fn verify_rotation(&self, current: &TrustRoot, now: u64) -> Result<TrustRoot, Refusal> {
        let next: TrustRoot = crate::codec::decode(self.body)?;
        let (old, new) = self.count_valid(&current.root_keys, &next.root_keys, Foreign::Refuse)?;
        if old < usize::from(current.root_threshold) || new < usize::from(next.root_threshold) {
            return Err(Refusal::TrustRootThreshold);
        }
        if next.version <= current.version {
            return Err(Refusal::TrustRootNotNewer);
        }
        if next.expired(now) {
            return Err(Refusal::TrustRootExpired);
        }
        Ok(next)
    }
}
