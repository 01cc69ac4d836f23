use super::*;
use airlock_proto::Tier;

const DEFAULT: &str = include_str!("../../../policies/default.toml");
/// 2026-11-25 (a Wednesday) 12:00 UTC.
const WEDNESDAY_NOON: u64 = 1_795_608_000;
const DAY: u64 = 86_400;

fn default_policy() -> Policy {
    load_sources(vec![("default.toml".into(), DEFAULT.into())]).unwrap()
}

fn facts(kind: Kind, env: &[&str], cohort: u32, fleet: u32) -> Facts {
    Facts {
        kind,
        environments: env.iter().map(|s| s.to_string()).collect(),
        hardware: ["gw-m4".to_string()].into(),
        cohort_size: cohort,
        fleet_size: fleet,
        rollback: true,
        security: false,
        at: WEDNESDAY_NOON,
    }
}

fn rules(d: &Decision) -> Vec<&str> {
    d.matched.iter().map(|m| m.rule.as_str()).collect()
}

#[test]
fn the_shipped_default_policy_loads_and_covers_every_tier() {
    let p = default_policy();
    assert_eq!(p.lanes.len(), 5);
    assert_eq!(p.default_tier, Tier::Single);
    assert_eq!(p.device_rules.kind, [Tier::AutoPass, Tier::AutoPass, Tier::Expert]);
    assert_eq!(p.device_rules.requirements[Tier::TwoPerson as usize].approvals, 2);
}

#[test]
fn lab_and_test_devices_auto_pass() {
    let d = default_policy().decide(&facts(Kind::Firmware, &["lab", "test"], 20, 1000));
    assert_eq!(d.tier, Tier::AutoPass);
    assert_eq!(rules(&d), ["lab and test devices auto-pass"]);
}

#[test]
fn a_cohort_mixing_lab_and_production_does_not_auto_pass() {
    let d = default_policy().decide(&facts(Kind::Firmware, &["lab", "production"], 20, 1000));
    assert_eq!(d.tier, Tier::Single);
    assert!(d.default_applied);
}

#[test]
fn rollout_above_a_tenth_of_the_fleet_needs_approval() {
    let p = default_policy();
    assert_eq!(p.decide(&facts(Kind::Firmware, &["production"], 100, 1000)).tier, Tier::Single);
    let d = p.decide(&facts(Kind::Firmware, &["production"], 101, 1000));
    assert_eq!(d.tier, Tier::Single);
    assert_eq!(rules(&d), ["rollout above 10% of the fleet"]);
    assert_eq!(d.matched[0].because, ["10.1% of the fleet is above 10.0%"]);
}

#[test]
fn a_missing_rollback_plan_needs_approval_even_in_the_lab() {
    let mut f = facts(Kind::Firmware, &["lab"], 5, 1000);
    f.rollback = false;
    let d = default_policy().decide(&f);
    assert_eq!(d.tier, Tier::Single, "strictest matching rule wins");
    assert_eq!(rules(&d), ["lab and test devices auto-pass", "no rollback plan"]);
}

#[test]
fn security_changes_need_two_people() {
    let mut f = facts(Kind::Firmware, &["production"], 5, 1000);
    f.security = true;
    assert_eq!(default_policy().decide(&f).tier, Tier::TwoPerson);
}

#[test]
fn decommissions_need_a_domain_expert() {
    let d = default_policy().decide(&facts(Kind::Decommission, &["production"], 1, 1000));
    assert_eq!(d.tier, Tier::Expert);
    assert_eq!(d.device_floor, Tier::Expert);
}

#[test]
fn fleet_wide_config_push_without_rollback_is_blocked() {
    let mut f = facts(Kind::Config, &["production"], 1000, 1000);
    f.rollback = false;
    let d = default_policy().decide(&f);
    assert_eq!(d.tier, Tier::Blocked);
    assert!(rules(&d).contains(&"fleet-wide config push without rollback"));
    f.rollback = true;
    assert_ne!(default_policy().decide(&f).tier, Tier::Blocked);
}

#[test]
fn the_device_floor_raises_a_tier_the_rules_set_lower() {
    // A lab cohort of 1,000 devices: the lab rule says auto-pass, devices demand two people.
    let d = default_policy().decide(&facts(Kind::Firmware, &["lab"], 1000, 20_000));
    assert_eq!(rules(&d), ["lab and test devices auto-pass"]);
    assert_eq!(d.device_floor, Tier::TwoPerson);
    assert_eq!(d.tier, Tier::TwoPerson);
}

#[test]
fn time_windows_match_on_utc_days_and_hours() {
    let p = default_policy();
    let mut f = facts(Kind::Firmware, &["production"], 5, 1000);
    assert_eq!(p.decide(&f).tier, Tier::Single);
    f.at = WEDNESDAY_NOON + 3 * DAY; // Saturday
    let d = p.decide(&f);
    assert_eq!(d.tier, Tier::TwoPerson);
    assert_eq!(d.matched.last().unwrap().because.last().unwrap(), "Saturday (UTC)");
    let night = r#"
[[rule]]
name = "night"
when = { hours = "22:00-06:00" }
tier = "two_person"
"#;
    let p = load_sources(vec![("a.toml".into(), DEFAULT.into()), ("night.toml".into(), night.into())]).unwrap();
    let mut f = facts(Kind::Firmware, &["production"], 5, 1000);
    assert_eq!(p.decide(&f).tier, Tier::Single);
    f.at = WEDNESDAY_NOON + 11 * 3600; // 23:00
    assert_eq!(p.decide(&f).tier, Tier::TwoPerson);
    f.at = WEDNESDAY_NOON + 18 * 3600; // 06:00 next day: outside [22:00, 06:00)
    assert_eq!(p.decide(&f).tier, Tier::Single);
}

#[test]
fn on_call_rotates_through_the_pool() {
    let p = default_policy();
    let pool = &p.pools["fw-oncall"];
    let week = 7 * DAY;
    let a = pool.on_call(0).unwrap();
    let b = pool.on_call(week).unwrap();
    assert_ne!(a, b);
    assert_eq!(pool.on_call(2 * week).unwrap(), a);
}

#[test]
fn the_digest_is_the_policy_version() {
    let a = default_policy();
    let b = load_sources(vec![("default.toml".into(), format!("{DEFAULT}\n# comment"))]).unwrap();
    assert_ne!(a.digest, b.digest);
    let again = default_policy();
    assert_eq!(a.digest, again.digest);
}

fn refused(text: &str) -> PolicyError {
    load_sources(vec![("bad.toml".into(), text.into())]).unwrap_err()
}

fn with_default(extra: &str) -> PolicyError {
    load_sources(vec![("a.toml".into(), DEFAULT.into()), ("b.toml".into(), extra.into())]).unwrap_err()
}

#[test]
fn a_syntax_error_names_file_and_line() {
    let e = refused("default_tier = \"single\"\n\n[lanes.single\napprovals = 1\n");
    assert_eq!((e.file.as_str(), e.line), ("bad.toml", 3));
}

#[test]
fn an_unknown_tier_names_file_and_line() {
    let e = with_default("[[rule]]\nname = \"x\"\ntier = \"super\"\n");
    assert_eq!((e.file.as_str(), e.line), ("b.toml", 3));
    assert!(e.reason.contains("unknown tier \"super\""), "{e}");
}

#[test]
fn an_unknown_pool_names_file_and_line() {
    let text = DEFAULT.replace("pools = [\"experts\"]", "pools = [\"nobody\"]");
    let e = refused(&text);
    let line = text.lines().position(|l| l.contains("\"nobody\"")).unwrap() + 1;
    assert_eq!(e.line, line);
    assert_eq!(e.reason, "unknown pool \"nobody\"");
}

#[test]
fn a_lane_that_would_time_out_into_approval_is_refused() {
    let text = DEFAULT.replace("on_no_response = \"expire\"", "on_no_response = \"approve\"");
    let e = refused(&text);
    assert!(e.reason.contains("no lane may time out into approval"), "{e}");
}

#[test]
fn an_unknown_field_is_refused_not_ignored() {
    let e = with_default("[[rule]]\nname = \"x\"\ntier = \"single\"\nwhen = { enviroment = [\"lab\"] }\n");
    assert_eq!(e.line, 4);
    assert!(e.reason.contains("enviroment"), "{e}");
}

#[test]
fn a_rule_defined_twice_names_both_places() {
    let e = with_default("[[rule]]\nname = \"decommission\"\ntier = \"expert\"\n");
    assert_eq!((e.file.as_str(), e.line), ("b.toml", 1));
    assert!(e.reason.contains("already defined at a.toml:"), "{e}");
}

#[test]
fn a_share_outside_zero_to_one_is_refused() {
    let e = with_default("[[rule]]\nname = \"x\"\ntier = \"single\"\nwhen = { share_above = 10 }\n");
    assert!(e.reason.contains("not between 0 and 1"), "{e}");
}

#[test]
fn a_two_person_lane_with_one_approval_is_refused() {
    let text = DEFAULT.replacen("approvals = 2\nroles = [\"approver\"]", "approvals = 1\nroles = [\"approver\"]", 1);
    let e = refused(&text);
    assert!(e.reason.contains("lane two_person has approvals = 1, needs at least 2"), "{e}");
}

#[test]
fn a_lane_needing_more_approvers_than_its_pools_hold_is_refused() {
    // The expert lane needs 2 approvers; its pool "experts" would hold only erin.
    let text = DEFAULT.replace("members = [\"erin\", \"carol\"]", "members = [\"erin\"]");
    let e = refused(&text);
    assert!(
        e.reason.contains("lane expert needs 2 distinct approvers but its pools (experts) have only 1 member(s)"),
        "{e}"
    );
    let line = text.lines().position(|l| l.starts_with("[lanes.expert]")).unwrap() + 1;
    assert_eq!((e.file.as_str(), e.line), ("bad.toml", line));
}

#[test]
fn an_auto_pass_default_is_refused() {
    let e = refused(&DEFAULT.replace("default_tier = \"single\"", "default_tier = \"auto_pass\""));
    assert_eq!(e.line, DEFAULT.lines().position(|l| l.starts_with("default_tier")).unwrap() + 1);
}

#[test]
fn a_policy_without_a_device_floor_is_refused() {
    let start = DEFAULT.find("[device_floor]").unwrap();
    let end = DEFAULT.find("# Lanes:").unwrap();
    let text = format!("{}{}", &DEFAULT[..start], &DEFAULT[end..]);
    assert_eq!(refused(&text).reason, "no [device_floor] section");
}

#[test]
fn loading_a_directory_reads_every_toml_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.toml"), DEFAULT).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a policy").unwrap();
    let p = load_dir(dir.path()).unwrap();
    assert_eq!(p.files, ["default.toml"]);
    let empty = tempfile::tempdir().unwrap();
    assert!(load_dir(empty.path()).unwrap_err().reason.contains("no *.toml"));
}
