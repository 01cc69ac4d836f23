//! `airlock policy check [DIR]`: loads the policy exactly as `airlock serve` would, locally.

use super::render::duration;
use super::{out, CliError, Ctx};
use crate::policy::{load_dir, Policy, PolicyError};
use clap::Subcommand;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load and validate a policy directory; on failure print FILE:LINE: reason and exit 1
    #[command(
        after_help = "Examples:\n  airlock policy check\n  airlock policy check /etc/airlock/policies\n  airlock --json policy check"
    )]
    Check {
        /// The directory (every *.toml in it, in name order).
        #[arg(default_value = "./policies", value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Runs a `policy` subcommand.
pub fn run(ctx: &Ctx, cmd: PolicyCommand) -> Result<(), CliError> {
    let PolicyCommand::Check { dir } = cmd;
    let policy = load_dir(&dir).map_err(|e| CliError::Policy(located(&dir, &e)))?;
    if ctx.json {
        let v = serde_json::to_value(&policy)
            .map_err(|e| CliError::Reply { what: "the policy as JSON".into(), detail: e.to_string() })?;
        return super::out_json(&v);
    }
    out(&summary(&dir, &policy))
}

/// `DIR/FILE:LINE: reason`; a problem with the set of files as a whole has no line.
fn located(dir: &Path, e: &PolicyError) -> String {
    if e.line == 0 {
        let shown = if e.file == dir.display().to_string() || e.file.contains(", ") {
            e.file.clone()
        } else {
            dir.join(&e.file).display().to_string()
        };
        return format!("{shown}: {}", e.reason);
    }
    format!("{}:{}: {}", dir.join(&e.file).display(), e.line, e.reason)
}

/// Files, digest, lanes, pools, rules.
fn summary(dir: &Path, p: &Policy) -> String {
    let mut o = format!("policy ok: {}\n", dir.display());
    let _ = writeln!(o, "  files         {}", p.files.join(", "));
    let _ = writeln!(o, "  digest        {}", hex::encode(p.digest));
    let _ = writeln!(o, "  default tier  {}", p.default_tier.name());
    let _ = writeln!(o, "  rules         {}", p.rules.len());
    o.push_str("\nlanes\n");
    for (tier, lane) in &p.lanes {
        let mut line = format!("  {:<11} {} approval(s)", tier.name(), lane.approvals);
        if !lane.roles.is_empty() {
            let _ = write!(line, ", roles {}", lane.roles.join("+"));
        }
        if !lane.pools.is_empty() {
            let _ = write!(line, ", pools {}", lane.pools.join(", "));
        }
        if let Some(t) = lane.timeout_secs {
            let on = serde_json::to_value(lane.on_no_response).ok().and_then(|v| v.as_str().map(str::to_string));
            let _ = write!(line, ", after {}: {}", duration(t as i64 * 1000), on.unwrap_or_default());
        }
        if !lane.escalation.is_empty() {
            let _ = write!(line, " to {}", lane.escalation.join(" -> "));
        }
        let _ = writeln!(o, "{line}");
    }
    o.push_str("\npools\n");
    for (name, pool) in &p.pools {
        let rota = pool
            .rotation_secs
            .map_or_else(String::new, |s| format!(" (on call rotates every {})", duration(s as i64 * 1000)));
        let _ = writeln!(o, "  {:<11} {}{rota}", name, pool.members.join(", "));
    }
    let bg = &p.break_glass;
    let _ = writeln!(
        o,
        "\nbreak-glass   {} approval(s) from {}, at most {} devices for {}; post-review by {}",
        bg.approvals,
        bg.pools.join(", "),
        bg.max_cohort,
        duration(bg.max_lifetime_secs as i64 * 1000),
        bg.post_review_pool
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_policies() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
    }

    #[test]
    fn the_default_policy_checks_and_is_summarised() {
        let dir = repo_policies();
        let p = load_dir(&dir).unwrap();
        let text = summary(&dir, &p);
        assert!(text.contains("  files         default.toml\n"), "{text}");
        assert!(text.contains(&format!("  digest        {}\n", hex::encode(p.digest))), "{text}");
        assert!(text.contains(&format!("  rules         {}\n", p.rules.len())), "{text}");
        assert!(
            text.contains(
                "  single      1 approval(s), roles approver, pools fw-oncall, after 4h: escalate to fw-leads"
            ),
            "{text}"
        );
        assert!(text.contains("  fw-oncall   alice, bob (on call rotates every 7d)"), "{text}");
    }

    #[test]
    fn a_broken_policy_is_reported_as_file_line_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(repo_policies().join("default.toml")).unwrap();
        let broken = text.replacen("default_tier = \"single\"", "default_tier = \"sometimes\"", 1);
        let line = broken.lines().position(|l| l.contains("sometimes")).unwrap() + 1;
        std::fs::write(tmp.path().join("default.toml"), broken).unwrap();
        let e = load_dir(tmp.path()).unwrap_err();
        let shown = located(tmp.path(), &e);
        let want = format!("{}:{line}: ", tmp.path().join("default.toml").display());
        assert!(shown.starts_with(&want), "{shown}");
        assert!(shown.contains("unknown tier \"sometimes\""), "{shown}");
        // Printed without the `error:` prefix, so editors can jump to it.
        assert_eq!(CliError::Policy(shown.clone()).message(), shown);
    }

    #[test]
    fn an_empty_directory_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let shown = located(tmp.path(), &load_dir(tmp.path()).unwrap_err());
        assert_eq!(shown, format!("{}: no *.toml policy files", tmp.path().display()));
    }
}
