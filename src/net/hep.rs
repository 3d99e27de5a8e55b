//! HEP v3 (Homer Encapsulation Protocol) decoding, and the encoder `hep-send` uses to re-send
//! captures as HEP: packets that an SBC, PBX or capture agent
//! (Kamailio, OpenSIPS, FreeSWITCH, heplify) mirrored to us, with the original addresses,
//! ports and capture time in TLV chunks.
//!
//! Receives one HEP packet (a UDP payload, or one read from a HEP socket) and returns its
//! inner addresses, timestamp, protocol type and payload; compressed payloads (chunk 0x0010,
//! zlib) are inflated into a caller-owned buffer of at most 64 KiB. Any length that does not
//! add up is an error, never a panic or an out-of-bounds read; unknown and vendor chunks are
//! skipped by their length. It never decides what to do with the payload (see `mod.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use flate2::{Decompress, FlushDecompress, Status};
use thiserror::Error;

use crate::time::Timestamp;

/// Inflated payloads larger than this are rejected: no SIP message or RTP packet is.
pub(crate) const MAX_INFLATED: usize = 64 * 1024;

pub(crate) const HEP_SIP: u8 = 1;
pub(crate) const HEP_RTP: u8 = 4;

const CHUNK_FAMILY: u16 = 0x0001;
const CHUNK_PROTOCOL: u16 = 0x0002;
const CHUNK_SRC_V4: u16 = 0x0003;
const CHUNK_DST_V4: u16 = 0x0004;
const CHUNK_SRC_V6: u16 = 0x0005;
const CHUNK_DST_V6: u16 = 0x0006;
const CHUNK_SRC_PORT: u16 = 0x0007;
const CHUNK_DST_PORT: u16 = 0x0008;
const CHUNK_SECONDS: u16 = 0x0009;
const CHUNK_MICROS: u16 = 0x000a;
const CHUNK_PROTO_TYPE: u16 = 0x000b;
const CHUNK_CAPTURE_ID: u16 = 0x000c;
const CHUNK_PAYLOAD: u16 = 0x000f;
const CHUNK_COMPRESSED: u16 = 0x0010;
const CHUNK_VLAN: u16 = 0x0012;
const CHUNK_AUTH_KEY: u16 = 0x000e;

const FAMILY_INET6: u8 = 10;

/// What was wrong with a HEP packet.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HepError {
    #[error("does not start with \"HEP3\"")]
    NotHep3,
    #[error("HEP total length {declared} is outside 6..={available} (bytes received)")]
    TotalLength { declared: usize, available: usize },
    #[error("chunk at offset {offset} declares length {length}, which does not fit the packet")]
    ChunkLength { offset: usize, length: usize },
    #[error("chunk type {chunk:#06x} has {length} value bytes, expected {expected}")]
    ChunkSize {
        chunk: u16,
        length: usize,
        expected: usize,
    },
    #[error("required chunk missing: {0}")]
    Missing(&'static str),
    #[error("compressed payload is not valid zlib")]
    Inflate,
    #[error("compressed payload inflates beyond {MAX_INFLATED} bytes")]
    InflatedTooLarge,
}

/// The payload as carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HepPayload<'a> {
    Plain(&'a [u8]),
    Compressed(&'a [u8]),
}

/// One decoded HEP v3 packet, borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HepPacket<'a> {
    /// IP protocol of the original packet (17 UDP, 6 TCP, 132 SCTP).
    pub ip_protocol: u8,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Capture time from chunks 0x0009/0x000a, when present.
    pub time: Option<Timestamp>,
    /// Chunk 0x000b: 1 SIP, 4 RTP, 5 RTCP JSON, 100 logs, ...
    pub proto_type: u8,
    pub payload: Option<HepPayload<'a>>,
    pub vlan: Option<u16>,
    /// Chunk 0x000e: the sender's shared secret (Kamailio `hep_capture_id`'s sibling
    /// `auth_key`, heplify `-hp`), when it sends one.
    pub auth_key: Option<&'a [u8]>,
}

/// HEP v3 proto type of SIP and of RTP.
pub const PROTO_TYPE_SIP: u8 = HEP_SIP;
pub const PROTO_TYPE_RTP: u8 = HEP_RTP;

/// One packet to encode as HEP v3 (the `hep-send` tool: captures re-sent as a HEP feed).
pub struct HepOut<'a> {
    pub time: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// 17 UDP, 6 TCP.
    pub ip_protocol: u8,
    pub proto_type: u8,
    pub capture_id: u32,
    pub auth_key: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

/// Appends `p` as one HEP v3 packet to `out`. Returns false (appending nothing) when it would
/// exceed the 65,535 bytes a HEP length field can say, or the two addresses' families differ.
pub fn encode(p: &HepOut<'_>, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let chunk = |out: &mut Vec<u8>, kind: u16, value: &[u8]| {
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&((value.len() + 6) as u16).to_be_bytes());
        out.extend_from_slice(value);
    };
    out.extend_from_slice(b"HEP3\0\0");
    match (p.src.ip(), p.dst.ip()) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            chunk(out, CHUNK_FAMILY, &[2]);
            chunk(out, CHUNK_PROTOCOL, &[p.ip_protocol]);
            chunk(out, CHUNK_SRC_V4, &s.octets());
            chunk(out, CHUNK_DST_V4, &d.octets());
        }
        (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => {
            chunk(out, CHUNK_FAMILY, &[10]);
            chunk(out, CHUNK_PROTOCOL, &[p.ip_protocol]);
            chunk(out, CHUNK_SRC_V6, &s.octets());
            chunk(out, CHUNK_DST_V6, &d.octets());
        }
        _ => {
            out.truncate(start);
            return false;
        }
    }
    chunk(out, CHUNK_SRC_PORT, &p.src.port().to_be_bytes());
    chunk(out, CHUNK_DST_PORT, &p.dst.port().to_be_bytes());
    let nanos = p.time.as_nanos();
    chunk(
        out,
        CHUNK_SECONDS,
        &((nanos / 1_000_000_000) as u32).to_be_bytes(),
    );
    chunk(
        out,
        CHUNK_MICROS,
        &((nanos % 1_000_000_000 / 1000) as u32).to_be_bytes(),
    );
    chunk(out, CHUNK_PROTO_TYPE, &[p.proto_type]);
    chunk(out, CHUNK_CAPTURE_ID, &p.capture_id.to_be_bytes());
    if let Some(key) = p.auth_key {
        chunk(out, CHUNK_AUTH_KEY, key);
    }
    let total = out.len() - start + 6 + p.payload.len();
    if total > usize::from(u16::MAX) {
        out.truncate(start);
        return false;
    }
    chunk(out, CHUNK_PAYLOAD, p.payload);
    if let Some(length) = out.get_mut(start + 4..start + 6) {
        length.copy_from_slice(&(total as u16).to_be_bytes());
    }
    true
}

fn fixed<const N: usize>(chunk: u16, value: &[u8]) -> Result<[u8; N], HepError> {
    value.try_into().map_err(|_| HepError::ChunkSize {
        chunk,
        length: value.len(),
        expected: N,
    })
}

/// Parses the chunk list of one HEP v3 packet.
pub(crate) fn parse(buf: &[u8]) -> Result<HepPacket<'_>, HepError> {
    let [b'H', b'E', b'P', b'3', len_hi, len_lo, ..] = *buf else {
        return Err(HepError::NotHep3);
    };
    let declared = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if declared < 6 || declared > buf.len() {
        return Err(HepError::TotalLength {
            declared,
            available: buf.len(),
        });
    }
    let packet = buf.get(..declared).unwrap_or_default();

    let mut family = None;
    let mut ip_protocol = None;
    let (mut src4, mut dst4, mut src6, mut dst6) = (None, None, None, None);
    let (mut src_port, mut dst_port) = (None, None);
    let (mut seconds, mut micros) = (None, None);
    let mut proto_type = None;
    let mut payload = None;
    let mut vlan = None;
    let mut auth_key = None;

    let mut offset = 6;
    while offset < packet.len() {
        let Some(&[v0, v1, c0, c1, l0, l1]) = packet.get(offset..offset + 6) else {
            return Err(HepError::ChunkLength {
                offset,
                length: packet.len() - offset,
            });
        };
        let vendor = u16::from_be_bytes([v0, v1]);
        let chunk = u16::from_be_bytes([c0, c1]);
        let length = usize::from(u16::from_be_bytes([l0, l1]));
        let Some(value) = (length >= 6)
            .then(|| packet.get(offset + 6..offset + length))
            .flatten()
        else {
            return Err(HepError::ChunkLength { offset, length });
        };
        offset += length;
        if vendor != 0 {
            continue;
        }
        match chunk {
            CHUNK_FAMILY => family = Some(fixed::<1>(chunk, value)?[0]),
            CHUNK_PROTOCOL => ip_protocol = Some(fixed::<1>(chunk, value)?[0]),
            CHUNK_SRC_V4 => src4 = Some(Ipv4Addr::from(fixed::<4>(chunk, value)?)),
            CHUNK_DST_V4 => dst4 = Some(Ipv4Addr::from(fixed::<4>(chunk, value)?)),
            CHUNK_SRC_V6 => src6 = Some(Ipv6Addr::from(fixed::<16>(chunk, value)?)),
            CHUNK_DST_V6 => dst6 = Some(Ipv6Addr::from(fixed::<16>(chunk, value)?)),
            CHUNK_SRC_PORT => src_port = Some(u16::from_be_bytes(fixed(chunk, value)?)),
            CHUNK_DST_PORT => dst_port = Some(u16::from_be_bytes(fixed(chunk, value)?)),
            CHUNK_SECONDS => seconds = Some(u32::from_be_bytes(fixed(chunk, value)?)),
            CHUNK_MICROS => micros = Some(u32::from_be_bytes(fixed(chunk, value)?)),
            CHUNK_PROTO_TYPE => proto_type = Some(fixed::<1>(chunk, value)?[0]),
            CHUNK_PAYLOAD => payload = Some(HepPayload::Plain(value)),
            CHUNK_COMPRESSED => payload = Some(HepPayload::Compressed(value)),
            CHUNK_VLAN => vlan = Some(u16::from_be_bytes(fixed(chunk, value)?) & 0x0fff),
            CHUNK_AUTH_KEY => auth_key = Some(value),
            _ => {}
        }
    }

    let v4 = src4.zip(dst4).map(|(s, d)| (IpAddr::V4(s), IpAddr::V4(d)));
    let v6 = src6.zip(dst6).map(|(s, d)| (IpAddr::V6(s), IpAddr::V6(d)));
    let (src, dst) = if family == Some(FAMILY_INET6) {
        v6.or(v4)
    } else {
        v4.or(v6)
    }
    .ok_or(HepError::Missing("source and destination address"))?;
    let src_port = src_port.ok_or(HepError::Missing("source port"))?;
    let dst_port = dst_port.ok_or(HepError::Missing("destination port"))?;
    let time = seconds.map(|s| {
        let micros = micros.unwrap_or(0).min(999_999);
        Timestamp::from_secs_nanos(u64::from(s), micros * 1000)
    });
    Ok(HepPacket {
        ip_protocol: ip_protocol.unwrap_or(17),
        src: SocketAddr::new(src, src_port),
        dst: SocketAddr::new(dst, dst_port),
        time,
        proto_type: proto_type.ok_or(HepError::Missing("protocol type"))?,
        payload,
        vlan,
        auth_key,
    })
}

/// Inflates a zlib payload into `out` (reusing `inflater`'s state, so no allocation per
/// packet). Returns the inflated bytes.
pub(crate) fn inflate<'o>(
    inflater: &mut Decompress,
    compressed: &[u8],
    out: &'o mut [u8],
) -> Result<&'o [u8], HepError> {
    inflater.reset(true);
    match inflater.decompress(compressed, out, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) => {
            let len =
                usize::try_from(inflater.total_out()).map_err(|_| HepError::InflatedTooLarge)?;
            out.get(..len).ok_or(HepError::InflatedTooLarge)
        }
        Ok(_) if inflater.total_out() >= out.len() as u64 => Err(HepError::InflatedTooLarge),
        Ok(_) | Err(_) => Err(HepError::Inflate),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::ZlibEncoder;
    use std::io::Write;

    fn chunk(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut c = vec![0, 0];
        c.extend_from_slice(&kind.to_be_bytes());
        c.extend_from_slice(&((value.len() + 6) as u16).to_be_bytes());
        c.extend_from_slice(value);
        c
    }

    /// A HEP v3 packet as heplify would send it: IPv4, with timestamp and plain payload.
    pub(crate) fn hep_packet(
        proto_type: u8,
        ip_protocol: u8,
        payload_chunk: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let chunks = [
            chunk(1, &[2]),
            chunk(2, &[ip_protocol]),
            chunk(3, &[192, 0, 2, 1]),
            chunk(4, &[192, 0, 2, 2]),
            chunk(7, &5060u16.to_be_bytes()),
            chunk(8, &5080u16.to_be_bytes()),
            chunk(9, &1_700_000_000u32.to_be_bytes()),
            chunk(10, &250_000u32.to_be_bytes()),
            chunk(11, &[proto_type]),
            chunk(12, &[0, 0, 0, 7]),
            // A vendor chunk that must be skipped by length.
            {
                let mut c = chunk(0x99, b"vendor");
                c[1] = 2;
                c
            },
            chunk(payload_chunk, payload),
        ]
        .concat();
        let mut p = b"HEP3".to_vec();
        p.extend_from_slice(&((chunks.len() + 6) as u16).to_be_bytes());
        p.extend_from_slice(&chunks);
        p
    }

    pub(crate) fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn encoded_packets_parse_back() {
        let mut out = Vec::new();
        let p = HepOut {
            time: Timestamp::from_secs_nanos(1_700_000_000, 250_000_000),
            src: "192.0.2.1:5060".parse().unwrap(),
            dst: "[2001:db8::1]:5080".parse().unwrap(),
            ip_protocol: 17,
            proto_type: HEP_SIP,
            capture_id: 7,
            auth_key: Some(b"secret"),
            payload: b"OPTIONS sip:x SIP/2.0\r\n\r\n",
        };
        assert!(!encode(&p, &mut out), "mixed families are refused");
        assert!(out.is_empty());
        let p = HepOut {
            dst: "192.0.2.2:5080".parse().unwrap(),
            ..p
        };
        assert!(encode(&p, &mut out));
        let back = parse(&out).unwrap();
        assert_eq!(back.src, p.src);
        assert_eq!(back.dst, p.dst);
        assert_eq!(back.time, Some(p.time));
        assert_eq!(back.auth_key, Some(&b"secret"[..]));
        assert_eq!(back.payload, Some(HepPayload::Plain(p.payload)));
        let big = vec![0u8; 65_500];
        assert!(!encode(&HepOut { payload: &big, ..p }, &mut out));
    }

    #[test]
    fn parses_addresses_time_and_payload() {
        let p = hep_packet(1, 17, 0x000f, b"OPTIONS sip:a SIP/2.0\r\n\r\n");
        let h = parse(&p).unwrap();
        assert_eq!(h.src, "192.0.2.1:5060".parse().unwrap());
        assert_eq!(h.dst, "192.0.2.2:5080".parse().unwrap());
        assert_eq!(
            h.time,
            Some(Timestamp::from_secs_nanos(1_700_000_000, 250_000_000))
        );
        assert_eq!(h.proto_type, 1);
        assert_eq!(
            h.payload,
            Some(HepPayload::Plain(&b"OPTIONS sip:a SIP/2.0\r\n\r\n"[..]))
        );
    }

    #[test]
    fn inflates_compressed_payload_with_bound() {
        let sip = b"REGISTER sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        let p = hep_packet(1, 6, 0x0010, &zlib(sip));
        let h = parse(&p).unwrap();
        let Some(HepPayload::Compressed(z)) = h.payload else {
            panic!()
        };
        let mut inflater = Decompress::new(true);
        let mut out = vec![0u8; MAX_INFLATED];
        assert_eq!(inflate(&mut inflater, z, &mut out).unwrap(), sip);
        // A zip bomb is refused, and the inflater is reusable afterwards.
        let bomb = zlib(&vec![0u8; MAX_INFLATED + 1]);
        assert_eq!(
            inflate(&mut inflater, &bomb, &mut out),
            Err(HepError::InflatedTooLarge)
        );
        assert_eq!(
            inflate(&mut inflater, b"not zlib", &mut out),
            Err(HepError::Inflate)
        );
        assert_eq!(inflate(&mut inflater, z, &mut out).unwrap(), sip);
    }

    #[test]
    fn inconsistent_lengths_are_rejected_not_panicking() {
        let p = hep_packet(1, 17, 0x000f, b"x");
        for len in 0..p.len() {
            // Truncated packets whose total length still claims the full size.
            assert!(parse(&p[..len]).is_err(), "len {len}");
        }
        // A chunk claiming more than the packet holds.
        let mut bad = p.clone();
        bad[6 + 4] = 0xff;
        assert!(matches!(parse(&bad), Err(HepError::ChunkLength { .. })));
        // A chunk length below its own header.
        let mut bad = p.clone();
        bad[6 + 5] = 3;
        assert!(matches!(parse(&bad), Err(HepError::ChunkLength { .. })));
        // A port chunk of the wrong size.
        let bad = [&p[..], &chunk(7, &[1, 2, 3])].concat();
        let mut bad = bad;
        let total = bad.len() as u16;
        bad[4..6].copy_from_slice(&total.to_be_bytes());
        assert!(matches!(
            parse(&bad),
            Err(HepError::ChunkSize { chunk: 7, .. })
        ));
    }
}
