//! The rehearsal behind the README's run command keeps its promises.
// A test crate: its helpers assert by unwrapping, like its tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_sim::rehearsal::{run, Plan};

#[test]
fn only_the_cohort_updates_and_everyone_else_refuses() {
    let o = run(Plan { devices: 200, cohort_share: 0.1, image_size: 10_000, healthy: true }).unwrap();
    assert_eq!(o.cohort, 20);
    assert_eq!(o.updated, 20);
    assert_eq!(o.refused.get("not_in_cohort"), Some(&180));
    assert!(o.reverted.is_empty());
}

#[test]
fn an_image_that_fails_its_health_check_is_reverted_everywhere_it_landed() {
    let o = run(Plan { devices: 50, cohort_share: 0.2, image_size: 10_000, healthy: false }).unwrap();
    assert_eq!(o.updated, 0);
    assert_eq!(o.reverted.get("health_check_failed"), Some(&10));
}
