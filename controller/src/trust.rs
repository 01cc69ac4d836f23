//! Issuing the TrustRoot devices believe: release keys, the approver roster and the device
//! floor from the policy, signed by the root keys.

use crate::policy::Policy;
use airlock_proto::build::sign_trust_root;
use airlock_proto::{Approver, PublicKey, Roles, TrustRoot};
use ed25519_dalek::SigningKey;

/// Why a TrustRoot cannot be issued.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// More entries than a device can hold.
    #[error("too many {what} for a TrustRoot (at most {max})")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its bound.
        max: usize,
    },
    /// The threshold cannot be met by the root keys.
    #[error("root threshold {threshold} with {keys} root keys")]
    Threshold {
        /// Threshold.
        threshold: u8,
        /// Root keys.
        keys: usize,
    },
    /// The result would be refused by devices.
    #[error("devices would refuse this TrustRoot: {0}")]
    Refused(airlock_proto::Refusal),
}

/// What goes into a TrustRoot besides the policy.
#[derive(Debug)]
pub struct Roster<'k> {
    /// Version (above the one devices hold).
    pub version: u32,
    /// Unix seconds.
    pub expires_at: u64,
    /// The root keys that sign it, all of them (their threshold is `threshold`).
    pub root_keys: &'k [SigningKey],
    /// How many root keys must sign the next rotation.
    pub threshold: u8,
    /// The controller's release keys.
    pub release_keys: Vec<PublicKey>,
    /// Approvers and their roles.
    pub approvers: Vec<Approver>,
}

/// Builds and signs the TrustRoot; returns it and its signed encoding.
pub fn issue(policy: &Policy, r: &Roster<'_>) -> Result<(TrustRoot, Vec<u8>), TrustError> {
    use airlock_proto::limits::{MAX_APPROVERS, MAX_RELEASE_KEYS, MAX_ROOT_KEYS};
    let too_many = |what, max| TrustError::TooMany { what, max };
    if usize::from(r.threshold) == 0 || usize::from(r.threshold) > r.root_keys.len() {
        return Err(TrustError::Threshold { threshold: r.threshold, keys: r.root_keys.len() });
    }
    let root = TrustRoot {
        version: r.version,
        expires_at: r.expires_at,
        root_threshold: r.threshold,
        root_keys: heapless::Vec::from_slice(
            &r.root_keys.iter().map(airlock_proto::sig::public_key).collect::<Vec<_>>(),
        )
        .map_err(|_| too_many("root keys", MAX_ROOT_KEYS))?,
        release_keys: heapless::Vec::from_slice(&r.release_keys)
            .map_err(|_| too_many("release keys", MAX_RELEASE_KEYS))?,
        approvers: heapless::Vec::from_slice(&r.approvers).map_err(|_| too_many("approvers", MAX_APPROVERS))?,
        rules: policy.device_rules.clone(),
    };
    let signers: Vec<&SigningKey> = r.root_keys.iter().collect();
    let bytes = sign_trust_root(&root, &signers);
    // Issue nothing a device would refuse.
    let signed: airlock_proto::SignedTrustRoot<'_> = airlock_proto::decode(&bytes).map_err(TrustError::Refused)?;
    signed.verify_self().map_err(TrustError::Refused)?;
    Ok((root, bytes))
}

/// The device roles of a user with these role names (server-only roles carry none).
pub fn device_roles(names: &[String]) -> Roles {
    names.iter().filter_map(|n| crate::policy::model::role_by_name(n)).fold(Roles::NONE, Roles::union)
}
