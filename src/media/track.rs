//! One stream of a recorded call as the recording hears it: the rtp stage's view of the
//! stream (sequence, codec, timing, anchor) and the decoder its payload type calls for.

use std::net::SocketAddr;

use crate::decode::Decoder;
use crate::record::StreamSummary;
use crate::rtp::Stream;
use crate::session::{PayloadMap, Side};
use crate::time::Timestamp;

#[derive(Debug)]
pub struct Track {
    pub stream: Stream,
    /// `None` while the payload type names nothing callvault can render.
    pub decoder: Option<Decoder>,
}

impl Track {
    pub fn new(side: Side, ssrc: u32, source: SocketAddr, now: Timestamp) -> Track {
        Track {
            stream: Stream::new(side, ssrc, source, now),
            decoder: None,
        }
    }

    /// The stream of `side` with this SSRC from this source?
    #[inline]
    pub fn is(&self, side: Side, ssrc: u32, source: SocketAddr) -> bool {
        self.stream.ssrc == ssrc && self.stream.side == side && self.stream.source == source
    }

    /// Follows a change of payload type: a new kind of media gets its decoder (or none).
    pub fn follow_payload_type(&mut self, pt: u8, codecs: &PayloadMap) {
        if let Some(kind) = self.stream.follow_payload_type(pt, codecs) {
            self.decoder = Decoder::for_kind(kind);
        }
    }

    pub fn summary(&self) -> StreamSummary {
        StreamSummary::of(&self.stream, self.decoder.is_some())
    }
}
