//! Broker settings, with defaults sized for Airlock's traffic (4 KiB chunks, QoS 1 deliveries).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the broker spreads connections over processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Processes {
    /// Everything in this process (the default).
    Single,
    /// One process if `expected_connections` fit under this process's open-file limit (after
    /// raising it), otherwise as many workers as needed to hold them.
    Auto {
        /// The fleet size to plan for (enrolled devices, say).
        expected_connections: u64,
        /// How to start a worker.
        worker: WorkerCommand,
    },
    /// Exactly `count` worker processes hold the device connections.
    Workers {
        /// Number of workers (at least 1).
        count: usize,
        /// How to start a worker.
        worker: WorkerCommand,
    },
}

/// How to start a worker process: a program (usually this same binary) whose entry point calls
/// [`crate::run_worker`]. The broker passes the worker its settings in the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerCommand {
    /// The executable (`std::env::current_exe()` for the `airlock` binary).
    pub program: PathBuf,
    /// Its arguments (a hidden subcommand, say `["broker-worker"]`).
    pub args: Vec<OsString>,
    /// If set, the worker sets its own soft open-file limit to this instead of raising it to the
    /// hard limit (tests use it to show a fleet larger than one process may hold).
    pub fd_limit: Option<u64>,
}

/// Broker settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Addresses to listen on (port 0: any free port; see [`crate::Broker::local_addrs`]).
    pub listen: Vec<SocketAddr>,
    /// Largest packet accepted from a client, in bytes.
    pub max_packet_size: usize,
    /// QoS 0 messages queued per connection; beyond this new ones are dropped (counted).
    pub max_queued_qos0: usize,
    /// QoS 1 messages queued per session, online or offline; beyond this the oldest is dropped.
    pub max_queued_qos1: usize,
    /// QoS 1 messages sent and not yet acknowledged, per connection.
    pub max_inflight: usize,
    /// Time a client has to send its CONNECT (and the login hook to answer).
    pub connect_timeout: Duration,
    /// Connections in their handshake at once; the accept loop waits beyond this.
    pub max_handshakes: usize,
    /// SO_SNDBUF of every accepted socket (`None`: the kernel's autotuning, up to 4 MiB each).
    /// Bounded by default so that 100,000 connections cannot pin the kernel's TCP memory
    /// (`net.ipv4.tcp_mem`, 2.3 GB here): past it the kernel drops segments and every stalled
    /// connection waits for retransmission timeouts. The broker's own queues hold the rest, as
    /// shared buffers, and drop QoS 0 when full. 64 KiB is what `docs/benchmarks.md` measured
    /// (the kernel doubles it); smaller values trade per-device throughput on long round trips
    /// for kernel memory.
    pub socket_send_buffer: Option<usize>,
    /// Single process or worker processes.
    pub processes: Processes,
}

impl BrokerConfig {
    /// Defaults on `listen`.
    pub fn new(listen: SocketAddr) -> BrokerConfig {
        BrokerConfig {
            listen: vec![listen],
            max_packet_size: 16 * 1024,
            max_queued_qos0: 256,
            max_queued_qos1: 1000,
            max_inflight: 32,
            connect_timeout: Duration::from_secs(10),
            max_handshakes: 4096,
            socket_send_buffer: Some(64 * 1024),
            processes: Processes::Single,
        }
    }
}
