//! Properties over random inputs: bit flips of signed messages are refused by the device, and
//! any chunking and loss pattern installs exactly the approved image.

use super::fixture::*;
use crate::{Error, Input};
use airlock_proto::build::{sign_trust_root, SignedOwned};
use airlock_proto::*;
use proptest::prelude::*;
use std::sync::OnceLock;

struct Signed3 {
    fleet: Fleet,
    delivery: Vec<u8>,
    command: Vec<u8>,
    rotation: Vec<u8>,
}

fn messages() -> &'static Signed3 {
    static M: OnceLock<Signed3> = OnceLock::new();
    M.get_or_init(|| {
        let fleet = Fleet::new();
        let img = image(2, 5000);
        let mut spec = fleet.firmware(Version::new(2, 0, 0), &img);
        spec.m.tier = Tier::TwoPerson;
        spec.approvers = fleet.approvers[..2].to_vec();
        let delivery = spec.bytes();
        let c = Command {
            device: DEVICE,
            sequence: 1,
            issued_at: NOW,
            expires_at: NOW + 60,
            action: CommandAction::Revert,
        };
        let command = SignedOwned::sign(Domain::Command, &c, &fleet.release).to_bytes();
        let mut next = fleet.trust.clone();
        next.version = 2;
        let rotation = sign_trust_root(&next, &[&fleet.roots[0], &fleet.roots[1]]);
        Signed3 { fleet, delivery, command, rotation }
    })
}

fn flipped(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let bit = bit % (b.len() * 8);
    b[bit / 8] ^= 1 << (bit % 8);
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_bit_flip_of_a_delivery_is_refused(bit in any::<usize>()) {
        let m = messages();
        let mut agent = device(&m.fleet);
        let r = agent.handle(NOW, Input::Delivery(&flipped(&m.delivery, bit)));
        prop_assert!(matches!(r, Err(Error::Refused(_))), "accepted: {r:?}");
    }

    #[test]
    fn any_single_bit_flip_of_a_command_is_refused(bit in any::<usize>()) {
        let m = messages();
        let mut agent = device(&m.fleet);
        let r = agent.handle(NOW, Input::Command(&flipped(&m.command, bit)));
        prop_assert!(matches!(r, Err(Error::Refused(_))), "accepted: {r:?}");
    }

    #[test]
    fn any_single_bit_flip_of_a_trust_root_rotation_is_refused(bit in any::<usize>()) {
        let m = messages();
        let mut agent = device(&m.fleet);
        let r = agent.handle(NOW, Input::TrustRoot(&flipped(&m.rotation, bit)));
        prop_assert!(matches!(r, Err(Error::Refused(_))), "accepted: {r:?}");
        prop_assert_eq!(agent.trust_root().unwrap().version, 1);
    }

    #[test]
    fn any_image_size_and_loss_pattern_installs_exactly_the_approved_image(
        len in 1usize..30_000,
        seed in 0u8..255,
        lost in proptest::collection::vec(0u32..30, 0..6),
    ) {
        let fleet = Fleet::new();
        let img = image(seed, len);
        let mut agent = device(&fleet);
        let mut rt = Runtime::new(&img);
        rt.drop_once = lost;
        rt.run(&mut agent, Input::Delivery(&fleet.firmware(Version::new(2, 0, 0), &img).bytes())).unwrap();
        prop_assert_eq!(running_image(&mut agent), (Version::new(2, 0, 0), sha256(&img)));
    }
}
