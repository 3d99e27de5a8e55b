//! Stage 2 of the agent pipeline (README "Source layout": frames → **net** → datagrams): turns captured
//! link-layer frames into UDP datagrams and framed SIP-over-TCP messages, and unwraps HEP v3.
//!
//! Receives `(capture time, link type, frame bytes)` from a capture source, or a HEP packet
//! from the HEP listener; emits `Datagram`s through a sink callback, borrowed from the frame
//! (or, after IP reassembly, TCP framing or HEP inflation, from a buffer the decoder owns) for
//! the duration of the call. The decoder owns all reassembly state and is advanced only by the
//! capture times it is given (`tick()`), never by a clock.
//!
//! It must never panic on any input, never allocate per packet outside the bounded
//! reassembly buffers, never let a table grow past its configured bound, and never drop
//! anything without counting it in `NetCounters`. It does not interpret SIP or RTP beyond
//! recognising a SIP start line and Content-Length for TCP framing.
//!
//! Hand-written rather than built on etherparse: etherparse has no Linux SLL2, GRE or ERSPAN,
//! rejects loopback SLL (ARPHRD 772), and its defragmentation pool is unbounded.
// A parsing stage of hostile input: no unwrap, no expect, no unchecked indexing (a fuzz
// target guards each parser; README "Fuzzing").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod bytes;
mod counters;
mod defrag;
pub mod hep;
mod ip;
mod link;
mod tcp;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use flate2::Decompress;

pub use counters::NetCounters;
pub use defrag::DefragError;
pub use hep::HepError;
pub use hep::{HepOut, encode as encode_hep};
pub use ip::HeaderError;
pub use link::LinkError;
pub use tcp::{FrameResult, sip_frame_len, starts_with_sip_line};

use crate::time::Timestamp;
use defrag::{FragmentKey, FragmentOutcome, FragmentTable};
use ip::IpPacket;
use tcp::{FlowKey, TcpFlows};

/// Tunnels (IP-in-IP, GRE, ERSPAN, TEB) followed before a frame is given up as hostile.
const MAX_ENCAPSULATION_DEPTH: u8 = 4;

/// The link-layer header type of a capture, as named by pcap's LINKTYPE_ values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    /// Bare IPv4/IPv6: pcap LINKTYPE_RAW 101 and the DLT_RAW values 12/14.
    Raw,
    /// Linux cooked capture v1 (113).
    LinuxSll,
    /// Linux cooked capture v2 (276).
    LinuxSll2,
    /// BSD loopback, host byte order (0).
    Null,
    /// OpenBSD loopback, network byte order (108).
    Loop,
    /// Bare IPv4 (228).
    Ipv4,
    /// Bare IPv6 (229).
    Ipv6,
}

impl LinkType {
    /// Maps a pcap/pcapng LINKTYPE_ value; `None` for link types the decoder does not read.
    pub fn from_pcap(linktype: u32) -> Option<LinkType> {
        match linktype {
            0 => Some(LinkType::Null),
            1 => Some(LinkType::Ethernet),
            12 | 14 | 101 => Some(LinkType::Raw),
            108 => Some(LinkType::Loop),
            113 => Some(LinkType::LinuxSll),
            228 => Some(LinkType::Ipv4),
            229 => Some(LinkType::Ipv6),
            276 => Some(LinkType::LinuxSll2),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One UDP datagram, or one complete SIP message framed from a TCP stream.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    /// Capture time (for HEP: the time the HEP agent captured it).
    pub time: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// For HEP: the original transport (anything not TCP, e.g. SCTP, is reported as Udp:
    /// message-oriented).
    pub transport: Transport,
    pub payload: &'a [u8],
    /// Outer 802.1Q VLAN id, or the HEP VLAN chunk.
    pub vlan: Option<u16>,
    pub via_hep: bool,
}

/// Bounds and ports of the network stage.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// IP datagrams in reassembly at once (each at most 64 KiB).
    pub max_fragment_sets: usize,
    /// An incomplete datagram is dropped this long (capture time) after its first fragment.
    pub fragment_timeout: Duration,
    /// TCP directions tracked at once.
    pub max_tcp_flows: usize,
    /// Bytes held per TCP direction (in-order plus out-of-order); also the largest SIP
    /// message accepted over TCP.
    pub max_tcp_buffer: usize,
    pub tcp_idle_timeout: Duration,
    /// UDP destination ports of HEP collectors. Payloads starting with "HEP3" are decoded as
    /// HEP on any port; to these ports anything else (HEP v1/v2, garbage) is rejected
    /// (counted) instead of being passed on as a plain datagram.
    pub hep_ports: Vec<u16>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            max_fragment_sets: 4096,
            fragment_timeout: Duration::from_secs(30),
            max_tcp_flows: 16_384,
            max_tcp_buffer: 256 * 1024,
            tcp_idle_timeout: Duration::from_secs(300),
            hep_ports: vec![9060],
        }
    }
}

/// Where a packet is in its decoding: the capture time, the outer VLAN and how many tunnels
/// deep.
#[derive(Clone, Copy, Debug)]
struct Layer {
    time: Timestamp,
    vlan: Option<u16>,
    depth: u8,
}

/// The network stage: link layer to datagrams, with IP and TCP reassembly state.
pub struct NetDecoder {
    hep_ports: Vec<u16>,
    /// Live capture (the agent): HEP found on the wire is timed by the frame's capture
    /// time, like HEP received by the listener; a capture file keeps each packet's own
    /// timestamp chunk.
    live: bool,
    /// The agent's own HEP listeners: HEP captured on its way to them is not decoded here.
    own_hep_listeners: Vec<SocketAddr>,
    fragments: FragmentTable,
    tcp: TcpFlows,
    inflater: Decompress,
    /// Output of HEP inflation; sized once, on the first compressed packet.
    inflated: Vec<u8>,
    pub counters: NetCounters,
}

impl NetDecoder {
    pub fn new(config: NetConfig) -> Self {
        NetDecoder {
            fragments: FragmentTable::new(config.max_fragment_sets, config.fragment_timeout),
            tcp: TcpFlows::new(
                config.max_tcp_flows,
                config.max_tcp_buffer,
                config.tcp_idle_timeout,
            ),
            hep_ports: config.hep_ports,
            live: false,
            own_hep_listeners: Vec::new(),
            inflater: Decompress::new(true),
            inflated: Vec::new(),
            counters: NetCounters::default(),
        }
    }

    /// Live capture by an agent that also listens for HEP on `own_hep_listeners`: the
    /// copies of that feed a capture interface sees (the loopback, the listener's own
    /// address) are left to the listener, and any other HEP on the wire is timed by the
    /// capture, not by the sender's clock.
    pub fn set_live(&mut self, own_hep_listeners: Vec<SocketAddr>) {
        self.live = true;
        self.own_hep_listeners = own_hep_listeners;
    }

    fn bound_for_own_listener(&self, dst: SocketAddr) -> bool {
        self.own_hep_listeners
            .iter()
            .any(|l| l.port() == dst.port() && (l.ip().is_unspecified() || l.ip() == dst.ip()))
    }

    /// Decodes one frame; calls `sink` zero or more times (a frame can complete a reassembled
    /// IP datagram, or a TCP segment can complete several SIP messages).
    pub fn frame(
        &mut self,
        time: Timestamp,
        link: LinkType,
        frame: &[u8],
        sink: &mut dyn FnMut(&Datagram<'_>),
    ) {
        self.counters.frames += 1;
        self.counters.bytes += frame.len() as u64;
        match link::decapsulate(link, frame) {
            Ok(l2) => {
                let layer = Layer {
                    time,
                    vlan: l2.vlan,
                    depth: 0,
                };
                self.ethertype(layer, l2.ethertype, l2.payload, sink);
            }
            Err(e) => self.count_link_error(&e),
        }
    }

    /// Counts a frame whose pcap link type `LinkType::from_pcap` did not recognise.
    pub fn skip_unsupported_link(&mut self, frame: &[u8]) {
        self.counters.frames += 1;
        self.counters.bytes += frame.len() as u64;
        self.counters.unsupported_link += 1;
    }

    /// Decodes a HEP v3 packet that arrived on a HEP socket (used by the live agent too):
    /// emits its inner datagram (SIP over UDP/TCP, or RTP) with the HEP's own addresses and
    /// timestamp, via_hep = true. A packet without a timestamp chunk is rejected, since
    /// there is no capture time to give it.
    pub fn hep(&mut self, hep_packet: &[u8], sink: &mut dyn FnMut(&Datagram<'_>)) {
        self.hep_packet(None, false, hep_packet, sink);
    }

    /// Decodes a HEP v3 packet received live at `arrival`, which becomes its capture time
    /// (the sender's timestamp is ignored). With `auth_key` set, a packet whose chunk 0x000e
    /// does not carry exactly that key is rejected and counted (`hep_auth_failed`).
    pub fn hep_received(
        &mut self,
        arrival: Timestamp,
        hep_packet: &[u8],
        auth_key: Option<&[u8]>,
        sink: &mut dyn FnMut(&Datagram<'_>),
    ) {
        if let Some(key) = auth_key {
            let authentic = hep::parse(hep_packet)
                .ok()
                .and_then(|p| p.auth_key)
                .is_some_and(|k| constant_time_eq(k, key));
            if !authentic {
                self.counters.hep_auth_failed += 1;
                return;
            }
        }
        self.hep_packet(Some(arrival), true, hep_packet, sink);
    }

    /// Expires stale fragment sets and idle TCP flows (counted). Call with capture time.
    pub fn tick(&mut self, now: Timestamp) {
        self.fragments.expire(now, &mut self.counters);
        self.tcp.expire(now, &mut self.counters);
    }

    /// IP datagrams currently in reassembly.
    pub fn fragment_sets(&self) -> usize {
        self.fragments.len()
    }

    /// TCP directions currently tracked.
    pub fn tcp_flows(&self) -> usize {
        self.tcp.len()
    }

    fn count_link_error(&mut self, e: &LinkError) {
        match e {
            LinkError::Truncated { .. } => self.counters.truncated += 1,
            LinkError::NotIp(_) | LinkError::UnknownFamily(_) | LinkError::TooManyShims => {
                self.counters.non_ip += 1
            }
        }
    }

    fn count_header_error(&mut self, e: &HeaderError) {
        match e {
            HeaderError::Truncated { .. } => self.counters.truncated += 1,
            HeaderError::Malformed { .. } => self.counters.bad_ip_header += 1,
        }
    }

    fn deeper(&mut self, layer: Layer) -> Option<Layer> {
        if layer.depth >= MAX_ENCAPSULATION_DEPTH {
            self.counters.encapsulation_too_deep += 1;
            return None;
        }
        Some(Layer {
            depth: layer.depth + 1,
            ..layer
        })
    }

    fn ethertype(
        &mut self,
        layer: Layer,
        ethertype: u16,
        payload: &[u8],
        sink: &mut dyn FnMut(&Datagram<'_>),
    ) {
        match ethertype {
            link::ETHERTYPE_IPV4 => self.ipv4(layer, payload, sink),
            link::ETHERTYPE_IPV6 => self.ipv6(layer, payload, sink),
            link::ETHERTYPE_TEB => {
                let Some(inner) = self.deeper(layer) else {
                    return;
                };
                match link::ethernet(payload) {
                    Ok(l2) => {
                        let inner = Layer {
                            vlan: layer.vlan.or(l2.vlan),
                            ..inner
                        };
                        self.ethertype(inner, l2.ethertype, l2.payload, sink);
                    }
                    Err(e) => self.count_link_error(&e),
                }
            }
            _ => self.counters.non_ip += 1,
        }
    }

    fn ipv4(&mut self, layer: Layer, bytes: &[u8], sink: &mut dyn FnMut(&Datagram<'_>)) {
        match ip::ipv4(bytes) {
            Ok(packet) => {
                self.counters.ipv4 += 1;
                self.ip_payload(layer, packet, false, sink);
            }
            Err(e) => self.count_header_error(&e),
        }
    }

    fn ipv6(&mut self, layer: Layer, bytes: &[u8], sink: &mut dyn FnMut(&Datagram<'_>)) {
        match ip::ipv6(bytes) {
            Ok(packet) => {
                self.counters.ipv6 += 1;
                self.ip_payload(layer, packet, true, sink);
            }
            Err(e) => self.count_header_error(&e),
        }
    }

    fn ip_payload(
        &mut self,
        layer: Layer,
        packet: IpPacket<'_>,
        v6: bool,
        sink: &mut dyn FnMut(&Datagram<'_>),
    ) {
        let Some(fragment) = packet.fragment else {
            self.transport(
                layer,
                packet.src,
                packet.dst,
                packet.protocol,
                packet.payload,
                sink,
            );
            return;
        };
        let key = FragmentKey {
            src: packet.src,
            dst: packet.dst,
            protocol: packet.protocol,
            id: fragment.id,
        };
        let outcome = self.fragments.insert(
            layer.time,
            key,
            fragment,
            packet.payload,
            &mut self.counters,
        );
        let FragmentOutcome::Complete(datagram) = outcome else {
            return;
        };
        if !v6 {
            self.transport(
                layer,
                packet.src,
                packet.dst,
                packet.protocol,
                &datagram,
                sink,
            );
            return;
        }
        // In IPv6 the headers after the fragment header are part of the reassembled bytes.
        match ip::ipv6_extensions(packet.protocol, &datagram) {
            Ok((protocol, payload, None)) => {
                self.transport(layer, packet.src, packet.dst, protocol, payload, sink)
            }
            Ok((_, _, Some(_))) => self.counters.bad_ip_header += 1,
            Err(e) => self.count_header_error(&e),
        }
    }

    fn transport(
        &mut self,
        layer: Layer,
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        payload: &[u8],
        sink: &mut dyn FnMut(&Datagram<'_>),
    ) {
        match protocol {
            ip::PROTO_UDP => match ip::udp(payload) {
                Ok(udp) => {
                    self.counters.udp += 1;
                    let src = SocketAddr::new(src, udp.src_port);
                    let dst = SocketAddr::new(dst, udp.dst_port);
                    if udp.payload.starts_with(b"HEP3") {
                        if self.bound_for_own_listener(dst) {
                            self.counters.hep_to_own_listener += 1;
                        } else {
                            self.hep_packet(Some(layer.time), self.live, udp.payload, sink);
                        }
                    } else if self.hep_ports.contains(&udp.dst_port) {
                        self.counters.hep_rejected += 1;
                    } else {
                        sink(&Datagram {
                            time: layer.time,
                            src,
                            dst,
                            transport: Transport::Udp,
                            payload: udp.payload,
                            vlan: layer.vlan,
                            via_hep: false,
                        });
                    }
                }
                Err(e) => self.count_header_error(&e),
            },
            ip::PROTO_TCP => match ip::tcp(payload) {
                Ok(segment) => {
                    let key = FlowKey {
                        vlan: layer.vlan,
                        src: SocketAddr::new(src, segment.src_port),
                        dst: SocketAddr::new(dst, segment.dst_port),
                    };
                    self.tcp
                        .segment(layer.time, key, &segment, &mut self.counters, sink);
                }
                Err(e) => self.count_header_error(&e),
            },
            ip::PROTO_IPV4_IN_IP => {
                if let Some(inner) = self.deeper(layer) {
                    self.ipv4(inner, payload, sink);
                }
            }
            ip::PROTO_IPV6_IN_IP => {
                if let Some(inner) = self.deeper(layer) {
                    self.ipv6(inner, payload, sink);
                }
            }
            ip::PROTO_GRE => self.gre(layer, payload, sink),
            _ => self.counters.other_transport += 1,
        }
    }

    fn gre(&mut self, layer: Layer, payload: &[u8], sink: &mut dyn FnMut(&Datagram<'_>)) {
        let Some(inner) = self.deeper(layer) else {
            return;
        };
        let gre = match ip::gre(payload) {
            Ok(gre) => gre,
            Err(e) => return self.count_header_error(&e),
        };
        match gre.protocol {
            link::ETHERTYPE_ERSPAN_II | link::ETHERTYPE_ERSPAN_III => {
                match link::erspan(gre.protocol, gre.sequenced, gre.payload) {
                    Ok(frame) => self.ethertype(inner, link::ETHERTYPE_TEB, frame, sink),
                    Err(e) => self.count_link_error(&e),
                }
            }
            protocol => self.ethertype(inner, protocol, gre.payload, sink),
        }
    }

    fn hep_packet(
        &mut self,
        fallback_time: Option<Timestamp>,
        prefer_fallback: bool,
        bytes: &[u8],
        sink: &mut dyn FnMut(&Datagram<'_>),
    ) {
        let Ok(packet) = hep::parse(bytes) else {
            self.counters.hep_rejected += 1;
            return;
        };
        let time = if prefer_fallback {
            fallback_time.or(packet.time)
        } else {
            packet.time.or(fallback_time)
        };
        let Some(time) = time else {
            self.counters.hep_rejected += 1;
            return;
        };
        let wanted = matches!(packet.proto_type, hep::HEP_SIP | hep::HEP_RTP);
        let payload = match packet.payload {
            Some(_) if !wanted => None,
            None => None,
            Some(hep::HepPayload::Plain(p)) => Some(p),
            Some(hep::HepPayload::Compressed(z)) => {
                if self.inflated.len() < hep::MAX_INFLATED {
                    self.inflated.resize(hep::MAX_INFLATED, 0);
                }
                match hep::inflate(&mut self.inflater, z, &mut self.inflated) {
                    Ok(p) => Some(p),
                    Err(_) => {
                        self.counters.hep_rejected += 1;
                        return;
                    }
                }
            }
        };
        self.counters.hep_packets += 1;
        let Some(payload) = payload else {
            self.counters.hep_skipped += 1;
            return;
        };
        let transport = if packet.ip_protocol == ip::PROTO_TCP {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        sink(&Datagram {
            time,
            src: packet.src,
            dst: packet.dst,
            transport,
            payload,
            vlan: packet.vlan,
            via_hep: true,
        });
    }
}

/// Compares a secret without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ip::tests::{ipv4_header, udp_header};

    const OPTIONS: &[u8] = b"OPTIONS sip:a@example.com SIP/2.0\r\nContent-Length: 0\r\n\r\n";

    struct Seen {
        time: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        transport: Transport,
        payload: Vec<u8>,
        vlan: Option<u16>,
        via_hep: bool,
    }

    fn run(decoder: &mut NetDecoder, link: LinkType, frames: &[Vec<u8>]) -> Vec<Seen> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            decoder.frame(Timestamp::from_millis(i as u64), link, f, &mut |d| {
                out.push(Seen {
                    time: d.time,
                    src: d.src,
                    dst: d.dst,
                    transport: d.transport,
                    payload: d.payload.to_vec(),
                    vlan: d.vlan,
                    via_hep: d.via_hep,
                })
            });
        }
        out
    }

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x02; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
        let mut p = ipv4_header([10, 0, 0, 1], [10, 0, 0, 2], 17, 1, 0, 8 + payload.len());
        p.extend_from_slice(&udp_header(5060, 5062, payload.len()));
        p.extend_from_slice(payload);
        p
    }

    fn ipv6_packet(next: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(body.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        p.extend_from_slice(
            &"2001:db8::2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn vlan_tagged_udp_sip() {
        let mut tagged = vec![0x00, 0x2a, 0x08, 0x00];
        tagged.extend_from_slice(&ipv4_udp(OPTIONS));
        tagged.extend_from_slice(&[0; 4]); // Ethernet padding
        let mut d = NetDecoder::new(NetConfig::default());
        let out = run(&mut d, LinkType::Ethernet, &[eth(0x8100, &tagged)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, OPTIONS);
        assert_eq!(out[0].vlan, Some(42));
        assert_eq!(out[0].src, "10.0.0.1:5060".parse().unwrap());
        assert_eq!(out[0].dst, "10.0.0.2:5062".parse().unwrap());
        assert_eq!(out[0].transport, Transport::Udp);
        assert!(!out[0].via_hep);
        assert_eq!(d.counters.udp, 1);
        assert_eq!(d.counters.ipv4, 1);
    }

    #[test]
    fn every_truncation_is_counted_never_a_panic() {
        let mut tagged = vec![0x00, 0x2a, 0x08, 0x00];
        tagged.extend_from_slice(&ipv4_udp(OPTIONS));
        let frame = eth(0x8100, &tagged);
        let mut d = NetDecoder::new(NetConfig::default());
        for len in 0..frame.len() {
            let out = run(&mut d, LinkType::Ethernet, &[frame[..len].to_vec()]);
            assert!(out.is_empty(), "len {len}");
        }
        // Every prefix fails somewhere: too short for a header, or the IP length says more.
        assert_eq!(d.counters.truncated, frame.len() as u64);
        for link in [
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::Null,
            LinkType::Raw,
        ] {
            for len in 0..frame.len() {
                d.frame(Timestamp::ZERO, link, &frame[..len], &mut |_| {});
            }
        }
    }

    #[test]
    fn raw_ipv6_with_extension_headers() {
        let mut body = vec![17, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop, next UDP
        let mut udp = udp_header(5060, 5060, OPTIONS.len());
        udp.extend_from_slice(OPTIONS);
        body.extend_from_slice(&udp);
        let mut d = NetDecoder::new(NetConfig::default());
        let out = run(&mut d, LinkType::Raw, &[ipv6_packet(0, &body)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, OPTIONS);
        assert_eq!(out[0].src, "[2001:db8::1]:5060".parse().unwrap());
        assert_eq!(d.counters.ipv6, 1);
    }

    fn fragments_of(payload: &[u8], id: u16, cut: usize) -> Vec<Vec<u8>> {
        let mut udp = udp_header(5060, 5060, payload.len());
        udp.extend_from_slice(payload);
        udp.chunks(cut)
            .enumerate()
            .map(|(i, chunk)| {
                let more = (i + 1) * cut < udp.len();
                let frag = ((i * cut / 8) as u16) | if more { 0x2000 } else { 0 };
                let mut p = ipv4_header([10, 0, 0, 1], [10, 0, 0, 2], 17, id, frag, chunk.len());
                p.extend_from_slice(chunk);
                eth(0x0800, &p)
            })
            .collect()
    }

    #[test]
    fn ipv4_fragments_in_order_reversed_and_duplicated() {
        let invite = [
            &b"INVITE sip:b@example.com SIP/2.0\r\nContent-Length: 200\r\n\r\n"[..],
            &[b'v'; 200],
        ]
        .concat();
        let frags = fragments_of(&invite, 7, 64);
        assert!(frags.len() >= 4);
        let mut reversed = frags.clone();
        reversed.reverse();
        let mut duplicated = frags.clone();
        duplicated.insert(2, frags[1].clone());
        duplicated.insert(3, frags[0].clone());
        for frames in [frags, reversed, duplicated] {
            let mut d = NetDecoder::new(NetConfig::default());
            let out = run(&mut d, LinkType::Ethernet, &frames);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].payload, invite);
            assert_eq!(d.counters.reassembled, 1);
            assert_eq!(d.fragment_sets(), 0);
        }
    }

    #[test]
    fn never_completed_fragments_expire_on_tick() {
        let frags = fragments_of(&[b'x'; 300], 9, 64);
        let mut d = NetDecoder::new(NetConfig::default());
        let out = run(&mut d, LinkType::Ethernet, &frags[..frags.len() - 1]);
        assert!(out.is_empty());
        assert_eq!(d.fragment_sets(), 1);
        d.tick(Timestamp::from_secs_nanos(29, 0));
        assert_eq!(d.fragment_sets(), 1);
        d.tick(Timestamp::from_secs_nanos(31, 0));
        assert_eq!(d.fragment_sets(), 0);
        assert_eq!(d.counters.fragments_expired, 1);
    }

    #[test]
    fn ipv6_fragments_reassemble() {
        let mut udp = udp_header(5060, 5060, OPTIONS.len());
        udp.extend_from_slice(OPTIONS);
        let (a, b) = udp.split_at(24);
        let frag = |offset: usize, more: bool, bytes: &[u8]| {
            let word = ((offset / 8) as u16) << 3 | u16::from(more);
            let mut body = vec![17, 0];
            body.extend_from_slice(&word.to_be_bytes());
            body.extend_from_slice(&0xdead_beefu32.to_be_bytes());
            body.extend_from_slice(bytes);
            ipv6_packet(44, &body)
        };
        let mut d = NetDecoder::new(NetConfig::default());
        let out = run(
            &mut d,
            LinkType::Ipv6,
            &[frag(24, false, b), frag(0, true, a)],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, OPTIONS);
    }

    #[test]
    fn gre_teb_erspan_and_ip_in_ip_reach_the_inner_udp() {
        let inner_eth = eth(0x0800, &ipv4_udp(OPTIONS));
        let outer = |proto: u8, payload: &[u8]| {
            let mut p = ipv4_header([192, 0, 2, 1], [192, 0, 2, 2], proto, 0, 0, payload.len());
            p.extend_from_slice(payload);
            eth(0x0800, &p)
        };
        let teb = [&[0x00, 0x00, 0x65, 0x58][..], &inner_eth].concat();
        let erspan2 = [
            &[0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1][..],
            &[0x10, 0, 0, 1, 0, 0, 0, 0],
            &inner_eth,
        ]
        .concat();
        let erspan3 = [
            &[0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1][..],
            &[0; 12],
            &inner_eth,
        ]
        .concat();
        let ipip = ipv4_udp(OPTIONS);
        let frames = [
            outer(47, &teb),
            outer(47, &erspan2),
            outer(47, &erspan3),
            outer(4, &ipip),
        ];
        let mut d = NetDecoder::new(NetConfig::default());
        let out = run(&mut d, LinkType::Ethernet, &frames);
        assert_eq!(out.len(), 4);
        for o in &out {
            assert_eq!(o.payload, OPTIONS);
            assert_eq!(o.src, "10.0.0.1:5060".parse().unwrap());
        }
    }

    #[test]
    fn tunnel_depth_is_bounded() {
        let mut p = ipv4_udp(OPTIONS);
        for _ in 0..10 {
            let mut outer = ipv4_header([1; 4], [2; 4], 4, 0, 0, p.len());
            outer.extend_from_slice(&p);
            p = outer;
        }
        let mut d = NetDecoder::new(NetConfig::default());
        assert!(run(&mut d, LinkType::Raw, &[p]).is_empty());
        assert_eq!(d.counters.encapsulation_too_deep, 1);
    }

    #[test]
    fn hep_over_udp_emits_the_inner_datagram() {
        let hep = hep::tests::hep_packet(1, 17, 0x000f, OPTIONS);
        let mut p = ipv4_header([10, 0, 0, 9], [10, 0, 0, 10], 17, 0, 0, 8 + hep.len());
        let mut udp = udp_header(40000, 9060, hep.len());
        udp.extend_from_slice(&hep);
        p.extend_from_slice(&udp);
        let mut d = NetDecoder::new(NetConfig::default());
        let out = run(&mut d, LinkType::Ethernet, &[eth(0x0800, &p)]);
        assert_eq!(out.len(), 1);
        assert!(out[0].via_hep);
        assert_eq!(out[0].payload, OPTIONS);
        assert_eq!(out[0].src, "192.0.2.1:5060".parse().unwrap());
        assert_eq!(
            out[0].time,
            Timestamp::from_secs_nanos(1_700_000_000, 250_000_000)
        );
        assert_eq!(d.counters.hep_packets, 1);
    }

    /// An agent capturing the interface its own HEP listener is on sees that feed twice:
    /// the captured copy is left to the listener. Other HEP on the wire is decoded, timed by
    /// the capture (the sender's clock may be anywhere).
    #[test]
    fn live_capture_leaves_its_own_hep_feed_to_the_listener() {
        let hep = hep::tests::hep_packet(1, 17, 0x000f, OPTIONS);
        let frame = |dst: [u8; 4], port: u16| {
            let mut p = ipv4_header([10, 0, 0, 9], dst, 17, 0, 0, 8 + hep.len());
            let mut udp = udp_header(40000, port, hep.len());
            udp.extend_from_slice(&hep);
            p.extend_from_slice(&udp);
            eth(0x0800, &p)
        };
        let mut d = NetDecoder::new(NetConfig::default());
        d.set_live(vec!["10.0.0.10:9060".parse().unwrap()]);
        let out = run(
            &mut d,
            LinkType::Ethernet,
            &[frame([10, 0, 0, 10], 9060), frame([10, 0, 0, 11], 9060)],
        );
        assert_eq!(d.counters.hep_to_own_listener, 1);
        assert_eq!(out.len(), 1, "another collector's feed is still decoded");
        assert_eq!(out[0].payload, OPTIONS);
        assert_eq!(out[0].time, Timestamp::from_millis(1), "capture time");

        let mut any = NetDecoder::new(NetConfig::default());
        any.set_live(vec!["0.0.0.0:9060".parse().unwrap()]);
        let out = run(&mut any, LinkType::Ethernet, &[frame([10, 0, 0, 11], 9060)]);
        assert!(out.is_empty(), "a listener on every address");
        assert_eq!(any.counters.hep_to_own_listener, 1);
    }

    #[test]
    fn hep_socket_compressed_tcp_and_skipped_types() {
        let mut d = NetDecoder::new(NetConfig::default());
        let mut out = Vec::new();
        let compressed = hep::tests::hep_packet(1, 6, 0x0010, &hep::tests::zlib(OPTIONS));
        let rtcp = hep::tests::hep_packet(5, 17, 0x000f, b"{\"type\":200}");
        let broken = &compressed[..compressed.len() - 3];
        for p in [&compressed[..], &rtcp, broken] {
            d.hep(p, &mut |dg| {
                out.push((dg.transport, dg.payload.to_vec(), dg.via_hep))
            });
        }
        assert_eq!(out, vec![(Transport::Tcp, OPTIONS.to_vec(), true)]);
        assert_eq!(d.counters.hep_packets, 2);
        assert_eq!(d.counters.hep_skipped, 1);
        assert_eq!(d.counters.hep_rejected, 1);
    }

    #[test]
    fn tcp_sip_through_the_whole_stack() {
        let tcp = |seq: u32, flags: u8, payload: &[u8]| {
            let mut t = 5060u16.to_be_bytes().to_vec();
            t.extend_from_slice(&5060u16.to_be_bytes());
            t.extend_from_slice(&seq.to_be_bytes());
            t.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
            t.extend_from_slice(payload);
            let mut p = ipv4_header([10, 0, 0, 1], [10, 0, 0, 2], 6, 0, 0, t.len());
            p.extend_from_slice(&t);
            let mut f = vec![2, 0, 0, 0];
            f.extend_from_slice(&p);
            f
        };
        let two = [OPTIONS, OPTIONS].concat();
        let frames = [
            tcp(99, 0x02, &[]),
            tcp(100, 0x18, &two[..30]),
            tcp(130, 0x18, &two[30..]),
        ];
        let mut d = NetDecoder::new(NetConfig::default());
        let out = run(&mut d, LinkType::Null, &frames);
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|o| o.payload == OPTIONS && o.transport == Transport::Tcp)
        );
        assert_eq!(out[1].time, Timestamp::from_millis(2));
        assert_eq!(d.counters.sip_tcp_messages, 2);
    }

    #[test]
    fn linktype_mapping() {
        assert_eq!(LinkType::from_pcap(1), Some(LinkType::Ethernet));
        assert_eq!(LinkType::from_pcap(101), Some(LinkType::Raw));
        assert_eq!(LinkType::from_pcap(12), Some(LinkType::Raw));
        assert_eq!(LinkType::from_pcap(113), Some(LinkType::LinuxSll));
        assert_eq!(LinkType::from_pcap(276), Some(LinkType::LinuxSll2));
        assert_eq!(LinkType::from_pcap(0), Some(LinkType::Null));
        assert_eq!(LinkType::from_pcap(108), Some(LinkType::Loop));
        assert_eq!(LinkType::from_pcap(228), Some(LinkType::Ipv4));
        assert_eq!(LinkType::from_pcap(229), Some(LinkType::Ipv6));
        assert_eq!(LinkType::from_pcap(105), None);
    }

    // ---- corpus -------------------------------------------------------------------------

    const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

    struct Frame {
        time: Timestamp,
        link: Option<LinkType>,
        data: Vec<u8>,
    }

    /// Reads every frame of a pcap or pcapng file, keeping each pcapng interface's link type
    /// and timestamp resolution.
    fn read_capture(path: &std::path::Path) -> Vec<Frame> {
        use pcap_parser::traits::PcapNGPacketBlock;
        use pcap_parser::{Block, PcapBlockOwned, PcapError, create_reader};
        let file = std::fs::File::open(path).unwrap();
        let mut reader = create_reader(1 << 20, file).unwrap();
        let mut frames = Vec::new();
        let mut legacy = (None, false);
        // (link type, units per second, offset seconds) per pcapng interface.
        let mut interfaces: Vec<(Option<LinkType>, u64, i64)> = Vec::new();
        loop {
            match reader.next() {
                Ok((offset, block)) => {
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            legacy = (
                                LinkType::from_pcap(h.network.0 as u32),
                                h.is_nanosecond_precision(),
                            );
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let frac = if legacy.1 {
                                b.ts_usec
                            } else {
                                b.ts_usec.saturating_mul(1000)
                            };
                            frames.push(Frame {
                                time: Timestamp::from_secs_nanos(u64::from(b.ts_sec), frac),
                                link: legacy.0,
                                data: b.data.to_vec(),
                            });
                        }
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => interfaces.push((
                            LinkType::from_pcap(idb.linktype.0 as u32),
                            idb.ts_resolution().unwrap_or(1_000_000),
                            idb.ts_offset(),
                        )),
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let (link, resolution, offset) = interfaces
                                .get(epb.if_id as usize)
                                .copied()
                                .unwrap_or((None, 1_000_000, 0));
                            let (secs, frac) = epb.decode_ts(offset as u64, resolution);
                            let nanos = u64::from(frac) * 1_000_000_000 / resolution.max(1);
                            frames.push(Frame {
                                time: Timestamp::from_secs_nanos(u64::from(secs), nanos as u32),
                                link,
                                data: epb.packet_data().to_vec(),
                            });
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            let link = interfaces.first().and_then(|i| i.0);
                            let time = frames.last().map_or(Timestamp::ZERO, |f: &Frame| f.time);
                            frames.push(Frame {
                                time,
                                link,
                                data: spb.packet_data().to_vec(),
                            });
                        }
                        PcapBlockOwned::NG(_) => {}
                    }
                    reader.consume(offset);
                }
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => {
                    if reader.refill().is_err() {
                        break;
                    }
                }
                Err(e) => panic!("{}: {e:?}", path.display()),
            }
        }
        frames
    }

    fn is_rtp(payload: &[u8]) -> bool {
        payload.len() >= 12 && payload[0] >> 6 == 2 && !(72..=79).contains(&(payload[1] & 0x7f))
    }

    fn endpoint(s: &str) -> Option<SocketAddr> {
        s.parse().ok().or_else(|| {
            let (ip, port) = s.rsplit_once(':')?;
            Some(SocketAddr::new(
                ip.trim_matches(['[', ']']).parse().ok()?,
                port.parse().ok()?,
            ))
        })
    }

    #[derive(Default)]
    struct FileResult {
        sip: u64,
        rtp: u64,
        frames: usize,
    }

    /// RTP as the truth counts it: one of its streams (addresses and SSRC, so UDPTL or RTCP
    /// between the same ports is not mistaken for it).
    type Stream = (SocketAddr, SocketAddr, u32);

    fn decode_file(path: &std::path::Path, streams: &[Stream]) -> (FileResult, NetDecoder) {
        let frames = read_capture(path);
        let mut d = NetDecoder::new(NetConfig::default());
        let mut r = FileResult {
            frames: frames.len(),
            ..FileResult::default()
        };
        let mut last_tick = Timestamp::ZERO;
        for f in &frames {
            let mut sink = |dg: &Datagram<'_>| {
                if dg.transport == Transport::Tcp || starts_with_sip_line(dg.payload) {
                    r.sip += 1;
                } else if is_rtp(dg.payload) && {
                    let p = dg.payload;
                    let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
                    streams.contains(&(dg.src, dg.dst, ssrc))
                } {
                    r.rtp += 1;
                }
            };
            match f.link {
                Some(link) => d.frame(f.time, link, &f.data, &mut sink),
                None => d.skip_unsupported_link(&f.data),
            }
            if f.time.saturating_since(last_tick) >= Duration::from_secs(1) {
                d.tick(f.time);
                last_tick = f.time;
            }
            assert!(d.fragment_sets() <= 4096);
            assert!(d.tcp_flows() <= 16_384);
        }
        (r, d)
    }

    /// Files where fewer SIP messages than tshark's count are expected, and why.
    const SIP_SHORTFALL: &[(&str, &str)] = &[
        (
            "heplify__example_pcap_sip_sctp.pcap",
            "SIP over SCTP is out of scope",
        ),
        (
            "heplify__example_pcap_sip_tcp_websocket.pcap",
            "SIP over WebSocket is out of scope (the UDP side is found)",
        ),
        (
            "nDPI__tests_cfgs_default_pcap_fuzz-2006-06-26-2594.pcap",
            "fuzzed: the datagrams are emitted, but bit flips broke their start lines \
             (\"REGIStER pip:\", \"SIP/x.0\"), which tshark still calls SIP by port; a few \
             have IP lengths beyond the capture (counted as truncated)",
        ),
    ];

    /// Files where more RTP than tshark's count is expected, and why.
    const RTP_SURPLUS: &[(&str, &str)] = &[(
        "heplify__example_pcap_FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",
        "after the declined T.38 re-INVITE tshark decodes 2010 packets of SSRC 0x0EAF0EAF as \
         T.38 (its 2010 malformed frames); they are that stream's RTP (sequence numbers 0..3847 \
         contiguous), so 6995 = 4985 + 2010",
    )];

    #[test]
    fn corpus_matches_truth() {
        let truth: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{CORPUS}/truth.json")).unwrap())
                .unwrap();
        let mut failures = Vec::new();
        let mut table = String::new();
        for file in truth["files"].as_array().unwrap() {
            let name = file["file"].as_str().unwrap();
            let sip_truth = file["counts"]["sip_messages"].as_u64().unwrap();
            let rtp_truth = file["counts"]["rtp_packets"].as_u64().unwrap();
            let streams: Vec<Stream> = file["rtp_streams"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| {
                    let ssrc = s["ssrc"].as_str()?.trim_start_matches("0x");
                    Some((
                        endpoint(s["src"].as_str()?)?,
                        endpoint(s["dst"].as_str()?)?,
                        u32::from_str_radix(ssrc, 16).ok()?,
                    ))
                })
                .collect();
            let path = std::path::PathBuf::from(format!("{CORPUS}/pcaps/{name}"));
            let (found, decoder) = decode_file(&path, &streams);
            table.push_str(&format!(
                "{name}: sip {}/{sip_truth}, rtp {}/{rtp_truth} (frames {}, {:?})\n",
                found.sip, found.rtp, found.frames, decoder.counters
            ));
            let excused = SIP_SHORTFALL.iter().any(|(f, _)| *f == name);
            if found.sip < sip_truth && !excused {
                failures.push(format!("{name}: sip {}/{sip_truth}", found.sip));
            }
            let surplus_ok = RTP_SURPLUS.iter().any(|(f, _)| *f == name) && found.rtp > rtp_truth;
            if found.rtp != rtp_truth && !surplus_ok {
                failures.push(format!("{name}: rtp {}/{rtp_truth}", found.rtp));
            }
        }
        println!("{table}");
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn corpus_specific_files() {
        let check =
            |name: &str| decode_file(std::path::Path::new(&format!("{CORPUS}/pcaps/{name}")), &[]);
        let (r, d) = check("heplify__example_pcap_erspan_sip_ipv4_udp.pcapng");
        assert_eq!(r.sip, 140);
        assert!(d.counters.udp >= 140);
        let (r, d) = check("sngrep__tests_ipv6frag.pcap");
        assert!(r.sip >= 32);
        assert!(d.counters.reassembled >= 2, "{:?}", d.counters);
        let (r, d) = check("hep-wireshark__pcap_hep.pcap");
        assert_eq!(
            (r.sip, d.counters.hep_packets, d.counters.hep_skipped),
            (6, 8, 2)
        );
        let (r, d) = check("hep-wireshark__pcap_hep3_compressed.pcap.pcapng");
        assert_eq!(
            (r.sip, d.counters.hep_packets, d.counters.hep_rejected),
            (21, 21, 0)
        );
        let (r, mut d) = check("nDPI__tests_cfgs_default_pcap_ip_fragmented_garbage.pcap");
        assert_eq!(r.sip, 0);
        d.tick(Timestamp::from_secs_nanos(u64::from(u32::MAX), 0));
        assert_eq!(d.fragment_sets(), 0);
        let (r, d) = check("nDPI__tests_cfgs_default_pcap_http_on_sip_port.pcap");
        assert_eq!(r.sip, 0);
        assert!(d.counters.tcp_non_sip_bytes > 0);
        assert_eq!(d.tcp_flows(), 0);
    }

    /// Bit-flipped and truncated corpus frames, read as every link type: counted, never a
    /// panic, and the tables stay within their bounds.
    #[test]
    fn mutated_corpus_frames_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let config = NetConfig {
            max_fragment_sets: 16,
            max_tcp_flows: 16,
            max_tcp_buffer: 4096,
            ..NetConfig::default()
        };
        let mut d = NetDecoder::new(config);
        let links = [
            LinkType::Ethernet,
            LinkType::Raw,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::Null,
        ];
        for name in [
            "heplify__example_pcap_sip_ipv4_tcp_fragmented.pcap",
            "heplify__example_pcap_erspan_sip_ipv4_udp.pcapng",
            "hep-wireshark__pcap_hep3_compressed.pcap.pcapng",
            "sngrep__tests_ipv6frag.pcap",
            "Red-Rabbit__examples_pcap_DTMFsipinfo.pcap",
        ] {
            for f in read_capture(std::path::Path::new(&format!("{CORPUS}/pcaps/{name}"))) {
                for round in 0..6 {
                    let mut data = f.data.clone();
                    for _ in 0..=round {
                        let at = (next() as usize) % data.len().max(1);
                        if let Some(b) = data.get_mut(at) {
                            *b ^= 1 << (next() % 8);
                        }
                    }
                    let cut = data.len() - (next() as usize) % (data.len() / 4 + 1);
                    let link = f.link.unwrap_or(LinkType::Ethernet);
                    d.frame(f.time, link, &data[..cut], &mut |_| {});
                    d.frame(f.time, links[round % links.len()], &data, &mut |_| {});
                    d.hep(&data, &mut |_| {});
                }
                assert!(d.fragment_sets() <= 16 && d.tcp_flows() <= 16);
            }
        }
        assert!(d.counters.truncated > 0 && d.counters.bad_ip_header > 0);
    }

    /// SIP over TCP, many messages split across segments and several packed into one: the
    /// stream framer gives every message once, whole (406 messages of 70 calls, truth.json),
    /// and skips nothing.
    #[test]
    fn corpus_tcp_stream_framing() {
        let name = "heplify__example_pcap_sip_ipv4_tcp_fragmented.pcap";
        let mut d = NetDecoder::new(NetConfig::default());
        let (mut messages, mut ids) = (0usize, std::collections::BTreeSet::new());
        for f in read_capture(std::path::Path::new(&format!("{CORPUS}/pcaps/{name}"))) {
            d.frame(
                f.time,
                f.link.unwrap_or(LinkType::Ethernet),
                &f.data,
                &mut |dg| {
                    if dg.transport == Transport::Tcp {
                        let m = crate::sip::parse(dg.payload).expect("a framed message parses");
                        assert!(!m.body_truncated());
                        ids.insert(m.call_id().unwrap().to_owned());
                        messages += 1;
                    }
                },
            );
        }
        assert_eq!((messages, ids.len()), (406, 70));
        let c = &d.counters;
        assert_eq!((c.tcp_non_sip_bytes, c.tcp_gaps), (0, 0), "{c:?}");
    }

    /// Throughput over the whole corpus, repeated; printed, not asserted. Run with
    /// `cargo test --release -- --ignored --nocapture corpus_throughput`.
    #[test]
    #[ignore]
    fn corpus_throughput() {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(format!("{CORPUS}/pcaps")).unwrap() {
            all.extend(read_capture(&entry.unwrap().path()));
        }
        let rounds = 20;
        let start = std::time::Instant::now();
        let mut emitted = 0u64;
        for _ in 0..rounds {
            let mut d = NetDecoder::new(NetConfig::default());
            for f in &all {
                match f.link {
                    Some(link) => d.frame(f.time, link, &f.data, &mut |_| emitted += 1),
                    None => d.skip_unsupported_link(&f.data),
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let frames = (all.len() * rounds) as f64;
        let bytes: usize = all.iter().map(|f| f.data.len()).sum::<usize>() * rounds;
        println!(
            "{} frames x {rounds}: {:.0} frames/s, {:.0} MB/s, {emitted} datagrams",
            all.len(),
            frames / secs,
            bytes as f64 / secs / 1e6
        );
    }
}
