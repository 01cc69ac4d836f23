//! The `chunk` target's frame format: a seed session parses back into the steps it was built
//! from, and played against the device it installs and confirms the image (so the fuzzer starts
//! from inputs that reach the trial slot and the confirmation).

use airlock_agent_core::Input;
use airlock_fuzz::device::downloading;
use airlock_fuzz::device::world;
use airlock_fuzz::fleet::{sha256, CHUNK, IMAGE_LEN, NOW};
use airlock_fuzz::frames::{push_chunk, push_step, steps, Step};

#[test]
fn a_seed_session_installs_and_confirms_the_image() {
    let fleet = &world().fleet;
    let mut session = Vec::new();
    for at in (0..IMAGE_LEN as u32).step_by(CHUNK as usize) {
        push_chunk(&mut session, &fleet.chunk(at, CHUNK));
    }
    push_step(&mut session, Step::Boot);
    push_step(&mut session, Step::Health(true));
    let parsed = steps(&session);
    assert_eq!(parsed.len(), 6);
    assert_eq!(parsed[0], Step::Chunk(&fleet.chunk(0, CHUNK)));
    assert_eq!(parsed[4..], [Step::Boot, Step::Health(true)]);

    let mut agent = downloading();
    for step in parsed {
        let r = match step {
            Step::Chunk(b) => agent.handle(NOW, Input::Chunk(b)),
            Step::Boot => agent.handle(NOW, Input::Boot),
            Step::Health(ok) => agent.handle(NOW, Input::Health(ok)),
            other => unreachable!("{other:?}"),
        };
        assert!(r.is_ok(), "{step:?}: {r:?}");
    }
    let active = agent.state().active_image().copied().expect("an active image");
    assert_eq!(active.digest, sha256(&fleet.image()));
    assert_eq!(agent.state().trial, None);
}

#[test]
fn a_truncated_frame_is_shortened_or_dropped() {
    assert_eq!(steps(&[0, 5, 0, 1, 2]), [Step::Chunk(&[1, 2])]);
    assert_eq!(steps(&[0, 5]), []);
    assert_eq!(steps(&[2]), []);
    assert_eq!(steps(&[7, 9, 3, 1]), [Step::Command(9), Step::Boot, Step::Tick]);
}
