//! The agent-to-catalogue contract: the metadata document of a recorded call, as the agent
//! writes it to `calls/<call_id>.json` in its spool and uploads it, and as the catalogue
//! checks, stores and serves it (schema in README.md, "Call metadata").
//!
//! Owns the document's types and their schema version, and the conversion from the call
//! tracker's state ([`CallRecord::new`]) and the rtp stage's streams. It is plain data: no I/O, and nothing here may
//! depend on the spool, the agent or the catalogue, which all depend on it.

mod from_calls;
mod from_media;
pub mod health;
pub mod limits;

use serde::{Deserialize, Serialize};

fn is_zero(n: &u64) -> bool {
    *n == 0
}

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
    /// The pauses: one side put the other on hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<HoldRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HoldRecord {
    /// "caller" or "organisation": who put the other on hold.
    pub by: String,
    pub started_at: String,
    /// When it was taken off hold (None: the leg ended on hold).
    pub ended_at: Option<String>,
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
    /// The message's full text as captured (at most 4 KiB; 16 KiB per call in all): what
    /// the call page shows when the message is clicked, numbers masked for roles that may
    /// not see them.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// One stream as the call's metadata lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamSummary {
    /// Who is speaking on this stream: `from_caller` (left) or `from_organisation` (right).
    pub direction: String,
    pub codec: String,
    pub decoded: bool,
    pub ssrc: String,
    pub packets: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub late: u64,
    pub events: u64,
    pub resyncs: u64,
    /// Packets of this stream another stream of the same party had already delivered: the
    /// copy of a media relay's other hop, not heard twice.
    #[serde(default)]
    pub relay_copies: u64,
    /// Interarrival jitter of its audio (RFC 3550), microseconds: its mean over the stream,
    /// and the most. Left out when zero, so a document without them reads (and compares)
    /// the same.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jitter_us: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_jitter_us: u64,
    pub first_seen: String,
    pub last_seen: String,
}

/// What a closed call's recording produced.
#[derive(Clone, Debug, Default)]
pub struct MediaSummary {
    pub streams: Vec<StreamSummary>,
    pub segments: Vec<SegmentInfo>,
    pub audio_ms: u64,
    pub write_failed: bool,
}

/// A finished segment, as listed in the call's metadata.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Path relative to the spool directory.
    pub file: String,
    pub segment_id: String,
    pub seq: u32,
    /// Start of this segment relative to the start of the call's recording.
    pub offset_ms: u64,
    pub duration_ms: u64,
    pub started_at: String,
    pub sample_rate: u32,
    /// Size of the encrypted file.
    pub bytes: u64,
    /// SHA-256 of the encrypted file, hex.
    pub sha256: String,
    pub key_id: String,
    /// False for a segment the agent closed after a crash: it ends at its last whole sealed
    /// chunk, without the final chunk (open it with `SegmentOpener::recover`).
    #[serde(default = "complete_default", skip_serializing_if = "is_complete")]
    pub complete: bool,
}

fn complete_default() -> bool {
    true
}
fn is_complete(c: &bool) -> bool {
    *c
}
