//! Signed device reports.

use airlock_agent_core::Identity;
use airlock_proto::build::SignedOwned;
use airlock_proto::{Domain, Report};
use ed25519_dalek::SigningKey;

/// Encodes and signs `report` with the device key from `identity`: the bytes to publish on
/// `airlock/v1/d/{id}/report`.
pub fn sign(identity: &Identity, report: &Report<'_>) -> Vec<u8> {
    let key = SigningKey::from_bytes(&identity.key_seed);
    SignedOwned::sign(Domain::Report, report, &key).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_proto::{decode, Event, Signed, Status, Tier, Version};

    #[test]
    fn a_signed_report_verifies_under_the_device_key_and_nothing_else() {
        let identity = Identity {
            device_id: "gw-1".try_into().unwrap(),
            hardware: "gw".try_into().unwrap(),
            min_tier: Tier::AutoPass,
            key_seed: [5; 32],
        };
        let status = Status {
            firmware: Version::new(1, 2, 3),
            security_counter: 1,
            config: 0,
            sequence: 9,
            trust_root: 1,
            testing: false,
        };
        let report = Report { device: "gw-1", counter: 1, at: 1_800_000_000, event: Event::Status(status) };
        let bytes = sign(&identity, &report);
        let signed: Signed<'_> = decode(&bytes).unwrap();
        let device_key = airlock_proto::sig::public_key(&SigningKey::from_bytes(&[5; 32]));
        let body = signed.verify_by(Domain::Report, &[device_key]).unwrap();
        assert_eq!(decode::<Report<'_>>(body).unwrap(), report);
        let other = airlock_proto::sig::public_key(&SigningKey::from_bytes(&[6; 32]));
        assert_eq!(signed.verify_by(Domain::Report, &[other]), Err(airlock_proto::Refusal::UnknownKey));
    }
}
