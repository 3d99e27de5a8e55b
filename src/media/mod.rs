//! Media: the per-call recording of RTP, from matched packet to encrypted segment.
//!
//! Owns, for each recorded call, its RTP streams, decoders, stereo timeline and segment
//! writer. It receives RTP packets that the stream table has matched to a recorded call (with
//! the side that is speaking and the payload map from SDP) and capture-time ticks; it emits
//! segment bytes through the [`SegmentStore`] and, when a call closes, a [`MediaSummary`]
//! for its metadata. It is a synchronous state machine: no clock, no threads, and no
//! allocation per packet (streams, decoders and timelines are created once per stream/call).
//! It never sees packets of calls out of scope: the router drops them before they get here.
//!
//! Timing: within a stream, a packet's place comes from its RTP timestamp relative to the
//! stream's anchor; the anchor comes from capture time when the stream starts and again when
//! the RTP clock and the capture clock disagree by more than the playout delay (a new SSRC, a
//! sequence restart, timestamps that did not advance during a hold). Audio is held for
//! `playout_delay_ms` so that jittered and reordered packets land in place, then drained to
//! the segment writer in order.

mod config;

pub use config::MediaSection;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rtp_rs::RtpReader;
use serde::Serialize;
use uuid::Uuid;

use crate::decode::{Decoder, MAX_PACKET_SAMPLES};
use crate::entropy::Entropy;
use crate::mixer::Timeline;
use crate::record::{MediaSummary, StreamSummary};
use crate::rtp::{Anchor, PacketPrint, SeqVerdict, Stream};
use crate::segment::{SegmentStore, SegmentWriter};
use crate::session::{CodecKind, PayloadMap, Side};
use crate::time::Timestamp;
use crate::vault::CataloguePublicKey;

/// Streams kept per call (SSRC changes, transfers, music on hold); more are counted, not kept.
pub const MAX_STREAMS_PER_CALL: usize = 32;
/// Capture time and RTP time may disagree by this much before a stream is re-anchored
/// when the packet claims to be *ahead* of capture time.
const MAX_AHEAD: Duration = Duration::from_millis(100);

/// Counters of the media stage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MediaCounters {
    pub rtp_packets: u64,
    pub rtp_malformed: u64,
    pub rtp_duplicates: u64,
    pub rtp_late: u64,
    /// Packets another hop of a media relay had already delivered (the same voice seen
    /// before and after an SBC): counted, not heard twice.
    pub rtp_relay_copies: u64,
    /// Packets whose timestamp put them far in the future of capture time (and whose sequence
    /// number said they were not the newest, so the stream was not re-anchored): dropped.
    pub rtp_bogus_timestamp: u64,
    pub rtp_events: u64,
    pub rtp_undecodable: u64,
    pub streams_refused: u64,
    pub resyncs: u64,
    pub rate_mismatch_packets: u64,
    /// Calls moved to a higher sample rate when a wideband stream joined.
    pub rate_changes: u64,
    pub write_errors: u64,
    /// Call metadata (journal or final document) that could not be written.
    pub metadata_errors: u64,
    pub calls_opened: u64,
    pub calls_closed: u64,
    pub segments_written: u64,
    pub audio_ms_written: u64,
}

impl MediaCounters {
    /// Adds another stage's counters (the agent sums its media workers).
    pub fn add(&mut self, other: &MediaCounters) {
        self.rtp_packets += other.rtp_packets;
        self.rtp_malformed += other.rtp_malformed;
        self.rtp_duplicates += other.rtp_duplicates;
        self.rtp_late += other.rtp_late;
        self.rtp_relay_copies += other.rtp_relay_copies;
        self.rtp_bogus_timestamp += other.rtp_bogus_timestamp;
        self.rtp_events += other.rtp_events;
        self.rtp_undecodable += other.rtp_undecodable;
        self.streams_refused += other.streams_refused;
        self.resyncs += other.resyncs;
        self.rate_mismatch_packets += other.rate_mismatch_packets;
        self.rate_changes += other.rate_changes;
        self.write_errors += other.write_errors;
        self.metadata_errors += other.metadata_errors;
        self.calls_opened += other.calls_opened;
        self.calls_closed += other.calls_closed;
        self.segments_written += other.segments_written;
        self.audio_ms_written += other.audio_ms_written;
    }
}

struct CallMedia<F: std::io::Write> {
    call_id: Uuid,
    streams: Vec<Stream>,
    origin: Option<Timestamp>,
    timeline: Option<Timeline>,
    writer: Option<SegmentWriter<F>>,
    last_packet: Option<Timestamp>,
    /// The parties hung up here (the call may still go on): no silence past it.
    quiet_from: Option<Timestamp>,
}

/// Handle of an open call recording inside the media stage.
pub type MediaSlot = u32;

pub struct MediaStage<S: SegmentStore> {
    slots: Vec<Option<CallMedia<S::File>>>,
    free: Vec<MediaSlot>,
    store: S,
    key: Arc<CataloguePublicKey>,
    cfg: MediaSection,
    scratch: Box<[i16; MAX_PACKET_SAMPLES]>,
    half: Box<[i16; MAX_PACKET_SAMPLES]>,
    /// Silence is written at most this long past a call's last packet: a jump in capture time
    /// (a bogus pcap timestamp, a clock step) must not fill the disk with zeros. The call
    /// tracker ends a call that stays silent this long anyway.
    max_silence: Duration,
    /// What segments are sealed with (each call's writer gets its own fork).
    entropy: Entropy,
    pub counters: MediaCounters,
}

impl<S: SegmentStore> MediaStage<S> {
    pub fn new(
        store: S,
        key: Arc<CataloguePublicKey>,
        cfg: MediaSection,
        max_silence: Duration,
        entropy: Entropy,
    ) -> Self {
        MediaStage {
            entropy,
            slots: Vec::new(),
            free: Vec::new(),
            store,
            key,
            cfg,
            scratch: Box::new([0; MAX_PACKET_SAMPLES]),
            half: Box::new([0; MAX_PACKET_SAMPLES]),
            max_silence,
            counters: MediaCounters::default(),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    pub fn open_calls(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Starts the recording of a call. Nothing is written until its first audio packet.
    pub fn open(&mut self, call_id: Uuid) -> MediaSlot {
        self.counters.calls_opened += 1;
        let media = CallMedia {
            call_id,
            streams: Vec::new(),
            origin: None,
            timeline: None,
            writer: None,
            last_packet: None,
            quiet_from: None,
        };
        if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = Some(media);
            slot
        } else {
            self.slots.push(Some(media));
            (self.slots.len() - 1) as MediaSlot
        }
    }

    pub fn last_activity(&self, slot: MediaSlot) -> Option<Timestamp> {
        self.slots.get(slot as usize)?.as_ref()?.last_packet
    }

    /// Places one RTP packet of a recorded call. `side` is who is speaking.
    pub fn packet(
        &mut self,
        slot: MediaSlot,
        side: Side,
        source: SocketAddr,
        time: Timestamp,
        payload: &[u8],
        codecs: &PayloadMap,
    ) {
        let Some(Some(cm)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        self.counters.rtp_packets += 1;
        let Ok(rtp) = RtpReader::new(payload) else {
            self.counters.rtp_malformed += 1;
            return;
        };
        let ssrc = rtp.ssrc();
        let idx = match cm
            .streams
            .iter()
            .position(|s| s.ssrc == ssrc && s.side == side && s.source == source)
        {
            Some(i) => i,
            None if cm.streams.len() < MAX_STREAMS_PER_CALL => {
                cm.streams.push(Stream::new(side, ssrc, source, time));
                cm.streams.len() - 1
            }
            None => {
                self.counters.streams_refused += 1;
                return;
            }
        };
        let stream = &mut cm.streams[idx];
        stream.last_seen = time;
        stream.stats.packets += 1;
        stream.stats.bytes += payload.len() as u64;
        cm.last_packet = Some(time);

        let pt = rtp.payload_type();
        if stream.pt != Some(pt) {
            stream.pt = Some(pt);
            match codecs.lookup(pt) {
                Some(codec) => {
                    if stream.kind != Some(codec.kind) {
                        stream.decoder = Decoder::for_kind(codec.kind);
                    }
                    if codec.kind.is_audio() || stream.codec_name.is_empty() {
                        stream.codec_name = codec.name.clone();
                        stream.clock_rate = codec.clock_rate;
                    }
                    stream.kind = Some(codec.kind);
                }
                None => {
                    stream.kind = Some(CodecKind::Other);
                    stream.decoder = None;
                    if stream.codec_name.is_empty() {
                        stream.codec_name = format!("dynamic-{pt}");
                    }
                }
            }
        }
        let verdict = stream.seq.accept(u16::from(rtp.sequence_number()));
        let newest = match verdict {
            SeqVerdict::Duplicate => {
                self.counters.rtp_duplicates += 1;
                return;
            }
            SeqVerdict::TooOld => {
                stream.stats.late += 1;
                self.counters.rtp_late += 1;
                return;
            }
            SeqVerdict::Accept { newest, .. } => newest,
            SeqVerdict::Restart { .. } => {
                stream.anchor = None;
                stream.stats.resyncs += 1;
                self.counters.resyncs += 1;
                true
            }
        };
        let ext_ts = stream.extend_timestamp(rtp.timestamp());
        // The same packet on another hop of a media relay (an SBC between caller and agent
        // on the mirrored path): the voice is heard once. The first copy of each packet to
        // arrive is the one recorded, whichever hop it came from: it is nearest the sender
        // (a relay only adds delay), and a packet the mirror lost on one hop is still
        // recorded from the other.
        let print = PacketPrint::of(rtp.sequence_number().into(), rtp.timestamp(), rtp.payload());
        let copy_of = (cm.streams.len() > 1)
            .then(|| {
                cm.streams.iter().enumerate().find_map(|(j, s)| {
                    (j != idx && s.side == side && s.ssrc == ssrc)
                        .then(|| s.recent.find(print, time).map(|ext| (j, ext)))
                        .flatten()
                })
            })
            .flatten();
        if let Some((j, their_ext)) = copy_of {
            // Its own packets (those the other hop lost) land where the other copy's would.
            let aligned = cm
                .timeline
                .as_ref()
                .and_then(|t| cm.streams[j].position(their_ext, t.rate()))
                .filter(|&pos| pos >= 0);
            let stream = &mut cm.streams[idx];
            if let Some(pos) = aligned {
                stream.anchor = Some(Anchor {
                    rtp_ts: ext_ts,
                    pos: pos as u64,
                });
            }
            stream.recent.push(print, time, ext_ts);
            stream.stats.relay_copies += 1;
            self.counters.rtp_relay_copies += 1;
            return;
        }
        let stream = &mut cm.streams[idx];
        stream.recent.push(print, time, ext_ts);
        match stream.kind {
            Some(CodecKind::TelephoneEvent) => {
                stream.stats.events += 1;
                self.counters.rtp_events += 1;
                return;
            }
            Some(CodecKind::ComfortNoise) => {
                stream.stats.comfort_noise += 1;
                return;
            }
            _ => {}
        }
        let Some(decoder) = stream.decoder.as_mut() else {
            stream.stats.undecodable += 1;
            self.counters.rtp_undecodable += 1;
            return;
        };
        let packet_rate = decoder.sample_rate();
        let n = decoder.decode(rtp.payload(), &mut self.scratch[..]);
        if n == 0 {
            return;
        }
        // A wideband stream joining a narrowband call (PCMU early media, then G.722): the rest
        // of the call is recorded at the higher rate, in a new segment.
        if cm.timeline.as_ref().is_some_and(|t| packet_rate > t.rate()) {
            widen(
                cm,
                packet_rate,
                &mut self.store,
                &mut self.counters,
                self.cfg.playout_delay_ms,
            );
        }
        let stream = &mut cm.streams[idx];

        // The call's timeline starts at its first audio packet, at that codec's rate.
        let origin = *cm.origin.get_or_insert(time);
        let delay_ms = self.cfg.playout_delay_ms;
        let timeline = cm
            .timeline
            // held: the playout delay, a 100 ms drain batch, packets up to MAX_AHEAD early and
            // the longest packet (120 ms)
            .get_or_insert_with(|| Timeline::new(packet_rate, hold_ms(delay_ms)));
        let rate = timeline.rate();
        let writer = cm.writer.get_or_insert_with(|| {
            SegmentWriter::new(
                cm.call_id,
                self.key.clone(),
                rate,
                origin,
                self.cfg.segment_seconds,
                self.cfg.fsync_seconds,
                self.entropy.fork(),
            )
        });

        // A packet stamped before the call's first audio (merged captures, two mirror ports
        // with slightly different clocks) counts as arriving at the start, never before it.
        let wall = samples_since(origin, time, rate).max(0);
        let behind = rate as i64 * (delay_ms as i64 * 3 / 4) / 1000;
        let ahead = rate as i64 * MAX_AHEAD.as_millis() as i64 / 1000;
        match stream.position(ext_ts, rate) {
            Some(pos) if !newest || (pos - wall >= -behind && pos - wall <= ahead) => {}
            Some(_) => {
                stream.stats.resyncs += 1;
                self.counters.resyncs += 1;
                stream.anchor = Some(Anchor {
                    rtp_ts: ext_ts,
                    pos: wall as u64,
                });
            }
            None => {
                stream.anchor = Some(Anchor {
                    rtp_ts: ext_ts,
                    pos: wall as u64,
                });
            }
        }
        let Some(pos) = stream.position(ext_ts, rate) else {
            return;
        };

        // Fit the decoded samples to the timeline's rate.
        let (samples, repeat): (&[i16], usize) = if packet_rate == rate {
            (&self.scratch[..n], 1)
        } else if packet_rate * 2 == rate {
            (&self.scratch[..n], 2)
        } else {
            self.counters.rate_mismatch_packets += 1;
            let m = n / 2;
            for i in 0..m {
                self.half[i] =
                    ((self.scratch[2 * i] as i32 + self.scratch[2 * i + 1] as i32) / 2) as i16;
            }
            (&self.half[..m], 1)
        };
        if pos < 0 {
            stream.stats.late += 1;
            self.counters.rtp_late += 1;
            return;
        }
        // Never place audio in the future of capture time, nor so far past the call's last
        // audio that the gap would be written as a flood of silence (a jump in capture time).
        let cap = silence_cap(timeline, self.max_silence);
        if pos > wall + ahead || pos as u64 > cap {
            self.counters.rtp_bogus_timestamp += 1;
            return;
        }
        let pos = pos as u64;
        let end = pos + (samples.len() * repeat) as u64;
        let store = &mut self.store;
        let counters = &mut self.counters;
        if end > timeline.limit() {
            drain(timeline, writer, store, counters, end - timeline.capacity());
        }
        let out = timeline.add(side, pos, samples, repeat);
        if out.late > 0 {
            stream.stats.late += 1;
            counters.rtp_late += 1;
        }
        // Drain in batches of at least 100 ms: one sealer write per batch, not per packet.
        let hold = rate as u64 * delay_ms as u64 / 1000;
        let until = (wall as u64).saturating_sub(hold).min(cap);
        if until > timeline.drained() + rate as u64 / 10 {
            drain(timeline, writer, store, counters, until);
        }
    }

    /// Drains every call's audio older than the playout delay (capture time has advanced).
    pub fn tick(&mut self, now: Timestamp) {
        let delay_ms = self.cfg.playout_delay_ms as u64;
        for cm in self.slots.iter_mut().flatten() {
            let (Some(origin), Some(timeline), Some(writer)) =
                (cm.origin, cm.timeline.as_mut(), cm.writer.as_mut())
            else {
                continue;
            };
            let rate = timeline.rate();
            let wall = samples_since(origin, now, rate).max(0) as u64;
            let hold = rate as u64 * delay_ms / 1000;
            let quiet = cm
                .quiet_from
                .map_or(u64::MAX, |q| samples_since(origin, q, rate).max(0) as u64);
            let until = wall
                .saturating_sub(hold)
                .min(silence_cap(timeline, self.max_silence))
                .min(quiet);
            if until > timeline.drained() {
                drain(timeline, writer, &mut self.store, &mut self.counters, until);
            }
        }
    }

    /// The call's parties hung up at `from` (None: it goes on after all): until then, no
    /// silence past it.
    pub fn quiet(&mut self, slot: MediaSlot, from: Option<Timestamp>) {
        if let Some(cm) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
            cm.quiet_from = from;
        }
    }

    /// Finishes a call's recording: drains what is left, seals and commits its last segment.
    pub fn close(&mut self, slot: MediaSlot, ended_at: Timestamp) -> MediaSummary {
        let Some(cm) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return MediaSummary::default();
        };
        self.free.push(slot);
        self.counters.calls_closed += 1;
        let mut cm = cm;
        let mut summary = MediaSummary {
            streams: cm.streams.iter().map(StreamSummary::from).collect(),
            ..Default::default()
        };
        if let (Some(origin), Some(timeline), Some(writer)) =
            (cm.origin, cm.timeline.as_mut(), cm.writer.as_mut())
        {
            let rate = timeline.rate();
            let wall_end = samples_since(origin, ended_at, rate).max(0) as u64;
            // Trailing silence up to the hang-up is kept, but never more than a minute of it
            // past what was drained (a bogus end time must not write hours of zeros).
            let end = timeline
                .high()
                .max(wall_end.min(silence_cap(timeline, self.max_silence)));
            drain(timeline, writer, &mut self.store, &mut self.counters, end);
            if let Err(e) = writer.finish(&mut self.store) {
                self.counters.write_errors += 1;
                tracing::error!(call_id = %cm.call_id, "closing segment failed: {e}");
            }
            summary.segments = writer.segments().to_vec();
            summary.audio_ms = summary.segments.iter().map(|s| s.duration_ms).sum();
            summary.write_failed = writer.failed();
            self.counters.segments_written += summary.segments.len() as u64;
            self.counters.audio_ms_written += summary.audio_ms;
        }
        summary
    }
}

/// Audio a timeline holds: the playout delay, a 100 ms drain batch, packets up to
/// MAX_AHEAD early and the longest packet (120 ms).
fn hold_ms(delay_ms: u32) -> u32 {
    delay_ms + 100 + MAX_AHEAD.as_millis() as u32 + 120
}

/// Moves a call to a higher sample rate: what was recorded so far is drained and committed
/// at the old rate, and the timeline and every stream's anchor continue at the new one.
fn widen<F: std::io::Write, S: SegmentStore<File = F>>(
    cm: &mut CallMedia<F>,
    rate: u32,
    store: &mut S,
    counters: &mut MediaCounters,
    delay_ms: u32,
) {
    let (Some(timeline), Some(writer)) = (cm.timeline.as_mut(), cm.writer.as_mut()) else {
        return;
    };
    let old = timeline.rate().max(1) as u64;
    let end = timeline.high().max(timeline.drained());
    drain(timeline, writer, store, counters, end);
    if let Err(e) = writer.change_rate(store, rate) {
        counters.write_errors += 1;
        tracing::error!("changing the recording's rate failed: {e}");
    }
    let position = end * rate as u64 / old;
    *timeline = Timeline::starting_at(rate, hold_ms(delay_ms), position);
    for s in &mut cm.streams {
        if let Some(a) = s.anchor.as_mut() {
            a.pos = a.pos * rate as u64 / old;
        }
    }
    counters.rate_changes += 1;
}

/// How far silence may be written: `max_silence` past the call's last audio.
fn silence_cap(timeline: &Timeline, max_silence: Duration) -> u64 {
    let silence = timeline.rate() as u64 * max_silence.as_millis() as u64 / 1000;
    timeline.high() + silence
}

/// Timeline position of capture time `time` (negative before the origin).
#[inline]
fn samples_since(origin: Timestamp, time: Timestamp, rate: u32) -> i64 {
    let ns = time.as_nanos() as i64 - origin.as_nanos() as i64;
    match ns.checked_mul(rate as i64) {
        Some(x) => x / 1_000_000_000,
        None => (ns as i128 * rate as i128 / 1_000_000_000) as i64,
    }
}

fn drain<S: SegmentStore>(
    timeline: &mut Timeline,
    writer: &mut SegmentWriter<S::File>,
    store: &mut S,
    counters: &mut MediaCounters,
    until: u64,
) {
    timeline.drain_to(until, &mut |left, right| {
        if let Err(e) = writer.write_frames(store, left, right) {
            counters.write_errors += 1;
            tracing::error!("writing segment failed, the rest of this call is not recorded: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::g711;
    use crate::session::Codec;
    use crate::vault::{CataloguePrivateKey, SegmentOpener};
    use std::collections::HashMap;
    use std::io;

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

    fn map(pt: u8, name: &str) -> PayloadMap {
        let mut m = PayloadMap::default();
        m.insert(pt, Codec::new(name, 8000));
        m
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
            stage.packet(slot, Side::Caller, SRC, t, &p, &codecs);
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
            stage.packet(
                slot,
                Side::Caller,
                SRC,
                t,
                &rtp(9, i, i as u32 * 160, 1, &[0x3c; 160]),
                &g722,
            );
            stage.packet(
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
            stage.packet(slot, Side::Caller, SRC, t, &p, &pcma);
        }
        // the missing packet arrives late (not the newest), its timestamp claiming hours ahead
        let bogus = rtp(8, 40, 0x7fff_0000, 1, &[0xd5; 160]);
        stage.packet(
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
            stage.packet(slot, Side::Organisation, SRC, t, &p, &pcmu);
        }
        // then the answer: G.722 both ways for two seconds
        for i in 0..100u16 {
            let t = Timestamp::from_millis(1_000 + i as u64 * 20);
            let p = rtp(9, i, i as u32 * 160, 1, &[0x3c; 160]);
            stage.packet(slot, Side::Caller, SRC, t, &p, &g722);
            let p = rtp(9, i + 50, (i as u32 + 50) * 160, 2, &[0x5a; 160]);
            stage.packet(slot, Side::Organisation, SRC, t, &p, &g722);
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
                stage.packet(slot, Side::Caller, SRC, t, &p, &pcma);
            }
            let relayed = t + Duration::from_micros(200);
            stage.packet(slot, Side::Caller, RELAY, relayed, &p, &pcma);
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
            stage.packet(slot, Side::Caller, SRC, t, &a, &pcma);
            stage.packet(slot, Side::Caller, RELAY, t, &b, &pcma);
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
            stage.packet(
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
}
