//! Payload types and the codecs they name, from an SDP's `rtpmap` lines or the RFC 3551
//! static table.

use serde::Serialize;

/// What a payload type carries, as far as rendering is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecKind {
    Pcmu,
    Pcma,
    G722,
    /// RFC 4733 named events (DTMF): never rendered as speech, and the digits are not kept
    /// (callers key in card numbers).
    TelephoneEvent,
    /// RFC 3389 comfort noise: rendered as silence.
    ComfortNoise,
    /// Any other codec: recorded in metadata by name, not decoded.
    Other,
}

impl CodecKind {
    /// Classifies an SDP `rtpmap` encoding name.
    pub fn from_encoding(name: &str) -> CodecKind {
        if name.eq_ignore_ascii_case("PCMU") {
            CodecKind::Pcmu
        } else if name.eq_ignore_ascii_case("PCMA") {
            CodecKind::Pcma
        } else if name.eq_ignore_ascii_case("G722") {
            CodecKind::G722
        } else if name.eq_ignore_ascii_case("telephone-event") {
            CodecKind::TelephoneEvent
        } else if name.eq_ignore_ascii_case("CN") {
            CodecKind::ComfortNoise
        } else {
            CodecKind::Other
        }
    }

    /// Audio sample rate of the decoded output, for codecs that decode.
    pub fn sample_rate(self) -> Option<u32> {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => Some(8000),
            CodecKind::G722 => Some(16000),
            _ => None,
        }
    }

    pub fn is_audio(self) -> bool {
        self.sample_rate().is_some()
    }
}

/// A payload type's meaning, from SDP or the RFC 3551 static table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Codec {
    pub kind: CodecKind,
    /// Encoding name as the SDP wrote it ("PCMA", "G729", "opus").
    pub name: String,
    /// RTP clock rate (G.722 uses 8000 by RFC 3551 even though it samples at 16 kHz).
    pub clock_rate: u32,
}

impl Codec {
    pub fn new(name: &str, clock_rate: u32) -> Codec {
        Codec {
            kind: CodecKind::from_encoding(name),
            name: name.to_owned(),
            clock_rate: if clock_rate == 0 { 8000 } else { clock_rate },
        }
    }

    /// The RFC 3551 static payload types that a recorder may meet without an rtpmap.
    pub fn from_static(pt: u8) -> Option<Codec> {
        let (name, rate) = match pt {
            0 => ("PCMU", 8000),
            3 => ("GSM", 8000),
            4 => ("G723", 8000),
            5 => ("DVI4", 8000),
            6 => ("DVI4", 16000),
            7 => ("LPC", 8000),
            8 => ("PCMA", 8000),
            9 => ("G722", 8000),
            10 | 11 => ("L16", 44100),
            12 => ("QCELP", 8000),
            13 => ("CN", 8000),
            14 => ("MPA", 90000),
            15 => ("G728", 8000),
            16 => ("DVI4", 11025),
            17 => ("DVI4", 22050),
            18 => ("G729", 8000),
            _ => return None,
        };
        Some(Codec::new(name, rate))
    }
}

/// Payload type → codec for one media description (a handful of entries: linear search).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayloadMap {
    entries: Vec<(u8, Codec)>,
}

impl PayloadMap {
    /// At most this many payload types are kept from one SDP (hostile SDP cannot grow it).
    pub const MAX: usize = 32;

    pub fn insert(&mut self, pt: u8, codec: Codec) {
        if let Some(e) = self.entries.iter_mut().find(|(p, _)| *p == pt) {
            e.1 = codec;
        } else if self.entries.len() < Self::MAX {
            self.entries.push((pt, codec));
        }
    }

    /// The codec for `pt`: from this map, else the static table.
    pub fn lookup(&self, pt: u8) -> Option<Codec> {
        self.entries
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, c)| c.clone())
            .or_else(|| Codec::from_static(pt))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first audio codec listed (the preferred one in an offer, the chosen one in an answer).
    pub fn preferred_audio(&self) -> Option<&Codec> {
        self.entries
            .iter()
            .map(|(_, c)| c)
            .find(|c| !matches!(c.kind, CodecKind::TelephoneEvent | CodecKind::ComfortNoise))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_map_prefers_sdp_then_static_table() {
        let mut m = PayloadMap::default();
        m.insert(101, Codec::new("telephone-event", 8000));
        m.insert(0, Codec::new("PCMU", 8000));
        assert_eq!(m.lookup(101).unwrap().kind, CodecKind::TelephoneEvent);
        assert_eq!(m.lookup(8).unwrap().kind, CodecKind::Pcma);
        assert_eq!(m.lookup(18).unwrap().name, "G729");
        assert_eq!(m.lookup(18).unwrap().kind, CodecKind::Other);
        assert!(m.lookup(99).is_none());
        assert_eq!(m.preferred_audio().unwrap().kind, CodecKind::Pcmu);
    }

    #[test]
    fn map_is_bounded() {
        let mut m = PayloadMap::default();
        for pt in 0..128 {
            m.insert(pt, Codec::new("X", 8000));
        }
        assert_eq!(m.entries.len(), PayloadMap::MAX);
    }
}
