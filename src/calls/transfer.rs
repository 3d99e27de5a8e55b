//! Transfers: how a new dialog is recognised as the continuation of an existing call.
//!
//! A new INVITE joins an existing call, before any scope decision is taken on it, when:
//! 1. it is the INVITE a REFER inside one of the call's legs asked for: its Replaces matches the
//!    Replaces the REFER's Refer-To carried (attended transfer), or it is sent to the Refer-To
//!    target *and* carries evidence of the transfer (Referred-By naming the transferor, the
//!    caller's number, or one of the call's media endpoints), so that somebody else dialling the
//!    same extension at the same moment is never swept into the recording;
//! 2. its Replaces header names one of the call's legs (attended transfer completed by the
//!    transfer target, or call pickup);
//! 3. its SDP offer carries on the *caller's* media endpoint while that call is alive and it
//!    still names the same caller (a PBX/B2BUA leg, direct media after a transfer); an
//!    agent's endpoint does not count, so an agent's consultation call is never pulled into
//!    the recording, and an SDP address alone (not unique behind NATs) is never enough;
//! 4. it is the same dialog on the other side of an SBC that hides its topology (Kamailio
//!    `topoh`, OpenSIPS `topology_hiding`): a new Call-ID, but the From tag of a live leg of
//!    the call (tags are chosen at random by the caller's phone, RFC 3261 19.3, and proxies
//!    pass them on) and the same caller. Neither alone is enough: a tag could be reused by a
//!    careless phone, and a caller number is shared by every line of a company; and the leg
//!    must not be answered yet (or only just): a proxy forwards a dialog before its answer.
//!
//! A joined leg inherits the call's decision: legs created by transferring an in-scope call are
//! recorded, and legs created by transferring an out-of-scope call are not, whatever they dial.
//! This module holds the pure matching rules and a REFER's bookkeeping (what it notes on its
//! leg, when it repeats a transfer already seen, how the transfers waiting for their INVITE
//! are bounded); the tracker owns the state.

use std::net::SocketAddr;
use std::time::Duration;

use super::CallKey;
use super::leg::{JoinedBy, Leg, MAX_TRANSFER_NOTES, TransferNote};
use crate::session::Side;
use crate::sip::{Message, Replaces};
use crate::time::Timestamp;

/// A REFER waits this long for the INVITE it causes (Timer B-ish: 32 s, rounded up).
pub const TRANSFER_WINDOW: Duration = Duration::from_secs(40);
/// A call's media endpoint is carried on by a new leg only while the call was active this
/// recently (a call whose BYE was lost must not capture a new call that reuses its port).
pub const MEDIA_JOIN_ACTIVITY: Duration = Duration::from_secs(10);
/// A REFER seen this soon after the INVITE it caused still links them: a HEP feed traces a
/// forwarded REFER after the messages that follow it.
pub const REORDER_WINDOW: Duration = Duration::from_secs(2);
/// Pending transfers kept at most (hostile REFER floods cannot grow the list).
pub const MAX_PENDING: usize = 4096;
/// Pending transfers kept per call.
pub const MAX_PENDING_PER_CALL: usize = 4;
/// The same Refer-To again within this long is the same transfer (the retry after a 401/407
/// challenge has a new CSeq).
const REFER_REPEAT: Duration = Duration::from_secs(5);

/// A REFER seen inside a leg, waiting for the INVITE it asks for.
#[derive(Clone, Debug)]
pub struct PendingTransfer {
    pub call: CallKey,
    pub at: Timestamp,
    /// User part of the Refer-To URI, normalised for comparison.
    pub target: String,
    /// Replaces carried in the Refer-To URI (attended transfer).
    pub replaces: Option<Replaces>,
    /// User of Referred-By (or of the REFER's From).
    pub referred_by: String,
    /// The side of the party that received the REFER: it sends (or has sent on its behalf)
    /// the new INVITE.
    pub transferee_side: Side,
}

/// What a new INVITE brings to be matched.
#[derive(Clone, Debug, Default)]
pub struct InviteEvidence {
    pub dialled: String,
    /// From tag.
    pub from_tag: Option<String>,
    pub replaces: Option<Replaces>,
    pub referred_by: Option<String>,
    /// From and P-Asserted-Identity users.
    pub callers: Vec<String>,
    pub offered_endpoints: Vec<SocketAddr>,
}

/// Digits and letters of a user part, for comparing numbers written differently.
pub fn comparable(user: &str) -> String {
    crate::policy::number::user_part(user)
        .trim_start_matches('+')
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// Two numbers that are "the same" for transfer matching: equal, or one ends with the other
/// (a PBX may add or strip a prefix: 4712 vs 02087484712).
pub fn same_number(a: &str, b: &str) -> bool {
    let (a, b) = (comparable(a), comparable(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    a == b || (a.len() >= 3 && b.ends_with(&a)) || (b.len() >= 3 && a.ends_with(&b))
}

/// The pending transfer a new INVITE completes, if any (most recent first).
/// `caller_of` gives a call's caller number, `endpoints_of` its known media endpoints.
pub fn match_pending(
    pending: &[PendingTransfer],
    invite: &InviteEvidence,
    now: Timestamp,
    caller_of: &dyn Fn(CallKey) -> Option<String>,
    endpoint_of: &dyn Fn(&SocketAddr) -> Option<CallKey>,
    same_party: &dyn Fn(&str, &str) -> bool,
) -> Option<usize> {
    pending.iter().enumerate().rev().find_map(|(i, p)| {
        if now.saturating_since(p.at) > TRANSFER_WINDOW {
            return None;
        }
        let matched = match (&invite.replaces, &p.replaces) {
            (Some(r), Some(q)) => r.call_id == q.call_id,
            (None, None) => {
                same_number(&invite.dialled, &p.target)
                    && (invite
                        .referred_by
                        .as_deref()
                        .is_some_and(|r| same_party(r, &p.referred_by))
                        || caller_of(p.call)
                            .is_some_and(|c| invite.callers.iter().any(|u| same_party(u, &c)))
                        || invite
                            .offered_endpoints
                            .iter()
                            .any(|e| endpoint_of(e) == Some(p.call)))
            }
            _ => false,
        };
        matched.then_some(i)
    })
}

/// A REFER inside `leg` of call `call`: the transfer it asks for, noted on the leg, or `None`
/// when it names no target or repeats a transfer already noted (a retransmission, the copy
/// seen on the other side of a proxy, the retry after a challenge). The REFER's sender, when
/// it is the organisation's party, is known by its Referred-By from now on.
pub fn note_refer(
    leg: &mut Leg,
    call: CallKey,
    msg: &Message<'_>,
    time: Timestamp,
) -> Option<PendingTransfer> {
    let refer_cseq = msg.cseq().map_or(0, |c| c.seq);
    let target = msg.refer_to()?;
    let user = target.uri.user_unescaped_opt();
    let repeated = leg.transfers.iter().any(|t| {
        Some(t.target.as_str()) == user.as_deref()
            && (t.cseq == refer_cseq || time.saturating_since(t.at) < REFER_REPEAT)
    });
    if repeated {
        return None;
    }
    let target_user = user.unwrap_or_default();
    let from_tag = msg.from().and_then(|f| f.tag().map(str::to_owned));
    let sender = leg.sender_of_request(from_tag.as_deref());
    let referred_by = msg
        .referred_by()
        .and_then(|r| r.uri.user_unescaped_opt())
        .or_else(|| msg.from().and_then(|f| f.uri.user_unescaped_opt()))
        .unwrap_or_default();
    if leg.side_of(sender) == Side::Organisation {
        leg.note_org_identity(&referred_by);
    }
    if leg.transfers.len() < MAX_TRANSFER_NOTES {
        leg.transfers.push(TransferNote {
            at: time,
            target: target_user.clone(),
            attended: target.uri.replaces().is_some(),
            status: None,
            cseq: refer_cseq,
        });
    }
    Some(PendingTransfer {
        call,
        at: time,
        target: target_user,
        replaces: target.uri.replaces(),
        referred_by,
        transferee_side: leg.side_of(sender.other()),
    })
}

/// Queues a transfer to wait for its INVITE, bounded per call (a REFER flood in one dialog
/// cannot push out another call's transfer: the call's own oldest goes) and overall (the
/// oldest goes).
pub fn queue(pending: &mut Vec<PendingTransfer>, transfer: PendingTransfer) {
    let call = transfer.call;
    if pending.iter().filter(|p| p.call == call).count() >= MAX_PENDING_PER_CALL {
        if let Some(i) = pending.iter().position(|p| p.call == call) {
            pending.remove(i);
        }
    } else if pending.len() >= MAX_PENDING {
        pending.remove(0);
    }
    pending.push(transfer);
}

/// How a joined leg is labelled and which side its party A is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Join {
    pub call: CallKey,
    pub by: JoinedBy,
    pub a_side: Side,
    pub b_side: Side,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(target: &str, replaces: Option<&str>) -> PendingTransfer {
        PendingTransfer {
            call: 7,
            at: Timestamp::from_millis(1_000),
            target: target.into(),
            replaces: replaces.map(|c| Replaces {
                call_id: c.into(),
                to_tag: "t".into(),
                from_tag: "f".into(),
                early_only: false,
            }),
            referred_by: "4711".into(),
            transferee_side: Side::Caller,
        }
    }

    fn none_caller(_: CallKey) -> Option<String> {
        None
    }
    fn no_endpoint(_: &SocketAddr) -> Option<CallKey> {
        None
    }
    fn exact(a: &str, b: &str) -> bool {
        comparable(a) == comparable(b)
    }

    #[test]
    fn numbers_match_across_prefixes() {
        assert!(same_number("sip:4712@pbx", "4712"));
        assert!(same_number("02087484712", "4712"));
        assert!(
            same_number("+442087483020", "02087483020")
                || same_number("442087483020", "2087483020")
        );
        assert!(!same_number("4712", "4713"));
        assert!(!same_number("", "4712"));
    }

    #[test]
    fn a_blind_transfer_needs_evidence_besides_the_target() {
        let p = [pending("4712", None)];
        let now = Timestamp::from_millis(2_000);
        let bare = InviteEvidence {
            dialled: "4712".into(),
            callers: vec!["+447700900999".into()],
            ..Default::default()
        };
        assert_eq!(
            match_pending(&p, &bare, now, &none_caller, &no_endpoint, &exact),
            None
        );
        let referred = InviteEvidence {
            referred_by: Some("sip:4711@pbx".into()),
            ..bare.clone()
        };
        assert_eq!(
            match_pending(&p, &referred, now, &none_caller, &no_endpoint, &exact),
            Some(0)
        );
        let same_caller = |_: CallKey| Some("+447700900999".to_owned());
        assert_eq!(
            match_pending(&p, &bare, now, &same_caller, &no_endpoint, &exact),
            Some(0)
        );
        let late = Timestamp::from_millis(60_000);
        assert_eq!(
            match_pending(&p, &referred, late, &none_caller, &no_endpoint, &exact),
            None
        );
    }

    #[test]
    fn an_attended_transfer_matches_on_replaces() {
        let p = [pending("4712", Some("consult@pbx"))];
        let inv = InviteEvidence {
            dialled: "4712".into(),
            replaces: Some(Replaces {
                call_id: "consult@pbx".into(),
                to_tag: "x".into(),
                from_tag: "y".into(),
                early_only: false,
            }),
            ..Default::default()
        };
        assert_eq!(
            match_pending(
                &p,
                &inv,
                Timestamp::from_millis(2_000),
                &none_caller,
                &no_endpoint,
                &exact
            ),
            Some(0)
        );
    }
}
