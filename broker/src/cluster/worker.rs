//! A worker process: receives device sockets from the main process and serves them with its own
//! routing table; sends device publishes and its metrics to the main process.

use super::wire::{self, Frame, Handoff};
use super::{socket_path, WorkerSettings, WORKER_ENV};
use crate::connection::{self, Client};
use crate::error::BrokerError;
use crate::limits;
use crate::link::Message;
use crate::metrics::Metrics;
use crate::router::{Forward, Origin, Router};
use crate::session::QueueLimits;
use crate::Principal;
use bytes::BytesMut;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixDatagram, UnixStream};
use tokio::sync::{mpsc, watch};

/// Worker → main: every device publish goes to the main process, where the controller is.
struct ToMain {
    frames: mpsc::Sender<Frame>,
}

impl Forward for ToMain {
    fn forward<'a>(&'a self, msg: &'a Message) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move { self.frames.send(Frame::Publish(msg.clone())).await.is_ok() })
    }
}

/// The worker entry point: the `airlock` binary's hidden worker subcommand calls this inside a
/// tokio runtime. It reads its settings from [`WORKER_ENV`] (set by the main process), serves
/// until the main process goes away, then closes its connections and returns.
pub async fn run_worker() -> Result<(), BrokerError> {
    let env = std::env::var(WORKER_ENV).map_err(|_| BrokerError::NotAWorker(format!("{WORKER_ENV} is not set")))?;
    let settings = WorkerSettings::from_env(&env)?;
    let limit = match settings.fd_limit {
        Some(n) => limits::set_fd_soft_limit(n)?,
        None => limits::raise_fd_limit()?,
    };
    tracing::info!(
        worker = settings.index,
        open_files = limit.soft,
        connections = limit.connections(),
        "broker worker starting"
    );
    let path = socket_path(&settings.dir, settings.index);
    let _ = std::fs::remove_file(&path);
    let sockets = UnixDatagram::bind(&path).map_err(BrokerError::Control)?;
    let control = UnixStream::connect(super::control_path(&settings.dir)).await.map_err(BrokerError::Control)?;
    let (mut rd, wr) = control.into_split();
    let (frames, frames_rx) = mpsc::channel(super::FRAME_QUEUE);
    tokio::spawn(super::write_frames(wr, frames_rx));
    frames
        .send(Frame::Hello { index: settings.index as u32, secret: settings.secret })
        .await
        .map_err(|_| BrokerError::Control(std::io::Error::other("control stream closed")))?;

    let metrics = Arc::new(Metrics::default());
    let router = Arc::new(Router::new(
        metrics.clone(),
        QueueLimits { qos0: settings.qos0, qos1: settings.qos1, inflight: settings.inflight },
    ));
    router.set_forward(Arc::new(ToMain { frames: frames.clone() }));
    let (stop, stopped) = watch::channel(false);

    let reporter = {
        let frames = frames.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if frames.send(Frame::Metrics(metrics.snapshot())).await.is_err() {
                    return;
                }
            }
        })
    };

    let accept = {
        let router = router.clone();
        let max_packet = settings.max_packet;
        let stopped = stopped.clone();
        async move {
            loop {
                match wire::recv_with_fd(&sockets).await {
                    Ok((data, Some(fd))) => {
                        let Ok(h) = Handoff::decode(data) else {
                            tracing::warn!("malformed handoff dropped");
                            continue;
                        };
                        let std_stream = std::net::TcpStream::from(fd);
                        let stream = match std_stream
                            .set_nonblocking(true)
                            .and_then(|()| tokio::net::TcpStream::from_std(std_stream))
                        {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::warn!(error = %e, "a handed-off socket is unusable");
                                continue;
                            }
                        };
                        let client = Client {
                            principal: Principal::Device(h.client_id.as_str().into()),
                            client_id: h.client_id,
                            keep_alive: h.keep_alive,
                            clean_session: h.clean_session,
                        };
                        let leftover = BytesMut::from(&h.leftover[..]);
                        tokio::spawn(connection::serve(
                            stream,
                            leftover,
                            client,
                            router.clone(),
                            max_packet,
                            stopped.clone(),
                        ));
                    }
                    Ok((_, None)) => {
                        // The kernel drops the descriptor when this process is at its limit.
                        router.metrics.accept_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!("a handoff arrived without its socket (open-file limit reached?)");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "receiving a handoff failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    };

    let control = async {
        loop {
            match wire::read_frame(&mut rd).await {
                Ok(Some(Frame::Publish(m))) => {
                    router.publish(m, Origin::Remote).await;
                }
                Ok(Some(Frame::Remove(id))) => {
                    router.remove_client(&id);
                }
                Ok(Some(other)) => tracing::warn!(frame = ?other, "unexpected frame from the main process"),
                Ok(None) | Err(_) => return,
            }
        }
    };

    tokio::select! {
        () = accept => {}
        () = control => {}
    }
    tracing::info!(worker = settings.index, "main process gone: broker worker stopping");
    let _ = stop.send(true);
    reporter.abort();
    let _ = std::fs::remove_file(&path);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
