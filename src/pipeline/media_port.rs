//! The boundary between the call side of the pipeline and its media side.
//!
//! The call side (net, sip, calls, policy, stream table) decides which packets belong to which
//! recorded call; the media side (rtp, decode, mixer, segment writer, spool) turns them into
//! sealed segments and, when a call ends, completes and stores its metadata. The call side
//! never waits on the media side: every method hands work over and returns.

use uuid::Uuid;

use crate::calls::Call;
use crate::media::{MediaCounters, MediaPacket, MediaSlot};
use crate::record::CallRecord;
use crate::time::Timestamp;

pub trait MediaPort {
    /// Starts the recording of a call. `journal` is its metadata as known now (no end, no
    /// media), stored so that a crash leaves a call the next start can close.
    fn open(&mut self, call_id: Uuid, journal: CallRecord) -> MediaSlot;
    /// One RTP packet of a recorded call.
    fn packet(&mut self, slot: MediaSlot, packet: &MediaPacket);
    /// Capture time moved on: audio older than the playout delay is written.
    fn tick(&mut self, now: Timestamp);
    /// The call's parties hung up at `from`, though the call may go on: no silence is
    /// written past `from` (None: as before).
    fn quiet(&mut self, slot: MediaSlot, from: Option<Timestamp>);
    /// Finishes a recording: the media side fills in `record`'s streams and segments and
    /// stores it.
    fn close(&mut self, slot: MediaSlot, ended_at: Timestamp, record: CallRecord);
    /// Every call that ends, recorded or not (for `policy check`). Default: nothing.
    fn decided(&mut self, _call: &Call) {}
    /// The media side's counters, summed over its workers.
    fn counters(&self) -> MediaCounters;
}
