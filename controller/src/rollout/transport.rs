//! The seam between the rollout engine and whatever carries messages to devices (MQTT in
//! production, an in-memory fake in the engine's own tests).

use std::future::Future;

/// Why a message could not be handed to the transport.
#[derive(Debug, thiserror::Error)]
#[error("transport: {0}")]
pub struct TransportError(pub String);

/// Sends device-bound messages. Implementations publish with at-least-once delivery (MQTT QoS 1
/// to the device's own topic, persistent sessions), so a device offline now receives it when it
/// reconnects; devices make repeats harmless (a replayed delivery or command is refused).
pub trait Transport: Send + Sync + 'static {
    /// Publishes an encoded [`airlock_proto::Delivery`] on `airlock/v1/d/{device}/manifest`.
    fn send_delivery(&self, device: &str, delivery: Vec<u8>)
        -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Publishes an encoded signed [`airlock_proto::Command`] on `airlock/v1/d/{device}/cmd`.
    fn send_command(&self, device: &str, command: Vec<u8>) -> impl Future<Output = Result<(), TransportError>> + Send;
}

/// A verified report from a device, as the transport hands it to the engine: the signature was
/// checked against the device's enrolled key and the counter is above the last one seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceReport {
    /// The device (the signer, not merely the topic it arrived on).
    pub device: String,
    /// The report counter.
    pub counter: u64,
    /// Device time, unix seconds.
    pub at: u64,
    /// What happened.
    pub event: airlock_proto::Event,
}
