//! [`Broker`]: start, link, metrics, shutdown.

use crate::auth::Authenticator;
use crate::cluster::{Dispatch, WorkerSettings};
use crate::config::{BrokerConfig, Processes};
use crate::error::BrokerError;
use crate::limits::{self, FdLimit};
use crate::link::{self, LinkRx, LinkTx};
use crate::listener::{self, Ctx};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::router::Router;
use crate::session::QueueLimits;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// A running broker. Dropping it stops accepting and closes every connection (and stops the
/// workers); [`Broker::shutdown`] does the same and waits for it.
pub struct Broker {
    ctx: Arc<Ctx>,
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    accept: Vec<JoinHandle<()>>,
    dispatch: Option<Arc<Dispatch>>,
    fd_limit: FdLimit,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("addrs", &self.addrs)
            .field("workers", &self.dispatch.as_ref().map_or(0, |d| d.len()))
            .field("fd_limit", &self.fd_limit)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Raises the open-file limit, starts workers if [`BrokerConfig::processes`] asks for them,
    /// binds every listen address and starts accepting. Logins go through `auth`.
    pub async fn start(config: BrokerConfig, auth: Arc<dyn Authenticator>) -> Result<Broker, BrokerError> {
        if config.listen.is_empty() {
            return Err(BrokerError::NoListener);
        }
        if config.max_inflight == 0 || config.max_queued_qos1 == 0 || config.max_handshakes == 0 {
            return Err(BrokerError::Config(
                "max_inflight, max_queued_qos1 and max_handshakes must be at least 1".into(),
            ));
        }
        let fd_limit = limits::raise_fd_limit()?;
        let metrics = Arc::new(Metrics::default());
        let queue =
            QueueLimits { qos0: config.max_queued_qos0, qos1: config.max_queued_qos1, inflight: config.max_inflight };
        let router = Arc::new(Router::new(metrics, queue));
        let workers = match &config.processes {
            Processes::Single => None,
            Processes::Auto { expected_connections, worker } => {
                let per_process = match worker.fd_limit {
                    Some(n) => FdLimit { soft: n, hard: n }.connections(),
                    None => fd_limit.connections(),
                }
                .max(1);
                if *expected_connections <= fd_limit.connections() {
                    None
                } else {
                    Some((expected_connections.div_ceil(per_process) as usize, worker))
                }
            }
            Processes::Workers { count, worker } => Some(((*count).max(1), worker)),
        };
        let dispatch = match workers {
            None => None,
            Some((count, command)) => {
                let template = WorkerSettings {
                    index: 0,
                    secret: [0; 16],
                    max_packet: config.max_packet_size,
                    qos0: queue.qos0,
                    qos1: queue.qos1,
                    inflight: queue.inflight,
                    fd_limit: command.fd_limit,
                    dir: Default::default(),
                };
                Some(Dispatch::start(count, command, router.clone(), template).await?)
            }
        };
        let (stop, stopped) = watch::channel(false);
        let ctx = Arc::new(Ctx {
            router,
            auth,
            max_packet: config.max_packet_size,
            connect_timeout: config.connect_timeout,
            handshakes: Arc::new(Semaphore::new(config.max_handshakes)),
            send_buffer: config.socket_send_buffer,
            dispatch: dispatch.clone(),
            shutdown: stopped,
        });
        let mut addrs = Vec::with_capacity(config.listen.len());
        let mut accept = Vec::with_capacity(config.listen.len());
        for addr in &config.listen {
            let listener = bind(*addr)?;
            let local = listener.local_addr().map_err(|source| BrokerError::Listen { addr: *addr, source })?;
            addrs.push(local);
            accept.push(tokio::spawn(listener::accept_loop(listener, ctx.clone())));
        }
        tracing::info!(addrs = ?addrs, open_files = fd_limit.soft, hard_limit = fd_limit.hard,
            connections_per_process = fd_limit.connections(),
            workers = dispatch.as_ref().map_or(0, |d| d.len()),
            "MQTT broker listening");
        Ok(Broker { ctx, addrs, stop, accept, dispatch, fd_limit })
    }

    /// The addresses it listens on (with the ports port 0 resolved to).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// This process's open-file limit after raising it.
    pub fn fd_limit(&self) -> FdLimit {
        self.fd_limit
    }

    /// Worker processes (0: single-process mode).
    pub fn workers(&self) -> usize {
        self.dispatch.as_ref().map_or(0, |d| d.len())
    }

    /// The worker processes' ids (empty in single-process mode), for measuring them.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.dispatch.as_ref().map_or_else(Vec::new, |d| d.pids())
    }

    /// Sessions held in this process and their subscriptions (the main process only, in
    /// multi-process mode).
    pub fn table_size(&self) -> (usize, usize) {
        self.ctx.router.counts()
    }

    /// An in-process link with a channel of `capacity` messages ([`crate::link`]).
    pub fn link(&self, name: &str, capacity: usize) -> (LinkTx, LinkRx) {
        link::new(self.ctx.router.clone(), name, capacity)
    }

    /// This process's counters plus the workers' latest (sent once a second).
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut m = self.ctx.router.metrics.snapshot();
        if let Some(d) = &self.dispatch {
            m.add(&d.worker_metrics());
        }
        m
    }

    /// Drops `client_id`'s session (a decommissioned device, say) and closes its connection.
    pub async fn remove_client(&self, client_id: &str) {
        self.ctx.router.remove_client(client_id);
        if let Some(d) = &self.dispatch {
            d.remove_client(client_id).await;
        }
    }

    /// Serves a stream accepted elsewhere (a TLS stream from tokio-rustls, say), in this
    /// process, with the same handshake, login hook and ACL as the listeners.
    pub fn serve_stream<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        tokio::spawn(listener::handle_stream(stream, self.ctx.clone()));
    }

    /// Stops accepting, closes every connection, stops the workers.
    pub async fn shutdown(mut self) {
        self.stop_now();
        for a in self.accept.drain(..) {
            let _ = a.await;
        }
        if let Some(d) = self.dispatch.take() {
            d.stop().await;
        }
    }

    fn stop_now(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop_now();
        for a in &self.accept {
            a.abort();
        }
    }
}

/// Binds with a deep backlog (a fleet reconnecting at once) and SO_REUSEADDR.
fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, BrokerError> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
        .map_err(|source| BrokerError::Listen { addr, source })?;
    socket.set_reuseaddr(true).map_err(|source| BrokerError::Listen { addr, source })?;
    socket.bind(addr).map_err(|source| BrokerError::Listen { addr, source })?;
    socket.listen(4096).map_err(|source| BrokerError::Listen { addr, source })
}
