//! Airlock on a Cortex-M4F: the whole device update path of `airlock-agent-core`, linked into a
//! minimal bare-metal firmware so that its flash, static RAM and stack can be measured.
//!
//! The firmware provisions itself from a factory frame when its flash holds no records, opens
//! the agent, boots, and then feeds every message its modem link delivers (deliveries, image
//! chunks, commands, TrustRoot rotations, and ticks when idle) into [`Agent::handle`], acting on
//! the outputs: reports and chunk requests go back over the link, test boots and trial configs
//! get a health check, reboots reset the MCU.
//!
//! # Layout
//! - [`board`]: addresses, clock, flash layout (STM32F4-class part, or QEMU `netduinoplus2`).
//! - [`mmio`]: the only `unsafe` — volatile windows onto device memory, and stack painting.
//! - [`flash`]: the `NorFlash` driver for the update flash.
//! - [`transport`]: frames in and out; [`uart`] on hardware, `script` under QEMU.
//! - [`provisioning`]: the factory frame.
//! - [`stack`]: per-phase stack high-water marks (QEMU build).
//! - [`vectors`]: the STM32F4's interrupt vector table.
#![no_std]
#![no_main]

use panic_halt as _;

mod board;
mod flash;
mod mmio;
mod provisioning;
#[cfg(feature = "qemu")]
mod script;
mod stack;
mod transport;
#[cfg(not(feature = "qemu"))]
mod uart;
mod vectors;

use airlock_agent_core::{provision, Agent, Error, Input, Output, Outputs, Settings};
use airlock_proto::codec::encode_into;
use airlock_proto::Event;
use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use flash::Nor;
use stack::Phase;
use static_cell::StaticCell;
use transport::{Frame, Link, Out, RX_LEN, TX_LEN};

type Device = Agent<Nor>;

/// The agent: in a static, so the static RAM figure holds its full size.
static AGENT: StaticCell<Device> = StaticCell::new();
/// The receive buffer (one message at a time); also the scratch buffer for reading a config.
static RX: StaticCell<[u8; RX_LEN]> = StaticCell::new();
/// The transmit buffer.
static TX: StaticCell<[u8; TX_LEN]> = StaticCell::new();
/// Milliseconds since reset, counted by SysTick.
static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// Unix time in seconds: the last network time the modem sent, advanced by SysTick. (The core
/// takes seconds: a 32-bit division here instead of a 64-bit one inside the core.)
#[derive(Debug)]
struct Clock {
    base_s: u64,
    at_tick: u32,
}

impl Clock {
    fn now(&self) -> u64 {
        let elapsed_ms = MILLIS.load(Ordering::Relaxed).wrapping_sub(self.at_tick);
        self.base_s.saturating_add(u64::from(elapsed_ms / 1000))
    }

    fn set(&mut self, unix_s: u64) {
        self.base_s = unix_s;
        self.at_tick = MILLIS.load(Ordering::Relaxed);
    }
}

/// Everything outside the agent.
#[derive(Debug)]
struct Io {
    link: Link,
    tx: &'static mut [u8; TX_LEN],
    clock: Clock,
}

#[entry]
fn main() -> ! {
    let Some(mut cp) = cortex_m::Peripherals::take() else { halt() };
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(board::CORE_HZ / 1000 - 1);
    cp.SYST.clear_current();
    cp.SYST.enable_counter();
    cp.SYST.enable_interrupt();

    let rx: &'static mut [u8; RX_LEN] = RX.init_with(|| [0; RX_LEN]);
    let mut io = Io { link: Link::new(), tx: TX.init_with(|| [0; TX_LEN]), clock: Clock { base_s: 0, at_tick: 0 } };
    #[cfg(feature = "qemu")]
    script::program_factory_image(&mut Nor::new());

    let agent = stack::measure(Phase::Open, || loop {
        match open() {
            Ok(agent) => break agent,
            Err(Error::NotProvisioned) => provision_from_factory(&mut io, rx),
            // Records present but unusable (for example a TrustRoot that no longer verifies):
            // fail closed. Only a blank device takes a provisioning frame.
            Err(e) => {
                fault(&mut io, &e);
                halt()
            }
        }
    });
    let booted = stack::measure(Phase::Boot, || agent.handle(io.clock.now(), Input::Boot));
    settle(agent, &mut io, rx, booted);

    loop {
        #[cfg(feature = "qemu")]
        if io.link.done() {
            script::finish(&io.link);
        }
        let now = io.clock.now();
        let (phase, input) = match io.link.receive(rx) {
            Some(Frame::Time(secs)) => {
                io.clock.set(secs);
                continue;
            }
            // Provisioning is taken only by a blank device (see the open loop above).
            Some(Frame::Provision(_)) => continue,
            Some(Frame::Delivery(n)) => (Phase::Delivery, Input::Delivery(&rx[..n])),
            Some(Frame::Chunk(n)) => (Phase::Chunk, Input::Chunk(&rx[..n])),
            Some(Frame::Command(n)) => (Phase::Command, Input::Command(&rx[..n])),
            Some(Frame::TrustRoot(n)) => (Phase::TrustRoot, Input::TrustRoot(&rx[..n])),
            None => (Phase::Tick, Input::Tick),
        };
        let result = stack::measure(phase, || agent.handle(now, input));
        settle(agent, &mut io, rx, result);
    }
}

/// Opens the agent from flash into its static.
///
/// Not inlined: opening needs kilobytes of stack (a record buffer, a decoded TrustRoot, the
/// agent itself before it moves into the static); inlined into `main` that space would stay
/// reserved under every later `handle` call, and under provisioning.
#[inline(never)]
fn open() -> Result<&'static mut Device, Error> {
    Agent::open(Nor::new(), board::LAYOUT, Settings { max_chunk: transport::MAX_CHUNK, ..Settings::default() })
        .map(|agent| AGENT.init(agent))
}

/// A blank device: waits for the factory's provisioning frame and provisions the flash.
#[inline(never)]
fn provision_from_factory(io: &mut Io, rx: &mut [u8]) {
    loop {
        match io.link.receive(rx) {
            Some(Frame::Time(secs)) => io.clock.set(secs),
            Some(Frame::Provision(n)) => {
                let Some(p) = provisioning::parse(&rx[..n]) else {
                    fault(io, &Error::NotProvisioned);
                    continue;
                };
                let now = io.clock.now();
                match provision(&mut Nor::new(), &board::LAYOUT, &p.identity, p.trust_root, p.factory, now) {
                    Ok(()) => return,
                    Err(e) => fault(io, &e),
                }
            }
            _ => {}
        }
    }
}

/// Acts on `result` and on whatever the outputs lead to, until the agent asks for nothing more.
fn settle(agent: &mut Device, io: &mut Io, scratch: &mut [u8], first: Result<Outputs, Error>) {
    let mut result = first;
    loop {
        let next = stack::measure(Phase::Outputs, || act(agent, io, scratch, result));
        let Some((phase, input)) = next else {
            return;
        };
        result = stack::measure(phase, || agent.handle(io.clock.now(), input));
    }
}

/// Acts on one batch of outputs; returns the input they call for, if any: a health verdict, or
/// (QEMU only, where the run cannot reset) the boot after a reboot.
fn act(
    agent: &mut Device,
    io: &mut Io,
    scratch: &mut [u8],
    result: Result<Outputs, Error>,
) -> Option<(Phase, Input<'static>)> {
    let outputs = match result {
        Ok(outputs) => outputs,
        Err(Error::Refused(reason)) => {
            report(agent, io, Event::Refused { manifest: None, reason });
            return None;
        }
        Err(e) => {
            fault(io, &e);
            return None;
        }
    };
    let mut next = None;
    for output in outputs {
        match output {
            Output::Report(event) => report(agent, io, event),
            Output::RequestChunks(request) => {
                if let Ok(bytes) = encode_into(&request, &mut io.tx[..]) {
                    io.link.send(Out::ChunkRequest, bytes);
                }
            }
            Output::Reboot { .. } => next = Some(reboot()),
            Output::Run { testing, .. } => {
                // This firmware is the image it runs; a test boot runs its health check.
                if testing {
                    next = Some((Phase::Health, Input::Health(io.link.healthy())));
                }
            }
            Output::ApplyConfig { slot, testing } => match agent.read_config(slot, scratch) {
                Ok(payload) => {
                    io.link.send(Out::Config, payload);
                    if testing {
                        next = Some((Phase::Health, Input::Health(io.link.healthy())));
                    }
                }
                Err(e) => fault(io, &e),
            },
            Output::WipeKeys => agent.forget_identity(),
        }
    }
    next
}

/// Encodes a report body and hands it to the link. On a real device the body is signed with the
/// identity's key here; report signing is not part of the core and not linked.
fn report(agent: &mut Device, io: &mut Io, event: Event) {
    let now = io.clock.now();
    let Some(body) = agent.report(now, event) else {
        return; // decommissioned: no identity to speak for
    };
    if let Ok(bytes) = encode_into(&body, &mut io.tx[..]) {
        io.link.send(Out::Report, bytes);
    }
}

/// Reports a core error that is not a refusal, as one code byte.
fn fault(io: &mut Io, e: &Error) {
    let code = match e {
        Error::Refused(r) => (r.code() & 0x7F) as u8 | 0x80,
        Error::Flash(_) => 1,
        Error::Layout => 2,
        Error::NotProvisioned => 3,
        Error::NoBootableImage => 4,
        Error::NotBooted => 5,
        Error::Invariant(_) => 6,
        _ => 0,
    };
    io.link.send(Out::Fault, &[code]);
}

/// Resets into the image the core chose; the next start feeds `Input::Boot` after `open`.
#[cfg(not(feature = "qemu"))]
fn reboot() -> (Phase, Input<'static>) {
    cortex_m::peripheral::SCB::sys_reset()
}

/// Under QEMU the scripted run lives in RAM, so a reboot is played as the core's own test
/// runtime plays it: the next input is `Boot`.
#[cfg(feature = "qemu")]
fn reboot() -> (Phase, Input<'static>) {
    (Phase::Boot, Input::Boot)
}

fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}
