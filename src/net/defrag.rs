//! IP fragment reassembly for IPv4 and IPv6 (SIP INVITEs with SDP over UDP often exceed the
//! MTU).
//!
//! Receives fragments keyed by (source, destination, protocol, identification) with their
//! capture time, and returns the reassembled upper-layer payload once every byte from 0 to the
//! last fragment's end has arrived. Bounded: at most `max_sets` datagrams in progress (the
//! oldest is evicted when full), at most 65,535 bytes and `MAX_PIECES` disjoint pieces each,
//! and sets older than the timeout are expired by capture time. Overlaps never panic: the
//! first bytes received win and the overlap is counted. It never reorders or interprets the
//! payload.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use thiserror::Error;

use super::NetCounters;
use super::ip::Fragment;
use crate::time::Timestamp;

/// Largest datagram IPv4 or (non-jumbo) IPv6 can describe.
const MAX_DATAGRAM: usize = 65_535;
/// Disjoint pieces per set before it is judged an attack; a 64 KiB datagram at 1,280-byte
/// MTU needs ~52 fragments, and in-order arrival keeps a single merged piece anyway.
const MAX_PIECES: usize = 64;

/// Identifies one original datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FragmentKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub id: u32,
}

/// Why a fragment was not used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DefragError {
    #[error("fragment ends at byte {0}, beyond the 65535-byte datagram limit")]
    TooLarge(usize),
    #[error("non-final fragment length {0} is not a multiple of 8")]
    Misaligned(usize),
    #[error("fragment disagrees with the datagram length already announced ({0} bytes)")]
    LengthConflict(usize),
    #[error("fragment set already holds {MAX_PIECES} disjoint pieces")]
    TooManyPieces,
    #[error("fragment lies entirely inside bytes already received")]
    Duplicate,
}

/// What one fragment did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FragmentOutcome {
    /// Kept; the datagram is still incomplete.
    Pending,
    /// The datagram is complete: the upper-layer payload.
    Complete(Vec<u8>),
    /// Not kept (counted in `fragments_dropped`).
    Dropped(DefragError),
}

struct FragmentSet {
    first_seen: Timestamp,
    generation: u64,
    data: Vec<u8>,
    /// Sorted, disjoint, non-adjacent byte ranges already received.
    pieces: Vec<(usize, usize)>,
    /// Set once the fragment without "more fragments" arrives.
    total: Option<usize>,
}

impl FragmentSet {
    fn complete(&self) -> bool {
        matches!((self.total, self.pieces.as_slice()), (Some(t), [(0, end)]) if *end == t)
    }

    /// Copies the parts of `payload` (placed at `offset`) that no earlier fragment covered.
    /// Returns whether any received byte was overlapped.
    fn fill(&mut self, offset: usize, payload: &[u8]) -> bool {
        let end = offset + payload.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        let mut overlapped = false;
        let mut cursor = offset;
        for &(start, stop) in &self.pieces {
            if stop <= cursor {
                continue;
            }
            if start >= end {
                break;
            }
            if start > cursor {
                copy(&mut self.data, cursor..start, payload, cursor - offset);
            }
            overlapped = true;
            cursor = cursor.max(stop);
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            copy(&mut self.data, cursor..end, payload, cursor - offset);
        }
        self.merge(offset, end);
        overlapped
    }

    fn merge(&mut self, mut start: usize, mut end: usize) {
        // Absorb every piece that touches [start, end), then insert the union in order.
        let mut i = 0;
        while i < self.pieces.len() {
            let Some(&(s, e)) = self.pieces.get(i) else {
                break;
            };
            if e < start || s > end {
                i += 1;
                continue;
            }
            start = start.min(s);
            end = end.max(e);
            self.pieces.remove(i);
        }
        let at = self.pieces.partition_point(|&(s, _)| s < start);
        self.pieces.insert(at, (start, end));
    }

    fn covers(&self, start: usize, end: usize) -> bool {
        self.pieces.iter().any(|&(s, e)| s <= start && end <= e)
    }
}

/// The datagrams in reassembly.
pub(crate) struct FragmentTable {
    sets: HashMap<FragmentKey, FragmentSet>,
    /// Creation order, for evicting the oldest set in O(1) when the table is full; entries
    /// whose generation no longer matches a live set are stale and skipped.
    order: VecDeque<(FragmentKey, u64)>,
    next_generation: u64,
    max_sets: usize,
    timeout: Duration,
}

impl FragmentTable {
    pub(crate) fn new(max_sets: usize, timeout: Duration) -> Self {
        FragmentTable {
            sets: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
            max_sets: max_sets.max(1),
            timeout,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.sets.len()
    }

    /// Adds one fragment. Counts `fragments`, `reassembled` and `fragments_dropped`.
    pub(crate) fn insert(
        &mut self,
        now: Timestamp,
        key: FragmentKey,
        fragment: Fragment,
        payload: &[u8],
        counters: &mut NetCounters,
    ) -> FragmentOutcome {
        counters.fragments += 1;
        let outcome = self.place(now, key, fragment, payload, counters);
        match &outcome {
            FragmentOutcome::Complete(_) => counters.reassembled += 1,
            FragmentOutcome::Dropped(_) => counters.fragments_dropped += 1,
            FragmentOutcome::Pending => {}
        }
        outcome
    }

    fn place(
        &mut self,
        now: Timestamp,
        key: FragmentKey,
        fragment: Fragment,
        payload: &[u8],
        counters: &mut NetCounters,
    ) -> FragmentOutcome {
        let start = fragment.offset;
        let end = start.saturating_add(payload.len());
        if end > MAX_DATAGRAM {
            return FragmentOutcome::Dropped(DefragError::TooLarge(end));
        }
        if fragment.more && !payload.len().is_multiple_of(8) {
            return FragmentOutcome::Dropped(DefragError::Misaligned(payload.len()));
        }
        if !self.sets.contains_key(&key) {
            self.make_room(counters);
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1);
            self.order.push_back((key, generation));
            self.sets.insert(
                key,
                FragmentSet {
                    first_seen: now,
                    generation,
                    data: Vec::new(),
                    pieces: Vec::new(),
                    total: None,
                },
            );
        }
        let Some(set) = self.sets.get_mut(&key) else {
            return FragmentOutcome::Pending;
        };
        let known_end = set.pieces.last().map_or(0, |&(_, e)| e);
        match set.total {
            Some(total) if end > total || (!fragment.more && end != total) => {
                return FragmentOutcome::Dropped(DefragError::LengthConflict(total));
            }
            None if !fragment.more && known_end > end => {
                return FragmentOutcome::Dropped(DefragError::LengthConflict(known_end));
            }
            _ => {}
        }
        if !payload.is_empty() && set.covers(start, end) {
            if !fragment.more {
                set.total = Some(end);
            }
            return FragmentOutcome::Dropped(DefragError::Duplicate);
        }
        if set.pieces.len() >= MAX_PIECES {
            return FragmentOutcome::Dropped(DefragError::TooManyPieces);
        }
        if !fragment.more {
            set.total = Some(end);
        }
        if !payload.is_empty() && set.fill(start, payload) {
            // First bytes win; the fragment's new bytes were still used.
            counters.fragments_dropped += 1;
        }
        if !set.complete() {
            return FragmentOutcome::Pending;
        }
        match self.sets.remove(&key) {
            Some(mut done) => {
                let total = done.total.unwrap_or(done.data.len());
                done.data.truncate(total);
                FragmentOutcome::Complete(done.data)
            }
            None => FragmentOutcome::Pending,
        }
    }

    fn make_room(&mut self, counters: &mut NetCounters) {
        while self.sets.len() >= self.max_sets {
            let Some((key, generation)) = self.order.pop_front() else {
                return;
            };
            if self
                .sets
                .get(&key)
                .is_some_and(|s| s.generation == generation)
            {
                self.sets.remove(&key);
                counters.fragments_dropped += 1;
            }
        }
        // Completed sets leave stale order entries behind; keep the queue from outgrowing
        // the table.
        if self.order.len() > self.max_sets.saturating_mul(2) {
            let sets = &self.sets;
            self.order
                .retain(|(k, g)| sets.get(k).is_some_and(|s| s.generation == *g));
        }
    }

    /// Drops sets whose first fragment is older than the timeout; counts `fragments_expired`
    /// (one per incomplete datagram).
    pub(crate) fn expire(&mut self, now: Timestamp, counters: &mut NetCounters) {
        let timeout = self.timeout;
        let before = self.sets.len();
        self.sets
            .retain(|_, set| now.saturating_since(set.first_seen) < timeout);
        counters.fragments_expired += (before - self.sets.len()) as u64;
        let sets = &self.sets;
        self.order
            .retain(|(k, g)| sets.get(k).is_some_and(|s| s.generation == *g));
    }
}

/// Copies `src[from..]` into `dst[to]`, as much as both hold (they always hold it all: the
/// ranges come from the fragment's own offset and length).
fn copy(dst: &mut [u8], to: std::ops::Range<usize>, src: &[u8], from: usize) {
    let len = to.len();
    if let (Some(d), Some(s)) = (dst.get_mut(to), src.get(from..from.saturating_add(len))) {
        d.copy_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragmentKey {
        FragmentKey {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            protocol: 17,
            id,
        }
    }

    fn frag(offset: usize, more: bool) -> Fragment {
        Fragment {
            id: 1,
            offset,
            more,
        }
    }

    fn datagram() -> Vec<u8> {
        (0..40u8).collect()
    }

    fn t(secs: u64) -> Timestamp {
        Timestamp::from_secs_nanos(secs, 0)
    }

    fn feed(
        table: &mut FragmentTable,
        c: &mut NetCounters,
        order: &[(usize, usize, bool)],
    ) -> Option<Vec<u8>> {
        let d = datagram();
        let mut out = None;
        for &(s, e, more) in order {
            if let FragmentOutcome::Complete(v) =
                table.insert(t(1), key(1), frag(s, more), &d[s..e], c)
            {
                out = Some(v);
            }
        }
        out
    }

    #[test]
    fn in_order_and_reversed_reassemble() {
        for order in [
            vec![(0, 16, true), (16, 32, true), (32, 40, false)],
            vec![(32, 40, false), (16, 32, true), (0, 16, true)],
        ] {
            let mut table = FragmentTable::new(8, Duration::from_secs(30));
            let mut c = NetCounters::default();
            assert_eq!(feed(&mut table, &mut c, &order), Some(datagram()));
            assert_eq!(c.reassembled, 1);
            assert_eq!(c.fragments, 3);
            assert_eq!(table.len(), 0);
        }
    }

    #[test]
    fn duplicates_are_counted_and_ignored() {
        let mut table = FragmentTable::new(8, Duration::from_secs(30));
        let mut c = NetCounters::default();
        let order = [(0, 16, true), (0, 16, true), (16, 40, false)];
        assert_eq!(feed(&mut table, &mut c, &order), Some(datagram()));
        assert_eq!(c.fragments_dropped, 1);
    }

    #[test]
    fn overlap_keeps_first_bytes() {
        let mut table = FragmentTable::new(8, Duration::from_secs(30));
        let mut c = NetCounters::default();
        let d = datagram();
        table.insert(t(1), key(1), frag(0, true), &d[0..24], &mut c);
        // Overlapping fragment carrying different bytes for 16..24.
        let evil: Vec<u8> = (16..40).map(|_| 0xff).collect();
        let out = table.insert(t(1), key(1), frag(16, false), &evil, &mut c);
        let FragmentOutcome::Complete(v) = out else {
            panic!("{out:?}")
        };
        assert_eq!(&v[..24], &d[..24]);
        assert_eq!(&v[24..], &[0xff; 16]);
        assert_eq!(c.fragments_dropped, 1);
    }

    #[test]
    fn conflicting_last_fragment_is_rejected() {
        let mut table = FragmentTable::new(8, Duration::from_secs(30));
        let mut c = NetCounters::default();
        let d = datagram();
        assert_eq!(
            table.insert(t(1), key(1), frag(32, false), &d[32..40], &mut c),
            FragmentOutcome::Pending
        );
        assert_eq!(
            table.insert(t(1), key(1), frag(16, false), &d[16..24], &mut c),
            FragmentOutcome::Dropped(DefragError::LengthConflict(40))
        );
        assert!(matches!(
            table.insert(t(1), key(1), frag(65_528, true), &[0; 16], &mut c),
            FragmentOutcome::Dropped(DefragError::TooLarge(_))
        ));
    }

    #[test]
    fn never_completed_set_expires_by_capture_time() {
        let mut table = FragmentTable::new(8, Duration::from_secs(30));
        let mut c = NetCounters::default();
        table.insert(t(1), key(1), frag(0, true), &[0; 8], &mut c);
        table.expire(t(20), &mut c);
        assert_eq!(table.len(), 1);
        table.expire(t(31), &mut c);
        assert_eq!(table.len(), 0);
        assert_eq!(c.fragments_expired, 1);
    }

    #[test]
    fn full_table_evicts_oldest_and_stays_bounded() {
        let mut table = FragmentTable::new(4, Duration::from_secs(30));
        let mut c = NetCounters::default();
        for id in 0..1000 {
            table.insert(t(1), key(id), frag(0, true), &[0; 8], &mut c);
            assert!(table.len() <= 4);
            assert!(table.order.len() <= 9);
        }
        assert_eq!(c.fragments_dropped, 996);
        // The newest set is still there and can complete.
        let out = table.insert(
            t(1),
            key(999),
            Fragment {
                id: 999,
                offset: 8,
                more: false,
            },
            &[1; 8],
            &mut c,
        );
        assert!(matches!(out, FragmentOutcome::Complete(v) if v.len() == 16));
    }

    #[test]
    fn too_many_pieces_is_bounded() {
        let mut table = FragmentTable::new(4, Duration::from_secs(30));
        let mut c = NetCounters::default();
        for i in 0..200 {
            table.insert(t(1), key(1), frag(i * 16, true), &[0; 8], &mut c);
        }
        assert!(table.sets.get(&key(1)).unwrap().pieces.len() <= MAX_PIECES);
    }
}
