//! The shipped simulator scenarios (`firmware-sim/scenarios/*.toml`), each played at a few
//! hundred devices against a real controller (in process, SQLite, its embedded rumqttd on an
//! ephemeral port), every device running the real agent over its own MQTT connection. Each
//! scenario's own expectations must hold; the report is printed either way.
//!
//! `AIRLOCK_SIM_DEVICES` changes the fleet size (default 200).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_sim::controller::Broker;
use airlock_sim::run::{run, Options, Target};
use airlock_sim::scenario::Scenario;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A controller in this process on its embedded broker, `devices` devices.
fn in_process(devices: usize) -> Options {
    // The shipped policy without its calendar rules: a scenario's lanes must not depend on the weekday.
    static POLICIES: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = POLICIES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        airlock_controller::policy::testing::copy_without_calendar_rules(&repo().join("policies"), dir.path()).unwrap();
        dir
    });
    let target =
        Target::InProcess { broker: Broker::Embedded(([127, 0, 0, 1], 0).into()), policies: dir.path().to_path_buf() };
    Options { target, devices: Some(devices), progress: false }
}

async fn play(file: &str) {
    let started = Instant::now();
    let scenario = Scenario::load(&repo().join("firmware-sim/scenarios").join(file)).unwrap();
    let devices = std::env::var("AIRLOCK_SIM_DEVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let report = run(&scenario, &in_process(devices)).await.unwrap_or_else(|e| panic!("{file}: {e}"));
    let table = report.table();
    let _ = writeln!(std::io::stderr(), "{table}");
    let _ = writeln!(std::io::stderr(), "TIMING scenario {file:<40} {:6.2} s", started.elapsed().as_secs_f64());
    assert!(report.passed(), "{file}: an expectation failed\n{table}");
    // Every scenario checks something beyond "proposed".
    assert!(report.expectations.len() >= 3, "{table}");
}

/// The expectations can fail: the bad canary, expected to complete, fails the run with what was
/// seen, and the binary would exit non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_expectation_fails_the_run_and_says_what_was_seen() {
    let mut scenario = Scenario::load(&repo().join("firmware-sim/scenarios/bad-firmware-canary.toml")).unwrap();
    scenario.expect.truncate(1);
    scenario.expect[0].state = Some("completed".into());
    scenario.expect[0].stopped_in_wave = None;
    let report = run(&scenario, &in_process(100)).await.unwrap();
    let table = report.table();
    assert!(!report.passed(), "{table}");
    let failed: Vec<_> = report.expectations.iter().filter(|c| !c.passed).collect();
    assert_eq!(failed.len(), 1, "{table}");
    assert_eq!((failed[0].expected.as_str(), failed[0].actual.as_str()), ("fw: rollout completed", "aborted"));
    assert!(table.contains("FAIL  fw: rollout completed  (saw aborted)") && table.trim_end().ends_with("FAILED"));
}

macro_rules! scenarios {
    ($($name:ident => $file:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            play($file).await
        }
    )*};
}

scenarios!(
    happy_path_with_waves => "happy-path.toml",
    bad_firmware_is_caught_in_the_canary => "bad-firmware-canary.toml",
    a_security_fix_waits_for_its_second_approver => "security-fix-two-approvers.toml",
    a_config_push_is_applied_and_reverted => "config-push-revert.toml",
    a_power_loss_storm_bricks_nothing => "power-loss-storm.toml",
    every_rogue_manifest_is_refused => "rogue-publisher.toml",
);
