//! A call: one conversation as the member of the public experiences it, made of one or more
//! legs, with the scope decision taken on its first leg.

use uuid::Uuid;

use super::CallKey;
use super::leg::Leg;
use crate::policy::Decision;
use crate::time::Timestamp;

#[derive(Clone, Debug)]
pub struct Call {
    pub key: CallKey,
    /// The identifier the catalogue knows the call by (UUIDv7: sortable by start time).
    pub call_id: Uuid,
    pub decision: Decision,
    /// Dialled number as E.164 when it could be read, and as seen on the wire.
    pub dialled: Option<String>,
    pub dialled_raw: String,
    /// Calling party (P-Asserted-Identity, else From), E.164 when it could be read.
    pub caller: String,
    pub legs: Vec<Leg>,
    pub started_at: Timestamp,
    pub ended: bool,
    /// The SIP messages of a recorded call, in order (at most [`MAX_SIGNALS`]): the ladder
    /// an admin reads to see why the call was recorded, and like this. Empty for calls not
    /// recorded.
    pub signalling: Vec<SignalEvent>,
}

/// Messages kept per recorded call (a long call with session timers stays well under it).
pub const MAX_SIGNALS: usize = 400;

/// One SIP message of a recorded call: when, between which addresses, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalEvent {
    pub at: Timestamp,
    pub src: std::net::SocketAddr,
    pub dst: std::net::SocketAddr,
    /// "INVITE + SDP", "180 (INVITE)", "REFER", "200 (BYE)".
    pub message: String,
    pub sip_call_id: String,
    /// The message's full text (see [`MAX_SIGNAL_TEXT`], [`SIGNAL_TEXT_BUDGET`]): empty once
    /// the call's budget is spent.
    pub text: String,
}

/// The most of one message's text kept (a SIP message with SDP is 1 to 2 KB).
pub const MAX_SIGNAL_TEXT: usize = 4096;
/// The most SIP text kept per recorded call: a plain call's ladder whole, a long one's first
/// messages (the rest keep their one-line summary). Bounds a call's memory in the agent.
pub const SIGNAL_TEXT_BUDGET: usize = 16 * 1024;

impl Call {
    pub fn record(&self) -> bool {
        self.decision.record
    }

    pub fn answered_at(&self) -> Option<Timestamp> {
        self.legs.iter().filter_map(|l| l.answered_at).min()
    }

    pub fn ended_at(&self) -> Option<Timestamp> {
        self.legs.iter().filter_map(|l| l.ended_at).max()
    }

    /// The reason the last leg ended.
    pub fn end_reason(&self) -> Option<&str> {
        self.legs
            .iter()
            .filter(|l| l.ended_at.is_some())
            .max_by_key(|l| l.ended_at)
            .and_then(|l| l.end_reason.as_deref())
    }

    /// Latest SIP activity on any leg.
    pub fn last_signal(&self) -> Timestamp {
        self.legs
            .iter()
            .map(|l| l.last_signal)
            .max()
            .unwrap_or(self.started_at)
    }

    pub fn all_legs_over(&self) -> bool {
        self.legs.iter().all(|l| l.is_over())
    }
}
