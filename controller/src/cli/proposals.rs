//! `propose`, `show`, `list`, `queue`, `edit`, `explain`.

use super::card::{self, decision_lines, preview_lines};
use super::client::{self, parse};
use super::render::{duration, now_ms, table, utc};
use super::types::{tier_name, Explained, ProposalView, Queue};
use super::{out, out_json, spec_file, CliError, Ctx};
use std::fmt::Write as _;
use std::path::Path;

/// `airlock propose --file SPEC`.
pub async fn propose(ctx: &Ctx, file: &Path) -> Result<(), CliError> {
    let spec = spec_file::read(file)?;
    let v = client::propose(&ctx.client()?, &spec).await?;
    if ctx.json {
        return out_json(&v);
    }
    let view: ProposalView = parse("POST /api/proposals", v)?;
    out(&format!("proposed\n\n{}", card::summary(&view, now_ms())))
}

/// `airlock show ID`.
pub async fn show(ctx: &Ctx, id: i64) -> Result<(), CliError> {
    let v = client::proposal(&ctx.client()?, id).await?;
    if ctx.json {
        return out_json(&v);
    }
    let view: ProposalView = parse("GET /api/proposals/{id}", v)?;
    out(&card::card(&view, now_ms()))
}

/// `airlock list`.
pub async fn list(ctx: &Ctx, state: Option<&str>, limit: u32) -> Result<(), CliError> {
    let v = client::proposals(&ctx.client()?, state, limit).await?;
    if ctx.json {
        return out_json(&v);
    }
    let views: Vec<ProposalView> = parse("GET /api/proposals", v)?;
    if views.is_empty() {
        return out("no proposals\n");
    }
    out(&list_text(&views))
}

fn list_text(views: &[ProposalView]) -> String {
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.state.clone(),
                tier_name(&p.tier),
                format!("{}/{}", p.quorum.have, p.quorum.needed),
                p.requester.clone(),
                utc(p.created_at),
                p.title.clone(),
            ]
        })
        .collect();
    table(&["id", "state", "tier", "quorum", "requester", "created", "title"], &rows)
}

/// `airlock queue`.
pub async fn queue(ctx: &Ctx) -> Result<(), CliError> {
    let v = client::queue(&ctx.client()?).await?;
    if ctx.json {
        return out_json(&v);
    }
    let queues: Vec<Queue> = parse("GET /api/queue", v)?;
    out(&queue_text(&queues))
}

/// One block per pool and kind; per request its quorum, age and the time left before the lane's
/// timer fires (its SLA), as the server counts it.
pub fn queue_text(queues: &[Queue]) -> String {
    if queues.is_empty() {
        return "nothing waiting in your pools (or you are in none)\n".into();
    }
    let mut o = String::new();
    for q in queues {
        let on_call = q.on_call.as_ref().map_or_else(String::new, |w| format!(" (on call: {w})"));
        let _ = writeln!(o, "{} / {}{on_call}: {} waiting", q.pool, q.kind, q.items.len());
        let rows: Vec<Vec<String>> = q
            .items
            .iter()
            .map(|it| {
                let left = match it.sla_left_ms {
                    Some(l) if l >= 0 => format!("{} left", duration(l)),
                    Some(l) => format!("OVERDUE by {}", duration(-l)),
                    None => "no deadline".into(),
                };
                let own = if it.own { " (yours: you cannot decide it)" } else { "" };
                vec![
                    format!("#{}", it.id),
                    tier_name(&it.tier),
                    format!("{}/{}", it.quorum.0, it.quorum.1),
                    duration(it.age_ms),
                    left,
                    format!("{}{own}", it.action),
                ]
            })
            .collect();
        if rows.is_empty() {
            o.push_str("  nothing waiting\n");
        } else {
            for line in table(&["id", "tier", "quorum", "age", "time left", "action"], &rows).lines() {
                let _ = writeln!(o, "  {line}");
            }
        }
        o.push('\n');
    }
    o
}

/// `airlock edit ID --file SPEC`.
pub async fn edit(ctx: &Ctx, id: i64, file: &Path) -> Result<(), CliError> {
    let spec = spec_file::read(file)?;
    let c = ctx.client()?;
    let before: ProposalView = parse("GET /api/proposals/{id}", client::proposal(&c, id).await?)?;
    let v = client::revise(&c, id, &spec).await?;
    if ctx.json {
        return out_json(&v);
    }
    let after: ProposalView = parse("POST /api/proposals/{id}/revisions", v)?;
    out(&format!("{}\n{}", edit_outcome(&before, &after), card::summary(&after, now_ms())))
}

/// Revision change and whether approvals were voided, from the quorum before and after.
pub fn edit_outcome(before: &ProposalView, after: &ProposalView) -> String {
    let mut o = format!("revision {} -> {}", before.revision, after.revision);
    if tier_name(&before.tier) != tier_name(&after.tier) {
        let _ = write!(o, "; re-tiered {} -> {}", tier_name(&before.tier), tier_name(&after.tier));
    }
    o.push('\n');
    let voided: Vec<&String> = before.quorum.approvers.iter().filter(|a| !after.quorum.approvers.contains(a)).collect();
    if !voided.is_empty() {
        let names: Vec<&str> = voided.iter().map(|s| s.as_str()).collect();
        let _ = writeln!(
            o,
            "approvals VOIDED by this change to what approvers sign: {} (quorum now {} of {})",
            names.join(", "),
            after.quorum.have,
            after.quorum.needed
        );
    } else if before.quorum.have > 0 {
        let _ = writeln!(
            o,
            "approvals kept: nothing approvers sign changed ({} of {})",
            after.quorum.have, after.quorum.needed
        );
    } else {
        let _ = writeln!(o, "no approvals to void");
    }
    o
}

/// `airlock explain --file SPEC`.
pub async fn explain(ctx: &Ctx, file: &Path) -> Result<(), CliError> {
    let spec = spec_file::read(file)?;
    let v = client::explain(&ctx.client()?, &spec).await?;
    if ctx.json {
        return out_json(&v);
    }
    let e: Explained = parse("POST /api/explain", v)?;
    out(&explain_text(&e))
}

/// The tier, why, and the blast radius.
pub fn explain_text(e: &Explained) -> String {
    format!(
        "tier: {}\n\nWhy\n{}\nBlast radius\n{}",
        tier_name(&e.decision.tier),
        decision_lines(&e.decision),
        preview_lines(&e.preview)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::manifest::tests::{view, view_json};
    use serde_json::json;

    const NOW: i64 = 1_700_003_600_000;

    #[test]
    fn the_queue_shows_a_block_per_pool_and_kind_with_age_and_time_left() {
        let q: Vec<Queue> = serde_json::from_value(json!([
            {"pool": "fw-oncall", "kind": "firmware", "on_call": "alice", "items": [
                {"id": 7, "action": "Install firmware 2.4.1 on 52 devices because x.", "tier": "two_person",
                 "age_ms": 3_600_000, "due_at": NOW + 25_200_000, "sla_left_ms": 25_200_000, "quorum": [1, 2], "own": false},
                {"id": 9, "action": "Push config version 3 to 4 devices because y.", "tier": "single",
                 "age_ms": 18_000_000, "due_at": NOW - 60_000, "sla_left_ms": -60_000, "quorum": [0, 1], "own": true}]},
            {"pool": "security", "kind": "config", "on_call": null, "items": []}
        ]))
        .unwrap();
        assert_eq!(
            queue_text(&q),
            "fw-oncall / firmware (on call: alice): 2 waiting\n\
             \x20 id  tier        quorum  age  time left      action\n\
             \x20 #7  two_person  1/2     1h   7h left        Install firmware 2.4.1 on 52 devices because x.\n\
             \x20 #9  single      0/1     5h   OVERDUE by 1m  Push config version 3 to 4 devices because y. (yours: you cannot decide it)\n\
             \n\
             security / config: 0 waiting\n  nothing waiting\n\n"
        );
        assert_eq!(queue_text(&[]), "nothing waiting in your pools (or you are in none)\n");
    }

    #[test]
    fn an_edit_that_voids_approvals_names_them() {
        let before = view();
        let mut after = view();
        after.revision = 3;
        after.quorum.have = 0;
        after.quorum.approvers.clear();
        let text = edit_outcome(&before, &after);
        assert_eq!(
            text,
            "revision 2 -> 3\napprovals VOIDED by this change to what approvers sign: alice (quorum now 0 of 2)\n"
        );
    }

    #[test]
    fn a_wording_edit_keeps_approvals() {
        let before = view();
        let mut after = view();
        after.revision = 3;
        assert_eq!(
            edit_outcome(&before, &after),
            "revision 2 -> 3\napprovals kept: nothing approvers sign changed (1 of 2)\n"
        );
    }

    #[test]
    fn explain_prints_tier_rules_floor_digest_and_preview() {
        let j = view_json();
        let e: Explained = serde_json::from_value(json!({"decision": j["decision"], "preview": j["preview"]})).unwrap();
        let text = explain_text(&e);
        assert!(text.starts_with("tier: two_person\n"), "{text}");
        assert!(text.contains("- security-related change -> two_person  (default.toml:131)"), "{text}");
        assert!(text.contains("devices demand at least two_person"), "{text}");
        assert!(text.contains(&format!("policy {}", "33".repeat(32))), "{text}");
        assert!(text.contains("52 devices, 5.2% of a fleet of 1,000"), "{text}");
    }

    #[test]
    fn the_list_is_a_table() {
        let text = list_text(&[view()]);
        assert!(text.starts_with("id  state"), "{text}");
        assert!(text.contains("7   awaiting_approval  two_person  1/2"), "{text}");
    }
}
