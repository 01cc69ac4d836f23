//! `airlock audit verify|log`.

use super::client::{self, parse};
use super::render::{short, utc};
use super::types::StoredEntry;
use super::{out, out_json, CliError, Ctx};
use crate::audit::chain;
use crate::audit::witness::{self, Record};
use crate::audit::Problem;
use clap::Subcommand;
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole trail (hash chain and signed checkpoints); exit 1 on any problem
    #[command(
        after_help = "Examples:\n  airlock audit verify\n  airlock audit verify --against /var/lib/airlock-audit/audit.witness\n  airlock audit verify || page-oncall \"audit trail tampered\"\n\nThe controller copies every signed checkpoint to a witness file outside the database\n(AUDIT/audit.witness). Only --against it shows that the newest entries were deleted with\ntheir checkpoints, or that the trail was re-signed with a stolen audit key."
    )]
    Verify {
        /// Also check the trail against this witness file (or a copy of it): the trail must
        /// still hold the newest checkpoint it witnessed.
        #[arg(long, value_name = "HEAD-FILE")]
        against: Option<PathBuf>,
    },
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
        AuditCommand::Verify { against } => {
            let c = ctx.client()?;
            let mut v = client::audit_verify(&c).await?;
            let mut report: Report = parse("GET /api/audit/verify", v.clone())?;
            if let Some(path) = against {
                let found = against_witness(&c, &report, &path).await?;
                let witnessed = found.as_ref().map(|(r, _)| r.seq);
                let problem = found.and_then(|(_, p)| p);
                if let Some(p) = &problem {
                    report.problems.push(ReportedProblem { seq: p.seq(), problem: p.to_string() });
                    report.ok = false;
                }
                report.witness = Some(WitnessCheck { file: path.display().to_string(), seq: witnessed });
                if let Value::Object(m) = &mut v {
                    m.insert("ok".into(), Value::Bool(report.problem_count() == 0));
                    m.insert("witness".into(), serde_json::json!({ "file": path, "seq": witnessed }));
                    if let Some(p) = &problem {
                        if let Some(Value::Array(list)) = m.get_mut("problems") {
                            list.push(serde_json::json!({ "seq": p.seq(), "problem": p.to_string() }));
                        }
                    }
                }
            }
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

/// The API's `limit` cap on `GET /api/audit`.
const MOST_ENTRIES: u64 = 10_000;

/// Checks the trail the server reports against the newest record of the witness file at `path`:
/// `None` when the file holds no record, else the record and the problem found, if any.
async fn against_witness(
    c: &client::Client,
    report: &Report,
    path: &Path,
) -> Result<Option<(Record, Option<Problem>)>, CliError> {
    let records = witness::read(path, None).map_err(|e| CliError::Failed(e.to_string()))?;
    let Some(newest) = records.into_iter().next_back() else { return Ok(None) };
    let head = report.head.as_ref().map_or(0, |h| h.seq);
    if head < newest.seq {
        let p = witness::compare(&newest, head, None);
        return Ok(Some((newest, p)));
    }
    let behind = head - newest.seq + 1;
    if behind > MOST_ENTRIES {
        return Err(CliError::Failed(format!(
            "the witness {} ends at entry {}, more than {MOST_ENTRIES} entries before the trail's head {head}: \
             the controller has not been witnessing; check its log",
            path.display(),
            newest.seq
        )));
    }
    let v = client::audit(c, None, Some(behind as u32)).await?;
    let entries: Vec<StoredEntry> = parse("GET /api/audit", v)?;
    let stored = entries.iter().find(|e| e.seq == newest.seq).and_then(|e| chain::from_hex::<32>(&e.hash).ok());
    let p = witness::compare(&newest, head, stored);
    Ok(Some((newest, p)))
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
    /// Added by `--against`: what the trail was checked against.
    #[serde(skip)]
    pub witness: Option<WitnessCheck>,
}

/// The witness file a report was checked against.
#[derive(Clone, Debug, Default)]
pub struct WitnessCheck {
    /// The file.
    pub file: String,
    /// Its newest checkpoint; `None` when it holds none yet.
    pub seq: Option<u64>,
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
    match &r.witness {
        Some(WitnessCheck { file, seq: Some(seq) }) => {
            let _ = writeln!(o, "witness: {file}, newest checkpoint entry {seq}");
        }
        Some(WitnessCheck { file, seq: None }) => {
            let _ = writeln!(o, "witness: {file} holds no checkpoint yet (nothing compared)");
        }
        None => {}
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
