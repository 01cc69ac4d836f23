//! A device without a network (feature `mem-flash`): the core on in-memory flash, with the
//! runtime's duties done in-process — chunk requests answered from a local image, reboots turned
//! into boots, a scripted health verdict. The controller's rollout tests and the in-process
//! release tests drive fleets of these; the simulator runs the real MQTT runtime instead.

use crate::mem_flash::MemFlash;
use crate::{provision, Agent, Error, Factory, Identity, Input, Layout, Output, Settings};
use airlock_proto::{Chunk, Event};
#[cfg(not(test))]
use alloc::{collections::VecDeque, string::String, string::ToString, vec::Vec};
#[cfg(test)]
use std::collections::VecDeque;

/// A virtual device.
#[derive(Debug)]
pub struct VirtualDevice {
    id: String,
    agent: Agent<MemFlash>,
}

impl VirtualDevice {
    /// Programs the factory image into slot A, provisions and boots the device.
    pub fn provision(
        identity: Identity,
        trust_root: &[u8],
        factory_image: &[u8],
        factory: Factory,
        layout: Layout,
        now: u64,
    ) -> Result<Self, Error> {
        let id = identity.device_id.to_string();
        let mut flash = MemFlash::new(layout.end() as usize);
        let a = layout.slots[0] as usize;
        flash.bytes_mut()[a..a + factory_image.len()].copy_from_slice(factory_image);
        provision(&mut flash, &layout, &identity, trust_root, factory, now)?;
        let mut agent = Agent::open(flash, layout, Settings::default())?;
        agent.handle(now, Input::Boot)?;
        Ok(VirtualDevice { id, agent })
    }

    /// The device id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The core.
    pub fn agent(&mut self) -> &mut Agent<MemFlash> {
        &mut self.agent
    }

    /// Feeds one delivery and plays the runtime until the device settles (a refusal is
    /// `Err(Error::Refused(reason))`): chunk requests are
    /// answered from `image` in chunks of `chunk` bytes (the manifest's chunk size), reboots
    /// become boots, test boots get `healthy`. Returns the report events in order.
    pub fn deliver(
        &mut self,
        now: u64,
        delivery: &[u8],
        image: Served<'_>,
        healthy: bool,
    ) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        let mut queue: VecDeque<Pending> = VecDeque::new();
        let first = self.agent.handle(now, Input::Delivery(delivery))?;
        absorb(first, image, healthy, &mut events, &mut queue);
        while let Some(next) = queue.pop_front() {
            let out = match &next {
                Pending::Boot => self.agent.handle(now, Input::Boot),
                Pending::Health(ok) => self.agent.handle(now, Input::Health(*ok)),
                Pending::Chunk(b) => self.agent.handle(now, Input::Chunk(b)),
            }?;
            absorb(out, image, healthy, &mut events, &mut queue);
        }
        Ok(events)
    }
}

enum Pending {
    Boot,
    Health(bool),
    Chunk(Vec<u8>),
}

/// An image as the transfer side serves it.
#[derive(Clone, Copy, Debug)]
pub struct Served<'i> {
    /// The image bytes.
    pub bytes: &'i [u8],
    /// Its SHA-256 (the manifest's image digest).
    pub digest: airlock_proto::Digest,
    /// The manifest's chunk size.
    pub chunk: usize,
}

fn absorb(
    out: crate::Outputs,
    image: Served<'_>,
    healthy: bool,
    events: &mut Vec<Event>,
    queue: &mut VecDeque<Pending>,
) {
    for o in out {
        match o {
            Output::Report(e) => events.push(e),
            Output::RequestChunks(r) => {
                let end = (r.offset as usize + r.len as usize).min(image.bytes.len());
                let mut at = r.offset as usize;
                while at < end {
                    let stop = (at + image.chunk).min(end);
                    let chunk = Chunk { image: image.digest, offset: at as u32, data: &image.bytes[at..stop] };
                    queue.push_back(Pending::Chunk(airlock_proto::codec::encode(&chunk)));
                    at = stop;
                }
            }
            Output::Reboot { .. } => queue.push_back(Pending::Boot),
            Output::Run { testing: true, .. } | Output::ApplyConfig { testing: true, .. } => {
                queue.push_back(Pending::Health(healthy))
            }
            Output::Run { .. } | Output::ApplyConfig { .. } | Output::WipeKeys => {}
        }
    }
}
