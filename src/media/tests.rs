//! The media stage on packets built by hand: rate changes, relay copies, bogus timestamps,
//! undecodable codecs, and that nothing reaches the store in plaintext.

use super::*;
use crate::decode::g711;
use crate::session::{Codec, PayloadMap, Side};
use crate::vault::{CataloguePrivateKey, SegmentOpener};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

/// Segment files in memory.
#[derive(Default)]
struct MemStore {
    open: HashMap<String, ()>,
    done: HashMap<String, Vec<u8>>,
}

impl SegmentStore for MemStore {
    type File = Vec<u8>;
    fn create(&mut self, name: &str) -> io::Result<Vec<u8>> {
        self.open.insert(name.to_owned(), ());
        Ok(Vec::new())
    }
    fn sync(&mut self, _file: &mut Vec<u8>) -> io::Result<()> {
        Ok(())
    }
    fn commit(&mut self, file: Vec<u8>, name: &str) -> io::Result<()> {
        self.open.remove(name);
        self.done.insert(name.to_owned(), file);
        Ok(())
    }
}

fn stage() -> (MediaStage<MemStore>, CataloguePrivateKey) {
    let (private, public) = CataloguePrivateKey::generate();
    let stage = MediaStage::new(
        MemStore::default(),
        Arc::new(public),
        MediaSection::default(),
        Duration::from_secs(120),
        Entropy::predictable(1),
    );
    (stage, private)
}

/// Hands `stage` one packet.
fn send(
    stage: &mut MediaStage<MemStore>,
    slot: MediaSlot,
    side: Side,
    source: SocketAddr,
    time: Timestamp,
    rtp: &[u8],
    codecs: &Arc<PayloadMap>,
) {
    let packet = MediaPacket {
        side,
        source,
        time,
        rtp,
        codecs,
    };
    stage.packet(slot, &packet);
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

const SRC: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10)),
    20000,
);

fn map(pt: u8, name: &str) -> Arc<PayloadMap> {
    let mut m = PayloadMap::default();
    m.insert(pt, Codec::new(name, 8000));
    Arc::new(m)
}

fn decrypt(stage: &MediaStage<MemStore>, key: &CataloguePrivateKey) -> Vec<Vec<u8>> {
    let mut names: Vec<_> = stage.store().done.keys().cloned().collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            SegmentOpener::decrypt_file(&stage.store().done[n], key)
                .unwrap()
                .1
        })
        .collect()
}

#[test]
fn an_undecodable_codec_is_named_and_left_silent() {
    let (mut stage, _key) = stage();
    let slot = stage.open(Uuid::now_v7());
    let codecs = map(18, "G729");
    for i in 0..50u16 {
        let t = Timestamp::from_millis(1_000 + i as u64 * 20);
        let p = rtp(18, i, i as u32 * 160, 7, &[0x55; 20]);
        send(&mut stage, slot, Side::Caller, SRC, t, &p, &codecs);
    }
    let summary = stage.close(slot, Timestamp::from_millis(3_000));
    assert_eq!(summary.streams.len(), 1);
    assert_eq!(summary.streams[0].codec, "G729");
    assert!(!summary.streams[0].decoded);
    assert_eq!(stage.counters.rtp_undecodable, 50);
    assert!(
        summary.segments.is_empty(),
        "nothing guessed, nothing written"
    );
}

#[test]
fn narrowband_audio_joins_a_wideband_timeline_at_16_khz() {
    let (mut stage, key) = stage();
    let slot = stage.open(Uuid::now_v7());
    let g722 = map(9, "G722");
    let pcmu = map(0, "PCMU");
    let tone: Vec<u8> = (0..160)
        .map(|i| g711::linear_to_ulaw(((i % 16) as i16 - 8) * 1000))
        .collect();
    for i in 0..100u16 {
        let t = Timestamp::from_millis(10_000 + i as u64 * 20);
        send(
            &mut stage,
            slot,
            Side::Caller,
            SRC,
            t,
            &rtp(9, i, i as u32 * 160, 1, &[0x3c; 160]),
            &g722,
        );
        send(
            &mut stage,
            slot,
            Side::Organisation,
            SRC,
            t,
            &rtp(0, i, i as u32 * 160, 2, &tone),
            &pcmu,
        );
    }
    let summary = stage.close(slot, Timestamp::from_millis(12_000));
    assert_eq!(summary.segments.len(), 1);
    assert_eq!(summary.segments[0].sample_rate, 16_000);
    assert!(
        (1_950..=2_050).contains(&summary.audio_ms),
        "{}",
        summary.audio_ms
    );
    let plain = &decrypt(&stage, &key)[0];
    let fmt = crate::segment::wav::parse_header(plain).unwrap();
    assert_eq!(fmt.rate, 16_000);
    // the µ-law side is upsampled: each 8 kHz sample appears twice on the right channel
    let right: Vec<i16> = plain[44..]
        .chunks_exact(4)
        .map(|f| i16::from_le_bytes([f[2], f[3]]))
        .collect();
    let start = right.iter().position(|&s| s != 0).unwrap();
    assert_eq!(right[start], right[start + 1]);
    assert_eq!(right[start + 2], right[start + 3]);
}

#[test]
fn capture_time_jumps_and_bogus_timestamps_write_bounded_silence() {
    let (mut stage, _key) = stage();
    let slot = stage.open(Uuid::now_v7());
    let pcma = map(8, "PCMA");
    for i in (0..50u16).filter(|&i| i != 30) {
        let t = Timestamp::from_millis(i as u64 * 20);
        let p = rtp(8, i + 10, i as u32 * 160, 1, &[0xd5; 160]);
        send(&mut stage, slot, Side::Caller, SRC, t, &p, &pcma);
    }
    // the missing packet arrives late (not the newest), its timestamp claiming hours ahead
    let bogus = rtp(8, 40, 0x7fff_0000, 1, &[0xd5; 160]);
    send(
        &mut stage,
        slot,
        Side::Caller,
        SRC,
        Timestamp::from_millis(1_000),
        &bogus,
        &pcma,
    );
    assert_eq!(stage.counters.rtp_bogus_timestamp, 1);
    // capture time leaps forward by years (a broken pcap timestamp)
    stage.tick(Timestamp::from_millis(86_400_000 * 365 * 30));
    let summary = stage.close(slot, Timestamp::from_millis(86_400_000 * 365 * 30));
    let written_ms: u64 = summary.segments.iter().map(|s| s.duration_ms).sum();
    assert!(
        written_ms <= 1_000 + 120_000 + 60_000,
        "{written_ms} ms written"
    );
}

#[test]
fn a_wideband_stream_joining_moves_the_rest_of_the_call_to_16_khz() {
    let (mut stage, key) = stage();
    let slot = stage.open(Uuid::now_v7());
    let (pcmu, g722) = (map(0, "PCMU"), map(9, "G722"));
    let tone: Vec<u8> = (0..160)
        .map(|i| g711::linear_to_ulaw(((i % 16) as i16 - 8) * 1000))
        .collect();
    // one second of µ-law early media from the organisation side
    for i in 0..50u16 {
        let t = Timestamp::from_millis(i as u64 * 20);
        let p = rtp(0, i, i as u32 * 160, 2, &tone);
        send(&mut stage, slot, Side::Organisation, SRC, t, &p, &pcmu);
    }
    // then the answer: G.722 both ways for two seconds
    for i in 0..100u16 {
        let t = Timestamp::from_millis(1_000 + i as u64 * 20);
        let p = rtp(9, i, i as u32 * 160, 1, &[0x3c; 160]);
        send(&mut stage, slot, Side::Caller, SRC, t, &p, &g722);
        let p = rtp(9, i + 50, (i as u32 + 50) * 160, 2, &[0x5a; 160]);
        send(&mut stage, slot, Side::Organisation, SRC, t, &p, &g722);
    }
    let summary = stage.close(slot, Timestamp::from_millis(3_000));
    assert_eq!(stage.counters.rate_changes, 1);
    assert_eq!(stage.counters.rate_mismatch_packets, 0);
    let rates: Vec<u32> = summary.segments.iter().map(|s| s.sample_rate).collect();
    assert_eq!(rates, [8_000, 16_000]);
    let (a, b) = (&summary.segments[0], &summary.segments[1]);
    assert_eq!(
        a.offset_ms + a.duration_ms,
        b.offset_ms,
        "the segments are contiguous"
    );
    assert!(
        (2_900..=3_100).contains(&(b.offset_ms + b.duration_ms)),
        "{summary:?}"
    );
    let plains = decrypt(&stage, &key);
    assert_eq!(plains.len(), 2);
}

const RELAY: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 99)),
    30000,
);

/// The caller's channel of a one-segment recording.
fn left_channel(stage: &MediaStage<MemStore>, key: &CataloguePrivateKey) -> Vec<i16> {
    let plain = &decrypt(stage, key)[0];
    plain[44..]
        .chunks_exact(4)
        .map(|f| i16::from_le_bytes([f[0], f[1]]))
        .collect()
}

fn noise(seed: u16) -> Vec<u8> {
    (0..160u16)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed.wrapping_mul(97)) % 251) as u8)
        .collect()
}

#[test]
fn a_relay_copy_of_a_voice_is_heard_once_and_fills_what_the_other_hop_lost() {
    let (mut stage, key) = stage();
    let slot = stage.open(Uuid::now_v7());
    let pcma = map(8, "PCMA");
    for i in 0..50u16 {
        let t = Timestamp::from_millis(1_000 + i as u64 * 20);
        let p = rtp(8, i, i as u32 * 160, 0xCA11_0000, &noise(i));
        // the caller's hop lost packet 10; the relay's copy, 0.2 ms later, has it
        if i != 10 {
            send(&mut stage, slot, Side::Caller, SRC, t, &p, &pcma);
        }
        let relayed = t + Duration::from_micros(200);
        send(&mut stage, slot, Side::Caller, RELAY, relayed, &p, &pcma);
    }
    let summary = stage.close(slot, Timestamp::from_millis(2_000));
    assert_eq!(stage.counters.rtp_relay_copies, 49);
    let copies: Vec<u64> = summary.streams.iter().map(|s| s.relay_copies).collect();
    assert_eq!(copies, [0, 49]);
    let left = left_channel(&stage, &key);
    let sent: Vec<i16> = (0..50u16)
        .flat_map(noise)
        .map(g711::alaw_to_linear)
        .collect();
    assert_eq!(
        &left[..sent.len()],
        &sent[..],
        "each sample once, none missing"
    );
}

#[test]
fn two_senders_to_one_party_are_both_heard_even_with_one_ssrc() {
    // a conference bridge or music on hold beside the agent's phone: other audio, even
    // when the devices share an SSRC, sequence and timing (SIPp and some PBXs do)
    let (mut stage, key) = stage();
    let slot = stage.open(Uuid::now_v7());
    let pcma = map(8, "PCMA");
    for i in 0..50u16 {
        let t = Timestamp::from_millis(1_000 + i as u64 * 20);
        let a = rtp(8, i, i as u32 * 160, 0xCA11_0000, &[0xd4; 160]);
        let b = rtp(8, i, i as u32 * 160, 0xCA11_0000, &[0x2a; 160]);
        send(&mut stage, slot, Side::Caller, SRC, t, &a, &pcma);
        send(&mut stage, slot, Side::Caller, RELAY, t, &b, &pcma);
    }
    stage.close(slot, Timestamp::from_millis(2_000));
    assert_eq!(stage.counters.rtp_relay_copies, 0);
    let left = left_channel(&stage, &key);
    let both = g711::alaw_to_linear(0xd4).saturating_add(g711::alaw_to_linear(0x2a));
    assert!(
        left[80..7_000].iter().all(|&s| s == both),
        "both senders mixed"
    );
}

#[test]
fn a_segment_is_never_written_in_plaintext() {
    let (mut stage, key) = stage();
    let slot = stage.open(Uuid::now_v7());
    let pcma = map(8, "PCMA");
    let payload: Vec<u8> = (0..160u16).map(|i| (i * 7 % 251) as u8).collect();
    for i in 0..200u16 {
        let t = Timestamp::from_millis(i as u64 * 20);
        send(
            &mut stage,
            slot,
            Side::Caller,
            SRC,
            t,
            &rtp(8, i, i as u32 * 160, 1, &payload),
            &pcma,
        );
    }
    stage.close(slot, Timestamp::from_millis(4_000));
    let files: Vec<&Vec<u8>> = stage.store().done.values().collect();
    assert_eq!(files.len(), 1);
    // the caller's samples as a WAV writer lays them out (left, right = silence)
    let pcm: Vec<u8> = payload[..8]
        .iter()
        .flat_map(|&b| {
            let [lo, hi] = g711::alaw_to_linear(b).to_le_bytes();
            [lo, hi, 0, 0]
        })
        .collect();
    assert!(!files[0].windows(pcm.len()).any(|w| w == pcm.as_slice()));
    assert!(!files[0].windows(16).any(|w| w == &payload[..16]));
    let plain = &decrypt(&stage, &key)[0];
    assert!(plain.windows(pcm.len()).any(|w| w == pcm.as_slice()));
}
