//! A virtual device's flash: [`MemFlash`] shared between the running agent and the simulator, so
//! the simulator can cut the power mid-update, restore it, reboot the agent on the same bytes,
//! and finally check the device is not bricked.

use airlock_agent_core::mem_flash::{MemFlash, MemFlashError};
use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Shared in-memory NOR flash with power cuts.
#[derive(Clone, Debug)]
pub struct SharedFlash {
    inner: Arc<Mutex<MemFlash>>,
    lost: Arc<AtomicBool>,
    signal: Arc<tokio::sync::Notify>,
}

impl SharedFlash {
    /// Wraps a (provisioned) flash.
    pub fn new(flash: MemFlash) -> Self {
        SharedFlash {
            inner: Arc::new(Mutex::new(flash)),
            lost: Arc::new(AtomicBool::new(false)),
            signal: Arc::new(tokio::sync::Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemFlash> {
        // A panic elsewhere cannot leave flash half-updated: every operation is one call.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tears mutating operation number `n` from now (0-based); everything after fails.
    pub fn cut_power_at(&self, n: u64) {
        self.lock().cut_power_at(n);
    }

    /// Whether the power went out (an operation failed for it) since the last [`Self::power_on`].
    pub fn power_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Resolves once the power has gone out (at once if it is out).
    pub async fn power_lost_signal(&self) {
        while !self.power_lost() {
            self.signal.notified().await;
        }
    }

    /// Restores power.
    pub fn power_on(&self) {
        self.lock().power_on();
        self.lost.store(false, Ordering::Release);
    }

    /// A copy of the bytes (for the brick check).
    pub fn snapshot(&self) -> MemFlash {
        self.lock().clone()
    }

    fn note(&self, r: Result<(), MemFlashError>) -> Result<(), MemFlashError> {
        if r == Err(MemFlashError::PowerLoss) && !self.lost.swap(true, Ordering::AcqRel) {
            self.signal.notify_one();
        }
        r
    }
}

impl ErrorType for SharedFlash {
    type Error = MemFlashError;
}

impl ReadNorFlash for SharedFlash {
    const READ_SIZE: usize = MemFlash::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let r = self.lock().read(offset, bytes);
        self.note(r)
    }

    fn capacity(&self) -> usize {
        self.lock().capacity()
    }
}

impl NorFlash for SharedFlash {
    const WRITE_SIZE: usize = MemFlash::WRITE_SIZE;
    const ERASE_SIZE: usize = MemFlash::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let r = self.lock().erase(from, to);
        self.note(r)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let r = self.lock().write(offset, bytes);
        self.note(r)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_tears_one_write_fails_the_rest_and_power_on_restores() {
        let f = SharedFlash::new(MemFlash::new(8192));
        let mut agent_side = f.clone();
        f.cut_power_at(1);
        agent_side.write(0, &[0, 0, 0, 0]).unwrap();
        assert!(!f.power_lost());
        assert_eq!(agent_side.write(4, &[0, 0, 0, 0]), Err(MemFlashError::PowerLoss));
        assert!(f.power_lost());
        assert_eq!(agent_side.write(8, &[0, 0, 0, 0]), Err(MemFlashError::PowerLoss));
        f.power_on();
        assert!(!f.power_lost());
        agent_side.write(8, &[0, 0, 0, 0]).unwrap();
        let snap = f.snapshot();
        assert_eq!(&snap.bytes()[..4], &[0, 0, 0, 0]);
        assert_eq!(&snap.bytes()[4..8], &[0, 0, 0xFF, 0xFF], "the torn write landed half");
    }
}
