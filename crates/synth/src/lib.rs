//! callvault's own capture generator: synthetic contact-centre traffic as a mirror port
//! between a SIP trunk/SBC, a PBX and phones would see it, with exact ground truth.
//!
//! Owns: scenarios (`scenario`), call timelines and impairment decisions (`plan`), source
//! signals and the deterministic PRNG (`signal`), SIP/SDP text (`sip_text`), frame bytes and
//! the streaming schedule (`frames`), and capture file writers (`pcap_writer`).
//! Receives a [`Scenario`]; emits frames, capture files and [`CallTruth`] for integration
//! tests, benchmarks and `callvault demo`. Must never read the clock, the OS RNG or the
//! network: the same scenario always yields the same bytes.

mod frames;
mod pcap_writer;
mod plan;
mod scenario;
mod signal;
mod sip_text;

use std::io::{self, BufWriter, Write};

pub use frames::Generator;
pub use pcap_writer::{PcapNgWriter, PcapWriter, SNAPLEN};
pub use scenario::{
    CONTACT_CENTRE_NUMBERS, CallEnd, CallSpec, CallTruth, CaptureFormat, Codec, DEFAULT_EPOCH,
    DtmfTruth, LinkKind, Scenario, Signal, SipTransport, agent_media, agent_phone_sip,
    caller_media, internal_caller_sip, is_extension, pbx_sip, sbc_sip,
};
pub use signal::{SAMPLE_RATE, SplitMix64, hash2, mix64, normalized_correlation};

/// What a capture contains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub frames: u64,
    /// Bytes written to the capture file, headers included (0 from [`Generator::stats`]).
    pub bytes: u64,
    /// Sum of frame lengths.
    pub frame_bytes: u64,
    /// RTP frames, duplicates included.
    pub rtp_packets: u64,
    /// SIP messages (a relayed message counts once per hop; fragments and segments once).
    pub sip_messages: u64,
    pub ip_fragments: u64,
    pub tcp_segments: u64,
}

/// Generates `scenario` into `out` in its [`CaptureFormat`].
pub fn write_capture(scenario: &Scenario, out: impl Write) -> io::Result<CaptureStats> {
    let mut generator = Generator::new(scenario);
    let out = BufWriter::with_capacity(1 << 20, out);
    let mut buf = Vec::with_capacity(2048);
    let bytes = match scenario.format {
        CaptureFormat::Pcap { nanos, big_endian } => {
            let mut w = PcapWriter::new(out, scenario.link, nanos, big_endian)?;
            while let Some(ts) = generator.next_frame(&mut buf) {
                w.write_packet(ts, &buf)?;
            }
            w.flush()?;
            w.bytes_written()
        }
        CaptureFormat::PcapNg => {
            let mut w = PcapNgWriter::new(out, scenario.link, true)?;
            while let Some(ts) = generator.next_frame(&mut buf) {
                w.write_packet(ts, &buf)?;
            }
            w.flush()?;
            w.bytes_written()
        }
    };
    Ok(CaptureStats {
        bytes,
        ..generator.stats()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_parser::traits::PcapNGPacketBlock;
    use pcap_parser::{Block, PcapBlockOwned, PcapError, create_reader};
    use std::collections::HashMap;
    use std::net::SocketAddr;

    /// Every packet of a capture as (nanoseconds, data), read back with pcap-parser.
    fn read_back(bytes: &[u8]) -> (i32, Vec<(u64, Vec<u8>)>) {
        let mut reader = create_reader(1 << 16, bytes).expect("capture header");
        let (mut linktype, mut nanos) = (0, false);
        let mut out = Vec::new();
        loop {
            match reader.next() {
                Ok((offset, block)) => {
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            linktype = h.network.0;
                            nanos = h.is_nanosecond_precision();
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let frac = if nanos {
                                b.ts_usec as u64
                            } else {
                                b.ts_usec as u64 * 1000
                            };
                            out.push((b.ts_sec as u64 * 1_000_000_000 + frac, b.data.to_vec()));
                        }
                        PcapBlockOwned::NG(Block::InterfaceDescription(i)) => {
                            linktype = i.linktype.0;
                            assert_eq!(i.ts_resolution(), Some(1_000_000_000));
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(e)) => {
                            let ns = ((e.ts_high as u64) << 32) | e.ts_low as u64;
                            out.push((ns, e.packet_data().to_vec()));
                        }
                        PcapBlockOwned::NG(_) => {}
                    }
                    reader.consume(offset);
                }
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => reader.refill().expect("refill"),
                Err(e) => panic!("capture unreadable: {e:?}"),
            }
        }
        (linktype, out)
    }

    /// (source, destination, UDP payload) of an unfragmented Ethernet/IPv4/UDP frame.
    fn udp_of(f: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
        let ip = f.get(14..)?;
        if f.get(12..14)? != [0x08, 0x00] || ip.get(9)? != &17 || ip[6] & 0x3f != 0 {
            return None;
        }
        let ihl = (ip[0] & 0x0f) as usize * 4;
        let udp = ip.get(ihl..)?;
        let src = SocketAddr::from((
            [ip[12], ip[13], ip[14], ip[15]],
            u16::from_be_bytes([udp[0], udp[1]]),
        ));
        let dst = SocketAddr::from((
            [ip[16], ip[17], ip[18], ip[19]],
            u16::from_be_bytes([udp[2], udp[3]]),
        ));
        Some((src, dst, udp.get(8..)?))
    }

    #[test]
    fn three_call_capture_reads_back_and_matches_the_truth() {
        let mut s = Scenario::contact_centre_mix(3, 3_000, 42);
        s.calls[1].loss = 0.1;
        s.calls[2].jitter_ms = 40;
        s.calls[2].reorder = 0.1;
        let mut file = Vec::new();
        let stats = write_capture(&s, &mut file).expect("write");
        assert_eq!(stats.bytes, file.len() as u64);
        let (linktype, pkts) = read_back(&file);
        assert_eq!(linktype, 1);
        assert_eq!(pkts.len() as u64, stats.frames);
        assert!(
            pkts.windows(2).all(|w| w[0].0 <= w[1].0),
            "timestamps go backwards"
        );
        // µs pcap: times are the generator's truncated to µs.
        assert!(pkts.iter().all(|(t, _)| t % 1000 == 0));

        let truth = Generator::new(&s).truth();
        let mut per_dir: HashMap<SocketAddr, u64> = HashMap::new();
        let mut sip = 0;
        for (_, f) in &pkts {
            if let Some((src, dst, payload)) = udp_of(f) {
                if src.port() == 5060 || dst.port() == 5060 {
                    sip += 1;
                    assert!(
                        payload.ends_with(b"\r\n") || payload.windows(4).any(|w| w == b"\r\n\r\n")
                    );
                } else {
                    *per_dir.entry(src).or_default() += 1;
                }
            }
        }
        assert_eq!(sip, stats.sip_messages);
        for t in &truth {
            assert_eq!(
                per_dir.get(&t.caller_media).copied().unwrap_or(0),
                t.rtp_packets_sent.0
            );
            assert_eq!(
                per_dir.get(&t.agent_media).copied().unwrap_or(0),
                t.rtp_packets_sent.1
            );
            assert_eq!(t.caller_audio.len() as u64, t.rtp_packets_sent.0);
            let samples: usize = t.agent_audio.iter().map(|(_, v)| v.len()).sum();
            assert_eq!(samples as u64, t.rtp_packets_sent.1 * 160);
        }
        assert!(truth[1].rtp_packets_sent.0 < truth[0].rtp_packets_sent.0);
        // Same scenario, same bytes.
        let mut again = Vec::new();
        write_capture(&s, &mut again).expect("write");
        assert_eq!(file, again);
    }

    #[test]
    fn nanosecond_big_endian_and_pcapng_captures_read_back() {
        let base = Scenario::contact_centre_mix(2, 500, 8);
        let mut reference = None;
        for format in [
            CaptureFormat::Pcap {
                nanos: true,
                big_endian: true,
            },
            CaptureFormat::Pcap {
                nanos: true,
                big_endian: false,
            },
            CaptureFormat::PcapNg,
        ] {
            for link in [LinkKind::Ethernet, LinkKind::LinuxSll2] {
                let s = Scenario {
                    format,
                    link,
                    ..base.clone()
                };
                let mut file = Vec::new();
                let stats = write_capture(&s, &mut file).expect("write");
                let (linktype, pkts) = read_back(&file);
                assert_eq!(linktype as u32, link.linktype());
                assert_eq!(pkts.len() as u64, stats.frames);
                if link == LinkKind::Ethernet {
                    // Nanosecond formats keep the exact generator times and bytes.
                    match &reference {
                        None => reference = Some(pkts),
                        Some(r) => assert_eq!(r, &pkts, "{format:?}"),
                    }
                }
            }
        }
    }
}
