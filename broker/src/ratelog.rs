//! Logging at a bounded rate: a flood of refusals or accept errors yields one line per interval
//! with the number of lines held back, never a log that grows at the speed of the flood.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// One rate limit, shared by every place that logs the same kind of event.
#[derive(Debug)]
pub(crate) struct RateLog {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl RateLog {
    pub(crate) const fn new(interval: Duration) -> RateLog {
        RateLog { interval, last: Mutex::new(None), held_back: AtomicU64::new(0) }
    }

    /// `Some(lines held back since the last one)` if a line may be logged now.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock();
        match *last {
            Some(t) if now.duration_since(t) < self.interval => {
                self.held_back.fetch_add(1, Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.held_back.swap(0, Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_logs_once_and_counts_what_it_held_back() {
        let log = RateLog::new(Duration::from_secs(60));
        assert_eq!(log.allow(), Some(0));
        for _ in 0..1000 {
            assert_eq!(log.allow(), None);
        }
        assert_eq!(log.held_back.load(Relaxed), 1000);
    }
}
