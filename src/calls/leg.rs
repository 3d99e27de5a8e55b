//! A leg: one SIP dialog (Call-ID and tags) with its offer/answer media endpoints.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::session::Side;
use crate::time::Timestamp;

/// The two ends of a dialog: A sent the initial INVITE, B answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    A,
    B,
}

impl Party {
    pub fn other(self) -> Party {
        match self {
            Party::A => Party::B,
            Party::B => Party::A,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegState {
    /// INVITE sent, no dialog yet.
    Calling,
    /// A provisional response with a To tag (ringing, early media).
    Early,
    /// 2xx received: the conversation is on.
    Confirmed,
    Terminated,
}

/// How a leg came to belong to its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinedBy {
    /// The leg that created the call.
    Initial,
    /// The agent started after the call began: only in-dialog messages were seen.
    MidCall,
    /// Created by a REFER inside one of the call's legs (blind transfer, or attended transfer
    /// completed by the transferee's INVITE).
    Refer,
    /// An INVITE with a Replaces header naming one of the call's legs (attended transfer).
    Replaces,
    /// A new dialog carrying on the media endpoint of one of the call's parties (a PBX or
    /// B2BUA leg, direct media after a transfer).
    MediaEndpoint,
    /// The agent's consultation call during a transfer, recorded only when
    /// `scope.record_consultation_calls` is on; both its parties are the organisation side.
    Consultation,
    /// The same conversation on the other side of an SBC or B2BUA that gives that side a
    /// Call-ID of its own (topology hiding): the new dialog carries the From tag and the
    /// caller of a live leg.
    B2bua,
}

impl JoinedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinedBy::Initial => "initial",
            JoinedBy::MidCall => "mid_call",
            JoinedBy::Refer => "refer",
            JoinedBy::Replaces => "replaces",
            JoinedBy::MediaEndpoint => "media_endpoint",
            JoinedBy::Consultation => "consultation",
            JoinedBy::B2bua => "b2bua",
        }
    }
}

/// A REFER seen inside a leg, and how it went (NOTIFY with a sipfrag body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferNote {
    pub at: Timestamp,
    /// User part of the Refer-To target.
    pub target: String,
    /// Refer-To carried Replaces (attended transfer).
    pub attended: bool,
    /// Last status line reported by NOTIFY (e.g. 100, 180, 200, 486).
    pub status: Option<u16>,
    /// CSeq of the REFER: a retransmission (or the copy seen on the other side of a proxy)
    /// is the same transfer.
    pub cseq: u32,
}

/// A pause in the conversation: one party put the other on hold (an SDP offer of
/// `sendonly` or `inactive`, or the old `c=0.0.0.0`), until its next offer that sends again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldNote {
    /// The side that put the other on hold.
    pub by: Side,
    pub started_at: Timestamp,
    /// None: still on hold (until the leg ends).
    pub ended_at: Option<Timestamp>,
}

/// Holds noted per leg (a call put on hold and taken off it dozens of times is rare; a
/// flood of re-INVITEs cannot grow the leg).
pub const MAX_HOLDS_PER_LEG: usize = 64;

/// One hop of a dialog's signalling path: the two addresses a SIP message travelled between
/// (in either direction). Behind a proxy or SBC one dialog crosses several hops, and each hop
/// announces its own media addresses in its own copy of the SDP (the SBC rewrites them for
/// the media relay): a forwarded offer adds the addresses of a hop, it does not move the media.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hop(IpAddr, IpAddr);

impl Hop {
    pub fn between(a: SocketAddr, b: SocketAddr) -> Hop {
        let (a, b) = (a.ip(), b.ip());
        if a <= b { Hop(a, b) } else { Hop(b, a) }
    }
}

/// Organisation identities kept per leg.
pub const MAX_ORG_IDENTITIES: usize = 8;

/// Transfer notes kept per leg.
pub const MAX_TRANSFER_NOTES: usize = 8;

/// Bound on media endpoints remembered per leg (hostile SDP cannot grow it).
pub const MAX_ENDPOINTS: usize = 16;

#[derive(Clone, Debug)]
pub struct Leg {
    pub sip_call_id: String,
    /// Request-URI user of the initial INVITE (what was dialled).
    pub dialled: String,
    pub from_user: String,
    pub to_user: String,
    /// From tag of the initial INVITE: identifies party A's requests.
    pub a_tag: String,
    /// To tag of the dialog that answered.
    pub b_tag: Option<String>,
    pub state: LegState,
    /// Which side of the recording party A is, and party B (the other one, except in a
    /// recorded consultation, where both are the organisation).
    pub a_side: Side,
    pub b_side: Side,
    pub invite_cseq: u32,
    pub joined_by: JoinedBy,
    pub started_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub end_reason: Option<String>,
    pub last_signal: Timestamp,
    /// Where each party receives media, per hop, from every SDP seen.
    pub endpoints: Vec<(SocketAddr, Party, Hop)>,
    /// A CANCEL was seen: the failure response that follows is the caller giving up.
    pub cancelled: bool,
    /// REFERs sent inside this leg.
    pub transfers: Vec<TransferNote>,
    /// Holds, in order.
    pub holds: Vec<HoldNote>,
    /// Names the organisation's party of this leg is known by (see `note_org_identity`).
    pub org_identities: Vec<String>,
    /// What the INVITE that started this leg as a call of its own carried: a REFER seen
    /// after it (out of wire order) can still claim it (see the tracker).
    pub invite: Option<Box<super::transfer::InviteEvidence>>,
}

impl Leg {
    /// The party that sent a request with this From tag.
    pub fn sender_of_request(&self, from_tag: Option<&str>) -> Party {
        match from_tag {
            Some(t) if t == self.a_tag => Party::A,
            Some(_) => Party::B,
            None => Party::A,
        }
    }

    /// The party that sent a response (From/To are those of the request it answers).
    pub fn sender_of_response(&self, from_tag: Option<&str>) -> Party {
        self.sender_of_request(from_tag).other()
    }

    pub fn side_of(&self, party: Party) -> Side {
        match party {
            Party::A => self.a_side,
            Party::B => self.b_side,
        }
    }

    /// Remembers a user name the organisation's party of this leg is known by (its Contact or
    /// P-Asserted-Identity in a response, the Referred-By of its REFER): how an agent's own
    /// internal call is recognised as a consultation.
    pub fn note_org_identity(&mut self, user: &str) {
        if !user.is_empty()
            && self.org_identities.len() < MAX_ORG_IDENTITIES
            && !self.org_identities.iter().any(|u| u == user)
        {
            self.org_identities.push(user.to_owned());
        }
    }

    /// An answered leg's new SDP offer from `by`: whether it holds the other side. A hold
    /// opens on the first such offer (the copies a proxy relays on its other hop are the same
    /// hold) and closes on `by`'s next offer that sends again.
    pub fn note_offer(&mut self, by: Side, holds: bool, at: Timestamp) {
        let open = self
            .holds
            .iter()
            .rposition(|h| h.by == by && h.ended_at.is_none());
        match (open, holds) {
            (None, true) if self.holds.len() < MAX_HOLDS_PER_LEG => self.holds.push(HoldNote {
                by,
                started_at: at,
                ended_at: None,
            }),
            (Some(i), false) => self.holds[i].ended_at = Some(at),
            _ => {}
        }
    }

    pub fn remember_endpoint(&mut self, addr: SocketAddr, party: Party, hop: Hop) {
        if let Some(e) = self.endpoints.iter_mut().find(|(a, _, _)| *a == addr) {
            e.1 = party;
            e.2 = hop;
            return;
        }
        if self.endpoints.len() >= MAX_ENDPOINTS {
            self.endpoints.remove(0);
        }
        self.endpoints.push((addr, party, hop));
    }

    pub fn end(&mut self, at: Timestamp, reason: &str) {
        if self.state != LegState::Terminated {
            self.state = LegState::Terminated;
            self.ended_at = Some(at);
            self.end_reason = Some(reason.to_owned());
        }
    }

    pub fn is_over(&self) -> bool {
        self.state == LegState::Terminated
    }
}
