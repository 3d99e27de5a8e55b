//! What the media stage is handed for each RTP packet of a recorded call.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::session::{PayloadMap, Side};
use crate::time::Timestamp;

/// One RTP packet of a recorded call, as the stream table matched it.
#[derive(Clone, Copy, Debug)]
pub struct MediaPacket<'a> {
    /// Who is speaking.
    pub side: Side,
    /// Where the packet came from (two devices may share an SSRC; a relay's hops do).
    pub source: SocketAddr,
    /// Capture time.
    pub time: Timestamp,
    /// The RTP packet, header included.
    pub rtp: &'a [u8],
    /// Payload types to codecs, from the SDP of the leg it belongs to (shared: the agent's
    /// media workers hold it past the packet).
    pub codecs: &'a Arc<PayloadMap>,
}
