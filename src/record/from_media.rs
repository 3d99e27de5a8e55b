//! A recorded stream's figures as the metadata document lists them.

use super::StreamSummary;
use crate::rtp::Stream;
use crate::session::Side;

impl StreamSummary {
    /// The summary of `s`; `decoded` says whether its audio was rendered.
    pub fn of(s: &Stream, decoded: bool) -> StreamSummary {
        StreamSummary {
            direction: match s.side {
                Side::Caller => "from_caller".into(),
                Side::Organisation => "from_organisation".into(),
            },
            codec: if s.codec_name.is_empty() {
                "unknown".into()
            } else {
                s.codec_name.clone()
            },
            decoded,
            ssrc: format!("0x{:08X}", s.ssrc),
            packets: s.stats.packets,
            lost: s.seq.lost(),
            duplicates: s.seq.duplicates(),
            late: s.stats.late,
            events: s.stats.events,
            resyncs: s.stats.resyncs,
            relay_copies: s.stats.relay_copies,
            jitter_us: (s.jitter.mean_ms(s.clock_rate) * 1000.0) as u64,
            max_jitter_us: (s.jitter.max_ms(s.clock_rate) * 1000.0) as u64,
            first_seen: s.first_seen.rfc3339(),
            last_seen: s.last_seen.rfc3339(),
        }
    }
}
