//! The manifest as one line of text, built from the signed bytes. The card's script decodes the
//! same bytes itself and builds the same line (`manifestSummary` in `card.js`); signing is
//! disabled unless the two agree, and the device count the approver must type is checked
//! against the count decoded in the browser. So what the approver confirms is what the bytes
//! they sign say, not only what the server rendered.

use airlock_proto::{Action, Manifest, Rollback};

/// Every risk-deciding field of `m`, fields separated by ` | ` (the script's format exactly).
pub fn summary(m: &Manifest<'_>) -> String {
    let action = match m.action {
        Action::Firmware(f) => format!(
            "firmware {} for {} | image {} of {} bytes in chunks of {} | security counter {}",
            f.version,
            f.hardware,
            hex::encode(f.image_digest.0),
            f.image_size,
            f.chunk_size,
            f.security_counter
        ),
        Action::Config(c) => format!("config version {} | payload {}", c.version, hex::encode(c.payload)),
        Action::Decommission => "decommission".to_string(),
    };
    let rollback = match m.rollback {
        Rollback::None => "none".to_string(),
        Rollback::Previous => "previous".to_string(),
        Rollback::Version(v) => format!("version {v}"),
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    format!(
        "proposal {} revision {} sequence {} | {action} | cohort of {} devices, root {} | tier {} | rollback {rollback} \
         | security {} | break-glass {} | issued {} expires {} | rollout plan {} | policy {} | requester {}",
        m.proposal,
        m.revision,
        m.sequence,
        m.cohort.size,
        hex::encode(m.cohort.root.0),
        m.tier.name(),
        yes(m.security),
        yes(m.break_glass),
        m.issued_at,
        m.expires_at,
        hex::encode(m.rollout_plan.0),
        hex::encode(m.policy.0),
        hex::encode(m.requester.0),
    )
}

/// [`summary`] of hex manifest bytes; `None` if they do not decode (the card then refuses to
/// sign, and the server would never have built them).
pub fn summary_of_hex(manifest_hex: &str) -> Option<String> {
    let bytes = hex::decode(manifest_hex).ok()?;
    let m: Manifest<'_> = airlock_proto::decode(&bytes).ok()?;
    Some(summary(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_every_field_in_the_scripts_format() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proto/tests/vectors/manifest_firmware.hex"
        ))
        .unwrap();
        let body = super::super::signing::vector_body(&text);
        let s = summary_of_hex(&body).unwrap();
        assert!(
            s.starts_with("proposal 1007 revision 2 sequence 7 | firmware 1.4.2 for stm32f4-eval | image 8f272ca6"),
            "{s}"
        );
        assert!(
            s.contains("of 40000 bytes in chunks of 1024 | security counter 3 | cohort of 5 devices, root a2b7370f")
        );
        assert!(s.contains("| tier two_person | rollback previous | security yes | break-glass no | issued 1767229200"));
        assert!(!s.contains(';') && !s.contains('"'), "the script's constants cannot hold these");
        assert_eq!(summary_of_hex("zz"), None);
        assert_eq!(summary_of_hex(&body[..body.len() - 2]), None, "a truncated manifest does not decode");
    }
}
