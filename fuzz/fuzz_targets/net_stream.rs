//! A sequence of frames (a pcap or pcapng file) through IPv4/IPv6 defragmentation and TCP
//! reassembly with small bounds. Invariants: no SIP message over TCP larger than
//! `max_tcp_buffer` is passed on; the fragment and flow tables never exceed their bounds.
#![no_main]

use std::path::Path;
use std::time::Duration;

use callvault::net::{NetConfig, NetDecoder, Transport};
use callvault::source::CaptureFile;
use libfuzzer_sys::fuzz_target;

const MAX_TCP_BUFFER: usize = 2048;
const MAX_FRAGMENT_SETS: usize = 8;
const MAX_TCP_FLOWS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = CaptureFile::from_bytes(Path::new("fuzz.pcap"), data.to_vec()) else {
        return;
    };
    let mut net = NetDecoder::new(NetConfig {
        max_fragment_sets: MAX_FRAGMENT_SETS,
        fragment_timeout: Duration::from_secs(2),
        max_tcp_flows: MAX_TCP_FLOWS,
        max_tcp_buffer: MAX_TCP_BUFFER,
        tcp_idle_timeout: Duration::from_secs(30),
        ..NetConfig::default()
    });
    let mut frames = 0u64;
    loop {
        let more = file.read(64, &mut |time, link, frame| {
            frames += 1;
            net.frame(time, link, frame, &mut |dg| {
                if dg.transport == Transport::Tcp && !dg.via_hep {
                    assert!(
                        dg.payload.len() <= MAX_TCP_BUFFER,
                        "a {} byte SIP message over TCP passed the {MAX_TCP_BUFFER} byte bound",
                        dg.payload.len()
                    );
                }
                assert!(dg.payload.len() <= 65_535);
            });
            assert!(net.fragment_sets() <= MAX_FRAGMENT_SETS);
            assert!(net.tcp_flows() <= MAX_TCP_FLOWS);
            net.tick(time);
        });
        if !matches!(more, Ok(true)) {
            break;
        }
    }
    assert_eq!(net.counters.frames, frames);
});
