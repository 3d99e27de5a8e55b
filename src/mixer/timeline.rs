//! The ring buffer behind a call's stereo timeline.

use crate::session::Side;

/// Result of placing samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub written: usize,
    /// Samples whose place had already been drained (too late) and were dropped.
    pub late: usize,
}

/// Stereo samples from position `drained` (inclusive) onwards, up to `capacity` ahead.
///
/// The two channels are kept in separate rings (planar) so that placing a packet is a
/// contiguous saturating add the compiler vectorises; they are interleaved only on the way
/// out, in the segment writer.
#[derive(Debug)]
pub struct Timeline {
    rate: u32,
    /// [left (caller), right (organisation)]
    ring: [Vec<i16>; 2],
    cap: u64,
    drained: u64,
    /// One past the furthest position written.
    high: u64,
}

impl Timeline {
    /// A timeline at `rate` Hz able to hold `hold_ms` of audio not yet drained.
    pub fn new(rate: u32, hold_ms: u32) -> Timeline {
        // Exactly the window needed, not rounded to a power of two: one modulo per run of
        // samples is cheaper than the extra memory per call.
        let cap = (rate as u64 * hold_ms as u64 / 1000).max(256);
        Timeline {
            rate,
            ring: [vec![0; cap as usize], vec![0; cap as usize]],
            cap,
            drained: 0,
            high: 0,
        }
    }

    /// A timeline whose first position is `position` (when a call's rate changes, the new
    /// timeline continues where the old one ended).
    pub fn starting_at(rate: u32, hold_ms: u32, position: u64) -> Timeline {
        let mut t = Timeline::new(rate, hold_ms);
        t.drained = position;
        t.high = position;
        t
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }
    pub fn capacity(&self) -> u64 {
        self.cap
    }
    /// Everything before this position has been handed out.
    pub fn drained(&self) -> u64 {
        self.drained
    }
    /// One past the furthest position audio was ever written to (draining silence does not
    /// move it).
    pub fn high(&self) -> u64 {
        self.high
    }

    /// The furthest position (exclusive) that can be written without draining first.
    pub fn limit(&self) -> u64 {
        self.drained + self.capacity()
    }

    /// Adds `samples` to `side` starting at `pos`, each repeated `repeat` times (2 when an
    /// 8 kHz stream plays on a 16 kHz timeline). Positions already drained are dropped and
    /// counted; the caller must have drained far enough that `pos + len*repeat <= limit()`,
    /// anything beyond is dropped too.
    pub fn add(&mut self, side: Side, pos: u64, samples: &[i16], repeat: usize) -> WriteOutcome {
        let ch = side.channel();
        let repeat = repeat.max(1);
        let total = (samples.len() * repeat) as u64;
        let end = pos + total;
        // The writable window is [drained, limit): clip once, then copy without per-sample
        // bounds decisions (this loop is the mixer's hot path: measured 13% of replay before).
        let start = pos.max(self.drained);
        let stop = end.min(self.limit());
        if start >= stop {
            return WriteOutcome {
                written: 0,
                late: total as usize,
            };
        }
        let written = (stop - start) as usize;
        let ring = &mut self.ring[ch];
        let mut p = start;
        let mut i = (start - pos) as usize;
        while p < stop {
            let slot = (p % self.cap) as usize;
            let run = ((stop - p) as usize).min(ring.len() - slot);
            let dst = &mut ring[slot..slot + run];
            if repeat == 1 {
                for (d, &s) in dst.iter_mut().zip(&samples[i..i + run]) {
                    *d = d.saturating_add(s);
                }
            } else {
                for (k, d) in dst.iter_mut().enumerate() {
                    *d = d.saturating_add(samples[(i + k) / repeat]);
                }
            }
            p += run as u64;
            i += run;
        }
        self.high = self.high.max(stop);
        WriteOutcome {
            written,
            late: total as usize - written,
        }
    }

    /// Hands out every position in `[drained, until)` in order, as contiguous (left, right)
    /// slices of equal length, and clears them for reuse.
    pub fn drain_to(&mut self, until: u64, sink: &mut dyn FnMut(&[i16], &[i16])) {
        let cap = self.ring[0].len();
        while self.drained < until {
            let start = (self.drained % self.cap) as usize;
            let n = ((until - self.drained) as usize).min(cap - start);
            let [left, right] = &mut self.ring;
            let (l, r) = (&mut left[start..start + n], &mut right[start..start + n]);
            sink(l, r);
            l.fill(0);
            r.fill(0);
            self.drained += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain_all(t: &mut Timeline, until: u64) -> Vec<[i16; 2]> {
        let mut v = Vec::new();
        t.drain_to(until, &mut |l, r| {
            v.extend(l.iter().zip(r).map(|(&a, &b)| [a, b]))
        });
        v
    }

    #[test]
    fn places_by_position_in_any_order_and_fills_gaps_with_silence() {
        let mut t = Timeline::new(8000, 100);
        t.add(Side::Organisation, 20, &[5, 6], 1);
        t.add(Side::Caller, 10, &[1, 2], 1);
        let v = drain_all(&mut t, 25);
        assert_eq!(v.len(), 25);
        assert_eq!(v[10], [1, 0]);
        assert_eq!(v[11], [2, 0]);
        assert_eq!(v[20], [0, 5]);
        assert_eq!(v[21], [0, 6]);
        assert_eq!(v[0], [0, 0]);
    }

    #[test]
    fn late_samples_are_dropped_and_counted() {
        let mut t = Timeline::new(8000, 100);
        drain_all(&mut t, 100);
        let out = t.add(Side::Caller, 98, &[1, 2, 3, 4], 1);
        assert_eq!(
            out,
            WriteOutcome {
                written: 2,
                late: 2
            }
        );
        let v = drain_all(&mut t, 102);
        assert_eq!(v, vec![[3, 0], [4, 0]]);
    }

    #[test]
    fn overlapping_streams_on_one_side_are_summed_with_saturation() {
        let mut t = Timeline::new(8000, 100);
        t.add(Side::Caller, 0, &[30000, 10], 1);
        t.add(Side::Caller, 0, &[30000, 10], 1);
        assert_eq!(drain_all(&mut t, 2), vec![[32767, 0], [20, 0]]);
    }

    #[test]
    fn upsampling_repeats_samples() {
        let mut t = Timeline::new(16000, 100);
        t.add(Side::Organisation, 0, &[1, 2], 2);
        assert_eq!(drain_all(&mut t, 4), vec![[0, 1], [0, 1], [0, 2], [0, 2]]);
    }

    #[test]
    fn ring_wraps_without_mixing_old_audio_in() {
        let mut t = Timeline::new(8000, 10); // 256 slots
        let cap = t.capacity();
        for round in 0..5u64 {
            let base = round * cap;
            t.add(Side::Caller, base, &[round as i16 + 1; 8], 1);
            let v = drain_all(&mut t, base + cap);
            assert_eq!(v[0], [round as i16 + 1, 0]);
            assert_eq!(v[8], [0, 0]);
        }
        assert_eq!(t.add(Side::Caller, t.limit(), &[1], 1).late, 1);
    }
}
