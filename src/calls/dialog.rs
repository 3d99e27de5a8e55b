//! The dialog state machine of one leg (RFC 3261 §§12–15, RFC 3515 for refer progress).
//!
//! How in-dialog messages move a leg from Calling through Early and Confirmed to Terminated:
//! a provisional response with a To tag makes it early, a 2xx to the initial INVITE confirms
//! it, a final failure ends it (401/407 excepted: the caller retries with credentials), CANCEL
//! ends an unanswered leg, BYE ends any (except the BYE releasing another fork of the same
//! Call-ID). Responses also say who the organisation's party is (Contact, P-Asserted-Identity)
//! and NOTIFYs of a refer subscription how a transfer went. This module owns only the leg's
//! own state; joining legs into calls, scope and REFER bookkeeping are the tracker's and
//! [`super::transfer`]'s, and media addresses are the tracker's too.

use super::leg::{Leg, LegState};
use crate::session::Side;
use crate::sip::{HeaderName, Message, Method};
use crate::time::Timestamp;

/// What an in-dialog message did to its leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogStep {
    /// The dialog goes on.
    Continues,
    /// A re-INVITE (hold, resume, a media move).
    ReInvite,
    /// A CANCEL; `ended` when it came before the answer (the attempt is over).
    Cancel { ended: bool },
    /// The leg is over: a BYE, or a final failure response to its INVITE.
    Ended,
}

impl DialogStep {
    pub fn ended(self) -> bool {
        matches!(self, DialogStep::Ended | DialogStep::Cancel { ended: true })
    }
}

impl Leg {
    /// A request inside this leg's dialog, other than REFER (see [`super::transfer`]).
    pub fn on_request(&mut self, time: Timestamp, msg: &Message<'_>) -> DialogStep {
        let from_tag = msg.from().and_then(|f| f.tag().map(str::to_owned));
        let to_tag = msg.to().and_then(|t| t.tag().map(str::to_owned));
        match msg.method() {
            Some(Method::Invite) => {
                if to_tag.is_some() {
                    return DialogStep::ReInvite;
                }
                if let Some(c) = msg.cseq() {
                    // auth retry of the initial INVITE: later responses answer this CSeq
                    self.invite_cseq = self.invite_cseq.max(c.seq);
                }
                DialogStep::Continues
            }
            Some(Method::Notify) => {
                // a refer subscription reports the transfer's progress as a sipfrag
                let is_refer = msg
                    .header(HeaderName::Event)
                    .is_some_and(|e| e.trim_start().to_ascii_lowercase().starts_with("refer"));
                if is_refer
                    && let Some(status) = sipfrag_status(msg.body())
                    && let Some(note) = self.transfers.last_mut()
                {
                    note.status = Some(status);
                }
                DialogStep::Continues
            }
            Some(Method::Bye)
                if self.b_tag.is_some()
                    && ![from_tag.as_deref(), to_tag.as_deref()]
                        .contains(&self.b_tag.as_deref()) =>
            {
                // the BYE of another dialog on this Call-ID (a second fork that answered
                // too, and is being released): not the conversation's end
                DialogStep::Continues
            }
            Some(Method::Bye) => {
                let reason = match self.side_of(self.sender_of_request(from_tag.as_deref())) {
                    Side::Caller => "caller_hangup",
                    Side::Organisation => "organisation_hangup",
                };
                self.end(time, reason);
                DialogStep::Ended
            }
            Some(Method::Cancel) => {
                let ended = self.answered_at.is_none();
                if ended {
                    self.cancelled = true;
                    self.end(time, "cancelled");
                }
                DialogStep::Cancel { ended }
            }
            _ => DialogStep::Continues,
        }
    }

    /// A response inside this leg's dialog.
    pub fn on_response(&mut self, time: Timestamp, status: u16, msg: &Message<'_>) -> DialogStep {
        let from_tag = msg.from().and_then(|f| f.tag().map(str::to_owned));
        // who the organisation's party is (for recognising its consultation calls)
        if (100..300).contains(&status)
            && self.side_of(self.sender_of_response(from_tag.as_deref())) == Side::Organisation
        {
            for user in msg
                .contact()
                .and_then(|c| c.uri.user_unescaped_opt())
                .into_iter()
                .chain(
                    msg.p_asserted_identity()
                        .iter()
                        .filter_map(|p| p.uri.user_unescaped_opt()),
                )
            {
                self.note_org_identity(&user);
            }
        }
        let cseq = msg.cseq();
        let answers_invite = cseq
            .as_ref()
            .is_some_and(|c| matches!(c.method, Method::Invite) && c.seq == self.invite_cseq);
        if !answers_invite || self.answered_at.is_some() {
            return DialogStep::Continues;
        }
        let to_tag = msg.to().and_then(|t| t.tag().map(str::to_owned));
        match status {
            101..=199 if to_tag.is_some() && self.state == LegState::Calling => {
                self.state = LegState::Early;
            }
            200..=299 => {
                self.state = LegState::Confirmed;
                self.answered_at = Some(time);
                self.b_tag = to_tag;
            }
            401 | 407 => {}
            300..=699 => {
                let reason = if self.cancelled || status == 487 {
                    "cancelled".to_owned()
                } else {
                    format!("rejected_{status}")
                };
                self.end(time, &reason);
                return DialogStep::Ended;
            }
            _ => {}
        }
        DialogStep::Continues
    }
}

/// Status code of a `message/sipfrag` body ("SIP/2.0 200 OK").
fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let rest = body.strip_prefix(b"SIP/2.0 ")?;
    let code = rest.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}
