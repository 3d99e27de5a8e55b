//! The media stage's counters (the agent sums its workers' and exports them as metrics).

use serde::Serialize;

/// Counters of the media stage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MediaCounters {
    pub rtp_packets: u64,
    pub rtp_malformed: u64,
    pub rtp_duplicates: u64,
    pub rtp_late: u64,
    /// Packets another hop of a media relay had already delivered (the same voice seen
    /// before and after an SBC): counted, not heard twice.
    pub rtp_relay_copies: u64,
    /// Packets whose timestamp put them far in the future of capture time (and whose sequence
    /// number said they were not the newest, so the stream was not re-anchored): dropped.
    pub rtp_bogus_timestamp: u64,
    pub rtp_events: u64,
    pub rtp_undecodable: u64,
    pub streams_refused: u64,
    pub resyncs: u64,
    pub rate_mismatch_packets: u64,
    /// Calls moved to a higher sample rate when a wideband stream joined.
    pub rate_changes: u64,
    pub write_errors: u64,
    /// Call metadata (journal or final document) that could not be written.
    pub metadata_errors: u64,
    pub calls_opened: u64,
    pub calls_closed: u64,
    pub segments_written: u64,
    pub audio_ms_written: u64,
}

impl MediaCounters {
    /// Adds another stage's counters (the agent sums its media workers).
    pub fn add(&mut self, other: &MediaCounters) {
        self.rtp_packets += other.rtp_packets;
        self.rtp_malformed += other.rtp_malformed;
        self.rtp_duplicates += other.rtp_duplicates;
        self.rtp_late += other.rtp_late;
        self.rtp_relay_copies += other.rtp_relay_copies;
        self.rtp_bogus_timestamp += other.rtp_bogus_timestamp;
        self.rtp_events += other.rtp_events;
        self.rtp_undecodable += other.rtp_undecodable;
        self.streams_refused += other.streams_refused;
        self.resyncs += other.resyncs;
        self.rate_mismatch_packets += other.rate_mismatch_packets;
        self.rate_changes += other.rate_changes;
        self.write_errors += other.write_errors;
        self.metadata_errors += other.metadata_errors;
        self.calls_opened += other.calls_opened;
        self.calls_closed += other.calls_closed;
        self.segments_written += other.segments_written;
        self.audio_ms_written += other.audio_ms_written;
    }
}
