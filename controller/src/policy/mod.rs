//! The tiering policy: which lane a proposal takes, and what devices enforce on their own.
//!
//! Policies are TOML files (`policies/*.toml`, documented in `policies/default.toml`). Loading
//! refuses a malformed policy with the file, line and reason. A loaded [`Policy`] decides a
//! [`Facts`] to a [`Decision`]: every matching rule, the strictest tier among them (or the
//! default when none matches), raised to what devices will demand for the declared fields.
//!
//! # Layout
//! - `file`: the TOML format as written, with source spans.
//! - [`model`]: the compiled policy (lanes, pools, rules, device floor, break-glass).
//! - [`load`]: reading and validating files into a [`Policy`].
//! - [`decide`]: evaluating facts, with the explanation `airlock explain` prints.
//! - [`testing`]: the shipped policy without its calendar rules, for tests on the wall clock.

pub mod decide;
mod file;
pub mod load;
pub mod model;
pub mod testing;

pub use decide::{Decision, Facts, Match};
pub use load::{load_dir, load_sources, PolicyError};
pub use model::{Kind, Lane, NoResponse, Policy, Pool, Rule};

#[cfg(test)]
mod tests;
