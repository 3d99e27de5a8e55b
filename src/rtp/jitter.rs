//! Interarrival jitter of a stream (RFC 3550 §6.4.1): how much the gap between packets as
//! they arrived differs from the gap their RTP timestamps say, smoothed over 16 packets.
//!
//! Owns the estimate (now, its mean over the stream and the worst seen), kept in the stream's clock units scaled
//! by 16 as in RFC 3550's appendix A.8, so a packet costs a few integer operations. It does
//! not decide which packets count (the media stage feeds audio packets in arrival order) and
//! reads no clock: arrival times come with the packets.

/// The jitter of one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Jitter {
    /// The previous packet: arrival (in clock units) and RTP timestamp.
    last: Option<(u64, u32)>,
    /// The estimate ×16, in clock units.
    j16: u64,
    /// The largest estimate seen ×16.
    max16: u64,
    /// The estimates added up (×16) and how many: their mean is the stream's jitter.
    sum16: u64,
    samples: u64,
}

impl Jitter {
    /// Counts a packet that arrived at `arrival_ns` with RTP timestamp `ts`, on a clock of
    /// `rate` Hz.
    pub fn packet(&mut self, arrival_ns: u64, ts: u32, rate: u32) {
        let arrival = (u128::from(arrival_ns) * u128::from(rate) / 1_000_000_000) as u64;
        if let Some((was, was_ts)) = self.last {
            let transit = arrival.wrapping_sub(was) as i64;
            let spacing = i64::from(ts.wrapping_sub(was_ts) as i32);
            // a difference of a second or more is a pause the sender's timestamps did not
            // follow (a hold, silence suppression) or a clock step, not jitter: no jitter
            // buffer would wait that long
            let d = transit.saturating_sub(spacing).unsigned_abs();
            if d < u64::from(rate) {
                self.j16 = self.j16 + d - ((self.j16 + 8) >> 4);
                self.max16 = self.max16.max(self.j16);
                self.sum16 = self.sum16.saturating_add(self.j16);
                self.samples += 1;
            }
        }
        self.last = Some((arrival, ts));
    }

    /// The sender restarted (a new sequence): the next packet starts afresh, the figures stay.
    pub fn restart(&mut self) {
        self.last = None;
    }

    /// The current estimate, in milliseconds, on a clock of `rate` Hz.
    pub fn ms(&self, rate: u32) -> f64 {
        to_ms(self.j16, rate)
    }

    /// The estimate's mean over the stream's packets, in milliseconds (what the call page
    /// and the MOS use: the figure at the end alone would be one moment's).
    pub fn mean_ms(&self, rate: u32) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        to_ms(self.sum16 / self.samples, rate)
    }

    /// The largest estimate seen, in milliseconds.
    pub fn max_ms(&self, rate: u32) -> f64 {
        to_ms(self.max16, rate)
    }
}

fn to_ms(j16: u64, rate: u32) -> f64 {
    if rate == 0 {
        return 0.0;
    }
    (j16 as f64 / 16.0) * 1000.0 / f64::from(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn packets_on_time_have_no_jitter() {
        let mut j = Jitter::default();
        for i in 0..500u32 {
            j.packet(
                u64::from(i) * 20 * MS,
                i.wrapping_mul(160).wrapping_add(u32::MAX - 800),
                8000,
            );
        }
        assert_eq!(j.ms(8000), 0.0);
    }

    #[test]
    fn alternating_early_and_late_packets_settle_where_the_rfc_says() {
        // every other packet 5 ms late: |D| alternates 5 ms, 5 ms: J tends to 5 ms
        let mut j = Jitter::default();
        for i in 0..2000u64 {
            let late = if i % 2 == 1 { 5 * MS } else { 0 };
            j.packet(i * 20 * MS + late, (i * 160) as u32, 8000);
        }
        assert!((j.ms(8000) - 5.0).abs() < 0.2, "{}", j.ms(8000));
        assert!(j.max_ms(8000) >= j.ms(8000));
        // at 16 kHz the same delays read the same in milliseconds
        let mut w = Jitter::default();
        for i in 0..2000u64 {
            let late = if i % 2 == 1 { 5 * MS } else { 0 };
            w.packet(i * 20 * MS + late, (i * 320) as u32, 16000);
        }
        assert!((w.ms(16000) - 5.0).abs() < 0.2, "{}", w.ms(16000));
    }

    #[test]
    fn a_long_pause_is_not_jitter() {
        let mut j = Jitter::default();
        j.packet(0, 0, 8000);
        j.packet(120_000 * MS, 160, 8000);
        assert_eq!(j.ms(8000), 0.0);
        // a ten-second hold whose timestamps carried on from before it
        j.packet(130_000 * MS, 320, 8000);
        j.packet(130_020 * MS, 480, 8000);
        assert_eq!((j.ms(8000), j.max_ms(8000)), (0.0, 0.0));
    }

    #[test]
    fn the_mean_is_over_the_stream_not_its_last_moment() {
        let mut j = Jitter::default();
        // steady for 1,000 packets, then 50 packets 30 ms late by turns
        for i in 0..1050u64 {
            let late = if i >= 1000 && i % 2 == 1 { 30 * MS } else { 0 };
            j.packet(i * 20 * MS + late, (i * 160) as u32, 8000);
        }
        assert!(j.ms(8000) > 20.0, "the estimate now: {}", j.ms(8000));
        assert!(j.mean_ms(8000) < 2.0, "the mean: {}", j.mean_ms(8000));
    }
}
