//! Extended sequence numbers, duplicate detection and loss accounting for one RTP stream
//! (RFC 3550 appendix A.1, with a 64-packet window of what was received).

/// What to do with a packet, by its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqVerdict {
    /// First time seen. `newest` is false for a reordered packet that fills a hole.
    Accept { ext: u64, newest: bool },
    /// Already received (network or capture duplicate): not rendered twice.
    Duplicate,
    /// Older than the reorder window: counted as late.
    TooOld,
    /// A jump too large to be loss: the sender restarted its sequence. Rendered, and the
    /// stream should re-anchor its timing.
    Restart { ext: u64 },
}

/// Dropouts larger than this are a restart, not loss (RFC 3550 MAX_DROPOUT).
const MAX_DROPOUT: i32 = 3000;
/// Packets older than this relative to the newest are not placed.
const WINDOW: u64 = 64;
/// Further behind than this, a packet may be the start of a restarted sequence (RFC 3550
/// MAX_MISORDER).
const MAX_MISORDER: u64 = 100;

#[derive(Clone, Debug, Default)]
pub struct SequenceTracker {
    started: bool,
    /// Highest extended sequence number seen; starts at 2^32 + first seq so that reordered
    /// packets before the first one do not underflow.
    highest: u64,
    /// Bit i set = highest - i received.
    window: u64,
    /// Packets expected before the current run (restarts close a run).
    expected_before: u64,
    run_base: u64,
    received: u64,
    duplicates: u64,
    too_old: u64,
    restarts: u64,
    /// A packet far behind the newest, waiting for its successor to confirm a restart.
    probation: Option<u16>,
}

impl SequenceTracker {
    pub fn accept(&mut self, seq: u16) -> SeqVerdict {
        if !self.started {
            self.started = true;
            self.highest = (1u64 << 32) + seq as u64;
            self.run_base = self.highest;
            self.window = 1;
            self.received = 1;
            return SeqVerdict::Accept {
                ext: self.highest,
                newest: true,
            };
        }
        let delta = seq.wrapping_sub(self.highest as u16) as i16 as i32;
        if delta > 0 {
            let ext = self.highest + delta as u64;
            if delta > MAX_DROPOUT {
                // A jump this far is a restart only if the next packet follows it (RFC 3550
                // probation): one stray packet must not re-anchor the stream.
                if self.probation == Some(seq.wrapping_sub(1)) {
                    self.probation = None;
                    return self.restart(ext);
                }
                self.probation = Some(seq);
                self.too_old += 1;
                return SeqVerdict::TooOld;
            }
            self.window = if delta as u64 >= WINDOW {
                1
            } else {
                (self.window << delta) | 1
            };
            self.highest = ext;
            self.received += 1;
            return SeqVerdict::Accept { ext, newest: true };
        }
        let back = (-delta) as u64;
        if back == 0 {
            self.duplicates += 1;
            return SeqVerdict::Duplicate;
        }
        if back >= MAX_MISORDER {
            // Far behind: either a very late packet or the sender restarted its sequence
            // (a new call from a device that reuses its SSRC). Two consecutive packets there
            // mean a restart (RFC 3550 A.1 probation).
            if self.probation == Some(seq.wrapping_sub(1)) {
                self.probation = None;
                // a fresh cycle above everything seen, whose low 16 bits are this seq
                let ext = (((self.highest >> 16) + 2) << 16) | seq as u64;
                return self.restart(ext);
            }
            self.probation = Some(seq);
            self.too_old += 1;
            return SeqVerdict::TooOld;
        }
        if back >= WINDOW || self.highest - back < self.run_base {
            self.too_old += 1;
            return SeqVerdict::TooOld;
        }
        let bit = 1u64 << back;
        if self.window & bit != 0 {
            self.duplicates += 1;
            return SeqVerdict::Duplicate;
        }
        self.window |= bit;
        self.received += 1;
        SeqVerdict::Accept {
            ext: self.highest - back,
            newest: false,
        }
    }

    /// Closes the current run (its loss stays counted) and starts a new one at `ext`.
    fn restart(&mut self, ext: u64) -> SeqVerdict {
        self.expected_before += self.highest + 1 - self.run_base;
        self.run_base = ext;
        self.restarts += 1;
        self.highest = ext;
        self.window = 1;
        self.received += 1;
        SeqVerdict::Restart { ext }
    }

    /// Packets never received (expected minus received; never negative).
    pub fn lost(&self) -> u64 {
        if !self.started {
            return 0;
        }
        let expected = self.expected_before + (self.highest + 1 - self.run_base);
        expected.saturating_sub(self.received)
    }

    pub fn received(&self) -> u64 {
        self.received
    }
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
    pub fn too_old(&self) -> u64 {
        self.too_old
    }
    pub fn restarts(&self) -> u64 {
        self.restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[u16]) -> (SequenceTracker, Vec<SeqVerdict>) {
        let mut t = SequenceTracker::default();
        let v = seqs.iter().map(|&s| t.accept(s)).collect();
        (t, v)
    }

    #[test]
    fn wraps_around_65535() {
        let (t, v) = run(&[65534, 65535, 0, 1]);
        let exts: Vec<u64> = v
            .iter()
            .map(|v| match v {
                SeqVerdict::Accept { ext, .. } => *ext,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            exts.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>(),
            [1, 1, 1]
        );
        assert_eq!(t.lost(), 0);
    }

    #[test]
    fn reordered_packet_fills_its_hole_once() {
        let (t, v) = run(&[10, 12, 11, 11, 13]);
        assert_eq!(
            v[2],
            SeqVerdict::Accept {
                ext: (1 << 32) + 11,
                newest: false
            }
        );
        assert_eq!(v[3], SeqVerdict::Duplicate);
        assert_eq!(t.lost(), 0);
        assert_eq!(t.duplicates(), 1);
    }

    #[test]
    fn counts_loss() {
        let (t, _) = run(&[100, 101, 104, 105]);
        assert_eq!(t.lost(), 2);
        assert_eq!(t.received(), 4);
    }

    #[test]
    fn very_old_packets_are_refused() {
        let mut seqs: Vec<u16> = (0..100).collect();
        seqs.push(10);
        let (t, v) = run(&seqs);
        assert_eq!(*v.last().unwrap(), SeqVerdict::TooOld);
        assert_eq!(t.too_old(), 1);
    }

    #[test]
    fn huge_jump_is_a_restart_not_loss() {
        let (t, v) = run(&[5, 6, 20000, 20001, 20002]);
        assert_eq!(
            v[2],
            SeqVerdict::TooOld,
            "one stray packet is not a restart"
        );
        assert!(matches!(v[3], SeqVerdict::Restart { .. }));
        assert_eq!(t.lost(), 0);
        assert_eq!(t.restarts(), 1);
    }

    #[test]
    fn a_sequence_that_starts_again_from_zero_is_a_restart() {
        // a device reusing its SSRC for a new call: 0..=149, then 0, 1, 2...
        let mut seqs: Vec<u16> = (0..150).collect();
        seqs.extend(0..10);
        let (t, v) = run(&seqs);
        assert_eq!(
            v[150],
            SeqVerdict::TooOld,
            "one packet far behind may just be late"
        );
        assert!(matches!(v[151], SeqVerdict::Restart { .. }));
        assert!(
            v[152..]
                .iter()
                .all(|v| matches!(v, SeqVerdict::Accept { newest: true, .. }))
        );
        assert_eq!(t.restarts(), 1);
        assert_eq!(t.lost(), 0);
    }

    #[test]
    fn a_single_stray_packet_does_not_restart_the_stream() {
        let (t, v) = run(&[5, 6, 30000, 7, 8]);
        assert_eq!(v[2], SeqVerdict::TooOld);
        assert!(matches!(v[3], SeqVerdict::Accept { newest: true, .. }));
        assert_eq!(t.restarts(), 0);
    }

    #[test]
    fn packets_before_the_first_do_not_underflow() {
        let (t, v) = run(&[0, 65535]);
        assert!(matches!(v[1], SeqVerdict::TooOld));
        assert_eq!(t.lost(), 0);
    }
}
