//! The link to the modem over USART2 (STM32F4 register layout, RM0090 §30.6), polled.

use crate::mmio::UART;
use crate::transport::{Frame, Out};

const SR: usize = 0x00;
const DR: usize = 0x04;
const BRR: usize = 0x08;
const CR1: usize = 0x0C;
const SR_RXNE: u32 = 1 << 5;
const SR_TXE: u32 = 1 << 7;
/// Parity, framing, noise and overrun errors.
const SR_ERRORS: u32 = 0b1111;
const CR1_UE: u32 = 1 << 13;
const CR1_TE: u32 = 1 << 3;
const CR1_RE: u32 = 1 << 2;
/// Polls for the first byte of a frame before reporting the link idle (about 10 ms at 16 MHz).
const IDLE_SPINS: u32 = 40_000;
/// Polls per byte inside a frame.
const BYTE_SPINS: u32 = 4_000;

/// The modem link.
#[derive(Debug)]
pub struct Link {
    _private: (),
}

impl Link {
    /// Enables USART2 at 115200 baud (clocks and pins are set up by the bootloader).
    pub fn new() -> Self {
        UART.write_u32(BRR, crate::board::CORE_HZ / 115_200);
        UART.write_u32(CR1, CR1_UE | CR1_TE | CR1_RE);
        Link { _private: () }
    }

    fn byte(&mut self, spins: u32) -> Option<u8> {
        for _ in 0..spins {
            if UART.read_u32(SR)? & SR_RXNE != 0 {
                return Some(UART.read_u32(DR)? as u8);
            }
        }
        None
    }

    /// The next frame, read into `rx`; `None` if the link stayed idle, or on a broken or
    /// oversized frame (dropped whole).
    pub fn receive(&mut self, rx: &mut [u8]) -> Option<Frame> {
        let kind = self.byte(IDLE_SPINS)?;
        let len = usize::from(u16::from_le_bytes([self.byte(BYTE_SPINS)?, self.byte(BYTE_SPINS)?]));
        if kind == 1 {
            let mut t = [0u8; 8];
            for b in &mut t {
                *b = self.byte(BYTE_SPINS)?;
            }
            return (len == 8).then_some(Frame::Time(u64::from_le_bytes(t)));
        }
        let mut fits = len <= rx.len();
        for i in 0..len {
            let b = self.byte(BYTE_SPINS)?;
            if let Some(slot) = rx.get_mut(i) {
                *slot = b;
            } else {
                fits = false;
            }
        }
        if fits {
            Frame::from_kind(kind, len)
        } else {
            None
        }
    }

    /// Sends one frame.
    pub fn send(&mut self, kind: Out, payload: &[u8]) {
        let len = (payload.len().min(usize::from(u16::MAX)) as u16).to_le_bytes();
        for &b in [kind as u8, len[0], len[1]].iter().chain(payload) {
            while UART.read_u32(SR).is_some_and(|sr| sr & SR_TXE == 0) {}
            UART.write_u32(DR, u32::from(b));
        }
    }

    /// The health check of a test boot: the new image still talks to the modem cleanly.
    pub fn healthy(&mut self) -> bool {
        UART.read_u32(SR).is_some_and(|sr| sr & SR_ERRORS == 0)
    }
}
