//! The agent's pipeline: frames in, encrypted recordings and call metadata out.
//!
//! Composes the stages of the agent's data flow (README "Source layout") (net → sip → calls → policy → stream table →
//! rtp → decode → mixer → segment writer) into one synchronous state machine fed with
//! `(capture time, frame)` and capture-time ticks. `replay` drives it from capture files and
//! the live agent from sockets; both see exactly the same behaviour. It does no I/O of its
//! own. The call side (net, sip, calls, policy, stream table) runs here, on the caller's
//! thread; the media side (rtp onwards) sits behind a [`MediaPort`]: [`LocalMedia`] runs it
//! inline (replay, tests), the agent shards it over worker threads.

mod capture_clock;
pub mod early;
pub mod local_media;
pub mod media_port;
pub mod stream_table;
pub mod summary;

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::calls::{Call, CallEvent, CallKey, CallTracker};
use crate::config::AgentConfig;
use crate::entropy::Entropy;
use crate::media::{MediaCounters, MediaPacket, MediaSlot, MediaStage};
use crate::net::{Datagram, LinkType, NetConfig, NetDecoder, Transport};
use crate::policy::ScopePolicy;
use crate::record::CallRecord;
use crate::rtp::relay::RELAY_WINDOW;
use crate::rtp::{PacketPrint, looks_like_rtcp, looks_like_rtp};
use crate::segment::SegmentStore;
use crate::sip;
use crate::time::Timestamp;
use crate::vault::CataloguePublicKey;
use capture_clock::CaptureClock;

pub use local_media::LocalMedia;
pub use media_port::MediaPort;
pub use stream_table::{Route, StreamTable};
pub use summary::Summary;

/// The pipeline with its media stage inline, writing to `S` and telling `K` (replay, tests).
pub type LocalPipeline<S, K> = Pipeline<LocalMedia<S, K>>;

/// Where calls' metadata goes.
pub trait CallSink {
    /// A recorded call ended: its metadata document.
    fn recorded(&mut self, record: &CallRecord) -> io::Result<()>;
    /// A call's recording started: its metadata as known so far (no end), written so that a
    /// crash leaves a call the next start can close. Default: nothing.
    fn opened(&mut self, _journal: &CallRecord) -> io::Result<()> {
        Ok(())
    }
    /// Every call that ends, recorded or not (for `policy check`). Default: nothing.
    fn decided(&mut self, _call: &Call) {}
}

/// Routing counters (what was dropped where, and why).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RouteCounters {
    pub sip_messages: u64,
    pub sip_rejected: u64,
    pub rtp_recorded: u64,
    /// RTP of calls out of scope: dropped at the stream table, never decoded.
    pub rtp_out_of_scope: u64,
    /// RTP no SDP announced: never recorded (it cannot be tied to a call in scope).
    pub rtp_unmatched: u64,
    /// RTP to or from the media address of a call that has ended: counted, not recorded.
    pub rtp_after_end: u64,
    pub rtcp: u64,
    pub other_udp: u64,
    /// SDP of an unrecorded leg naming a media address a recorded call is using: from then on
    /// that address is not recorded.
    pub route_conflicts: u64,
    /// Media addresses not tracked because the stream table was full.
    pub routes_refused: u64,
    /// Capture-time jumps (more than 10 minutes ahead or back) seen; capture time follows one
    /// only when a second packet confirms it.
    pub clock_steps: u64,
    /// Calls in scope not recorded because recording was paused (disk below its floor).
    pub recordings_refused: u64,
}

pub struct Pipeline<M: MediaPort> {
    net: NetDecoder,
    core: Core<M>,
}

struct Core<M: MediaPort> {
    agent: String,
    tracker: CallTracker,
    table: StreamTable,
    media: M,
    slots: HashMap<CallKey, MediaSlot>,
    /// Last RTP routed to each call, recorded or not (for the RTP inactivity timeout; an
    /// unrecorded call is alive too, and a later transfer of it must still find it).
    activity: HashMap<CallKey, Timestamp>,
    /// False while new recordings are refused (disk below its floor); calls in progress go on.
    recording_allowed: bool,
    symmetric_rtp: bool,
    counters: RouteCounters,
    clock: CaptureClock,
    /// Ended calls whose media is still accepted until the deadline: packets in flight when
    /// the BYE was sent are the caller's last words.
    closing: Vec<(CallKey, bool, Timestamp)>,
    linger: Duration,
    /// `policy check`: decide every call, record none.
    dry_run: bool,
    /// Calls that may be a B2BUA's inside leg of another, their media compared until then.
    relay_watch: Vec<RelayWatch>,
    /// SIP messages that came before the message opening their dialog (HEP out of order).
    early: early::EarlyMessages,
    /// Recent RTP packets of the watched outside calls: (SSRC, sequence, timestamp) →
    /// (fingerprint, call, when).
    relay_prints: HashMap<(u32, u16, u32), (PacketPrint, CallKey, Timestamp)>,
}

#[derive(Clone, Copy, Debug)]
struct RelayWatch {
    inside: CallKey,
    outside: CallKey,
    until: Timestamp,
}

/// Packets of watched calls remembered at most (a flood cannot grow the map).
const MAX_RELAY_PRINTS: usize = 4096;

/// How long the media addresses of an ended call are remembered (to count stragglers).
const CLOSED_ROUTE_TTL: Duration = Duration::from_secs(10);

impl<S: SegmentStore, K: CallSink> Pipeline<LocalMedia<S, K>> {
    /// The pipeline with its media stage inline. `entropy` seals its segments and gives its
    /// calls' ids: [`Entropy::system`] for recordings.
    pub fn new(
        cfg: &AgentConfig,
        key: Arc<CataloguePublicKey>,
        store: S,
        sink: K,
        mut entropy: Entropy,
    ) -> Self {
        let stage = MediaStage::new(
            store,
            key,
            cfg.media.clone(),
            Duration::from_secs(cfg.calls.rtp_timeout_seconds as u64),
            entropy.fork(),
        );
        Pipeline::with_media(cfg, LocalMedia::new(stage, sink), entropy)
    }

    pub fn sink(&self) -> &K {
        self.core.media.sink()
    }

    pub fn sink_mut(&mut self) -> &mut K {
        self.core.media.sink_mut()
    }

    pub fn store(&self) -> &S {
        self.core.media.stage().store()
    }
}

impl<M: MediaPort> Pipeline<M> {
    /// The pipeline over a media port of the caller's; `entropy` gives its calls' ids.
    pub fn with_media(cfg: &AgentConfig, media: M, entropy: Entropy) -> Self {
        let policy = ScopePolicy::new(&cfg.scope, cfg.country());
        Pipeline {
            net: NetDecoder::new(NetConfig::default()),
            core: Core {
                agent: cfg.agent.name.clone(),
                tracker: CallTracker::new(policy, cfg.calls.clone(), entropy),
                table: StreamTable::default(),
                media,
                slots: HashMap::new(),
                activity: HashMap::new(),
                recording_allowed: true,
                symmetric_rtp: cfg.media.symmetric_rtp,
                counters: RouteCounters::default(),
                clock: CaptureClock::default(),
                closing: Vec::new(),
                linger: Duration::from_millis(cfg.media.playout_delay_ms as u64),
                dry_run: false,
                relay_watch: Vec::new(),
                early: early::EarlyMessages::default(),
                relay_prints: HashMap::new(),
            },
        }
    }

    /// Live capture: see [`NetDecoder::set_live`].
    pub fn set_live(&mut self, own_hep_listeners: Vec<std::net::SocketAddr>) {
        self.net.set_live(own_hep_listeners);
    }

    /// Decide every call but record nothing: no media is decoded, no segment or metadata is
    /// written (the sink still sees every call through [`CallSink::decided`]).
    pub fn set_dry_run(&mut self) {
        self.core.dry_run = true;
    }

    /// One captured frame.
    pub fn frame(&mut self, time: Timestamp, link: LinkType, frame: &[u8]) {
        let core = &mut self.core;
        let time = core.advance(time);
        // Calls whose linger has passed close before this frame is routed, however long the
        // capture was quiet: a late packet never lands in an ended call.
        core.close_lingering(Some(core.clock.now()));
        self.net
            .frame(time, link, frame, &mut |dg| core.datagram(dg));
        if time >= core.clock.next_tick() {
            self.net.tick(time);
        }
        core.maybe_tick();
    }

    /// One HEP packet from a capture file: timed by its own timestamp chunk.
    pub fn hep(&mut self, packet: &[u8]) {
        let core = &mut self.core;
        self.net.hep(packet, &mut |dg| {
            let time = core.advance(dg.time);
            core.close_lingering(Some(core.clock.now()));
            core.datagram(&Datagram { time, ..*dg });
        });
        core.maybe_tick();
    }

    /// One HEP packet received live at `arrival` (the agent's clock). The sender's timestamp
    /// is not used: a sender whose clock is off would otherwise make its media late or early
    /// against the agent's ticks. `auth_key`, when set, must match the packet's chunk 0x000e.
    pub fn hep_received(&mut self, arrival: Timestamp, packet: &[u8], auth_key: Option<&[u8]>) {
        let core = &mut self.core;
        core.advance(arrival);
        core.close_lingering(Some(core.clock.now()));
        self.net
            .hep_received(arrival, packet, auth_key, &mut |dg| core.datagram(dg));
        core.maybe_tick();
    }

    /// Replaces the scope policy (SIGHUP): new calls are decided by it, calls in progress
    /// keep their decision.
    pub fn set_policy(&mut self, cfg: &AgentConfig) {
        self.core
            .tracker
            .set_policy(ScopePolicy::new(&cfg.scope, cfg.country()));
    }

    /// Pauses (false) or resumes (true) new recordings; calls being recorded go on.
    pub fn set_recording_allowed(&mut self, allowed: bool) {
        self.core.recording_allowed = allowed;
    }

    /// Capture time moved on without packets (live agent idle).
    pub fn tick(&mut self, now: Timestamp) {
        self.core.advance(now);
        self.net.tick(now);
        self.core.maybe_tick();
    }

    /// Ends every call still open (end of capture, shutdown) and flushes everything.
    pub fn finish(&mut self, reason: &str) {
        let now = self.core.clock.now();
        for held in self.core.early.drain() {
            self.core.mid_call_request(&held);
        }
        self.core.tracker.end_all(now, reason);
        self.core.apply_events();
        self.core.close_lingering(None);
    }

    pub fn summary(&self) -> Summary {
        Summary {
            net: self.net.counters.clone(),
            calls: self.core.tracker.counters.clone(),
            media: self.core.media.counters(),
            routes: RouteCounters {
                clock_steps: self.core.clock.steps(),
                ..self.core.counters.clone()
            },
            capture_span: self.core.clock.span(),
        }
    }

    pub fn media_counters(&self) -> MediaCounters {
        self.core.media.counters()
    }

    pub fn active_calls(&self) -> usize {
        self.core.tracker.active_calls()
    }

    /// Calls being recorded now.
    pub fn recording_calls(&self) -> usize {
        self.core.slots.len()
    }

    /// The calls being recorded now, as the catalogue's operations page lists them (no
    /// numbers: which service, since when).
    pub fn live_calls(&self) -> Vec<crate::record::health::LiveCall> {
        self.core
            .slots
            .keys()
            .filter_map(|&key| self.core.tracker.call(key))
            .map(|call| crate::record::health::LiveCall {
                call_id: call.call_id.to_string(),
                service: call.decision.service.clone(),
                started: call.started_at.rfc3339(),
                legs: call.legs.len() as u32,
                answered: call.answered_at().is_some(),
            })
            .collect()
    }

    pub fn media(&self) -> &M {
        &self.core.media
    }

    pub fn media_mut(&mut self) -> &mut M {
        &mut self.core.media
    }

    /// The media side, once the pipeline is done (the agent waits for its workers).
    pub fn into_media(self) -> M {
        self.core.media
    }
}

impl<M: MediaPort> Core<M> {
    /// Moves capture time on for a packet captured at `time` (see [`CaptureClock`]) and
    /// returns the time the packet is to be handled at. After a step back, calls lingering
    /// past their end close no later than a linger from the new now.
    fn advance(&mut self, time: Timestamp) -> Timestamp {
        let reading = self.clock.advance(time);
        if reading.stepped_back {
            let until = reading.at + self.linger;
            for (_, _, at) in &mut self.closing {
                *at = (*at).min(until);
            }
        }
        reading.at
    }

    fn maybe_tick(&mut self) {
        let now = self.clock.now();
        if self.clock.drain_due() {
            self.close_lingering(Some(now));
            self.media.tick(now);
        }
        if self.clock.tick_due() {
            let activity = &self.activity;
            self.tracker.tick(now, &|key| activity.get(&key).copied());
            self.table.expire_closed(now - CLOSED_ROUTE_TTL);
            self.relay_watch.retain(|w| w.until > now);
            if !self.early.is_empty() {
                for held in self.early.expire(now) {
                    self.mid_call_request(&held);
                }
            }
            if self.relay_watch.is_empty() {
                self.relay_prints.clear();
            } else {
                let before = now - RELAY_WINDOW;
                self.relay_prints.retain(|_, (_, _, at)| *at >= before);
            }
            self.apply_events();
        }
    }

    fn datagram(&mut self, dg: &Datagram<'_>) {
        let p = dg.payload;
        match dg.transport {
            Transport::Udp if looks_like_rtp(p) => self.rtp(dg),
            Transport::Udp if looks_like_rtcp(p) => self.counters.rtcp += 1,
            _ if sip::looks_like_sip(p) => self.sip(dg),
            Transport::Udp => self.counters.other_udp += 1,
            Transport::Tcp => self.counters.sip_rejected += 1,
        }
    }

    #[inline]
    fn rtp(&mut self, dg: &Datagram<'_>) {
        if !self.relay_watch.is_empty() {
            self.compare_relay(dg);
        }
        let (route, side) = match self.table.get(&dg.dst) {
            Some(r) => (r, r.peer),
            None => match self
                .symmetric_rtp
                .then(|| self.table.get(&dg.src))
                .flatten()
            {
                Some(r) => (r, r.owner),
                None => {
                    self.counters.rtp_unmatched += 1;
                    return;
                }
            },
        };
        let Some(slot) = route.slot.filter(|_| route.record) else {
            if route.closed_at.is_some() {
                self.counters.rtp_after_end += 1;
            } else {
                // counted, never decoded; but the call is alive, so it must not time out
                // (a later transfer of it must still find it and stay unrecorded)
                self.counters.rtp_out_of_scope += 1;
                self.activity.insert(route.call, dg.time);
            }
            return;
        };
        self.counters.rtp_recorded += 1;
        self.activity.insert(route.call, dg.time);
        let packet = MediaPacket {
            side,
            source: dg.src,
            time: dg.time,
            rtp: dg.payload,
            codecs: &route.codecs,
        };
        self.media.packet(slot, &packet);
    }

    /// While a call may be a B2BUA's inside leg of another (see [`CallEvent::RelayWatch`]):
    /// the packets of both are remembered for the relay window, and the same packet (SSRC,
    /// sequence, timestamp and payload) on both proves it. Only the packet headers and a
    /// fingerprint are looked at: nothing is decoded, and calls not watched cost one check.
    fn compare_relay(&mut self, dg: &Datagram<'_>) {
        let call = match self.table.get(&dg.dst).or_else(|| {
            self.symmetric_rtp
                .then(|| self.table.get(&dg.src))
                .flatten()
        }) {
            Some(r) if r.closed_at.is_none() => r.call,
            _ => return,
        };
        let p = dg.payload;
        let (seq, ts, ssrc) = (
            u16::from_be_bytes([p[2], p[3]]),
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        );
        let print = PacketPrint::of(seq, ts, &p[12..]);
        let key = (ssrc, seq, ts);
        if !self
            .relay_watch
            .iter()
            .any(|w| w.outside == call || w.inside == call)
        {
            return;
        }
        // the same packet seen on the other call of a watched pair (either may come first:
        // the caller's voice reaches the outside leg first, the agent's the inside leg)
        let other = self
            .relay_prints
            .get(&key)
            .filter(|(seen, of, at)| {
                *seen == print && *of != call && dg.time.saturating_since(*at) <= RELAY_WINDOW
            })
            .map(|(_, of, _)| *of);
        let proven = other.and_then(|other| {
            self.relay_watch.iter().find(|w| {
                (w.inside, w.outside) == (call, other) || (w.inside, w.outside) == (other, call)
            })
        });
        if proven.is_none() {
            if self.relay_prints.len() >= MAX_RELAY_PRINTS {
                let before = dg.time - RELAY_WINDOW;
                self.relay_prints.retain(|_, (_, _, at)| *at >= before);
            }
            if self.relay_prints.len() < MAX_RELAY_PRINTS {
                self.relay_prints.insert(key, (print, call, dg.time));
            }
        }
        if let Some(w) = proven.copied() {
            self.relay_watch
                .retain(|x| x.inside != w.inside && x.outside != w.inside);
            self.tracker.relay_proven(w.inside, w.outside);
            self.apply_events();
        }
    }

    fn sip(&mut self, dg: &Datagram<'_>) {
        // An oversized message (a 65 kB body is an old evasion trick) is still a call: its
        // headers are read and the body is cut at the parser's bound.
        let bytes = &dg.payload[..dg.payload.len().min(sip::MAX_MESSAGE_LEN)];
        match sip::parse(bytes) {
            Ok(msg) => {
                self.counters.sip_messages += 1;
                let id = msg.call_id().map(str::trim).unwrap_or_default();
                let known = self.tracker.knows(id);
                self.on_sip(dg.time, &msg, (dg.src, dg.dst), dg.via_hep);
                if known || id.is_empty() {
                    return;
                }
                if self.tracker.knows(id) {
                    // its dialog has just appeared: what came before it, in order
                    for held in self.early.take(id) {
                        if let Ok(m) = sip::parse(&held.bytes) {
                            self.on_sip(held.time, &m, (held.src, held.dst), dg.via_hep);
                        }
                    }
                } else if belongs_to_a_call(&msg) {
                    let held = early::Held {
                        time: dg.time,
                        src: dg.src,
                        dst: dg.dst,
                        bytes: bytes.to_vec(),
                    };
                    if !self.early.hold(id, held) && dg.via_hep {
                        // no room to wait for its dialog: a call in progress at start
                        self.tracker
                            .mid_call_request(dg.time, &msg, (dg.src, dg.dst), &|_| None);
                        self.apply_events();
                    }
                }
            }
            Err(_) => self.counters.sip_rejected += 1,
        }
    }

    /// A request held for its dialog, which did not appear: the start of a call in progress
    /// when capture began.
    fn mid_call_request(&mut self, held: &early::Held) {
        if let Ok(msg) = sip::parse(&held.bytes) {
            let activity = &self.activity;
            self.tracker
                .mid_call_request(held.time, &msg, (held.src, held.dst), &|key| {
                    activity.get(&key).copied()
                });
            self.apply_events();
        }
    }

    /// One SIP message between `hop` (source, destination); `via_hep`: from a HEP feed, which
    /// may not keep wire order.
    fn on_sip(
        &mut self,
        time: Timestamp,
        msg: &sip::Message<'_>,
        hop: (std::net::SocketAddr, std::net::SocketAddr),
        via_hep: bool,
    ) {
        let (src, dst) = hop;
        let activity = &self.activity;
        self.tracker
            .on_message(time, msg, hop, via_hep, &|key| activity.get(&key).copied());
        self.tracker.note_signal(time, msg, src, dst);
        self.apply_events();
    }

    fn apply_events(&mut self) {
        let events: Vec<CallEvent> = self.tracker.drain_events().collect();
        for ev in events {
            match ev {
                CallEvent::Record { call } => {
                    let Some(c) = self.tracker.call(call) else {
                        continue;
                    };
                    if self.dry_run {
                        continue;
                    }
                    if !self.recording_allowed {
                        self.counters.recordings_refused += 1;
                        tracing::warn!(call_id = %c.call_id, "call in scope not recorded: recording paused (disk below its floor)");
                        // in scope, but not recorded: counted as refused, not as recorded
                        let recorded = &mut self.tracker.counters.calls_recorded;
                        *recorded = recorded.saturating_sub(1);
                        continue;
                    }
                    let journal = CallRecord::new(&self.agent, c);
                    let slot = self.media.open(c.call_id, journal);
                    self.slots.insert(call, slot);
                    // a call decided after a wait (see calls::tracker) already has addresses,
                    // dropped until now: from now on they are recorded (a new call has none)
                    self.table.rehome(call, call, Some(slot), false);
                }
                CallEvent::Endpoint {
                    call,
                    addr,
                    owner,
                    peer,
                    codecs,
                    record,
                } => {
                    let slot = self.slots.get(&call).copied();
                    // An unrecorded dialog naming an address a recorded call uses (an agent's
                    // phone re-using its port for an internal call, an SBC re-using a port):
                    // from now on nobody can tell whose voice arrives there, so it is not
                    // recorded. Privacy wins over completeness; the conflict is counted.
                    if !record
                        && let Some(existing) = self.table.get(&addr)
                        && existing.record
                        && existing.call != call
                    {
                        self.counters.route_conflicts += 1;
                    }
                    let kept = self.table.insert(
                        addr,
                        Route {
                            call,
                            slot,
                            owner,
                            peer,
                            codecs: Arc::new(codecs),
                            record: record && slot.is_some(),
                            closed_at: None,
                        },
                    );
                    if !kept {
                        self.counters.routes_refused += 1;
                    }
                }
                CallEvent::Forget { call, addr } => self.table.remove_if_call(&addr, call),
                CallEvent::RelayWatch {
                    inside,
                    outside,
                    until,
                } => {
                    if self.relay_watch.len() < MAX_RELAY_PRINTS {
                        self.relay_watch.push(RelayWatch {
                            inside,
                            outside,
                            until,
                        });
                    }
                }
                CallEvent::Merged {
                    from,
                    into,
                    swap_sides,
                } => {
                    let slot = self.slots.get(&into).copied();
                    let record = self.tracker.call(into).is_some_and(|c| c.record());
                    self.table
                        .rehome(from, into, slot.filter(|_| record), swap_sides);
                    if let Some(t) = self.activity.remove(&from) {
                        let at = self.activity.entry(into).or_insert(t);
                        *at = (*at).max(t);
                    }
                }
                CallEvent::Quiet { call, from } => {
                    if let Some(&slot) = self.slots.get(&call) {
                        self.media.quiet(slot, from);
                    }
                }
                CallEvent::Ended { call, record } => {
                    self.closing
                        .push((call, record, self.clock.now() + self.linger));
                }
            }
        }
    }

    /// Closes ended calls whose linger has passed (all of them when `now` is None).
    fn close_lingering(&mut self, now: Option<Timestamp>) {
        if self.closing.is_empty() {
            return;
        }
        let due: Vec<(CallKey, bool)> = self
            .closing
            .iter()
            .filter(|(_, _, at)| now.is_none_or(|n| *at <= n))
            .map(|(k, r, _)| (*k, *r))
            .collect();
        if due.is_empty() {
            return;
        }
        self.closing
            .retain(|(_, _, at)| now.is_some_and(|n| *at > n));
        for (key, record) in due {
            self.end(key, record);
        }
    }

    fn end(&mut self, key: CallKey, record: bool) {
        self.table.close_call(key, self.clock.now());
        self.activity.remove(&key);
        let Some(call) = self.tracker.take_ended(key) else {
            return;
        };
        let ended_at = call.ended_at().unwrap_or(self.clock.now());
        self.media.decided(&call);
        // a call refused while recording was paused has no slot and no metadata
        if let Some(slot) = self.slots.remove(&key) {
            debug_assert!(record && !self.dry_run, "only calls to record get a slot");
            let doc = CallRecord::new(&self.agent, &call);
            self.media.close(slot, ended_at, doc);
        }
    }
}

/// Whether a message is part of an INVITE dialog (the only ones worth holding until their
/// dialog appears): responses to and in-dialog requests of calls and a transfer's NOTIFY,
/// not REGISTER, OPTIONS, SUBSCRIBE, presence NOTIFY or MESSAGE traffic.
fn belongs_to_a_call(msg: &sip::Message<'_>) -> bool {
    use sip::Method as M;
    let of_a_call = |m: &M<'_>| {
        matches!(
            m,
            M::Invite | M::Ack | M::Bye | M::Cancel | M::Prack | M::Update | M::Info | M::Refer
        )
    };
    match msg.method() {
        // a transfer's progress, not presence (which a busy PBX sends by the thousand)
        Some(M::Notify) => msg.header(sip::HeaderName::Event).is_some_and(|e| {
            e.trim_start()
                .get(..5)
                .is_some_and(|w| w.eq_ignore_ascii_case("refer"))
        }),
        // an INVITE without a To tag opens a dialog itself
        Some(m) => {
            of_a_call(m) && (!matches!(m, M::Invite) || msg.to().is_some_and(|t| t.tag().is_some()))
        }
        None => msg.cseq().is_some_and(|c| of_a_call(&c.method)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_messages_of_calls_are_held_for_their_dialog() {
        let held = |text: &str| belongs_to_a_call(&sip::parse(text.as_bytes()).unwrap());
        let head = "From: <sip:a@x>;tag=1\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n";
        assert!(held(&format!(
            "SIP/2.0 200 OK\r\nTo: <sip:b@x>;tag=2\r\nCSeq: 1 INVITE\r\n{head}"
        )));
        assert!(held(&format!(
            "BYE sip:b@x SIP/2.0\r\nTo: <sip:b@x>;tag=2\r\nCSeq: 2 BYE\r\n{head}"
        )));
        assert!(held(&format!(
            "NOTIFY sip:b@x SIP/2.0\r\nTo: <sip:b@x>;tag=2\r\nCSeq: 3 NOTIFY\r\nEvent: refer\r\n{head}"
        )));
        // a new INVITE opens its own dialog; presence, registrations and keep-alives are not
        // part of a call
        assert!(!held(&format!(
            "INVITE sip:b@x SIP/2.0\r\nTo: <sip:b@x>\r\nCSeq: 1 INVITE\r\n{head}"
        )));
        assert!(!held(&format!(
            "NOTIFY sip:b@x SIP/2.0\r\nTo: <sip:b@x>;tag=2\r\nCSeq: 3 NOTIFY\r\nEvent: presence\r\n{head}"
        )));
        assert!(!held(&format!(
            "SIP/2.0 200 OK\r\nTo: <sip:b@x>;tag=2\r\nCSeq: 1 REGISTER\r\n{head}"
        )));
        assert!(!held(&format!(
            "OPTIONS sip:b@x SIP/2.0\r\nTo: <sip:b@x>;tag=2\r\nCSeq: 9 OPTIONS\r\n{head}"
        )));
    }
}
