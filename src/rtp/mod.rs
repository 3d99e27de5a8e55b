//! RTP: recognising media packets and following each stream's sequence and timing.
//!
//! Owns the per-SSRC view of a stream: extended sequence numbers, duplicates, loss, the
//! payload type's codec, interarrival jitter, the copies a media relay's other hop carries, and placement: the
//! mapping of RTP timestamps to positions on the call's timeline (the anchor, set and reset
//! against capture time). It receives packets that the stream table has already matched to a
//! recorded call and answers where they go; it never decodes audio (the media stage holds
//! each stream's decoder) and never sees packets of calls out of scope.
// A parsing stage of hostile input: no unwrap, no expect, no unchecked indexing (a fuzz
// target guards each parser; README "Fuzzing").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod jitter;
pub mod relay;
pub mod sequence;
pub mod stream;

pub use jitter::Jitter;
pub use relay::{PacketPrint, RecentPackets};
pub use sequence::{SeqVerdict, SequenceTracker};
pub use stream::{Anchor, Placed, Stream, StreamStats, Window};

/// Cheap first-byte test used to route a UDP payload: RTP version 2, and not RTCP
/// (payload types 72–79 with the marker bit are RTCP packet types 200–207, RFC 5761).
#[inline]
pub fn looks_like_rtp(payload: &[u8]) -> bool {
    matches!(payload, [b0, b1, ..] if payload.len() >= 12 && b0 >> 6 == 2 && !(72..=79).contains(&(b1 & 0x7f)))
}

/// RTCP (SR, RR, SDES, BYE, APP, feedback, XR): counted, not recorded.
#[inline]
pub fn looks_like_rtcp(payload: &[u8]) -> bool {
    matches!(payload, [b0, b1, ..] if payload.len() >= 8 && b0 >> 6 == 2 && (200..=207).contains(b1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_and_rtcp_are_told_apart() {
        let mut p = [0u8; 12];
        p[0] = 0x80;
        p[1] = 0x08;
        assert!(looks_like_rtp(&p));
        assert!(!looks_like_rtcp(&p));
        p[1] = 200; // SR
        assert!(!looks_like_rtp(&p));
        assert!(looks_like_rtcp(&p));
        assert!(!looks_like_rtp(b"INVITE sip:1@x SIP/2.0"));
        assert!(!looks_like_rtp(&[0x80; 11]));
    }
}
