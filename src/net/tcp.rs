//! SIP over TCP: per-direction stream reassembly and SIP message framing.
//!
//! Receives TCP segments (with capture time and the flow's addresses) and emits one
//! `Datagram` per complete SIP message, borrowed from the flow's buffer, which is then
//! consumed. Bytes are delivered once and in sequence order: retransmitted or overlapping
//! bytes are dropped (counted), out-of-order segments wait in a bounded side buffer, and when
//! the missing bytes do not come within that bound the gap is accepted (counted) and framing
//! resynchronises on the next SIP start line.
//!
//! Only SIP is kept: a flow is buffered if its first payload (after the SYN) begins with a SIP
//! start line, or, for a flow picked up mid-stream, from its first segment that does. Other
//! flows cost no memory: their bytes are counted in `tcp_non_sip_bytes` and dropped. Every
//! buffer is bounded by `max_tcp_buffer`, the table by `max_tcp_flows` (CLOCK eviction, so
//! long-lived trunk connections that are still busy survive churn) and by the idle timeout.
//! It never parses SIP beyond the start line and the Content-Length header.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use super::ip::TcpSegment;
use super::{Datagram, NetCounters, Transport};
use crate::time::Timestamp;

/// A start line longer than this is not SIP (real ones are well under 1 KiB).
const MAX_START_LINE: usize = 4096;
/// Longest method token accepted on a request line.
const MAX_METHOD: usize = 32;
/// A header section longer than this is not SIP; bounds the cost of looking for its end.
const MAX_SIP_HEADER: usize = 64 * 1024;
/// Out-of-order segments held per direction before the missing bytes are given up.
const MAX_PENDING_SEGMENTS: usize = 64;

/// What `sip_frame_len` found at the start of a stream buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameResult {
    /// A whole SIP message (headers and Content-Length body) of this many bytes.
    Complete(usize),
    /// Looks like SIP so far; more bytes are needed.
    NeedMore,
    /// Does not begin with a SIP start line, or its framing is impossible.
    NotSip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartLine {
    Yes,
    NeedMore,
    No,
}

fn newline_within(buf: &[u8], limit: usize) -> Option<usize> {
    buf.iter()
        .take(limit.saturating_add(1))
        .position(|&b| b == b'\n')
}

/// Classifies the bytes at `buf` as a SIP start line. `newline` is the index of the first
/// `\n` in `buf`, if any (passed in so that a resync scan can share one newline search).
fn classify(buf: &[u8], newline: Option<usize>) -> StartLine {
    const RESPONSE: &[u8] = b"SIP/2.0 ";
    if buf.iter().zip(RESPONSE).all(|(a, b)| a == b) {
        return match buf.get(RESPONSE.len()..RESPONSE.len() + 3) {
            None => StartLine::NeedMore,
            Some(code) if code.iter().all(u8::is_ascii_digit) => StartLine::Yes,
            Some(_) => StartLine::No,
        };
    }
    let method = buf
        .iter()
        .take(MAX_METHOD + 1)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    if method == 0 || method > MAX_METHOD {
        return StartLine::No;
    }
    match buf.get(method) {
        None => return StartLine::NeedMore,
        Some(b' ') => {}
        Some(_) => return StartLine::No,
    }
    let uri = buf.get(method + 1..).unwrap_or_default();
    let mut partial = false;
    let mut scheme = false;
    for known in [&b"sip:"[..], b"sips:", b"tel:", b"urn:"] {
        if uri
            .iter()
            .zip(known)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
        {
            if uri.len() >= known.len() {
                scheme = true;
            } else {
                partial = true;
            }
        }
    }
    if !scheme {
        return if partial {
            StartLine::NeedMore
        } else {
            StartLine::No
        };
    }
    match newline {
        Some(nl) if nl <= MAX_START_LINE => {
            let line = buf.get(..nl).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let version = b" SIP/2.0";
            let tail = line
                .len()
                .checked_sub(version.len())
                .and_then(|at| line.get(at..));
            if tail.is_some_and(|t| t.eq_ignore_ascii_case(version)) {
                StartLine::Yes
            } else {
                StartLine::No
            }
        }
        Some(_) => StartLine::No,
        None if buf.len() > MAX_START_LINE => StartLine::No,
        None => StartLine::NeedMore,
    }
}

/// True when `buf` begins with a complete SIP request or status line.
pub fn starts_with_sip_line(buf: &[u8]) -> bool {
    classify(buf, newline_within(buf, MAX_START_LINE)) == StartLine::Yes
}

/// First position after 0 where a SIP start line begins or may begin (given more bytes).
/// Linear: the newline search is shared between candidate positions.
fn resync_point(buf: &[u8]) -> Option<usize> {
    // Each search starts past the previous newline, so all searches together read the
    // buffer once.
    let mut next_newline: Option<usize> = None;
    let mut no_more_newlines = false;
    for (i, b) in buf.iter().enumerate().skip(1) {
        if !b.is_ascii_uppercase() {
            continue;
        }
        let here = buf.get(i..).unwrap_or_default();
        if !no_more_newlines && next_newline.is_none_or(|nl| nl < i) {
            next_newline = here.iter().position(|&b| b == b'\n').map(|p| p + i);
            no_more_newlines = next_newline.is_none();
        }
        let newline = next_newline.map(|nl| nl - i);
        if classify(here, newline) != StartLine::No {
            return Some(i);
        }
    }
    None
}

/// Value of a Content-Length (or compact `l`) header line, if this is one. Unparseable values
/// count as 0 (lenient: framing then resynchronises); absurd ones as `usize::MAX`.
fn content_length(line: &[u8]) -> Option<usize> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line.get(..colon).unwrap_or_default().trim_ascii();
    if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
        return None;
    }
    let value = line.get(colon + 1..).unwrap_or_default().trim_ascii();
    let mut n = 0usize;
    for &b in value.iter().take_while(|b| b.is_ascii_digit()) {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(usize::from(b - b'0')))
            .unwrap_or(usize::MAX);
    }
    Some(n)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Complete(usize),
    /// Headers are complete; the message is this long.
    NeedTotal(usize),
    NeedMore,
    NotSip,
    /// Headers went on past [`MAX_SIP_HEADER`] without ending: not SIP, and nothing inside
    /// them is looked at again (a resync inside would read them once per candidate line).
    TooLong,
}

/// How far framing got through the message at the head of a stream, so that the next
/// delivery goes on from there instead of reading the headers again from their start. A
/// header section that arrives one byte per segment is then read once, not once per byte
/// (which was quadratic up to [`MAX_SIP_HEADER`]: a CPU denial of service from the mirror).
/// Valid while the head of the stream does not move; reset when it does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FrameScan {
    /// The start line was read and is SIP.
    start_line: bool,
    /// Where the header line being looked at begins.
    line_start: usize,
    /// Bytes from `line_start` already known to hold no newline.
    searched: usize,
    /// Content-Length seen so far.
    body: usize,
}

impl FrameScan {
    /// The first newline at or after `line_start + searched`, looking no further than
    /// `limit` bytes past `line_start`; remembers how far it looked.
    fn next_newline(&mut self, buf: &[u8], limit: usize) -> Option<usize> {
        let from = self.line_start.saturating_add(self.searched);
        let end = buf
            .len()
            .min(self.line_start.saturating_add(limit).saturating_add(1));
        let window = buf.get(from..end).unwrap_or_default();
        let found = window.iter().position(|&b| b == b'\n');
        #[cfg(test)]
        tests::BYTES_SCANNED.with(|n| n.set(n.get() + found.map_or(window.len(), |p| p + 1)));
        match found {
            Some(rel) => Some(from + rel),
            None => {
                self.searched = end.saturating_sub(self.line_start);
                None
            }
        }
    }
}

fn frame(buf: &[u8]) -> Framing {
    frame_from(buf, &mut FrameScan::default())
}

/// Frames the message at the start of `buf`, going on from `scan`.
fn frame_from(buf: &[u8], scan: &mut FrameScan) -> Framing {
    if !scan.start_line {
        let newline = scan.next_newline(buf, MAX_START_LINE);
        match classify(buf, newline) {
            StartLine::No => return Framing::NotSip,
            StartLine::NeedMore => return Framing::NeedMore,
            StartLine::Yes => {}
        }
        // the start line is never a header: the header scan begins after it (a status line
        // is known to be SIP from its first 12 bytes, before its end has come)
        let Some(nl) = newline else {
            return Framing::NeedMore;
        };
        *scan = FrameScan {
            start_line: true,
            line_start: nl + 1,
            searched: 0,
            body: 0,
        };
    }
    loop {
        let Some(newline) = scan.next_newline(buf, MAX_SIP_HEADER) else {
            return if buf.len() > MAX_SIP_HEADER {
                Framing::TooLong
            } else {
                Framing::NeedMore
            };
        };
        if newline > MAX_SIP_HEADER {
            return Framing::TooLong;
        }
        let line = buf.get(scan.line_start..newline).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // CRLFCRLF (or a bare LFLF) ends the headers.
            return match (newline + 1).checked_add(scan.body) {
                Some(total) if total <= buf.len() => Framing::Complete(total),
                Some(total) => Framing::NeedTotal(total),
                None => Framing::NotSip,
            };
        }
        if let Some(len) = content_length(line) {
            scan.body = len;
        }
        scan.line_start = newline + 1;
        scan.searched = 0;
    }
}

/// Length of the SIP message at the start of `buf`: headers up to CRLFCRLF (or LFLF), plus
/// the body announced by Content-Length / `l:` (case-insensitive; absent means 0).
pub fn sip_frame_len(buf: &[u8]) -> FrameResult {
    match frame(buf) {
        Framing::Complete(n) => FrameResult::Complete(n),
        Framing::NeedTotal(_) | Framing::NeedMore => FrameResult::NeedMore,
        Framing::NotSip | Framing::TooLong => FrameResult::NotSip,
    }
}

/// One direction of a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FlowKey {
    pub vlan: Option<u16>,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl FlowKey {
    fn reverse(self) -> FlowKey {
        FlowKey {
            vlan: self.vlan,
            src: self.dst,
            dst: self.src,
        }
    }
}

struct PendingSegment {
    seq: u32,
    bytes: Vec<u8>,
}

struct Direction {
    generation: u64,
    /// Sequence number of the byte after the end of `stream`.
    next_seq: u32,
    /// In-order bytes not yet framed.
    stream: Vec<u8>,
    /// Framing cannot progress before `stream` is this long.
    wanted: usize,
    /// Bytes still to come of a message too large to keep; dropped as they arrive.
    discard: usize,
    /// The stream's bytes were seen to begin with a SIP start line.
    verified: bool,
    /// Framing progress through the message at the head of `stream`.
    scan: FrameScan,
    pending: Vec<PendingSegment>,
    pending_bytes: usize,
    last_seen: Timestamp,
    /// CLOCK reference bit: set on traffic, cleared when the eviction hand passes.
    referenced: bool,
}

fn seq_offset(seq: u32, base: u32) -> i64 {
    i64::from(seq.wrapping_sub(base) as i32)
}

impl Direction {
    fn new(generation: u64, next_seq: u32, verified: bool, now: Timestamp) -> Self {
        Direction {
            generation,
            next_seq,
            stream: Vec::new(),
            wanted: 0,
            discard: 0,
            verified,
            scan: FrameScan::default(),
            pending: Vec::new(),
            pending_bytes: 0,
            last_seen: now,
            referenced: true,
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        self.stream.extend_from_slice(bytes);
        self.next_seq = self.next_seq.wrapping_add(bytes.len() as u32);
    }

    /// Places a segment's payload in sequence order.
    fn receive(&mut self, seq: u32, payload: &[u8], max_buffer: usize, counters: &mut NetCounters) {
        if payload.is_empty() {
            return;
        }
        let offset = seq_offset(seq, self.next_seq);
        let len = payload.len() as i64;
        if offset < 0 {
            counters.tcp_retransmissions += 1;
            if offset + len <= 0 {
                return;
            }
            self.append(payload.get((-offset) as usize..).unwrap_or_default());
        } else if offset == 0 {
            self.append(payload);
        } else {
            counters.tcp_out_of_order += 1;
            self.pending.push(PendingSegment {
                seq,
                bytes: payload.to_vec(),
            });
            self.pending_bytes += payload.len();
            if (offset as usize) < max_buffer
                && self.pending.len() <= MAX_PENDING_SEGMENTS
                && self.pending_bytes <= max_buffer
            {
                return;
            }
            // The missing bytes have not come while this much arrived after them (or the
            // segment is beyond any window we would wait for): accept the gap and continue
            // from the earliest byte we hold; framing resynchronises there.
            counters.tcp_gaps += 1;
            self.stream.clear();
            self.scan = FrameScan::default();
            self.wanted = 0;
            self.discard = 0;
            if let Some(earliest) = self
                .pending
                .iter()
                .map(|p| p.seq)
                .min_by_key(|&s| seq_offset(s, self.next_seq))
            {
                self.next_seq = earliest;
            }
        }
        self.drain_pending(counters);
    }

    fn drain_pending(&mut self, counters: &mut NetCounters) {
        while let Some(i) = self
            .pending
            .iter()
            .position(|p| seq_offset(p.seq, self.next_seq) <= 0)
        {
            let segment = self.pending.swap_remove(i);
            self.pending_bytes = self.pending_bytes.saturating_sub(segment.bytes.len());
            let offset = seq_offset(segment.seq, self.next_seq);
            if offset + segment.bytes.len() as i64 <= 0 {
                counters.tcp_retransmissions += 1;
                continue;
            }
            self.append(segment.bytes.get((-offset) as usize..).unwrap_or_default());
        }
    }

    /// Frames and emits every complete SIP message at the head of the stream. Returns false
    /// when the stream turned out not to be SIP (the flow should be forgotten).
    fn deliver(
        &mut self,
        time: Timestamp,
        key: FlowKey,
        max_buffer: usize,
        counters: &mut NetCounters,
        sink: &mut dyn FnMut(&Datagram<'_>),
    ) -> bool {
        if self.discard > 0 {
            let n = self.discard.min(self.stream.len());
            self.stream.drain(..n);
            self.discard -= n;
            counters.tcp_non_sip_bytes += n as u64;
            self.scan = FrameScan::default();
        }
        if self.stream.len() < self.wanted {
            return true;
        }
        let mut pos = 0usize;
        loop {
            let rest = self.stream.get(pos..).unwrap_or_default();
            // RFC 5626 keep-alives (CRLF pings) sit between messages.
            let blank = rest
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if blank > 0 {
                // the head moved: framing starts afresh (a scan is never kept over blanks)
                self.scan = FrameScan::default();
            }
            pos += blank;
            let rest = rest.get(blank..).unwrap_or_default();
            if rest.is_empty() {
                self.wanted = 0;
                break;
            }
            let framing = frame_from(rest, &mut self.scan);
            if !self.verified {
                if self.scan.start_line {
                    self.verified = true;
                } else if matches!(framing, Framing::NotSip | Framing::TooLong) {
                    counters.tcp_non_sip_bytes += self.stream.len() as u64;
                    self.stream = Vec::new();
                    self.scan = FrameScan::default();
                    return false;
                }
            }
            match framing {
                Framing::Complete(n) if n > max_buffer => {
                    // Larger than the largest message accepted over TCP, even though it
                    // arrived whole: dropped and counted like one that arrives in pieces.
                    counters.tcp_buffer_overflows += 1;
                    counters.tcp_non_sip_bytes += n as u64;
                    self.scan = FrameScan::default();
                    pos += n;
                }
                Framing::Complete(n) => {
                    sink(&Datagram {
                        time,
                        src: key.src,
                        dst: key.dst,
                        transport: Transport::Tcp,
                        payload: rest.get(..n).unwrap_or_default(),
                        vlan: key.vlan,
                        via_hep: false,
                    });
                    counters.sip_tcp_messages += 1;
                    self.scan = FrameScan::default();
                    pos += n;
                }
                Framing::NeedTotal(total) if total > max_buffer => {
                    // One message larger than we are willing to hold: drop it whole, now
                    // and as the rest of it arrives.
                    counters.tcp_buffer_overflows += 1;
                    counters.tcp_non_sip_bytes += rest.len() as u64;
                    self.discard = total - rest.len();
                    self.stream = Vec::new();
                    self.scan = FrameScan::default();
                    self.wanted = 0;
                    return true;
                }
                Framing::NeedTotal(total) => {
                    self.wanted = total;
                    break;
                }
                Framing::NeedMore => {
                    self.wanted = rest.len() + 1;
                    break;
                }
                Framing::NotSip => {
                    let skip = resync_point(rest).unwrap_or(rest.len());
                    counters.tcp_non_sip_bytes += skip as u64;
                    self.scan = FrameScan::default();
                    pos += skip;
                }
                Framing::TooLong => {
                    // a message can begin only after the last line of what was dropped
                    let skip = rest
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(rest.len(), |nl| nl + 1);
                    counters.tcp_buffer_overflows += 1;
                    counters.tcp_non_sip_bytes += skip as u64;
                    self.scan = FrameScan::default();
                    pos += skip;
                }
            }
        }
        self.stream.drain(..pos);
        if self.stream.len() > max_buffer {
            // Held bytes beyond the bound without a complete message: drop them; framing
            // resynchronises on what follows.
            counters.tcp_buffer_overflows += 1;
            counters.tcp_non_sip_bytes += self.stream.len() as u64;
            self.stream = Vec::new();
            self.scan = FrameScan::default();
            self.wanted = 0;
        }
        true
    }
}

/// All tracked TCP directions.
pub(crate) struct TcpFlows {
    flows: HashMap<FlowKey, Direction>,
    /// Eviction order for the CLOCK algorithm; stale entries (generation mismatch) are skipped.
    clock: VecDeque<(FlowKey, u64)>,
    next_generation: u64,
    max_flows: usize,
    max_buffer: usize,
    idle_timeout: Duration,
}

impl TcpFlows {
    pub(crate) fn new(max_flows: usize, max_buffer: usize, idle_timeout: Duration) -> Self {
        TcpFlows {
            flows: HashMap::new(),
            clock: VecDeque::new(),
            next_generation: 0,
            max_flows: max_flows.max(1),
            max_buffer: max_buffer.max(1),
            idle_timeout,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.flows.len()
    }

    fn admit(
        &mut self,
        key: FlowKey,
        next_seq: u32,
        verified: bool,
        now: Timestamp,
        counters: &mut NetCounters,
    ) {
        // Each live entry is passed at most twice (once to clear its bit), so this ends.
        let mut budget = self.clock.len().saturating_mul(2).saturating_add(1);
        while self.flows.len() >= self.max_flows && budget > 0 {
            budget -= 1;
            let Some((victim, generation)) = self.clock.pop_front() else {
                break;
            };
            let Some(flow) = self.flows.get_mut(&victim) else {
                continue;
            };
            if flow.generation != generation {
                continue;
            }
            if flow.referenced {
                flow.referenced = false;
                self.clock.push_back((victim, generation));
            } else {
                self.flows.remove(&victim);
                counters.tcp_flows_evicted += 1;
            }
        }
        if self.clock.len() > self.max_flows.saturating_mul(2) {
            let flows = &self.flows;
            self.clock
                .retain(|(k, g)| flows.get(k).is_some_and(|f| f.generation == *g));
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        self.clock.push_back((key, generation));
        self.flows
            .insert(key, Direction::new(generation, next_seq, verified, now));
    }

    /// Handles one segment of one direction.
    pub(crate) fn segment(
        &mut self,
        time: Timestamp,
        key: FlowKey,
        segment: &TcpSegment<'_>,
        counters: &mut NetCounters,
        sink: &mut dyn FnMut(&Datagram<'_>),
    ) {
        counters.tcp_segments += 1;
        if segment.rst {
            self.flows.remove(&key);
            self.flows.remove(&key.reverse());
            return;
        }
        let data_seq = if segment.syn {
            segment.seq.wrapping_add(1)
        } else {
            segment.seq
        };
        match self.flows.get_mut(&key) {
            Some(flow) if segment.syn => {
                // A new connection on a reused 4-tuple (or a repeated SYN): start afresh.
                *flow = Direction::new(flow.generation, data_seq, false, time);
            }
            Some(_) => {}
            None if segment.syn => self.admit(key, data_seq, false, time, counters),
            None if segment.payload.is_empty() => return,
            None if starts_with_sip_line(segment.payload) => {
                self.admit(key, data_seq, true, time, counters);
            }
            None => {
                counters.tcp_non_sip_bytes += segment.payload.len() as u64;
                return;
            }
        }
        let max_buffer = self.max_buffer;
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.last_seen = time;
        flow.referenced = true;
        flow.receive(data_seq, segment.payload, max_buffer, counters);
        let sip = flow.deliver(time, key, max_buffer, counters, sink);
        if !sip || (segment.fin && flow.pending.is_empty()) {
            self.flows.remove(&key);
        }
    }

    /// Forgets directions idle for longer than the timeout (counted as evicted).
    pub(crate) fn expire(&mut self, now: Timestamp, counters: &mut NetCounters) {
        let timeout = self.idle_timeout;
        let before = self.flows.len();
        self.flows
            .retain(|_, f| now.saturating_since(f.last_seen) < timeout);
        counters.tcp_flows_evicted += (before - self.flows.len()) as u64;
        let flows = &self.flows;
        self.clock
            .retain(|(k, g)| flows.get(k).is_some_and(|f| f.generation == *g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Bytes the header scan has looked at on this thread (a cost that cannot be timed).
        pub(super) static BYTES_SCANNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nv=0\r\n";
    const OK: &[u8] = b"SIP/2.0 200 OK\r\nl: 0\r\nCall-ID: x\r\n\r\n";

    fn key() -> FlowKey {
        FlowKey {
            vlan: None,
            src: "10.0.0.1:5060".parse().unwrap(),
            dst: "10.0.0.2:5060".parse().unwrap(),
        }
    }

    fn seg(seq: u32, payload: &[u8]) -> TcpSegment<'_> {
        TcpSegment {
            src_port: 5060,
            dst_port: 5060,
            seq,
            syn: false,
            fin: false,
            rst: false,
            payload,
        }
    }

    fn syn(seq: u32) -> TcpSegment<'static> {
        TcpSegment {
            syn: true,
            ..seg(seq, &[])
        }
    }

    struct Harness {
        flows: TcpFlows,
        counters: NetCounters,
        out: Vec<Vec<u8>>,
    }

    impl Harness {
        fn new() -> Self {
            Self::with_buffer(256 * 1024)
        }
        fn with_buffer(max_buffer: usize) -> Self {
            Harness {
                flows: TcpFlows::new(16, max_buffer, Duration::from_secs(300)),
                counters: NetCounters::default(),
                out: Vec::new(),
            }
        }
        fn send(&mut self, segment: TcpSegment<'_>) {
            let out = &mut self.out;
            self.flows.segment(
                Timestamp::from_millis(1),
                key(),
                &segment,
                &mut self.counters,
                &mut |d| {
                    assert_eq!(d.transport, Transport::Tcp);
                    out.push(d.payload.to_vec());
                },
            );
        }
    }

    #[test]
    fn frame_len_uses_content_length_and_compact_form() {
        assert_eq!(sip_frame_len(INVITE), FrameResult::Complete(INVITE.len()));
        assert_eq!(sip_frame_len(OK), FrameResult::Complete(OK.len()));
        let lf_only = b"OPTIONS sip:a SIP/2.0\nL :  3\n\nabcEXTRA";
        assert_eq!(
            sip_frame_len(lf_only),
            FrameResult::Complete(lf_only.len() - 5)
        );
        assert_eq!(
            sip_frame_len(&INVITE[..INVITE.len() - 1]),
            FrameResult::NeedMore
        );
        assert_eq!(sip_frame_len(b"INV"), FrameResult::NeedMore);
        assert_eq!(
            sip_frame_len(b"GET / HTTP/1.1\r\n\r\n"),
            FrameResult::NotSip
        );
        assert_eq!(
            sip_frame_len(b"INVITE sip:a HTTP/1.1\r\n\r\n"),
            FrameResult::NotSip
        );
        assert_eq!(
            sip_frame_len(
                b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n"
            ),
            FrameResult::NotSip
        );
    }

    #[test]
    fn two_messages_in_one_segment() {
        let mut h = Harness::new();
        h.send(syn(100));
        h.send(seg(101, &[INVITE, OK].concat()));
        assert_eq!(h.out, vec![INVITE.to_vec(), OK.to_vec()]);
        assert_eq!(h.counters.sip_tcp_messages, 2);
    }

    #[test]
    fn split_over_three_segments_out_of_order() {
        let mut h = Harness::new();
        h.send(syn(0));
        let (a, rest) = INVITE.split_at(20);
        let (b, c) = rest.split_at(30);
        h.send(seg(1 + 50, c));
        h.send(seg(1 + 20, b));
        assert!(h.out.is_empty());
        h.send(seg(1, a));
        assert_eq!(h.out, vec![INVITE.to_vec()]);
        assert_eq!(h.counters.tcp_out_of_order, 2);
    }

    #[test]
    fn retransmission_is_delivered_once() {
        let mut h = Harness::new();
        h.send(syn(0));
        h.send(seg(1, &INVITE[..40]));
        h.send(seg(1, &INVITE[..40]));
        // Overlapping retransmission that also carries new bytes.
        h.send(seg(21, &INVITE[20..]));
        h.send(seg(1, INVITE));
        assert_eq!(h.out, vec![INVITE.to_vec()]);
        assert_eq!(h.counters.tcp_retransmissions, 3);
    }

    #[test]
    fn split_at_every_byte_position() {
        let both = [INVITE, OK].concat();
        for cut in 0..=both.len() {
            let mut h = Harness::new();
            h.send(syn(7));
            h.send(seg(8, &both[..cut]));
            h.send(seg(8 + cut as u32, &both[cut..]));
            assert_eq!(h.out, vec![INVITE.to_vec(), OK.to_vec()], "cut at {cut}");
        }
    }

    #[test]
    fn garbage_mid_stream_resyncs_to_next_message() {
        let mut h = Harness::new();
        h.send(syn(0));
        let garbage = b"\x00\x01binary NOT A START LINE\r\n\xff";
        let stream = [INVITE, &garbage[..], OK].concat();
        h.send(seg(1, &stream));
        assert_eq!(h.out, vec![INVITE.to_vec(), OK.to_vec()]);
        assert_eq!(h.counters.tcp_non_sip_bytes, garbage.len() as u64);
    }

    #[test]
    fn http_on_5060_is_ignored_and_not_kept() {
        let mut h = Harness::new();
        h.send(syn(0));
        h.send(seg(1, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        h.send(seg(28, b"more"));
        assert!(h.out.is_empty());
        assert_eq!(h.counters.tcp_non_sip_bytes, 27 + 4);
        assert_eq!(h.flows.len(), 0);
    }

    #[test]
    fn mid_stream_pickup_starts_at_a_start_line() {
        let mut h = Harness::new();
        h.send(seg(1000, b"tail of an earlier message\r\n\r\n"));
        assert_eq!(h.flows.len(), 0);
        h.send(seg(5000, OK));
        h.send(seg(5000 + OK.len() as u32, INVITE));
        assert_eq!(h.out, vec![OK.to_vec(), INVITE.to_vec()]);
    }

    #[test]
    fn oversized_message_drops_buffer_then_recovers() {
        let mut h = Harness::with_buffer(256);
        h.send(syn(0));
        let big = [
            &b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 1000\r\n\r\n"[..],
            &[b'x'; 1000],
        ]
        .concat();
        let mut seq = 1u32;
        for chunk in big.chunks(100).chain([OK]) {
            h.send(seg(seq, chunk));
            seq += chunk.len() as u32;
        }
        assert_eq!(h.out, vec![OK.to_vec()]);
        assert_eq!(h.counters.tcp_buffer_overflows, 1);
    }

    #[test]
    fn lost_segment_becomes_a_counted_gap() {
        let mut h = Harness::with_buffer(300);
        h.send(syn(0));
        h.send(seg(1, &INVITE[..10])); // the rest of this INVITE is never captured
        let mut seq = 1 + INVITE.len() as u32;
        for _ in 0..10 {
            h.send(seg(seq, OK));
            seq += OK.len() as u32;
        }
        assert_eq!(h.counters.tcp_gaps, 1);
        assert!(h.out.len() >= 5, "{}", h.out.len());
        assert!(h.out.iter().all(|m| m == OK));
    }

    #[test]
    fn rst_and_fin_forget_the_flow() {
        let mut h = Harness::new();
        h.send(syn(0));
        h.send(TcpSegment {
            fin: true,
            ..seg(1, OK)
        });
        assert_eq!(h.out.len(), 1);
        assert_eq!(h.flows.len(), 0);
        h.send(syn(0));
        h.send(TcpSegment {
            rst: true,
            ..seg(1, &[])
        });
        assert_eq!(h.flows.len(), 0);
    }

    #[test]
    fn flow_table_is_bounded() {
        let mut flows = TcpFlows::new(4, 1024, Duration::from_secs(300));
        let mut c = NetCounters::default();
        for port in 0..100u16 {
            let k = FlowKey {
                vlan: None,
                src: SocketAddr::from(([10, 0, 0, 1], port)),
                dst: "10.0.0.2:5060".parse().unwrap(),
            };
            flows.segment(Timestamp::ZERO, k, &syn(0), &mut c, &mut |_| {});
            assert!(flows.len() <= 4);
            assert!(flows.clock.len() <= 9);
        }
        assert_eq!(c.tcp_flows_evicted, 96);
        flows.expire(Timestamp::from_secs_nanos(301, 0), &mut c);
        assert_eq!(flows.len(), 0);
    }

    #[test]
    fn resync_is_linear_and_finds_split_start() {
        let mut junk = vec![b'A'; 100_000];
        junk.extend_from_slice(b" sip:x");
        assert_eq!(resync_point(&junk), Some(99_968));
        assert_eq!(resync_point(b"\x00\x00SIP/2."), Some(2));
        assert_eq!(resync_point(b"\x00\x00zzz"), None);
    }

    /// A header section that never ends, sent one byte per segment, is read once: the scan
    /// goes on where the previous delivery stopped (fuzzing found it read from the start on
    /// every byte, quadratic up to the 64 KiB header limit).
    #[test]
    fn a_header_sent_one_byte_per_segment_is_read_once() {
        let mut h = Harness::new();
        h.send(syn(0));
        let mut stream = b"INVITE sip:bob@example.com SIP/2.0\r\n".to_vec();
        // lines that look like start lines too, so a resync inside the header would find
        // a candidate on every line
        while stream.len() < MAX_SIP_HEADER + 1000 {
            stream.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
            stream.extend_from_slice(b"ACK sip:bob@example.com SIP/2.0\r\n");
        }
        BYTES_SCANNED.with(|n| n.set(0));
        for (i, b) in stream.iter().enumerate() {
            h.send(seg(1 + i as u32, std::slice::from_ref(b)));
        }
        let scanned = BYTES_SCANNED.with(|n| n.get());
        assert!(
            scanned <= 2 * stream.len(),
            "{scanned} bytes scanned for {} sent",
            stream.len()
        );
        assert!(h.out.is_empty());
        assert!(h.counters.tcp_buffer_overflows >= 1);
        // the flow gave the header up past the limit and still frames what follows
        let mut seq = 1 + stream.len() as u32;
        for m in [&b"\r\n\r\n"[..], OK] {
            h.send(seg(seq, m));
            seq += m.len() as u32;
        }
        assert_eq!(h.out.last().map(Vec::as_slice), Some(OK));
    }

    /// `max_tcp_buffer` is the largest SIP message accepted over TCP, however it arrives:
    /// one that comes whole in one segment is dropped and counted too.
    #[test]
    fn a_message_over_the_buffer_bound_is_dropped_even_when_it_arrives_whole() {
        let mut h = Harness::with_buffer(2048);
        h.send(syn(0));
        let body = vec![b'x'; 10_000];
        let big = [
            format!(
                "MESSAGE sip:a SIP/2.0\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
            &body,
        ]
        .concat();
        h.send(seg(1, &[&big[..], OK].concat()));
        assert_eq!(h.out, vec![OK.to_vec()]);
        assert_eq!(h.counters.tcp_buffer_overflows, 1);
        // and one that fits is delivered
        let mut h = Harness::with_buffer(INVITE.len());
        h.send(syn(0));
        h.send(seg(1, INVITE));
        assert_eq!(h.out, vec![INVITE.to_vec()]);
    }
}
