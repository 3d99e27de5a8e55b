//! Counters of the network stage: every frame, byte and rejection is accounted for here, so a
//! drop is never silent.
//!
//! Written only by the decoder (plain `u64` fields, no atomics: the stage has one owner);
//! read and serialised by whoever reports metrics. It never resets itself.

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct NetCounters {
    /// Frames handed to `frame()` (and to `skip_unsupported_link()`).
    pub frames: u64,
    /// Their captured bytes.
    pub bytes: u64,
    /// A header claimed more bytes than were captured (snaplen, damaged frames).
    pub truncated: u64,
    /// Frames of a link type the decoder does not read.
    pub unsupported_link: u64,
    /// Link payloads that are not IP (ARP, LLC, unknown ethertypes or BSD families).
    pub non_ip: u64,
    /// IPv4 headers decoded (tunnelled ones included).
    pub ipv4: u64,
    /// IPv6 headers decoded (tunnelled ones included).
    pub ipv6: u64,
    /// IP, UDP, TCP or GRE headers with impossible fields.
    pub bad_ip_header: u64,
    /// Not checked: capture hosts with checksum offload record wrong checksums. Always 0.
    pub bad_checksum: u64,
    /// IP fragments received.
    pub fragments: u64,
    /// Datagrams rebuilt from fragments.
    pub reassembled: u64,
    /// Incomplete datagrams dropped by `tick()` after the fragment timeout.
    pub fragments_expired: u64,
    /// Fragments not used or partly used: table full (oldest set evicted), oversize,
    /// misaligned, inconsistent length, duplicate or overlapping (first bytes win).
    pub fragments_dropped: u64,
    /// UDP datagrams decoded.
    pub udp: u64,
    /// TCP segments decoded.
    pub tcp_segments: u64,
    /// Segments that repeated bytes already delivered (wholly or partly).
    pub tcp_retransmissions: u64,
    /// Segments that arrived ahead of a missing one.
    pub tcp_out_of_order: u64,
    /// Missing stream bytes given up on (the message in progress is lost).
    pub tcp_gaps: u64,
    /// TCP directions dropped because the table was full or they went idle.
    pub tcp_flows_evicted: u64,
    /// SIP messages framed on TCP streams.
    pub sip_tcp_messages: u64,
    /// TCP payload bytes not kept: non-SIP flows, garbage skipped while resynchronising,
    /// and oversize messages.
    pub tcp_non_sip_bytes: u64,
    /// SIP messages larger than `max_tcp_buffer` (dropped).
    pub tcp_buffer_overflows: u64,
    /// HEP v3 packets decoded.
    pub hep_packets: u64,
    /// HEP packets rejected as malformed (or non-HEP3 data on a HEP port).
    pub hep_rejected: u64,
    /// HEP packets received live without the configured auth key (chunk 0x000e).
    pub hep_auth_failed: u64,
    /// Valid HEP packets of a type we do not use (RTCP JSON, logs, ...) or without payload.
    pub hep_skipped: u64,
    /// HEP packets seen on a captured interface on their way to this agent's own HEP
    /// listener: left to the listener, which receives them too (one copy, one clock).
    pub hep_to_own_listener: u64,
    /// IP protocols other than UDP, TCP and the tunnels (ICMP, SCTP, ESP, ...).
    pub other_transport: u64,
    /// Tunnels nested deeper than the decoder follows.
    pub encapsulation_too_deep: u64,
}
