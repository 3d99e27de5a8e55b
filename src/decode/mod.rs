//! Decode: RTP payloads of recorded streams to 16-bit linear PCM.
//!
//! Owns the per-stream decoder of the codecs callvault can render (G.711 µ-law and A-law at
//! 8 kHz, G.722 at 16 kHz, implemented in the `callvault-codec` crate) and
//! the fitting of decoded samples to a call's timeline rate ([`rate`]); the naming of payload
//! types from SDP is the session's ([`crate::session::PayloadMap`]). It receives the payload
//! of a packet the policy has already accepted and emits samples into a caller-provided
//! buffer; it never allocates per packet and never guesses: a codec it cannot decode is
//! named, counted and left silent.

pub mod rate;

pub use callvault_codec::{g711, g722};

use crate::session::CodecKind;

/// Longest decoded output of one packet we accept (120 ms of G.722 at 16 kHz); longer payloads
/// are cut and counted.
pub const MAX_PACKET_SAMPLES: usize = 1920;

/// The per-stream decoder state.
#[derive(Clone, Debug)]
pub enum Decoder {
    Pcmu,
    Pcma,
    G722(Box<g722::G722Decoder>),
}

impl Decoder {
    pub fn for_kind(kind: CodecKind) -> Option<Decoder> {
        match kind {
            CodecKind::Pcmu => Some(Decoder::Pcmu),
            CodecKind::Pcma => Some(Decoder::Pcma),
            CodecKind::G722 => Some(Decoder::G722(Box::default())),
            _ => None,
        }
    }

    pub fn kind(&self) -> CodecKind {
        match self {
            Decoder::Pcmu => CodecKind::Pcmu,
            Decoder::Pcma => CodecKind::Pcma,
            Decoder::G722(_) => CodecKind::G722,
        }
    }

    pub fn sample_rate(&self) -> u32 {
        self.kind().sample_rate().unwrap_or(8000)
    }

    /// Decodes `payload` into `out`; returns the number of samples written.
    #[inline]
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        match self {
            Decoder::Pcmu => {
                let n = payload.len().min(out.len());
                g711::decode_ulaw(&payload[..n], &mut out[..n]);
                n
            }
            Decoder::Pcma => {
                let n = payload.len().min(out.len());
                g711::decode_alaw(&payload[..n], &mut out[..n]);
                n
            }
            Decoder::G722(d) => {
                let n = payload.len().min(out.len() / 2);
                d.decode(&payload[..n], out)
            }
        }
    }
}
