//! A call's timeline: when each SIP message is sent on which hop, which RTP slots each side
//! sends, and what the network does to each packet.
//!
//! Owns: turning one [`CallSpec`] into a [`CallPlan`] (absolute times, addresses, SSRCs, the
//! ordered SIP event list, per-stream slot grids) and the per-packet impairment decisions.
//! Every impairment decision is a pure function of (scenario seed, call index, stream, slot),
//! so the frame generator and the truth computation agree without sharing state. G.722
//! payloads are the exception: an encoder carries state from slot to slot, so
//! `G722Sequence` keeps a running encoder (asked for a slot out of order, it starts over).
//! Receives specs; emits plans and [`CallTruth`]. Must never build frames.

use std::net::SocketAddr;

use super::scenario::{
    CallEnd, CallSpec, CallTruth, Codec, DtmfTruth, Signal, SipTransport, agent_media,
    agent_phone_sip, caller_media, internal_caller_sip, pbx_sip, sbc_sip,
};
use super::signal::{SplitMix64, hash2};
use callvault_codec::g711::{ALAW_TABLE, ULAW_TABLE, linear_to_alaw, linear_to_ulaw};
use std::time::Duration;

pub(crate) const MS: u64 = 1_000_000;
/// 20 ms packetisation: one RTP packet per slot, 160 samples / timestamp units.
pub(crate) const PTIME_NS: u64 = 20 * MS;
pub(crate) const SAMPLES_PER_PACKET: usize = 160;
/// RFC 4733 event length; the event replaces this many audio slots.
pub(crate) const DTMF_SLOTS: u32 = 5;
/// End-of-event packets are sent three times (RFC 4733 §2.5.1.4); two extra after the first.
pub(crate) const DTMF_END_REPEATS: u8 = 2;
pub(crate) const DTMF_EVENT: u8 = 5;
/// Longest span a spec may ask for (ten years): durations are clamped to it and the epoch to
/// `MAX_EPOCH_NS`, so no sum of times can overflow u64.
const MAX_SPAN_MS: u64 = 10 * 366 * 86_400_000;
const MAX_EPOCH_NS: u64 = 1 << 62;

/// A spec duration in nanoseconds, clamped (see `MAX_SPAN_MS`).
fn ms(v: u64) -> u64 {
    v.min(MAX_SPAN_MS) * MS
}

/// Gap between the SIP hops of a message relayed by the PBX.
const PROXY_DELAY: u64 = MS;

/// Which side of the call a stream comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Caller = 0,
    Agent = 1,
}

/// A SIP message of the call's dialog, named by its role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    Invite,
    Trying,
    Ringing,
    Progress,
    Answer,
    AckAnswer,
    Cancel,
    CancelOk,
    Terminated,
    Busy,
    AckFailure,
    ReInvite { resume: bool },
    ReInviteOk { resume: bool },
    ReInviteAck { resume: bool },
    Bye { by_caller: bool },
    ByeOk { by_caller: bool },
}

impl Msg {
    pub(crate) fn is_request(self) -> bool {
        matches!(
            self,
            Msg::Invite
                | Msg::AckAnswer
                | Msg::Cancel
                | Msg::AckFailure
                | Msg::ReInvite { .. }
                | Msg::ReInviteAck { .. }
                | Msg::Bye { .. }
        )
    }

    /// True when the transaction was started by the caller side (party A).
    pub(crate) fn caller_transaction(self) -> bool {
        !matches!(
            self,
            Msg::ReInvite { .. }
                | Msg::ReInviteOk { .. }
                | Msg::ReInviteAck { .. }
                | Msg::Bye { by_caller: false }
                | Msg::ByeOk { by_caller: false }
        )
    }

    /// True when party A (the caller side) sends this message.
    pub(crate) fn sent_by_caller(self) -> bool {
        self.is_request() == self.caller_transaction()
    }
}

/// Where one copy of a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hop {
    /// SBC ↔ PBX: the only hop of an external call.
    Direct,
    /// Sender → PBX of an internal call.
    ToProxy,
    /// PBX → receiver of an internal call.
    FromProxy,
}

/// Up to two messages sent together (two only when coalesced into one TCP segment).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SipEvent {
    pub at_ns: u64,
    pub msgs: [Msg; 2],
    pub n_msgs: u8,
    pub hop: Hop,
    /// TCP only: cut this message into two segments.
    pub split: bool,
}

impl SipEvent {
    pub(crate) fn messages(&self) -> &[Msg] {
        &self.msgs[..self.n_msgs.min(2) as usize]
    }
}

/// An SSRC's run within a stream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epoch {
    pub start_slot: u32,
    pub ssrc: u32,
    pub seq0: u16,
    pub ts0: u32,
}

/// One direction of RTP: a grid of 20 ms slots from `start_ns`.
#[derive(Clone, Debug)]
pub(crate) struct StreamPlan {
    pub start_ns: u64,
    pub n_slots: u32,
    /// Slots not sent because of hold, [from, to).
    pub hold: Option<(u32, u32)>,
    /// First of the DTMF_SLOTS slots carrying the RFC 4733 event.
    pub dtmf_slot: Option<u32>,
    pub epochs: [Epoch; 2],
    pub n_epochs: u8,
    /// Slots before this one carry ringback (early media).
    pub early_slots: u32,
    pub signal: Signal,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub fate_seed: u64,
}

/// What a slot carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotKind {
    Held,
    Audio,
    /// Index 0..DTMF_SLOTS of the event.
    Dtmf(u32),
}

/// The network's treatment of one packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fate {
    pub lost: bool,
    pub duplicate: bool,
    pub reorder: bool,
    pub jitter_ns: u64,
}

/// RTP header values of one packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl StreamPlan {
    pub(crate) fn nominal_ns(&self, slot: u32) -> u64 {
        self.start_ns + slot as u64 * PTIME_NS
    }

    pub(crate) fn kind(&self, slot: u32) -> SlotKind {
        if let Some((a, b)) = self.hold
            && (a..b).contains(&slot)
        {
            return SlotKind::Held;
        }
        if let Some(d) = self.dtmf_slot
            && (d..d + DTMF_SLOTS).contains(&slot)
        {
            return SlotKind::Dtmf(slot - d);
        }
        SlotKind::Audio
    }

    fn epoch(&self, slot: u32) -> &Epoch {
        if self.n_epochs > 1 && slot >= self.epochs[1].start_slot {
            &self.epochs[1]
        } else {
            &self.epochs[0]
        }
    }

    /// Packets the sender has sent before `slot`, counting DTMF end repeats: the basis of the
    /// RTP sequence number.
    fn sender_index(&self, slot: u32) -> u32 {
        let held = match self.hold {
            Some((a, b)) => slot.clamp(a, b) - a,
            None => 0,
        };
        let repeats = match self.dtmf_slot {
            Some(d) if slot >= d + DTMF_SLOTS => DTMF_END_REPEATS as u32,
            _ => 0,
        };
        slot - held + repeats
    }

    pub(crate) fn rtp_header(&self, slot: u32, repeat: u8, codec: Codec) -> RtpHeader {
        let e = self.epoch(slot);
        let seq_off = self
            .sender_index(slot)
            .wrapping_sub(self.sender_index(e.start_slot));
        let seq = e
            .seq0
            .wrapping_add(seq_off as u16)
            .wrapping_add(repeat as u16);
        let ts_of = |s: u32| {
            e.ts0
                .wrapping_add(s.wrapping_sub(e.start_slot).wrapping_mul(160))
        };
        match self.kind(slot) {
            SlotKind::Dtmf(i) => RtpHeader {
                marker: i == 0 && repeat == 0,
                payload_type: 101,
                seq,
                timestamp: ts_of(slot - i),
                ssrc: e.ssrc,
            },
            _ => RtpHeader {
                marker: slot == e.start_slot || self.hold.is_some_and(|(_, b)| slot == b),
                payload_type: codec.payload_type(),
                seq,
                timestamp: ts_of(slot),
                ssrc: e.ssrc,
            },
        }
    }

    /// The signal a slot's audio is drawn from, at sample index slot × 160.
    pub(crate) fn signal_for(&self, slot: u32) -> &Signal {
        if slot < self.early_slots {
            &Signal::Ringback
        } else {
            &self.signal
        }
    }

    /// Extra packets after this slot's own (the DTMF end repeats).
    pub(crate) fn repeats(&self, slot: u32) -> u8 {
        if self.kind(slot) == SlotKind::Dtmf(DTMF_SLOTS - 1) {
            DTMF_END_REPEATS
        } else {
            0
        }
    }
}

/// Network impairments of a call, applied per packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Impairments {
    pub loss: f32,
    pub reorder: f32,
    pub duplicate: f32,
    pub jitter_ms: u32,
}

impl Impairments {
    /// The fate of packet (slot, repeat) of the stream with `seed`. All four draws are made
    /// every time so that changing one probability does not reshuffle the others.
    pub(crate) fn fate(&self, seed: u64, slot: u32, repeat: u8) -> Fate {
        let mut r = SplitMix64::new(hash2(seed, ((slot as u64) << 8) | repeat as u64));
        let lost = r.chance(self.loss);
        let duplicate = r.chance(self.duplicate);
        let reorder = r.chance(self.reorder);
        let jitter_ns = r.below(self.jitter_ms as u64 * MS);
        Fate {
            lost,
            duplicate,
            reorder,
            jitter_ns,
        }
    }
}

/// Everything the generator needs to emit one call.
#[derive(Clone, Debug)]
pub(crate) struct CallPlan {
    pub index: usize,
    pub spec: CallSpec,
    pub internal: bool,
    pub seed: u64,
    /// Party A (SBC or calling phone) and party B (PBX or agent phone) SIP addresses.
    pub a_sip: SocketAddr,
    pub b_sip: SocketAddr,
    /// The PBX, which is also party B of an external call.
    pub pbx: SocketAddr,
    pub caller_media: SocketAddr,
    pub agent_media: SocketAddr,
    pub invite_ns: u64,
    pub answer_ns: Option<u64>,
    pub end_ns: u64,
    pub hold_ns: Option<(u64, u64)>,
    pub sip: Vec<SipEvent>,
    pub streams: [Option<StreamPlan>; 2],
    pub impairments: Impairments,
}

/// Builds the SIP event list, keeping it in send order even when timings collide.
struct SipTimeline {
    events: Vec<SipEvent>,
    last_ns: u64,
    internal: bool,
}

impl SipTimeline {
    /// Sends `msgs` at `at_ns` (or just after the previous event); returns the time of the
    /// first copy on the wire.
    fn send(&mut self, at_ns: u64, msgs: &[Msg], split: bool) -> u64 {
        let at = at_ns.max(self.last_ns + 100_000);
        let mut arr = [Msg::Invite; 2];
        for (slot, m) in arr.iter_mut().zip(msgs) {
            *slot = *m;
        }
        let n = msgs.len().min(2) as u8;
        let trying_only_from_proxy = self.internal && msgs.first() == Some(&Msg::Trying);
        if !self.internal {
            self.push(SipEvent {
                at_ns: at,
                msgs: arr,
                n_msgs: n,
                hop: Hop::Direct,
                split,
            });
        } else if trying_only_from_proxy {
            // The proxy answers 100 Trying itself; it never crosses to the agent phone.
            self.push(SipEvent {
                at_ns: at,
                msgs: arr,
                n_msgs: n,
                hop: Hop::FromProxy,
                split,
            });
        } else {
            self.push(SipEvent {
                at_ns: at,
                msgs: arr,
                n_msgs: n,
                hop: Hop::ToProxy,
                split,
            });
            self.push(SipEvent {
                at_ns: at + PROXY_DELAY,
                msgs: arr,
                n_msgs: n,
                hop: Hop::FromProxy,
                split,
            });
        }
        at
    }

    fn push(&mut self, e: SipEvent) {
        self.last_ns = e.at_ns;
        self.events.push(e);
    }
}

/// Number of 20 ms slots from `start` before `end` (a slot is sent when its nominal time is
/// strictly before `end`).
fn slots_until(start: u64, end: u64) -> u32 {
    if end <= start {
        0
    } else {
        (end - start).div_ceil(PTIME_NS).min(u32::MAX as u64) as u32
    }
}

impl CallPlan {
    pub(crate) fn new(scenario_seed: u64, epoch_ns: u64, index: usize, spec: &CallSpec) -> Self {
        let seed = hash2(scenario_seed, index as u64 ^ 0x5EED_CA11);
        let mut rng = SplitMix64::new(seed);
        let internal = spec.is_internal();
        let v6 = spec.ipv6;
        let pbx = pbx_sip(v6);
        let (a_sip, b_sip) = if internal {
            (internal_caller_sip(index, v6), agent_phone_sip(index, v6))
        } else {
            (sbc_sip(v6), pbx)
        };
        let tcp = spec.transport == SipTransport::Tcp;

        let mut tl = SipTimeline {
            events: Vec::new(),
            last_ns: 0,
            internal,
        };
        let t0 = epoch_ns.min(MAX_EPOCH_NS) + ms(spec.start_ms);
        let ring = ms(spec.ring_ms);
        let invite_ns = tl.send(t0, &[Msg::Invite], tcp && index.is_multiple_of(2));
        let ring_at = t0 + (ring / 2).min(150 * MS);
        let provisional = if spec.early_media {
            Msg::Progress
        } else {
            Msg::Ringing
        };
        if tcp && index % 2 == 1 {
            // A slow PBX: 100 and 180/183 leave together, one TCP segment.
            tl.send(ring_at, &[Msg::Trying, provisional], false);
        } else {
            tl.send(t0 + 2 * MS, &[Msg::Trying], false);
            tl.send(ring_at, &[provisional], false);
        }
        let progress_ns = tl.last_ns;

        let mut answer_ns = None;
        let mut hold_ns = None;
        let end_ns;
        match spec.end {
            CallEnd::Cancel => {
                end_ns = tl.send(t0 + ring, &[Msg::Cancel], false);
                tl.send(end_ns + 3 * MS, &[Msg::CancelOk], false);
                tl.send(end_ns + 5 * MS, &[Msg::Terminated], false);
                tl.send(end_ns + 8 * MS, &[Msg::AckFailure], false);
            }
            CallEnd::Busy => {
                end_ns = tl.send(t0 + ring, &[Msg::Busy], false);
                tl.send(end_ns + 3 * MS, &[Msg::AckFailure], false);
            }
            CallEnd::Bye { .. } | CallEnd::NoBye => {
                let ans = tl.send(t0 + ring, &[Msg::Answer], false);
                answer_ns = Some(ans);
                tl.send(ans + 8 * MS, &[Msg::AckAnswer], false);
                let talk_end = ans + ms(spec.talk_ms);
                if let Some((off, dur)) = spec.hold {
                    let h0 = ans + ms(off);
                    let h1 = (h0 + ms(dur)).min(talk_end.saturating_sub(100 * MS));
                    if off > 0 && h0 + 100 * MS < h1 {
                        let r = tl.send(h0, &[Msg::ReInvite { resume: false }], false);
                        tl.send(r + 30 * MS, &[Msg::ReInviteOk { resume: false }], false);
                        tl.send(r + 40 * MS, &[Msg::ReInviteAck { resume: false }], false);
                        let r = tl.send(h1, &[Msg::ReInvite { resume: true }], false);
                        tl.send(r + 30 * MS, &[Msg::ReInviteOk { resume: true }], false);
                        tl.send(r + 40 * MS, &[Msg::ReInviteAck { resume: true }], false);
                        hold_ns = Some((h0, h1));
                    }
                }
                match spec.end {
                    CallEnd::Bye { by_caller } => {
                        end_ns = tl.send(talk_end, &[Msg::Bye { by_caller }], false);
                        tl.send(end_ns + 4 * MS, &[Msg::ByeOk { by_caller }], false);
                    }
                    _ => end_ns = talk_end.max(tl.last_ns),
                }
            }
        }

        let caller_media_addr = caller_media(index, internal, v6);
        let agent_media_addr = agent_media(index, v6);
        let random_epoch = |start_slot: u32, rng: &mut SplitMix64| Epoch {
            start_slot,
            ssrc: rng.next_u32(),
            seq0: (rng.next_u32() >> 16) as u16,
            ts0: rng.next_u32(),
        };
        // Spread streams over the 20 ms grid so calls do not all send in the same instant.
        let phase = rng.below(10 * MS);

        let caller_stream = answer_ns.map(|ans| {
            let start = ans + 10 * MS + phase;
            let mut e = random_epoch(0, &mut rng);
            if index == 0 {
                // The first call's caller stream wraps its sequence number within a second.
                e.seq0 = 65_500;
            }
            let n_slots = slots_until(start, end_ns);
            let hold = hold_ns.map(|(h0, h1)| (slots_until(start, h0), slots_until(start, h1)));
            let dtmf_slot = spec
                .telephone_event
                .then(|| slots_until(start, ans + ms(spec.talk_ms) / 2))
                .filter(|&d| {
                    d + DTMF_SLOTS <= n_slots
                        && hold.is_none_or(|(a, b)| d + DTMF_SLOTS <= a || d >= b)
                });
            StreamPlan {
                start_ns: start,
                n_slots,
                hold,
                dtmf_slot,
                epochs: [e, e],
                n_epochs: 1,
                early_slots: 0,
                signal: spec.caller_signal.clone(),
                src: caller_media_addr,
                dst: agent_media_addr,
                fate_seed: hash2(seed, 1),
            }
        });

        let agent_start = if spec.early_media {
            Some(progress_ns + 5 * MS + phase)
        } else {
            answer_ns.map(|a| a + 3 * MS + phase)
        };
        let agent_stream = agent_start.map(|start| {
            let mut e0 = random_epoch(0, &mut rng);
            if index == 0 {
                e0.seq0 = 65_520;
            }
            let n_slots = slots_until(start, end_ns);
            let hold = hold_ns.map(|(h0, h1)| (slots_until(start, h0), slots_until(start, h1)));
            let early_slots = answer_ns.map_or(n_slots, |a| slots_until(start, a));
            let mut epochs = [e0, e0];
            let mut n_epochs = 1;
            if let (Some(off), Some(ans)) = (spec.ssrc_change_at, answer_ns) {
                let s = slots_until(start, ans + ms(off));
                if s > 0 && s < n_slots {
                    epochs[1] = random_epoch(s, &mut rng);
                    n_epochs = 2;
                }
            }
            StreamPlan {
                start_ns: start,
                n_slots,
                hold,
                dtmf_slot: None,
                epochs,
                n_epochs,
                early_slots,
                signal: spec.agent_signal.clone(),
                src: agent_media_addr,
                dst: caller_media_addr,
                fate_seed: hash2(seed, 2),
            }
        });

        CallPlan {
            index,
            spec: spec.clone(),
            internal,
            seed,
            a_sip,
            b_sip,
            pbx,
            caller_media: caller_media_addr,
            agent_media: agent_media_addr,
            invite_ns,
            answer_ns,
            end_ns,
            hold_ns,
            sip: tl.events,
            streams: [caller_stream, agent_stream],
            impairments: Impairments {
                loss: spec.loss,
                reorder: spec.reorder,
                duplicate: spec.duplicate,
                jitter_ms: spec.jitter_ms,
            },
        }
    }

    /// Source and destination SIP addresses of `msg` on `hop`.
    pub(crate) fn hop_endpoints(&self, msg: Msg, hop: Hop) -> (SocketAddr, SocketAddr) {
        let (from, to) = if msg.sent_by_caller() {
            (self.a_sip, self.b_sip)
        } else {
            (self.b_sip, self.a_sip)
        };
        match hop {
            Hop::Direct => (from, to),
            Hop::ToProxy => (from, self.pbx),
            Hop::FromProxy => (self.pbx, to),
        }
    }

    pub(crate) fn stream(&self, side: Side) -> Option<&StreamPlan> {
        self.streams[side as usize].as_ref()
    }

    /// Recomputes what the generator emits for this call from the same decisions.
    pub(crate) fn truth(&self) -> CallTruth {
        let codec = self.spec.codec;
        // G.722 truth is exact for streams without loss or reordering (the decoder's state
        // follows the packets it is given)
        let sample_truth = true;
        let mut audio: [Vec<(Duration, Vec<i16>)>; 2] = [Vec::new(), Vec::new()];
        let mut sent = [0u64; 2];
        let mut dups = [0u64; 2];
        let mut dtmf = None;
        let mut pcm = [0i16; SAMPLES_PER_PACKET];
        for (i, st) in self.streams.iter().enumerate() {
            let Some(st) = st else { continue };
            let wideband = (codec == Codec::G722).then(|| g722_decoded(st));
            let mut dtmf_packets = 0u64;
            for slot in 0..st.n_slots {
                let kind = st.kind(slot);
                if kind == SlotKind::Held {
                    continue;
                }
                for repeat in 0..=st.repeats(slot) {
                    let f = self.impairments.fate(st.fate_seed, slot, repeat);
                    if f.lost {
                        continue;
                    }
                    sent[i] += 1;
                    dups[i] += f.duplicate as u64;
                    if kind != SlotKind::Audio {
                        dtmf_packets += 1;
                        continue;
                    }
                    let at = Duration::from_nanos(st.nominal_ns(slot));
                    let samples = match &wideband {
                        Some(w) => w[slot as usize].clone().unwrap_or_default(),
                        None => {
                            st.signal_for(slot).samples(slot as u64 * 160, &mut pcm);
                            pcm.iter().map(|&x| decoded(codec, x)).collect()
                        }
                    };
                    audio[i].push((at, samples));
                }
            }
            if let Some(d) = st.dtmf_slot {
                dtmf = Some(DtmfTruth {
                    digit: '5',
                    at: Duration::from_nanos(st.nominal_ns(d)),
                    duration_ms: (DTMF_SLOTS as u64 * PTIME_NS / MS) as u32,
                    packets_sent: dtmf_packets,
                });
            }
        }
        let [caller_audio, agent_audio] = audio;
        let ssrcs = |s: Option<&StreamPlan>| -> Vec<u32> {
            s.map(|s| {
                s.epochs[..s.n_epochs as usize]
                    .iter()
                    .map(|e| e.ssrc)
                    .collect()
            })
            .unwrap_or_default()
        };
        CallTruth {
            index: self.index,
            sip_call_id: self.spec.sip_call_id.clone(),
            codec,
            internal: self.internal,
            invite_at: Duration::from_nanos(self.invite_ns),
            answered_at: self.answer_ns.map(Duration::from_nanos),
            ended_at: Duration::from_nanos(self.end_ns),
            caller_audio,
            agent_audio,
            sample_truth,
            caller_media: self.caller_media,
            agent_media: self.agent_media,
            rtp_packets_sent: (sent[0], sent[1]),
            rtp_duplicates: (dups[0], dups[1]),
            caller_dtmf: dtmf,
            hold: self
                .hold_ns
                .map(|(a, b)| (Duration::from_nanos(a), Duration::from_nanos(b))),
            caller_ssrc: ssrcs(self.stream(Side::Caller))
                .first()
                .copied()
                .unwrap_or(0),
            agent_ssrcs: ssrcs(self.stream(Side::Agent)),
        }
    }
}

/// A G.722 stream is encoded in slot order, like a real encoder: each packet's bytes depend
/// on everything sent before. The generator and the truth both use this.
#[derive(Clone, Debug, Default)]
pub(crate) struct G722Sequence {
    enc: callvault_codec::g722::G722Encoder,
    next_slot: u32,
    /// The last payloads encoded (reordering only swaps neighbours).
    recent: Vec<(u32, [u8; SAMPLES_PER_PACKET])>,
}

impl G722Sequence {
    /// The payload of `slot` (an audio slot of `st`).
    pub(crate) fn payload(&mut self, st: &StreamPlan, slot: u32) -> [u8; SAMPLES_PER_PACKET] {
        if let Some((_, p)) = self.recent.iter().find(|(s, _)| *s == slot) {
            return *p;
        }
        if slot < self.next_slot {
            // far behind what was encoded: start again (never happens with neighbour swaps)
            *self = G722Sequence::default();
        }
        let mut out = [0u8; SAMPLES_PER_PACKET];
        while self.next_slot <= slot {
            let s = self.next_slot;
            self.next_slot += 1;
            if st.kind(s) != SlotKind::Audio {
                continue;
            }
            out = g722_encode_slot(st, s, &mut self.enc);
            if self.recent.len() >= 8 {
                self.recent.remove(0);
            }
            self.recent.push((s, out));
        }
        out
    }
}

/// 20 ms of the stream's signal at 16 kHz (the 8 kHz signal with each sample repeated),
/// G.722-encoded.
fn g722_encode_slot(
    st: &StreamPlan,
    slot: u32,
    enc: &mut callvault_codec::g722::G722Encoder,
) -> [u8; SAMPLES_PER_PACKET] {
    let mut pcm8 = [0i16; SAMPLES_PER_PACKET];
    st.signal_for(slot)
        .samples(slot as u64 * SAMPLES_PER_PACKET as u64, &mut pcm8);
    let mut pcm16 = [0i16; 2 * SAMPLES_PER_PACKET];
    for (i, &x) in pcm8.iter().enumerate() {
        pcm16[2 * i] = x;
        pcm16[2 * i + 1] = x;
    }
    let mut out = [0u8; SAMPLES_PER_PACKET];
    enc.encode(&pcm16, &mut out);
    out
}

/// What a decoder yields for every audio slot of a G.722 stream decoded in order (the truth of
/// a stream without loss or reordering).
fn g722_decoded(st: &StreamPlan) -> Vec<Option<Vec<i16>>> {
    let mut enc = callvault_codec::g722::G722Encoder::default();
    let mut dec = callvault_codec::g722::G722Decoder::default();
    (0..st.n_slots)
        .map(|s| {
            (st.kind(s) == SlotKind::Audio).then(|| {
                let payload = g722_encode_slot(st, s, &mut enc);
                let mut out = vec![0i16; 2 * SAMPLES_PER_PACKET];
                dec.decode(&payload, &mut out);
                out
            })
        })
        .collect()
}

/// What a perfect G.711 decoder yields for linear sample `x` after encoding.
pub(crate) fn decoded(codec: Codec, x: i16) -> i16 {
    match codec {
        Codec::Pcmu => ULAW_TABLE[linear_to_ulaw(x) as usize],
        Codec::Pcma => ALAW_TABLE[linear_to_alaw(x) as usize],
        Codec::G722 => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::DEFAULT_EPOCH;

    fn plan(spec: CallSpec, index: usize) -> CallPlan {
        CallPlan::new(7, DEFAULT_EPOCH.as_nanos() as u64, index, &spec)
    }

    #[test]
    fn answered_call_has_the_full_dialog_in_order() {
        let p = plan(CallSpec::default(), 1);
        let msgs: Vec<Msg> = p.sip.iter().flat_map(|e| e.messages().to_vec()).collect();
        assert_eq!(
            msgs,
            [
                Msg::Invite,
                Msg::Trying,
                Msg::Ringing,
                Msg::Answer,
                Msg::AckAnswer,
                Msg::Bye { by_caller: true },
                Msg::ByeOk { by_caller: true }
            ]
        );
        assert!(p.sip.windows(2).all(|w| w[0].at_ns < w[1].at_ns));
        assert_eq!(p.answer_ns, Some(p.invite_ns + 2_000 * MS));
        assert_eq!(p.end_ns, p.invite_ns + 12_000 * MS);
        // 10 s of talk at 20 ms, give or take the stream's start phase.
        let n = p.stream(Side::Caller).map(|s| s.n_slots).unwrap_or(0);
        assert!((498..=500).contains(&n), "{n}");
    }

    #[test]
    fn cancel_and_busy_have_no_media() {
        for end in [CallEnd::Cancel, CallEnd::Busy] {
            let p = plan(
                CallSpec {
                    end,
                    ..CallSpec::default()
                },
                2,
            );
            assert!(p.answer_ns.is_none() && p.streams.iter().all(Option::is_none));
            let last = p.sip.last().map(|e| e.msgs[0]);
            assert_eq!(last, Some(Msg::AckFailure));
        }
    }

    #[test]
    fn internal_calls_cross_the_proxy_twice() {
        let spec = CallSpec {
            caller: "4711".into(),
            dialled: "4712".into(),
            ..CallSpec::default()
        };
        let p = plan(spec, 3);
        assert!(p.internal);
        let invites: Vec<Hop> = p
            .sip
            .iter()
            .filter(|e| e.msgs[0] == Msg::Invite)
            .map(|e| e.hop)
            .collect();
        assert_eq!(invites, [Hop::ToProxy, Hop::FromProxy]);
        let tryings = p.sip.iter().filter(|e| e.msgs[0] == Msg::Trying).count();
        assert_eq!(tryings, 1);
    }

    #[test]
    fn sequence_numbers_skip_nothing_but_hold_and_count_dtmf_repeats() {
        let spec = CallSpec {
            hold: Some((2_000, 1_000)),
            telephone_event: true,
            talk_ms: 8_000,
            ..CallSpec::default()
        };
        let p = plan(spec, 0);
        let st = p.stream(Side::Caller).expect("caller stream");
        let (a, b) = st.hold.expect("hold slots");
        assert!(
            (49..=51).contains(&(b - a)),
            "1 s of hold is ~50 slots: {}",
            b - a
        );
        let before = st.rtp_header(a - 1, 0, Codec::Pcma);
        let after = st.rtp_header(b, 0, Codec::Pcma);
        assert_eq!(after.seq, before.seq.wrapping_add(1));
        assert_eq!(
            after.timestamp,
            before.timestamp.wrapping_add((b - a + 1) * 160)
        );
        assert!(after.marker && !st.rtp_header(b + 1, 0, Codec::Pcma).marker);
        // First call wraps through 65535.
        assert_eq!(st.rtp_header(0, 0, Codec::Pcma).seq, 65_500);
        assert_eq!(st.rtp_header(36, 0, Codec::Pcma).seq, 0);

        let d = st.dtmf_slot.expect("dtmf placed");
        let first = st.rtp_header(d, 0, Codec::Pcma);
        assert!(first.marker && first.payload_type == 101);
        let end = st.rtp_header(d + 4, 2, Codec::Pcma);
        assert_eq!(end.timestamp, first.timestamp);
        assert_eq!(end.seq, first.seq.wrapping_add(6));
        let resumed = st.rtp_header(d + 5, 0, Codec::Pcma);
        assert_eq!(resumed.seq, end.seq.wrapping_add(1));
        assert_eq!(resumed.timestamp, first.timestamp.wrapping_add(800));
        assert_eq!(resumed.payload_type, 8);
    }

    #[test]
    fn ssrc_change_gives_a_new_epoch_mid_stream() {
        let spec = CallSpec {
            ssrc_change_at: Some(3_000),
            ..CallSpec::default()
        };
        let p = plan(spec, 4);
        let st = p.stream(Side::Agent).expect("agent stream");
        assert_eq!(st.n_epochs, 2);
        let s = st.epochs[1].start_slot;
        let (x, y) = (
            st.rtp_header(s - 1, 0, Codec::Pcmu),
            st.rtp_header(s, 0, Codec::Pcmu),
        );
        assert_ne!(x.ssrc, y.ssrc);
        assert!(y.marker);
        assert_eq!(y.seq, st.epochs[1].seq0);
    }

    #[test]
    fn early_media_starts_before_answer_with_ringback() {
        let spec = CallSpec {
            early_media: true,
            ..CallSpec::default()
        };
        let p = plan(spec, 5);
        let st = p.stream(Side::Agent).expect("agent stream");
        assert!(st.start_ns < p.answer_ns.unwrap_or(0));
        assert!(st.early_slots > 50);
        assert_eq!(st.signal_for(0), &Signal::Ringback);
        assert_ne!(st.signal_for(st.early_slots), &Signal::Ringback);
        let t = p.truth();
        let before = t
            .agent_audio
            .iter()
            .filter(|(at, _)| Some(*at) < t.answered_at)
            .count();
        assert_eq!(before as u32, st.early_slots);
    }

    #[test]
    fn loss_is_reflected_in_truth_and_fates_are_stable() {
        let spec = CallSpec {
            loss: 0.1,
            duplicate: 0.05,
            ..CallSpec::default()
        };
        let p = plan(spec, 6);
        let t = p.truth();
        let slots = p
            .stream(Side::Caller)
            .map(|s| s.n_slots as u64)
            .unwrap_or(0);
        let sent = t.rtp_packets_sent.0;
        assert!(sent < slots && sent > slots * 8 / 10, "{sent} of {slots}");
        assert_eq!(t.caller_audio.len() as u64, sent);
        assert!(t.rtp_duplicates.0 > 0);
        assert_eq!(t, p.truth());
        assert!(
            t.caller_audio
                .iter()
                .all(|(_, s)| s.len() == SAMPLES_PER_PACKET)
        );
    }
}
