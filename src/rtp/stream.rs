//! One RTP stream (one SSRC from one side of a call): its codec, sequence, statistics and the
//! anchor that maps its RTP timestamps onto the call's timeline.
//!
//! The anchor is set from capture time when the stream starts and again after a
//! discontinuity, and is otherwise left alone: within a stream, samples are placed by RTP
//! timestamp only, so network jitter moves nothing and causes no clicks or drift. Placement
//! ([`Stream::place`]) is this file's: the media stage asks where a packet goes and is told,
//! with whether the stream had to be re-anchored to get there.

use std::net::SocketAddr;

use serde::Serialize;

use super::relay::RecentPackets;
use super::sequence::SequenceTracker;
use crate::session::{CodecKind, PayloadMap, Side};
use crate::time::Timestamp;

/// RTP timestamp `rtp_ts` (extended) is heard at timeline sample `pos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub rtp_ts: u64,
    pub pos: u64,
}

/// What the metadata says about a stream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamStats {
    pub packets: u64,
    pub bytes: u64,
    /// RFC 4733 event packets (DTMF): counted, never rendered, digits not kept.
    pub events: u64,
    pub comfort_noise: u64,
    /// Packets of a codec callvault cannot decode (left as silence).
    pub undecodable: u64,
    /// Packets that arrived after their place on the timeline had been written.
    pub late: u64,
    /// Times the stream was re-anchored to capture time (timestamp jumps, long gaps).
    pub resyncs: u64,
    /// Packets another stream of the same party had already carried: the copy of a media
    /// relay's other hop (see [`super::relay`]), not heard twice.
    pub relay_copies: u64,
}

/// How far (in timeline samples) a stream's newest packet may sit behind or ahead of capture
/// time before the stream is re-anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub behind: i64,
    pub ahead: i64,
}

impl Window {
    fn holds(self, offset: i64) -> bool {
        offset >= -self.behind && offset <= self.ahead
    }
}

/// Where a packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Timeline position of its first sample (negative: before the call's first audio).
    pub pos: i64,
    /// The stream was re-anchored to capture time to place it.
    pub resynced: bool,
}

#[derive(Debug)]
pub struct Stream {
    pub side: Side,
    pub ssrc: u32,
    /// Where the packets come from: two devices (or one device in two calls) may use the
    /// same SSRC, and must not share a sequence tracker.
    pub source: SocketAddr,
    pub seq: SequenceTracker,
    pub stats: StreamStats,
    pub anchor: Option<Anchor>,
    /// Payload type last seen and what it decodes to.
    pub pt: Option<u8>,
    pub kind: Option<CodecKind>,
    pub codec_name: String,
    pub clock_rate: u32,
    /// The packets it carried last, to recognise another hop's copies of them.
    pub recent: RecentPackets,
    /// Interarrival jitter of its audio packets (RFC 3550).
    pub jitter: super::jitter::Jitter,
    ts_started: bool,
    ts_highest: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

impl Stream {
    pub fn new(side: Side, ssrc: u32, source: SocketAddr, now: Timestamp) -> Stream {
        Stream {
            side,
            ssrc,
            source,
            seq: SequenceTracker::default(),
            stats: StreamStats::default(),
            anchor: None,
            pt: None,
            kind: None,
            codec_name: String::new(),
            clock_rate: 8000,
            recent: RecentPackets::default(),
            jitter: super::jitter::Jitter::default(),
            ts_started: false,
            ts_highest: 0,
            first_seen: now,
            last_seen: now,
        }
    }

    /// Follows the packet's payload type to the codec SDP named for it. Returns the new kind
    /// of media when it changed (the caller then needs another decoder), `None` otherwise.
    pub fn follow_payload_type(&mut self, pt: u8, codecs: &PayloadMap) -> Option<CodecKind> {
        if self.pt == Some(pt) {
            return None;
        }
        self.pt = Some(pt);
        let before = self.kind;
        match codecs.lookup(pt) {
            Some(codec) => {
                if codec.kind.is_audio() || self.codec_name.is_empty() {
                    self.codec_name = codec.name.clone();
                    self.clock_rate = codec.clock_rate;
                }
                self.kind = Some(codec.kind);
            }
            None => {
                self.kind = Some(CodecKind::Other);
                if self.codec_name.is_empty() {
                    self.codec_name = format!("dynamic-{pt}");
                }
            }
        }
        (self.kind != before).then_some(self.kind).flatten()
    }

    /// The sender restarted its sequence (a new call leg on the same SSRC, a device reboot):
    /// the next packet is anchored afresh.
    pub fn restart(&mut self) {
        self.anchor = None;
        self.jitter.restart();
        self.stats.resyncs += 1;
    }

    /// Ties timestamp `ext_ts` to timeline position `pos` (another hop's copy of this packet
    /// already sits there).
    pub fn align(&mut self, ext_ts: u64, pos: u64) {
        self.anchor = Some(Anchor {
            rtp_ts: ext_ts,
            pos,
        });
    }

    /// The timeline moved from `old` Hz to `new` Hz: the anchor follows.
    pub fn rescale(&mut self, old: u64, new: u64) {
        if let Some(a) = self.anchor.as_mut() {
            a.pos = a.pos * new / old.max(1);
        }
    }

    /// Where the packet with timestamp `ext_ts` goes on a timeline at `rate` Hz, given that
    /// capture time puts it at `wall`. A stream that is not anchored is anchored there; a
    /// stream whose newest packet strays from capture time by more than `window` (a new
    /// talk spurt after a hold that did not advance the timestamp, a sender's clock step) is
    /// re-anchored there and the resync counted. Older packets (reordered) keep the anchor,
    /// so they land between their neighbours.
    pub fn place(
        &mut self,
        ext_ts: u64,
        rate: u32,
        wall: i64,
        newest: bool,
        window: Window,
    ) -> Option<Placed> {
        let resynced = match self.position(ext_ts, rate) {
            Some(pos) if !newest || window.holds(pos - wall) => false,
            Some(_) => {
                self.stats.resyncs += 1;
                self.align(ext_ts, wall.max(0) as u64);
                true
            }
            None => {
                self.align(ext_ts, wall.max(0) as u64);
                false
            }
        };
        Some(Placed {
            pos: self.position(ext_ts, rate)?,
            resynced,
        })
    }

    /// Extends a 32-bit RTP timestamp using the highest seen (wrap-around every 6 days at
    /// 8 kHz, but senders start anywhere).
    pub fn extend_timestamp(&mut self, ts: u32) -> u64 {
        if !self.ts_started {
            self.ts_started = true;
            self.ts_highest = (1u64 << 40) + ts as u64;
            return self.ts_highest;
        }
        let delta = ts.wrapping_sub(self.ts_highest as u32) as i32 as i64;
        let ext = (self.ts_highest as i64 + delta) as u64;
        if delta > 0 {
            self.ts_highest = ext;
        }
        ext
    }

    /// Timeline position of an extended timestamp under the current anchor, at `rate` Hz.
    pub fn position(&self, ext_ts: u64, rate: u32) -> Option<i64> {
        let a = self.anchor?;
        let dts = ext_ts as i64 - a.rtp_ts as i64;
        let scaled = dts.checked_mul(rate as i64)? / self.clock_rate.max(1) as i64;
        Some(a.pos as i64 + scaled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_extend_across_wrap() {
        let mut s = Stream::new(
            Side::Caller,
            1,
            SocketAddr::from(([0, 0, 0, 0], 0)),
            Timestamp::ZERO,
        );
        let a = s.extend_timestamp(u32::MAX - 159);
        let b = s.extend_timestamp(0);
        let c = s.extend_timestamp(160);
        assert_eq!(b - a, 160);
        assert_eq!(c - b, 160);
        // a reordered packet from before the wrap
        assert_eq!(s.extend_timestamp(u32::MAX - 159), a);
    }

    #[test]
    fn position_scales_rtp_clock_to_timeline_rate() {
        let mut s = Stream::new(
            Side::Caller,
            1,
            SocketAddr::from(([0, 0, 0, 0], 0)),
            Timestamp::ZERO,
        );
        let t0 = s.extend_timestamp(1000);
        s.anchor = Some(Anchor {
            rtp_ts: t0,
            pos: 400,
        });
        assert_eq!(s.position(t0 + 160, 8000), Some(560));
        assert_eq!(s.position(t0 + 160, 16000), Some(720));
        assert_eq!(s.position(t0 - 160, 8000), Some(240));
    }
}
