//! Link layer: strips the capture's link header (Ethernet, Linux cooked v1/v2, BSD loopback,
//! raw IP) and the shims that sit between it and IP (802.1Q/QinQ tags, PPPoE session, MPLS
//! labels).
//!
//! Receives one captured frame (or the inner Ethernet frame of a GRE/ERSPAN tunnel) and returns
//! the ethertype of what follows, the bytes that follow, and the outer VLAN id. It never looks
//! above the network layer, never copies, and never panics on short input: every read is
//! checked once against the slice length.

use thiserror::Error;

use super::LinkType;
use super::bytes::{be16, be32, from, u8_at};

pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;
pub(crate) const ETHERTYPE_TEB: u16 = 0x6558;
pub(crate) const ETHERTYPE_ERSPAN_II: u16 = 0x88be;
pub(crate) const ETHERTYPE_ERSPAN_III: u16 = 0x22eb;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;

const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// More stacked tags or labels than any sane network uses: stop instead of walking garbage.
const MAX_SHIMS: usize = 8;

/// Why a frame yielded no network-layer payload.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("{what} needs {needed} bytes but the frame has {available}")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("link payload is not IP (ethertype/protocol {0:#06x})")]
    NotIp(u16),
    #[error("BSD loopback address family {0} is neither IPv4 nor IPv6")]
    UnknownFamily(u32),
    #[error("more than {MAX_SHIMS} VLAN tags or MPLS labels")]
    TooManyShims,
}

/// What the link layer carries: `ethertype` says how to read `payload`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinkPayload<'a> {
    pub ethertype: u16,
    pub payload: &'a [u8],
    /// The outermost 802.1Q/802.1ad VLAN id, as the switch port that mirrored it saw it.
    pub vlan: Option<u16>,
}

fn need(what: &'static str, bytes: &[u8], needed: usize) -> Result<(), LinkError> {
    if bytes.len() < needed {
        Err(LinkError::Truncated {
            what,
            needed,
            available: bytes.len(),
        })
    } else {
        Ok(())
    }
}

fn ip_version_ethertype(payload: &[u8]) -> Result<u16, LinkError> {
    match payload.first().map(|b| b >> 4) {
        Some(4) => Ok(ETHERTYPE_IPV4),
        Some(6) => Ok(ETHERTYPE_IPV6),
        Some(v) => Err(LinkError::NotIp(u16::from(v))),
        None => Err(LinkError::Truncated {
            what: "raw IP version",
            needed: 1,
            available: 0,
        }),
    }
}

/// Strips the capture's link header.
pub(crate) fn decapsulate(link: LinkType, frame: &[u8]) -> Result<LinkPayload<'_>, LinkError> {
    match link {
        LinkType::Ethernet => ethernet(frame),
        LinkType::Raw => Ok(LinkPayload {
            ethertype: ip_version_ethertype(frame)?,
            payload: frame,
            vlan: None,
        }),
        LinkType::Ipv4 => Ok(LinkPayload {
            ethertype: ETHERTYPE_IPV4,
            payload: frame,
            vlan: None,
        }),
        LinkType::Ipv6 => Ok(LinkPayload {
            ethertype: ETHERTYPE_IPV6,
            payload: frame,
            vlan: None,
        }),
        LinkType::Null | LinkType::Loop => loopback(frame),
        LinkType::LinuxSll => {
            // packet type, ARPHRD type, address length, 8 address bytes, protocol. The
            // protocol is an ethertype for every ARPHRD we care about, loopback (772)
            // included, so the ARPHRD type is not consulted.
            need("Linux cooked header", frame, 16)?;
            shims(be16(frame, 14), from(frame, 16), None)
        }
        LinkType::LinuxSll2 => {
            // protocol, reserved, interface index, ARPHRD, packet type, address length,
            // 8 address bytes.
            need("Linux cooked v2 header", frame, 20)?;
            shims(be16(frame, 0), from(frame, 20), None)
        }
    }
}

/// BSD loopback: a 4-byte address family in the capturing host's byte order (DLT_NULL) or
/// network order (DLT_LOOP); writers disagree, so both orders are accepted.
fn loopback(frame: &[u8]) -> Result<LinkPayload<'_>, LinkError> {
    need("BSD loopback header", frame, 4)?;
    let raw = be32(frame, 0).to_be_bytes();
    let family_of = |family: u32| match family {
        2 => Some(ETHERTYPE_IPV4),
        // AF_INET6 differs per BSD: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS).
        24 | 28 | 30 => Some(ETHERTYPE_IPV6),
        _ => None,
    };
    let le = u32::from_le_bytes(raw);
    let be = u32::from_be_bytes(raw);
    match family_of(le).or_else(|| family_of(be)) {
        Some(ethertype) => Ok(LinkPayload {
            ethertype,
            payload: from(frame, 4),
            vlan: None,
        }),
        None => Err(LinkError::UnknownFamily(le)),
    }
}

/// Ethernet II (also the inner frame of GRE/TEB and ERSPAN).
pub(crate) fn ethernet(frame: &[u8]) -> Result<LinkPayload<'_>, LinkError> {
    need("Ethernet header", frame, 14)?;
    let ethertype = be16(frame, 12);
    if ethertype < 0x0600 {
        // 802.3 length field: LLC/SNAP frames (STP, CDP, ...) never carry our traffic.
        return Err(LinkError::NotIp(ethertype));
    }
    shims(ethertype, from(frame, 14), None)
}

/// Walks VLAN tags, PPPoE session headers and MPLS labels until a protocol the caller
/// understands appears.
fn shims(
    mut ethertype: u16,
    mut rest: &[u8],
    mut vlan: Option<u16>,
) -> Result<LinkPayload<'_>, LinkError> {
    for _ in 0..MAX_SHIMS {
        match ethertype {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                need("802.1Q tag", rest, 4)?;
                if vlan.is_none() {
                    vlan = Some(be16(rest, 0) & 0x0fff);
                }
                ethertype = be16(rest, 2);
                rest = from(rest, 4);
            }
            ETHERTYPE_PPPOE_SESSION => {
                // version/type, code, session id, length, then the PPP protocol field.
                need("PPPoE session header", rest, 8)?;
                let declared = usize::from(be16(rest, 4));
                let protocol = be16(rest, 6);
                let body = from(rest, 8);
                // The PPPoE length counts the PPP protocol field; it trims Ethernet padding.
                let body = match declared.checked_sub(2) {
                    Some(len) => body.get(..len).unwrap_or(body),
                    None => body,
                };
                return match protocol {
                    PPP_IPV4 => Ok(LinkPayload {
                        ethertype: ETHERTYPE_IPV4,
                        payload: body,
                        vlan,
                    }),
                    PPP_IPV6 => Ok(LinkPayload {
                        ethertype: ETHERTYPE_IPV6,
                        payload: body,
                        vlan,
                    }),
                    other => Err(LinkError::NotIp(other)),
                };
            }
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => {
                // Pop labels up to bottom-of-stack; MPLS does not say what it carries, so
                // the IP version nibble decides.
                let mut labels = rest;
                for _ in 0..MAX_SHIMS {
                    need("MPLS label", labels, 4)?;
                    let bottom = u8_at(labels, 2) & 0x01 != 0;
                    labels = from(labels, 4);
                    if bottom {
                        return Ok(LinkPayload {
                            ethertype: ip_version_ethertype(labels)?,
                            payload: labels,
                            vlan,
                        });
                    }
                }
                return Err(LinkError::TooManyShims);
            }
            _ => {
                return Ok(LinkPayload {
                    ethertype,
                    payload: rest,
                    vlan,
                });
            }
        }
    }
    Err(LinkError::TooManyShims)
}

/// Skips a GRE-carried ERSPAN header to the mirrored Ethernet frame.
pub(crate) fn erspan(ethertype: u16, sequenced: bool, payload: &[u8]) -> Result<&[u8], LinkError> {
    match ethertype {
        // Type I has no header at all; type II (signalled by the GRE sequence bit) has 8 bytes.
        ETHERTYPE_ERSPAN_II if !sequenced => Ok(payload),
        ETHERTYPE_ERSPAN_II => {
            need("ERSPAN II header", payload, 8)?;
            Ok(from(payload, 8))
        }
        _ => {
            // Type III: 12 bytes, plus an 8-byte platform-specific sub-header when O is set.
            need("ERSPAN III header", payload, 12)?;
            let len = if u8_at(payload, 11) & 0x01 != 0 {
                20
            } else {
                12
            };
            need("ERSPAN III platform sub-header", payload, len)?;
            Ok(from(payload, len))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth_header(ethertype: u16) -> Vec<u8> {
        let mut f = vec![0x02; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    #[test]
    fn ethernet_plain_ipv4() {
        let mut f = eth_header(0x0800);
        f.extend_from_slice(&[0x45, 0]);
        let p = decapsulate(LinkType::Ethernet, &f).unwrap();
        assert_eq!(p.ethertype, ETHERTYPE_IPV4);
        assert_eq!(p.payload, &[0x45, 0]);
        assert_eq!(p.vlan, None);
    }

    #[test]
    fn qinq_reports_outer_vlan() {
        let mut f = eth_header(0x88a8);
        f.extend_from_slice(&[0x20, 0x64, 0x81, 0x00]); // outer tag: PCP 1, VLAN 100, then 802.1Q
        f.extend_from_slice(&[0x00, 0x0a, 0x86, 0xdd]); // inner VLAN 10, then IPv6
        f.push(0x60);
        let p = decapsulate(LinkType::Ethernet, &f).unwrap();
        assert_eq!(p.vlan, Some(100));
        assert_eq!(p.ethertype, ETHERTYPE_IPV6);
        assert_eq!(p.payload, &[0x60]);
    }

    #[test]
    fn pppoe_session_trims_to_its_length() {
        let mut f = eth_header(0x8864);
        f.extend_from_slice(&[
            0x11, 0x00, 0x12, 0x34, 0x00, 0x04, 0x00, 0x21, 0x45, 0x00, 0xee, 0xee,
        ]);
        let p = decapsulate(LinkType::Ethernet, &f).unwrap();
        assert_eq!(p.ethertype, ETHERTYPE_IPV4);
        assert_eq!(p.payload, &[0x45, 0x00]);
    }

    #[test]
    fn mpls_stack_pops_to_ip() {
        let mut f = eth_header(0x8847);
        f.extend_from_slice(&[0, 0, 0x10, 64, 0, 0, 0x21, 64, 0x45]);
        let p = decapsulate(LinkType::Ethernet, &f).unwrap();
        assert_eq!(p.ethertype, ETHERTYPE_IPV4);
        assert_eq!(p.payload, &[0x45]);
    }

    #[test]
    fn sll_loopback_arphrd_is_accepted() {
        let mut f = vec![0, 0, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        f.push(0x45);
        let p = decapsulate(LinkType::LinuxSll, &f).unwrap();
        assert_eq!(p.ethertype, ETHERTYPE_IPV4);
        assert_eq!(p.payload, &[0x45]);
    }

    #[test]
    fn sll2_protocol_comes_first() {
        let mut f = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        f.push(0x60);
        let p = decapsulate(LinkType::LinuxSll2, &f).unwrap();
        assert_eq!(p.ethertype, ETHERTYPE_IPV6);
        assert_eq!(p.payload, &[0x60]);
    }

    #[test]
    fn null_accepts_either_byte_order_and_all_ipv6_families() {
        for hdr in [[2, 0, 0, 0], [0, 0, 0, 2]] {
            let f = [hdr[0], hdr[1], hdr[2], hdr[3], 0x45];
            assert_eq!(
                decapsulate(LinkType::Null, &f).unwrap().ethertype,
                ETHERTYPE_IPV4
            );
        }
        for fam in [24u32, 28, 30] {
            let mut f = fam.to_le_bytes().to_vec();
            f.push(0x60);
            assert_eq!(
                decapsulate(LinkType::Loop, &f).unwrap().ethertype,
                ETHERTYPE_IPV6
            );
            let mut f = fam.to_be_bytes().to_vec();
            f.push(0x60);
            assert_eq!(
                decapsulate(LinkType::Null, &f).unwrap().ethertype,
                ETHERTYPE_IPV6
            );
        }
        assert_eq!(
            decapsulate(LinkType::Null, &[7, 0, 0, 0, 0x45]),
            Err(LinkError::UnknownFamily(7))
        );
    }

    #[test]
    fn raw_uses_version_nibble() {
        assert_eq!(
            decapsulate(LinkType::Raw, &[0x45]).unwrap().ethertype,
            ETHERTYPE_IPV4
        );
        assert_eq!(
            decapsulate(LinkType::Raw, &[0x60]).unwrap().ethertype,
            ETHERTYPE_IPV6
        );
        assert!(decapsulate(LinkType::Raw, &[0x10]).is_err());
    }

    #[test]
    fn erspan_headers_are_skipped() {
        let inner = [0xaa; 14];
        assert_eq!(erspan(ETHERTYPE_ERSPAN_II, false, &inner).unwrap(), &inner);
        let mut ii = vec![0x10, 0, 0, 1, 0, 0, 0, 0];
        ii.extend_from_slice(&inner);
        assert_eq!(erspan(ETHERTYPE_ERSPAN_II, true, &ii).unwrap(), &inner);
        let mut iii = vec![0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        iii.extend_from_slice(&[0; 8]);
        iii.extend_from_slice(&inner);
        assert_eq!(erspan(ETHERTYPE_ERSPAN_III, true, &iii).unwrap(), &inner);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut f = eth_header(0x8100);
        f.extend_from_slice(&[0, 5, 0x88, 0x64, 0x11, 0, 0, 1, 0, 2, 0, 0x21]);
        for len in 0..f.len() {
            for link in [
                LinkType::Ethernet,
                LinkType::LinuxSll,
                LinkType::LinuxSll2,
                LinkType::Null,
            ] {
                let _ = decapsulate(link, &f[..len]);
            }
        }
        assert!(matches!(
            decapsulate(LinkType::Ethernet, &f[..15]),
            Err(LinkError::Truncated { .. })
        ));
    }
}
