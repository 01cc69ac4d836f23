//! Multi-process mode: device connections spread over worker processes of the same binary, for
//! fleets larger than one process's open-file limit (20,000 here, not raisable).
//!
//! ```text
//!            devices ──TCP──▶ main process: accept, CONNECT, login hook (the controller's DB)
//!                                 │ device socket + its CONNECT state, as SCM_RIGHTS
//!                                 ▼ (worker = FNV-1a(client id) mod N: a device's session
//!   worker 0 … worker N-1 ◀───────┘  always lives in the same worker)
//!   sessions, ACL, queues,  ◀─ Publish frames: unicast to the owning worker only,
//!   fan-out to local subs        broadcast (airlock/v1/i/...) once to each worker
//!          │
//!          └─ device publishes ─▶ Publish frames to main ─▶ the controller's link
//! ```
//!
//! The main process keeps the controller (its link, or a controller login over TCP) and hands
//! every device socket away after the login, so it holds a device's descriptor only during the
//! handshake. Workers are started with [`crate::WorkerCommand`] (the `airlock` binary's hidden
//! subcommand calls [`crate::run_worker`]); they connect back over Unix sockets in a private
//! directory (mode 0700) and prove themselves with a random secret passed in their environment.
//! A worker whose control stream ends (the main process exited) closes its connections and
//! exits; the main process kills its workers when the broker stops.
//!
//! # Layout
//! - this file: [`Dispatch`], the main process's side (start workers, hand off, forward).
//! - `wire`: frames, handoff datagrams, SCM_RIGHTS.
//! - `worker`: the worker process.

pub(crate) mod wire;
pub(crate) mod worker;

use crate::acl;
use crate::config::WorkerCommand;
use crate::connection::Client;
use crate::error::BrokerError;
use crate::link::Message;
use crate::metrics::MetricsSnapshot;
use crate::router::{Forward, Origin, Router};
use bytes::BytesMut;
use parking_lot::Mutex;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixDatagram, UnixListener};
use tokio::sync::mpsc;
use wire::{Frame, Handoff};

/// The environment variable that carries a worker's settings.
pub const WORKER_ENV: &str = "AIRLOCK_BROKER_WORKER";
/// Frames waiting to be written to one worker; a full queue makes publishers wait.
const FRAME_QUEUE: usize = 4096;
/// How long workers have to start and report in.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The worker that owns `client_id`: FNV-1a, stable across processes and builds.
pub(crate) fn owner(client_id: &str, workers: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in client_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % workers.max(1) as u64) as usize
}

struct Worker {
    frames: mpsc::Sender<Frame>,
    sockets: UnixDatagram,
}

/// The main process's side of multi-process mode.
pub(crate) struct Dispatch {
    workers: Vec<Worker>,
    router: Arc<Router>,
    metrics: Arc<Mutex<Vec<MetricsSnapshot>>>,
    children: Mutex<Vec<tokio::process::Child>>,
    dir: PathBuf,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch").field("workers", &self.workers.len()).field("dir", &self.dir).finish()
    }
}

/// Settings a worker needs, passed in [`WORKER_ENV`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkerSettings {
    pub(crate) index: usize,
    pub(crate) secret: [u8; 16],
    pub(crate) max_packet: usize,
    pub(crate) qos0: usize,
    pub(crate) qos1: usize,
    pub(crate) inflight: usize,
    pub(crate) fd_limit: Option<u64>,
    pub(crate) dir: PathBuf,
}

impl WorkerSettings {
    pub(crate) fn to_env(&self) -> String {
        let secret: String = self.secret.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "1 {} {secret} {} {} {} {} {} {}",
            self.index,
            self.max_packet,
            self.qos0,
            self.qos1,
            self.inflight,
            self.fd_limit.unwrap_or(0),
            self.dir.display()
        )
    }

    pub(crate) fn from_env(s: &str) -> Result<WorkerSettings, BrokerError> {
        let bad = || BrokerError::NotAWorker(format!("malformed {WORKER_ENV}"));
        let parts: Vec<&str> = s.splitn(9, ' ').collect();
        let [version, index, secret, max_packet, qos0, qos1, inflight, fd, dir] = parts[..] else { return Err(bad()) };
        if version != "1" {
            return Err(bad());
        }
        let num = |v: &str| v.parse::<u64>().map_err(|_| bad());
        let fd = num(fd)?;
        Ok(WorkerSettings {
            index: num(index)? as usize,
            secret: parse_secret(secret).ok_or_else(bad)?,
            max_packet: num(max_packet)? as usize,
            qos0: num(qos0)? as usize,
            qos1: num(qos1)? as usize,
            inflight: num(inflight)? as usize,
            fd_limit: (fd > 0).then_some(fd),
            dir: PathBuf::from(dir),
        })
    }
}

fn parse_secret(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn control_path(dir: &Path) -> PathBuf {
    dir.join("control")
}

pub(crate) fn socket_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("worker-{index}"))
}

/// A private directory for the Unix sockets, readable by this user only.
fn private_dir() -> Result<PathBuf, BrokerError> {
    use std::os::unix::fs::DirBuilderExt;
    let mut r = [0u8; 8];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut r)).map_err(BrokerError::Control)?;
    let dir =
        std::env::temp_dir().join(format!("airlock-broker-{}-{:016x}", std::process::id(), u64::from_be_bytes(r)));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(BrokerError::Control)?;
    Ok(dir)
}

impl Dispatch {
    /// Starts `count` workers and waits until each has reported in.
    pub(crate) async fn start(
        count: usize,
        command: &WorkerCommand,
        router: Arc<Router>,
        template: WorkerSettings,
    ) -> Result<Arc<Dispatch>, BrokerError> {
        let dir = private_dir()?;
        let control = UnixListener::bind(control_path(&dir)).map_err(BrokerError::Control)?;
        let mut secret = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut secret))
            .map_err(BrokerError::Control)?;
        let mut children = Vec::with_capacity(count);
        for index in 0..count {
            let settings = WorkerSettings { index, secret, dir: dir.clone(), ..template.clone() };
            let child = tokio::process::Command::new(&command.program)
                .args(&command.args)
                .env(WORKER_ENV, settings.to_env())
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| BrokerError::Worker {
                    index,
                    detail: format!("cannot start {}: {e}", command.program.display()),
                })?;
            children.push(child);
        }
        let mut streams: Vec<Option<tokio::net::UnixStream>> = (0..count).map(|_| None).collect();
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while streams.iter().any(Option::is_none) {
            let (mut s, _) = tokio::time::timeout_at(deadline, control.accept())
                .await
                .map_err(|_| BrokerError::Worker {
                    index: streams.iter().position(Option::is_none).unwrap_or(0),
                    detail: "did not report in".into(),
                })?
                .map_err(BrokerError::Control)?;
            match tokio::time::timeout_at(deadline, wire::read_frame(&mut s)).await {
                Ok(Ok(Some(Frame::Hello { index, secret: theirs })))
                    if theirs == secret && (index as usize) < count =>
                {
                    streams[index as usize] = Some(s);
                }
                _ => tracing::warn!("a process connected to the broker's control socket without the secret"),
            }
        }
        let metrics = Arc::new(Mutex::new(vec![MetricsSnapshot::default(); count]));
        let mut workers = Vec::with_capacity(count);
        for (index, stream) in streams.into_iter().enumerate() {
            let Some(stream) = stream else { continue };
            let sockets = UnixDatagram::unbound().map_err(BrokerError::Control)?;
            sockets
                .connect(socket_path(&dir, index))
                .map_err(|e| BrokerError::Worker { index, detail: e.to_string() })?;
            let (rd, wr) = stream.into_split();
            let (tx, rx) = mpsc::channel(FRAME_QUEUE);
            tokio::spawn(write_frames(wr, rx));
            tokio::spawn(read_from_worker(rd, index, router.clone(), metrics.clone()));
            workers.push(Worker { frames: tx, sockets });
        }
        let senders: Vec<mpsc::Sender<Frame>> = workers.iter().map(|w| w.frames.clone()).collect();
        router.set_forward(Arc::new(ToWorkers { workers: senders }));
        tracing::info!(workers = count, "broker worker processes started");
        Ok(Arc::new(Dispatch { workers, router, metrics, children: Mutex::new(children), dir }))
    }

    /// Number of workers.
    pub(crate) fn len(&self) -> usize {
        self.workers.len()
    }

    /// Hands an authenticated device's socket to the worker that owns its client id. The main
    /// process's copy of the socket closes when this returns.
    pub(crate) async fn hand_off(&self, stream: TcpStream, client: Client, leftover: BytesMut) {
        let index = owner(&client.client_id, self.workers.len());
        let Some(worker) = self.workers.get(index) else { return };
        let handoff = Handoff {
            client_id: client.client_id,
            keep_alive: client.keep_alive,
            clean_session: client.clean_session,
            leftover: leftover.freeze(),
        };
        match wire::send_with_fd(&worker.sockets, &handoff.encode(), &stream).await {
            Ok(()) => {
                self.router.metrics.handoffs.fetch_add(1, Relaxed);
            }
            Err(e) => {
                tracing::warn!(worker = index, client = %handoff.client_id, error = %e, "handing a connection to its worker failed");
                let mut stream = stream;
                let _ = stream.shutdown().await;
            }
        }
    }

    /// Asks the owning worker to drop `client_id`'s session.
    pub(crate) async fn remove_client(&self, client_id: &str) {
        if let Some(w) = self.workers.get(owner(client_id, self.workers.len())) {
            let _ = w.frames.send(Frame::Remove(client_id.to_string())).await;
        }
    }

    /// The workers' latest metrics, added up.
    pub(crate) fn worker_metrics(&self) -> MetricsSnapshot {
        let mut sum = MetricsSnapshot::default();
        for m in self.metrics.lock().iter() {
            sum.add(m);
        }
        sum
    }

    /// The workers' process ids (for measuring them).
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.children.lock().iter().filter_map(tokio::process::Child::id).collect()
    }

    /// Stops every worker and removes the socket directory.
    pub(crate) async fn stop(&self) {
        let children: Vec<_> = std::mem::take(&mut *self.children.lock());
        for mut c in children {
            let _ = c.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Dispatch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Main → workers: device topics to the device's worker, broadcasts to every worker.
struct ToWorkers {
    workers: Vec<mpsc::Sender<Frame>>,
}

impl Forward for ToWorkers {
    fn forward<'a>(&'a self, msg: &'a Message) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            if let Some(device) = acl::addressed_device(&msg.topic) {
                let Some(w) = self.workers.get(owner(device, self.workers.len())) else { return false };
                return w.send(Frame::Publish(msg.clone())).await.is_ok();
            }
            if msg.topic.starts_with(acl::BROADCAST_PREFIX) {
                let mut any = false;
                for w in &self.workers {
                    any |= w.send(Frame::Publish(msg.clone())).await.is_ok();
                }
                return any;
            }
            false
        })
    }
}

/// Writes frames from `rx`, batching whatever is waiting into one write.
pub(crate) async fn write_frames<W: tokio::io::AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Frame>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(frame) = rx.recv().await {
        frame.encode(&mut buf);
        while buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(f) => f.encode(&mut buf),
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
    }
}

async fn read_from_worker(
    mut rd: tokio::net::unix::OwnedReadHalf,
    index: usize,
    router: Arc<Router>,
    metrics: Arc<Mutex<Vec<MetricsSnapshot>>>,
) {
    loop {
        match wire::read_frame(&mut rd).await {
            Ok(Some(Frame::Publish(m))) => {
                router.publish(m, Origin::Remote).await;
            }
            Ok(Some(Frame::Metrics(s))) => {
                if let Some(slot) = metrics.lock().get_mut(index) {
                    *slot = s;
                }
            }
            Ok(Some(other)) => tracing::warn!(worker = index, frame = ?other, "unexpected frame from a worker"),
            Ok(None) => {
                tracing::error!(worker = index, "broker worker exited: its devices cannot connect until restart");
                return;
            }
            Err(e) => {
                tracing::error!(worker = index, error = %e, "broker worker's control stream failed");
                return;
            }
        }
    }
}
