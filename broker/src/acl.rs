//! Per-device topic ACLs: what each [`Principal`] may publish and subscribe to.
//!
//! | principal | publish | subscribe |
//! |---|---|---|
//! | controller | any valid topic | any valid filter |
//! | device `{id}` | `airlock/v1/d/{id}/report`, `airlock/v1/d/{id}/chunk/req` | `airlock/v1/d/{id}/{manifest,trust,chunk,cmd}` (exact), `airlock/v1/i/...` (any filter below it) |
//!
//! A device filter with a wildcard outside the broadcast subtree is refused even when it would
//! only match the device's own topics (`airlock/v1/d/{id}/+` would also match `report`, which
//! the device may only write). Refused subscriptions get a SUBACK failure; refused publishes
//! are dropped and counted. It fails closed: anything not listed is refused.

use crate::auth::Principal;
use crate::topic::{self, TopicError};
use airlock_proto::topics::{self as t, Kind};

/// Prefix of the broadcast topics `airlock/v1/i/{image sha256 hex}`: controller → every device
/// downloading that image, read-only for devices.
pub const BROADCAST_PREFIX: &str = "airlock/v1/i/";

/// Why the ACL refused a publish or subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AclRefusal {
    /// Not a valid topic name or filter.
    #[error("invalid topic: {0}")]
    Invalid(#[from] TopicError),
    /// Another device's topic.
    #[error("another device's topic")]
    OtherDevice,
    /// The device's own topic, but the other direction (publishing on `manifest`, reading
    /// `report`, ...).
    #[error("the device's own topic, in the direction it may not use")]
    WrongDirection,
    /// Publishing on a broadcast topic, which only the controller may do.
    #[error("broadcast topics are read-only for devices")]
    BroadcastReadOnly,
    /// A wildcard filter outside the broadcast subtree.
    #[error("devices may use wildcards only under {BROADCAST_PREFIX}")]
    Wildcard,
    /// Outside the topics a device may use at all.
    #[error("outside the device topics")]
    OutsideNamespace,
}

impl AclRefusal {
    /// Stable name, for counters and logs.
    pub fn name(&self) -> &'static str {
        match self {
            AclRefusal::Invalid(_) => "invalid_topic",
            AclRefusal::OtherDevice => "other_device",
            AclRefusal::WrongDirection => "wrong_direction",
            AclRefusal::BroadcastReadOnly => "broadcast_read_only",
            AclRefusal::Wildcard => "wildcard",
            AclRefusal::OutsideNamespace => "outside_namespace",
        }
    }
}

/// Whether `who` may publish on `topic`.
pub fn check_publish(who: &Principal, topic: &str) -> Result<(), AclRefusal> {
    topic::check_name(topic)?;
    let Principal::Device(id) = who else { return Ok(()) };
    if topic.starts_with(BROADCAST_PREFIX) {
        return Err(AclRefusal::BroadcastReadOnly);
    }
    let (device, kind) = device_topic(topic)?;
    if device != &**id {
        return Err(AclRefusal::OtherDevice);
    }
    match kind {
        Kind::Report | Kind::ChunkRequest => Ok(()),
        Kind::Manifest | Kind::Trust | Kind::Chunk | Kind::Command => Err(AclRefusal::WrongDirection),
    }
}

/// Whether `who` may subscribe to `filter`.
pub fn check_subscribe(who: &Principal, filter: &str) -> Result<(), AclRefusal> {
    topic::check_filter(filter)?;
    let Principal::Device(id) = who else { return Ok(()) };
    if let Some(rest) = filter.strip_prefix(BROADCAST_PREFIX) {
        // Anything below the broadcast prefix (a digest, `+` or `#`) reads broadcasts only.
        return if rest.is_empty() { Err(AclRefusal::Invalid(TopicError::Empty)) } else { Ok(()) };
    }
    if topic::is_wildcard(filter) {
        return Err(AclRefusal::Wildcard);
    }
    let (device, kind) = device_topic(filter)?;
    if device != &**id {
        return Err(AclRefusal::OtherDevice);
    }
    match kind {
        Kind::Manifest | Kind::Trust | Kind::Chunk | Kind::Command => Ok(()),
        Kind::Report | Kind::ChunkRequest => Err(AclRefusal::WrongDirection),
    }
}

/// `airlock/v1/d/{device}/{kind}`; anything else is outside what devices may touch.
fn device_topic(topic: &str) -> Result<(&str, Kind), AclRefusal> {
    t::parse(topic).ok_or(AclRefusal::OutsideNamespace)
}

/// The device a device topic names (`airlock/v1/d/{id}/...`), for routing to the process that
/// holds that device's session.
pub(crate) fn addressed_device(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix(t::PREFIX)?;
    rest.split_once('/').map(|(device, _)| device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(id: &str) -> Principal {
        Principal::Device(id.into())
    }

    #[test]
    fn a_device_publishes_only_its_reports_and_chunk_requests() {
        let d = dev("gw-1");
        assert_eq!(check_publish(&d, "airlock/v1/d/gw-1/report"), Ok(()));
        assert_eq!(check_publish(&d, "airlock/v1/d/gw-1/chunk/req"), Ok(()));
        assert_eq!(check_publish(&d, "airlock/v1/d/gw-2/report"), Err(AclRefusal::OtherDevice));
        assert_eq!(check_publish(&d, "airlock/v1/d/gw-1/manifest"), Err(AclRefusal::WrongDirection));
        assert_eq!(check_publish(&d, "airlock/v1/d/gw-1/cmd"), Err(AclRefusal::WrongDirection));
        assert_eq!(check_publish(&d, "airlock/v1/i/00ff"), Err(AclRefusal::BroadcastReadOnly));
        assert_eq!(check_publish(&d, "elsewhere/x"), Err(AclRefusal::OutsideNamespace));
        assert_eq!(check_publish(&d, "airlock/v1/d/gw-1/report/x"), Err(AclRefusal::OutsideNamespace));
        assert_eq!(check_publish(&d, "airlock/v1/d/+/report"), Err(AclRefusal::Invalid(TopicError::WildcardInName)));
    }

    #[test]
    fn a_device_subscribes_only_to_its_own_inbound_topics_and_broadcasts() {
        let d = dev("gw-1");
        for kind in ["manifest", "trust", "chunk", "cmd"] {
            assert_eq!(check_subscribe(&d, &format!("airlock/v1/d/gw-1/{kind}")), Ok(()), "{kind}");
        }
        assert_eq!(check_subscribe(&d, "airlock/v1/i/0a1b"), Ok(()));
        assert_eq!(check_subscribe(&d, "airlock/v1/i/+"), Ok(()));
        assert_eq!(check_subscribe(&d, "airlock/v1/i/#"), Ok(()));
        assert_eq!(check_subscribe(&d, "airlock/v1/d/gw-2/manifest"), Err(AclRefusal::OtherDevice));
        assert_eq!(check_subscribe(&d, "airlock/v1/d/gw-1/report"), Err(AclRefusal::WrongDirection));
        assert_eq!(check_subscribe(&d, "airlock/v1/d/gw-1/chunk/req"), Err(AclRefusal::WrongDirection));
        assert_eq!(check_subscribe(&d, "airlock/v1/d/gw-1/+"), Err(AclRefusal::Wildcard));
        assert_eq!(check_subscribe(&d, "airlock/v1/d/+/manifest"), Err(AclRefusal::Wildcard));
        assert_eq!(check_subscribe(&d, "#"), Err(AclRefusal::Wildcard));
        assert_eq!(check_subscribe(&d, "other/topic"), Err(AclRefusal::OutsideNamespace));
        assert_eq!(check_subscribe(&d, "airlock/v1/i/"), Err(AclRefusal::Invalid(TopicError::Empty)));
    }

    #[test]
    fn the_controller_may_use_every_valid_topic_but_no_malformed_one() {
        let c = Principal::Controller;
        assert_eq!(check_subscribe(&c, "airlock/v1/d/+/report"), Ok(()));
        assert_eq!(check_publish(&c, "airlock/v1/i/00ff"), Ok(()));
        assert_eq!(check_publish(&c, "airlock/v1/d/gw-1/manifest"), Ok(()));
        assert_eq!(check_subscribe(&c, "a/#/b"), Err(AclRefusal::Invalid(TopicError::BadWildcard)));
    }

    #[test]
    fn device_topics_name_the_device_they_are_routed_to() {
        assert_eq!(addressed_device("airlock/v1/d/gw-1/manifest"), Some("gw-1"));
        assert_eq!(addressed_device("airlock/v1/i/00"), None);
    }
}
