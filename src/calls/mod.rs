//! Calls: SIP dialogs (legs) grouped into calls as the member of the public experiences them,
//! and the scope decision of each call.
//!
//! This stage is the single owner of call state. It receives parsed SIP messages with their
//! capture time and addresses, and emits [`CallEvent`]s: start recording a call, where each
//! party of a call receives media (so the stream table can route or drop RTP), and call end.
//! It never sees RTP payloads and never starts recording a call the policy did not accept:
//! a leg that is not part of an in-scope call has `record = false` on every event.

pub mod call;
mod config;
pub mod dialog;
pub mod leg;
pub mod tracker;
pub mod transfer;

use std::net::SocketAddr;

use crate::session::{PayloadMap, Side};

pub use call::Call;
pub use config::CallsSection;
pub use leg::{Hop, JoinedBy, Leg, LegState, Party};
pub use tracker::{CallCounters, CallTracker};

/// Internal handle of a call inside one agent process (never reused).
pub type CallKey = u64;

/// What the rest of the pipeline must do after a SIP message or a tick.
#[derive(Clone, Debug, PartialEq)]
pub enum CallEvent {
    /// The call is in scope: open its recording.
    Record { call: CallKey },
    /// A party of `call` receives media at `addr` (its SDP said so). RTP sent *to* `addr` is
    /// the voice of `peer` (the other party of that leg); with symmetric RTP, RTP sent *from*
    /// `addr` is `owner`'s.
    Endpoint {
        call: CallKey,
        addr: SocketAddr,
        owner: Side,
        peer: Side,
        codecs: PayloadMap,
        record: bool,
    },
    /// A party of `call` moved its media: it no longer receives at `addr`.
    Forget { call: CallKey, addr: SocketAddr },
    /// The call is over: finish its recording (if any) and write its metadata.
    Ended { call: CallKey, record: bool },
    /// Its parties hung up at `from` but the call may still go on (a REFER traced out of
    /// order may follow): write no silence past `from`. `None`: it goes on after all.
    Quiet {
        call: CallKey,
        from: Option<crate::time::Timestamp>,
    },
    /// Call `inside` may be a B2BUA's inside leg of call `outside`: until `until`, compare
    /// their RTP, and tell the tracker ([`CallTracker::relay_proven`]) when the same packets
    /// show on both.
    RelayWatch {
        inside: CallKey,
        outside: CallKey,
        until: crate::time::Timestamp,
    },
    /// Call `from` (never recorded) turned out to be part of call `into`: its media
    /// addresses are `into`'s from now on, its parties' sides swapped if `swap_sides`.
    Merged {
        from: CallKey,
        into: CallKey,
        swap_sides: bool,
    },
}

#[cfg(test)]
mod tests;
