//! One captured frame through link, IP, UDP and TCP decoding (and a HEP payload inside it).
//! Invariants: one frame is counted once; what comes out is no larger than the frame (or a
//! HEP payload's inflation bound); one frame starts at most one reassembly and one TCP flow.
#![no_main]

use callvault::net::{LinkType, NetConfig, NetDecoder};
use callvault::time::Timestamp;
use libfuzzer_sys::fuzz_target;

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::Raw,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Ipv4,
    LinkType::Ipv6,
];
/// A compressed HEP payload inflates to at most this (net/hep.rs).
const MAX_INFLATED: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&select, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[select as usize % LINKS.len()];
    let mut net = NetDecoder::new(NetConfig::default());
    let now = Timestamp::from_millis(1_700_000_000_000);
    net.frame(now, link, frame, &mut |dg| {
        assert!(dg.payload.len() <= frame.len().max(MAX_INFLATED));
        if !dg.via_hep {
            assert_eq!(dg.time, now);
        }
    });
    assert_eq!(net.counters.frames, 1);
    assert_eq!(net.counters.bytes, frame.len() as u64);
    assert!(net.fragment_sets() <= 1);
    assert!(net.tcp_flows() <= 1);
});
