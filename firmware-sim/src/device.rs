//! A virtual device: the real core on in-memory flash, with the runtime's duties done in-process
//! (answering chunk requests from a local image, rebooting, running a scripted health check).

use airlock_agent_core::mem_flash::MemFlash;
use airlock_agent_core::{provision, Agent, Error, Factory, Identity, Input, Layout, Output, Settings};
use airlock_proto::{Chunk, Event};
use std::collections::VecDeque;

/// Why a simulated device operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The core refused or failed.
    #[error("device {device}: {error}")]
    Core {
        /// Device id.
        device: String,
        /// What the core said.
        error: Error,
    },
}

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
    ) -> Result<Self, SimError> {
        let id = identity.device_id.to_string();
        let err = |error| SimError::Core { device: id.clone(), error };
        let mut flash = MemFlash::new(layout.end() as usize);
        let a = layout.slots[0] as usize;
        flash.bytes_mut()[a..a + factory_image.len()].copy_from_slice(factory_image);
        provision(&mut flash, &layout, &identity, trust_root, factory, now).map_err(err)?;
        let mut agent = Agent::open(flash, layout, Settings::default()).map_err(err)?;
        agent.handle(now, Input::Boot).map_err(err)?;
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

    /// Feeds one delivery and plays the runtime until the device settles: chunk requests are
    /// answered from `image` in chunks of `chunk` bytes (the manifest's chunk size), reboots
    /// become boots, test boots get `healthy`. Returns the report events in order.
    pub fn deliver(
        &mut self,
        now: u64,
        delivery: &[u8],
        image: Served<'_>,
        healthy: bool,
    ) -> Result<Vec<Event>, SimError> {
        let err = |error| SimError::Core { device: self.id.clone(), error };
        let mut events = Vec::new();
        let mut queue: VecDeque<Pending> = VecDeque::new();
        let first = self.agent.handle(now, Input::Delivery(delivery)).map_err(err)?;
        absorb(first, image, healthy, &mut events, &mut queue);
        while let Some(next) = queue.pop_front() {
            let out = match &next {
                Pending::Boot => self.agent.handle(now, Input::Boot),
                Pending::Health(ok) => self.agent.handle(now, Input::Health(*ok)),
                Pending::Chunk(b) => self.agent.handle(now, Input::Chunk(b)),
            }
            .map_err(|error| SimError::Core { device: self.id.clone(), error })?;
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
    out: airlock_agent_core::Outputs,
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
