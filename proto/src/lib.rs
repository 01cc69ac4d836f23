//! Airlock wire formats: everything that crosses between controller, approvers and devices.
//!
//! `no_std`, no allocator needed to decode or verify: messages borrow from the received bytes
//! and lists have fixed capacities ([`limits`]). The `alloc` feature adds the controller-side
//! builders ([`build`], [`merkle::tree`]); `sign` adds signing without an allocator (device
//! reports).
//!
//! # Trust model in one paragraph
//! Root keys sign a [`TrustRoot`] (release keys, approver roster, device-enforced [`TierRules`]).
//! A release key signs a [`Manifest`]; each approver signs its digest ([`ApprovalStatement`]).
//! The device checks the release signature, the quorum for the declared tier against its own
//! floor ([`check_quorum`]), and its own membership in the cohort ([`InclusionProof`]), so a
//! compromised controller cannot push what approvers did not sign. Every signature is over
//! `DOMAIN || body` ([`sig`]); the exact bytes are in `proto/tests/vectors/`.
//!
//! # Layout
//! - [`bytes`]: fixed-size byte arrays (digests, keys, signatures) on the wire.
//! - [`codec`]: strict postcard decoding with bounds checks.
//! - [`limits`]: every bound on a variable-length field.
//! - [`sig`]: signing domains, `Signed` envelopes, strict Ed25519 verification.
//! - [`trust_root`]: the TrustRoot and its threshold rotation.
//! - [`tier`]: tiers, roles and the device-enforced tier floor.
//! - [`manifest`]: manifest bodies (firmware, config, decommission).
//! - [`delivery`]: approvals and the device-bound bundle.
//! - [`quorum`]: the approval check shared by device and controller.
//! - [`merkle`]: RFC 6962 cohort trees and inclusion proofs.
//! - [`report`], [`command`], [`chunk`]: the other device messages.
//! - [`topics`]: MQTT topic names.
//! - [`refusal`]: why a message is refused, with stable wire codes.
//! - [`build`] (`alloc`): encoding and signing helpers for the controller and tests.
#![cfg_attr(not(test), no_std)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod bytes;
pub mod chunk;
pub mod codec;
pub mod command;
pub mod delivery;
mod device_id;
pub mod limits;
pub mod manifest;
pub mod merkle;
pub mod quorum;
pub mod refusal;
pub mod report;
pub mod sig;
pub mod tier;
pub mod topics;
pub mod trust_root;

#[cfg(feature = "alloc")]
pub mod build;

pub use bytes::{Bytes, Digest, PublicKey, Signature};
pub use chunk::{Chunk, ChunkRequest};
pub use codec::{decode, Bounded};
pub use command::{Command, CommandAction};
pub use delivery::{Approval, ApprovalStatement, Decision, Delivery};
pub use device_id::check_device_id;
pub use manifest::{Action, Cohort, Config, Firmware, Manifest, Rollback, Version};
pub use merkle::InclusionProof;
pub use quorum::check_quorum;
pub use refusal::Refusal;
pub use report::{Event, Report, RevertReason, Status};
pub use sig::{Domain, Signed};
pub use tier::{BreakGlassRule, Requirement, Roles, SizeFloor, Tier, TierRules};
pub use trust_root::{Approver, RootSignature, SignedTrustRoot, TrustRoot};

/// The manifest digest approvers sign: `SHA-256("airlock/v1/manifest\0" || body)`.
pub fn manifest_digest(body: &[u8]) -> Digest {
    sig::digest(Domain::Manifest, body)
}
