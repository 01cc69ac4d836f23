//! The sans-IO agent: inputs in, outputs out, flash in between.

use crate::checks::{check_delivery, Accepted, Context};
use crate::error::{Error, Invariant};
use crate::flash_io::{hash_region, Writer};
use crate::layout::Layout;
use crate::record::{read_record, write_record, Pair};
use crate::state::{ConfigMeta, Identity, ImageMeta, State, Trial, MAX_STATE};
use airlock_proto::limits::{MAX_COMMAND, MAX_CONFIG, MAX_TRUST_ROOT};
use airlock_proto::sig::{decode_signed, Signed};
use airlock_proto::{
    decode, Action, Chunk, ChunkRequest, Command, CommandAction, Digest, Domain, Event, Firmware, Refusal, Report,
    RevertReason, SignedTrustRoot, Status, TrustRoot,
};
use embedded_storage::nor_flash::NorFlash;
use serde::{Deserialize, Serialize};

mod commands;
use sha2::{Digest as _, Sha256};

/// Tuning that is the integrator's choice, not the wire's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Image chunks requested ahead (flow control: the device pulls, at most this many in flight).
    pub window: u8,
    /// Re-request from the last good byte when nothing arrived for this many seconds.
    pub chunk_timeout_secs: u64,
    /// Largest chunk this device can receive; a manifest with a larger chunk size is refused
    /// (`chunk_too_large`) before anything is written.
    pub max_chunk: u32,
    /// Hash the slot to boot on every boot (the bootloader's check), not only at install.
    pub verify_on_boot: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window: 4,
            chunk_timeout_secs: 5,
            verify_on_boot: true,
            max_chunk: airlock_proto::limits::MAX_CHUNK as u32,
        }
    }
}

/// Something that happened to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// The device (re)started; decide which slot runs. Must come first after [`Agent::open`].
    Boot,
    /// A [`airlock_proto::Delivery`] arrived on the manifest topic.
    Delivery(&'a [u8]),
    /// A [`airlock_proto::Chunk`] arrived.
    Chunk(&'a [u8]),
    /// The health check of the change under test passed (`true`) or failed.
    Health(bool),
    /// A signed [`airlock_proto::Command`] arrived.
    Command(&'a [u8]),
    /// A [`airlock_proto::SignedTrustRoot`] (rotation) arrived.
    TrustRoot(&'a [u8]),
    /// Time passed (drives chunk retries).
    Tick,
}

/// Something the runtime must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Sign and publish this report ([`Agent::report`] builds the body).
    Report(Event),
    /// Publish this chunk request.
    RequestChunks(ChunkRequest),
    /// Reboot; the next [`Input::Boot`] decides what runs (a fresh image boots in its test state).
    Reboot {
        /// The slot the device is about to try.
        slot: u8,
    },
    /// Run the image in `slot`. In `testing`, run the health check and feed [`Input::Health`].
    Run {
        /// Image slot.
        slot: u8,
        /// Test boot awaiting its health check.
        testing: bool,
    },
    /// The config in `slot` is now in effect ([`Agent::read_config`]); in `testing`, run the
    /// health check and feed [`Input::Health`].
    ApplyConfig {
        /// Config slot.
        slot: u8,
        /// Applied on trial.
        testing: bool,
    },
    /// The identity is wiped from flash: sign this batch's reports, then call
    /// [`Agent::forget_identity`] and drop every copy of the device key.
    WipeKeys,
}

/// At most this many outputs per input (a boot may revert an image and a config at once).
pub type Outputs = heapless::Vec<Output, 6>;

/// A config slot's content.
#[derive(Serialize, Deserialize)]
struct ConfigRecord<'a> {
    meta: ConfigMeta,
    payload: &'a [u8],
}

/// The image being downloaded (RAM only: after a power cut the controller re-delivers the same
/// manifest and the download restarts).
#[derive(Debug)]
struct Download {
    manifest: Digest,
    image: ImageMeta,
    slot: u8,
    chunk: u32,
    writer: Writer,
    hasher: Sha256,
    /// Bytes requested so far.
    requested: u32,
    last_activity: u64,
    /// Next quarter of the image at which a progress report goes out.
    next_progress: u32,
}

/// What runs now, decided at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Running {
    slot: u8,
    testing: bool,
}

/// The device agent.
#[derive(Debug)]
pub struct Agent<F: NorFlash> {
    flash: F,
    layout: Layout,
    settings: Settings,
    state_records: Pair,
    trust_records: Pair,
    identity_records: Pair,
    identity: Option<Identity>,
    /// The installed TrustRoot's version. The root itself stays in flash and is read when a
    /// signed message arrives: 1.5 KB of RAM a device needs only for milliseconds.
    trust_version: u32,
    state: State,
    running: Option<Running>,
    download: Option<Download>,
    paused: bool,
    reports: u32,
}

impl<F: NorFlash> Agent<F> {
    /// Loads identity, TrustRoot and state from flash. Feed [`Input::Boot`] next.
    pub fn open(mut flash: F, layout: Layout, settings: Settings) -> Result<Self, Error> {
        layout.check(&flash)?;
        let mut buf = [0u8; MAX_TRUST_ROOT + 64];
        let mut state_records = Pair::new(layout.state, layout.record_size);
        let state: State = match state_records.load(&mut flash, &mut buf)? {
            Some(b) => postcard::from_bytes(b).map_err(|_| Error::NotProvisioned)?,
            None => return Err(Error::NotProvisioned),
        };
        state.check().map_err(Error::Invariant)?;
        let mut trust_records = Pair::new(layout.trust, layout.record_size);
        let trust_version = match trust_records.load(&mut flash, &mut buf)? {
            // Verified when installed; re-checked against its own keys so a corrupted or
            // substituted record fails closed.
            Some(b) => decode::<SignedTrustRoot<'_>>(b)?.verify_self()?.version,
            None => return Err(Error::NotProvisioned),
        };
        let mut identity_records = Pair::new(layout.identity, layout.record_size);
        let identity = match identity_records.load(&mut flash, &mut buf)? {
            Some(b) => Some(postcard::from_bytes::<Identity>(b).map_err(|_| Error::NotProvisioned)?),
            None => None,
        };
        let mut agent = Agent {
            flash,
            layout,
            settings,
            state_records,
            trust_records,
            identity_records,
            identity,
            trust_version,
            state,
            running: None,
            download: None,
            paused: false,
            reports: 0,
        };
        match (agent.state.decommissioned, agent.identity.is_some()) {
            (false, false) => return Err(Error::NotProvisioned),
            // The power went out between recording the decommission and wiping: finish it.
            (true, true) => agent.wipe_identity()?,
            _ => {}
        }
        Ok(agent)
    }

    /// Handles one input at `now` (unix seconds, from the runtime's clock). On a refusal nothing
    /// was written, except that a chunk refusal (too much data, digest mismatch) abandons the
    /// download it belongs to.
    pub fn handle(&mut self, now: u64, input: Input<'_>) -> Result<Outputs, Error> {
        if let Input::Boot = input {
            return self.boot();
        }
        if self.state.decommissioned {
            return Err(Refusal::Decommissioned.into());
        }
        if self.running.is_none() {
            return Err(Error::NotBooted);
        }
        match input {
            Input::Boot => self.boot(),
            Input::Delivery(b) => self.delivery(now, b),
            Input::Chunk(b) => self.chunk(now, b),
            Input::Health(ok) => self.health(ok),
            Input::Command(b) => self.command(now, b),
            Input::TrustRoot(b) => self.rotate(now, b),
            Input::Tick => Ok(self.tick(now)),
        }
    }

    /// The identity, until decommissioning wiped it.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The installed TrustRoot, read from flash.
    pub fn trust_root(&mut self) -> Result<TrustRoot, Error> {
        let mut buf = [0u8; MAX_TRUST_ROOT + 64];
        let bytes = self.trust_records.load_newest(&mut self.flash, &mut buf)?.ok_or(Error::NotProvisioned)?;
        let signed: SignedTrustRoot<'_> = decode(bytes)?;
        Ok(decode::<TrustRoot>(signed.body)?)
    }

    /// The persisted state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The flash (for inspection in tests and tools).
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash back.
    pub fn into_flash(self) -> F {
        self.flash
    }

    /// Drops the RAM copy of the identity after decommissioning.
    pub fn forget_identity(&mut self) {
        if self.state.decommissioned {
            self.identity = None;
        }
    }

    /// Builds a report body with the next counter (boot count in the high half).
    pub fn report(&mut self, now: u64, event: Event) -> Option<Report<'_>> {
        let identity = self.identity.as_ref()?;
        self.reports = self.reports.wrapping_add(1);
        Some(Report {
            device: identity.device_id.as_str(),
            counter: (u64::from(self.state.boots) << 32) | u64::from(self.reports),
            at: now,
            event,
        })
    }

    /// The current status.
    pub fn status(&self) -> Status {
        let running = self.running.map_or(self.state.active, |r| r.slot);
        let image = self.state.slots[usize::from(running)].or(self.state.active_image().copied());
        let config = self.state.config_active.and_then(|s| self.state.configs[usize::from(s)]);
        Status {
            firmware: image.map(|i| i.version).unwrap_or_default(),
            security_counter: self.state.min_security_counter,
            config: config.map_or(0, |c| c.version),
            sequence: self.state.last_sequence,
            trust_root: self.trust_version,
            testing: self.running.is_some_and(|r| r.testing) || self.state.config_trial.is_some(),
        }
    }

    /// Reads the config payload of `slot` into `buf`.
    pub fn read_config<'b>(&mut self, slot: u8, buf: &'b mut [u8]) -> Result<&'b [u8], Error> {
        let offset = *self.layout.config.get(usize::from(slot)).ok_or(Error::Layout)?;
        let Some((_, body)) = read_record(&mut self.flash, offset, self.layout.record_size, buf)? else {
            return Err(Error::Invariant(Invariant::ConfigRecordMissing));
        };
        let record: ConfigRecord<'b> =
            postcard::from_bytes(body).map_err(|_| Error::Invariant(Invariant::ConfigRecordCorrupt))?;
        Ok(record.payload)
    }

    // ---- boot ------------------------------------------------------------------------------

    // Each input has its own frame: `handle` would otherwise inline all of them into one large
    // stack frame that even a tick pays for.
    #[inline(never)]
    fn boot(&mut self) -> Result<Outputs, Error> {
        let mut out = Outputs::new();
        self.download = None;
        self.paused = false;
        self.state.boots = self.state.boots.wrapping_add(1);
        if let Some(slot) = self.state.config_trial.take() {
            let manifest = self.state.configs[usize::from(slot)].map(|c| c.manifest);
            self.state.configs[usize::from(slot)] = None;
            push(&mut out, Output::Report(Event::ConfigReverted { manifest, reason: RevertReason::UnconfirmedReboot }));
        }
        let mut run = Running { slot: self.state.active, testing: false };
        match self.state.trial {
            Some(t) if !t.started => {
                self.state.trial = Some(Trial { started: true, ..t });
                run = Running { slot: t.slot, testing: true };
            }
            Some(t) => {
                let manifest = self.drop_slot(t.slot);
                self.state.trial = None;
                push(&mut out, Output::Report(Event::Reverted { manifest, reason: RevertReason::UnconfirmedReboot }));
            }
            None => {}
        }
        if self.settings.verify_on_boot && !self.slot_intact(run.slot)? {
            let manifest = self.drop_slot(run.slot);
            if run.testing {
                self.state.trial = None;
            } else {
                // The confirmed image is damaged: fall back to the other one if it is still an
                // approved image the device may run.
                let other = 1 - run.slot;
                let usable = self.state.slots[usize::from(other)]
                    .is_some_and(|i| i.security_counter >= self.state.min_security_counter);
                if !usable || !self.slot_intact(other)? {
                    return Err(Error::NoBootableImage);
                }
                self.state.active = other;
            }
            run = Running { slot: self.state.active, testing: false };
            push(&mut out, Output::Report(Event::Reverted { manifest, reason: RevertReason::ImageCorrupt }));
        }
        self.persist()?;
        self.running = Some(run);
        push(&mut out, Output::Report(Event::Status(self.status())));
        push(&mut out, Output::Run { slot: run.slot, testing: run.testing });
        if let Some(slot) = self.state.config_active {
            push(&mut out, Output::ApplyConfig { slot, testing: false });
        }
        Ok(out)
    }

    fn slot_intact(&mut self, slot: u8) -> Result<bool, Error> {
        let Some(meta) = self.state.slots[usize::from(slot)] else {
            return Ok(false);
        };
        let offset = self.layout.slots[usize::from(slot)];
        Ok(hash_region(&mut self.flash, offset, meta.size)? == meta.digest.0)
    }

    /// Forgets what a slot holds (it will never be booted again); returns its manifest.
    fn drop_slot(&mut self, slot: u8) -> Option<Digest> {
        self.state.slots[usize::from(slot)].take().map(|i| i.manifest)
    }

    // ---- deliveries --------------------------------------------------------------------------

    #[inline(never)]
    fn delivery(&mut self, now: u64, bytes: &[u8]) -> Result<Outputs, Error> {
        let trust = self.trust_root()?;
        let identity = self.identity.as_ref().ok_or(Refusal::Decommissioned)?;
        let cx = Context {
            trust: &trust,
            max_chunk: self.settings.max_chunk,
            identity,
            state: &self.state,
            slot_size: self.layout.slot_size,
            now,
        };
        let accepted = check_delivery(bytes, &cx)?;
        let Accepted { manifest: m, digest } = accepted;
        if self.download.as_ref().is_some_and(|d| d.manifest == digest) {
            // The manifest being downloaded, again (the controller resends a delivery to a device
            // that reconnects without the update): the download carries on as it was.
            return Ok(Outputs::new());
        }
        // Every check held. From here on, the device acts.
        self.state.last_sequence = m.sequence;
        let mut out = Outputs::new();
        match m.action {
            Action::Firmware(fw) => {
                let slot = 1 - self.state.active;
                self.state.slots[usize::from(slot)] = None;
                self.state.downloading = Some(digest);
                self.persist()?;
                self.start_download(now, digest, &fw, slot, &mut out);
            }
            Action::Config(c) => {
                let slot = self.state.config_active.map_or(0, |a| 1 - a);
                let meta = ConfigMeta { manifest: digest, version: c.version };
                let mut buf = [0u8; MAX_CONFIG + 64];
                let record = postcard::to_slice(&ConfigRecord { meta, payload: c.payload }, &mut buf)
                    .map_err(|_| Refusal::Malformed)?;
                // The config slot is written before the state record names it: a power cut in
                // between leaves an unreferenced slot, never a referenced torn one.
                if self.state.config_previous == Some(slot) {
                    self.state.config_previous = None;
                }
                self.state.configs[usize::from(slot)] = None;
                self.persist()?;
                write_record(
                    &mut self.flash,
                    self.layout.config[usize::from(slot)],
                    self.layout.record_size,
                    1,
                    record,
                )?;
                self.state.configs[usize::from(slot)] = Some(meta);
                self.state.config_trial = Some(slot);
                self.persist()?;
                push(&mut out, Output::Report(Event::ConfigApplied { manifest: digest, version: c.version }));
                push(&mut out, Output::ApplyConfig { slot, testing: true });
            }
            Action::Decommission => {
                self.download = None;
                self.state.downloading = None;
                self.state.decommissioned = true;
                self.persist()?;
                self.wipe_identity()?;
                push(&mut out, Output::Report(Event::Decommissioned { manifest: digest }));
                push(&mut out, Output::WipeKeys);
            }
        }
        Ok(out)
    }

    fn wipe_identity(&mut self) -> Result<(), Error> {
        self.identity_records.wipe(&mut self.flash)
    }

    fn start_download(&mut self, now: u64, manifest: Digest, fw: &Firmware<'_>, slot: u8, out: &mut Outputs) {
        let image = ImageMeta {
            manifest,
            digest: fw.image_digest,
            size: fw.image_size,
            version: fw.version,
            security_counter: fw.security_counter,
        };
        let mut d = Download {
            manifest,
            image,
            slot,
            chunk: fw.chunk_size,
            writer: Writer::new(self.layout.slots[usize::from(slot)], self.layout.slot_size),
            hasher: Sha256::new(),
            requested: 0,
            last_activity: now,
            next_progress: fw.image_size / 4,
        };
        self.paused = false;
        push(out, Output::Report(Event::Accepted { manifest }));
        let window = u32::from(self.settings.window.max(1)) * d.chunk;
        push(out, Output::RequestChunks(request(&mut d, 0, window)));
        self.download = Some(d);
    }

    #[inline(never)]
    fn chunk(&mut self, now: u64, bytes: &[u8]) -> Result<Outputs, Error> {
        let chunk: Chunk<'_> = decode(bytes)?;
        let mut out = Outputs::new();
        let current = self.download.as_ref().map(|d| d.image.digest);
        if current != Some(chunk.image) {
            // A late duplicate of an image the device already holds (a retry raced the last
            // chunk) is dropped quietly; anything else is reported.
            let held = self.state.slots.iter().flatten().any(|i| i.digest == chunk.image);
            return if held { Ok(out) } else { Err(Refusal::UnexpectedChunk.into()) };
        }
        let Some(d) = self.download.as_mut() else {
            return Err(Refusal::UnexpectedChunk.into());
        };
        let at = d.writer.position();
        if chunk.offset != at {
            // A duplicate, or ahead of a lost one: the retry on tick re-requests from `at`.
            return Ok(out);
        }
        let len = chunk.data.len() as u32;
        if len > d.chunk || at + len > d.image.size {
            // More data than the manifest declared: abandon, never write past the image.
            return self.abandon(Refusal::ImageTooLarge);
        }
        d.writer.push(&mut self.flash, chunk.data)?;
        d.hasher.update(chunk.data);
        d.last_activity = now;
        let at = at + len;
        if at < d.image.size {
            if at >= d.next_progress {
                d.next_progress = d.next_progress.saturating_add((d.image.size / 4).max(1));
                let event = Event::Progress { manifest: d.manifest, received: at, total: d.image.size };
                push(&mut out, Output::Report(event));
            }
            if !self.paused && d.requested < d.image.size {
                // The window refills half at a time: half the requests of one per chunk, and
                // never less than half the window in flight.
                let window = u32::from(self.settings.window.max(1)) * d.chunk;
                let refill = (window / 2 / d.chunk).max(1) * d.chunk;
                if d.requested - at <= window - refill {
                    let from = d.requested;
                    push(&mut out, Output::RequestChunks(request(d, from, refill)));
                }
            }
            return Ok(out);
        }
        d.writer.finish(&mut self.flash)?;
        let digest: [u8; 32] = core::mem::take(&mut d.hasher).finalize().into();
        if digest != d.image.digest.0 {
            return self.abandon(Refusal::DigestMismatch);
        }
        let (slot, image, manifest) = (d.slot, d.image, d.manifest);
        self.download = None;
        // The commit point: only now does the slot become bootable, and only on trial.
        self.state.slots[usize::from(slot)] = Some(image);
        self.state.trial = Some(Trial { slot, started: false });
        self.state.downloading = None;
        self.persist()?;
        push(&mut out, Output::Report(Event::Installed { manifest }));
        push(&mut out, Output::Reboot { slot });
        Ok(out)
    }

    fn abandon(&mut self, why: Refusal) -> Result<Outputs, Error> {
        self.download = None;
        self.state.downloading = None;
        self.persist()?;
        Err(why.into())
    }

    #[inline(never)]
    fn tick(&mut self, now: u64) -> Outputs {
        let mut out = Outputs::new();
        let timeout = self.settings.chunk_timeout_secs;
        let window = u32::from(self.settings.window.max(1));
        if let Some(d) = self.download.as_mut() {
            if !self.paused && now.saturating_sub(d.last_activity) >= timeout {
                d.last_activity = now;
                let from = d.writer.position();
                push(&mut out, Output::RequestChunks(request(d, from, window * d.chunk)));
            }
        }
        out
    }

    // ---- test boots ------------------------------------------------------------------------

    #[inline(never)]
    fn health(&mut self, ok: bool) -> Result<Outputs, Error> {
        let mut out = Outputs::new();
        if let Some(run) = self.running.filter(|r| r.testing) {
            if ok {
                let image =
                    self.state.slots[usize::from(run.slot)].ok_or(Error::Invariant(Invariant::TrialSlotEmpty))?;
                self.state.active = run.slot;
                self.state.trial = None;
                self.state.min_security_counter = self.state.min_security_counter.max(image.security_counter);
                self.persist()?;
                self.running = Some(Running { slot: run.slot, testing: false });
                push(&mut out, Output::Report(Event::Confirmed { manifest: image.manifest, version: image.version }));
            } else {
                self.revert_trial_image(RevertReason::HealthCheckFailed, &mut out)?;
            }
        } else if let Some(slot) = self.state.config_trial {
            let meta = self.state.configs[usize::from(slot)].ok_or(Error::Invariant(Invariant::TrialConfigEmpty))?;
            if ok {
                self.state.config_previous = self.state.config_active;
                self.state.config_active = Some(slot);
                self.state.config_trial = None;
                self.persist()?;
                push(
                    &mut out,
                    Output::Report(Event::ConfigConfirmed { manifest: meta.manifest, version: meta.version }),
                );
            } else {
                self.revert_trial_config(RevertReason::HealthCheckFailed, &mut out)?;
            }
        }
        Ok(out)
    }

    fn revert_trial_image(&mut self, reason: RevertReason, out: &mut Outputs) -> Result<(), Error> {
        let Some(run) = self.running.filter(|r| r.testing) else {
            return Err(Refusal::NothingToRevert.into());
        };
        let manifest = self.drop_slot(run.slot);
        self.state.trial = None;
        self.persist()?;
        push(out, Output::Report(Event::Reverted { manifest, reason }));
        push(out, Output::Reboot { slot: self.state.active });
        Ok(())
    }

    fn revert_trial_config(&mut self, reason: RevertReason, out: &mut Outputs) -> Result<(), Error> {
        let Some(slot) = self.state.config_trial.take() else {
            return Err(Refusal::NothingToRevert.into());
        };
        let manifest = self.state.configs[usize::from(slot)].take().map(|c| c.manifest);
        self.persist()?;
        push(out, Output::Report(Event::ConfigReverted { manifest, reason }));
        if let Some(active) = self.state.config_active {
            push(out, Output::ApplyConfig { slot: active, testing: false });
        }
        Ok(())
    }

    // ---- persistence -----------------------------------------------------------------------

    fn persist(&mut self) -> Result<(), Error> {
        self.state.check().map_err(Error::Invariant)?;
        let mut buf = [0u8; MAX_STATE];
        let body = postcard::to_slice(&self.state, &mut buf).map_err(|_| Error::Invariant(Invariant::StateTooLarge))?;
        self.state_records.store(&mut self.flash, body)
    }
}

/// Builds a request for `[from, from + len)` clipped to the image, and records it as requested.
fn request(d: &mut Download, from: u32, len: u32) -> ChunkRequest {
    let end = from.saturating_add(len).min(d.image.size);
    d.requested = d.requested.max(end);
    ChunkRequest { image: d.image.digest, offset: from, len: end - from }
}

/// Outputs never exceed their capacity by construction (at most five per input); a full vector
/// drops the overflow rather than panicking.
fn push(out: &mut Outputs, o: Output) {
    let _ = out.push(o);
}
