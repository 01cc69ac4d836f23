//! The STM32F405/407 interrupt vector table: 82 device interrupts (RM0090 table 61), every one
//! routed to cortex-m-rt's `DefaultHandler`, as a device crate (PAC) would provide it.
//!
//! Without a device table cortex-m-rt fills the architectural maximum of 240 entries (960 bytes)
//! — 632 bytes of flash that no STM32F4 firmware carries. With cortex-m-rt's `device` feature the
//! table is ours to supply; `device.x` (next to `memory.x`) is empty because every entry here
//! names `DefaultHandler` directly.
// `#[no_mangle]` and `#[link_section]` place the table where cortex-m-rt's link.x expects it.
#![allow(unsafe_code)]

/// Device interrupts on the STM32F405/407.
const IRQS: usize = 82;

extern "C" {
    /// cortex-m-rt's default interrupt handler (provided by `link.x`).
    fn DefaultHandler();
}

#[link_section = ".vector_table.interrupts"]
#[no_mangle]
#[used]
static __INTERRUPTS: [unsafe extern "C" fn(); IRQS] = [DefaultHandler; IRQS];
