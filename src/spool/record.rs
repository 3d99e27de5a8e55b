//! The call metadata document written to `calls/<call_id>.json` (schema in README.md).

use serde::{Deserialize, Serialize};

use crate::media::StreamSummary;
use crate::segment::SegmentInfo;

/// Version of this document's layout.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallRecord {
    pub schema: u32,
    pub call_id: String,
    pub agent: String,
    pub sip_call_ids: Vec<String>,
    /// Dialled number, E.164.
    pub dialled: Option<String>,
    /// Dialled number as the Request-URI carried it.
    pub dialled_raw: String,
    pub service: Option<String>,
    pub retention_days: Option<u32>,
    /// Calling party, E.164 when it could be read.
    pub caller: String,
    pub started_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    pub decision: DecisionRecord,
    pub legs: Vec<LegRecord>,
    /// The call's SIP messages in order (time, addresses, method or status): its ladder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signalling: Vec<SignalRecord>,
    pub streams: Vec<StreamSummary>,
    pub segments: Vec<SegmentInfo>,
    pub audio_ms: u64,
    /// True when a disk error stopped the recording early.
    pub write_failed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DecisionRecord {
    pub record: bool,
    pub reason: String,
    pub rule: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LegRecord {
    pub sip_call_id: String,
    pub from: String,
    pub to: String,
    pub dialled: String,
    pub started_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    pub joined_by: String,
    /// REFERs sent inside this leg and how they went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfers: Vec<TransferRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TransferRecord {
    pub at: String,
    pub target: String,
    pub attended: bool,
    /// Last status the transferee reported (NOTIFY sipfrag), if any.
    pub status: Option<u16>,
}

/// One SIP message of a recorded call.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignalRecord {
    pub at: String,
    /// Source and destination, `ip:port`.
    pub from: String,
    pub to: String,
    /// "INVITE + SDP", "180 (INVITE)", "200 (BYE)".
    pub message: String,
    pub sip_call_id: String,
}
