//! Outgoing packets as bytes, and [`BufList`]: queued buffers written with one vectored write.
//!
//! Reading uses `rumqttc::mqttbytes::v4::Packet::read`. Writing PUBLISH is done here, split in
//! two: a small header (fixed header, topic, packet id) and the payload, which stays the
//! caller's refcounted [`Bytes`]; a QoS 0 broadcast is encoded whole once and every subscriber's
//! queue holds a clone of the same bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, PubAck, SubAck, SubscribeReasonCode, UnsubAck};
use std::collections::VecDeque;
use std::io::IoSlice;

fn put_remaining_length(buf: &mut BytesMut, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if len == 0 {
            break;
        }
    }
}

/// The header of a PUBLISH whose payload follows separately. `pkid` is `Some` for QoS 1.
pub(crate) fn publish_header(topic: &str, pkid: Option<u16>, dup: bool, payload_len: usize) -> BytesMut {
    let variable = 2 + topic.len() + if pkid.is_some() { 2 } else { 0 };
    let mut buf = BytesMut::with_capacity(5 + variable);
    let mut byte1 = 0x30;
    if pkid.is_some() {
        byte1 |= 0x02;
    }
    if dup {
        byte1 |= 0x08;
    }
    buf.put_u8(byte1);
    put_remaining_length(&mut buf, variable + payload_len);
    // Topics are bounded by `topic::MAX_TOPIC_LEN`, far below u16::MAX.
    buf.put_u16(topic.len() as u16);
    buf.put_slice(topic.as_bytes());
    if let Some(pkid) = pkid {
        buf.put_u16(pkid);
    }
    buf
}

/// A whole QoS 0 PUBLISH, encoded once for every subscriber.
pub(crate) fn qos0_publish(topic: &str, payload: &[u8]) -> Bytes {
    let mut buf = publish_header(topic, None, false, payload.len());
    buf.reserve(payload.len());
    buf.put_slice(payload);
    buf.freeze()
}

fn encode(write: impl FnOnce(&mut BytesMut) -> Result<usize, rumqttc::mqttbytes::Error>) -> Bytes {
    let mut buf = BytesMut::with_capacity(8);
    // These writers only fail for oversize input, which control packets of ours never are;
    // an empty buffer would then be written, which the peer treats as nothing.
    let _ = write(&mut buf);
    buf.freeze()
}

pub(crate) fn connack(code: ConnectReturnCode, session_present: bool) -> Bytes {
    encode(|b| ConnAck::new(code, session_present).write(b))
}

pub(crate) fn puback(pkid: u16) -> Bytes {
    encode(|b| PubAck::new(pkid).write(b))
}

pub(crate) fn suback(pkid: u16, codes: Vec<SubscribeReasonCode>) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + codes.len());
    let _ = SubAck::new(pkid, codes).write(&mut buf);
    buf.freeze()
}

pub(crate) fn unsuback(pkid: u16) -> Bytes {
    encode(|b| UnsubAck::new(pkid).write(b))
}

pub(crate) fn pingresp() -> Bytes {
    Bytes::from_static(&[0xD0, 0x00])
}

/// Buffers to write in order, as one [`Buf`] whose chunks become one `writev`.
#[derive(Debug, Default)]
pub(crate) struct BufList {
    bufs: VecDeque<Bytes>,
    remaining: usize,
}

impl BufList {
    pub(crate) fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.remaining += b.len();
            self.bufs.push_back(b);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bufs.len()
    }
}

impl Buf for BufList {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.bufs.front().map(|b| b.as_ref()).unwrap_or(&[])
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, b) in dst.iter_mut().zip(self.bufs.iter()) {
            *slot = IoSlice::new(b);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut cnt: usize) {
        self.remaining = self.remaining.saturating_sub(cnt);
        while cnt > 0 {
            let Some(front) = self.bufs.front_mut() else { return };
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.bufs.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::{Packet, Publish};
    use rumqttc::mqttbytes::QoS;

    #[test]
    fn our_publish_encoding_reads_back_with_rumqttc_for_both_qos_levels() {
        let payload = vec![7u8; 4096];
        let mut buf = BytesMut::from(&qos0_publish("airlock/v1/i/ab", &payload)[..]);
        let Ok(Packet::Publish(p)) = Packet::read(&mut buf, 1 << 20) else { panic!("not a publish") };
        assert_eq!(p, Publish::new("airlock/v1/i/ab", QoS::AtMostOnce, payload.clone()));

        let mut buf = publish_header("airlock/v1/d/x/chunk", Some(513), true, payload.len());
        buf.put_slice(&payload);
        let Ok(Packet::Publish(p)) = Packet::read(&mut buf, 1 << 20) else { panic!("not a publish") };
        assert_eq!((p.qos, p.pkid, p.dup, p.topic.as_str()), (QoS::AtLeastOnce, 513, true, "airlock/v1/d/x/chunk"));
        assert_eq!(p.payload.len(), 4096);
    }

    #[test]
    fn a_buf_list_advances_across_buffers_and_reports_every_chunk() {
        let mut list = BufList::default();
        list.push(Bytes::from_static(b"abc"));
        list.push(Bytes::new());
        list.push(Bytes::from_static(b"defg"));
        assert_eq!((list.remaining(), list.len()), (7, 2));
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(list.chunks_vectored(&mut slices), 2);
        list.advance(4);
        assert_eq!(list.chunk(), b"efg");
        list.advance(3);
        assert_eq!(list.remaining(), 0);
    }
}
