//! The agent's health report: what an admin's operations page shows of each recording
//! server (`PUT /api/v1/agent/health`, every [`REPORT_EVERY`]).
//!
//! Owns the report's types and its bounds. Plain data like the call document: the live
//! calls it lists carry no audio and no numbers (an admin sees that a call is being recorded,
//! for which service, since when; never who is on it).

use serde::{Deserialize, Serialize};

use super::limits::{MAX_TEXT, OutOfBounds};

/// How often a running agent reports.
pub const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// Live calls one report lists (an agent records a few thousand at most).
pub const MAX_LIVE_CALLS: usize = 20_000;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentHealth {
    /// The agent's `callvault` version.
    pub version: String,
    pub uptime_seconds: u64,
    /// What stops recording now, in words (None: recording is possible).
    pub problem: Option<String>,
    /// New calls are not recorded: the spool disk is below `agent.min_free_mb`.
    pub recording_paused: bool,
    /// Calls in the spool waiting for the catalogue.
    pub outbox_calls: u64,
    /// Calls the catalogue refused, set aside in the spool.
    pub rejected_calls: u64,
    pub spool_free_bytes: u64,
    /// Packets lost inside the recording server since it started: the kernel's ring, the
    /// capture and HEP queues, the media workers' queue.
    pub drops: u64,
    /// RTP packets that came too late for the jitter buffer.
    pub late_packets: u64,
    /// Calls the agent follows now, and of them those it records.
    pub active_calls: u64,
    pub recording_calls: u64,
    /// The calls being recorded now.
    pub live: Vec<LiveCall>,
}

/// A call being recorded now.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LiveCall {
    pub call_id: String,
    pub service: Option<String>,
    /// RFC 3339, capture time.
    pub started: String,
    pub legs: u32,
    pub answered: bool,
}

impl AgentHealth {
    /// Holds a report to its bounds (it comes from the network).
    pub fn check(&self) -> Result<(), OutOfBounds> {
        if self.live.len() > MAX_LIVE_CALLS {
            return Err(OutOfBounds(format!(
                "{} live calls listed (at most {MAX_LIVE_CALLS})",
                self.live.len()
            )));
        }
        let texts = [Some(&self.version), self.problem.as_ref()];
        let live = self
            .live
            .iter()
            .flat_map(|c| [Some(&c.call_id), c.service.as_ref(), Some(&c.started)].into_iter());
        if texts
            .into_iter()
            .chain(live)
            .flatten()
            .any(|t| t.len() > MAX_TEXT)
        {
            return Err(OutOfBounds(format!(
                "a text field is longer than {MAX_TEXT} bytes"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_out_of_bounds_are_refused() {
        let mut h = AgentHealth {
            version: "1".into(),
            ..Default::default()
        };
        assert!(h.check().is_ok());
        h.live.push(LiveCall {
            service: Some("x".repeat(MAX_TEXT + 1)),
            ..Default::default()
        });
        assert!(h.check().is_err());
        h.live = vec![LiveCall::default(); MAX_LIVE_CALLS + 1];
        assert!(h.check().is_err());
    }
}
