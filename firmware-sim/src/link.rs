//! Bad links between devices and the broker: a TCP proxy in front of the broker that throttles
//! each connection's bandwidth, or drops connections at random moments. Devices whose link is
//! bad connect to the proxy instead of the broker; the MQTT bytes pass through untouched, so the
//! agent sees what it would see on a real bad link (slow transfers, resets, reconnects).

use crate::Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does to each connection.
#[derive(Clone, Copy, Debug)]
pub enum Impairment {
    /// At most this many bytes per second in each direction.
    Slow {
        /// Bandwidth per direction.
        bytes_per_sec: u64,
    },
    /// The connection is reset after an exponentially distributed lifetime.
    Lossy {
        /// Mean lifetime.
        mean_life: Duration,
    },
}

/// A running proxy.
#[derive(Debug)]
pub struct LinkProxy {
    addr: SocketAddr,
    drops: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl LinkProxy {
    /// Listens on an ephemeral loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr, impairment: Impairment, seed: u64) -> std::io::Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let drops = Arc::new(AtomicU64::new(0));
        let counter = drops.clone();
        let task = tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            loop {
                let Ok((device, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let life = match impairment {
                    Impairment::Lossy { mean_life } => {
                        // Exponential: -ln(U) * mean.
                        let u = rng.unit().max(1e-9);
                        Some(mean_life.mul_f64(-u.ln()))
                    }
                    Impairment::Slow { .. } => None,
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(broker) = TcpStream::connect(upstream).await else { return };
                    let _ = device.set_nodelay(true);
                    let _ = broker.set_nodelay(true);
                    let rate = match impairment {
                        Impairment::Slow { bytes_per_sec } => Some(bytes_per_sec),
                        Impairment::Lossy { .. } => None,
                    };
                    let (dr, dw) = device.into_split();
                    let (br, bw) = broker.into_split();
                    let pump = async {
                        tokio::select! {
                            _ = pipe(dr, bw, rate) => {}
                            _ = pipe(br, dw, rate) => {}
                        }
                    };
                    match life {
                        Some(life) => {
                            if tokio::time::timeout(life, pump).await.is_err() {
                                counter.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        None => pump.await,
                    }
                    // Dropping both halves of both sockets resets the link.
                });
            }
        });
        Ok(LinkProxy { addr, drops, task })
    }

    /// Where devices connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections the proxy cut so far.
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies until EOF or an error, at most `rate` bytes a second.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rate: Option<u64>,
) -> std::io::Result<()> {
    // Small reads keep the pacing smooth on a throttled link.
    let mut buf = vec![0u8; if rate.is_some() { 1024 } else { 16 * 1024 }];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        if let Some(rate) = rate {
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Instant;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_slow_link_paces_the_bytes() {
        let proxy =
            LinkProxy::start(echo_server().await, Impairment::Slow { bytes_per_sec: 64 * 1024 }, 1).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        let data = vec![7u8; 32 * 1024];
        let started = Instant::now();
        s.write_all(&data).await.unwrap();
        let mut back = vec![0u8; data.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, data);
        // 32 KiB each way at 64 KiB/s: at least half a second.
        assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_lossy_link_resets_connections_and_counts_them() {
        let proxy =
            LinkProxy::start(echo_server().await, Impairment::Lossy { mean_life: Duration::from_millis(100) }, 2)
                .await
                .unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut buf = [0u8; 16];
        let until = Instant::now() + Duration::from_secs(10);
        let reset = loop {
            if s.write_all(b"ping").await.is_err() {
                break true;
            }
            match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                _ => {}
            }
            if Instant::now() > until {
                break false;
            }
        };
        assert!(reset, "the link never dropped");
        assert!(proxy.drops() >= 1);
    }
}
