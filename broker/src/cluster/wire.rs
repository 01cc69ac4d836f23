//! What main and worker processes send each other.
//!
//! - **Frames** on the control stream (a Unix stream socket, one per worker): `u32` big-endian
//!   length of what follows, a tag byte, the body. Hello (worker → main, once: index and the
//!   secret the main process gave it), Publish (either way: QoS, topic, payload), Metrics
//!   (worker → main, once a second), Remove (main → worker: drop a client's session).
//! - **Handoffs** on a Unix datagram socket per worker (main → worker): one datagram per device
//!   connection, carrying the socket itself as SCM_RIGHTS ancillary data and, in the bytes,
//!   clean-session flag, keep-alive, client id and whatever the client sent after its CONNECT.
//!   Datagrams keep one socket and its description together; rustix's safe `sendmsg`/`recvmsg`
//!   do the ancillary encoding, so there is no `unsafe` here.

use crate::link::Message;
use crate::metrics::MetricsSnapshot;
use crate::QoS;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UnixDatagram;

/// Largest frame accepted (a publish is bounded by the packet size; this leaves room).
const MAX_FRAME: usize = 4 * 1024 * 1024;
/// Largest handoff datagram: client id and what followed the CONNECT.
pub(crate) const MAX_HANDOFF: usize = 128 * 1024;

const HELLO: u8 = 1;
const PUBLISH: u8 = 2;
const METRICS: u8 = 3;
const REMOVE: u8 = 4;

/// A control-stream frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    Hello { index: u32, secret: [u8; 16] },
    Publish(Message),
    Metrics(MetricsSnapshot),
    Remove(String),
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl Frame {
    /// Appends the encoded frame to `out`.
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32(0);
        match self {
            Frame::Hello { index, secret } => {
                out.put_u8(HELLO);
                out.put_u32(*index);
                out.put_slice(secret);
            }
            Frame::Publish(m) => {
                out.put_u8(PUBLISH);
                out.put_u8(m.qos as u8);
                out.put_u16(m.topic.len() as u16);
                out.put_slice(m.topic.as_bytes());
                out.put_slice(&m.payload);
            }
            Frame::Metrics(s) => {
                out.put_u8(METRICS);
                for v in s.to_vec() {
                    out.put_u64(v);
                }
            }
            Frame::Remove(id) => {
                out.put_u8(REMOVE);
                out.put_slice(id.as_bytes());
            }
        }
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn decode(mut body: Bytes) -> io::Result<Frame> {
        if body.is_empty() {
            return Err(bad("empty frame"));
        }
        match body.get_u8() {
            HELLO if body.len() == 20 => {
                let index = body.get_u32();
                let mut secret = [0u8; 16];
                body.copy_to_slice(&mut secret);
                Ok(Frame::Hello { index, secret })
            }
            PUBLISH if body.len() >= 3 => {
                let qos = match body.get_u8() {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => return Err(bad("bad QoS")),
                };
                let n = usize::from(body.get_u16());
                if body.len() < n {
                    return Err(bad("short topic"));
                }
                let topic = std::str::from_utf8(&body[..n]).map_err(|_| bad("topic not UTF-8"))?.into();
                body.advance(n);
                Ok(Frame::Publish(Message { topic, payload: body, qos }))
            }
            METRICS if body.len() % 8 == 0 => {
                let values: Vec<u64> =
                    body.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8]))).collect();
                Ok(Frame::Metrics(MetricsSnapshot::from_slice(&values)))
            }
            REMOVE => Ok(Frame::Remove(String::from_utf8(body.to_vec()).map_err(|_| bad("client id not UTF-8"))?)),
            tag => Err(bad(&format!("unknown frame {tag}"))),
        }
    }
}

/// Reads one frame; `None` at a clean end of stream.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(rd: &mut R) -> io::Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(bad("frame too large"));
    }
    let mut body = vec![0u8; len];
    rd.read_exact(&mut body).await?;
    Frame::decode(Bytes::from(body)).map(Some)
}

/// A device connection handed to a worker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Handoff {
    pub(crate) client_id: String,
    pub(crate) keep_alive: u16,
    pub(crate) clean_session: bool,
    pub(crate) leftover: Bytes,
}

impl Handoff {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.client_id.len() + self.leftover.len());
        out.push(u8::from(self.clean_session));
        out.extend_from_slice(&self.keep_alive.to_be_bytes());
        out.extend_from_slice(&(self.client_id.len() as u16).to_be_bytes());
        out.extend_from_slice(self.client_id.as_bytes());
        out.extend_from_slice(&self.leftover);
        out
    }

    pub(crate) fn decode(mut b: Bytes) -> io::Result<Handoff> {
        if b.len() < 5 {
            return Err(bad("short handoff"));
        }
        let clean_session = b.get_u8() != 0;
        let keep_alive = b.get_u16();
        let n = usize::from(b.get_u16());
        if b.len() < n {
            return Err(bad("short client id"));
        }
        let client_id = std::str::from_utf8(&b[..n]).map_err(|_| bad("client id not UTF-8"))?.to_string();
        b.advance(n);
        Ok(Handoff { client_id, keep_alive, clean_session, leftover: b })
    }
}

/// Sends `data` with `fd` attached on a connected datagram socket.
pub(crate) async fn send_with_fd(sock: &UnixDatagram, data: &[u8], fd: impl AsFd) -> io::Result<()> {
    let fd = fd.as_fd();
    sock.async_io(Interest::WRITABLE, || {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [fd];
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("no room for the descriptor"));
        }
        rustix::net::sendmsg(sock, &[IoSlice::new(data)], &mut control, SendFlags::empty()).map_err(io::Error::from)
    })
    .await
    .map(|_| ())
}

/// Receives one datagram and the descriptor it carries (`None` if it carried none, or the
/// kernel dropped it because this process is out of descriptors).
pub(crate) async fn recv_with_fd(sock: &UnixDatagram) -> io::Result<(Bytes, Option<OwnedFd>)> {
    sock.async_io(Interest::READABLE, || {
        let mut buf = vec![0u8; MAX_HANDOFF];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(sock, &mut [IoSliceMut::new(&mut buf)], &mut control, RecvFlags::CMSG_CLOEXEC)
            .map_err(io::Error::from)?;
        let mut fd = None;
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
                // Any further descriptors are dropped (closed) here: only one is ever sent.
                fd = fd.or_else(|| fds.next());
            }
        }
        buf.truncate(got.bytes.min(MAX_HANDOFF));
        Ok((Bytes::from(buf), fd))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_frame_reads_back_as_written() {
        let m = MetricsSnapshot { connections: 7, handoffs: 9, ..Default::default() };
        let frames = vec![
            Frame::Hello { index: 3, secret: [5; 16] },
            Frame::Publish(Message {
                topic: "airlock/v1/i/ab".into(),
                payload: Bytes::from_static(b"xyz"),
                qos: QoS::AtLeastOnce,
            }),
            Frame::Metrics(m),
            Frame::Remove("gw-1".into()),
        ];
        let mut buf = BytesMut::new();
        for f in &frames {
            f.encode(&mut buf);
        }
        let mut rd = &buf[..];
        for f in frames {
            assert_eq!(read_frame(&mut rd).await.ok().flatten(), Some(f));
        }
        assert!(matches!(read_frame(&mut rd).await, Ok(None)), "clean end");
    }

    #[test]
    fn a_handoff_reads_back_and_a_truncated_one_is_refused() {
        let h = Handoff {
            client_id: "gw-1".into(),
            keep_alive: 30,
            clean_session: false,
            leftover: Bytes::from_static(b"\xc0\x00"),
        };
        let bytes = h.encode();
        assert_eq!(Handoff::decode(Bytes::from(bytes.clone())).ok(), Some(h));
        assert!(Handoff::decode(Bytes::from(bytes[..6].to_vec())).is_err());
    }

    #[tokio::test]
    async fn a_socket_passed_through_a_datagram_is_the_same_socket() {
        let (a, b) = match UnixDatagram::pair() {
            Ok(p) => p,
            Err(e) => panic!("no socket pair: {e}"),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = send_with_fd(&a, b"hello", &listener).await {
            panic!("send: {e}");
        }
        drop(listener);
        let (data, fd) = recv_with_fd(&b).await.unwrap_or_else(|e| panic!("recv: {e}"));
        assert_eq!(&data[..], b"hello");
        let received = std::net::TcpListener::from(fd.unwrap_or_else(|| panic!("no descriptor")));
        assert_eq!(received.local_addr().ok(), Some(addr), "the listener survived the original being closed");
    }
}
