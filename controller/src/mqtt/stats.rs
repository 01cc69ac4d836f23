//! Counters of what the bus did and refused, by name (`report_accepted`,
//! `report_dropped_replay`, `chunk_sent`, ...): tests assert on the exact reason, and they are
//! the raw material for metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Named counters.
#[derive(Debug, Default)]
pub struct Stats(Mutex<BTreeMap<&'static str, u64>>);

impl Stats {
    /// Adds `n` to `name`.
    pub fn add(&self, name: &'static str, n: u64) {
        let mut m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry(name).or_default() += n;
    }

    /// Adds one to `name`.
    pub fn bump(&self, name: &'static str) {
        self.add(name, 1);
    }

    /// Every counter that is not zero.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
    }

    /// One counter.
    pub fn get(&self, name: &str) -> u64 {
        let m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.get(name).copied().unwrap_or(0)
    }
}
