//! Line-tolerant SDP extractor: owns what the recorder needs from an offer or answer (origin
//! version, connection addresses, media lines with their payload types, rtpmap/fmtp, ptime,
//! direction, SRTP and rtcp-mux flags, SIPREC labels).
//!
//! Receives an SDP body (bytes); emits an owned [`Sdp`]. An unknown, malformed or non-UTF-8
//! line is skipped, never fatal: a real SDP with an odd `z=` or `m=image` line must still yield
//! its audio. Never panics, and every list and string it builds is capped.

use std::net::IpAddr;

/// At most this many `m=` sections are kept; later ones (and their attributes) are ignored.
pub const MAX_MEDIA: usize = 64;
/// Per media section: payload types, rtpmaps and fmtps kept.
pub const MAX_FORMATS: usize = 128;
const MAX_TEXT: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn from_attr(a: &str) -> Option<Direction> {
        [
            ("sendrecv", Direction::SendRecv),
            ("sendonly", Direction::SendOnly),
            ("recvonly", Direction::RecvOnly),
            ("inactive", Direction::Inactive),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(a))
        .map(|(_, d)| d)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
    Image,
    Application,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub pt: u8,
    pub encoding: String,
    pub clock_rate: u32,
    /// 1 when the rtpmap gives no channel count.
    pub channels: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    pub pt: u8,
    pub params: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: MediaKind,
    /// 0 means the stream was rejected or disabled.
    pub port: u16,
    pub port_count: u16,
    pub proto: String,
    /// Payload types in offer order; non-numeric formats (`t38`, `webrtc-datachannel`) skipped.
    pub formats: Vec<u8>,
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<Fmtp>,
    pub ptime: Option<u32>,
    pub direction: Option<Direction>,
    /// `a=crypto` present or a SAVP profile: the RTP payload cannot be decoded without keys.
    pub crypto: bool,
    pub rtcp_mux: bool,
    /// `a=label` (RFC 4574), used by SIPREC to tie a stream to a participant.
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sdp {
    /// `o=` session id and version; the version rises on every real re-offer.
    pub origin_session: Option<(u64, u64)>,
    /// Session-level `c=`.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute (`SendRecv` when absent).
    pub direction: Direction,
    pub media: Vec<Media>,
}

/// RFC 3551 static payload types: (pt, encoding, clock rate).
const STATIC_PAYLOAD_TYPES: &[(u8, &str, u32)] = &[
    (0, "PCMU", 8000),
    (3, "GSM", 8000),
    (4, "G723", 8000),
    (5, "DVI4", 8000),
    (6, "DVI4", 16000),
    (7, "LPC", 8000),
    (8, "PCMA", 8000),
    (9, "G722", 8000),
    (10, "L16", 44100),
    (11, "L16", 44100),
    (12, "QCELP", 8000),
    (13, "CN", 8000),
    (14, "MPA", 90000),
    (15, "G728", 8000),
    (16, "DVI4", 11025),
    (17, "DVI4", 22050),
    (18, "G729", 8000),
    (25, "CelB", 90000),
    (26, "JPEG", 90000),
    (28, "nv", 90000),
    (31, "H261", 90000),
    (32, "MPV", 90000),
    (33, "MP2T", 90000),
    (34, "H263", 90000),
];

/// Static RFC 3551 mapping of a payload type, if it has one.
pub fn static_payload_type(pt: u8) -> Option<(&'static str, u32)> {
    STATIC_PAYLOAD_TYPES
        .iter()
        .find(|e| e.0 == pt)
        .map(|e| (e.1, e.2))
}

impl Media {
    pub fn effective_connection(&self, sdp: &Sdp) -> Option<IpAddr> {
        self.connection.or(sdp.connection)
    }

    pub fn effective_direction(&self, sdp: &Sdp) -> Direction {
        self.direction.unwrap_or(sdp.direction)
    }

    /// RFC 2543-style hold: the connection address is 0.0.0.0 (or `::`).
    pub fn is_hold_address(&self, sdp: &Sdp) -> bool {
        self.effective_connection(sdp)
            .is_some_and(|a| a.is_unspecified())
    }

    /// Encoding name and clock rate for a payload type: the rtpmap if present, else RFC 3551.
    pub fn codec_for(&self, pt: u8) -> Option<(String, u32)> {
        if let Some(m) = self.rtpmaps.iter().find(|m| m.pt == pt) {
            return Some((m.encoding.clone(), m.clock_rate));
        }
        static_payload_type(pt).map(|(n, r)| (n.to_owned(), r))
    }

    pub fn fmtp_for(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|f| f.pt == pt)
            .map(|f| f.params.as_str())
    }

    fn new(line: &str) -> Option<Media> {
        let mut f = line.split_ascii_whitespace();
        let kind = match f.next()? {
            k if k.eq_ignore_ascii_case("audio") => MediaKind::Audio,
            k if k.eq_ignore_ascii_case("video") => MediaKind::Video,
            k if k.eq_ignore_ascii_case("image") => MediaKind::Image,
            k if k.eq_ignore_ascii_case("application") => MediaKind::Application,
            _ => MediaKind::Other,
        };
        let ports = f.next()?;
        let (port, count) = ports.split_once('/').unwrap_or((ports, "1"));
        let port = port.parse().ok()?;
        let port_count = count.parse().unwrap_or(1);
        let proto = bounded(f.next().unwrap_or(""));
        let crypto = proto.to_ascii_uppercase().contains("SAVP");
        let formats = f.filter_map(|p| p.parse().ok()).take(MAX_FORMATS).collect();
        Some(Media {
            kind,
            port,
            port_count,
            proto,
            formats,
            connection: None,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ptime: None,
            direction: None,
            crypto,
            rtcp_mux: false,
            label: None,
        })
    }

    fn apply_attribute(&mut self, name: &str, value: &str) {
        if name.eq_ignore_ascii_case("rtpmap") {
            if self.rtpmaps.len() < MAX_FORMATS
                && let Some(m) = parse_rtpmap(value)
            {
                self.rtpmaps.push(m);
            }
        } else if name.eq_ignore_ascii_case("fmtp") {
            let (pt, params) = value
                .trim()
                .split_once([' ', '\t'])
                .unwrap_or((value.trim(), ""));
            if self.fmtps.len() < MAX_FORMATS
                && let Ok(pt) = pt.parse()
            {
                self.fmtps.push(Fmtp {
                    pt,
                    params: bounded(params.trim()),
                });
            }
        } else if name.eq_ignore_ascii_case("ptime") {
            let whole = value.trim().split('.').next().unwrap_or("");
            self.ptime = whole.parse().ok().or(self.ptime);
        } else if name.eq_ignore_ascii_case("crypto") {
            self.crypto = true;
        } else if name.eq_ignore_ascii_case("rtcp-mux") {
            self.rtcp_mux = true;
        } else if name.eq_ignore_ascii_case("label") {
            self.label = Some(bounded(value.trim()));
        } else if let Some(d) = Direction::from_attr(name) {
            self.direction = Some(d);
        }
    }
}

fn parse_rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, rest) = v.trim().split_once([' ', '\t'])?;
    let mut parts = rest.trim().split('/');
    let encoding = bounded(parts.next()?.trim());
    let clock_rate = parts.next()?.trim().parse().ok()?;
    let channels = parts
        .next()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(1);
    Some(RtpMap {
        pt: pt.parse().ok()?,
        encoding,
        clock_rate,
        channels,
    })
}

/// `IN IP4 192.0.2.1/127/2` → the address; an FQDN or garbage gives `None`.
fn parse_connection(v: &str) -> Option<IpAddr> {
    let addr = v.split_ascii_whitespace().nth(2)?;
    addr.split('/').next()?.parse().ok()
}

fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("").to_owned()
}

/// Parses an SDP body, skipping anything it does not understand.
pub fn parse_sdp(body: &[u8]) -> Sdp {
    let mut sdp = Sdp::default();
    // Once MAX_MEDIA is reached, attributes of dropped sections must not land on the last kept one.
    let mut ignoring_media = false;
    for raw in body.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(raw) else {
            continue;
        };
        let line = line.trim_end_matches(['\r', ' ', '\t']);
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        let kind = kind.trim();
        if kind == "m" {
            ignoring_media = sdp.media.len() >= MAX_MEDIA;
            if !ignoring_media {
                match Media::new(value) {
                    Some(m) => sdp.media.push(m),
                    // A broken m= line must not let its attributes modify the previous section.
                    None => ignoring_media = true,
                }
            }
            continue;
        }
        if ignoring_media {
            continue;
        }
        let current = sdp.media.last_mut();
        match (kind, current) {
            ("o", None) => {
                let mut f = value.split_ascii_whitespace().skip(1);
                let id = f.next().and_then(|v| v.parse().ok());
                let ver = f.next().and_then(|v| v.parse().ok());
                if let (Some(id), Some(ver)) = (id, ver) {
                    sdp.origin_session = Some((id, ver));
                }
            }
            ("c", None) => sdp.connection = sdp.connection.or(parse_connection(value)),
            ("c", Some(m)) => m.connection = m.connection.or(parse_connection(value)),
            ("a", m) => {
                let (name, v) = value.split_once(':').unwrap_or((value, ""));
                let name = name.trim();
                match m {
                    Some(m) => m.apply_attribute(name, v),
                    None => {
                        if let Some(d) = Direction::from_attr(name) {
                            sdp.direction = d;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn two_media_lines_with_t38_image() {
        let body = b"v=0\r\no=- 123 456 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n\
m=image 49172 udptl t38\r\nc=IN IP4 10.0.0.2\r\na=T38FaxVersion:0\r\na=sendonly\r\n";
        let s = parse_sdp(body);
        assert_eq!(s.origin_session, Some((123, 456)));
        assert_eq!(s.media.len(), 2);
        let a = &s.media[0];
        assert_eq!((a.kind, a.port, a.port_count), (MediaKind::Audio, 49170, 1));
        assert_eq!(a.formats, vec![0, 8, 101]);
        assert_eq!(a.ptime, Some(20));
        assert_eq!(a.codec_for(101), Some(("telephone-event".into(), 8000)));
        assert_eq!(a.codec_for(8), Some(("PCMA".into(), 8000)));
        assert_eq!(a.codec_for(96), None);
        assert_eq!(a.fmtp_for(101), Some("0-16"));
        assert_eq!(
            a.effective_connection(&s),
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert_eq!(a.effective_direction(&s), Direction::SendRecv);
        let t = &s.media[1];
        assert_eq!((t.kind, t.proto.as_str()), (MediaKind::Image, "udptl"));
        assert!(t.formats.is_empty(), "t38 is not a payload type");
        assert_eq!(
            t.effective_connection(&s),
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))
        );
        assert_eq!(t.effective_direction(&s), Direction::SendOnly);
    }

    #[test]
    fn hold_with_sendonly_and_zero_address() {
        let body = b"v=0\no=x 1 2 IN IP4 0.0.0.0\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\na=sendonly\nm=audio 4000 RTP/AVP 0\n";
        let s = parse_sdp(body);
        let m = &s.media[0];
        assert!(m.is_hold_address(&s));
        assert_eq!(s.direction, Direction::SendOnly);
        assert_eq!(m.direction, None);
        assert_eq!(m.effective_direction(&s), Direction::SendOnly);
    }

    #[test]
    fn ipv6_connection_and_srtp() {
        let body = b"v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\nc=IN IP6 2001:db8::1\r\n\
m=audio 5004 RTP/SAVP 96\r\nc=IN IP6 ::\r\na=rtpmap:96 opus/48000/2\r\na=rtcp-mux\r\na=label:1\r\n\
m=audio 5006 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\na=INACTIVE\r\n";
        let s = parse_sdp(body);
        assert_eq!(
            s.connection,
            Some(IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap()))
        );
        let a = &s.media[0];
        assert!(a.crypto && a.rtcp_mux);
        assert!(a.is_hold_address(&s));
        assert_eq!(
            a.rtpmaps[0],
            RtpMap {
                pt: 96,
                encoding: "opus".into(),
                clock_rate: 48000,
                channels: 2
            }
        );
        assert_eq!(a.label.as_deref(), Some("1"));
        let b = &s.media[1];
        assert!(b.crypto && !b.rtcp_mux);
        assert!(!b.is_hold_address(&s));
        assert_eq!(b.effective_direction(&s), Direction::Inactive);
    }

    #[test]
    fn junk_lines_never_fail_the_body() {
        let mut body = b"v=0\nz=2882844526 -1h 2898848070 0\n\xff\xfe=\x01\ngarbage\n=\nm=\nm=audio x RTP/AVP 0\na=ptime:1\n\
m=audio 7000/2 RTP/AVP 0 xx 300 8\na=rtpmap:bad\na=rtpmap:9 G722/8000\na=ptime:20.5\n"
            .to_vec();
        let s = parse_sdp(&body);
        assert_eq!(s.media.len(), 1);
        let m = &s.media[0];
        assert_eq!((m.port, m.port_count), (7000, 2));
        assert_eq!(m.formats, vec![0, 8]);
        assert_eq!(m.ptime, Some(20));
        assert_eq!(m.rtpmaps.len(), 1);
        body.clear();
        assert_eq!(parse_sdp(&body), Sdp::default());
    }

    #[test]
    fn media_sections_are_capped() {
        let mut body = String::from("v=0\n");
        for i in 0..(MAX_MEDIA + 10) {
            body.push_str(&format!("m=audio {} RTP/AVP 0\na=label:{i}\n", 1000 + i));
        }
        let s = parse_sdp(body.as_bytes());
        assert_eq!(s.media.len(), MAX_MEDIA);
        assert_eq!(
            s.media[MAX_MEDIA - 1].label.as_deref(),
            Some(&*(MAX_MEDIA - 1).to_string())
        );
    }
}
