//! The Airlock fleet controller.
//!
//! Firmware engineers propose; the policy tiers each proposal into a lane; approvers sign the
//! manifest digest with their own keys; the controller signs what reached its quorum and keeps
//! evidence of every step in a hash-chained, signed audit trail.
//!
//! # Layout
//! - [`api`]: the HTTP API.
//! - [`artifacts`]: firmware images, stored content-addressed in the data directory.
//! - [`audit`]: the append-only, hash-chained, signed audit trail.
//! - [`cli`]: the `airlock` command line: `serve`, and the API client approvers sign with.
//! - [`cohort`]: a resolved cohort as a sorted set of device ids, its Merkle root and proofs.
//! - [`keys`]: Ed25519 key files.
//! - [`metrics`]: approval metrics (JSON and Prometheus).
//! - [`mqtt`]: delivery: embedded broker, the controller's MQTT bus, chunks, device reports.
//! - [`policy`]: tiering policy files, decisions and their explanation.
//! - [`registry`]: enrolled devices, cohort selectors and the preview.
//! - [`release`]: per-device deliveries of a signed, approved manifest.
//! - [`rollout`]: waves, thresholds, timeouts; the transport seam.
//! - [`server`]: `airlock serve`: data directory, first run, serving loop.
//! - [`store`]: the database (SQLite or PostgreSQL) and its migrations.
//! - [`trust`]: issuing the TrustRoot from the policy and the roster.
//! - [`users`]: people, roles, tokens and approver keys.
//! - [`web`]: the approver web UI: queues, the approval card (signing in the browser), dashboards.
//! - [`workflow`]: the durable approval workflow.

pub mod api;
pub mod artifacts;
pub mod audit;
pub mod cli;
pub mod cohort;
pub mod keys;
pub mod metrics;
pub mod mqtt;
pub mod policy;
pub mod registry;
pub mod release;
pub mod rollout;
pub mod server;
pub mod store;
pub mod trust;
pub mod users;
pub mod web;
pub mod workflow;
