//! The call tracker: SIP messages in, call events out.
//!
//! Dialog rules followed (RFC 3261, 3264, 3311, 6026):
//! - an INVITE without a To tag and with a new Call-ID creates a leg and a call, decided at
//!   once by the scope policy from its Request-URI (so no packet of an out-of-scope call is ever
//!   decoded, not even early media);
//! - the same INVITE again (retransmission, or a retry after a 401/407 challenge) updates the
//!   offer; an INVITE with a To tag on a known Call-ID is a re-INVITE (hold, media move);
//! - SDP in INVITE, 18x, 2xx, ACK, PRACK, UPDATE and their answers update where the sending
//!   party receives media; `c=0.0.0.0` (old-style hold) keeps the previous address;
//! - a 2xx to the initial INVITE confirms the leg; a final failure ends it (401/407 excepted:
//!   the caller retries), CANCEL ends an unanswered leg, BYE ends any;
//! - a leg seen only from the middle (no initial INVITE) cannot be decided and is never
//!   recorded: it is tracked just enough to drop its media and count it;
//! - calls that never see a BYE end on media inactivity, an unanswered INVITE on the setup
//!   timeout, and every call at `max_call_seconds`;
//! - from a feed that does not keep wire order (HEP: a forwarded REFER is often traced after
//!   the INVITE it caused), a transferee's INVITE joined only by a REFER's target and
//!   identity, or carrying Referred-By without a REFER seen, is not decided at once: it waits
//!   (unrecorded, at most [`REORDER_WINDOW`]) for a REFER that ties it to another call, so no
//!   audio of it is written into a call it turns out not to belong to. A transfer target
//!   rings for longer than that, so waiting rarely costs audio. From such a feed too, an
//!   in-dialog request of an unknown dialog is left for the pipeline to hold (it becomes a
//!   call seen from the middle only if its INVITE does not follow), and a call whose last
//!   leg hung up ends only once the window has passed, with no silence written meanwhile:
//!   its transferor's BYE may have been traced before its REFER.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use super::CallsSection;
use super::call::Call;
use super::dialog::DialogStep;
use super::leg::{Hop, JoinedBy, Leg, LegState, Party};
use super::transfer::{
    self, InviteEvidence, Join, MEDIA_JOIN_ACTIVITY, PendingTransfer, REORDER_WINDOW,
    TRANSFER_WINDOW, comparable, match_pending,
};
use super::{CallEvent, CallKey};
use crate::entropy::Entropy;
use crate::policy::{CallParties, Decision, ScopePolicy};
use crate::session::{Codec, PayloadMap, Side};
use crate::sip::{Message, Method, Sdp};
use crate::time::Timestamp;

/// What the tracker saw and decided, for the summary and `/metrics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CallCounters {
    pub sip_requests: u64,
    pub sip_responses: u64,
    pub without_call_id: u64,
    pub out_of_dialog: u64,
    pub calls_seen: u64,
    pub calls_recorded: u64,
    pub calls_not_recorded: u64,
    /// Calls not recorded, by rule.
    pub not_recorded_by_rule: BTreeMap<String, u64>,
    pub calls_ended: u64,
    pub dialogs_refused: u64,
    pub reinvites: u64,
    pub sdp_bodies: u64,
    pub cancels: u64,
    pub refers: u64,
    /// Legs that joined an existing call, by how.
    pub legs_joined: BTreeMap<String, u64>,
    /// Transfers whose REFER was seen after the INVITE it caused (a HEP feed out of wire
    /// order): that INVITE's dialog joined the call then.
    pub late_transfers: u64,
    /// Dialogs shown by their media to be a B2BUA's inside leg of another call (the same RTP
    /// packets on both), joined to it.
    pub relay_joins: u64,
    /// Dialogs from a feed out of wire order whose decision waited for a REFER.
    pub deferred_decisions: u64,
}

impl CallCounters {
    /// Takes back one leg counted as joined `by`.
    fn uncount_join(&mut self, by: &str) {
        if let Some(n) = self.legs_joined.get_mut(by) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.legs_joined.remove(by);
            }
        }
    }

    /// Takes back one call counted as not recorded under `rule` (its count goes when empty).
    fn uncount_rule(&mut self, rule: &str) {
        if let Some(n) = self.not_recorded_by_rule.get_mut(rule) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.not_recorded_by_rule.remove(rule);
            }
        }
    }
}

/// A dialog whose decision waits for a REFER that may still arrive (feeds out of wire order).
#[derive(Clone, Debug)]
struct Deferred {
    call: CallKey,
    until: Timestamp,
    /// The call it would have joined at once (by a pending REFER), if any, and that REFER
    /// (given back if the dialog turns out to be another call's).
    join: Option<Join>,
    taken: Option<PendingTransfer>,
    /// The decision its own INVITE gets.
    own: Decision,
}

/// How long after a call starts a new call from the same caller may turn out to be its
/// B2BUA inside leg (its media compared with the call's).
const RELAY_WATCH: Duration = Duration::from_secs(10);

/// How long an ended call's Call-ID is remembered: a new attempt of the same call (after a
/// 3xx redirect, 422, 491, or sequential forking) keeps its decision, and stragglers of the
/// ended dialog are not mistaken for calls seen from the middle. Twice Timer B.
const TOMBSTONE_TTL: Duration = Duration::from_secs(64);

#[derive(Clone, Debug)]
struct Tombstone {
    decision: Decision,
    dialled_raw: String,
    caller_raw: String,
    until: Timestamp,
}

pub struct CallTracker {
    policy: ScopePolicy,
    limits: CallsSection,
    by_sip_id: HashMap<String, CallKey>,
    calls: HashMap<CallKey, Call>,
    next_key: CallKey,
    events: Vec<CallEvent>,
    /// REFERs waiting for the INVITE they cause.
    pending: Vec<PendingTransfer>,
    /// Media endpoints announced by the legs of live calls: address → (call, owner side).
    endpoints: HashMap<SocketAddr, (CallKey, Side)>,
    /// Call-IDs of calls that ended recently, with their decision (see `TOMBSTONE_TTL`).
    tombstones: HashMap<String, Tombstone>,
    /// The hop the message being handled travelled (its SDP speaks for that hop only).
    hop: Hop,
    /// The From tag of each live call's legs: the same dialog behind an SBC that hides its
    /// topology is found without a scan (an INVITE flood must not cost a pass over every call).
    by_a_tag: HashMap<String, Vec<CallKey>>,
    /// Calls by caller (E.164), latest few each: the calls a new call from the same caller
    /// may be the B2BUA inside leg of.
    by_caller: HashMap<String, Vec<CallKey>>,
    /// Dialogs whose decision waits (see the module doc).
    deferred: Vec<Deferred>,
    /// Calls whose last leg ended by a BYE from a feed out of wire order, and when they end
    /// unless a REFER seen meanwhile keeps them for their transferee.
    closing: Vec<(CallKey, Timestamp)>,
    /// Whether the message being handled came from a feed that may not keep wire order.
    reorderable: bool,
    /// The random part of call ids.
    entropy: Entropy,
    pub counters: CallCounters,
}

impl CallTracker {
    /// `entropy` gives the random part of the calls' ids.
    pub fn new(policy: ScopePolicy, limits: CallsSection, entropy: Entropy) -> Self {
        CallTracker {
            policy,
            limits,
            entropy,
            by_sip_id: HashMap::new(),
            calls: HashMap::new(),
            next_key: 1,
            events: Vec::new(),
            pending: Vec::new(),
            deferred: Vec::new(),
            closing: Vec::new(),
            reorderable: false,
            endpoints: HashMap::new(),
            tombstones: HashMap::new(),
            hop: Hop::between(
                SocketAddr::from(([0, 0, 0, 0], 0)),
                SocketAddr::from(([0, 0, 0, 0], 0)),
            ),
            by_a_tag: HashMap::new(),
            by_caller: HashMap::new(),
            counters: CallCounters::default(),
        }
    }

    pub fn policy(&self) -> &ScopePolicy {
        &self.policy
    }

    /// Replaces the scope policy (SIGHUP); calls in progress keep their decision.
    pub fn set_policy(&mut self, policy: ScopePolicy) {
        self.policy = policy;
    }

    /// Whether a live call has a leg with this SIP Call-ID.
    pub fn knows(&self, sip_call_id: &str) -> bool {
        self.by_sip_id.contains_key(sip_call_id)
    }

    pub fn call(&self, key: CallKey) -> Option<&Call> {
        self.calls.get(&key)
    }

    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Events produced since the last call; the caller must act on them in order.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, CallEvent> {
        self.events.drain(..)
    }

    /// Removes an ended call (after its `Ended` event was handled) and returns it.
    pub fn take_ended(&mut self, key: CallKey) -> Option<Call> {
        let call = self.calls.remove(&key)?;
        for leg in &call.legs {
            if self.by_sip_id.get(&leg.sip_call_id) == Some(&key) {
                self.by_sip_id.remove(&leg.sip_call_id);
            }
        }
        self.endpoints.retain(|_, (k, _)| *k != key);
        self.pending.retain(|p| p.call != key);
        self.forget_indexes(key, &call);
        let until = call.ended_at().unwrap_or(call.started_at) + TOMBSTONE_TTL;
        for leg in &call.legs {
            if self.tombstones.len() < self.limits.max_dialogs {
                self.tombstones.insert(
                    leg.sip_call_id.clone(),
                    Tombstone {
                        decision: call.decision.clone(),
                        dialled_raw: call.dialled_raw.clone(),
                        caller_raw: call.caller.clone(),
                        until,
                    },
                );
            }
        }
        Some(call)
    }

    /// Handles one SIP message sent from `src` to `dst`. `reorderable`: it came from a feed
    /// that may not keep wire order (HEP), so a REFER may still follow the INVITE it caused.
    /// `activity` tells when a call last had media (for joins by media endpoint).
    pub fn on_message(
        &mut self,
        time: Timestamp,
        msg: &Message<'_>,
        (src, dst): (SocketAddr, SocketAddr),
        reorderable: bool,
        activity: &dyn Fn(CallKey) -> Option<Timestamp>,
    ) {
        self.hop = Hop::between(src, dst);
        self.reorderable = reorderable;
        let Some(sip_id) = msg.call_id() else {
            self.counters.without_call_id += 1;
            return;
        };
        let sip_id = sip_id.trim();
        if msg.status().is_some() {
            self.counters.sip_responses += 1;
        } else {
            self.counters.sip_requests += 1;
        }
        let has_to_tag = msg.to().and_then(|t| t.tag().map(|_| ())).is_some();
        match (msg.method(), self.by_sip_id.get(sip_id).copied()) {
            (Some(method), None) if self.tombstones.contains_key(sip_id) => {
                // A Call-ID that just ended: a new attempt of the same call (after a 3xx,
                // 422 or 491, or a proxy's sequential forking) keeps its decision; anything
                // else is a straggler of the ended dialog.
                if matches!(method, Method::Invite) && !has_to_tag {
                    self.continue_call(time, msg, sip_id, src);
                } else {
                    self.counters.out_of_dialog += 1;
                }
            }
            (Some(Method::Invite), None) => {
                if has_to_tag {
                    self.mid_call_unless_early(time, msg, sip_id, src, activity);
                } else {
                    let evidence = invite_evidence(msg);
                    match self.find_join(time, &evidence, activity) {
                        Some((join, _)) if self.seen_inside_first(&join, msg, time) => {
                            // a HEP feed traced the SBC's inside copy of this dialog before
                            // the outside INVITE that names the number dialled: the call is
                            // this one, decided on that number, and the inside copy joins it
                            if let Some(key) = self.start_call(time, msg, sip_id, src, evidence) {
                                self.merge_call(join.call, key, JoinedBy::B2bua, Side::Caller);
                            }
                        }
                        Some((join, taken))
                            if self.reorderable
                                && join.by == JoinedBy::Refer
                                && self.could_be_another_calls(&evidence, Some(join.call)) =>
                        {
                            self.defer(time, msg, sip_id, src, evidence, Some((join, taken)));
                        }
                        Some((join, _)) => {
                            // from a feed out of wire order, a REFER may still come and name
                            // a join on the caller's media endpoint (rejoin_late_transferee)
                            let keep = self.reorderable && join.by == JoinedBy::MediaEndpoint;
                            let evidence = keep.then(|| Box::new(evidence));
                            self.join_leg(time, msg, sip_id, src, join, evidence);
                        }
                        None if self.reorderable
                            && evidence.referred_by.is_some()
                            && evidence.replaces.is_none()
                            && self.could_be_another_calls(&evidence, None) =>
                        {
                            self.defer(time, msg, sip_id, src, evidence, None);
                        }
                        None => {
                            self.start_call(time, msg, sip_id, src, evidence);
                        }
                    }
                }
            }
            (
                Some(Method::Ack | Method::Bye | Method::Update | Method::Prack | Method::Info),
                None,
            ) if has_to_tag => {
                // An in-dialog request of a call in progress when capture began: its scope
                // cannot be decided; it is tracked (never recorded) so that it is counted and
                // its media is dropped.
                self.mid_call_unless_early(time, msg, sip_id, src, activity);
            }
            (_, None) => self.counters.out_of_dialog += 1,
            (_, Some(key)) => self.in_dialog(time, msg, key, sip_id),
        }
    }

    /// Notes a SIP message (already handled by [`Self::on_message`]) on the ladder of the
    /// recorded call its Call-ID belongs to; messages of calls not recorded are not kept.
    pub fn note_signal(
        &mut self,
        time: Timestamp,
        msg: &Message<'_>,
        src: SocketAddr,
        dst: SocketAddr,
    ) {
        let Some(sip_id) = msg.call_id().map(str::trim) else {
            return;
        };
        let Some(call) = self
            .by_sip_id
            .get(sip_id)
            .and_then(|k| self.calls.get_mut(k))
        else {
            return;
        };
        if !call.decision.record || call.signalling.len() >= super::call::MAX_SIGNALS {
            return;
        }
        let sdp = if msg.content_type_is("application/sdp") {
            " + SDP"
        } else {
            ""
        };
        let message = match (msg.method(), msg.status(), msg.cseq()) {
            (Some(m), _, _) => format!("{}{sdp}", m.as_str()),
            (None, Some(code), Some(cseq)) => format!("{code} ({}){sdp}", cseq.method.as_str()),
            (None, Some(code), None) => format!("{code}{sdp}"),
            _ => return,
        };
        let used: usize = call.signalling.iter().map(|s| s.text.len()).sum();
        let left = super::call::SIGNAL_TEXT_BUDGET.saturating_sub(used);
        let text = if left >= 256 {
            msg.text(left.min(super::call::MAX_SIGNAL_TEXT))
        } else {
            String::new()
        };
        call.signalling.push(super::call::SignalEvent {
            at: time,
            src,
            dst,
            message,
            sip_call_id: sip_id.to_owned(),
            text,
        });
    }

    /// A new INVITE on a Call-ID whose earlier attempt just ended: same call, same decision.
    fn continue_call(&mut self, time: Timestamp, msg: &Message<'_>, sip_id: &str, src: SocketAddr) {
        let Some(earlier) = self.tombstones.get(sip_id).cloned() else {
            return;
        };
        let Some(key) = self.allocate() else { return };
        let mut decision = earlier.decision;
        decision.reason = format!("{} (a new attempt of the same call)", decision.reason);
        let leg = new_leg(sip_id, msg, time, Side::Caller, JoinedBy::Initial);
        self.admit(
            key,
            decision,
            earlier.dialled_raw,
            earlier.caller_raw,
            leg,
            time,
        );
        self.media_from_message(time, msg, key, sip_id, src);
    }

    /// Indexes a leg's From tag (and the call's caller, for its first leg).
    fn index_leg(&mut self, key: CallKey, a_tag: &str, caller: Option<&str>) {
        if !a_tag.is_empty() {
            push_bounded(self.by_a_tag.entry(a_tag.to_owned()).or_default(), key);
        }
        if let Some(caller) = caller.filter(|c| c.starts_with('+')) {
            push_bounded(self.by_caller.entry(caller.to_owned()).or_default(), key);
        }
    }

    /// Drops a call that is gone from the indexes.
    fn forget_indexes(&mut self, key: CallKey, call: &Call) {
        for leg in &call.legs {
            unindex(&mut self.by_a_tag, &leg.a_tag, key);
        }
        unindex(&mut self.by_caller, &call.caller, key);
    }

    fn allocate(&mut self) -> Option<CallKey> {
        if self.by_sip_id.len() >= self.limits.max_dialogs {
            self.counters.dialogs_refused += 1;
            return None;
        }
        let key = self.next_key;
        self.next_key += 1;
        Some(key)
    }

    /// Whether a join by From tag found the dialog's other copy first: a call of its own,
    /// unrecorded, started within [`REORDER_WINDOW`], that this INVITE would have recorded
    /// on its own number. In wire order the outside INVITE comes first and decides.
    fn seen_inside_first(&self, join: &Join, msg: &Message<'_>, time: Timestamp) -> bool {
        join.by == JoinedBy::B2bua
            && self.calls.get(&join.call).is_some_and(|c| {
                !c.record()
                    && c.legs.len() == 1
                    && c.legs[0].joined_by == JoinedBy::Initial
                    && time.saturating_since(c.started_at) <= REORDER_WINDOW
            })
            && self.decide_invite(msg).0.record
    }

    /// The scope decision an INVITE would get on its own: (decision, dialled, caller).
    fn decide_invite(&self, msg: &Message<'_>) -> (Decision, String, String) {
        let dialled = msg
            .request_uri()
            .and_then(|u| u.user_unescaped_opt())
            .unwrap_or_default();
        let from_user = msg
            .from()
            .and_then(|f| f.uri.user_unescaped_opt())
            .unwrap_or_default();
        let caller_raw = msg
            .p_asserted_identity()
            .iter()
            .find_map(|p| p.uri.user_unescaped_opt())
            .unwrap_or_else(|| from_user.clone());
        let original_called = original_called_numbers(msg);
        let decision = self.policy.decide(&CallParties {
            dialled: &dialled,
            caller: &caller_raw,
            original_called: &original_called,
        });
        (decision, dialled, caller_raw)
    }

    fn start_call(
        &mut self,
        time: Timestamp,
        msg: &Message<'_>,
        sip_id: &str,
        src: SocketAddr,
        evidence: InviteEvidence,
    ) -> Option<CallKey> {
        let key = self.allocate()?;
        let (decision, dialled, caller_raw) = self.decide_invite(msg);
        let mut leg = new_leg(sip_id, msg, time, Side::Caller, JoinedBy::Initial);
        leg.invite = Some(Box::new(evidence));
        self.admit(key, decision, dialled, caller_raw, leg, time);
        self.media_from_message(time, msg, key, sip_id, src);
        self.watch_for_relay(key, time);
        Some(key)
    }

    /// Starts a call for a transferee's INVITE whose REFER may still arrive, unrecorded until
    /// [`Self::resolve_deferred`] decides it. A REFER seen meanwhile that asked for this
    /// INVITE merges it into that REFER's call ([`Self::rejoin_late_transferee`]).
    fn defer(
        &mut self,
        time: Timestamp,
        msg: &Message<'_>,
        sip_id: &str,
        src: SocketAddr,
        evidence: InviteEvidence,
        claim: Option<(Join, Option<PendingTransfer>)>,
    ) {
        let (join, taken) = claim.map_or((None, None), |(j, t)| (Some(j), t));
        let Some(key) = self.allocate() else { return };
        let (own, dialled, caller_raw) = self.decide_invite(msg);
        let mut leg = new_leg(sip_id, msg, time, Side::Caller, JoinedBy::Initial);
        leg.invite = Some(Box::new(evidence));
        self.admit(
            key,
            ScopePolicy::awaiting_transfer(),
            dialled,
            caller_raw,
            leg,
            time,
        );
        self.media_from_message(time, msg, key, sip_id, src);
        self.counters.deferred_decisions += 1;
        self.deferred.push(Deferred {
            call: key,
            until: time + REORDER_WINDOW,
            join,
            taken,
            own,
        });
    }

    /// Whether a live call other than `except` could have sent the REFER behind this INVITE
    /// (its caller, an identity of its legs as the Referred-By, or one of its media
    /// addresses): only then can a REFER still to come tie the INVITE to another call, and
    /// is its decision worth waiting for. When the INVITE names `except`'s own caller, only
    /// another call of that caller (or its media) competes: the Referred-By of an agent who
    /// has other calls does not. Scans the live calls: it runs only for a transferee's INVITE
    /// from a feed out of wire order.
    fn could_be_another_calls(&self, evidence: &InviteEvidence, except: Option<CallKey>) -> bool {
        let policy = &self.policy;
        let names = |c: &Call, who: &str| {
            same_party(policy, who, &c.caller)
                || c.legs.iter().any(|l| {
                    same_party(policy, who, &l.from_user)
                        || same_party(policy, who, &l.to_user)
                        || l.org_identities
                            .iter()
                            .any(|id| same_party(policy, who, id))
                })
        };
        let by_media = evidence
            .offered_endpoints
            .iter()
            .filter_map(|a| self.endpoints.get(a))
            .any(|(k, _)| Some(*k) != except);
        let same_caller = |c: &Call| {
            evidence
                .callers
                .iter()
                .any(|u| same_party(policy, u, &c.caller))
        };
        let callers_own = except
            .and_then(|k| self.calls.get(&k))
            .is_some_and(same_caller);
        by_media
            || self
                .calls
                .values()
                .filter(|c| !c.ended && Some(c.key) != except)
                .any(|c| {
                    same_caller(c)
                        || (!callers_own
                            && evidence.referred_by.as_deref().is_some_and(|r| names(c, r)))
                })
    }

    /// Decides the dialogs whose wait is over (all of them with `now` None): each joins the
    /// call its REFER matched when it arrived, or else gets its own INVITE's decision. One
    /// that a late REFER merged meanwhile is gone already; one that ended while waiting
    /// stays unrecorded (`awaiting_transfer`).
    fn resolve_deferred(&mut self, now: Option<Timestamp>) {
        if self.deferred.is_empty() {
            return;
        }
        let (due, wait): (Vec<Deferred>, Vec<Deferred>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|d| now.is_none_or(|n| d.until <= n));
        self.deferred = wait;
        for d in due {
            let Some(call) = self.calls.get(&d.call) else {
                continue;
            };
            if call.ended {
                continue;
            }
            if let Some(join) = d.join
                && self.calls.get(&join.call).is_some_and(|c| !c.ended)
            {
                self.merge_call(d.call, join.call, JoinedBy::Refer, join.a_side);
                continue;
            }
            self.redecide(d.call, d.own);
        }
    }

    /// Gives a waiting call its own decision (taking back its count as `awaiting_transfer`);
    /// recorded, its media is recorded from now on.
    fn redecide(&mut self, key: CallKey, decision: Decision) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let was = std::mem::replace(&mut call.decision, decision.clone());
        self.counters.uncount_rule(was.rule.as_str());
        if decision.record {
            self.counters.calls_not_recorded = self.counters.calls_not_recorded.saturating_sub(1);
            self.counters.calls_recorded += 1;
            self.events.push(CallEvent::Record { call: key });
        } else {
            *self
                .counters
                .not_recorded_by_rule
                .entry(decision.rule.as_str().to_owned())
                .or_default() += 1;
        }
    }

    /// A new call, not recorded, from the same caller as a call that started moments before
    /// may be that call's inside leg through a B2BUA (new Call-ID, new tags, the dialled
    /// number rewritten): neither the caller (every line of a company shares its number) nor
    /// the timing proves it, so the pipeline is asked to compare their media
    /// ([`CallEvent::RelayWatch`]); only identical RTP on both joins them.
    fn watch_for_relay(&mut self, key: CallKey, time: Timestamp) {
        let Some(call) = self.calls.get(&key).filter(|c| !c.record()) else {
            return;
        };
        let caller = call.caller.clone();
        if !matches!(
            self.policy.normalise(&caller),
            crate::policy::Number::E164(_)
        ) {
            return;
        }
        let outside: Vec<CallKey> = self
            .by_caller
            .get(&caller)
            .into_iter()
            .flatten()
            .filter_map(|k| self.calls.get(k))
            .filter(|c| {
                c.key != key
                    && !c.ended
                    && time.saturating_since(c.started_at) <= RELAY_WATCH
                    && c.started_at <= time
            })
            .map(|c| c.key)
            .collect();
        for outside in outside {
            self.events.push(CallEvent::RelayWatch {
                inside: key,
                outside,
                until: time + RELAY_WATCH,
            });
        }
    }

    /// A REFER seen after the INVITE it asked for (a HEP feed traces a forwarded REFER after
    /// the messages that follow it: the 202, the NOTIFY, the transferee's INVITE): the call
    /// that INVITE started on its own, unrecorded, within [`REORDER_WINDOW`], is the rest of
    /// the REFER's conversation and joins it. Nothing of it was recorded meanwhile (its RTP
    /// was dropped as out of scope), so nothing has to be taken back; a call that was
    /// recorded on its own right stays as it is.
    fn rejoin_late_transferee(&mut self, time: Timestamp) {
        let Some(p) = self.pending.last().cloned() else {
            return;
        };
        let calls = &self.calls;
        let endpoints = &self.endpoints;
        let policy = &self.policy;
        let asked_for = |ev: &InviteEvidence| {
            match_pending(
                std::slice::from_ref(&p),
                ev,
                time,
                &|k| calls.get(&k).map(|c| c.caller.clone()),
                &|a| endpoints.get(a).map(|(k, _)| *k),
                &|a, b| same_party(policy, a, b),
            )
            .is_some()
        };
        // the INVITE may have joined this very call already on the caller's media endpoint
        // (its REFER not seen yet): the same conversation, now known to be a transfer
        let relabel = calls.get(&p.call).and_then(|c| {
            c.legs.iter().position(|l| {
                l.joined_by == JoinedBy::MediaEndpoint
                    && time.saturating_since(l.started_at) <= REORDER_WINDOW
                    && l.invite.as_deref().is_some_and(asked_for)
            })
        });
        if let Some(i) = relabel {
            self.pending.pop();
            self.counters.late_transfers += 1;
            self.counters.uncount_join(JoinedBy::MediaEndpoint.as_str());
            *self
                .counters
                .legs_joined
                .entry(JoinedBy::Refer.as_str().to_owned())
                .or_default() += 1;
            if let Some(leg) = self.calls.get_mut(&p.call).and_then(|c| c.legs.get_mut(i)) {
                leg.joined_by = JoinedBy::Refer;
            }
            return;
        }
        let late = calls
            .values()
            .filter(|c| {
                c.key != p.call
                    && !c.ended
                    && !c.record()
                    && one_dialog(c)
                    && time.saturating_since(c.started_at) <= REORDER_WINDOW
            })
            .filter(|c| c.legs[0].invite.as_deref().is_some_and(asked_for))
            .map(|c| c.key)
            .min();
        let Some(from) = late else { return };
        if self.calls.get(&p.call).is_none_or(|c| c.ended) {
            return;
        }
        self.pending.pop();
        self.counters.late_transfers += 1;
        self.merge_call(from, p.call, JoinedBy::Refer, p.transferee_side);
        // a dialog that was waiting with another call's REFER gives that REFER back: its own
        // INVITE may have come meanwhile, or may still come
        if let Some(i) = self.deferred.iter().position(|d| d.call == from) {
            let d = self.deferred.swap_remove(i);
            if let Some(taken) = d.taken
                && time.saturating_since(taken.at) <= TRANSFER_WINDOW
            {
                self.pending.push(taken);
                self.rejoin_late_transferee(time);
            }
        }
    }

    /// Moves the legs of call `from` (one dialog, perhaps seen on several hops; never
    /// recorded: nothing of it is on disk) into call `into`, its first leg joined `by` with its
    /// party A on `a_side`; `from` is gone, and its counts as a call of its own are taken
    /// back: one conversation, one call.
    fn merge_call(&mut self, from: CallKey, into: CallKey, by: JoinedBy, a_side: Side) {
        if !self.calls.contains_key(&into) {
            return;
        }
        let Some(mut gone) = self.calls.remove(&from) else {
            return;
        };
        self.forget_indexes(from, &gone);
        let legs = std::mem::take(&mut gone.legs);
        let Some(first) = legs.first() else {
            return;
        };
        let swap_sides = first.a_side != a_side;
        self.counters.calls_seen = self.counters.calls_seen.saturating_sub(1);
        self.counters.calls_not_recorded = self.counters.calls_not_recorded.saturating_sub(1);
        self.counters.uncount_rule(gone.decision.rule.as_str());
        *self
            .counters
            .legs_joined
            .entry(by.as_str().to_owned())
            .or_default() += 1;
        // the dialog's first leg joins `by`; its copies on other hops (b2bua) stay so, their
        // sides turned with it
        for (i, mut leg) in legs.into_iter().enumerate() {
            self.index_leg(into, &leg.a_tag, None);
            if i == 0 {
                leg.joined_by = by;
            }
            if swap_sides {
                leg.a_side = leg.a_side.other();
                leg.b_side = leg.b_side.other();
            }
            self.by_sip_id.insert(leg.sip_call_id.clone(), into);
            for (addr, party, _) in &leg.endpoints {
                if self.endpoints.get(addr).is_some_and(|(k, _)| *k == from) {
                    self.endpoints.insert(*addr, (into, leg.side_of(*party)));
                }
            }
            if let Some(call) = self.calls.get_mut(&into) {
                call.legs.push(leg);
            }
        }
        self.events.push(CallEvent::Merged {
            from,
            into,
            swap_sides,
        });
    }

    /// Call `inside` (a dialog of its own, unrecorded) carries media that is a relay of call
    /// `outside`'s (the pipeline saw the same RTP packets on both, a few ms apart): it is the
    /// inside leg of a B2BUA, which gives its side new Call-ID and tags. It joins `outside`
    /// as `b2bua` and takes its decision.
    pub fn relay_proven(&mut self, inside: CallKey, outside: CallKey) {
        let still = self.calls.get(&inside).is_some_and(|c| {
            !c.ended && !c.record() && c.legs.len() == 1 && c.legs[0].joined_by == JoinedBy::Initial
        });
        if !still || self.calls.get(&outside).is_none_or(|c| c.ended) {
            return;
        }
        let a_side = self
            .calls
            .get(&outside)
            .and_then(|c| c.legs.first())
            .map_or(Side::Caller, |l| l.a_side);
        self.counters.relay_joins += 1;
        self.merge_call(inside, outside, JoinedBy::B2bua, a_side);
    }

    /// The existing call a new INVITE continues, if any (see `transfer`).
    fn find_join(
        &mut self,
        time: Timestamp,
        evidence: &InviteEvidence,
        activity: &dyn Fn(CallKey) -> Option<Timestamp>,
    ) -> Option<(Join, Option<PendingTransfer>)> {
        let live = |call: &Call| !call.ended;
        // 0. an agent's own internal call while a recorded call of theirs is live: its
        // consultation (recorded only when the policy says so)
        if self.policy.record_consultations()
            && evidence
                .callers
                .iter()
                .any(|c| self.policy.normalise(c).is_extension())
            && let Some(call) = self.calls.values().find(|c| {
                live(c)
                    && c.record()
                    && c.legs.iter().any(|l| {
                        l.org_identities.iter().any(|id| {
                            evidence
                                .callers
                                .iter()
                                .any(|u| same_party(&self.policy, u, id))
                        })
                    })
            })
        {
            return Some((
                Join {
                    call: call.key,
                    by: JoinedBy::Consultation,
                    a_side: Side::Organisation,
                    b_side: Side::Organisation,
                },
                None,
            ));
        }
        // 1. the same dialog behind an SBC that gave it a Call-ID of its own: the From tag
        // of a live leg, and the same caller
        if let Some(tag) = evidence.from_tag.as_deref().filter(|t| !t.is_empty())
            && let Some((call, leg)) = self
                .by_a_tag
                .get(tag)
                .into_iter()
                .flatten()
                .filter_map(|k| self.calls.get(k))
                .filter(|c| live(c))
                .find_map(|c| {
                    c.legs
                        .iter()
                        .find(|l| {
                            // the SBC forwards a dialog before it is answered (a phone that
                            // reused its tag for a second call later is not that dialog)
                            !l.is_over()
                                && (l.answered_at.is_none()
                                    || time.saturating_since(l.started_at) <= REORDER_WINDOW)
                                && l.a_tag == tag
                                && evidence
                                    .callers
                                    .iter()
                                    .any(|u| same_party(&self.policy, u, &l.from_user))
                        })
                        .map(|l| (c, l))
                })
        {
            return Some((
                Join {
                    call: call.key,
                    by: JoinedBy::B2bua,
                    a_side: leg.a_side,
                    b_side: leg.b_side,
                },
                None,
            ));
        }
        // 2. the INVITE a REFER asked for
        let calls = &self.calls;
        let endpoints = &self.endpoints;
        let policy = &self.policy;
        let found = match_pending(
            &self.pending,
            evidence,
            time,
            &|k| calls.get(&k).map(|c| c.caller.clone()),
            &|a| endpoints.get(a).map(|(k, _)| *k),
            &|a, b| same_party(policy, a, b),
        );
        if let Some(i) = found {
            let p = self.pending.remove(i);
            if self.calls.get(&p.call).is_some_and(live) {
                let join = Join {
                    call: p.call,
                    by: JoinedBy::Refer,
                    a_side: p.transferee_side,
                    b_side: p.transferee_side.other(),
                };
                return Some((join, Some(p)));
            }
        }
        // 3. Replaces naming a leg
        if let Some(r) = &evidence.replaces
            && let Some(&key) = self.by_sip_id.get(r.call_id.trim())
            && let Some(call) = self.calls.get(&key).filter(|c| live(c))
            && let Some(leg) = call.legs.iter().find(|l| l.sip_call_id == r.call_id.trim())
        {
            // Replaces tags are the recipient's view: to-tag is the recipient's own tag.
            let recipient = if r.to_tag == leg.a_tag {
                Party::A
            } else if leg.b_tag.as_deref() == Some(r.to_tag.as_str()) {
                Party::B
            } else if comparable(&evidence.dialled) == comparable(&leg.from_user) {
                Party::A
            } else {
                Party::B
            };
            let a_side = leg.side_of(recipient).other();
            return Some((
                Join {
                    call: key,
                    by: JoinedBy::Replaces,
                    a_side,
                    b_side: a_side.other(),
                },
                None,
            ));
        }
        // 4. the caller's media endpoint carried on while the call is alive (only the
        // caller's: an agent's phone offering its own port for a consultation call must not
        // pull that organisation-internal conversation into the recording), by a dialog that
        // still names the same caller (an SDP address alone is not unique: two callers behind
        // NATs may both announce 192.168.1.100:5004)
        for addr in &evidence.offered_endpoints {
            if let Some(&(key, side)) = self.endpoints.get(addr)
                && side == Side::Caller
                && let Some(call) = self.calls.get(&key).filter(|c| live(c))
                && evidence
                    .callers
                    .iter()
                    .any(|u| same_party(&self.policy, u, &call.caller))
            {
                let last = activity(key).map_or(call.last_signal(), |m| m.max(call.last_signal()));
                if time.saturating_since(last) <= MEDIA_JOIN_ACTIVITY {
                    return Some((
                        Join {
                            call: key,
                            by: JoinedBy::MediaEndpoint,
                            a_side: side,
                            b_side: side.other(),
                        },
                        None,
                    ));
                }
            }
        }
        None
    }

    /// Adds a new leg to an existing call: it inherits the call's decision.
    fn join_leg(
        &mut self,
        time: Timestamp,
        msg: &Message<'_>,
        sip_id: &str,
        src: SocketAddr,
        join: Join,
        evidence: Option<Box<InviteEvidence>>,
    ) {
        if self.by_sip_id.len() >= self.limits.max_dialogs {
            self.counters.dialogs_refused += 1;
            return;
        }
        let Some(call) = self.calls.get_mut(&join.call) else {
            return;
        };
        let mut leg = new_leg(sip_id, msg, time, join.a_side, join.by);
        leg.b_side = join.b_side;
        leg.invite = evidence;
        let a_tag = leg.a_tag.clone();
        call.legs.push(leg);
        self.index_leg(join.call, &a_tag, None);
        *self
            .counters
            .legs_joined
            .entry(join.by.as_str().to_owned())
            .or_default() += 1;
        self.by_sip_id.insert(sip_id.to_owned(), join.call);
        self.media_from_message(time, msg, join.call, sip_id, src);
    }

    /// An in-dialog request of a dialog not known: from a feed out of wire order it may have
    /// come before its dialog's INVITE, so it is left to the caller to hold and hand back
    /// through [`Self::mid_call_request`] if the dialog does not appear; otherwise the call
    /// was in progress when capture began.
    fn mid_call_unless_early(
        &mut self,
        time: Timestamp,
        msg: &Message<'_>,
        sip_id: &str,
        src: SocketAddr,
        activity: &dyn Fn(CallKey) -> Option<Timestamp>,
    ) {
        if !self.reorderable {
            self.start_mid_call(time, msg, sip_id, src, activity);
        }
    }

    /// An in-dialog request held for its dialog, which did not appear (see
    /// [`Self::mid_call_unless_early`]): the call was in progress when capture began. Counted
    /// once, when it was first handled.
    pub fn mid_call_request(
        &mut self,
        time: Timestamp,
        msg: &Message<'_>,
        (src, dst): (SocketAddr, SocketAddr),
        activity: &dyn Fn(CallKey) -> Option<Timestamp>,
    ) {
        let Some(sip_id) = msg.call_id().map(str::trim) else {
            return;
        };
        let in_dialog = msg.method().is_some() && msg.to().is_some_and(|t| t.tag().is_some());
        if !in_dialog || self.by_sip_id.contains_key(sip_id) || self.tombstones.contains_key(sip_id)
        {
            return;
        }
        self.hop = Hop::between(src, dst);
        self.start_mid_call(time, msg, sip_id, src, activity);
    }

    fn start_mid_call(
        &mut self,
        time: Timestamp,
        msg: &Message<'_>,
        sip_id: &str,
        src: SocketAddr,
        _activity: &dyn Fn(CallKey) -> Option<Timestamp>,
    ) {
        let Some(key) = self.allocate() else { return };
        let what = match msg.method() {
            Some(m) => format!("{m}"),
            None => format!("{} response", msg.status().unwrap_or(0)),
        };
        let decision = ScopePolicy::undecidable(&what);
        let leg = {
            let mut leg = new_leg(sip_id, msg, time, Side::Caller, JoinedBy::MidCall);
            leg.dialled = String::new();
            leg.b_tag = msg.to().and_then(|t| t.tag().map(str::to_owned));
            leg.state = LegState::Confirmed;
            leg.invite_cseq = 0;
            leg
        };
        self.admit(key, decision, String::new(), String::new(), leg, time);
        self.media_from_message(time, msg, key, sip_id, src);
        if !matches!(msg.method(), Some(Method::Invite)) {
            // a BYE ends it at once
            self.in_dialog(time, msg, key, sip_id);
        }
    }

    fn admit(
        &mut self,
        key: CallKey,
        decision: Decision,
        dialled_raw: String,
        caller_raw: String,
        leg: Leg,
        time: Timestamp,
    ) {
        self.counters.calls_seen += 1;
        if decision.record {
            self.counters.calls_recorded += 1;
        } else {
            self.counters.calls_not_recorded += 1;
            *self
                .counters
                .not_recorded_by_rule
                .entry(decision.rule.as_str().to_owned())
                .or_default() += 1;
        }
        let dialled = self.policy.normalise(&dialled_raw);
        let caller = self.policy.normalise(&caller_raw);
        let record = decision.record;
        self.by_sip_id.insert(leg.sip_call_id.clone(), key);
        self.index_leg(key, &leg.a_tag, Some(&caller.to_string()));
        self.calls.insert(
            key,
            Call {
                key,
                call_id: self.entropy.uuid_v7(time),
                decision,
                dialled: dialled.e164().map(str::to_owned),
                dialled_raw,
                caller: caller.to_string(),
                legs: vec![leg],
                started_at: time,
                ended: false,
                signalling: Vec::new(),
            },
        );
        if record {
            self.events.push(CallEvent::Record { call: key });
        }
    }

    /// A message inside one of a live call's dialogs: the leg's state machine takes it
    /// ([`super::dialog`]), a REFER is noted and waits for its INVITE ([`super::transfer`]),
    /// and SDP moves the party's media.
    fn in_dialog(&mut self, time: Timestamp, msg: &Message<'_>, key: CallKey, sip_id: &str) {
        let Some(leg) = self
            .calls
            .get_mut(&key)
            .filter(|c| !c.ended)
            .and_then(|c| c.legs.iter_mut().find(|l| l.sip_call_id == sip_id))
        else {
            return;
        };
        leg.last_signal = time;
        let step = match (msg.method(), msg.status()) {
            (Some(Method::Refer), _) => {
                self.counters.refers += 1;
                if let Some(transfer) = transfer::note_refer(leg, key, msg, time) {
                    self.transfer_requested(transfer, time);
                    return;
                }
                DialogStep::Continues
            }
            (Some(_), _) => leg.on_request(time, msg),
            (None, Some(status)) => leg.on_response(time, status, msg),
            (None, None) => DialogStep::Continues,
        };
        match step {
            DialogStep::ReInvite => self.counters.reinvites += 1,
            DialogStep::Cancel { .. } => self.counters.cancels += 1,
            DialogStep::Continues | DialogStep::Ended => {}
        }
        if !step.ended() {
            self.media_from_message(time, msg, key, sip_id, SocketAddr::from(([0, 0, 0, 0], 0)));
        } else if self.reorderable {
            // from a feed out of wire order the transferor's BYE can come before its
            // REFER: the call ends when the reorder window has passed (at the BYE's time),
            // and no silence is written meanwhile
            if self.calls.get(&key).is_some_and(Call::all_legs_over)
                && note_closing(&mut self.closing, key, time + REORDER_WINDOW)
            {
                self.events.push(CallEvent::Quiet {
                    call: key,
                    from: Some(time),
                });
            }
        } else {
            self.finish_if_over(key);
        }
    }

    /// A REFER asked for a transfer: it waits for the INVITE it causes, which may already
    /// have been seen (a feed out of wire order).
    fn transfer_requested(&mut self, transfer: PendingTransfer, time: Timestamp) {
        let call = transfer.call;
        if self.closing.iter().any(|(k, _)| *k == call) {
            // its BYE came first: the call goes on, waiting for its transferee
            self.events.push(CallEvent::Quiet { call, from: None });
        }
        transfer::queue(&mut self.pending, transfer);
        self.rejoin_late_transferee(time);
    }

    /// Ends the call when all its legs are over.
    fn finish_if_over(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.ended || !call.all_legs_over() {
            return;
        }
        // The transferor often hangs up before the transferee's INVITE arrives: the call
        // goes on until the transfer completes or its window closes.
        if self.pending.iter().any(|p| p.call == key) {
            return;
        }
        call.ended = true;
        self.counters.calls_ended += 1;
        self.events.push(CallEvent::Ended {
            call: key,
            record: call.decision.record,
        });
    }

    /// Ends a whole call now (timeouts, capture end, shutdown).
    pub fn end_call(&mut self, key: CallKey, at: Timestamp, reason: &str) {
        if let Some(call) = self.calls.get_mut(&key) {
            for leg in &mut call.legs {
                leg.end(at, reason);
            }
        }
        self.finish_if_over(key);
    }

    /// Applies timeouts. `last_media` tells when a recorded call last had RTP.
    pub fn tick(&mut self, now: Timestamp, last_media: &dyn Fn(CallKey) -> Option<Timestamp>) {
        self.resolve_deferred(Some(now));
        if !self.closing.is_empty() {
            let (due, wait) = std::mem::take(&mut self.closing)
                .into_iter()
                .partition::<Vec<_>, _>(|(_, until)| *until <= now);
            self.closing = wait;
            for (key, _) in due {
                self.finish_if_over(key);
            }
        }
        let setup = Duration::from_secs(self.limits.setup_timeout_seconds as u64);
        let idle = Duration::from_secs(self.limits.rtp_timeout_seconds as u64);
        let max = Duration::from_secs(self.limits.max_call_seconds as u64);
        let mut to_end: Vec<(CallKey, Timestamp, &'static str)> = Vec::new();
        for (key, call) in &self.calls {
            if call.ended {
                continue;
            }
            let last_signal = call.last_signal();
            let last = last_media(*key).map_or(last_signal, |m| m.max(last_signal));
            if now.saturating_since(call.started_at) > max {
                to_end.push((*key, now, "max_length"));
            } else if call.answered_at().is_none()
                && last_media(*key).is_none()
                && call.legs.iter().all(|l| l.joined_by == JoinedBy::Initial)
            {
                // ringing with no media: the setup timeout
                if now.saturating_since(call.started_at) > setup
                    && now.saturating_since(last) > idle.min(setup)
                {
                    to_end.push((*key, last, "setup_timeout"));
                }
            } else if now.saturating_since(last) > idle {
                to_end.push((*key, last, "rtp_timeout"));
            }
        }
        to_end.sort_by_key(|(k, _, _)| *k);
        for (key, at, reason) in to_end {
            self.end_call(key, at, reason);
        }
        self.tombstones.retain(|_, t| t.until > now);
        let mut expired: Vec<CallKey> = Vec::new();
        self.pending.retain(|p| {
            let keep = now.saturating_since(p.at) <= TRANSFER_WINDOW;
            if !keep {
                expired.push(p.call);
            }
            keep
        });
        expired.sort_unstable();
        expired.dedup();
        for key in expired {
            self.finish_if_over(key);
        }
    }

    /// Ends every call still open (end of a capture file, shutdown).
    pub fn end_all(&mut self, at: Timestamp, reason: &str) {
        self.resolve_deferred(None);
        self.closing.clear();
        self.pending.clear();
        let mut keys: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.ended)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        for key in keys {
            let last = self.calls.get(&key).map(|c| c.last_signal()).unwrap_or(at);
            self.end_call(key, at.max(last), reason);
        }
    }

    /// Emits endpoint events for the SDP a message carries, if any.
    fn media_from_message(
        &mut self,
        time: Timestamp,
        msg: &Message<'_>,
        key: CallKey,
        sip_id: &str,
        src: SocketAddr,
    ) {
        let Some(sdp) = msg.sdp() else { return };
        self.counters.sdp_bodies += 1;
        let from_tag = msg.from().and_then(|f| f.tag().map(str::to_owned));
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let record = call.decision.record;
        let Some(leg) = call.legs.iter_mut().find(|l| l.sip_call_id == sip_id) else {
            return;
        };
        let party = if msg.status().is_some() {
            leg.sender_of_response(from_tag.as_deref())
        } else {
            leg.sender_of_request(from_tag.as_deref())
        };
        let owner = leg.side_of(party);
        let peer = leg.side_of(party.other());
        if msg.status().is_none() && leg.answered_at.is_some() {
            // a new offer in an answered call: a hold, or the end of one
            leg.note_offer(owner, offers_hold(&sdp), time);
        }
        let announced = audio_endpoints(&sdp, src);
        let hop = self.hop;
        if !announced.is_empty() {
            // The party now receives only where this SDP says, on the hop it was sent on:
            // its earlier addresses there are forgotten, so that a port it gave up cannot
            // record someone else later. Its addresses on the other hops of a proxied dialog
            // (the SBC's side of the media relay) are that hop's to change.
            let gone: Vec<SocketAddr> = leg
                .endpoints
                .iter()
                .filter(|(a, p, h)| {
                    *p == party && *h == hop && !announced.iter().any(|(n, _)| n == a)
                })
                .map(|(a, _, _)| *a)
                .collect();
            leg.endpoints.retain(|(a, _, _)| !gone.contains(a));
            for addr in gone {
                if self.endpoints.get(&addr).is_some_and(|(k, _)| *k == key) {
                    self.endpoints.remove(&addr);
                }
                self.events.push(CallEvent::Forget { call: key, addr });
            }
        }
        for (addr, codecs) in announced {
            leg.remember_endpoint(addr, party, hop);
            if self.endpoints.len() < self.limits.max_dialogs * 4
                || self.endpoints.contains_key(&addr)
            {
                self.endpoints.insert(addr, (key, owner));
            }
            self.events.push(CallEvent::Endpoint {
                call: key,
                addr,
                owner,
                peer,
                codecs,
                record,
            });
        }
    }
}

/// Calls kept per key of an index (a flood of one tag or one number cannot grow it).
const MAX_PER_KEY: usize = 4;

/// A call of its own made of one dialog: its first leg, and that dialog's copies on other
/// hops of an SBC (joined `b2bua`).
fn one_dialog(call: &Call) -> bool {
    call.legs
        .first()
        .is_some_and(|l| l.joined_by == JoinedBy::Initial)
        && call
            .legs
            .iter()
            .skip(1)
            .all(|l| l.joined_by == JoinedBy::B2bua)
}

/// Notes that `key` ends at `until`; false if it was noted already (a later BYE of the same
/// call moves nothing).
fn note_closing(closing: &mut Vec<(CallKey, Timestamp)>, key: CallKey, until: Timestamp) -> bool {
    if closing.iter().any(|(k, _)| *k == key) {
        return false;
    }
    closing.push((key, until));
    true
}

fn push_bounded(keys: &mut Vec<CallKey>, key: CallKey) {
    if keys.contains(&key) {
        return;
    }
    if keys.len() >= MAX_PER_KEY {
        keys.remove(0);
    }
    keys.push(key);
}

fn unindex(index: &mut HashMap<String, Vec<CallKey>>, name: &str, key: CallKey) {
    if let Some(keys) = index.get_mut(name) {
        keys.retain(|k| *k != key);
        if keys.is_empty() {
            index.remove(name);
        }
    }
}

/// What a new INVITE brings to be matched against the calls in progress.
fn invite_evidence(msg: &Message<'_>) -> InviteEvidence {
    InviteEvidence {
        dialled: msg
            .request_uri()
            .and_then(|u| u.user_unescaped_opt())
            .unwrap_or_default(),
        from_tag: msg.from().and_then(|f| f.tag().map(str::to_owned)),
        replaces: msg.replaces(),
        referred_by: msg.referred_by().and_then(|r| r.uri.user_unescaped_opt()),
        callers: msg
            .from()
            .and_then(|f| f.uri.user_unescaped_opt())
            .into_iter()
            .chain(
                msg.p_asserted_identity()
                    .iter()
                    .filter_map(|p| p.uri.user_unescaped_opt()),
            )
            .collect(),
        offered_endpoints: msg
            .sdp()
            .as_ref()
            .map(|s| audio_endpoints(s, SocketAddr::from(([0, 0, 0, 0], 0))))
            .unwrap_or_default()
            .into_iter()
            .map(|(a, _)| a)
            .collect(),
    }
}

/// Where an SDP body says its sender receives audio, with its payload map. Hold addresses
/// (0.0.0.0, ::) and disabled streams (port 0) yield nothing.
/// An offer that stops the offerer's party hearing the other: every audio stream `sendonly`
/// or `inactive` (RFC 3264 section 8.4), or on the hold address `0.0.0.0` (RFC 2543).
fn offers_hold(sdp: &Sdp) -> bool {
    let mut audio = sdp
        .media
        .iter()
        .filter(|m| matches!(m.kind, crate::sip::MediaKind::Audio) && m.port != 0)
        .peekable();
    audio.peek().is_some()
        && audio.all(|m| {
            m.is_hold_address(sdp)
                || matches!(
                    m.effective_direction(sdp),
                    crate::sip::Direction::SendOnly | crate::sip::Direction::Inactive
                )
        })
}

fn audio_endpoints(sdp: &Sdp, src: SocketAddr) -> Vec<(SocketAddr, PayloadMap)> {
    let mut out = Vec::new();
    for m in &sdp.media {
        if !matches!(m.kind, crate::sip::MediaKind::Audio) || m.port == 0 {
            continue;
        }
        if m.is_hold_address(sdp) {
            continue;
        }
        let ip: IpAddr = match m.effective_connection(sdp) {
            Some(ip) => ip,
            None if !src.ip().is_unspecified() => src.ip(),
            None => continue,
        };
        let mut codecs = PayloadMap::default();
        for &pt in &m.formats {
            if let Some((name, rate)) = m.codec_for(pt) {
                codecs.insert(pt, Codec::new(&name, rate));
            }
        }
        out.push((SocketAddr::new(ip, m.port), codecs));
        if out.len() >= 4 {
            break;
        }
    }
    out
}

/// The same person's number, written two ways: equal once normalised (never by suffix: an
/// extension 3020 is not the switchboard 020 8748 3020).
fn same_party(policy: &ScopePolicy, a: &str, b: &str) -> bool {
    let (a, b) = (policy.normalise(a), policy.normalise(b));
    a == b && !matches!(a, crate::policy::Number::Unknown(ref s) if s.is_empty())
}

/// A leg for the dialog an INVITE starts.
fn new_leg(
    sip_id: &str,
    msg: &Message<'_>,
    time: Timestamp,
    a_side: Side,
    joined_by: JoinedBy,
) -> Leg {
    let from = msg.from();
    let user = |u: Option<String>| u.unwrap_or_default();
    Leg {
        sip_call_id: sip_id.to_owned(),
        dialled: user(msg.request_uri().and_then(|u| u.user_unescaped_opt())),
        from_user: user(from.as_ref().and_then(|f| f.uri.user_unescaped_opt())),
        to_user: user(msg.to().and_then(|t| t.uri.user_unescaped_opt())),
        a_tag: user(from.as_ref().and_then(|f| f.tag().map(str::to_owned))),
        b_tag: None,
        state: LegState::Calling,
        a_side,
        b_side: a_side.other(),
        invite_cseq: msg.cseq().map(|c| c.seq).unwrap_or(0),
        joined_by,
        started_at: time,
        answered_at: None,
        ended_at: None,
        end_reason: None,
        last_signal: time,
        endpoints: Vec::new(),
        cancelled: false,
        transfers: Vec::new(),
        holds: Vec::new(),
        org_identities: Vec::new(),
        invite: None,
    }
}

/// Original called numbers (oldest first): History-Info entries before the current target,
/// then Diversion entries from the bottom (oldest) up.
fn original_called_numbers(msg: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let hi = msg.history_info();
    if hi.len() > 1 {
        for h in &hi[..hi.len() - 1] {
            if let Some(u) = h.addr.uri.user_unescaped_opt() {
                out.push(u);
            }
        }
    }
    for d in msg.diversion().iter().rev() {
        if let Some(u) = d.uri.user_unescaped_opt() {
            out.push(u);
        }
    }
    out.truncate(16);
    out
}
