//! The call tracker's state as the metadata document: what a recorded call's legs,
//! transfers and signalling become on the wire.

use super::{
    CallRecord, DecisionRecord, HoldRecord, LegRecord, MediaSummary, SCHEMA_VERSION, SignalRecord,
    TransferRecord,
};
use crate::calls::call::SignalEvent;
use crate::calls::leg::TransferNote;
use crate::calls::{Call, Leg};
use crate::time::Timestamp;

fn rfc3339(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::rfc3339)
}

impl CallRecord {
    /// The document of `call` as recorded by `agent`, with no media yet: the journal written
    /// when its recording opens. [`CallRecord::set_media`] completes it when it closes.
    pub fn new(agent: &str, call: &Call) -> CallRecord {
        CallRecord {
            schema: SCHEMA_VERSION,
            call_id: call.call_id.to_string(),
            agent: agent.to_owned(),
            sip_call_ids: call.legs.iter().map(|l| l.sip_call_id.clone()).collect(),
            dialled: call.dialled.clone(),
            dialled_raw: call.dialled_raw.clone(),
            service: call.decision.service.clone(),
            retention_days: call.decision.retention_days,
            caller: call.caller.clone(),
            started_at: call.started_at.rfc3339(),
            answered_at: rfc3339(call.answered_at()),
            ended_at: rfc3339(call.ended_at()),
            end_reason: call.end_reason().map(str::to_owned),
            decision: DecisionRecord {
                record: call.decision.record,
                reason: call.decision.reason.clone(),
                rule: call.decision.rule.as_str().to_owned(),
            },
            legs: call.legs.iter().map(LegRecord::from).collect(),
            signalling: call.signalling.iter().map(SignalRecord::from).collect(),
            streams: Vec::new(),
            segments: Vec::new(),
            audio_ms: 0,
            write_failed: false,
        }
    }

    /// What the call's recording produced: its streams, segments and length.
    pub fn set_media(&mut self, media: MediaSummary) {
        self.streams = media.streams;
        self.segments = media.segments;
        self.audio_ms = media.audio_ms;
        self.write_failed = media.write_failed;
    }
}

impl From<&Leg> for LegRecord {
    fn from(l: &Leg) -> LegRecord {
        LegRecord {
            sip_call_id: l.sip_call_id.clone(),
            from: l.from_user.clone(),
            to: l.to_user.clone(),
            dialled: l.dialled.clone(),
            started_at: l.started_at.rfc3339(),
            answered_at: rfc3339(l.answered_at),
            ended_at: rfc3339(l.ended_at),
            end_reason: l.end_reason.clone(),
            joined_by: l.joined_by.as_str().to_owned(),
            transfers: l.transfers.iter().map(TransferRecord::from).collect(),
            holds: l
                .holds
                .iter()
                .map(|h| HoldRecord {
                    by: match h.by {
                        crate::session::Side::Caller => "caller",
                        crate::session::Side::Organisation => "organisation",
                    }
                    .to_owned(),
                    started_at: h.started_at.rfc3339(),
                    ended_at: rfc3339(h.ended_at.or(l.ended_at)),
                })
                .collect(),
        }
    }
}

impl From<&TransferNote> for TransferRecord {
    fn from(t: &TransferNote) -> TransferRecord {
        TransferRecord {
            at: t.at.rfc3339(),
            target: t.target.clone(),
            attended: t.attended,
            status: t.status,
        }
    }
}

impl From<&SignalEvent> for SignalRecord {
    fn from(e: &SignalEvent) -> SignalRecord {
        SignalRecord {
            at: e.at.rfc3339(),
            from: e.src.to_string(),
            to: e.dst.to_string(),
            message: e.message.clone(),
            sip_call_id: e.sip_call_id.clone(),
            text: e.text.clone(),
        }
    }
}
