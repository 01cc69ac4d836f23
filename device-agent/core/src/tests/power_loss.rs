//! Power cuts at every flash operation of an update, of a health-check revert, of a commanded
//! revert and of a config push. After each cut the device must open, boot an approved image
//! whose bytes match its record, keep a consistent state record, and still be able to finish.

use super::fixture::*;
use crate::mem_flash::MemFlash;
use crate::{Agent, Error, Input, Settings};
use airlock_proto::build::SignedOwned;
use airlock_proto::*;

/// What a scenario does to a booted device; returns an error when the power goes.
type Scenario<'s> = &'s dyn Fn(&mut Agent<MemFlash>) -> Result<(), Error>;

struct Sweep {
    cuts: u64,
    outcomes: std::collections::BTreeMap<String, usize>,
}

/// Runs `scenario` once cleanly to count its flash operations, then once per operation with the
/// power cut there, checking the device after each cut.
fn sweep(base: &MemFlash, scenario: Scenario<'_>, approved: &[Digest], finish: Scenario<'_>) -> Sweep {
    let mut clean = booted(base.clone());
    let start = clean.flash_mut().ops();
    scenario(&mut clean).unwrap();
    let total = clean.flash_mut().ops() - start;
    assert!(total > 10, "scenario too small to be a sweep: {total} ops");
    let mut outcomes = std::collections::BTreeMap::new();
    for n in 0..total {
        let mut agent = booted(base.clone());
        agent.flash_mut().cut_power_at(n);
        let r = scenario(&mut agent);
        let mut flash = agent.into_flash();
        assert!(!flash.powered(), "cut {n}: the scenario finished without reaching operation {n}: {r:?}");
        assert!(matches!(r, Err(Error::Flash(_))), "cut {n}: expected the power loss to surface, got {r:?}");
        flash.power_on();
        // Reboot after the cut.
        let mut agent = Agent::open(flash, layout(), Settings::default())
            .unwrap_or_else(|e| panic!("cut {n}: device does not open after the power cut: {e:?}"));
        let out = agent.handle(NOW, Input::Boot).unwrap_or_else(|e| panic!("cut {n}: BRICKED: {e:?}"));
        let slot = out
            .iter()
            .find_map(|o| if let crate::Output::Run { slot, .. } = o { Some(*slot) } else { None })
            .unwrap_or_else(|| panic!("cut {n}: boot did not say what to run"));
        let meta = agent.state().slots[usize::from(slot)].unwrap_or_else(|| panic!("cut {n}: runs an unrecorded slot"));
        let off = layout().slots[usize::from(slot)] as usize;
        let bytes = &agent.flash_mut().bytes()[off..off + meta.size as usize];
        assert_eq!(sha256(bytes), meta.digest, "cut {n}: slot content does not match its record");
        assert!(approved.contains(&meta.digest), "cut {n}: runs an image nobody approved");
        agent.state().check().unwrap_or_else(|e| panic!("cut {n}: inconsistent state: {e:?}"));
        // And the device can still finish: the controller re-delivers, the runtime carries on.
        finish(&mut agent).unwrap_or_else(|e| panic!("cut {n}: cannot recover: {e:?}"));
        agent.state().check().unwrap_or_else(|e| panic!("cut {n}: inconsistent state after recovery: {e:?}"));
        let (version, _) = running_image(&mut agent);
        *outcomes.entry(format!("runs {version}")).or_insert(0) += 1;
    }
    Sweep { cuts: total, outcomes }
}

/// Re-delivers `delivery` (a replay refusal means the device already took it) and runs to the end.
fn redeliver<'a>(
    delivery: &'a [u8],
    img: &'a [u8],
    health: bool,
) -> impl Fn(&mut Agent<MemFlash>) -> Result<(), Error> + 'a {
    move |agent| {
        let mut rt = Runtime::new(img);
        rt.health = health;
        // A test boot interrupted by the cut is still pending: its health check runs first.
        if agent.status().testing {
            rt.run(agent, Input::Health(health))?;
        }
        match rt.run(agent, Input::Delivery(delivery)) {
            Ok(()) | Err(Error::Refused(Refusal::Replay)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[test]
fn power_loss_at_every_write_of_an_update_never_bricks() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let base = provisioned(&fleet, &identity());
    let delivery = fleet.firmware(Version::new(2, 0, 0), &img).bytes();
    let scenario = |agent: &mut Agent<MemFlash>| Runtime::new(&img).run(agent, Input::Delivery(&delivery));
    let approved = [sha256(&image(1, FACTORY_LEN)), sha256(&img)];
    let s = sweep(&base, &scenario, &approved, &redeliver(&delivery, &img, true));
    println!("update: {} power cuts, outcomes {:?}", s.cuts, s.outcomes);
    assert!(s.outcomes.get("runs 2.0.0").copied().unwrap_or(0) > 0);
}

#[test]
fn power_loss_at_every_write_of_a_health_check_revert_never_bricks() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let base = provisioned(&fleet, &identity());
    let delivery = fleet.firmware(Version::new(2, 0, 0), &img).bytes();
    let scenario = |agent: &mut Agent<MemFlash>| {
        let mut rt = Runtime::new(&img);
        rt.health = false;
        rt.run(agent, Input::Delivery(&delivery))
    };
    let approved = [sha256(&image(1, FACTORY_LEN)), sha256(&img)];
    let s = sweep(&base, &scenario, &approved, &redeliver(&delivery, &img, false));
    println!("health revert: {} power cuts, outcomes {:?}", s.cuts, s.outcomes);
    assert_eq!(s.outcomes.keys().collect::<Vec<_>>(), ["runs 1.0.0"], "a failing image must never end up running");
}

#[test]
fn power_loss_at_every_write_of_a_commanded_revert_never_bricks() {
    let fleet = Fleet::new();
    let img = image(2, 20_000);
    let mut updated = booted(provisioned(&fleet, &identity()));
    Runtime::new(&img)
        .run(&mut updated, Input::Delivery(&fleet.firmware(Version::new(2, 0, 0), &img).bytes()))
        .unwrap();
    let base = updated.into_flash();
    let c =
        Command { device: DEVICE, sequence: 1, issued_at: NOW, expires_at: NOW + 60, action: CommandAction::Revert };
    let cmd = SignedOwned::sign(Domain::Command, &c, &fleet.release).to_bytes();
    // Boot (a state write) plus the revert itself.
    let scenario = |agent: &mut Agent<MemFlash>| {
        agent.handle(NOW, Input::Boot)?;
        Runtime::new(&img).run(agent, Input::Command(&cmd))
    };
    let finish = |agent: &mut Agent<MemFlash>| match Runtime::new(&img).run(agent, Input::Command(&cmd)) {
        Ok(()) | Err(Error::Refused(Refusal::Replay | Refusal::NothingToRevert)) => Ok(()),
        Err(e) => Err(e),
    };
    let approved = [sha256(&image(1, FACTORY_LEN)), sha256(&img)];
    let s = sweep(&base, &scenario, &approved, &finish);
    println!("commanded revert: {} power cuts, outcomes {:?}", s.cuts, s.outcomes);
}

#[test]
fn power_loss_at_every_write_of_a_config_push_keeps_a_consistent_config() {
    let fleet = Fleet::new();
    let mut first = booted(provisioned(&fleet, &identity()));
    let push = |version, payload: &'static [u8], seq| {
        let mut spec = ManifestSpec::new(&fleet, Action::Config(Config { version, payload }));
        spec.m.sequence = seq;
        spec.bytes()
    };
    Runtime::new(&[]).run(&mut first, Input::Delivery(&push(1, b"rate=1", 100))).unwrap();
    let base = first.into_flash();
    let second = push(2, b"rate=2", 101);
    let scenario = |agent: &mut Agent<MemFlash>| Runtime::new(&[]).run(agent, Input::Delivery(&second));
    let finish = |agent: &mut Agent<MemFlash>| {
        match Runtime::new(&[]).run(agent, Input::Delivery(&second)) {
            Ok(()) | Err(Error::Refused(Refusal::Replay)) => {}
            Err(e) => return Err(e),
        }
        let slot = agent.state().config_active.ok_or(Error::Invariant(crate::error::Invariant::ConfigRecordMissing))?;
        let mut buf = [0u8; 64];
        let payload = agent.read_config(slot, &mut buf)?.to_vec();
        assert!(payload == b"rate=1" || payload == b"rate=2", "config is {payload:?}");
        Ok(())
    };
    let approved = [sha256(&image(1, FACTORY_LEN))];
    let s = sweep(&base, &scenario, &approved, &finish);
    println!("config push: {} power cuts, outcomes {:?}", s.cuts, s.outcomes);
}
