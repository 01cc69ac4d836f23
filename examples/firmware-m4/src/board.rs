//! Addresses and sizes of the board: the only place that knows which machine this is.
//!
//! Two boards, one firmware, one `memory.x`: a generic STM32F4-class part (the footprint build)
//! and QEMU's `netduinoplus2`, an STM32F405 (feature `qemu`, the stack measurement).

use airlock_agent_core::Layout;

/// Erase sector of the update flash (4 KiB: a typical serial or parallel NOR sector).
pub const ERASE_SIZE: u32 = 4096;
/// Smallest program unit of the update flash.
pub const WRITE_SIZE: usize = 4;
/// Eight 4 KiB record regions, then slots A and B.
pub const LAYOUT: Layout = Layout::contiguous(ERASE_SIZE, SLOT_SIZE);

const _: () = assert!(LAYOUT.end() as usize <= NOR_SIZE, "layout does not fit the NOR window");

#[cfg(not(feature = "qemu"))]
mod addresses {
    /// External NOR flash on FSMC bank 1 (NOR/PSRAM 1), memory-mapped (RM0090 §36.4).
    pub const NOR_BASE: usize = 0x6000_0000;
    /// Size of the NOR window.
    pub const NOR_SIZE: usize = 1024 * 1024;
    /// Each image slot: as large as an application in the internal flash can be.
    pub const SLOT_SIZE: u32 = 448 * 1024;
    /// USART2 (RM0090 §2.3): the link to the modem that carries MQTT.
    pub const UART_BASE: usize = 0x4000_4400;
    /// HSI after reset; nothing here raises the clock.
    pub const CORE_HZ: u32 = 16_000_000;
}

#[cfg(feature = "qemu")]
mod addresses {
    /// The STM32F405's SRAM above the 128 KiB that `memory.x` gives the firmware, standing in
    /// for the NOR flash (the driver enforces NOR semantics itself).
    pub const NOR_BASE: usize = 0x2002_0000;
    /// Size of the NOR window: what is left of the SRAM.
    pub const NOR_SIZE: usize = 64 * 1024;
    /// Each image slot: the two slots fill the rest of the window after the eight records.
    pub const SLOT_SIZE: u32 = 16 * 1024;
    /// USART2; unused under QEMU (the scripted link replaces it), kept for symmetry.
    pub const UART_BASE: usize = 0x4000_4400;
    /// What QEMU's STM32F405 model clocks SysTick with.
    pub const CORE_HZ: u32 = 168_000_000;
}

pub use addresses::*;
