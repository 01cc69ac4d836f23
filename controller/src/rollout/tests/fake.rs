//! A transport that delivers synchronously to in-process virtual devices (the real agent core on
//! in-memory flash) and queues their reports for the engine, recording every send.

use crate::rollout::{DeviceReport, Transport, TransportError};
use crate::workflow::Clock;
use airlock_agent_core::harness::{Served, VirtualDevice};
use airlock_agent_core::{Input, Output};
use airlock_proto::{Command, CommandAction, Delivery, Digest, Event};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

/// Everything the transport was asked to do.
#[derive(Debug, Default)]
pub struct Log {
    /// Every delivery handed over, in order.
    pub deliveries: Vec<String>,
    /// Deliveries whose publish never finished (the controller was killed during it).
    pub lost: Vec<String>,
    /// Deliveries refused with a transport error (never left).
    pub refused: Vec<String>,
    /// Every command: device, sequence, action.
    pub commands: Vec<(String, u64, CommandAction)>,
}

/// The virtual fleet behind the transport, and the knobs tests turn.
#[derive(Debug, Default)]
pub struct Fleet {
    pub devices: BTreeMap<String, VirtualDevice>,
    pub log: Log,
    /// Reports waiting for the engine.
    pub reports: VecDeque<DeviceReport>,
    counters: BTreeMap<String, u64>,
    /// Whether new images pass their health check.
    pub unhealthy: bool,
    /// Devices whose deliveries are dropped (they never report).
    pub silent: BTreeSet<String>,
    /// The publish of the delivery with this index (counting every attempt) never completes.
    pub hang_at: Option<usize>,
    /// The next this many publishes fail with a transport error.
    pub fail_next: usize,
}

/// The fake transport; clones share one fleet.
#[derive(Clone, Debug)]
pub struct FakeTransport {
    fleet: Arc<Mutex<Fleet>>,
    clock: Clock,
    image: Arc<Vec<u8>>,
}

impl FakeTransport {
    pub fn new(fleet: Fleet, clock: Clock, image: Arc<Vec<u8>>) -> Self {
        FakeTransport { fleet: Arc::new(Mutex::new(fleet)), clock, image }
    }

    pub fn fleet(&self) -> MutexGuard<'_, Fleet> {
        self.fleet.lock().unwrap()
    }

    fn now(&self) -> u64 {
        (self.clock.now_ms() / 1000) as u64
    }

    fn served(&self) -> Served<'_> {
        use sha2::Digest as _;
        let digest = Digest::from(<[u8; 32]>::from(sha2::Sha256::digest(self.image.as_slice())));
        Served { bytes: &self.image, digest, chunk: 4096 }
    }

    /// Takes the queued reports.
    pub fn take_reports(&self) -> Vec<DeviceReport> {
        self.fleet().reports.drain(..).collect()
    }
}

impl Fleet {
    fn report(&mut self, device: &str, now: u64, event: Event) {
        let counter = self.counters.entry(device.to_string()).or_insert(1 << 32);
        *counter += 1;
        self.reports.push_back(DeviceReport { device: device.to_string(), counter: *counter, at: now, event });
    }

    fn deliver(&mut self, device: &str, bytes: &[u8], now: u64, image: Served<'_>) {
        self.log.deliveries.push(device.to_string());
        if self.silent.contains(device) {
            return;
        }
        let healthy = !self.unhealthy;
        let Some(d) = self.devices.get_mut(device) else { return };
        let events = match d.deliver(now, bytes, image, healthy) {
            Ok(events) => events,
            Err(airlock_agent_core::Error::Refused(reason)) => {
                let delivery: Delivery<'_> = airlock_proto::decode(bytes).unwrap();
                vec![Event::Refused { manifest: Some(airlock_proto::manifest_digest(delivery.manifest.body)), reason }]
            }
            Err(e) => panic!("{e}"),
        };
        for e in events {
            self.report(device, now, e);
        }
    }

    fn command(&mut self, device: &str, bytes: &[u8], now: u64) {
        let signed = airlock_proto::sig::decode_signed(bytes, airlock_proto::limits::MAX_COMMAND).unwrap();
        let cmd: Command<'_> = airlock_proto::decode(signed.body).unwrap();
        assert_eq!(cmd.device, device, "a command for one device published to another");
        self.log.commands.push((device.to_string(), cmd.sequence, cmd.action));
        let Some(d) = self.devices.get_mut(device) else { return };
        let mut events = Vec::new();
        let mut inputs = VecDeque::from([Input::Command(bytes)]);
        while let Some(input) = inputs.pop_front() {
            match d.agent().handle(now, input) {
                Ok(outputs) => {
                    for o in outputs {
                        match o {
                            Output::Report(e) => events.push(e),
                            Output::Reboot { .. } => inputs.push_back(Input::Boot),
                            Output::Run { testing: true, .. } => inputs.push_back(Input::Health(true)),
                            _ => {}
                        }
                    }
                }
                Err(airlock_agent_core::Error::Refused(reason)) => {
                    events.push(Event::Refused { manifest: None, reason })
                }
                Err(e) => panic!("{device}: {e:?}"),
            }
        }
        for e in events {
            self.report(device, now, e);
        }
    }
}

impl Transport for FakeTransport {
    fn send_delivery(
        &self,
        device: &str,
        delivery: Vec<u8>,
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        let this = self.clone();
        let device = device.to_string();
        async move {
            let hang = {
                let mut f = this.fleet();
                if f.fail_next > 0 {
                    f.fail_next -= 1;
                    f.log.refused.push(device);
                    return Err(TransportError("broker unreachable".into()));
                }
                let attempt = f.log.deliveries.len() + f.log.lost.len();
                if f.hang_at == Some(attempt) {
                    f.hang_at = None;
                    f.log.lost.push(device);
                    true
                } else {
                    f.deliver(&device, &delivery, this.now(), this.served());
                    false
                }
            };
            if hang {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    }

    fn send_command(&self, device: &str, command: Vec<u8>) -> impl Future<Output = Result<(), TransportError>> + Send {
        let this = self.clone();
        let device = device.to_string();
        async move {
            this.fleet().command(&device, &command, this.now());
            Ok(())
        }
    }
}
