//! Accepting connections: TCP_NODELAY on every socket, a bounded number of handshakes at once,
//! and accept errors (EMFILE when the open-file limit is reached, ENFILE, ENOBUFS, ...) backed
//! off from 5 ms up to 1 s and logged at most once every 5 s with the number held back, so a
//! process out of descriptors neither spins nor floods its log (rumqttd logged ~117 MB/s).
//!
//! After the CONNECT and the login, a connection is served here, or in multi-process mode a
//! device's socket is handed to the worker that owns its client id ([`crate::cluster`]).
//! [`handle_stream`] takes any `AsyncRead + AsyncWrite` stream, so a TLS acceptor can sit in
//! front ([`crate::Broker::serve_stream`]).

use crate::auth::{self, Authenticator, Principal};
use crate::cluster::Dispatch;
use crate::connection::{self, Client, HandshakeError};
use crate::ratelog::RateLog;
use crate::router::Router;
use rumqttc::mqttbytes::v4::ConnectReturnCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// First wait after an accept error.
pub(crate) const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest wait after repeated accept errors.
pub(crate) const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

static ACCEPT_LOG: RateLog = RateLog::new(Duration::from_secs(5));
static REFUSED_LOG: RateLog = RateLog::new(Duration::from_secs(5));

/// What every connection of one process needs.
pub(crate) struct Ctx {
    pub(crate) router: Arc<Router>,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) max_packet: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) handshakes: Arc<Semaphore>,
    pub(crate) send_buffer: Option<usize>,
    pub(crate) dispatch: Option<Arc<Dispatch>>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Accepts until shutdown.
pub(crate) async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>) {
    let mut shutdown = ctx.shutdown.clone();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let permit = tokio::select! {
            p = ctx.handshakes.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, _peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                // Chunks and acks are small writes a client waits for: no Nagle delay.
                let _ = stream.set_nodelay(true);
                if let Some(size) = ctx.send_buffer {
                    let _ = rustix::net::sockopt::set_socket_send_buffer_size(&stream, size);
                }
                let ctx = ctx.clone();
                tokio::spawn(async move { handle_tcp(stream, ctx, permit).await });
            }
            Err(e) => {
                drop(permit);
                ctx.router.metrics.accept_errors.fetch_add(1, Relaxed);
                if let Some(held) = ACCEPT_LOG.allow() {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, held_back = held,
                        "accept failed (open-file limit reached?); backing off");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

async fn handle_tcp(mut stream: TcpStream, ctx: Arc<Ctx>, permit: tokio::sync::OwnedSemaphorePermit) {
    let Some(hello) = handshake(&mut stream, &ctx).await else { return };
    if let (Some(dispatch), Principal::Device(_)) = (&ctx.dispatch, &hello.client.principal) {
        dispatch.hand_off(stream, hello.client, hello.leftover).await;
        return;
    }
    drop(permit);
    connection::serve(stream, hello.leftover, hello.client, ctx.router.clone(), ctx.max_packet, ctx.shutdown.clone())
        .await;
}

/// Handshake and serve any stream (TLS, say), always in this process.
pub(crate) async fn handle_stream<S>(mut stream: S, ctx: Arc<Ctx>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let Some(hello) = handshake(&mut stream, &ctx).await else { return };
    connection::serve(stream, hello.leftover, hello.client, ctx.router.clone(), ctx.max_packet, ctx.shutdown.clone())
        .await;
}

struct Hello {
    client: Client,
    leftover: bytes::BytesMut,
}

/// Reads the CONNECT and checks the login; refuses with the right CONNACK code.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, ctx: &Ctx) -> Option<Hello> {
    let metrics = &ctx.router.metrics;
    let (connect, leftover) = match connection::read_connect(stream, ctx.max_packet, ctx.connect_timeout).await {
        Ok(c) => c,
        Err(e) => {
            metrics.handshakes_failed.fetch_add(1, Relaxed);
            if matches!(e, HandshakeError::Protocol) {
                connection::refuse(stream, ConnectReturnCode::RefusedProtocolVersion).await;
            }
            tracing::debug!(error = %e, "handshake failed");
            return None;
        }
    };
    let login = connect.login.map(|l| (l.username, l.password));
    let checked =
        tokio::time::timeout(ctx.connect_timeout, auth::authenticate(ctx.auth.as_ref(), &connect.client_id, login))
            .await
            .unwrap_or_else(|_| Err(auth::AuthRefusal::Unavailable("the login check timed out".into())));
    match checked {
        Ok(principal) => Some(Hello {
            client: Client {
                client_id: connect.client_id,
                principal,
                keep_alive: connect.keep_alive,
                clean_session: connect.clean_session,
            },
            leftover,
        }),
        Err(refusal) => {
            metrics.connects_refused.fetch_add(1, Relaxed);
            if let Some(held) = REFUSED_LOG.allow() {
                tracing::warn!(client = %connect.client_id, reason = refusal.name(), detail = %refusal,
                    held_back = held, "MQTT login refused");
            }
            connection::refuse(stream, refusal.code()).await;
            None
        }
    }
}
