//! The streaming frame generator: call plans in, link-layer frames out in capture-time order.
//!
//! Owns: the schedule (a min-heap of pending work keyed by capture time across all calls),
//! call admission, per-packet impairments as the wire sees them (loss, duplicates, swaps,
//! jitter), and the bytes of every header: Ethernet/802.1Q/QinQ, Linux SLL and SLL2, IPv4
//! (checksum, ID, fragments), IPv6 (fragment header), UDP, TCP (handshake, sequence numbers,
//! coalesced and split segments) and RTP (G.711 and G.722 encodings of the signal, RFC 4733 events).
//! Receives a [`Scenario`]; emits frames one at a time into the caller's buffer.
//! Holds every call's plan (built up front: memory grows with the number of calls, not with
//! their length) and one wake-up per active stream; frames are made as they fall due, and no
//! allocation happens per frame once warmed up.
//!
//! Why a heap of "wake-ups" rather than packets: each stream keeps one wake-up at its next
//! nominal send time, and jitter only ever delays, so nothing with an earlier capture time
//! can appear after the heap's minimum is popped; frames come out in non-decreasing time.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use super::CaptureStats;
use super::plan::{CallPlan, MS, Msg, SAMPLES_PER_PACKET, Side, SlotKind, StreamPlan};
use super::scenario::{CallTruth, Codec, LinkKind, Scenario, SipTransport};
use super::signal::hash2;
use super::sip_text;
use callvault_codec::g711::{linear_to_alaw, linear_to_ulaw};
use std::time::Duration;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const IPV6_FRAGMENT: u8 = 44;
/// DSCP CS3 for signalling and EF for voice, as phones and SBCs mark them.
const TOS_SIP: u8 = 0x60;
const TOS_RTP: u8 = 0xb8;
/// Largest IP packet of a fragmented INVITE (the classic minimum reassembly size).
const FRAGMENT_IP_LIMIT: usize = 576;
const SIP_PORT: u16 = 5060;
const TCP_WINDOW: u16 = 64_240;
/// Gaps between frames that belong together.
const FRAGMENT_GAP_NS: u64 = 5_000;
const HANDSHAKE_GAP_NS: u64 = 30_000;
const DUPLICATE_GAP_NS: u64 = 40_000;
const DTMF_REPEAT_GAP_NS: u64 = 5 * MS;
/// PACKET_OTHERHOST: a mirror port sees traffic addressed to other hosts.
const SLL_OTHERHOST: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Job {
    /// Start the next call in INVITE order.
    Admit,
    /// Emit part `part` of SIP event `event` (fragments, TCP handshake steps, split segments).
    Sip { call: u32, event: u32, part: u16 },
    /// A stream reached the nominal time of `slot`: decide that packet's fate.
    Wake { call: u32, side: Side, slot: u32 },
    /// Emit one RTP packet.
    Rtp {
        call: u32,
        side: Side,
        slot: u32,
        repeat: u8,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    at: u64,
    /// Insertion order, so equal times pop first-in first-out (0 = before anything else).
    order: u64,
    job: Job,
}

impl Ord for Entry {
    // Reversed so that std's max-heap pops the earliest entry.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Pending work in capture-time order.
struct Schedule {
    heap: BinaryHeap<Entry>,
    order: u64,
    now: u64,
    peak: usize,
}

impl Schedule {
    fn push(&mut self, at: u64, job: Job) {
        self.order += 1;
        // Never schedule into the past: that is what keeps capture time non-decreasing.
        self.heap.push(Entry {
            at: at.max(self.now),
            order: self.order,
            job,
        });
        self.peak = self.peak.max(self.heap.len());
    }

    /// Runs `job` next, at the current time, before anything else due now: a TCP segment
    /// that continues a message must not let another message into the byte stream.
    fn push_next(&mut self, job: Job) {
        self.heap.push(Entry {
            at: self.now,
            order: 0,
            job,
        });
        self.peak = self.peak.max(self.heap.len());
    }

    fn rtp(&mut self, at: u64, call: u32, side: Side, slot: u32, repeat: u8, duplicate: bool) {
        self.push(
            at,
            Job::Rtp {
                call,
                side,
                slot,
                repeat,
            },
        );
        if duplicate {
            self.push(
                at + DUPLICATE_GAP_NS,
                Job::Rtp {
                    call,
                    side,
                    slot,
                    repeat,
                },
            );
        }
    }
}

/// One SIP-over-TCP connection between two hosts, shared by every call between them.
struct TcpConn {
    client: IpAddr,
    server: IpAddr,
    client_port: u16,
    /// 0 = nothing sent, 1 = SYN sent, 2 = SYN-ACK sent, 3 = established.
    state: u8,
    client_next: u32,
    server_next: u32,
}

/// G.711 encoders as 64 Ki-entry tables built from the reference encoders: one load per
/// sample instead of a dozen branches (measured ~3x faster per packet).
struct Encoders {
    ulaw: Box<[u8]>,
    alaw: Box<[u8]>,
}

fn encoders() -> &'static Encoders {
    static ENCODERS: OnceLock<Encoders> = OnceLock::new();
    ENCODERS.get_or_init(|| {
        let build = |f: fn(i16) -> u8| -> Box<[u8]> {
            (0..=u16::MAX)
                .map(|x| f(x as i16))
                .collect::<Vec<u8>>()
                .into_boxed_slice()
        };
        Encoders {
            ulaw: build(linear_to_ulaw),
            alaw: build(linear_to_alaw),
        }
    })
}

/// Streaming capture generator; see the module docs.
pub struct Generator {
    link: LinkKind,
    seed: u64,
    plans: Vec<CallPlan>,
    admit_order: Vec<u32>,
    next_admit: usize,
    schedule: Schedule,
    tcp: Vec<TcpConn>,
    ip_id: u16,
    sip_text: Vec<u8>,
    sip_body: Vec<u8>,
    datagram: Vec<u8>,
    /// G.722 encoders per (call, side), advanced in slot order.
    g722: std::collections::HashMap<(u32, u8), super::plan::G722Sequence>,
    stats: CaptureStats,
}

impl Generator {
    pub fn new(scenario: &Scenario) -> Generator {
        let epoch = scenario.epoch.as_nanos() as u64;
        let plans: Vec<CallPlan> = scenario
            .calls
            .iter()
            .enumerate()
            .map(|(i, spec)| CallPlan::new(scenario.seed, epoch, i, spec))
            .collect();
        let mut admit_order: Vec<u32> = (0..plans.len() as u32).collect();
        admit_order.sort_by_key(|&i| (plans[i as usize].invite_ns, i));
        let mut schedule = Schedule {
            heap: BinaryHeap::new(),
            order: 0,
            now: 0,
            peak: 0,
        };
        if let Some(&first) = admit_order.first() {
            schedule.push(plans[first as usize].invite_ns, Job::Admit);
        }
        Generator {
            link: scenario.link,
            seed: scenario.seed,
            plans,
            admit_order,
            next_admit: 0,
            schedule,
            tcp: Vec::new(),
            ip_id: (hash2(scenario.seed, 0x1D) >> 48) as u16,
            sip_text: Vec::with_capacity(4096),
            sip_body: Vec::with_capacity(1024),
            datagram: Vec::with_capacity(4096),
            g722: std::collections::HashMap::new(),
            stats: CaptureStats::default(),
        }
    }

    /// Writes the next frame (link layer included) into `buf` (cleared first) and returns its
    /// capture time; None when the scenario is exhausted.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Option<Duration> {
        buf.clear();
        while let Some(e) = self.schedule.heap.pop() {
            self.schedule.now = e.at;
            let emitted = match e.job {
                Job::Admit => {
                    self.admit();
                    false
                }
                Job::Wake { call, side, slot } => {
                    self.wake(call, side, slot);
                    false
                }
                Job::Rtp {
                    call,
                    side,
                    slot,
                    repeat,
                } => self.rtp_frame(call, side, slot, repeat, buf),
                Job::Sip { call, event, part } => self.sip_frame(call, event, part, buf),
            };
            if emitted {
                self.stats.frames += 1;
                self.stats.frame_bytes += buf.len() as u64;
                return Some(Duration::from_nanos(e.at));
            }
        }
        None
    }

    /// Ground truth of every call, recomputed from the same decisions the frames came from.
    pub fn truth(&self) -> Vec<CallTruth> {
        self.plans.iter().map(CallPlan::truth).collect()
    }

    /// Ground truth of call `index` of the scenario (None if out of range).
    pub fn truth_of(&self, index: usize) -> Option<CallTruth> {
        self.plans.get(index).map(CallPlan::truth)
    }

    /// Counters of what has been emitted so far (`bytes` is 0: no file is written here).
    pub fn stats(&self) -> CaptureStats {
        self.stats
    }

    pub fn link(&self) -> LinkKind {
        self.link
    }

    /// Entries waiting in the schedule now.
    pub fn pending(&self) -> usize {
        self.schedule.heap.len()
    }

    /// Most entries the schedule has ever held: the generator's memory high-water mark.
    pub fn peak_pending(&self) -> usize {
        self.schedule.peak
    }

    fn admit(&mut self) {
        let Some(&call) = self.admit_order.get(self.next_admit) else {
            return;
        };
        self.next_admit += 1;
        let plan = &self.plans[call as usize];
        if let Some(ev) = plan.sip.first() {
            self.schedule.push(
                ev.at_ns,
                Job::Sip {
                    call,
                    event: 0,
                    part: 0,
                },
            );
        }
        for side in [Side::Caller, Side::Agent] {
            if let Some(st) = plan.stream(side).filter(|s| s.n_slots > 0) {
                self.schedule.push(
                    st.start_ns,
                    Job::Wake {
                        call,
                        side,
                        slot: 0,
                    },
                );
            }
        }
        if let Some(&next) = self.admit_order.get(self.next_admit) {
            self.schedule
                .push(self.plans[next as usize].invite_ns, Job::Admit);
        }
    }

    fn wake(&mut self, call: u32, side: Side, slot: u32) {
        let plan = &self.plans[call as usize];
        let Some(st) = plan.stream(side) else { return };
        let imp = plan.impairments;
        let sched = &mut self.schedule;
        let mut s = slot;
        if let Some((a, b)) = st.hold
            && (a..b).contains(&s)
        {
            s = b;
        }
        if s >= st.n_slots {
            return;
        }
        let f = imp.fate(st.fate_seed, s, 0);
        let swap = st.kind(s) == SlotKind::Audio
            && f.reorder
            && s + 1 < st.n_slots
            && st.kind(s + 1) == SlotKind::Audio;
        let next = if swap {
            let f1 = imp.fate(st.fate_seed, s + 1, 0);
            if !f1.lost {
                sched.rtp(
                    st.nominal_ns(s) + f1.jitter_ns,
                    call,
                    side,
                    s + 1,
                    0,
                    f1.duplicate,
                );
            }
            if !f.lost {
                sched.rtp(
                    st.nominal_ns(s + 1) + f.jitter_ns,
                    call,
                    side,
                    s,
                    0,
                    f.duplicate,
                );
            }
            s + 2
        } else {
            if !f.lost {
                sched.rtp(
                    st.nominal_ns(s) + f.jitter_ns,
                    call,
                    side,
                    s,
                    0,
                    f.duplicate,
                );
            }
            for r in 1..=st.repeats(s) {
                let fr = imp.fate(st.fate_seed, s, r);
                if !fr.lost {
                    let at = st.nominal_ns(s) + r as u64 * DTMF_REPEAT_GAP_NS + fr.jitter_ns;
                    sched.rtp(at, call, side, s, r, fr.duplicate);
                }
            }
            s + 1
        };
        if next < st.n_slots {
            sched.push(
                st.nominal_ns(next),
                Job::Wake {
                    call,
                    side,
                    slot: next,
                },
            );
        }
    }

    fn rtp_frame(
        &mut self,
        call: u32,
        side: Side,
        slot: u32,
        repeat: u8,
        buf: &mut Vec<u8>,
    ) -> bool {
        let plan = &self.plans[call as usize];
        let Some(st) = plan.stream(side) else {
            return false;
        };
        let codec = plan.spec.codec;
        let kind = st.kind(slot);
        let payload_len = if matches!(kind, SlotKind::Dtmf(_)) {
            4
        } else {
            SAMPLES_PER_PACKET
        };
        let l4_len = 8 + 12 + payload_len;
        let l3 = L3 {
            src: st.src.ip(),
            dst: st.dst.ip(),
            tos: TOS_RTP,
        };
        self.ip_id = self.ip_id.wrapping_add(1);
        write_ip_start(
            buf,
            self.link,
            &plan.spec.vlan,
            &l3,
            PROTO_UDP,
            l4_len,
            self.ip_id,
        );
        let udp_at = buf.len();
        write_udp_header(buf, st.src.port(), st.dst.port(), l4_len);
        let wideband = (codec == Codec::G722 && kind == SlotKind::Audio).then(|| {
            self.g722
                .entry((call, side as u8))
                .or_default()
                .payload(st, slot)
        });
        write_rtp(buf, st, slot, repeat, codec, kind, wideband);
        if l3.src.is_ipv6() {
            finish_udp_checksum(buf, udp_at, &l3);
        }
        self.stats.rtp_packets += 1;
        true
    }

    fn sip_frame(&mut self, call: u32, event: u32, part: u16, buf: &mut Vec<u8>) -> bool {
        let plan = &self.plans[call as usize];
        let Some(ev) = plan.sip.get(event as usize).copied() else {
            return false;
        };
        let Some(&first) = ev.messages().first() else {
            return false;
        };
        let (src, dst) = plan.hop_endpoints(first, ev.hop);
        self.sip_text.clear();
        for &m in ev.messages() {
            sip_text::write_message(plan, m, ev.hop, &mut self.sip_text, &mut self.sip_body);
        }
        let vlan = &plan.spec.vlan;
        let l3 = L3 {
            src: src.ip(),
            dst: dst.ip(),
            tos: TOS_SIP,
        };
        let n_msgs = ev.messages().len() as u64;
        let mut finished = true;
        match plan.spec.transport {
            SipTransport::Udp => {
                let dlen = 8 + self.sip_text.len();
                let ip_header = if l3.src.is_ipv6() { 48 } else { 20 };
                if plan.spec.fragment_invite
                    && first == Msg::Invite
                    && dlen + ip_header > FRAGMENT_IP_LIMIT
                {
                    if part == 0 {
                        self.stats.sip_messages += n_msgs;
                    }
                    self.datagram.clear();
                    write_udp_header(&mut self.datagram, src.port(), dst.port(), dlen);
                    self.datagram.extend_from_slice(&self.sip_text);
                    if l3.src.is_ipv6() {
                        finish_udp_checksum(&mut self.datagram, 0, &l3);
                    }
                    let chunk = (FRAGMENT_IP_LIMIT - ip_header) & !7;
                    let from = part as usize * chunk;
                    let to = (from + chunk).min(dlen);
                    let more = to < dlen;
                    // The ID must be the same in every fragment although other packets go out
                    // in between, so it comes from the datagram, not from the running counter.
                    let id = hash2(plan.seed, 0xF4A6 + event as u64);
                    let frag = Fragment {
                        offset: from,
                        more,
                        v4_id: id as u16,
                        v6_id: id as u32,
                    };
                    let data = self.datagram.get(from..to).unwrap_or_default();
                    write_ip_fragment(buf, self.link, vlan, &l3, PROTO_UDP, data, frag);
                    self.stats.ip_fragments += 1;
                    if more {
                        self.schedule.push(
                            self.schedule.now + FRAGMENT_GAP_NS,
                            Job::Sip {
                                call,
                                event,
                                part: part + 1,
                            },
                        );
                        finished = false;
                    }
                } else {
                    self.ip_id = self.ip_id.wrapping_add(1);
                    write_ip_start(buf, self.link, vlan, &l3, PROTO_UDP, dlen, self.ip_id);
                    let udp_at = buf.len();
                    write_udp_header(buf, src.port(), dst.port(), dlen);
                    buf.extend_from_slice(&self.sip_text);
                    if l3.src.is_ipv6() {
                        finish_udp_checksum(buf, udp_at, &l3);
                    }
                    self.stats.sip_messages += n_msgs;
                }
            }
            SipTransport::Tcp => {
                let conn_at = match self.tcp.iter().position(|c| {
                    (c.client == l3.src && c.server == l3.dst)
                        || (c.client == l3.dst && c.server == l3.src)
                }) {
                    Some(i) => i,
                    None => {
                        let n = self.tcp.len() as u64;
                        let isn = hash2(self.seed, 0x7C9 + n);
                        self.tcp.push(TcpConn {
                            client: l3.src,
                            server: l3.dst,
                            client_port: 50_000 + (n % 10_000) as u16,
                            state: 0,
                            client_next: isn as u32,
                            server_next: (isn >> 32) as u32,
                        });
                        self.tcp.len() - 1
                    }
                };
                let conn = &mut self.tcp[conn_at];
                self.ip_id = self.ip_id.wrapping_add(1);
                let id = self.ip_id;
                if conn.state < 3 {
                    let client = SocketAddr::new(conn.client, conn.client_port);
                    let server = SocketAddr::new(conn.server, SIP_PORT);
                    let seg = match conn.state {
                        0 => Segment {
                            from: client,
                            to: server,
                            seq: conn.client_next,
                            ack: 0,
                            flags: TCP_SYN,
                        },
                        1 => Segment {
                            from: server,
                            to: client,
                            seq: conn.server_next,
                            ack: conn.client_next.wrapping_add(1),
                            flags: TCP_SYN | TCP_ACK,
                        },
                        _ => {
                            conn.client_next = conn.client_next.wrapping_add(1);
                            conn.server_next = conn.server_next.wrapping_add(1);
                            Segment {
                                from: client,
                                to: server,
                                seq: conn.client_next,
                                ack: conn.server_next,
                                flags: TCP_ACK,
                            }
                        }
                    };
                    conn.state += 1;
                    write_tcp(buf, self.link, vlan, seg, &[], id);
                    self.stats.tcp_segments += 1;
                    self.schedule.push(
                        self.schedule.now + HANDSHAKE_GAP_NS,
                        Job::Sip { call, event, part },
                    );
                    return true;
                }
                let len = self.sip_text.len();
                let cut = if ev.split { len / 2 } else { len };
                let range = if part == 0 { 0..cut } else { cut..len };
                let data = self.sip_text.get(range).unwrap_or_default();
                let from_client = l3.src == conn.client;
                let (sport, dport) = if from_client {
                    (conn.client_port, SIP_PORT)
                } else {
                    (SIP_PORT, conn.client_port)
                };
                let (next, peer) = if from_client {
                    (&mut conn.client_next, conn.server_next)
                } else {
                    (&mut conn.server_next, conn.client_next)
                };
                let seg = Segment {
                    from: SocketAddr::new(l3.src, sport),
                    to: SocketAddr::new(l3.dst, dport),
                    seq: *next,
                    ack: peer,
                    flags: TCP_PSH | TCP_ACK,
                };
                *next = next.wrapping_add(data.len() as u32);
                write_tcp(buf, self.link, vlan, seg, data, id);
                self.stats.tcp_segments += 1;
                if part == 0 {
                    self.stats.sip_messages += n_msgs;
                }
                if ev.split && part == 0 {
                    self.schedule.push_next(Job::Sip {
                        call,
                        event,
                        part: 1,
                    });
                    finished = false;
                }
            }
        }
        if finished && let Some(next) = plan.sip.get(event as usize + 1) {
            self.schedule.push(
                next.at_ns,
                Job::Sip {
                    call,
                    event: event + 1,
                    part: 0,
                },
            );
        }
        true
    }
}

/// Addresses and marking of one IP packet.
struct L3 {
    src: IpAddr,
    dst: IpAddr,
    tos: u8,
}

/// A locally administered MAC derived from the host's address, so every host is distinct.
fn mac_of(ip: IpAddr) -> [u8; 6] {
    let low = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x00, low[0], low[1], low[2], low[3]]
}

fn write_link(buf: &mut Vec<u8>, link: LinkKind, vlan: &[u16], l3: &L3) {
    let ethertype = if l3.src.is_ipv6() {
        ETHERTYPE_IPV6
    } else {
        ETHERTYPE_IPV4
    };
    let tags = &vlan[..vlan.len().min(2)];
    // Cooked captures carry VLAN tags as protocol 0x8100 followed by TCI and the next type.
    let cooked_tags = |buf: &mut Vec<u8>| {
        for (i, &vid) in tags.iter().enumerate() {
            buf.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
            let next = if i + 1 < tags.len() {
                TPID_8021Q
            } else {
                ethertype
            };
            buf.extend_from_slice(&next.to_be_bytes());
        }
    };
    let first_type = if tags.is_empty() {
        ethertype
    } else {
        TPID_8021Q
    };
    match link {
        LinkKind::Raw => {}
        LinkKind::Ethernet => {
            buf.extend_from_slice(&mac_of(l3.dst));
            buf.extend_from_slice(&mac_of(l3.src));
            for (i, &vid) in tags.iter().enumerate() {
                let tpid = if i == 0 && tags.len() == 2 {
                    TPID_8021AD
                } else {
                    TPID_8021Q
                };
                buf.extend_from_slice(&tpid.to_be_bytes());
                buf.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
            }
            buf.extend_from_slice(&ethertype.to_be_bytes());
        }
        LinkKind::LinuxSll => {
            buf.extend_from_slice(&(SLL_OTHERHOST as u16).to_be_bytes());
            buf.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
            buf.extend_from_slice(&6u16.to_be_bytes());
            buf.extend_from_slice(&mac_of(l3.src));
            buf.extend_from_slice(&[0, 0]);
            buf.extend_from_slice(&first_type.to_be_bytes());
            cooked_tags(buf);
        }
        LinkKind::LinuxSll2 => {
            buf.extend_from_slice(&first_type.to_be_bytes());
            buf.extend_from_slice(&[0, 0]);
            buf.extend_from_slice(&1u32.to_be_bytes()); // interface index
            buf.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
            buf.push(SLL_OTHERHOST);
            buf.push(6);
            buf.extend_from_slice(&mac_of(l3.src));
            buf.extend_from_slice(&[0, 0]);
            cooked_tags(buf);
        }
    }
}

/// Internet checksum accumulation over big-endian 16-bit words.
fn sum_words(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u64) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn pseudo_header_sum(l3: &L3, proto: u8, len: usize) -> u64 {
    let mut acc = 0u64;
    match (l3.src, l3.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum_words(&s.octets(), acc);
            acc = sum_words(&d.octets(), acc);
        }
        (s, d) => {
            acc = sum_words(&v6_octets(s), acc);
            acc = sum_words(&v6_octets(d), acc);
        }
    }
    acc + proto as u64 + (len as u64 & 0xffff) + (len as u64 >> 16)
}

fn v6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

fn write_ipv4_header(
    buf: &mut Vec<u8>,
    l3: &L3,
    proto: u8,
    payload_len: usize,
    id: u16,
    frag: u16,
) {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (l3.src, l3.dst) else {
        return;
    };
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[1] = l3.tos;
    h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = fold(sum_words(&h, 0));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    buf.extend_from_slice(&h);
}

fn write_ipv6_header(buf: &mut Vec<u8>, l3: &L3, next: u8, payload_len: usize) {
    let mut h = [0u8; 40];
    let first = (6u32 << 28) | ((l3.tos as u32) << 20);
    h[0..4].copy_from_slice(&first.to_be_bytes());
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[6] = next;
    h[7] = 64;
    h[8..24].copy_from_slice(&v6_octets(l3.src));
    h[24..40].copy_from_slice(&v6_octets(l3.dst));
    buf.extend_from_slice(&h);
}

/// Link header and an unfragmented IP header for `l4_len` bytes of `proto`.
fn write_ip_start(
    buf: &mut Vec<u8>,
    link: LinkKind,
    vlan: &[u16],
    l3: &L3,
    proto: u8,
    l4_len: usize,
    id: u16,
) {
    write_link(buf, link, vlan, l3);
    if l3.src.is_ipv6() {
        write_ipv6_header(buf, l3, proto, l4_len);
    } else {
        write_ipv4_header(buf, l3, proto, l4_len, id, 0);
    }
}

/// Where a fragment sits in its datagram.
struct Fragment {
    offset: usize,
    more: bool,
    /// IPv4 identification.
    v4_id: u16,
    /// IPv6 identification (fragment header).
    v6_id: u32,
}

fn write_ip_fragment(
    buf: &mut Vec<u8>,
    link: LinkKind,
    vlan: &[u16],
    l3: &L3,
    proto: u8,
    data: &[u8],
    frag: Fragment,
) {
    write_link(buf, link, vlan, l3);
    if l3.src.is_ipv6() {
        write_ipv6_header(buf, l3, IPV6_FRAGMENT, 8 + data.len());
        let off = ((frag.offset / 8) as u16) << 3 | frag.more as u16;
        buf.extend_from_slice(&[proto, 0]);
        buf.extend_from_slice(&off.to_be_bytes());
        buf.extend_from_slice(&frag.v6_id.to_be_bytes());
    } else {
        let bits = ((frag.offset / 8) as u16 & 0x1fff) | if frag.more { 0x2000 } else { 0 };
        write_ipv4_header(buf, l3, proto, data.len(), frag.v4_id, bits);
    }
    buf.extend_from_slice(data);
}

fn write_udp_header(buf: &mut Vec<u8>, sport: u16, dport: u16, len: usize) {
    buf.extend_from_slice(&sport.to_be_bytes());
    buf.extend_from_slice(&dport.to_be_bytes());
    buf.extend_from_slice(&(len as u16).to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
}

/// Fills the checksum of the UDP datagram starting at `at` and running to the buffer's end
/// (mandatory for IPv6; left 0 for IPv4 as RFC 768 allows).
fn finish_udp_checksum(buf: &mut [u8], at: usize, l3: &L3) {
    let Some(dgram) = buf.get(at..) else { return };
    let c = fold(sum_words(
        dgram,
        pseudo_header_sum(l3, PROTO_UDP, dgram.len()),
    ));
    let c = if c == 0 { 0xffff } else { c };
    if let Some(field) = buf.get_mut(at + 6..at + 8) {
        field.copy_from_slice(&c.to_be_bytes());
    }
}

const TCP_SYN: u8 = 0x02;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;

#[derive(Clone, Copy)]
struct Segment {
    from: SocketAddr,
    to: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
}

fn write_tcp(buf: &mut Vec<u8>, link: LinkKind, vlan: &[u16], seg: Segment, data: &[u8], id: u16) {
    let l3 = L3 {
        src: seg.from.ip(),
        dst: seg.to.ip(),
        tos: TOS_SIP,
    };
    let syn = seg.flags & TCP_SYN != 0;
    let hlen = if syn { 24 } else { 20 };
    write_ip_start(buf, link, vlan, &l3, PROTO_TCP, hlen + data.len(), id);
    let at = buf.len();
    let mut h = [0u8; 24];
    h[0..2].copy_from_slice(&seg.from.port().to_be_bytes());
    h[2..4].copy_from_slice(&seg.to.port().to_be_bytes());
    h[4..8].copy_from_slice(&seg.seq.to_be_bytes());
    h[8..12].copy_from_slice(&seg.ack.to_be_bytes());
    h[12] = ((hlen / 4) as u8) << 4;
    h[13] = seg.flags;
    h[14..16].copy_from_slice(&TCP_WINDOW.to_be_bytes());
    if syn {
        // MSS 1460.
        h[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
    }
    buf.extend_from_slice(&h[..hlen]);
    buf.extend_from_slice(data);
    let Some(seg_bytes) = buf.get(at..) else {
        return;
    };
    let c = fold(sum_words(
        seg_bytes,
        pseudo_header_sum(&l3, PROTO_TCP, seg_bytes.len()),
    ));
    if let Some(field) = buf.get_mut(at + 16..at + 18) {
        field.copy_from_slice(&c.to_be_bytes());
    }
}

fn write_rtp(
    buf: &mut Vec<u8>,
    st: &StreamPlan,
    slot: u32,
    repeat: u8,
    codec: Codec,
    kind: SlotKind,
    wideband: Option<[u8; SAMPLES_PER_PACKET]>,
) {
    let pcm = &mut [0i16; SAMPLES_PER_PACKET];
    let h = st.rtp_header(slot, repeat, codec);
    buf.push(0x80);
    buf.push(((h.marker as u8) << 7) | h.payload_type);
    buf.extend_from_slice(&h.seq.to_be_bytes());
    buf.extend_from_slice(&h.timestamp.to_be_bytes());
    buf.extend_from_slice(&h.ssrc.to_be_bytes());
    match kind {
        SlotKind::Dtmf(i) => {
            let end = i + 1 == super::plan::DTMF_SLOTS;
            let duration = ((i + 1) * SAMPLES_PER_PACKET as u32) as u16;
            buf.push(super::plan::DTMF_EVENT);
            buf.push(((end as u8) << 7) | 10); // E bit, volume -10 dBm0
            buf.extend_from_slice(&duration.to_be_bytes());
        }
        _ => {
            let start = buf.len();
            buf.resize(start + SAMPLES_PER_PACKET, 0);
            let payload = &mut buf[start..];
            match codec {
                Codec::Pcmu | Codec::Pcma => {
                    st.signal_for(slot)
                        .samples(slot as u64 * SAMPLES_PER_PACKET as u64, pcm);
                    let enc = encoders();
                    let table = if codec == Codec::Pcmu {
                        &enc.ulaw
                    } else {
                        &enc.alaw
                    };
                    for (o, &x) in payload.iter_mut().zip(pcm.iter()) {
                        *o = table.get(x as u16 as usize).copied().unwrap_or(0);
                    }
                }
                Codec::G722 => {
                    if let Some(w) = wideband {
                        payload.copy_from_slice(&w);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Hop, decoded};
    use crate::scenario::{CallEnd, CallSpec, Signal};
    use callvault_codec::g711::{ALAW_TABLE, ULAW_TABLE};

    /// The parts of a frame the tests look at.
    #[derive(Debug, Default)]
    struct Parsed {
        src: Option<SocketAddr>,
        dst: Option<SocketAddr>,
        proto: u8,
        vlans: Vec<u16>,
        /// IPv4 or IPv6 fragment: (id, offset, more).
        fragment: Option<(u32, usize, bool)>,
        ip_checksum_ok: bool,
        l4: Vec<u8>,
        ip_src: Option<IpAddr>,
        ip_dst: Option<IpAddr>,
    }

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// A strict little parser for the generator's own frames (tests only).
    fn parse(link: LinkKind, f: &[u8]) -> Parsed {
        let mut p = Parsed::default();
        let (mut at, mut ty) = match link {
            LinkKind::Ethernet => (14, be16(f, 12)),
            LinkKind::LinuxSll => (16, be16(f, 14)),
            LinkKind::LinuxSll2 => (20, be16(f, 0)),
            LinkKind::Raw => (
                0,
                if f[0] >> 4 == 6 {
                    ETHERTYPE_IPV6
                } else {
                    ETHERTYPE_IPV4
                },
            ),
        };
        while ty == TPID_8021Q || ty == TPID_8021AD {
            p.vlans.push(be16(f, at) & 0x0fff);
            ty = be16(f, at + 2);
            at += 4;
        }
        // Ethernet tags sit before the final ethertype.
        if link == LinkKind::Ethernet && !p.vlans.is_empty() {
            p.vlans.clear();
            let mut a = 12;
            while be16(f, a) == TPID_8021Q || be16(f, a) == TPID_8021AD {
                p.vlans.push(be16(f, a + 2) & 0x0fff);
                a += 4;
            }
            at = a + 2;
            ty = be16(f, a);
        }
        let ip = &f[at..];
        if ty == ETHERTYPE_IPV4 {
            let ihl = (ip[0] & 0x0f) as usize * 4;
            let total = be16(ip, 2) as usize;
            p.ip_checksum_ok = fold(sum_words(&ip[..ihl], 0)) == 0;
            let frag = be16(ip, 6);
            if frag & 0x3fff != 0 {
                p.fragment = Some((
                    be16(ip, 4) as u32,
                    (frag & 0x1fff) as usize * 8,
                    frag & 0x2000 != 0,
                ));
            }
            p.proto = ip[9];
            let s = IpAddr::from([ip[12], ip[13], ip[14], ip[15]]);
            let d = IpAddr::from([ip[16], ip[17], ip[18], ip[19]]);
            p.ip_src = Some(s);
            p.ip_dst = Some(d);
            p.l4 = ip[ihl..total].to_vec();
        } else {
            let plen = be16(ip, 4) as usize;
            let mut next = ip[6];
            let s: [u8; 16] = ip[8..24].try_into().unwrap_or_default();
            let d: [u8; 16] = ip[24..40].try_into().unwrap_or_default();
            p.ip_src = Some(IpAddr::from(s));
            p.ip_dst = Some(IpAddr::from(d));
            p.ip_checksum_ok = true;
            let mut l4 = &ip[40..40 + plen];
            if next == IPV6_FRAGMENT {
                let off = be16(l4, 2);
                let id = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
                p.fragment = Some((id, (off >> 3) as usize * 8, off & 1 != 0));
                next = l4[0];
                l4 = &l4[8..];
            }
            p.proto = next;
            p.l4 = l4.to_vec();
        }
        if p.fragment.is_none_or(|(_, off, _)| off == 0) && p.l4.len() >= 4 {
            let (sp, dp) = (be16(&p.l4, 0), be16(&p.l4, 2));
            p.src = p.ip_src.map(|i| SocketAddr::new(i, sp));
            p.dst = p.ip_dst.map(|i| SocketAddr::new(i, dp));
        }
        p
    }

    fn frames(s: &Scenario) -> (Generator, Vec<(Duration, Vec<u8>)>) {
        let mut g = Generator::new(s);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(t) = g.next_frame(&mut buf) {
            out.push((t, buf.clone()));
        }
        (g, out)
    }

    fn one_call(spec: CallSpec) -> Scenario {
        Scenario::new(5, vec![spec])
    }

    #[test]
    fn rtp_audio_decodes_to_the_truth_bit_exactly() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let spec = CallSpec {
                codec,
                talk_ms: 2_000,
                loss: 0.05,
                reorder: 0.05,
                jitter_ms: 30,
                caller_signal: Signal::Speechlike { seed: 4 },
                ..CallSpec::default()
            };
            let s = one_call(spec);
            let (g, fr) = frames(&s);
            let t = &g.truth()[0];
            let table = if codec == Codec::Pcmu {
                &ULAW_TABLE
            } else {
                &ALAW_TABLE
            };
            // Map RTP timestamp back to play-out order: the truth is in slot order, so sort
            // the captured packets by sequence number (with wrap) and compare one by one.
            let mut caller: Vec<(u16, Vec<i16>)> = Vec::new();
            for (_, f) in &fr {
                let p = parse(s.link, f);
                if p.proto == PROTO_UDP && p.src == Some(t.caller_media) {
                    let rtp = &p.l4[8..];
                    assert_eq!(rtp[0], 0x80);
                    assert_eq!(rtp[1] & 0x7f, codec.payload_type());
                    assert_eq!(rtp.len(), 12 + 160);
                    let pcm = rtp[12..].iter().map(|&b| table[b as usize]).collect();
                    caller.push((be16(rtp, 2), pcm));
                }
            }
            let base = caller[0].0;
            caller.sort_by_key(|(seq, _)| seq.wrapping_sub(base).wrapping_add(1000));
            assert_eq!(caller.len(), t.caller_audio.len());
            for ((_, got), (_, want)) in caller.iter().zip(&t.caller_audio) {
                assert_eq!(got, want);
            }
            // The truth really is encode-then-decode of the source.
            let mut src = [0i16; 160];
            Signal::Speechlike { seed: 4 }.samples(0, &mut src);
            let first_slot_truth: Vec<i16> = src.iter().map(|&x| decoded(codec, x)).collect();
            if t.caller_audio[0].0.as_nanos() as u64
                == g.plans[0].streams[0].as_ref().map_or(0, |s| s.start_ns)
            {
                assert_eq!(t.caller_audio[0].1, first_slot_truth);
            }
        }
    }

    #[test]
    fn frames_are_well_formed_on_every_link_with_vlans() {
        for link in [
            LinkKind::Ethernet,
            LinkKind::LinuxSll,
            LinkKind::LinuxSll2,
            LinkKind::Raw,
        ] {
            for vlan in [vec![], vec![100], vec![200, 300]] {
                for ipv6 in [false, true] {
                    let spec = CallSpec {
                        vlan: vlan.clone(),
                        ipv6,
                        talk_ms: 200,
                        ..CallSpec::default()
                    };
                    let mut s = one_call(spec);
                    s.link = link;
                    let (g, fr) = frames(&s);
                    let t = &g.truth()[0];
                    let mut rtp = (0u64, 0u64);
                    for (_, f) in &fr {
                        let p = parse(link, f);
                        assert!(p.ip_checksum_ok);
                        assert_eq!(p.ip_src.is_some_and(|i| i.is_ipv6()), ipv6);
                        if link != LinkKind::Raw {
                            assert_eq!(p.vlans, vlan, "{link:?}");
                        }
                        if p.proto == PROTO_UDP && ipv6 {
                            let l3 = L3 {
                                src: p.ip_src.unwrap_or(IpAddr::from([0u8; 4])),
                                dst: p.ip_dst.unwrap_or(IpAddr::from([0u8; 4])),
                                tos: 0,
                            };
                            assert_eq!(
                                fold(sum_words(
                                    &p.l4,
                                    pseudo_header_sum(&l3, PROTO_UDP, p.l4.len())
                                )),
                                0
                            );
                        }
                        if p.src == Some(t.caller_media) {
                            rtp.0 += 1;
                        } else if p.src == Some(t.agent_media) {
                            rtp.1 += 1;
                        }
                    }
                    assert_eq!(rtp, t.rtp_packets_sent);
                }
            }
        }
    }

    #[test]
    fn fragmented_invite_reassembles_to_the_original_datagram() {
        // Many calls starting together, some proxied (two fragmented hops), so fragments of
        // different datagrams and other calls' packets interleave.
        let calls: Vec<CallSpec> = (0..24)
            .map(|k| CallSpec {
                sip_call_id: format!("frag-{k}"),
                caller: if k % 3 == 0 {
                    format!("{}", 4000 + k)
                } else {
                    "+447700900111".into()
                },
                start_ms: k as u64 * 7,
                ring_ms: 300,
                early_media: true,
                fragment_invite: true,
                ipv6: k % 2 == 1,
                talk_ms: 200,
                ..CallSpec::default()
            })
            .collect();
        let s = Scenario::new(11, calls);
        let (g, fr) = frames(&s);
        // (source, id) -> fragments in capture order.
        let mut datagrams: std::collections::BTreeMap<(String, u32), Vec<Parsed>> =
            Default::default();
        for (_, f) in &fr {
            let p = parse(s.link, f);
            if let Some((id, _, _)) = p.fragment {
                let key = (format!("{:?}", p.ip_src), id);
                datagrams.entry(key).or_default().push(p);
            }
        }
        let hops: usize = g.plans.iter().map(|p| if p.internal { 2 } else { 1 }).sum();
        assert_eq!(
            datagrams.len(),
            hops,
            "one fragmented datagram per INVITE hop"
        );
        let mut expected: Vec<Vec<u8>> = Vec::new();
        for plan in &g.plans {
            let hops: &[Hop] = if plan.internal {
                &[Hop::ToProxy, Hop::FromProxy]
            } else {
                &[Hop::Direct]
            };
            for &hop in hops {
                let mut text = Vec::new();
                sip_text::write_message(plan, Msg::Invite, hop, &mut text, &mut Vec::new());
                expected.push(text);
            }
        }
        for frags in datagrams.values() {
            assert!(frags.len() >= 2, "INVITE not fragmented");
            let mut whole = Vec::new();
            for (n, p) in frags.iter().enumerate() {
                let (_, off, more) = p.fragment.unwrap_or_default();
                assert_eq!(off, whole.len(), "fragments out of order or with gaps");
                assert_eq!(more, n + 1 < frags.len());
                let v6 = p.ip_src.is_some_and(|i| i.is_ipv6());
                assert!(p.l4.len() + if v6 { 48 } else { 20 } <= FRAGMENT_IP_LIMIT);
                whole.extend_from_slice(&p.l4);
            }
            assert_eq!(be16(&whole, 4) as usize, whole.len());
            let payload = &whole[8..];
            assert!(
                expected.iter().any(|e| e[..] == *payload),
                "reassembly differs"
            );
        }
    }

    #[test]
    fn sip_over_tcp_is_one_stream_with_exact_sequence_numbers() {
        let calls: Vec<CallSpec> = (0..4)
            .map(|k| CallSpec {
                sip_call_id: format!("tcp-{k}"),
                start_ms: k * 300,
                transport: SipTransport::Tcp,
                talk_ms: 500,
                ..CallSpec::default()
            })
            .collect();
        let s = Scenario::new(3, calls);
        let (g, fr) = frames(&s);
        // Reassemble each direction by sequence number and check it is exactly the SIP text.
        let mut syns = 0;
        let mut streams: std::collections::HashMap<(SocketAddr, SocketAddr), (u32, Vec<u8>)> =
            Default::default();
        let mut segments_with_two = 0;
        let mut split_invites = 0;
        for (_, f) in &fr {
            let p = parse(s.link, f);
            if p.proto != PROTO_TCP {
                continue;
            }
            let tcp = &p.l4;
            let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
            let hlen = (tcp[12] >> 4) as usize * 4;
            let data = &tcp[hlen..];
            let l3 = L3 {
                src: p.ip_src.unwrap_or(IpAddr::from([0u8; 4])),
                dst: p.ip_dst.unwrap_or(IpAddr::from([0u8; 4])),
                tos: 0,
            };
            assert_eq!(
                fold(sum_words(tcp, pseudo_header_sum(&l3, PROTO_TCP, tcp.len()))),
                0
            );
            let key = (
                p.src.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                p.dst.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            );
            if tcp[13] & TCP_SYN != 0 {
                syns += 1;
                streams.insert(key, (seq.wrapping_add(1), Vec::new()));
                continue;
            }
            let e = streams
                .get_mut(&key)
                .expect("data on a connection without SYN");
            assert_eq!(seq, e.0, "gap or overlap in TCP sequence");
            e.0 = seq.wrapping_add(data.len() as u32);
            e.1.extend_from_slice(data);
            let text = String::from_utf8_lossy(data);
            if text.matches("SIP/2.0 1").count() == 2 {
                segments_with_two += 1;
            }
            if text.starts_with("INVITE ") && !text.contains("\r\n\r\nv=0") {
                split_invites += 1;
            }
        }
        assert_eq!(syns, 2, "one connection: SYN and SYN-ACK");
        assert!(segments_with_two >= 1 && split_invites >= 1);
        let total: usize = streams.values().map(|(_, d)| d.len()).sum();
        let text: String = streams
            .values()
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
            .collect();
        assert_eq!(text.matches("INVITE sip:").count(), 4);
        assert_eq!(
            text.matches("\r\nCSeq: ").count() as u64,
            g.stats().sip_messages
        );
        assert!(total > 4 * 1000);
    }

    #[test]
    fn captures_come_out_in_time_order_despite_jitter_and_swaps() {
        let mut s = Scenario::contact_centre_mix(12, 1_500, 77);
        for c in &mut s.calls {
            c.jitter_ms = 60;
            c.reorder = 0.1;
            c.duplicate = 0.05;
            c.loss = 0.02;
        }
        s.calls[3].telephone_event = true;
        s.calls[3].talk_ms = 3_000;
        let (g, fr) = frames(&s);
        assert!(fr.windows(2).all(|w| w[0].0 <= w[1].0));
        let truth = g.truth();
        let dups: u64 = truth
            .iter()
            .map(|t| t.rtp_duplicates.0 + t.rtp_duplicates.1)
            .sum();
        let sent: u64 = truth
            .iter()
            .map(|t| t.rtp_packets_sent.0 + t.rtp_packets_sent.1)
            .sum();
        assert_eq!(g.stats().rtp_packets, sent + dups);
        let dtmf = truth[3].caller_dtmf.as_ref().expect("dtmf truth");
        let events = fr
            .iter()
            .map(|(_, f)| parse(s.link, f))
            .filter(|p| {
                p.src == Some(truth[3].caller_media) && p.l4.get(9).map(|b| b & 0x7f) == Some(101)
            })
            .count() as u64;
        assert!(events >= dtmf.packets_sent && dtmf.packets_sent >= 5);
    }

    #[test]
    fn g722_and_unanswered_calls() {
        let calls = vec![
            CallSpec {
                codec: Codec::G722,
                talk_ms: 400,
                ..CallSpec::default()
            },
            CallSpec {
                sip_call_id: "c2".into(),
                end: CallEnd::Cancel,
                ..CallSpec::default()
            },
            CallSpec {
                sip_call_id: "c3".into(),
                end: CallEnd::Busy,
                early_media: true,
                ..CallSpec::default()
            },
        ];
        let s = Scenario::new(9, calls);
        let (g, fr) = frames(&s);
        let t = g.truth();
        assert!(t[0].sample_truth && t[0].caller_audio.iter().all(|(_, v)| v.len() == 320));
        assert_eq!(t[0].caller_audio.len() as u64, t[0].rtp_packets_sent.0);
        let g722: Vec<Vec<u8>> = fr
            .iter()
            .map(|(_, f)| parse(s.link, f))
            .filter(|p| p.src == Some(t[0].caller_media))
            .filter(|p| p.l4.len() == 8 + 12 + 160 && p.l4[9] & 0x7f == 9)
            .map(|p| p.l4[20..].to_vec())
            .collect();
        assert_eq!(g722.len() as u64, t[0].rtp_packets_sent.0);
        // a real G.722 stream: decoded in order it gives exactly the truth's samples
        let mut dec = callvault_codec::g722::G722Decoder::default();
        for (payload, (_, want)) in g722.iter().zip(&t[0].caller_audio) {
            let mut out = [0i16; 320];
            dec.decode(payload, &mut out);
            assert_eq!(&out[..], &want[..]);
        }
        assert_eq!(t[1].answered_at, None);
        assert_eq!(t[1].rtp_packets_sent, (0, 0));
        // Busy with early media: ringback from the agent side until the 486.
        assert_eq!(t[2].answered_at, None);
        assert!(t[2].agent_audio.len() > 50 && t[2].caller_audio.is_empty());
    }

    #[test]
    fn degenerate_specs_still_make_a_consistent_capture() {
        let odd = [
            CallSpec {
                ring_ms: 0,
                talk_ms: 0,
                ..CallSpec::default()
            },
            CallSpec {
                hold: Some((5_000, 99_999)),
                talk_ms: 1_000,
                ..CallSpec::default()
            },
            CallSpec {
                hold: Some((0, 500)),
                ssrc_change_at: Some(u64::MAX),
                ..CallSpec::default()
            },
            CallSpec {
                telephone_event: true,
                talk_ms: 30,
                jitter_ms: 1_000,
                ..CallSpec::default()
            },
            CallSpec {
                vlan: vec![1, 2, 3],
                caller: String::new(),
                dialled: String::new(),
                ..CallSpec::default()
            },
            CallSpec {
                loss: 1.0,
                duplicate: f32::NAN,
                reorder: 2.0,
                talk_ms: 500,
                ..CallSpec::default()
            },
            CallSpec {
                start_ms: u64::MAX,
                talk_ms: 40,
                ..CallSpec::default()
            },
        ];
        let s = Scenario::new(1, odd.to_vec());
        let (g, fr) = frames(&s);
        assert!(fr.windows(2).all(|w| w[0].0 <= w[1].0));
        let truth = g.truth();
        let mut per_src: std::collections::HashMap<SocketAddr, u64> = Default::default();
        for (_, f) in &fr {
            let p = parse(s.link, f);
            if p.proto == PROTO_UDP && p.src.is_some_and(|a| a.port() != SIP_PORT) {
                *per_src
                    .entry(p.src.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))))
                    .or_default() += 1;
            }
        }
        for t in &truth {
            let got = per_src.get(&t.caller_media).copied().unwrap_or(0);
            assert_eq!(
                got,
                t.rtp_packets_sent.0 + t.rtp_duplicates.0,
                "{}",
                t.index
            );
        }
        assert_eq!(truth[5].rtp_packets_sent, (0, 0));
        assert!(
            truth[3].caller_dtmf.is_none(),
            "no room for 100 ms of DTMF in 30 ms"
        );
    }

    #[test]
    fn memory_stays_bounded_by_concurrent_calls() {
        let s = Scenario::contact_centre_mix(200, 10_000, 1);
        let mut g = Generator::new(&s);
        let mut buf = Vec::new();
        let mut n = 0u64;
        while g.next_frame(&mut buf).is_some() {
            n += 1;
        }
        assert!(n > 200 * 2 * 490, "{n} frames");
        // Per call: one SIP event, two stream wake-ups, a packet or two in flight per stream.
        assert!(g.peak_pending() <= 8 * 200 + 8, "peak {}", g.peak_pending());
        assert_eq!(g.pending(), 0);
    }
}
