//! The firmware's only `unsafe`: volatile access to fixed physical address windows, and the
//! stack-painting probe.
//!
//! Every access goes through a [`Window`], and the only windows are the constants below, each a
//! device region (external NOR, UART registers) that no Rust object occupies: they lie outside
//! the `FLASH` and `RAM` regions of `memory.x`. Offsets are bounds-checked, so
//! the safe functions here cannot touch memory outside those windows.
#![allow(unsafe_code)]

use crate::board;

/// A fixed, device-owned address range.
#[derive(Debug)]
pub struct Window {
    base: usize,
    len: usize,
}

/// The external NOR flash holding records and image slots.
pub const NOR: Window = Window { base: board::NOR_BASE, len: board::NOR_SIZE };
/// The UART's register block.
#[cfg_attr(feature = "qemu", allow(dead_code))]
pub const UART: Window = Window { base: board::UART_BASE, len: 0x20 };

impl Window {
    /// Volatile byte read at `offset`; `None` past the end.
    #[inline]
    pub fn read_u8(&self, offset: usize) -> Option<u8> {
        if offset >= self.len {
            return None;
        }
        // SAFETY: `base + offset` lies inside this window (checked above), a device region that
        // is mapped on this board and not aliased by any Rust object (module docs).
        Some(unsafe { core::ptr::read_volatile((self.base + offset) as *const u8) })
    }

    /// Volatile byte write at `offset`; `false` past the end.
    #[inline]
    pub fn write_u8(&self, offset: usize, value: u8) -> bool {
        if offset >= self.len {
            return false;
        }
        // SAFETY: as in `read_u8`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u8, value) };
        true
    }

    /// Volatile aligned 32-bit read (registers); `None` past the end or unaligned.
    #[cfg_attr(feature = "qemu", allow(dead_code))]
    #[inline]
    pub fn read_u32(&self, offset: usize) -> Option<u32> {
        if offset % 4 != 0 || offset + 4 > self.len {
            return None;
        }
        // SAFETY: as in `read_u8`; the address is 4-byte aligned because `base` is.
        Some(unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) })
    }

    /// Volatile aligned 32-bit write (registers); `false` past the end or unaligned.
    #[cfg_attr(feature = "qemu", allow(dead_code))]
    #[inline]
    pub fn write_u32(&self, offset: usize, value: u32) -> bool {
        if offset % 4 != 0 || offset + 4 > self.len {
            return false;
        }
        // SAFETY: as in `read_u32`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) };
        true
    }
}

/// Stack painting for the QEMU high-water measurement.
#[cfg(feature = "qemu")]
pub mod stack {
    /// The paint: a word the firmware never stores on its stack by accident.
    pub const PAINT: u32 = 0xDEAD_C0DE;

    extern "C" {
        /// Initial stack pointer, the top of RAM (cortex-m-rt `link.x`).
        static _stack_start: u32;
        /// Lowest address the stack may grow to: the end of `.bss`/`.uninit` (cortex-m-rt).
        static _stack_end: u32;
    }

    /// `(lowest, top)` address of the stack.
    pub fn bounds() -> (usize, usize) {
        // Taking the address of an extern static is safe; nothing is read.
        (core::ptr::addr_of!(_stack_end) as usize, core::ptr::addr_of!(_stack_start) as usize)
    }

    /// Paints every word from the stack's lowest address up to just below this function's own
    /// frame. Not inlined, and calls nothing, so no live frame lies below the painted range.
    #[inline(never)]
    pub fn paint() {
        let (low, _) = bounds();
        let sp = cortex_m::register::msp::read() as usize;
        let mut at = (low + 3) & !3;
        // 64 bytes of headroom under this frame's stack pointer.
        while at + 4 <= sp - 64 {
            // SAFETY: `[low, sp - 64)` is unused stack: below every live frame (the stack grows
            // down and this function calls nothing) and above `.bss`/`.uninit`, so no Rust
            // object lives there. Interrupt frames landing there are exactly what we measure.
            unsafe { core::ptr::write_volatile(at as *mut u32, PAINT) };
            at += 4;
        }
    }

    /// The lowest stack address written since [`paint`]: the first word from the bottom that
    /// no longer holds the paint.
    #[inline(never)]
    pub fn lowest_touched() -> usize {
        let (low, top) = bounds();
        let mut at = (low + 3) & !3;
        while at < top {
            // SAFETY: `[low, top)` is the stack region, mapped RAM; a volatile read of a word
            // that a live frame may own is a plain read of initialised memory.
            if unsafe { core::ptr::read_volatile(at as *const u32) } != PAINT {
                return at;
            }
            at += 4;
        }
        top
    }
}
