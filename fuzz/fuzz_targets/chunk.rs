//! Arbitrary chunks (and ticks, reboots, health results and pre-signed pause/resume commands, see
//! `airlock_fuzz::frames`) to a device that accepted a firmware delivery and awaits its image.
//!
//! Asserts, after every step: no panic; accept or refuse only; every image slot the state record
//! names holds bytes that hash to the recorded digest, and that digest is the factory image's
//! or the manifest's `image_digest` — so no trial slot (and no confirmed one) ever exists unless
//! the streamed data hashed to the manifest digest. At the end, if the new image got a slot, the
//! state record on flash equals the state in RAM.
#![no_main]

use airlock_agent_core::{Agent, Input, Settings};
use airlock_fuzz::device::{assert_handled_or_refused, downloading, layout, world};
use airlock_fuzz::fleet::{image, sha256, FACTORY_LEN, NOW};
use airlock_fuzz::frames::{steps, Step};
use airlock_fuzz::oracle;
use airlock_proto::{CommandAction, Digest};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Fixed {
    commands: Vec<Vec<u8>>,
    factory: Digest,
    image: Digest,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let fleet = &world().fleet;
        use CommandAction::*;
        let actions = [Pause, Resume, Pause, Resume, Status, Revert, RevertConfig, Resume];
        Fixed {
            commands: (1..).zip(actions).map(|(seq, a)| fleet.command(seq, a)).collect(),
            factory: sha256(&image(1, FACTORY_LEN)),
            image: sha256(&fleet.image()),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixed();
    let layout = layout();
    let mut agent = downloading();
    let mut now = NOW;
    for step in steps(data) {
        let r = match step {
            Step::Chunk(b) => agent.handle(now, Input::Chunk(b)),
            Step::Tick => {
                now += 10;
                agent.handle(now, Input::Tick)
            }
            Step::Command(n) => {
                let cmd = &f.commands[usize::from(n) % f.commands.len()];
                agent.handle(now, Input::Command(cmd))
            }
            Step::Boot => agent.handle(now, Input::Boot),
            Step::Health(ok) => agent.handle(now, Input::Health(ok)),
        };
        assert_handled_or_refused(&r, data);
        oracle::assert_slots_hold_recorded_images(&mut agent, &layout, &[f.factory, f.image]);
        if let Some(t) = agent.state().trial {
            let meta = agent.state().slots[usize::from(t.slot)];
            assert_eq!(meta.map(|m| m.digest), Some(f.image), "trial slot without the manifest's image");
        }
    }
    if agent.state().slots.iter().flatten().any(|m| m.digest == f.image) {
        let flash = agent.flash_mut().clone();
        let reopened = Agent::open(flash, layout, Settings::default());
        let reopened = reopened.unwrap_or_else(|e| panic!("device does not reopen: {e}"));
        assert_eq!(reopened.state(), agent.state(), "state on flash differs from state in RAM");
    }
});
