//! The end-of-run summary printed by `replay` (and exported as metrics by the agent).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::RouteCounters;
use crate::calls::CallCounters;
use crate::media::MediaCounters;
use crate::net::NetCounters;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub net: NetCounters,
    pub calls: CallCounters,
    pub media: MediaCounters,
    pub routes: RouteCounters,
    /// Capture time that passed (its forward moves added up; a jump it did not follow is
    /// not counted).
    #[serde(skip)]
    pub capture_span: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.net;
        let c = &self.calls;
        let m = &self.media;
        let r = &self.routes;
        writeln!(f, "packets read        {} ({} bytes)", n.frames, n.bytes)?;
        writeln!(
            f,
            "rejected frames     {} truncated, {} unsupported link, {} non-IP, {} bad IP header",
            n.truncated, n.unsupported_link, n.non_ip, n.bad_ip_header
        )?;
        writeln!(
            f,
            "SIP messages        {} parsed, {} rejected",
            r.sip_messages, r.sip_rejected
        )?;
        writeln!(
            f,
            "calls               {} seen, {} recorded, {} not recorded",
            c.calls_seen, c.calls_recorded, c.calls_not_recorded
        )?;
        for (rule, count) in &c.not_recorded_by_rule {
            writeln!(f, "  not recorded: {rule:<28} {count}")?;
        }
        if !c.legs_joined.is_empty() || c.deferred_decisions > 0 {
            let joined: Vec<String> = c
                .legs_joined
                .iter()
                .map(|(by, n)| format!("{n} {by}"))
                .collect();
            writeln!(
                f,
                "legs joined         {} ({} by a REFER seen late, {} decisions waited for a REFER)",
                if joined.is_empty() {
                    "none".to_owned()
                } else {
                    joined.join(", ")
                },
                c.late_transfers,
                c.deferred_decisions
            )?;
        }
        writeln!(
            f,
            "RTP packets         {} recorded, {} dropped out of scope, {} after call end, {} unmatched, {} RTCP",
            r.rtp_recorded, r.rtp_out_of_scope, r.rtp_after_end, r.rtp_unmatched, r.rtcp
        )?;
        writeln!(
            f,
            "RTP in recorded     {} duplicates, {} relay copies, {} late, {} DTMF events, {} undecodable",
            m.rtp_duplicates, m.rtp_relay_copies, m.rtp_late, m.rtp_events, m.rtp_undecodable
        )?;
        writeln!(
            f,
            "audio written       {:.1} s in {} segments{}",
            m.audio_ms_written as f64 / 1000.0,
            m.segments_written,
            if m.write_errors > 0 {
                format!(" ({} WRITE ERRORS)", m.write_errors)
            } else {
                String::new()
            }
        )?;
        Ok(())
    }
}
