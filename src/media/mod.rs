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
//! A packet goes through named steps ([`MediaStage::packet`]): find its stream (a
//! [`Track`]), follow its payload type, judge its sequence number, set aside a media relay's
//! second copy, decode, move the call to a higher rate if a wideband stream joined, and place
//! it in the call's [`JitterBuffer`], from which audio older than the playout delay goes to
//! the segment writer in order.
//!
//! Timing: within a stream, a packet's place comes from its RTP timestamp relative to the
//! stream's anchor (the rtp stage's [`crate::rtp::Stream::place`]); the anchor comes from
//! capture time when the stream starts and again when the RTP clock and the capture clock
//! disagree by more than the playout delay allows (a new SSRC, a sequence restart, timestamps
//! that did not advance during a hold). Audio is held for `playout_delay_ms` so that jittered
//! and reordered packets land in place.

mod config;
mod counters;
mod jitter_buffer;
mod packet;
mod track;

pub use config::MediaSection;
pub use counters::MediaCounters;
pub use jitter_buffer::JitterBuffer;
pub use packet::MediaPacket;
pub use track::Track;

use std::sync::Arc;
use std::time::Duration;

use rtp_rs::RtpReader;
use uuid::Uuid;

use crate::decode::{self, MAX_PACKET_SAMPLES};
use crate::entropy::Entropy;
use crate::record::MediaSummary;
use crate::rtp::{PacketPrint, SeqVerdict, Stream};
use crate::segment::{SegmentStore, SegmentWriter};
use crate::session::CodecKind;
use crate::time::Timestamp;
use crate::vault::CataloguePublicKey;

/// Streams kept per call (SSRC changes, transfers, music on hold); more are counted, not kept.
pub const MAX_STREAMS_PER_CALL: usize = 32;

/// Handle of an open call recording inside the media stage.
pub type MediaSlot = u32;

/// The recording of one call.
struct CallMedia<F: std::io::Write> {
    call_id: Uuid,
    tracks: Vec<Track>,
    /// From the call's first audio packet on.
    recording: Option<Recording<F>>,
    last_packet: Option<Timestamp>,
    /// The parties hung up here (the call may still go on): no silence past it.
    quiet_from: Option<Timestamp>,
}

/// A call's audio on its way to disk: the jitter buffer and the segment writer behind it.
struct Recording<F: std::io::Write> {
    buffer: JitterBuffer,
    writer: SegmentWriter<F>,
}

pub struct MediaStage<S: SegmentStore> {
    slots: Vec<Option<CallMedia<S::File>>>,
    free: Vec<MediaSlot>,
    store: S,
    key: Arc<CataloguePublicKey>,
    cfg: MediaSection,
    /// One packet's decoded samples, and the same halved (see [`decode::rate`]).
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
            tracks: Vec::new(),
            recording: None,
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

    /// Records one RTP packet of the call in `slot`.
    pub fn packet(&mut self, slot: MediaSlot, p: &MediaPacket) {
        let Some(Some(cm)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let counters = &mut self.counters;
        counters.rtp_packets += 1;
        let Ok(rtp) = RtpReader::new(p.rtp) else {
            counters.rtp_malformed += 1;
            return;
        };
        let Some(idx) = cm.track_of(p, rtp.ssrc()) else {
            counters.streams_refused += 1;
            return;
        };
        cm.last_packet = Some(p.time);
        let track = &mut cm.tracks[idx];
        track.stream.last_seen = p.time;
        track.stream.stats.packets += 1;
        track.stream.stats.bytes += p.rtp.len() as u64;
        track.follow_payload_type(rtp.payload_type(), p.codecs);
        let Some(newest) = judge_sequence(&mut track.stream, &rtp, counters) else {
            return;
        };
        if track.stream.kind.is_some_and(|k| k.is_audio()) {
            let rate = track.stream.clock_rate;
            track
                .stream
                .jitter
                .packet(p.time.as_nanos(), rtp.timestamp(), rate);
        }
        let ext_ts = track.stream.extend_timestamp(rtp.timestamp());
        let print = PacketPrint::of(rtp.sequence_number().into(), rtp.timestamp(), rtp.payload());
        if cm.is_relay_copy(idx, print, ext_ts, p.time) {
            counters.rtp_relay_copies += 1;
            return;
        }
        let Some((n, packet_rate)) = decode_audio(
            &mut cm.tracks[idx],
            rtp.payload(),
            &mut self.scratch[..],
            counters,
        ) else {
            return;
        };
        // A wideband stream joining a narrowband call (PCMU early media, then G.722): the rest
        // of the call is recorded at the higher rate, in a new segment.
        if let Some(rec) = cm
            .recording
            .as_mut()
            .filter(|r| packet_rate > r.buffer.rate())
        {
            widen(rec, &mut cm.tracks, packet_rate, &mut self.store, counters);
        }
        // The call's timeline starts at its first audio packet, at that codec's rate.
        let rec = cm.recording.get_or_insert_with(|| Recording {
            buffer: JitterBuffer::new(
                p.time,
                packet_rate,
                self.cfg.playout_delay_ms,
                self.max_silence,
            ),
            writer: SegmentWriter::new(
                cm.call_id,
                self.key.clone(),
                packet_rate,
                p.time,
                self.cfg.segment_seconds,
                self.cfg.fsync_seconds,
                self.entropy.fork(),
            ),
        });
        let decoded = decode::rate::fit(
            &self.scratch[..n],
            packet_rate,
            rec.buffer.rate(),
            &mut self.half[..],
        );
        let track = &mut cm.tracks[idx];
        place(
            rec,
            track,
            p,
            ext_ts,
            newest,
            decoded,
            &mut self.store,
            counters,
        );
    }

    /// Hands every call's audio older than the playout delay to its writer (capture time
    /// has advanced).
    pub fn tick(&mut self, now: Timestamp) {
        for cm in self.slots.iter_mut().flatten() {
            let Some(rec) = cm.recording.as_mut() else {
                continue;
            };
            let until = rec.buffer.due(now, cm.quiet_from);
            let Recording { buffer, writer } = rec;
            buffer.drain_to(
                until,
                &mut to_writer(writer, &mut self.store, &mut self.counters),
            );
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
        let mut summary = MediaSummary {
            streams: cm.tracks.iter().map(Track::summary).collect(),
            ..Default::default()
        };
        if let Some(Recording {
            mut buffer,
            mut writer,
        }) = cm.recording
        {
            let end = buffer.end(ended_at);
            buffer.drain_to(
                end,
                &mut to_writer(&mut writer, &mut self.store, &mut self.counters),
            );
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

impl<F: std::io::Write> CallMedia<F> {
    /// The track the packet belongs to, started if it is a new stream and there is room.
    fn track_of(&mut self, p: &MediaPacket, ssrc: u32) -> Option<usize> {
        match self
            .tracks
            .iter()
            .position(|t| t.is(p.side, ssrc, p.source))
        {
            Some(i) => Some(i),
            None if self.tracks.len() < MAX_STREAMS_PER_CALL => {
                self.tracks.push(Track::new(p.side, ssrc, p.source, p.time));
                Some(self.tracks.len() - 1)
            }
            None => None,
        }
    }

    /// Whether track `idx`'s packet is the same packet on another hop of a media relay (an
    /// SBC between caller and agent on the mirrored path), which is heard once. The first
    /// copy of each packet to arrive is the one recorded, whichever hop it came from: it is
    /// nearest the sender (a relay only adds delay), and a packet the mirror lost on one hop
    /// is still recorded from the other. A copy still teaches its track where it belongs, so
    /// that the packets only this hop carried land where the other copy's would.
    fn is_relay_copy(
        &mut self,
        idx: usize,
        print: PacketPrint,
        ext_ts: u64,
        time: Timestamp,
    ) -> bool {
        let Some(this) = self.tracks.get(idx).map(|t| &t.stream) else {
            return false;
        };
        let copy_of = (self.tracks.len() > 1)
            .then(|| {
                self.tracks.iter().enumerate().find_map(|(j, t)| {
                    let s = &t.stream;
                    (j != idx && s.side == this.side && s.ssrc == this.ssrc)
                        .then(|| s.recent.find(print, time).map(|ext| (j, ext)))
                        .flatten()
                })
            })
            .flatten();
        let aligned = copy_of.and_then(|(j, their_ext)| {
            let rate = self.recording.as_ref()?.buffer.rate();
            self.tracks[j]
                .stream
                .position(their_ext, rate)
                .filter(|&pos| pos >= 0)
        });
        let stream = &mut self.tracks[idx].stream;
        stream.recent.push(print, time, ext_ts);
        if copy_of.is_none() {
            return false;
        }
        if let Some(pos) = aligned {
            stream.align(ext_ts, pos as u64);
        }
        stream.stats.relay_copies += 1;
        true
    }
}

/// The sequence number's verdict: `Some(newest)` for a packet to record, `None` for a
/// duplicate or one too late to place (counted).
fn judge_sequence(
    stream: &mut Stream,
    rtp: &RtpReader,
    counters: &mut MediaCounters,
) -> Option<bool> {
    match stream.seq.accept(u16::from(rtp.sequence_number())) {
        SeqVerdict::Duplicate => {
            counters.rtp_duplicates += 1;
            None
        }
        SeqVerdict::TooOld => {
            stream.stats.late += 1;
            counters.rtp_late += 1;
            None
        }
        SeqVerdict::Accept { newest, .. } => Some(newest),
        SeqVerdict::Restart { .. } => {
            stream.restart();
            counters.resyncs += 1;
            Some(true)
        }
    }
}

/// Decodes an audio packet into `out`: `Some((samples, rate))`, or `None` for telephone
/// events (DTMF: counted, never rendered), comfort noise and codecs callvault cannot decode
/// (counted, left silent).
fn decode_audio(
    track: &mut Track,
    payload: &[u8],
    out: &mut [i16],
    counters: &mut MediaCounters,
) -> Option<(usize, u32)> {
    let stats = &mut track.stream.stats;
    match track.stream.kind {
        Some(CodecKind::TelephoneEvent) => {
            stats.events += 1;
            counters.rtp_events += 1;
            return None;
        }
        Some(CodecKind::ComfortNoise) => {
            stats.comfort_noise += 1;
            return None;
        }
        _ => {}
    }
    let Some(decoder) = track.decoder.as_mut() else {
        stats.undecodable += 1;
        counters.rtp_undecodable += 1;
        return None;
    };
    let n = decoder.decode(payload, out);
    (n > 0).then(|| (n, decoder.sample_rate()))
}

/// Places a decoded packet of `track` in the call's jitter buffer and hands the writer what
/// is due.
#[allow(clippy::too_many_arguments)]
fn place<S: SegmentStore>(
    rec: &mut Recording<S::File>,
    track: &mut Track,
    p: &MediaPacket,
    ext_ts: u64,
    newest: bool,
    decoded: decode::rate::Fitted,
    store: &mut S,
    counters: &mut MediaCounters,
) {
    let Recording { buffer, writer } = rec;
    let stream = &mut track.stream;
    let rate = buffer.rate();
    let wall = buffer.wall(p.time);
    let Some(placed) = stream.place(ext_ts, rate, wall, newest, buffer.window()) else {
        return;
    };
    if placed.resynced {
        counters.resyncs += 1;
    }
    if decoded.halved {
        counters.rate_mismatch_packets += 1;
    }
    if placed.pos < 0 {
        stream.stats.late += 1;
        counters.rtp_late += 1;
        return;
    }
    let pos = placed.pos as u64;
    if !buffer.believable(pos, wall) {
        counters.rtp_bogus_timestamp += 1;
        return;
    }
    let due = buffer.due(p.time, None);
    let mut out = to_writer(writer, store, counters);
    let placed = buffer.place(p.side, pos, decoded.samples, decoded.repeat, &mut out);
    buffer.drain_batch(due, &mut out);
    drop(out);
    if placed.late > 0 {
        stream.stats.late += 1;
        counters.rtp_late += 1;
    }
}

/// Moves a call to a higher sample rate: what was recorded so far is handed out and committed
/// at the old rate, and the jitter buffer and every stream's anchor continue at the new one.
fn widen<S: SegmentStore>(
    rec: &mut Recording<S::File>,
    tracks: &mut [Track],
    rate: u32,
    store: &mut S,
    counters: &mut MediaCounters,
) {
    let Recording { buffer, writer } = rec;
    let old = buffer.rate().max(1) as u64;
    let end = buffer.placed_end();
    buffer.drain_to(end, &mut to_writer(writer, store, counters));
    if let Err(e) = writer.change_rate(store, rate) {
        counters.write_errors += 1;
        tracing::error!("changing the recording's rate failed: {e}");
    }
    buffer.widen(rate, end * rate as u64 / old);
    for t in tracks {
        t.stream.rescale(old, rate as u64);
    }
    counters.rate_changes += 1;
}

/// Where a jitter buffer's audio goes: the call's segment writer. A failed write is counted
/// and logged; the writer records nothing more of the call.
fn to_writer<'a, S: SegmentStore>(
    writer: &'a mut SegmentWriter<S::File>,
    store: &'a mut S,
    counters: &'a mut MediaCounters,
) -> impl FnMut(&[i16], &[i16]) + 'a {
    move |left, right| {
        if let Err(e) = writer.write_frames(store, left, right) {
            counters.write_errors += 1;
            tracing::error!("writing segment failed, the rest of this call is not recorded: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
