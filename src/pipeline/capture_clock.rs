//! Capture time: the pipeline's clock, read off the traffic.
//!
//! Capture time is the newest packet time seen; merged captures are not always in order, so
//! it only moves forward. A jump far ahead or far back (more than [`CLOCK_STEP`]) moves it
//! only once a second packet confirms it: one corrupt pcap record or forged HEP timestamp must
//! neither time every call out (ahead) nor drag every call's media origin back with it. A
//! confirmed jump back (the capture host's clock stepped) starts a new stretch, so the span
//! of capture time covered keeps what went before. The clock also keeps the pipeline's
//! schedule in capture time: media drains every [`DRAIN_EVERY`], timeouts every
//! [`TICK_EVERY`]. It reads no clock of its own: time comes in with every packet.

use std::time::Duration;

use crate::time::Timestamp;

/// How often audio is drained, in capture time.
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);
/// How often timeouts are checked, in capture time.
pub const TICK_EVERY: Duration = Duration::from_secs(1);
/// Traffic this far from capture time is a jump of the clock (or a bogus timestamp).
pub const CLOCK_STEP: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, Default)]
pub struct CaptureClock {
    started: bool,
    now: Timestamp,
    /// Capture time covered by earlier stretches: a confirmed jump back starts a new
    /// stretch rather than cancelling what went before.
    banked: Duration,
    /// The earliest time handled in the current stretch (what came before the first packet
    /// of a capture that is not in order counts too).
    stretch_start: Timestamp,
    next_drain: Timestamp,
    next_tick: Timestamp,
    /// A jump far ahead or back, waiting for a second packet to confirm it.
    leap: Option<Timestamp>,
    /// Jumps seen, confirmed or not.
    steps: u64,
}

/// What a packet's time did to the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The time the packet is handled at: its own, or capture time when its own is a lone
    /// jump far ahead or far back.
    pub at: Timestamp,
    /// Capture time stepped back to `at` (deadlines set in the old future must come in).
    pub stepped_back: bool,
}

impl CaptureClock {
    /// Capture time now.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Jumps of the capture clock seen.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Capture time the traffic has covered: from the earliest packet of each stretch to its
    /// last.
    pub fn span(&self) -> Duration {
        self.banked + self.now.saturating_since(self.stretch_start)
    }

    /// When timeouts are next due.
    pub fn next_tick(&self) -> Timestamp {
        self.next_tick
    }

    /// Moves capture time on for a packet captured at `time`.
    pub fn advance(&mut self, time: Timestamp) -> Reading {
        let kept = Reading {
            at: time,
            stepped_back: false,
        };
        if !self.started {
            self.started = true;
            self.now = time;
            self.stretch_start = time;
            self.next_drain = time + DRAIN_EVERY;
            self.next_tick = time + TICK_EVERY;
            return kept;
        }
        let far_ahead = time.saturating_since(self.now) > CLOCK_STEP;
        let far_behind = self.now.saturating_since(time) > CLOCK_STEP;
        if far_ahead || far_behind {
            return match self.leap {
                Some(first)
                    if time.saturating_since(first) <= CLOCK_STEP
                        && first.saturating_since(time) <= CLOCK_STEP =>
                {
                    self.leap = None;
                    self.follow(time, far_behind);
                    Reading {
                        at: time,
                        stepped_back: far_behind,
                    }
                }
                _ => {
                    self.leap = Some(time);
                    self.steps += 1;
                    Reading {
                        at: self.now,
                        stepped_back: false,
                    }
                }
            };
        }
        self.leap = None;
        if time > self.now {
            self.now = time;
        }
        self.stretch_start = self.stretch_start.min(time);
        kept
    }

    /// Whether media is due a drain now (the next is then scheduled).
    pub fn drain_due(&mut self) -> bool {
        let due = self.now >= self.next_drain;
        if due {
            self.next_drain = self.now + DRAIN_EVERY;
        }
        due
    }

    /// Whether timeouts are due now (the next check is then scheduled).
    pub fn tick_due(&mut self) -> bool {
        let due = self.now >= self.next_tick;
        if due {
            self.next_tick = self.now + TICK_EVERY;
        }
        due
    }

    /// Capture time follows the traffic to `time`, confirmed by two packets. Back: the clock
    /// stepped back (or the earlier leap was bogus), so drains and timeouts must not wait for
    /// the old future.
    fn follow(&mut self, time: Timestamp, back: bool) {
        if back {
            self.banked += self.now.saturating_since(self.stretch_start);
            self.stretch_start = time;
            self.next_drain = time;
            self.next_tick = time;
        }
        self.now = time;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn a_lone_jump_is_ignored_and_counted_and_a_confirmed_one_followed() {
        let mut c = CaptureClock::default();
        c.advance(at(100));
        c.advance(at(101));
        let lone = c.advance(at(100_000));
        assert_eq!(
            lone,
            Reading {
                at: at(101),
                stepped_back: false
            }
        );
        assert_eq!(c.advance(at(102)).at, at(102), "back to normal");
        assert_eq!(c.now(), at(102));
        c.advance(at(50_000));
        let confirmed = c.advance(at(50_001));
        assert_eq!(
            confirmed,
            Reading {
                at: at(50_001),
                stepped_back: false
            }
        );
        assert_eq!(c.now(), at(50_001));
        assert_eq!(c.steps(), 2);
    }

    #[test]
    fn a_step_back_starts_a_stretch_and_brings_the_schedule_in() {
        let mut c = CaptureClock::default();
        c.advance(at(5_000));
        c.advance(at(5_010));
        c.advance(at(1_000));
        let back = c.advance(at(1_001));
        assert!(back.stepped_back);
        assert_eq!(
            c.span(),
            Duration::from_secs(10),
            "the earlier stretch is banked"
        );
        assert!(
            c.drain_due() && c.tick_due(),
            "due at once after a step back"
        );
        assert!(!c.drain_due(), "then on schedule");
        c.advance(at(1_005));
        assert_eq!(c.span(), Duration::from_secs(14));
    }

    #[test]
    fn out_of_order_traffic_never_moves_the_clock_back_but_widens_the_span() {
        let mut c = CaptureClock::default();
        c.advance(at(10));
        c.advance(at(12));
        assert_eq!(c.advance(at(9)).at, at(9));
        assert_eq!(c.now(), at(12));
        assert_eq!(c.span(), Duration::from_secs(3));
    }
}
