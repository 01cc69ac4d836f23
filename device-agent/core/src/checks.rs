//! Every check a delivery must pass before the device writes a byte, in order.
//!
//! A pure function of the received bytes and the device's current state: it returns the decoded
//! manifest or the first refusal, and changes nothing.

use crate::state::{Identity, State};
use airlock_proto::{
    check_quorum, decode, manifest_digest, Action, Delivery, Digest, Domain, Manifest, Refusal, TrustRoot,
};

/// What the device knows when it judges a delivery.
pub(crate) struct Context<'c> {
    pub trust: &'c TrustRoot,
    pub identity: &'c Identity,
    pub state: &'c State,
    pub slot_size: u32,
    /// The device's largest receivable chunk.
    pub max_chunk: u32,
    /// Unix seconds.
    pub now: u64,
}

/// A delivery that passed every check.
#[derive(Debug)]
pub(crate) struct Accepted<'a> {
    pub manifest: Manifest<'a>,
    pub digest: Digest,
}

/// Runs the checks in the order of DESIGN.md's list; the first failure is the reported reason.
pub(crate) fn check_delivery<'a>(bytes: &'a [u8], cx: &Context<'_>) -> Result<Accepted<'a>, Refusal> {
    let delivery: Delivery<'a> = decode(bytes)?;
    if cx.trust.expired(cx.now) {
        return Err(Refusal::TrustRootExpired);
    }
    let body = delivery.manifest.verify_by(Domain::Manifest, &cx.trust.release_keys)?;
    let m: Manifest<'a> = decode(body)?;
    let digest = manifest_digest(body);
    if cx.now >= m.expires_at {
        return Err(Refusal::Expired);
    }
    // The same manifest as an interrupted download restarts it rather than counting as a replay.
    let resume = cx.state.downloading == Some(digest) && m.sequence == cx.state.last_sequence;
    if m.sequence <= cx.state.last_sequence && !resume {
        return Err(Refusal::Replay);
    }
    delivery.proof.verify(cx.identity.device_id.as_bytes(), m.cohort.size, &m.cohort.root)?;
    if let Action::Firmware(fw) = &m.action {
        if fw.hardware != cx.identity.hardware.as_str() {
            return Err(Refusal::WrongHardware);
        }
    }
    check_quorum(cx.trust, &m, digest, &delivery.approvals, cx.identity.min_tier)?;
    if cx.state.trial.is_some() || cx.state.config_trial.is_some() {
        return Err(Refusal::Busy);
    }
    match &m.action {
        Action::Firmware(fw) => {
            let installed = cx.state.active_image().map(|i| i.version).unwrap_or_default();
            if fw.version <= installed {
                return Err(Refusal::VersionDowngrade);
            }
            if fw.security_counter < cx.state.min_security_counter {
                return Err(Refusal::SecurityCounterDowngrade);
            }
            if fw.image_size > cx.slot_size {
                return Err(Refusal::ImageTooLarge);
            }
            if fw.chunk_size > cx.max_chunk {
                return Err(Refusal::ChunkTooLarge);
            }
        }
        Action::Config(c) => {
            let active = cx.state.config_active.and_then(|s| cx.state.configs[usize::from(s)]);
            if active.is_some_and(|a| c.version <= a.version) {
                return Err(Refusal::VersionDowngrade);
            }
        }
        Action::Decommission => {}
    }
    Ok(Accepted { manifest: m, digest })
}
