//! The shipped policy for tests that run on the wall clock.
//!
//! `policies/default.toml` tiers production firmware higher on weekends. A test that starts a
//! real controller on the system clock and expects a lane would then pass on weekdays and fail on
//! Saturdays and Sundays. Such tests load a copy of the policy directory without the rules that
//! look at the calendar; the calendar rules themselves are tested on a fixed clock
//! (`policy::tests::time_windows_match_on_utc_days_and_hours`).

use std::path::{Path, PathBuf};

/// `text` without the `[[rule]]` blocks that match on `days` or `hours`.
pub fn without_calendar_rules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blocks = text.split_inclusive('\n').fold(vec![String::new()], |mut blocks, line| {
        if line.trim_start().starts_with('[') {
            blocks.push(String::new());
        }
        if let Some(last) = blocks.last_mut() {
            last.push_str(line);
        }
        blocks
    });
    blocks.retain(|b| !(b.trim_start().starts_with("[[rule]]") && looks_at_calendar(b)));
    for b in blocks {
        out.push_str(&b);
    }
    out
}

fn looks_at_calendar(block: &str) -> bool {
    block.lines().map(str::trim_start).filter(|l| !l.starts_with('#')).any(|l| {
        let code = l.split('#').next().unwrap_or("");
        ["days", "hours"].iter().any(|k| code.split(['{', ',', ' ']).any(|w| w == *k) && code.contains('='))
    })
}

/// Copies every `*.toml` of `from` into `to` (created) without calendar rules; returns `to`.
pub fn copy_without_calendar_rules(from: &Path, to: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path)?;
            let name = path.file_name().unwrap_or_default();
            std::fs::write(to.join(name), without_calendar_rules(&text))?;
        }
    }
    Ok(to.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weekend_rule_goes_and_everything_else_stays() {
        let shipped = include_str!("../../../policies/default.toml");
        let text = without_calendar_rules(shipped);
        assert!(shipped.contains("production firmware on a weekend"));
        assert!(!text.contains("production firmware on a weekend"), "{text}");
        assert!(text.contains("security-related change"));
        let rules = |t: &str| t.lines().filter(|l| l.trim_start().starts_with("[[rule]]")).count();
        assert_eq!(rules(&text), rules(shipped) - 1);
        let policy = crate::policy::load_sources(vec![("default.toml".into(), text)]).unwrap();
        assert!(policy.rules.iter().all(|r| r.when.days.is_none() && r.when.hours.is_none()));
    }
}
