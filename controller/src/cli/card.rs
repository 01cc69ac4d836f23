//! The approval card in the terminal: what, to whom, why this tier, what changes, how it rolls
//! out and comes back, who has approved, and the manifest decoded here from the bytes an
//! approver signs, with a loud warning wherever the card and those bytes disagree.

use super::manifest::{self, Local};
use super::render::{counts, inline, percent, relative, short, thousands, utc};
use super::types::{tier_name, PolicyDecision, ProposalView};
use crate::workflow::spec::{Breach, RollbackSpec, RolloutPlan, Spec};
use std::fmt::Write as _;

/// The full card.
pub fn card(v: &ProposalView, now_ms: i64) -> String {
    let local = manifest::inspect(v);
    let mut o = String::new();
    if let Some(w) = warning(&local) {
        o.push_str(&w);
        o.push('\n');
    }
    o.push_str(&header(v, now_ms));
    o.push_str(&why(v));
    o.push_str(&blast_radius(v));
    o.push_str(&change(v));
    o.push_str(&rollout(&v.spec));
    o.push_str(&alternatives(v));
    o.push_str(&quorum(v, now_ms));
    o.push_str("\nSigned manifest (decoded here from the bytes approvers sign)\n");
    match &local {
        Ok(l) => {
            if let Ok(m) = l.checked.manifest() {
                o.push_str(&manifest::block(&m));
            }
            let ok = if l.disagreements.is_empty() { "matches the server's" } else { "SEE WARNING" };
            let _ = writeln!(o, "  {:<17}{} ({ok})", "digest", hex::encode(l.checked.digest.0));
        }
        Err(e) => {
            let _ = writeln!(o, "  {e}");
        }
    }
    if let Some(sig) = &v.release_signature {
        let _ = writeln!(o, "  {:<17}{}", "release signature", short(sig));
    }
    if let Some(w) = warning(&local) {
        o.push('\n');
        o.push_str(&w);
    }
    o
}

/// A few lines after `propose` or `edit`: the sentence, state, tier, quorum, blast radius.
pub fn summary(v: &ProposalView, now_ms: i64) -> String {
    let mut o = header(v, now_ms);
    let _ = writeln!(
        o,
        "  {:<16}{} devices, {} of the fleet",
        "blast radius",
        thousands(u64::from(v.preview.count)),
        percent(v.preview.share)
    );
    let _ = writeln!(o, "  {:<16}{} of {} approvals", "quorum", v.quorum.have, v.quorum.needed);
    if let Some(w) = warning(&manifest::inspect(v)) {
        o.push_str(&w);
    }
    let _ = writeln!(o, "\nthe full card: airlock show {}", v.id);
    o
}

/// The loud warning, if the card and the signed bytes disagree.
fn warning(local: &Result<Local, super::error::CliError>) -> Option<String> {
    let problems: Vec<String> = match local {
        Ok(l) if l.disagreements.is_empty() => return None,
        Ok(l) => l.disagreements.clone(),
        Err(e) => vec![e.to_string()],
    };
    let mut o = String::from("!!! WARNING: THIS CARD DOES NOT MATCH THE MANIFEST APPROVERS WOULD SIGN\n");
    for p in problems {
        let _ = writeln!(o, "!!!   {p}");
    }
    o.push_str(
        "!!! Do not approve it; 'airlock approve' refuses to sign it. Report it to the controller's operators.\n",
    );
    Some(o)
}

fn header(v: &ProposalView, now_ms: i64) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Proposal {}, revision {}: {}", v.id, v.revision, v.title);
    if let Some(built) = v.manifest_revision.filter(|r| *r != v.revision) {
        let _ = writeln!(o, "  (wording edits since revision {built}: its manifest, and the approvals over it, stand)");
    }
    let _ = writeln!(o, "{}\n", v.action);
    let state = match v.decided_at {
        Some(at) => format!("{} ({})", v.state, relative(at, now_ms)),
        None => v.state.clone(),
    };
    let _ = writeln!(o, "  {:<16}{state}", "state");
    let _ = writeln!(o, "  {:<16}{}, {}", "requested by", v.requester, relative(v.created_at, now_ms));
    let glass = if v.break_glass { "   BREAK-GLASS (emergency lane)" } else { "" };
    let _ = writeln!(o, "  {:<16}{}{glass}", "tier", tier_name(&v.tier));
    if !v.routed_to.is_empty() {
        let pools: Vec<String> = v
            .routed_to
            .iter()
            .map(|p| match v.on_call.get(p) {
                Some(who) => format!("{p} (on call: {who})"),
                None => p.clone(),
            })
            .collect();
        let level =
            if v.escalation_level > 0 { format!("   escalated {}x", v.escalation_level) } else { String::new() };
        let _ = writeln!(o, "  {:<16}{}{level}", "routed to", pools.join(", "));
    }
    if let Some(due) = v.due_at {
        let _ = writeln!(o, "  {:<16}{} ({})", "due", utc(due), relative(due, now_ms));
    }
    o
}

fn why(v: &ProposalView) -> String {
    let mut o = format!("\nWhy {}\n", tier_name(&v.tier));
    let Ok(d) = serde_json::from_value::<PolicyDecision>(v.decision.clone()) else {
        let _ = writeln!(o, "  (the controller sent no policy decision)");
        return o;
    };
    o.push_str(&decision_lines(&d));
    o
}

/// The matched rules with their reasons, the default, the floor and the policy digest.
pub fn decision_lines(d: &PolicyDecision) -> String {
    let mut o = String::new();
    for m in &d.matched {
        let at = if m.source.is_empty() { String::new() } else { format!("  ({})", m.source) };
        let _ = writeln!(o, "  - {} -> {}{at}", m.rule, tier_name(&m.tier));
        for b in &m.because {
            let _ = writeln!(o, "      because {b}");
        }
        if let Some(why) = &m.why {
            let _ = writeln!(o, "      why: {why}");
        }
    }
    if d.default_applied {
        let _ = writeln!(o, "  no rule matched: the default tier applied");
    }
    let floor = d.device_floor.as_deref().map_or_else(|| "-".to_string(), tier_name);
    let _ = writeln!(o, "  devices demand at least {floor} for the declared fields (the TrustRoot floor)");
    let _ = writeln!(o, "  policy {}", d.policy_digest);
    o
}

/// Count, share and breakdowns of a preview.
pub fn preview_lines(p: &super::types::Preview) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "  {} devices, {} of a fleet of {}",
        thousands(u64::from(p.count)),
        percent(p.share),
        thousands(u64::from(p.fleet))
    );
    let _ = writeln!(o, "  {:<16}{}", "by model", counts(&p.by_hardware));
    let _ = writeln!(o, "  {:<16}{}", "by region", counts(&p.by_region));
    let _ = writeln!(o, "  {:<16}{}", "by version", counts(&p.by_firmware));
    let _ = writeln!(o, "  {:<16}{}", "by environment", counts(&p.by_environment));
    if !p.sample.is_empty() {
        let _ = writeln!(o, "  {:<16}{}", "sample", p.sample.join(", "));
    }
    o
}

fn blast_radius(v: &ProposalView) -> String {
    format!("\nBlast radius\n{}", preview_lines(&v.preview))
}

fn change(v: &ProposalView) -> String {
    let mut o = String::from("\nChange\n");
    let d = &v.diff;
    if let Some(to) = &d.firmware_to {
        for (from, n) in &d.firmware_from {
            let mark = if from == to { "  (already there)" } else { "" };
            let devices = if *n == 1 { "device" } else { "devices" };
            let _ = writeln!(o, "  firmware {from} -> {to}   {} {devices}{mark}", thousands(u64::from(*n)));
        }
        if d.firmware_from.is_empty() {
            let _ = writeln!(o, "  firmware -> {to}");
        }
    }
    if !d.config.is_empty() {
        let base = d.config_base.as_deref().unwrap_or("nothing signed before");
        let _ = writeln!(o, "  config compared with {base}:");
        for l in &d.config {
            let val = |x: &Option<serde_json::Value>| x.as_ref().map_or_else(|| "-".to_string(), inline);
            let line = match l.change.as_str() {
                "added" => format!("+ {} = {}", l.key, val(&l.new)),
                "removed" => format!("- {} = {}", l.key, val(&l.old)),
                "changed" => format!("~ {} = {} -> {}", l.key, val(&l.old), val(&l.new)),
                _ => format!("  {} = {}", l.key, val(&l.new)),
            };
            let _ = writeln!(o, "  {line}");
        }
    }
    if v.kind == "decommission" {
        let _ = writeln!(o, "  decommission: devices wipe their credentials and retire");
    }
    o
}

fn rollout(spec: &Spec) -> String {
    let mut o = String::from("\nRollout\n");
    o.push_str(&plan_lines(&spec.rollout));
    let back = match &spec.rollback {
        RollbackSpec::None => "NONE: there is no way back".to_string(),
        RollbackSpec::Previous => "previous image or config (kept on the device)".to_string(),
        RollbackSpec::Version(ver) => format!("roll forward to {ver}"),
    };
    let _ = writeln!(o, "  {:<16}{back}", "rollback");
    if let Some(l) = &spec.lifetime {
        let _ = writeln!(o, "  {:<16}{l}", "valid for");
    }
    if let Some(r) = &spec.break_glass {
        let _ = writeln!(o, "  {:<16}{r}", "break-glass");
    }
    o
}

/// The waves, thresholds and limits of a plan.
pub fn plan_lines(p: &RolloutPlan) -> String {
    let waves: Vec<String> = p.waves.iter().map(|w| percent(*w)).collect();
    let breach = match p.on_breach {
        Breach::Pause => "pause and ask",
        Breach::Abort => "abort and revert",
    };
    let mut o = String::new();
    let _ = writeln!(o, "  {:<16}{} of the cohort", "waves", waves.join(" -> "));
    let _ = writeln!(o, "  {:<16}next wave at {} confirmed", "proceed", percent(p.success_threshold));
    let _ = writeln!(o, "  {:<16}{} failed: {breach}", "breach", percent(p.failure_threshold));
    let _ = writeln!(
        o,
        "  {:<16}silent for {} counts as failed; at most {}/s",
        "devices", p.device_timeout, p.rate_per_sec
    );
    o
}

fn alternatives(v: &ProposalView) -> String {
    if v.alternatives.is_empty() {
        return String::new();
    }
    let mut o = String::from("\nSafer alternatives (edit with 'airlock edit ID --file SPEC')\n");
    for a in &v.alternatives {
        let share = a.spec.cohort.share.map_or_else(String::new, |s| format!("  (cohort share {})", percent(s)));
        let _ = writeln!(o, "  - {}{share}", a.label);
    }
    o
}

fn quorum(v: &ProposalView, now_ms: i64) -> String {
    let q = &v.quorum;
    let roles = if q.roles.is_empty() {
        String::new()
    } else {
        format!(", each role held by one of them: {}", q.roles.join(", "))
    };
    let mut o = format!("\nQuorum: {} of {} approvals{roles}\n", q.have, q.needed);
    for a in &v.approvals {
        let what = match (a.decision.as_str(), a.voided) {
            (_, true) => "approved (VOIDED by an edit)",
            ("approve", _) => "approved",
            ("reject", _) => "REJECTED",
            (other, _) => other,
        };
        let reason = if a.reason.is_empty() { String::new() } else { format!(": {:?}", a.reason) };
        let _ = writeln!(o, "  {} {what} {}{reason}", a.approver, relative(a.at, now_ms));
    }
    if v.approvals.is_empty() {
        let _ = writeln!(o, "  nobody has decided yet");
    }
    if v.state == "awaiting_approval" && q.needed > q.have {
        let _ = writeln!(
            o,
            "  to decide: airlock approve {} --key YOUR.key   (or: airlock reject {} --key YOUR.key --reason ...)",
            v.id, v.id
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::manifest::tests::view;

    const NOW: i64 = 1_700_003_600_000;

    #[test]
    fn the_card_shows_every_section_from_the_server_and_the_bytes() {
        let text = card(&view(), NOW);
        for want in [
            "Proposal 7, revision 2: fw 2.4.1",
            "Install firmware 2.4.1 on 52 devices because it fixes the watchdog.",
            "state           awaiting_approval",
            "requested by    rita, 1h ago",
            "routed to       fw-oncall (on call: alice), security (on call: carol)",
            "due             2023-11-15 06:13 UTC (in 7h)",
            "Why two_person",
            "- security-related change -> two_person  (default.toml:131)",
            "because security-related",
            "why: two people review security fixes",
            "devices demand at least two_person",
            "52 devices, 5.2% of a fleet of 1,000",
            "by region       eu-west 30, us-east 22",
            "firmware 2.3.9 -> 2.4.1   50 devices",
            "waves           10.0% -> 50.0% -> 100.0% of the cohort",
            "breach          2.0% failed: abort and revert",
            "rollback        previous image or config",
            "- Canary only: 1% of the cohort  (cohort share 0.05%)",
            "Quorum: 1 of 2 approvals, each role held by one of them: approver",
            "alice approved 50m ago: \"canary looked fine\"",
            "install firmware 2.4.1 on hardware gw-m4",
            "(matches the server's)",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("WARNING"), "{text}");
    }

    #[test]
    fn a_digest_mismatch_is_shouted_at_the_top_and_the_bottom() {
        let mut v = view();
        v.manifest_digest = "00".repeat(32);
        let text = card(&v, NOW);
        assert!(text.starts_with("!!! WARNING: THIS CARD DOES NOT MATCH"), "{text}");
        assert_eq!(text.matches("differs from the server's").count(), 2, "{text}");
        assert!(text.contains("(SEE WARNING)"), "{text}");
    }

    #[test]
    fn config_diffs_mark_each_change_and_show_secrets_only_as_redacted() {
        let mut json = crate::cli::manifest::tests::view_json();
        json["diff"]["firmware_to"] = serde_json::Value::Null;
        json["diff"]["config_base"] = "revision 1".into();
        json["diff"]["config"] = serde_json::json!([
            {"key": "apn", "change": "changed", "old": "old.apn", "new": "new.apn"},
            {"key": "psk", "change": "changed", "old": "<secret: redacted>", "new": "<secret: redacted>"},
            {"key": "debug", "change": "removed", "old": true, "new": null},
            {"key": "interval", "change": "added", "old": null, "new": 30},
            {"key": "region", "change": "unchanged", "old": "eu", "new": "eu"}
        ]);
        let v: ProposalView = serde_json::from_value(json).unwrap();
        let text = change(&v);
        assert_eq!(
            text,
            "\nChange\n  config compared with revision 1:\n  ~ apn = old.apn -> new.apn\n  \
             ~ psk = <secret: redacted> -> <secret: redacted>\n  - debug = true\n  + interval = 30\n    region = eu\n"
        );
    }

    #[test]
    fn the_summary_points_to_the_full_card() {
        let text = summary(&view(), NOW);
        assert!(text.contains("blast radius    52 devices, 5.2% of the fleet"), "{text}");
        assert!(text.contains("quorum          1 of 2 approvals"), "{text}");
        assert!(text.ends_with("the full card: airlock show 7\n"), "{text}");
    }
}
