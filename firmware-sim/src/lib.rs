//! The Airlock fleet simulator: thousands of virtual devices, each running the real device agent
//! (`airlock-agent`'s MQTT runtime around `airlock-agent-core`) on in-memory NOR flash with its
//! own broker connection, enrolled into a real controller, with the faults real fleets have.
//!
//! A [`scenario::Scenario`] file says what the fleet looks like (models, regions, environments,
//! firmware versions and their shares), which faults to inject, what to do (propose, approve,
//! wait, abort, attack) and what must hold at the end. [`run::run`] plays it and returns a
//! [`report::Report`]; a failed expectation makes `airlock-sim run` exit non-zero.
//!
//! # Layout
//! - [`scenario`]: the scenario file (`firmware-sim/scenarios/*.toml`) and its validation.
//! - [`controller`]: the controller the fleet is enrolled into, in process or over HTTP, and the
//!   calls of a proposal's life.
//! - [`fleet`]: building, enrolling and running the virtual devices, and their faults;
//!   [`flash`] (flash that loses power) and [`link`] (slow and lossy links) are its parts.
//! - [`rogue`]: a rogue MQTT publisher and its attacks.
//! - [`run`]: plays a scenario's steps and checks its expectations; [`report`] is what it returns.
//! - [`bench`]: the fleet benchmark's lower bounds and process measurements.
//! - `main.rs`: the `airlock-sim` binary (`run`, `serve`, `bench`).

pub mod bench;
pub mod controller;
pub mod flash;
pub mod fleet;
pub mod link;
pub mod report;
pub mod rogue;
pub mod run;
pub mod scenario;

/// Why a simulation could not run (a failed expectation is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario file is malformed or inconsistent.
    #[error("{0}")]
    Scenario(String),
    /// The controller refused or failed a call.
    #[error("controller: {0}")]
    Controller(String),
    /// A device could not be set up.
    #[error("device {device}: {error}")]
    Device {
        /// Device id.
        device: String,
        /// What went wrong.
        error: String,
    },
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Files, sockets.
    #[error("{0}")]
    Io(String),
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// SHA-256.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// A small deterministic generator (SplitMix64): scenario runs are reproducible from their seed,
/// and nothing here needs cryptographic randomness.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}
