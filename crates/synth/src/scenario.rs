//! What a synthetic capture contains: calls, their codecs, signals and impairments, the
//! addressing plan, and the ground truth a recorder's output is compared against.
//!
//! Owns: the public description types ([`Scenario`], [`CallSpec`] …), the fixed addressing plan
//! (below) and [`Scenario::contact_centre_mix`]. Receives nothing from the network; emits plain
//! data that `plan` turns into timings and `frames` into bytes. Must never depend on anything
//! but the scenario's own fields, so a scenario always produces the same capture.
//!
//! # Addressing plan
//!
//! | who | IPv4 | IPv6 | ports |
//! | --- | --- | --- | --- |
//! | SBC / SIP trunk | 192.0.2.10 | 2001:db8::10 | SIP 5060; media 20000 + 2·(k mod 20000) |
//! | PBX | 10.20.0.5 | 2001:db8:20::5 | SIP 5060 (media is not anchored on the PBX) |
//! | agent phone of call k | 10.20.1.(1 + k mod 200) | 2001:db8:20::1:(1 + k mod 200) | SIP 5060; media 30000 + 2·(k mod 16000) |
//! | calling phone of internal call k | 10.20.2.(1 + k mod 200) | 2001:db8:20::2:(1 + k mod 200) | SIP 5060; media 30000 + 2·(k mod 16000) |
//!
//! k is the call's index in [`Scenario::calls`]. An external call (caller not an extension) is
//! signalled SBC ↔ PBX, and its media flows SBC ↔ agent phone. An internal call (caller is an
//! extension: all digits, at most 6) is signalled calling phone → PBX → agent phone (the PBX
//! proxies with the same Call-ID and Record-Route), and its media flows phone ↔ phone.
//! SIP over TCP uses one connection per pair of SIP hosts (e.g. one SBC ↔ PBX connection shared
//! by every TCP call), opened by the first host that sends, from port 50000 + n.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::time::Duration;

/// Audio codec of a call's media.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, payload type 0.
    Pcmu,
    /// G.711 A-law, payload type 8.
    Pcma,
    /// G.722, payload type 9: the 8 kHz signal at 16 kHz (each sample repeated), encoded in
    /// slot order by the project's encoder; the truth is its decoding (320 samples a packet),
    /// exact for streams without loss or reordering.
    G722,
}

impl Codec {
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
        }
    }

    /// The rtpmap encoding name (RFC 3551).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
        }
    }
}

/// A deterministic 8 kHz source signal; see `signal.rs` for the definitions.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    Tone {
        hz: f32,
        amplitude: i16,
    },
    /// Band-limited (1–3 kHz) pseudo-random noise, independent for each seed: the best signal
    /// for checking a recording against the truth by correlation.
    Noise {
        seed: u64,
        amplitude: i16,
    },
    /// Syllable-like bursts of a harmonic series under a raised-cosine envelope, with pauses.
    Speechlike {
        seed: u64,
    },
    /// UK ringback tone with its cadence (what the PBX plays as early media).
    Ringback,
    Silence,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    Tcp,
}

/// How a call finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallEnd {
    /// Answered, then hung up with BYE by the caller side or the agent side.
    Bye { by_caller: bool },
    /// The caller cancels after `ring_ms`, before any answer: CANCEL / 200 / 487 / ACK.
    Cancel,
    /// The PBX answers the INVITE with 486 Busy Here after `ring_ms`.
    Busy,
    /// Answered; after `talk_ms` media just stops and no BYE is ever seen.
    NoBye,
}

/// One call of a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct CallSpec {
    pub sip_call_id: String,
    /// From user: an E.164 or national number for an external caller, or an extension
    /// (all digits, at most 6) for an internal call.
    pub caller: String,
    /// Request-URI and To user.
    pub dialled: String,
    /// Offset of the INVITE from the scenario epoch.
    pub start_ms: u64,
    /// INVITE → 200 OK (or → CANCEL / 486).
    pub ring_ms: u64,
    /// 200 OK → end.
    pub talk_ms: u64,
    pub codec: Codec,
    pub caller_signal: Signal,
    pub agent_signal: Signal,
    /// Probability that an RTP packet is dropped.
    pub loss: f32,
    /// Probability that an RTP packet is sent after the next one instead of before it.
    pub reorder: f32,
    /// Each RTP packet's capture time is delayed by a uniform 0..jitter_ms (RTP timestamps
    /// stay exact).
    pub jitter_ms: u32,
    /// Probability that an RTP packet is captured twice.
    pub duplicate: f32,
    pub transport: SipTransport,
    /// Fragment the INVITE at the IP layer (≤ 576-byte IP packets; IPv6 via a fragment header).
    pub fragment_invite: bool,
    pub ipv6: bool,
    /// 802.1Q tags, outermost first (two = QinQ, the outer one with TPID 0x88a8).
    pub vlan: Vec<u16>,
    pub end: CallEnd,
    /// (offset after answer, duration), both ms: the agent side holds (re-INVITE sendonly)
    /// and resumes (re-INVITE sendrecv); neither side sends RTP in between.
    pub hold: Option<(u64, u64)>,
    /// Offset after answer at which the agent stream re-anchors: new SSRC, new sequence and
    /// timestamp bases, audio continuous.
    pub ssrc_change_at: Option<u64>,
    /// 183 Session Progress with SDP, and UK ringback from the agent side until the answer.
    pub early_media: bool,
    /// An RFC 4733 digit '5' (PT 101) on the caller stream, 100 ms long, starting at the first
    /// packet at or after answer + talk_ms/2; it replaces those audio packets.
    pub telephone_event: bool,
}

impl Default for CallSpec {
    fn default() -> Self {
        CallSpec {
            sip_call_id: "synth-call@192.0.2.10".to_string(),
            caller: "+447700900123".to_string(),
            dialled: "02087483020".to_string(),
            start_ms: 0,
            ring_ms: 2_000,
            talk_ms: 10_000,
            codec: Codec::Pcma,
            caller_signal: Signal::Noise {
                seed: 1,
                amplitude: 6_000,
            },
            agent_signal: Signal::Noise {
                seed: 2,
                amplitude: 6_000,
            },
            loss: 0.0,
            reorder: 0.0,
            jitter_ms: 0,
            duplicate: 0.0,
            transport: SipTransport::Udp,
            fragment_invite: false,
            ipv6: false,
            vlan: Vec::new(),
            end: CallEnd::Bye { by_caller: true },
            hold: None,
            ssrc_change_at: None,
            early_media: false,
            telephone_event: false,
        }
    }
}

impl CallSpec {
    /// True when the caller is an extension (all digits, at most 6): the call is internal.
    pub fn is_internal(&self) -> bool {
        is_extension(&self.caller)
    }
}

/// An extension is all ASCII digits and at most 6 of them.
pub fn is_extension(number: &str) -> bool {
    !number.is_empty() && number.len() <= 6 && number.bytes().all(|b| b.is_ascii_digit())
}

/// Link-layer header of every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// LINKTYPE_ETHERNET (1), with the call's 802.1Q tags.
    Ethernet,
    /// LINKTYPE_LINUX_SLL (113); VLAN tags follow as protocol 0x8100 + TCI.
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276); VLAN tags as for SLL.
    LinuxSll2,
    /// LINKTYPE_RAW (101): the IP packet only; VLAN tags are lost.
    Raw,
}

impl LinkKind {
    pub const fn linktype(self) -> u32 {
        match self {
            LinkKind::Ethernet => 1,
            LinkKind::Raw => 101,
            LinkKind::LinuxSll => 113,
            LinkKind::LinuxSll2 => 276,
        }
    }
}

/// File format written by [`super::write_capture`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap; `nanos` selects the nanosecond magic, `big_endian` the byte order.
    Pcap { nanos: bool, big_endian: bool },
    /// pcapng with one interface at nanosecond resolution (if_tsresol = 9).
    PcapNg,
}

/// A whole synthetic capture.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub seed: u64,
    /// Time zero of every `start_ms`.
    pub epoch: Duration,
    pub calls: Vec<CallSpec>,
    pub link: LinkKind,
    pub format: CaptureFormat,
}

/// 2026-03-02T09:00:00Z, a Monday morning.
pub const DEFAULT_EPOCH: Duration = Duration::new(1_772_442_000, 0);

/// Numbers listed in config/agent.toml (Switchboard, Parking, Housing Repairs, Registrars),
/// used by [`Scenario::contact_centre_mix`] as contact-centre numbers, in the forms
/// a trunk delivers them (national and E.164).
pub const CONTACT_CENTRE_NUMBERS: [&str; 4] = [
    "02087483020",
    "+442073715678",
    "08000234499",
    "+442087532140",
];

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            seed: 1,
            epoch: DEFAULT_EPOCH,
            calls: Vec::new(),
            link: LinkKind::Ethernet,
            format: CaptureFormat::Pcap {
                nanos: false,
                big_endian: false,
            },
        }
    }
}

impl Scenario {
    pub fn new(seed: u64, calls: Vec<CallSpec>) -> Scenario {
        Scenario {
            seed,
            calls,
            ..Scenario::default()
        }
    }

    /// `n_calls` concurrent calls, starts spread over the first 5 s, ringing 1–4 s:
    /// call k with k % 4 in {0, 2} dials a contact-centre number from an external number,
    /// k % 4 == 1 direct-dials an extension's DDI (0208748 47xx) from outside, k % 4 == 3 is
    /// internal extension → extension. Even k use A-law, odd k µ-law. Signals are Noise with
    /// per-call seeds (caller `seed ⊕ 2k`, agent `seed ⊕ 2k+1`). No impairments; all BYE.
    pub fn contact_centre_mix(n_calls: usize, talk_ms: u64, seed: u64) -> Scenario {
        use super::signal::{SplitMix64, hash2};
        let calls = (0..n_calls)
            .map(|k| {
                let mut r = SplitMix64::new(hash2(seed, k as u64));
                let kk = k as u64;
                let ext = 4700 + (kk % 300);
                let (caller, dialled) = match k % 4 {
                    0 | 2 => {
                        let n = r.below(1000);
                        let caller = if r.chance(0.5) {
                            format!("+447700900{n:03}")
                        } else {
                            format!("07700900{n:03}")
                        };
                        (caller, CONTACT_CENTRE_NUMBERS[(k / 2) % 4].to_string())
                    }
                    1 => (
                        format!("+44113496{:04}", r.below(10_000)),
                        format!("0208748{ext}"),
                    ),
                    _ => (format!("{}", 5000 + kk % 1000), format!("{ext}")),
                };
                CallSpec {
                    sip_call_id: format!("{:016x}-{k}@synth.callvault", hash2(seed, kk ^ 0xca11)),
                    caller,
                    dialled,
                    start_ms: kk * 5_000 / n_calls.max(1) as u64 + r.below(50),
                    ring_ms: 1_000 + r.below(3_000),
                    talk_ms,
                    codec: if k % 2 == 0 { Codec::Pcma } else { Codec::Pcmu },
                    caller_signal: Signal::Noise {
                        seed: seed ^ (2 * kk),
                        amplitude: 6_000,
                    },
                    agent_signal: Signal::Noise {
                        seed: seed ^ (2 * kk + 1),
                        amplitude: 6_000,
                    },
                    end: CallEnd::Bye {
                        by_caller: r.chance(0.5),
                    },
                    ..CallSpec::default()
                }
            })
            .collect();
        Scenario::new(seed, calls)
    }
}

/// The SBC / SIP trunk's SIP address.
pub fn sbc_sip(ipv6: bool) -> SocketAddr {
    if ipv6 {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)),
            5060,
        )
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 5060)
    }
}

/// The PBX's SIP address.
pub fn pbx_sip(ipv6: bool) -> SocketAddr {
    if ipv6 {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, 5)),
            5060,
        )
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 20, 0, 5)), 5060)
    }
}

fn phone_ip(subnet: u8, k: usize, ipv6: bool) -> IpAddr {
    let host = 1 + (k % 200) as u8;
    if ipv6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x20,
            0,
            0,
            0,
            subnet as u16,
            host as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 20, subnet, host))
    }
}

/// SIP address of the agent phone (the called party) of call `k`.
pub fn agent_phone_sip(k: usize, ipv6: bool) -> SocketAddr {
    SocketAddr::new(phone_ip(1, k, ipv6), 5060)
}

/// SIP address of the calling phone of internal call `k`.
pub fn internal_caller_sip(k: usize, ipv6: bool) -> SocketAddr {
    SocketAddr::new(phone_ip(2, k, ipv6), 5060)
}

/// Media address of the agent side of call `k`.
pub fn agent_media(k: usize, ipv6: bool) -> SocketAddr {
    SocketAddr::new(phone_ip(1, k, ipv6), 30_000 + 2 * (k % 16_000) as u16)
}

/// Media address of the caller side of call `k`.
pub fn caller_media(k: usize, internal: bool, ipv6: bool) -> SocketAddr {
    if internal {
        SocketAddr::new(phone_ip(2, k, ipv6), 30_000 + 2 * (k % 16_000) as u16)
    } else {
        SocketAddr::new(sbc_sip(ipv6).ip(), 20_000 + 2 * (k % 20_000) as u16)
    }
}

/// The RFC 4733 event sent by a call with [`CallSpec::telephone_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtmfTruth {
    pub digit: char,
    /// Play-out time of the event's start (the RTP timestamp all its packets carry).
    pub at: Duration,
    pub duration_ms: u32,
    /// Event packets that were not lost (5 updates + 2 end retransmissions when none are).
    pub packets_sent: u64,
}

/// What a call put on the wire, for comparing with a recorder's output.
#[derive(Clone, Debug, PartialEq)]
pub struct CallTruth {
    /// Index in [`Scenario::calls`].
    pub index: usize,
    pub sip_call_id: String,
    pub codec: Codec,
    pub internal: bool,
    pub invite_at: Duration,
    /// Capture time of the (first) 200 OK to the INVITE.
    pub answered_at: Option<Duration>,
    /// BYE, CANCEL or 486 time, or when media stopped for [`CallEnd::NoBye`].
    pub ended_at: Duration,
    /// Per audio RTP packet emitted (after loss, before reordering, duplicates once): its
    /// play-out time (stream start + 20 ms × packet slot, independent of capture jitter) and
    /// the decoded samples exactly as a perfect decoder produces them (G.711: 160 at 8 kHz;
    /// G.722: 320 at 16 kHz, exact when no packet before it was lost or reordered).
    pub caller_audio: Vec<(Duration, Vec<i16>)>,
    /// As `caller_audio`; entries before `answered_at` are early media (ringback).
    pub agent_audio: Vec<(Duration, Vec<i16>)>,
    /// Always true now (kept for readers of older truths).
    pub sample_truth: bool,
    pub caller_media: SocketAddr,
    pub agent_media: SocketAddr,
    /// Unique RTP packets on the wire per direction (caller, agent), audio and RFC 4733,
    /// after loss, duplicates not counted.
    pub rtp_packets_sent: (u64, u64),
    /// Extra copies captured because of [`CallSpec::duplicate`].
    pub rtp_duplicates: (u64, u64),
    pub caller_dtmf: Option<DtmfTruth>,
    /// When both sides stopped and restarted media for hold.
    pub hold: Option<(Duration, Duration)>,
    pub caller_ssrc: u32,
    /// One SSRC, or two after [`CallSpec::ssrc_change_at`].
    pub agent_ssrcs: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_make_internal_calls() {
        assert!(is_extension("4711"));
        assert!(is_extension("123456"));
        assert!(!is_extension("1234567"));
        assert!(!is_extension("+4711"));
        assert!(!is_extension(""));
        assert!(!is_extension("07700900123"));
    }

    #[test]
    fn default_epoch_is_monday_morning() {
        // 2026-03-02T09:00:00Z
        assert_eq!(DEFAULT_EPOCH.as_secs(), 1_772_442_000);
        assert_eq!((DEFAULT_EPOCH.as_secs() / 86_400 + 4) % 7, 1, "a Monday");
        assert_eq!(DEFAULT_EPOCH.as_secs() % 86_400, 9 * 3_600, "at nine");
    }

    #[test]
    fn mix_has_the_documented_shape() {
        let s = Scenario::contact_centre_mix(8, 5_000, 9);
        assert_eq!(s.calls.len(), 8);
        let cc = s
            .calls
            .iter()
            .filter(|c| CONTACT_CENTRE_NUMBERS.contains(&c.dialled.as_str()));
        assert_eq!(cc.count(), 4);
        assert_eq!(s.calls.iter().filter(|c| c.is_internal()).count(), 2);
        assert!(s.calls[1].dialled.starts_with("0208748") && !s.calls[1].is_internal());
        assert_eq!(s.calls[0].codec, Codec::Pcma);
        assert_eq!(s.calls[1].codec, Codec::Pcmu);
        let ids: std::collections::HashSet<_> = s.calls.iter().map(|c| &c.sip_call_id).collect();
        assert_eq!(ids.len(), 8);
        assert!(
            s.calls
                .iter()
                .all(|c| c.start_ms < 5_100 && c.talk_ms == 5_000)
        );
        assert_eq!(s, Scenario::contact_centre_mix(8, 5_000, 9));
    }

    #[test]
    fn addressing_plan_keeps_calls_apart() {
        let mut seen = std::collections::HashSet::new();
        for k in 0..1000 {
            for internal in [false, true] {
                let pair = (caller_media(k, internal, false), agent_media(k, false));
                assert!(seen.insert(pair), "call {k} reuses media addresses");
            }
        }
        assert_eq!(agent_media(3, false).to_string(), "10.20.1.4:30006");
        assert_eq!(
            caller_media(3, false, false).to_string(),
            "192.0.2.10:20006"
        );
        assert_eq!(
            agent_phone_sip(3, true).to_string(),
            "[2001:db8:20::1:4]:5060"
        );
    }
}
