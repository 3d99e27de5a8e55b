//! Network and transport headers: IPv4, IPv6 (with its extension-header chain), UDP, TCP and
//! GRE. Each is one function that checks every length against the bytes it has and returns
//! the header's fields decoded into a small struct, with the payload a slice borrowed from
//! the input; what does not check is a [`HeaderError`], never a panic.
//!
//! Receives the bytes after the link layer and returns addresses, protocol numbers and
//! payload slices; it trims Ethernet padding using the IP length fields. It never reassembles
//! (see `defrag`), never allocates and never trusts a length field beyond the bytes it has.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use super::bytes::{array16, be16, be32, from, span, u8_at};

pub(crate) const PROTO_IPV4_IN_IP: u8 = 4;
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_IPV6_IN_IP: u8 = 41;
pub(crate) const PROTO_GRE: u8 = 47;

const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;
/// RFC 8200 allows each option header once (destination options twice); more is an attack.
const MAX_IPV6_EXTENSIONS: usize = 8;

/// What was wrong with a network or transport header.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("{what} needs {needed} bytes but only {available} were captured")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{what}: {problem}")]
    Malformed {
        what: &'static str,
        problem: &'static str,
    },
}

fn truncated(what: &'static str, needed: usize, available: usize) -> HeaderError {
    HeaderError::Truncated {
        what,
        needed,
        available,
    }
}

fn malformed(what: &'static str, problem: &'static str) -> HeaderError {
    HeaderError::Malformed { what, problem }
}

/// Where a fragment sits in its original datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fragment {
    pub id: u32,
    pub offset: usize,
    pub more: bool,
}

/// One IP header, either version, reduced to what the pipeline needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol (for IPv6: the header after the extension chain).
    pub protocol: u8,
    /// Bytes after the header(s), trimmed to the IP length (padding removed).
    pub payload: &'a [u8],
    pub fragment: Option<Fragment>,
}

/// Parses an IPv4 header and returns its payload, bounded by the total length.
pub(crate) fn ipv4(bytes: &[u8]) -> Result<IpPacket<'_>, HeaderError> {
    if bytes.len() < 20 {
        return Err(truncated("IPv4 header", 20, bytes.len()));
    }
    if u8_at(bytes, 0) >> 4 != 4 {
        return Err(malformed("IPv4 header", "version is not 4"));
    }
    let header_len = usize::from(u8_at(bytes, 0) & 0x0f) * 4;
    if header_len < 20 {
        return Err(malformed("IPv4 header", "IHL below 5"));
    }
    if bytes.len() < header_len {
        return Err(truncated("IPv4 options", header_len, bytes.len()));
    }
    let declared = usize::from(be16(bytes, 2));
    // Segmentation offload captures on the sending host show total length 0: use the frame.
    let total = if declared == 0 { bytes.len() } else { declared };
    if total < header_len {
        return Err(malformed("IPv4 header", "total length shorter than header"));
    }
    if total > bytes.len() {
        return Err(truncated("IPv4 datagram", total, bytes.len()));
    }
    let flags_offset = be16(bytes, 6);
    let more = flags_offset & 0x2000 != 0;
    let offset = usize::from(flags_offset & 0x1fff) * 8;
    let fragment = (more || offset != 0).then_some(Fragment {
        id: u32::from(be16(bytes, 4)),
        offset,
        more,
    });
    Ok(IpPacket {
        src: IpAddr::V4(Ipv4Addr::from(be32(bytes, 12))),
        dst: IpAddr::V4(Ipv4Addr::from(be32(bytes, 16))),
        protocol: u8_at(bytes, 9),
        payload: span(bytes, header_len, total),
        fragment,
    })
}

/// Parses an IPv6 header, skips hop-by-hop, routing, destination-options and AH headers, and
/// stops at a fragment header (whose fragmentable part is the payload) or the upper layer.
pub(crate) fn ipv6(bytes: &[u8]) -> Result<IpPacket<'_>, HeaderError> {
    if bytes.len() < 40 {
        return Err(truncated("IPv6 header", 40, bytes.len()));
    }
    if u8_at(bytes, 0) >> 4 != 6 {
        return Err(malformed("IPv6 header", "version is not 6"));
    }
    let declared = usize::from(be16(bytes, 4));
    // 0 means a jumbogram or an offloaded segment: take what was captured.
    let end = if declared == 0 {
        bytes.len()
    } else {
        40 + declared
    };
    if end > bytes.len() {
        return Err(truncated("IPv6 datagram", end, bytes.len()));
    }
    let (protocol, payload, fragment) = ipv6_extensions(u8_at(bytes, 6), span(bytes, 40, end))?;
    Ok(IpPacket {
        src: IpAddr::V6(Ipv6Addr::from(array16(bytes, 8))),
        dst: IpAddr::V6(Ipv6Addr::from(array16(bytes, 24))),
        protocol,
        payload,
        fragment,
    })
}

/// Walks an IPv6 extension-header chain starting with `next`. Also used on a reassembled
/// fragmentable part, whose remaining headers follow the fragment header.
pub(crate) fn ipv6_extensions(
    mut next: u8,
    mut rest: &[u8],
) -> Result<(u8, &[u8], Option<Fragment>), HeaderError> {
    for _ in 0..MAX_IPV6_EXTENSIONS {
        match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS | IPV6_AH => {
                if rest.len() < 2 {
                    return Err(truncated("IPv6 extension header", 2, rest.len()));
                }
                let len = if next == IPV6_AH {
                    (usize::from(u8_at(rest, 1)) + 2) * 4
                } else {
                    (usize::from(u8_at(rest, 1)) + 1) * 8
                };
                if rest.len() < len {
                    return Err(truncated("IPv6 extension header", len, rest.len()));
                }
                next = u8_at(rest, 0);
                rest = from(rest, len);
            }
            IPV6_FRAGMENT => {
                if rest.len() < 8 {
                    return Err(truncated("IPv6 fragment header", 8, rest.len()));
                }
                let word = be16(rest, 2);
                let fragment = Fragment {
                    id: be32(rest, 4),
                    offset: usize::from(word >> 3) * 8,
                    more: word & 1 != 0,
                };
                // An atomic fragment (offset 0, no more) is a whole datagram (RFC 6946).
                let fragment = (fragment.more || fragment.offset != 0).then_some(fragment);
                return Ok((u8_at(rest, 0), from(rest, 8), fragment));
            }
            upper => return Ok((upper, rest, None)),
        }
    }
    Err(malformed(
        "IPv6 extension chain",
        "too many extension headers",
    ))
}

/// A UDP header and its payload bounded by the UDP length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UdpDatagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

pub(crate) fn udp(bytes: &[u8]) -> Result<UdpDatagram<'_>, HeaderError> {
    if bytes.len() < 8 {
        return Err(truncated("UDP header", 8, bytes.len()));
    }
    let declared = usize::from(be16(bytes, 4));
    let end = match declared {
        // Jumbograms and offloaded sends carry 0.
        0 => bytes.len(),
        1..=7 => return Err(malformed("UDP header", "length below 8")),
        n if n > bytes.len() => return Err(truncated("UDP datagram", n, bytes.len())),
        n => n,
    };
    Ok(UdpDatagram {
        src_port: be16(bytes, 0),
        dst_port: be16(bytes, 2),
        payload: span(bytes, 8, end),
    })
}

/// A TCP segment header reduced to what stream reassembly needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: &'a [u8],
}

pub(crate) fn tcp(bytes: &[u8]) -> Result<TcpSegment<'_>, HeaderError> {
    if bytes.len() < 20 {
        return Err(truncated("TCP header", 20, bytes.len()));
    }
    let header_len = usize::from(u8_at(bytes, 12) >> 4) * 4;
    if header_len < 20 {
        return Err(malformed("TCP header", "data offset below 5"));
    }
    if bytes.len() < header_len {
        return Err(truncated("TCP options", header_len, bytes.len()));
    }
    let flags = u8_at(bytes, 13);
    Ok(TcpSegment {
        src_port: be16(bytes, 0),
        dst_port: be16(bytes, 2),
        seq: be32(bytes, 4),
        fin: flags & 0x01 != 0,
        syn: flags & 0x02 != 0,
        rst: flags & 0x04 != 0,
        payload: from(bytes, header_len),
    })
}

/// A GRE (RFC 2784/2890) header: what it carries and whether a sequence number was present
/// (which is how ERSPAN type II announces its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GrePacket<'a> {
    pub protocol: u16,
    pub sequenced: bool,
    pub payload: &'a [u8],
}

pub(crate) fn gre(bytes: &[u8]) -> Result<GrePacket<'_>, HeaderError> {
    if bytes.len() < 4 {
        return Err(truncated("GRE header", 4, bytes.len()));
    }
    let flags = be16(bytes, 0);
    if flags & 0x0007 != 0 {
        // Version 1 is PPTP's enhanced GRE, which carries PPP, not mirrored traffic.
        return Err(malformed("GRE header", "version is not 0"));
    }
    if flags & 0x4000 != 0 {
        return Err(malformed("GRE header", "source routing is not supported"));
    }
    let checksum = flags & 0x8000 != 0;
    let key = flags & 0x2000 != 0;
    let sequenced = flags & 0x1000 != 0;
    let len = 4 + 4 * (usize::from(checksum) + usize::from(key) + usize::from(sequenced));
    if bytes.len() < len {
        return Err(truncated("GRE optional fields", len, bytes.len()));
    }
    Ok(GrePacket {
        protocol: be16(bytes, 2),
        sequenced,
        payload: from(bytes, len),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an IPv4 header (no options, checksum left 0: nothing here verifies it).
    pub(crate) fn ipv4_header(
        src: [u8; 4],
        dst: [u8; 4],
        proto: u8,
        id: u16,
        frag: u16,
        payload_len: usize,
    ) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    pub(crate) fn udp_header(sport: u16, dport: u16, payload_len: usize) -> Vec<u8> {
        let mut h = sport.to_be_bytes().to_vec();
        h.extend_from_slice(&dport.to_be_bytes());
        h.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
        h.extend_from_slice(&[0, 0]);
        h
    }

    #[test]
    fn ipv4_trims_ethernet_padding() {
        let mut p = ipv4_header([1, 2, 3, 4], [5, 6, 7, 8], 17, 1, 0, 3);
        p.extend_from_slice(&[9, 9, 9, 0, 0, 0, 0, 0]);
        let ip = ipv4(&p).unwrap();
        assert_eq!(ip.payload, &[9, 9, 9]);
        assert_eq!(ip.protocol, 17);
        assert_eq!(ip.src, IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(ip.fragment, None);
    }

    #[test]
    fn ipv4_fragment_fields() {
        let p = ipv4_header([1; 4], [2; 4], 17, 0x1234, 0x2000 | 3, 8);
        let mut p = p;
        p.extend_from_slice(&[0; 8]);
        let f = ipv4(&p).unwrap().fragment.unwrap();
        assert_eq!(
            f,
            Fragment {
                id: 0x1234,
                offset: 24,
                more: true
            }
        );
    }

    #[test]
    fn ipv4_total_length_beyond_capture_is_truncated() {
        let mut p = ipv4_header([1; 4], [2; 4], 17, 0, 0, 100);
        p.extend_from_slice(&[0; 10]);
        assert!(matches!(ipv4(&p), Err(HeaderError::Truncated { .. })));
    }

    #[test]
    fn ipv6_skips_extension_headers_to_udp() {
        let mut p = vec![0x60, 0, 0, 0];
        let body: Vec<u8> = [
            // hop-by-hop (next: dest opts), 8 bytes
            vec![60, 0, 1, 4, 0, 0, 0, 0],
            // destination options (next: routing), 16 bytes
            vec![43, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            // routing (next: UDP), 8 bytes
            vec![17, 0, 0, 0, 0, 0, 0, 0],
            vec![0xab, 0xcd],
        ]
        .concat();
        p.extend_from_slice(&(body.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0, 64]);
        p.extend_from_slice(&[0; 15]);
        p.push(1);
        p.extend_from_slice(&[0; 15]);
        p.push(2);
        p.extend_from_slice(&body);
        p.extend_from_slice(&[0; 6]); // padding
        let ip = ipv6(&p).unwrap();
        assert_eq!(ip.protocol, 17);
        assert_eq!(ip.payload, &[0xab, 0xcd]);
        assert_eq!(ip.dst, "::2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_fragment_header() {
        let frag = [17, 0, 0x00, 0x09, 0, 0, 0, 7, 1, 2, 3];
        let (proto, rest, f) = ipv6_extensions(44, &frag).unwrap();
        assert_eq!(proto, 17);
        assert_eq!(rest, &[1, 2, 3]);
        assert_eq!(
            f,
            Some(Fragment {
                id: 7,
                offset: 8,
                more: true
            })
        );
    }

    #[test]
    fn udp_length_bounds_payload() {
        let mut u = udp_header(5060, 5060, 2);
        u.extend_from_slice(&[1, 2, 3]);
        assert_eq!(udp(&u).unwrap().payload, &[1, 2]);
        u[5] = 200;
        assert!(udp(&u).is_err());
    }

    #[test]
    fn gre_optional_fields_are_skipped() {
        let g = [
            0xb0, 0x00, 0x65, 0x58, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0xee,
        ];
        let p = gre(&g).unwrap();
        assert_eq!(p.protocol, 0x6558);
        assert!(p.sequenced);
        assert_eq!(p.payload, &[0xee]);
    }

    #[test]
    fn no_header_parser_panics_on_any_prefix() {
        let mut p = ipv4_header([1; 4], [2; 4], 6, 0, 0, 24);
        p.extend_from_slice(&[
            0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0, 0, 0, 0, 0, 0, 0xff,
            0xff, 0xff, 0xff,
        ]);
        for len in 0..=p.len() {
            let b = &p[..len];
            let _ = ipv4(b);
            let _ = ipv6(b);
            let _ = udp(b);
            let _ = tcp(b);
            let _ = gre(b);
            let _ = ipv6_extensions(0, b);
            let _ = ipv6_extensions(44, b);
        }
        assert_eq!(tcp(&p[20..]).unwrap().payload, &[0xff; 4]);
    }
}
