//! Rollout engine tests, each on SQLite and on PostgreSQL (skipped loudly without
//! `AIRLOCK_TEST_POSTGRES_URL`), against real device cores behind a fake transport.

mod fake;
mod world;

use super::*;
use crate::store::testing;
use crate::workflow::spec::{Breach, RolloutPlan};
use crate::workflow::State;
use airlock_proto::{CommandAction, Digest, Event, RevertReason};
use std::collections::BTreeSet;
use std::time::Duration;
use world::{cohort_id, world, World, COHORT, MINUTE, SECOND};

const SHARES: [f64; 4] = [0.01, 0.1, 0.5, 1.0];

/// Runs an async test body against SQLite and against PostgreSQL.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                ($body)(world(testing::sqlite().await.unwrap()).await).await;
            }
            #[tokio::test]
            async fn postgres() {
                let Some(t) = testing::postgres(concat!("rollout::", stringify!($name))).await.unwrap() else {
                    return;
                };
                ($body)(world(t).await).await;
            }
        }
    };
}

fn plan() -> RolloutPlan {
    RolloutPlan::default()
}

fn abort_plan() -> RolloutPlan {
    RolloutPlan { on_breach: Breach::Abort, ..RolloutPlan::default() }
}

/// Asserts no device was sent twice; returns the set sent to.
fn once_each(sent: &[String]) -> BTreeSet<String> {
    let set: BTreeSet<String> = sent.iter().cloned().collect();
    assert_eq!(set.len(), sent.len(), "a device was sent the delivery twice: {sent:?}");
    set
}

fn wave_of(shares: &[f64]) -> impl Fn(&str) -> u32 {
    let all: Vec<(String, u32)> =
        (0..4).flat_map(|w| World::wave_members(shares, w).into_iter().map(move |d| (d, w))).collect();
    move |d| all.iter().find(|a| a.0 == d).map(|a| a.1).unwrap()
}

both!(waves_reach_every_cohort_device_once_and_no_outsider, |w: World| async move {
    let id = w.signed(plan()).await;
    let engine = w.engine();
    assert_eq!(engine.start_signed().await.unwrap(), 1);
    assert_eq!(engine.start_signed().await.unwrap(), 0, "a rollout starts once");
    assert_eq!(w.proposal_state(id).await, State::RollingOut);
    // The rate (100/s) would allow more: a wave starts only once the one before it confirmed.
    w.step(&engine).await;
    assert_eq!(w.fake.fleet().log.deliveries, World::wave_members(&SHARES, 0), "the canary alone");
    w.step(&engine).await;
    assert_eq!(w.fake.fleet().log.deliveries.len(), 20, "then wave 1 alone");
    let s = w.run(&engine, id, 60).await;
    assert_eq!(s.state, RolloutState::Completed, "{s:#?}");
    let sizes: Vec<u32> = s.waves.iter().map(|w| w.counts.size).collect();
    assert_eq!(sizes, [2, 18, 80, 100]);
    assert_eq!((s.totals.confirmed, s.totals.failures()), (COHORT as u32, 0));
    let sent = w.fake.fleet().log.deliveries.clone();
    let expected: BTreeSet<String> = (0..COHORT).map(cohort_id).collect();
    assert_eq!(once_each(&sent), expected, "every cohort device, and no outsider");
    // Waves in order: no device of a later wave before every device of the earlier one.
    let wave = wave_of(&SHARES);
    assert!(sent.windows(2).all(|p| wave(&p[0]) <= wave(&p[1])), "{sent:?}");
    assert_eq!(w.proposal_state(id).await, State::Completed);
    let kinds = w.audit_kinds(id).await;
    let rollout: Vec<&str> = kinds.iter().map(String::as_str).filter(|k| k.starts_with("rollout_")).collect();
    assert_eq!(
        rollout,
        [
            "rollout_started",
            "rollout_wave_completed",
            "rollout_wave_completed",
            "rollout_wave_completed",
            "rollout_completed"
        ]
    );
    // More ticks send nothing more.
    for _ in 0..5 {
        w.step(&engine).await;
    }
    assert_eq!(w.fake.fleet().log.deliveries.len(), COHORT);
    w.audit_ok().await;
});

both!(a_failing_canary_pauses_and_later_waves_receive_nothing, |w: World| async move {
    w.fake.fleet().unhealthy = true;
    let id = w.signed(plan()).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    let s = w.run(&engine, id, 30).await;
    assert_eq!((s.state, s.wave), (RolloutState::Paused, 0), "{s:#?}");
    assert!(s.breach.as_deref().unwrap().contains("2 of 2 devices failed"), "{:?}", s.breach);
    // The canary devices went back on their own.
    assert_eq!(s.waves[0].reverted_by_reason.get("health_check_failed"), Some(&2));
    assert_eq!(w.proposal_state(id).await, State::Paused);
    for _ in 0..20 {
        w.step(&engine).await;
    }
    let canary = World::wave_members(&SHARES, 0);
    assert_eq!(w.fake.fleet().log.deliveries, canary, "later waves never receive it");
    assert!(w.audit_kinds(id).await.contains(&"rollout_paused".to_string()));

    // Resuming takes an approver, who is not the requester, and a reason.
    let e = engine.resume(w.user("rita"), id, "fixed").await.unwrap_err();
    assert!(matches!(e, RolloutError::Forbidden { .. }), "{e}");
    let e = engine.resume(w.user("bob"), id, " ").await.unwrap_err();
    assert!(matches!(e, RolloutError::NoReason("resume")), "{e}");
    w.fake.fleet().unhealthy = false;
    let s = engine.resume(w.user("bob"), id, "the health check was misconfigured; fixed").await.unwrap();
    assert_eq!((s.state, s.wave), (RolloutState::RollingOut, 1));
    let e = engine.resume(w.user("bob"), id, "again").await.unwrap_err();
    assert!(matches!(e, RolloutError::WrongState { state: "rolling_out", .. }), "{e}");
    let s = w.run(&engine, id, 60).await;
    assert_eq!(s.state, RolloutState::Completed, "{s:#?}");
    // The breached wave's devices stay reverted; everyone else confirmed, each sent once.
    assert_eq!((s.waves[0].counts.reverted, s.totals.confirmed), (2, COHORT as u32 - 2));
    assert_eq!(once_each(&w.fake.fleet().log.deliveries).len(), COHORT);
    w.audit_ok().await;
});

both!(an_abort_breach_reverts_the_devices_that_took_it, |w: World| async move {
    let id = w.signed(abort_plan()).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    // The canary confirms; then the image starts failing its health check.
    w.step(&engine).await;
    let s = engine.status(id).await.unwrap();
    assert_eq!((s.state, s.waves[0].counts.confirmed), (RolloutState::RollingOut, 2));
    w.fake.fleet().unhealthy = true;
    let s = w.run(&engine, id, 30).await;
    assert_eq!((s.state, s.wave), (RolloutState::Aborted, 1), "{s:#?}");
    assert_eq!(w.proposal_state(id).await, State::Aborted);
    // Wave 1 reverted on its own; wave 0 was told to, and did.
    assert_eq!(s.waves[1].reverted_by_reason.get("health_check_failed"), Some(&18));
    assert_eq!(s.waves[0].reverted_by_reason.get("command"), Some(&2));
    assert_eq!((s.waves[0].revert_commands, s.waves[1].revert_commands), (2, 0));
    let commands = w.fake.fleet().log.commands.clone();
    let canary = World::wave_members(&SHARES, 0);
    assert_eq!(commands.iter().map(|c| c.0.clone()).collect::<Vec<_>>(), canary);
    assert!(commands.iter().all(|c| c.2 == CommandAction::Revert));
    assert!(commands.windows(2).all(|p| p[0].1 < p[1].1), "command sequences strictly increase");
    for _ in 0..10 {
        w.step(&engine).await;
    }
    {
        let log = &w.fake.fleet().log;
        assert_eq!(log.deliveries.len(), 20, "later waves never receive it");
        assert_eq!(log.commands.len(), 2, "no revert is sent twice");
    }
    let kinds = w.audit_kinds(id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "rollout_aborted").count(), 1);
    w.audit_ok().await;
});

both!(an_operator_abort_stops_the_rollout_and_reverts, |w: World| async move {
    let id = w.signed(plan()).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    w.step(&engine).await;
    w.step(&engine).await;
    let e = engine.abort(w.user("erin"), id, "").await.unwrap_err();
    assert!(matches!(e, RolloutError::NoReason("abort")), "{e}");
    let s = engine.abort(w.user("erin"), id, "customer reports from the canary").await.unwrap();
    assert_eq!(s.state, RolloutState::Aborted);
    w.pump(&engine).await;
    let s = engine.status(id).await.unwrap();
    // Every device that had confirmed got a revert command and reverted.
    assert_eq!(s.totals.confirmed, 0, "{s:#?}");
    assert_eq!(s.totals.reverted, s.waves.iter().map(|w| w.revert_commands).sum::<u32>());
    assert!(s.totals.reverted >= 2);
    let sent = w.fake.fleet().log.deliveries.len();
    for _ in 0..5 {
        w.step(&engine).await;
    }
    assert_eq!(w.fake.fleet().log.deliveries.len(), sent);
    let e = engine.abort(w.user("erin"), id, "again").await.unwrap_err();
    assert!(matches!(e, RolloutError::WrongState { state: "aborted", .. }), "{e}");
});

both!(a_revert_refused_by_the_security_counter_is_shown_with_its_reason, |w: World| async move {
    // The image raises the security counter above the factory image's: once confirmed, devices
    // cannot go back to it, and each says so when told to revert.
    let mut spec = w.spec(plan());
    if let Some(f) = spec.firmware.as_mut() {
        f.security_counter = 2;
    }
    let id = w.signed_spec("rita", "alice", spec).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    w.step(&engine).await;
    w.step(&engine).await;
    let confirmed = engine.status(id).await.unwrap().totals.confirmed;
    assert!(confirmed >= 2, "the canary confirmed");
    engine.abort(w.user("erin"), id, "field reports from the canary").await.unwrap();
    w.pump(&engine).await;
    let s = engine.status(id).await.unwrap();
    assert_eq!(s.totals.confirmed, confirmed, "nobody could revert: {s:#?}");
    assert_eq!(s.reverts_refused, confirmed, "{s:#?}");
    assert_eq!(s.waves[0].revert_refused_by_reason.get("security_counter_downgrade"), Some(&2), "{s:#?}");
});

both!(a_rollout_completes_only_once_every_device_has_an_outcome, |w: World| async move {
    // Two devices of the last wave never answer; the rest confirm, above the threshold.
    let silent: Vec<String> = World::wave_members(&SHARES, 3).into_iter().take(2).collect();
    w.fake.fleet().silent = silent.iter().cloned().collect();
    let id = w.signed(plan()).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    for _ in 0..30 {
        w.step(&engine).await;
    }
    let s = engine.status(id).await.unwrap();
    assert_eq!((s.state, s.wave, s.waves[3].counts.sent), (RolloutState::RollingOut, 3, 2), "{s:#?}");
    assert_eq!(w.proposal_state(id).await, State::RollingOut);
    // The device timeout gives them an outcome; only then is the rollout complete.
    w.wf.clock.advance(30 * MINUTE);
    w.step(&engine).await;
    w.step(&engine).await;
    let s = engine.status(id).await.unwrap();
    assert_eq!((s.state, s.totals.failed, s.totals.sent), (RolloutState::Completed, 2, 0), "{s:#?}");
    let kinds = w.audit_kinds(id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "rollout_completed").count(), 1);
});

both!(silent_devices_count_as_failed_after_the_device_timeout, |w: World| async move {
    let silent: Vec<String> = World::wave_members(&SHARES, 2).into_iter().take(5).collect();
    w.fake.fleet().silent = silent.iter().cloned().collect();
    let id = w.signed(plan()).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    for _ in 0..20 {
        w.step(&engine).await;
    }
    // 75 of 80 confirmed, 5 silent: below the success threshold, not failed yet.
    let s = engine.status(id).await.unwrap();
    assert_eq!(
        (s.state, s.wave, s.waves[2].counts.sent, s.waves[2].counts.confirmed),
        (RolloutState::RollingOut, 2, 5, 75)
    );
    w.wf.clock.advance(29 * MINUTE);
    w.step(&engine).await;
    assert_eq!(engine.status(id).await.unwrap().waves[2].counts.failed, 0);
    w.wf.clock.advance(MINUTE);
    w.step(&engine).await;
    let s = engine.status(id).await.unwrap();
    assert_eq!(s.state, RolloutState::Paused, "{s:#?}");
    assert_eq!(s.waves[2].failed_by_reason.get("timeout_after_sent"), Some(&5));
    assert!(s.breach.as_deref().unwrap().contains("timed out 5"), "{:?}", s.breach);
    assert_eq!(s.waves[3].counts.pending, 100);
});

both!(the_rate_limit_bounds_sends_per_tick, |w: World| async move {
    let id = w.signed(RolloutPlan { waves: vec![1.0], rate_per_sec: 7, ..RolloutPlan::default() }).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    let sent = || w.fake.fleet().log.deliveries.len();
    engine.tick().await.unwrap();
    assert_eq!(sent(), 7, "one second's worth at once");
    engine.tick().await.unwrap();
    assert_eq!(sent(), 7, "no time passed: nothing more");
    w.wf.clock.advance(SECOND / 2);
    engine.tick().await.unwrap();
    assert_eq!(sent(), 10, "half a second: three more (7 per second, rounded down)");
    // A long pause gives one second's worth, not the whole backlog.
    w.wf.clock.advance(60 * SECOND);
    engine.tick().await.unwrap();
    assert_eq!(sent(), 17);
    let mut before = sent();
    for _ in 0..40 {
        w.wf.clock.advance(SECOND);
        engine.tick().await.unwrap();
        w.pump(&engine).await;
        assert!(sent() - before <= 7, "{} sends in one second", sent() - before);
        before = sent();
    }
    assert_eq!(once_each(&w.fake.fleet().log.deliveries).len(), COHORT);
    assert_eq!(engine.status(id).await.unwrap().state, RolloutState::Completed);
});

both!(a_restarted_controller_resumes_and_sends_each_device_exactly_once, |w: World| async move {
    let id = w.signed(RolloutPlan { rate_per_sec: 30, ..RolloutPlan::default() }).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    for _ in 0..4 {
        w.step(&engine).await;
    }
    let s = engine.status(id).await.unwrap();
    assert_eq!((s.state, s.wave), (RolloutState::RollingOut, 2), "stopped mid-wave: {s:#?}");
    assert!(s.waves[2].counts.pending > 0);
    drop(engine);
    let engine = w.restarted().await;
    let s = w.run(&engine, id, 60).await;
    assert_eq!(s.state, RolloutState::Completed, "{s:#?}");
    assert_eq!(once_each(&w.fake.fleet().log.deliveries).len(), COHORT);
    w.audit_ok().await;
});

both!(a_kill_between_commit_and_publish_loses_one_delivery_and_never_repeats_it, |w: World| async move {
    w.fake.fleet().hang_at = Some(30);
    let id = w.signed(plan()).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    let mut killed = false;
    for _ in 0..10 {
        // The controller "dies" while the 31st publish is in progress.
        if tokio::time::timeout(Duration::from_millis(500), engine.tick()).await.is_err() {
            killed = true;
            break;
        }
        w.pump(&engine).await;
        w.wf.clock.advance(SECOND);
    }
    assert!(killed);
    drop(engine);
    let lost = w.fake.fleet().log.lost.clone();
    assert_eq!(lost.len(), 1);
    let engine = w.restarted().await;
    let s = w.run(&engine, id, 60).await;
    // 79 of 80 confirmed in that wave is above the success threshold, but the lost device has
    // no outcome yet: the rollout is not complete before the device timeout fails it.
    assert_eq!((s.state, s.totals.in_flight()), (RolloutState::RollingOut, 1), "{s:#?}");
    let sent = once_each(&w.fake.fleet().log.deliveries);
    assert_eq!(sent.len(), COHORT - 1);
    assert!(!sent.contains(&lost[0]), "the lost delivery is never sent again");
    // The device it was for counts as failed once the device timeout passed.
    w.wf.clock.advance(31 * MINUTE);
    w.step(&engine).await;
    w.step(&engine).await;
    let s = engine.status(id).await.unwrap();
    assert_eq!((s.totals.failed, s.totals.in_flight()), (1, 0), "{s:#?}");
    assert_eq!(s.state, RolloutState::Completed, "{s:#?}");
});

both!(a_delivery_the_transport_refuses_is_retried_not_lost, |w: World| async move {
    w.fake.fleet().fail_next = 3;
    let id = w.signed(plan()).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    let s = w.run(&engine, id, 60).await;
    assert_eq!(s.state, RolloutState::Completed, "{s:#?}");
    let log = &w.fake.fleet().log;
    assert_eq!(log.refused.len(), 3);
    assert_eq!(once_each(&log.deliveries).len(), COHORT);
});

both!(stale_and_foreign_reports_are_ignored, |w: World| async move {
    let id = w.signed(plan()).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    w.step(&engine).await;
    let s = engine.status(id).await.unwrap();
    let digest: [u8; 32] = hex::decode(&s.manifest_digest).unwrap().try_into().unwrap();
    let digest = Digest::from(digest);
    let canary = World::wave_members(&SHARES, 0)[0].clone();
    let reverted = Event::Reverted { manifest: Some(digest), reason: RevertReason::ImageCorrupt };
    let report = |device: &str, counter, event| DeviceReport { device: device.into(), counter, at: 0, event };
    // A counter not above the last applied: stale.
    engine.on_report(report(&canary, 1, reverted)).await.unwrap();
    assert_eq!(engine.status(id).await.unwrap().waves[0].counts.confirmed, 2);
    // A device outside the rollout, and a manifest of no rollout.
    engine.on_report(report("lab-0001", u64::MAX >> 2, Event::Accepted { manifest: digest })).await.unwrap();
    let pending = World::wave_members(&SHARES, 3)[0].clone();
    let foreign = Event::Accepted { manifest: Digest::from([7; 32]) };
    engine.on_report(report(&pending, u64::MAX >> 2, foreign)).await.unwrap();
    let after = engine.status(id).await.unwrap();
    assert_eq!((after.totals, after.waves[3].counts.pending), (s.totals, 100));
    // The same event with a fresh counter applies.
    engine.on_report(report(&canary, u64::MAX >> 2, reverted)).await.unwrap();
    assert_eq!(engine.status(id).await.unwrap().waves[0].reverted_by_reason.get("image_corrupt"), Some(&1));
});

both!(a_plan_or_cohort_that_does_not_match_the_signature_never_starts, |w: World| async move {
    let id = w.signed(plan()).await;
    let pool = w.wf.store.pool();
    let spec: String = sqlx::Row::get(
        &sqlx::query("SELECT spec FROM revisions WHERE proposal_id = $1").bind(id).fetch_one(pool).await.unwrap(),
        0,
    );
    let faster = spec.replace("\"rate_per_sec\":100", "\"rate_per_sec\":100000");
    assert_ne!(faster, spec);
    sqlx::query("UPDATE revisions SET spec = $1 WHERE proposal_id = $2")
        .bind(&faster)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    let engine = w.engine();
    let e = engine.start_signed().await.unwrap_err();
    assert!(matches!(e, RolloutError::Unreleasable { ref detail, .. } if detail.contains("plan")), "{e}");
    // A cohort widened in the database to an outsider: the root no longer matches.
    sqlx::query("UPDATE revisions SET spec = $1 WHERE proposal_id = $2")
        .bind(&spec)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    let mut ids: Vec<String> = (0..COHORT).map(cohort_id).collect();
    ids.push("lab-0001".into());
    ids.sort();
    let cohort = serde_json::to_string(&ids).unwrap();
    sqlx::query("UPDATE revisions SET cohort = $1 WHERE proposal_id = $2")
        .bind(cohort)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    let e = engine.start_signed().await.unwrap_err();
    assert!(matches!(e, RolloutError::Release(crate::release::ReleaseError::CohortMismatch { .. })), "{e}");
    assert_eq!(w.proposal_state(id).await, State::Signed);
    engine.tick().await.unwrap();
    assert!(w.fake.fleet().log.deliveries.is_empty());
});

both!(a_breach_in_the_last_wave_resumes_into_a_remainder_wave, |w: World| async move {
    // One wave, 20 sends a second: the first 20 fail their health check, above 5% of 200.
    w.fake.fleet().unhealthy = true;
    let plan = RolloutPlan { waves: vec![1.0], rate_per_sec: 20, ..RolloutPlan::default() };
    let id = w.signed_spec("alice", "bob", w.spec(plan)).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    let s = w.run(&engine, id, 10).await;
    assert_eq!(
        (s.state, s.waves.len(), s.waves[0].counts.reverted, s.waves[0].counts.pending),
        (RolloutState::Paused, 1, 20, 180)
    );
    // alice approves for a living, but she asked for this one.
    let e = engine.resume(w.user("alice"), id, "looks fine to me").await.unwrap_err();
    assert!(matches!(e, RolloutError::Forbidden { ref needs, .. } if needs.contains("requester")), "{e}");
    w.fake.fleet().unhealthy = false;
    let s = engine.resume(w.user("bob"), id, "bad batch of test rigs; fixed").await.unwrap();
    assert_eq!((s.state, s.wave), (RolloutState::RollingOut, 1));
    let sizes: Vec<u32> = s.waves.iter().map(|w| w.counts.size).collect();
    assert_eq!(sizes, [20, 180], "the unsent devices form a remainder wave");
    let s = w.run(&engine, id, 30).await;
    assert_eq!((s.state, s.waves[1].counts.confirmed, s.waves[0].counts.reverted), (RolloutState::Completed, 180, 20));
    assert_eq!(once_each(&w.fake.fleet().log.deliveries).len(), COHORT);
    assert_eq!(w.proposal_state(id).await, State::Completed);
    w.audit_ok().await;
});

both!(a_config_push_rolls_out_and_an_abort_sends_config_reverts, |w: World| async move {
    let id = w.signed_spec("rita", "alice", w.config_spec(plan())).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    w.step(&engine).await;
    w.step(&engine).await;
    // Applied and confirmed configs count as installed and confirmed.
    let s = engine.status(id).await.unwrap();
    assert_eq!((s.waves[0].counts.confirmed, s.waves[1].counts.confirmed), (2, 18), "{s:#?}");
    let s = engine.abort(w.user("bob"), id, "wrong interval").await.unwrap();
    assert_eq!(s.state, RolloutState::Aborted);
    let commands = w.fake.fleet().log.commands.clone();
    assert_eq!(commands.len(), 20);
    assert!(commands.iter().all(|c| c.2 == CommandAction::RevertConfig), "{commands:?}");
});

both!(a_lost_confirmation_is_recovered_from_the_devices_status_report, |w: World| async move {
    // A controller that lost a device's last report (an embedded broker's sessions die with it)
    // learns from the status the device reports when it reconnects.
    let id = w.signed(plan()).await;
    let engine = w.engine();
    engine.start_signed().await.unwrap();
    engine.tick().await.unwrap();
    let canary = World::wave_members(&SHARES, 0)[0].clone();
    for r in w.fake.take_reports() {
        let lost = r.device == canary && matches!(r.event, Event::Confirmed { .. });
        if !lost {
            engine.on_report(r).await.unwrap();
        }
    }
    let s = engine.status(id).await.unwrap();
    assert_eq!(s.waves[0].counts.confirmed, 1, "the canary's confirmation was lost");
    let status = {
        let mut fleet = w.fake.fleet();
        fleet.devices.get_mut(&canary).unwrap().agent().status()
    };
    // A status that does not show the target version proves nothing.
    let stale = airlock_proto::Status { firmware: airlock_proto::Version::new(1, 0, 0), ..status };
    let report =
        |counter, status| DeviceReport { device: canary.clone(), counter, at: 0, event: Event::Status(status) };
    engine.on_report(report(u64::MAX >> 3, stale)).await.unwrap();
    assert_eq!(engine.status(id).await.unwrap().waves[0].counts.confirmed, 1);
    // Nor does a device still in its test boot.
    engine.on_report(report((u64::MAX >> 3) + 1, airlock_proto::Status { testing: true, ..status })).await.unwrap();
    assert_eq!(engine.status(id).await.unwrap().waves[0].counts.confirmed, 1);
    // The device's real status: it runs the target version, past the manifest's sequence.
    engine.on_report(report(u64::MAX >> 2, status)).await.unwrap();
    assert_eq!(engine.status(id).await.unwrap().waves[0].counts.confirmed, 2);
    let done = w.run(&engine, id, 200).await;
    assert_eq!(done.state, RolloutState::Completed);
});
