//! `airlock audit verify|log`.

use super::client::{self, parse};
use super::render::{short, utc};
use super::types::StoredEntry;
use super::{out, out_json, CliError, Ctx};
use clap::Subcommand;
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole trail (hash chain and signed checkpoints); exit 1 on any problem
    #[command(
        after_help = "Examples:\n  airlock audit verify\n  airlock audit verify || page-oncall \"audit trail tampered\"\n\nRecord the printed head somewhere else: a later run that shows an older head means the\nnewest entries were deleted together with their checkpoints."
    )]
    Verify,
    /// Show audit entries, newest last
    #[command(
        after_help = "Examples:\n  airlock audit log --proposal 12\n  airlock audit log --limit 20\n  airlock --json audit log --proposal 12"
    )]
    Log {
        /// Only entries about this proposal.
        #[arg(long, value_name = "ID")]
        proposal: Option<i64>,
        /// At most this many.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
}

/// Runs an `audit` subcommand.
pub async fn run(ctx: &Ctx, cmd: AuditCommand) -> Result<(), CliError> {
    match cmd {
        AuditCommand::Verify => {
            let v = client::audit_verify(&ctx.client()?).await?;
            let report: Report = parse("GET /api/audit/verify", v.clone())?;
            if ctx.json {
                out_json(&v)?;
            } else {
                out(&verify_text(&report))?;
            }
            let problems = report.problem_count();
            if problems > 0 {
                let s = if problems == 1 { "" } else { "s" };
                return Err(CliError::Failed(format!("the audit trail has {problems} problem{s}")));
            }
            Ok(())
        }
        AuditCommand::Log { proposal, limit } => {
            let v = client::audit(&ctx.client()?, proposal, limit).await?;
            if ctx.json {
                return out_json(&v);
            }
            let entries: Vec<StoredEntry> = parse("GET /api/audit", v)?;
            out(&log_text(&entries))
        }
    }
}

/// `GET /api/audit/verify`: the `VerifyReport`, as the API serialises it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Report {
    /// No problem found.
    pub ok: bool,
    /// Rows in the trail.
    pub entries: u64,
    /// Checkpoints.
    pub checkpoints: u64,
    /// The newest entry.
    pub head: Option<Head>,
    /// Every problem, in seq order.
    pub problems: Vec<ReportedProblem>,
}

/// The newest entry.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Head {
    /// Its seq.
    pub seq: u64,
    /// Its hash, hex.
    pub hash: String,
}

/// One problem.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReportedProblem {
    /// Where it shows.
    #[serde(default)]
    pub seq: u64,
    /// What it is, for a human.
    #[serde(default)]
    pub problem: String,
}

impl Report {
    /// Problems, counting a report that says it is not ok but lists nothing as one.
    pub fn problem_count(&self) -> usize {
        if self.problems.is_empty() && !self.ok {
            1
        } else {
            self.problems.len()
        }
    }
}

/// The report for people.
pub fn verify_text(r: &Report) -> String {
    let mut o = format!("entries {}, checkpoints {}\n", r.entries, r.checkpoints);
    match &r.head {
        Some(h) => {
            let _ = writeln!(o, "head: entry {}, hash {}  (keep this somewhere else)", h.seq, h.hash);
        }
        None => o.push_str("head: the trail is empty\n"),
    }
    if r.problem_count() == 0 {
        o.push_str("ok: every entry is chained and signed\n");
    } else if r.problems.is_empty() {
        o.push_str("NOT OK: the controller reports a problem but names none\n");
    } else {
        let _ = writeln!(o, "{} PROBLEM(S):", r.problems.len());
        for p in &r.problems {
            let _ = writeln!(o, "  entry {}: {}", p.seq, p.problem);
        }
    }
    o
}

fn log_text(entries: &[StoredEntry]) -> String {
    if entries.is_empty() {
        return "no audit entries\n".into();
    }
    let mut o = String::new();
    for e in entries {
        let about = e.proposal_id.map_or_else(String::new, |p| format!("  proposal {p}"));
        let _ = writeln!(o, "#{}  {}  {}  {}{about}  {}", e.seq, utc(e.at_ms), e.actor, e.kind, short(&e.hash));
        if !e.body.is_null() && e.body != Value::Object(serde_json::Map::new()) {
            let _ = writeln!(o, "    {}", e.body);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(v: serde_json::Value) -> Report {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_clean_trail_says_ok_and_shows_the_head() {
        let r = report(
            json!({"ok": true, "entries": 12, "checkpoints": 12, "head": {"seq": 12, "hash": "ab12"}, "problems": []}),
        );
        assert_eq!(r.problem_count(), 0);
        assert_eq!(
            verify_text(&r),
            "entries 12, checkpoints 12\nhead: entry 12, hash ab12  (keep this somewhere else)\nok: every entry is chained and signed\n"
        );
    }

    #[test]
    fn every_problem_is_listed_and_counted() {
        let r = report(json!({"ok": false, "entries": 3, "checkpoints": 2, "head": {"seq": 3, "hash": "cd"},
            "problems": [{"seq": 2, "problem": "entry 2 was modified"}, {"seq": 3, "problem": "entry 3 has no checkpoint"}]}));
        assert_eq!(r.problem_count(), 2);
        let text = verify_text(&r);
        assert!(
            text.contains("2 PROBLEM(S):\n  entry 2: entry 2 was modified\n  entry 3: entry 3 has no checkpoint\n"),
            "{text}"
        );
    }

    #[test]
    fn a_report_that_is_not_ok_fails_even_without_problems_listed() {
        let r = report(json!({"ok": false, "entries": 1, "checkpoints": 1, "head": null, "problems": []}));
        assert_eq!(r.problem_count(), 1);
        assert!(verify_text(&r).contains("NOT OK"));
    }

    #[test]
    fn entries_show_time_actor_kind_and_body() {
        let e: StoredEntry = serde_json::from_value(json!({"seq": 4, "at_ms": 1_700_000_000_000_i64, "actor": "alice",
            "kind": "approved", "proposal_id": 7, "body": {"revision": 2}, "prev": "00", "hash": "ab".repeat(32)}))
        .unwrap();
        assert_eq!(
            log_text(&[e]),
            format!(
                "#4  2023-11-14 22:13 UTC  alice  approved  proposal 7  {}…\n    {{\"revision\":2}}\n",
                "ab".repeat(8)
            )
        );
    }
}
