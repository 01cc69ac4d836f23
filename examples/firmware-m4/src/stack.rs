//! Stack high-water mark per phase, for the QEMU build; a no-op wrapper otherwise.
//!
//! Before each phase the free stack is painted ([`crate::mmio::stack::paint`]); after it, the
//! lowest overwritten word gives the depth reached, measured from the top of the stack, so the
//! figure includes `main`'s own frame and any interrupt that fired meanwhile.

/// What the firmware was doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `Agent::open`, and provisioning when the flash is blank.
    Open,
    /// `Input::Boot`.
    Boot,
    /// `Input::Delivery`.
    Delivery,
    /// `Input::Chunk`.
    Chunk,
    /// `Input::Health`.
    Health,
    /// `Input::Command`.
    Command,
    /// `Input::TrustRoot`.
    TrustRoot,
    /// `Input::Tick`.
    Tick,
    /// Acting on outputs: encoding reports and chunk requests, reading a config.
    Outputs,
}

#[cfg(feature = "qemu")]
mod imp {
    use super::Phase;
    use crate::mmio::stack::{bounds, lowest_touched, paint};
    use core::sync::atomic::{AtomicU32, Ordering};

    pub const PHASES: [Phase; 9] = [
        Phase::Open,
        Phase::Boot,
        Phase::Delivery,
        Phase::Chunk,
        Phase::Health,
        Phase::Command,
        Phase::TrustRoot,
        Phase::Tick,
        Phase::Outputs,
    ];
    static PEAK: [AtomicU32; 9] = [const { AtomicU32::new(0) }; 9];

    pub fn measure<R>(phase: Phase, f: impl FnOnce() -> R) -> R {
        paint();
        let r = f();
        let (_, top) = bounds();
        let used = (top - lowest_touched()) as u32;
        PEAK[phase as usize].fetch_max(used, Ordering::Relaxed);
        r
    }

    /// Peak depth per phase, in bytes.
    pub fn peaks() -> impl Iterator<Item = (Phase, u32)> {
        PHASES.iter().map(|&p| (p, PEAK[p as usize].load(Ordering::Relaxed)))
    }

    /// Bytes between the end of the statics and the top of RAM.
    pub fn capacity() -> u32 {
        let (low, top) = bounds();
        (top - low) as u32
    }
}

#[cfg(feature = "qemu")]
pub use imp::{capacity, measure, peaks};

/// Runs `f` (the QEMU build also records its stack depth).
#[cfg(not(feature = "qemu"))]
#[inline(always)]
pub fn measure<R>(_phase: Phase, f: impl FnOnce() -> R) -> R {
    f()
}
