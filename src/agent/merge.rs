//! The agent's sources, merged by capture time.
//!
//! Each capture interface and the HEP UDP listener delivers its frames in capture order, with
//! the kernel's receive timestamps, but each at its own pace: after a stall of the agent
//! (CPU starvation, a slow disk, SIGSTOP) one source may hand over two seconds of backlog
//! before another has handed over its first block. Fed in arrival order, the pipeline would
//! move capture time on with the faster source and find the slower one's audio late.
//!
//! This module owns the batches that have arrived and what each source has said about its
//! progress (its watermark: "everything I captured before T has been handed over"). It hands
//! out the batch with the earliest frames once no other source can still deliver earlier
//! ones, and tells how far capture time may move on when nothing is waiting. A source that
//! neither delivers nor reports for [`MAX_WAIT`] is not waited for until it speaks again (a
//! source that died must not stop recording). A source without kernel timestamps (HEP over
//! TCP, timed when read) is not ordered: its batches go through as they come and it holds
//! nothing back. It does no I/O and reads no clock: the shell passes in its monotonic time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::af_packet::FrameBatch;
use crate::time::Timestamp;

/// Index of a source: capture interfaces first, then the HEP UDP listener.
pub type SourceId = usize;

/// How long another source is waited for before a batch is handed out anyway (and at least
/// [`MIN_CHECKS`] times: a wait that began just before the whole agent stalled must not
/// count the stall).
pub const MAX_WAIT: Duration = Duration::from_millis(250);
const MIN_CHECKS: u32 = 20;

/// What a source hands to the pipeline thread.
pub enum Delivery {
    Frames(FrameBatch),
    /// HEP packets, each with its arrival time (the `FrameBatch` layout, link unused).
    Hep(FrameBatch),
    /// Everything captured before this time has been handed over.
    Watermark(Timestamp),
}

/// A batch ready for the pipeline.
pub enum Ready {
    Frames(FrameBatch),
    Hep(FrameBatch),
}

struct Source {
    queue: VecDeque<Ready>,
    watermark: Timestamp,
    /// In capture order, with kernel timestamps: waited for, and holding capture time back.
    ordered: bool,
    /// When it last delivered or reported, and how many times since then it was found
    /// quiet for longer than [`MAX_WAIT`].
    last_heard: Option<Instant>,
    quiet_checks: u32,
    /// Quiet for too long: not waited for until it delivers or reports again.
    absent: bool,
}

impl Source {
    /// Whether this source is to be left out: quiet for longer than [`MAX_WAIT`], found so
    /// [`MIN_CHECKS`] times.
    fn quiet(&mut self, now: Instant) -> bool {
        let heard = *self.last_heard.get_or_insert(now);
        if !self.absent && now.saturating_duration_since(heard) > MAX_WAIT {
            self.quiet_checks += 1;
            self.absent = self.quiet_checks >= MIN_CHECKS;
        }
        self.absent
    }
}

pub struct SourceMerge {
    sources: Vec<Source>,
    queued: usize,
}

fn first_time(r: &Ready) -> Option<Timestamp> {
    match r {
        Ready::Frames(b) | Ready::Hep(b) => b.frames.first().map(|f| f.0),
    }
}

fn last_time(r: &Ready) -> Option<Timestamp> {
    match r {
        Ready::Frames(b) | Ready::Hep(b) => b.frames.last().map(|f| f.0),
    }
}

impl SourceMerge {
    /// One entry per source: whether it delivers in capture order with kernel timestamps.
    pub fn new(ordered: &[bool]) -> SourceMerge {
        SourceMerge {
            sources: ordered
                .iter()
                .map(|&ordered| Source {
                    queue: VecDeque::new(),
                    watermark: Timestamp::ZERO,
                    ordered,
                    last_heard: None,
                    quiet_checks: 0,
                    absent: false,
                })
                .collect(),
            queued: 0,
        }
    }

    /// Batches held, over all sources.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Whether any source is merged in capture order (else capture time follows the wall
    /// clock when idle).
    pub fn has_ordered(&self) -> bool {
        self.sources.iter().any(|s| s.ordered)
    }

    pub fn push(&mut self, source: SourceId, delivery: Delivery, now: Instant) {
        let Some(s) = self.sources.get_mut(source) else {
            return;
        };
        s.last_heard = Some(now);
        s.quiet_checks = 0;
        s.absent = false;
        let ready = match delivery {
            Delivery::Watermark(t) => {
                s.watermark = s.watermark.max(t);
                return;
            }
            Delivery::Frames(b) => Ready::Frames(b),
            Delivery::Hep(b) => Ready::Hep(b),
        };
        if let Some(t) = last_time(&ready) {
            s.watermark = s.watermark.max(t);
        }
        s.queue.push_back(ready);
        self.queued += 1;
    }

    /// The batch with the earliest frames, once every other ordered source has a batch
    /// waiting, has reported a watermark past it, or is quiet (see [`MAX_WAIT`]). `drain`
    /// hands out whatever is held, in time order (shutdown).
    pub fn next(&mut self, now: Instant, drain: bool) -> Option<Ready> {
        // an unordered source's batches go through as they come
        if let Some(i) = self
            .sources
            .iter()
            .position(|s| !s.ordered && !s.queue.is_empty())
        {
            self.queued -= 1;
            return self.sources[i].queue.pop_front();
        }
        let (i, head) = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.queue
                    .front()
                    .map(|r| (i, first_time(r).unwrap_or_default()))
            })
            .min_by_key(|&(_, t)| t)?;
        let mut blocked = false;
        for (j, s) in self.sources.iter_mut().enumerate() {
            if j == i || drain || !s.ordered || !s.queue.is_empty() || s.watermark >= head {
                continue;
            }
            blocked |= !s.quiet(now);
        }
        if blocked {
            return None;
        }
        self.queued -= 1;
        self.sources[i].queue.pop_front()
    }

    /// How far capture time may move on while nothing is waiting: every ordered source (but
    /// quiet ones) has handed over everything captured before it. None while one of them
    /// has not said anything yet.
    pub fn settled(&mut self, now: Instant) -> Option<Timestamp> {
        let mut low: Option<Timestamp> = None;
        for s in self.sources.iter_mut().filter(|s| s.ordered) {
            if s.quiet(now) {
                continue;
            }
            low = Some(low.map_or(s.watermark, |l| l.min(s.watermark)));
        }
        low.filter(|&t| t > Timestamp::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(times: &[u64]) -> Delivery {
        let mut b = FrameBatch::default();
        for &t in times {
            b.frames.push((Timestamp::from_millis(t), 0, 0));
        }
        Delivery::Frames(b)
    }

    fn times(r: Option<Ready>) -> Vec<u64> {
        match r {
            Some(Ready::Frames(b)) | Some(Ready::Hep(b)) => {
                b.frames.iter().map(|f| f.0.as_millis()).collect()
            }
            None => Vec::new(),
        }
    }

    #[test]
    fn after_a_stall_the_sources_are_merged_in_capture_order() {
        let now = Instant::now();
        let mut m = SourceMerge::new(&[true, true]);
        m.push(0, Delivery::Watermark(Timestamp::from_millis(1_000)), now);
        m.push(1, Delivery::Watermark(Timestamp::from_millis(1_000)), now);
        // after the stall the HEP source hands over its whole backlog first
        m.push(1, batch(&[1_100, 1_200]), now);
        m.push(1, batch(&[2_500, 2_900]), now);
        // the capture thread has not caught up yet: wait for it
        assert!(m.next(now, false).is_none());
        assert_eq!(m.settled(now), Some(Timestamp::from_millis(1_000)));
        m.push(0, batch(&[1_050, 1_150]), now);
        m.push(0, batch(&[2_000, 2_400]), now);
        assert_eq!(times(m.next(now, false)), [1_050, 1_150]);
        assert_eq!(times(m.next(now, false)), [1_100, 1_200]);
        assert_eq!(times(m.next(now, false)), [2_000, 2_400]);
        // the last HEP batch waits for the capture's watermark to pass it
        assert!(m.next(now, false).is_none());
        m.push(0, Delivery::Watermark(Timestamp::from_millis(3_000)), now);
        assert_eq!(times(m.next(now, false)), [2_500, 2_900]);
        assert_eq!(m.queued(), 0);
        assert_eq!(m.settled(now), Some(Timestamp::from_millis(2_900)));
    }

    #[test]
    fn a_silent_source_is_waited_for_only_so_long() {
        let now = Instant::now();
        let mut m = SourceMerge::new(&[true, true, false]);
        m.push(1, batch(&[100]), now);
        assert!(m.next(now, false).is_none());
        assert!(m.next(now + MAX_WAIT / 2, false).is_none());
        // a wait that spans a stall of the whole agent is not enough on its own
        assert!(m.next(now + MAX_WAIT * 2, false).is_none());
        for _ in 0..MIN_CHECKS {
            let _ = m.next(now + MAX_WAIT * 2, false);
        }
        assert_eq!(m.queued(), 0, "handed out once waited for long enough");
        // not waited for any more, nor holding capture time back
        m.push(1, batch(&[200]), now);
        assert_eq!(times(m.next(now + MAX_WAIT * 2, false)), [200]);
        // an unordered source (HEP over TCP) neither waits nor is waited for
        m.push(2, batch(&[50]), now);
        assert_eq!(times(m.next(now, false)), [50]);
        assert_eq!(
            m.settled(now + MAX_WAIT * 2),
            Some(Timestamp::from_millis(200))
        );
        // until it speaks again
        m.push(0, Delivery::Watermark(Timestamp::from_millis(150)), now);
        m.push(1, batch(&[300]), now);
        assert!(m.next(now + MAX_WAIT * 2, false).is_none());
        assert_eq!(times(m.next(now, true)), [300], "drained at shutdown");
    }
}
