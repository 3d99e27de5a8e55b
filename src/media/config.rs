//! The `[media]` section of `agent.toml`: how recorded audio is placed, segmented and synced. Read and checked by `crate::config`,
//! which names the file and key of any error.

use serde::Deserialize;

/// How recorded audio is placed, segmented and synced.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSection {
    /// A segment file is closed and a new one started after this many seconds of audio.
    #[serde(default = "default_segment_seconds")]
    pub segment_seconds: u32,
    /// How long audio is held to put reordered and jittered packets in place before it is
    /// encrypted and written. Packets later than this are counted as late and dropped.
    #[serde(default = "default_playout_delay_ms")]
    pub playout_delay_ms: u32,
    /// Accept RTP from a party's SDP address even when it is sent to an address the SDP did not
    /// name (symmetric RTP latching behind NAT).
    #[serde(default = "default_true")]
    pub symmetric_rtp: bool,
    /// Sync to disk at least this often (seconds of capture time) while a segment is open.
    #[serde(default = "default_fsync_seconds")]
    pub fsync_seconds: u32,
}

impl Default for MediaSection {
    fn default() -> Self {
        MediaSection {
            segment_seconds: default_segment_seconds(),
            playout_delay_ms: default_playout_delay_ms(),
            symmetric_rtp: true,
            fsync_seconds: default_fsync_seconds(),
        }
    }
}

fn default_segment_seconds() -> u32 {
    300
}
fn default_playout_delay_ms() -> u32 {
    300
}
fn default_fsync_seconds() -> u32 {
    5
}

fn default_true() -> bool {
    true
}
