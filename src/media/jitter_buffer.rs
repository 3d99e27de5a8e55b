//! The jitter buffer of one recorded call: its stereo timeline held back by the playout delay.
//!
//! Packets are placed on the call's [`Timeline`] by RTP timestamp (the rtp stage says where);
//! audio leaves it, in order, once capture time is `playout_delay_ms` past it, so jittered and
//! reordered packets land in place before their stretch is written. Positions count samples
//! since the call's first audio packet (the origin), at the call's rate. Two bounds keep a
//! broken clock from filling a disk: audio is never placed ahead of capture time by more than
//! [`MAX_AHEAD`], and silence is never written more than `max_silence` past the call's last
//! audio. This module owns that arithmetic; it writes nothing itself (draining hands the
//! samples to the caller, which gives them to the segment writer).

use std::time::Duration;

use crate::mixer::{Timeline, WriteOutcome};
use crate::rtp::Window;
use crate::session::Side;
use crate::time::Timestamp;

/// Capture time and RTP time may disagree by this much before a stream is re-anchored
/// when the packet claims to be *ahead* of capture time.
pub const MAX_AHEAD: Duration = Duration::from_millis(100);

/// Audio is handed out in batches of at least this long (one sealer write per batch, not
/// per packet), except when capture time moves on without packets.
const BATCH_MS: u64 = 100;

#[derive(Debug)]
pub struct JitterBuffer {
    origin: Timestamp,
    timeline: Timeline,
    playout_delay_ms: u32,
    max_silence: Duration,
}

impl JitterBuffer {
    /// A buffer whose position 0 is capture time `origin`, at `rate` Hz.
    pub fn new(origin: Timestamp, rate: u32, playout_delay_ms: u32, max_silence: Duration) -> Self {
        JitterBuffer {
            origin,
            timeline: Timeline::new(rate, hold_ms(playout_delay_ms)),
            playout_delay_ms,
            max_silence,
        }
    }

    pub fn rate(&self) -> u32 {
        self.timeline.rate()
    }

    /// Everything before this position has been handed out.
    pub fn drained(&self) -> u64 {
        self.timeline.drained()
    }

    /// Position of capture time `time`; a time before the origin (merged captures, two mirror
    /// ports with slightly different clocks) counts as the origin, never before it.
    pub fn wall(&self, time: Timestamp) -> i64 {
        samples_since(self.origin, time, self.rate()).max(0)
    }

    /// How far a stream's newest packet may stray from capture time before it is re-anchored:
    /// three quarters of the playout delay behind, [`MAX_AHEAD`] ahead.
    pub fn window(&self) -> Window {
        let rate = self.rate() as i64;
        Window {
            behind: rate * (self.playout_delay_ms as i64 * 3 / 4) / 1000,
            ahead: rate * MAX_AHEAD.as_millis() as i64 / 1000,
        }
    }

    /// Whether audio may be placed at `pos` when capture time is at `wall`: never in the future
    /// of capture time, nor so far past the call's last audio that the gap would be written
    /// as a flood of silence.
    pub fn believable(&self, pos: u64, wall: i64) -> bool {
        pos as i64 <= wall + self.window().ahead && pos <= self.silence_cap()
    }

    /// Adds samples at `pos` (each repeated `repeat` times), first handing `out` whatever must
    /// leave to make room.
    pub fn place(
        &mut self,
        side: Side,
        pos: u64,
        samples: &[i16],
        repeat: usize,
        out: &mut dyn FnMut(&[i16], &[i16]),
    ) -> WriteOutcome {
        let end = pos + (samples.len() * repeat) as u64;
        if end > self.timeline.limit() {
            self.timeline.drain_to(end - self.timeline.capacity(), out);
        }
        self.timeline.add(side, pos, samples, repeat)
    }

    /// Where audio is due at capture time `now`: older than the playout delay, never past
    /// the silence cap, nor past `quiet` (the parties hung up there).
    pub fn due(&self, now: Timestamp, quiet: Option<Timestamp>) -> u64 {
        let rate = self.rate();
        let hold = rate as u64 * self.playout_delay_ms as u64 / 1000;
        let quiet = quiet.map_or(u64::MAX, |q| {
            samples_since(self.origin, q, rate).max(0) as u64
        });
        (self.wall(now) as u64)
            .saturating_sub(hold)
            .min(self.silence_cap())
            .min(quiet)
    }

    /// Hands out everything before `until` (what [`Self::due`] said), but only once a
    /// batch's worth has gathered.
    pub fn drain_batch(&mut self, until: u64, out: &mut dyn FnMut(&[i16], &[i16])) {
        if until > self.drained() + self.rate() as u64 * BATCH_MS / 1000 {
            self.timeline.drain_to(until, out);
        }
    }

    /// Hands out everything before `until`.
    pub fn drain_to(&mut self, until: u64, out: &mut dyn FnMut(&[i16], &[i16])) {
        if until > self.drained() {
            self.timeline.drain_to(until, out);
        }
    }

    /// Where the recording ends when the call ends at `ended_at`: trailing silence up to the
    /// hang-up is kept, but never more than `max_silence` of it past the last audio (a bogus
    /// end time must not write hours of zeros).
    pub fn end(&self, ended_at: Timestamp) -> u64 {
        let wall_end = self.wall(ended_at) as u64;
        self.timeline.high().max(wall_end.min(self.silence_cap()))
    }

    /// Where the audio placed so far ends (every position before it can be handed out).
    pub fn placed_end(&self) -> u64 {
        self.timeline.high().max(self.timeline.drained())
    }

    /// Continues at `rate` Hz from `position` (already at the new rate); everything before
    /// it must have been handed out.
    pub fn widen(&mut self, rate: u32, position: u64) {
        self.timeline = Timeline::starting_at(rate, hold_ms(self.playout_delay_ms), position);
    }

    /// How far silence may be written: `max_silence` past the call's last audio.
    fn silence_cap(&self) -> u64 {
        let silence = self.rate() as u64 * self.max_silence.as_millis() as u64 / 1000;
        self.timeline.high() + silence
    }
}

/// Audio a timeline holds: the playout delay, a drain batch, packets up to MAX_AHEAD early
/// and the longest packet (120 ms).
fn hold_ms(delay_ms: u32) -> u32 {
    delay_ms + BATCH_MS as u32 + MAX_AHEAD.as_millis() as u32 + 120
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

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer() -> JitterBuffer {
        JitterBuffer::new(
            Timestamp::from_millis(1_000),
            8_000,
            60,
            Duration::from_secs(2),
        )
    }

    #[test]
    fn audio_leaves_once_the_playout_delay_has_passed_in_batches() {
        let mut b = buffer();
        let mut out = Vec::new();
        b.place(Side::Caller, 0, &[1; 160], 1, &mut |l, _| {
            out.extend_from_slice(l)
        });
        // 80 ms of capture time: 20 ms due, less than a batch
        let due = b.due(Timestamp::from_millis(1_080), None);
        b.drain_batch(due, &mut |l, _| out.extend_from_slice(l));
        assert!(out.is_empty());
        let due = b.due(Timestamp::from_millis(1_200), None);
        b.drain_batch(due, &mut |l, _| out.extend_from_slice(l));
        assert_eq!(out.len(), 8 * 140, "up to capture time less the delay");
        assert_eq!(&out[..160], &[1; 160]);
    }

    #[test]
    fn silence_is_capped_past_the_last_audio_and_the_hang_up_bounds_it() {
        let mut b = buffer();
        b.place(Side::Caller, 0, &[1; 160], 1, &mut |_, _| {});
        let years = Timestamp::from_millis(86_400_000 * 365);
        assert_eq!(
            b.due(years, None),
            160 + 16_000,
            "two seconds past the last audio"
        );
        assert_eq!(b.end(years), 160 + 16_000);
        let hung_up = Timestamp::from_millis(1_500);
        assert_eq!(b.due(years, Some(hung_up)), 4_000);
        assert!(!b.believable(160 + 16_001, i64::MAX / 2));
        assert!(
            !b.believable(2_000, 1_000),
            "ahead of capture time by more than 100 ms"
        );
        assert!(b.believable(1_800, 1_000));
    }

    #[test]
    fn a_time_before_the_origin_counts_as_the_origin() {
        let b = buffer();
        assert_eq!(b.wall(Timestamp::from_millis(900)), 0);
        assert_eq!(b.wall(Timestamp::from_millis(1_020)), 160);
        assert_eq!(
            b.window(),
            Window {
                behind: 360,
                ahead: 800
            }
        );
    }
}
