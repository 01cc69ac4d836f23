//! What you see is what you sign: the manifest decoded here, from the very bytes the server asks
//! approvers to sign (`manifest_hex`), never from the server's own summary, and its digest
//! computed here.
//!
//! [`check`] refuses when the bytes do not decode as a device would decode them, when the digest
//! computed here differs from the server's, when the manifest is for another proposal or
//! revision than the card, or when the card's risk facts (tier, cohort size and root, firmware
//! version, kind) disagree with the signed bytes.

use super::error::CliError;
use super::render::{thousands, utc};
use super::types::{tier_name, ProposalView};
use airlock_proto::{Action, Digest, Manifest, Rollback};

/// A manifest that passed [`check`].
#[derive(Clone, Debug)]
pub struct Checked {
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// `SHA-256("airlock/v1/manifest\0" || bytes)`, computed here.
    pub digest: Digest,
}

impl Checked {
    /// The decoded manifest (it decoded in [`check`]).
    pub fn manifest(&self) -> Result<Manifest<'_>, CliError> {
        airlock_proto::decode(&self.bytes)
            .map_err(|r| CliError::Manifest(format!("the manifest does not decode as devices decode it ({r})")))
    }
}

/// The local decode and digest of `view`'s manifest, and every disagreement with the card.
#[derive(Debug)]
pub struct Local {
    /// The manifest, decoded and digested here.
    pub checked: Checked,
    /// Where the card (or the server's digest) disagrees with the signed bytes.
    pub disagreements: Vec<String>,
}

/// Decodes `view.manifest_hex` and compares it with the card; see [`check`].
pub fn inspect(view: &ProposalView) -> Result<Local, CliError> {
    let bytes = hex::decode(view.manifest_hex.trim())
        .map_err(|e| CliError::Manifest(format!("manifest_hex from the server is not hex ({e})")))?;
    let digest = airlock_proto::manifest_digest(&bytes);
    let checked = Checked { bytes, digest };
    let m = checked.manifest()?;
    let mut d = Vec::new();
    let local = hex::encode(digest.0);
    if !view.manifest_digest.trim().eq_ignore_ascii_case(&local) {
        d.push(format!(
            "the digest computed here, {local}, differs from the server's, {}: the server would count \
             signatures over other bytes than the ones shown",
            view.manifest_digest.trim()
        ));
    }
    // A wording-only edit keeps the manifest of an earlier revision; the card names which.
    let built_for = view.manifest_revision.unwrap_or(view.revision);
    if i64::try_from(m.proposal).ok() != Some(view.id) || m.revision != built_for || built_for > view.revision {
        d.push(format!(
            "the manifest is for proposal {} revision {}, the card for proposal {} revision {} (manifest of revision {built_for})",
            m.proposal, m.revision, view.id, view.revision
        ));
    }
    if tier_name(&view.tier) != m.tier.name() {
        d.push(format!("the card says tier {}, the signed manifest {}", tier_name(&view.tier), m.tier.name()));
    }
    if view.preview.count != m.cohort.size {
        d.push(format!(
            "the card's blast radius is {} devices, the signed cohort {}",
            view.preview.count, m.cohort.size
        ));
    }
    let root = hex::encode(m.cohort.root.0);
    if !view.preview.root.is_empty() && !view.preview.root.eq_ignore_ascii_case(&root) {
        d.push(format!("the card's cohort root {} is not the signed cohort root {root}", view.preview.root));
    }
    let kind = match m.action {
        Action::Firmware(_) => "firmware",
        Action::Config(_) => "config",
        Action::Decommission => "decommission",
    };
    if view.kind != kind {
        d.push(format!("the card says kind {}, the signed manifest {kind}", view.kind));
    }
    if let (Action::Firmware(f), Some(to)) = (&m.action, &view.diff.firmware_to) {
        if f.version.to_string() != *to {
            d.push(format!("the card's diff goes to firmware {to}, the signed manifest to {}", f.version));
        }
    }
    Ok(Local { checked, disagreements: d })
}

/// [`inspect`], refusing on any disagreement: the gate before signing.
pub fn check(view: &ProposalView) -> Result<Checked, CliError> {
    let local = inspect(view)?;
    if local.disagreements.is_empty() {
        Ok(local.checked)
    } else {
        Err(CliError::Manifest(local.disagreements.join("; ")))
    }
}

/// The risk-deciding fields of a manifest, as `(label, value)` lines.
pub fn fields(m: &Manifest<'_>) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = vec![("proposal", format!("{} revision {}", m.proposal, m.revision))];
    match m.action {
        Action::Firmware(f) => {
            v.push(("action", format!("install firmware {} on hardware {}", f.version, f.hardware)));
            v.push((
                "image",
                format!("sha256 {}, {} bytes", hex::encode(f.image_digest.0), thousands(u64::from(f.image_size))),
            ));
            v.push(("security counter", f.security_counter.to_string()));
        }
        Action::Config(c) => {
            v.push(("action", format!("push config version {}", c.version)));
            v.push(("payload", String::from_utf8_lossy(c.payload).into_owned()));
        }
        Action::Decommission => v.push(("action", "decommission: wipe credentials and retire".into())),
    }
    let devices = if m.cohort.size == 1 { "device" } else { "devices" };
    v.push((
        "cohort",
        format!("{} {devices}, root {}", thousands(u64::from(m.cohort.size)), hex::encode(m.cohort.root.0)),
    ));
    v.push(("tier", m.tier.name().to_string()));
    v.push((
        "rollback",
        match m.rollback {
            Rollback::None => "NONE".to_string(),
            Rollback::Previous => "previous image or config".to_string(),
            Rollback::Version(ver) => format!("roll forward to {ver}"),
        },
    ));
    v.push(("security", if m.security { "yes".into() } else { "no".into() }));
    v.push(("break-glass", if m.break_glass { "YES".into() } else { "no".into() }));
    let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
    v.push(("valid", format!("{} to {}", utc(ms(m.issued_at)), utc(ms(m.expires_at)))));
    v.push(("rollout plan", hex::encode(m.rollout_plan.0)));
    v.push(("policy", hex::encode(m.policy.0)));
    v.push(("requester key", hex::encode(m.requester.0)));
    v.push(("sequence", m.sequence.to_string()));
    v
}

/// The fields as an indented block.
pub fn block(m: &Manifest<'_>) -> String {
    fields(m).into_iter().map(|(k, val)| format!("  {k:<17}{val}\n")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use airlock_proto::{Cohort, Firmware, PublicKey, Tier, Version};

    /// Manifest bytes for proposal 7 revision 2: firmware 2.4.1, 52 devices, two_person.
    pub(crate) fn manifest_bytes() -> Vec<u8> {
        let m = Manifest {
            proposal: 7,
            revision: 2,
            sequence: 41,
            issued_at: 1_700_000_000,
            expires_at: 1_700_000_000 + 7 * 86_400,
            action: Action::Firmware(Firmware {
                hardware: "gw-m4",
                version: Version::new(2, 4, 1),
                security_counter: 3,
                image_digest: Digest::from([0xab; 32]),
                image_size: 786_432,
                chunk_size: 4096,
            }),
            cohort: Cohort { root: Digest::from([0x11; 32]), size: 52 },
            rollout_plan: Digest::from([0x22; 32]),
            rollback: Rollback::Previous,
            security: true,
            break_glass: false,
            tier: Tier::TwoPerson,
            policy: Digest::from([0x33; 32]),
            requester: PublicKey::from([0x44; 32]),
        };
        airlock_proto::codec::encode(&m)
    }

    /// A card for [`manifest_bytes`] as the server would send it, with the honest digest.
    pub(crate) fn view_json() -> serde_json::Value {
        let bytes = manifest_bytes();
        serde_json::json!({
            "id": 7, "action": "Install firmware 2.4.1 on 52 devices because it fixes the watchdog.",
            "kind": "firmware", "title": "fw 2.4.1", "requester": "rita", "state": "awaiting_approval",
            "tier": "two_person", "break_glass": false, "revision": 2, "escalation_level": 0,
            "routed_to": ["fw-oncall", "security"], "on_call": {"fw-oncall": "alice", "security": "carol"},
            "due_at": 1_700_028_800_000_i64, "created_at": 1_700_000_000_000_i64, "updated_at": 1_700_000_000_000_i64,
            "decided_at": null,
            "decision": {"tier": "TwoPerson", "matched": [{"rule": "security-related change", "source": "default.toml:131",
                "tier": "TwoPerson", "because": ["security-related"], "why": "two people review security fixes"}],
                "default_applied": false, "device_floor": "TwoPerson", "policy_digest": "33".repeat(32)},
            "preview": {"count": 52, "fleet": 1000, "share": 0.052, "by_hardware": {"gw-m4": 52},
                "by_region": {"eu-west": 30, "us-east": 22}, "by_firmware": {"2.3.9": 50, "2.4.0": 2},
                "by_environment": {"production": 52}, "sample": ["gw-0001", "gw-0020"], "root": "11".repeat(32)},
            "spec": {"kind": "firmware", "title": "fw 2.4.1", "reason": "because it fixes the watchdog",
                "cohort": {"environment": ["production"], "share": 0.05},
                "firmware": {"version": "2.4.1", "hardware": "gw-m4", "security_counter": 3,
                    "image_sha256": "ab".repeat(32), "image_size": 786_432},
                "rollout": {"waves": [0.1, 0.5, 1.0], "success_threshold": 0.95, "failure_threshold": 0.02,
                    "device_timeout": "30m", "rate_per_sec": 20, "on_breach": "abort"},
                "rollback": {"plan": "previous"}, "security": true},
            "manifest": {"kind": "firmware", "version": "2.4.1"},
            "manifest_hex": hex::encode(&bytes),
            "manifest_digest": hex::encode(airlock_proto::manifest_digest(&bytes).0),
            "release_signature": null,
            "diff": {"firmware_from": {"2.3.9": 50, "2.4.0": 2}, "firmware_to": "2.4.1", "config": [], "config_base": null},
            "alternatives": [{"label": "Canary only: 1% of the cohort", "spec": {"kind": "firmware", "title": "fw 2.4.1",
                "reason": "because it fixes the watchdog", "cohort": {"share": 0.0005},
                "firmware": {"version": "2.4.1", "hardware": "gw-m4", "image_sha256": "ab".repeat(32), "image_size": 786_432}}}],
            "approvals": [{"approver": "alice", "public_key": "55".repeat(32), "decision": "approve", "signature": "66".repeat(64),
                "reason": "canary looked fine", "card_ms": null, "diff_opened": null, "at": 1_700_000_600_000_i64, "voided": false}],
            "quorum": {"needed": 2, "have": 1, "roles": ["approver"], "approvers": ["alice"]}
        })
    }

    pub(crate) fn view() -> ProposalView {
        serde_json::from_value(view_json()).unwrap()
    }

    #[test]
    fn an_honest_card_passes_and_the_digest_is_computed_here() {
        let v = view();
        let c = check(&v).unwrap();
        assert_eq!(c.bytes, manifest_bytes());
        assert_eq!(c.digest, airlock_proto::manifest_digest(&manifest_bytes()));
    }

    #[test]
    fn a_server_digest_that_does_not_match_the_bytes_is_refused() {
        let mut v = view();
        v.manifest_digest = "00".repeat(32);
        let e = check(&v).unwrap_err();
        let CliError::Manifest(msg) = &e else { panic!("{e:?}") };
        assert!(msg.contains("differs from the server's"), "{msg}");
        assert!(msg.contains(&hex::encode(airlock_proto::manifest_digest(&manifest_bytes()).0)), "{msg}");
        assert!(e.to_string().starts_with("refusing to sign: "), "{e}");
    }

    #[test]
    fn bytes_swapped_under_an_unchanged_digest_are_refused() {
        // The server shows other bytes (a bigger cohort) but keeps the old digest.
        let honest = manifest_bytes();
        let m: Manifest<'_> = airlock_proto::decode(&honest).unwrap();
        let bigger = airlock_proto::codec::encode(&Manifest { cohort: Cohort { size: 5000, ..m.cohort }, ..m });
        let mut v = view();
        v.manifest_hex = hex::encode(&bigger);
        let msg = check(&v).unwrap_err().to_string();
        assert!(msg.contains("differs from the server's"), "{msg}");
        assert!(msg.contains("blast radius is 52 devices, the signed cohort 5000"), "{msg}");
    }

    #[test]
    fn a_card_that_misstates_the_signed_bytes_is_refused() {
        let mut v = view();
        v.tier = "single".into();
        v.revision = 3;
        v.diff.firmware_to = Some("2.4.0".into());
        let msg = check(&v).unwrap_err().to_string();
        assert!(msg.contains("the card says tier single, the signed manifest two_person"), "{msg}");
        assert!(msg.contains("for proposal 7 revision 2, the card for proposal 7 revision 3"), "{msg}");
        assert!(msg.contains("diff goes to firmware 2.4.0, the signed manifest to 2.4.1"), "{msg}");
    }

    #[test]
    fn bytes_that_devices_would_not_decode_are_refused() {
        let mut v = view();
        v.manifest_hex = "00ff".into();
        let msg = check(&v).unwrap_err().to_string();
        assert!(msg.contains("does not decode as devices decode it"), "{msg}");
        v.manifest_hex = "zz".into();
        assert!(check(&v).unwrap_err().to_string().contains("not hex"));
    }

    #[test]
    fn the_fields_shown_come_from_the_bytes() {
        let c = check(&view()).unwrap();
        let text = block(&c.manifest().unwrap());
        assert!(text.contains("install firmware 2.4.1 on hardware gw-m4"), "{text}");
        assert!(text.contains("52 devices, root 1111"), "{text}");
        assert!(text.contains("tier             two_person"), "{text}");
        assert!(text.contains("2023-11-14 22:13 UTC to 2023-11-21 22:13 UTC"), "{text}");
    }
}
