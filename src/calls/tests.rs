//! The call tracker driven by a script, in the manner of quinn-proto's `Pair`: SIP bytes, the
//! addresses they travelled between and a capture time in, [`CallEvent`]s out. No spool, keys,
//! sockets or SIPp: the dialog state machine, the scope decision and the transfer rules on
//! their own, each scenario the message ladder a telephony engineer would draw.

use std::net::SocketAddr;

use super::*;
use crate::entropy::Entropy;
use crate::policy::{Country, ListedNumber, ScopePolicy, ScopeSection};
use crate::time::Timestamp;

const CARRIER: &str = "192.0.2.10:5060";
const PBX: &str = "10.20.0.5:5060";
/// The contact centre's published number, as the carrier sends it.
const LISTED: &str = "02087483020";

/// One tracker and the events it has emitted.
struct Script {
    tracker: CallTracker,
}

impl Script {
    fn new() -> Script {
        let scope = ScopeSection {
            country: "GB".into(),
            extension_max_digits: 6,
            numbers: vec![ListedNumber {
                number: "020 8748 3020".into(),
                service: "Parking".into(),
                retention_days: None,
            }],
            never_record: Vec::new(),
            use_original_called_number: true,
            record_forwarded_to_listed_numbers: false,
            record_consultation_calls: false,
        };
        let policy = ScopePolicy::new(&scope, Country::GB);
        Script {
            tracker: CallTracker::new(policy, CallsSection::default(), Entropy::predictable(7)),
        }
    }

    /// `head` (start line and headers, CRLF-separated) sent from `src` to `dst` at `ms`,
    /// with an SDP offer or answer receiving audio at `media` ("ip", port) when given.
    fn sip(
        &mut self,
        ms: u64,
        (src, dst): (&str, &str),
        head: &str,
        media: Option<(&str, u16)>,
    ) -> Vec<CallEvent> {
        let bytes = message(head, media);
        let msg = crate::sip::parse(&bytes).expect("the script's SIP parses");
        let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        self.tracker
            .on_message(at(ms), &msg, (src, dst), false, &|_| None);
        self.tracker.drain_events().collect()
    }

    fn tick(&mut self, ms: u64) -> Vec<CallEvent> {
        self.tracker.tick(at(ms), &|_| None);
        self.tracker.drain_events().collect()
    }

    fn call(&self, key: CallKey) -> &Call {
        self.tracker.call(key).expect("the call is known")
    }

    /// A call from the public to the listed number, answered by extension 4711 behind the
    /// PBX (tags a1 / b1, Call-ID c1): its key.
    fn answered_call(&mut self) -> CallKey {
        let events = self.sip(
            0,
            (CARRIER, PBX),
            &invite("c1", "a1", LISTED, ""),
            Some(("192.0.2.10", 20000)),
        );
        let key = recorded(&events).expect("the listed number is recorded");
        self.sip(
            20,
            (PBX, CARRIER),
            &answer("c1", 200, 1, "INVITE", LISTED),
            Some(("10.20.1.5", 30000)),
        );
        key
    }
}

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + ms)
}

fn message(head: &str, media: Option<(&str, u16)>) -> Vec<u8> {
    let body = media.map_or(String::new(), |(ip, port)| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        )
    });
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{}\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        head.trim_end(),
        body.len()
    )
    .into_bytes()
}

/// An initial INVITE from the public's number to `to`; `extra` adds headers.
fn invite(call_id: &str, tag: &str, to: &str, extra: &str) -> String {
    format!(
        "INVITE sip:{to}@10.20.0.5 SIP/2.0\r\nFrom: <sip:+447700900123@192.0.2.10>;tag={tag}\r\nTo: <sip:{to}@10.20.0.5>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:+447700900123@192.0.2.10>\r\n{extra}"
    )
}

/// The PBX's response to the caller's request `cseq method` of dialog `call_id` (tags a1 /
/// b1; a 100 Trying carries no To tag).
fn answer(call_id: &str, status: u16, cseq: u32, method: &str, to: &str) -> String {
    let tag = if status == 100 { "" } else { ";tag=b1" };
    format!(
        "SIP/2.0 {status} Reason\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:{to}@10.20.0.5>{tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:4711@10.20.1.5>\r\n"
    )
}

/// An in-dialog request of dialog c1 from the caller (tags a1 / `to_tag`).
fn from_caller(method: &str, cseq: u32, to_tag: &str) -> String {
    format!(
        "{method} sip:4711@10.20.1.5 SIP/2.0\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:{LISTED}@10.20.0.5>;tag={to_tag}\r\nCall-ID: c1\r\nCSeq: {cseq} {method}\r\n"
    )
}

/// An in-dialog request of dialog c1 from the organisation's side (tags b1 / a1).
fn from_organisation(method: &str, cseq: u32, extra: &str) -> String {
    format!(
        "{method} sip:+447700900123@192.0.2.10 SIP/2.0\r\nFrom: <sip:{LISTED}@10.20.0.5>;tag=b1\r\nTo: <sip:+447700900123@192.0.2.10>;tag=a1\r\nCall-ID: c1\r\nCSeq: {cseq} {method}\r\n{extra}"
    )
}

fn recorded(events: &[CallEvent]) -> Option<CallKey> {
    events.iter().find_map(|e| match e {
        CallEvent::Record { call } => Some(*call),
        _ => None,
    })
}

fn ended(events: &[CallEvent]) -> Option<(CallKey, bool)> {
    events.iter().find_map(|e| match e {
        CallEvent::Ended { call, record } => Some((*call, *record)),
        _ => None,
    })
}

/// The media addresses the events announce: (call, address, owner, recorded).
fn endpoints(events: &[CallEvent]) -> Vec<(CallKey, String, Side, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            CallEvent::Endpoint {
                call,
                addr,
                owner,
                record,
                ..
            } => Some((*call, addr.to_string(), *owner, *record)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_to_a_listed_number_is_recorded_from_invite_to_bye() {
    let mut s = Script::new();
    let events = s.sip(
        0,
        (CARRIER, PBX),
        &invite("c1", "a1", LISTED, ""),
        Some(("192.0.2.10", 20000)),
    );
    let key = recorded(&events).expect("recorded from its INVITE");
    assert_eq!(
        endpoints(&events),
        [(key, "192.0.2.10:20000".into(), Side::Caller, true)]
    );
    assert_eq!(s.call(key).decision.service.as_deref(), Some("Parking"));

    s.sip(
        5,
        (PBX, CARRIER),
        &answer("c1", 100, 1, "INVITE", LISTED),
        None,
    );
    assert_eq!(
        s.call(key).legs[0].state,
        LegState::Calling,
        "a 100 makes no dialog"
    );
    s.sip(
        10,
        (PBX, CARRIER),
        &answer("c1", 180, 1, "INVITE", LISTED),
        None,
    );
    assert_eq!(s.call(key).legs[0].state, LegState::Early);
    let events = s.sip(
        20,
        (PBX, CARRIER),
        &answer("c1", 200, 1, "INVITE", LISTED),
        Some(("10.20.1.5", 30000)),
    );
    assert_eq!(
        endpoints(&events),
        [(key, "10.20.1.5:30000".into(), Side::Organisation, true)]
    );
    let leg = &s.call(key).legs[0];
    assert_eq!(
        (leg.state, leg.answered_at),
        (LegState::Confirmed, Some(at(20)))
    );
    assert_eq!(
        leg.org_identities,
        ["4711"],
        "the answering Contact names the agent"
    );

    assert!(
        s.sip(30, (CARRIER, PBX), &from_caller("ACK", 1, "b1"), None)
            .iter()
            .all(|e| !matches!(e, CallEvent::Ended { .. }))
    );
    let events = s.sip(60_000, (CARRIER, PBX), &from_caller("BYE", 2, "b1"), None);
    assert_eq!(ended(&events), Some((key, true)));
    assert_eq!(s.call(key).end_reason(), Some("caller_hangup"));
    assert_eq!(s.call(key).ended_at(), Some(at(60_000)));
}

#[test]
fn a_direct_dialled_extension_is_followed_but_never_recorded() {
    let mut s = Script::new();
    let events = s.sip(
        0,
        (CARRIER, PBX),
        &invite("c1", "a1", "4711", ""),
        Some(("192.0.2.10", 20000)),
    );
    assert_eq!(recorded(&events), None);
    let [(key, _, _, record)] = endpoints(&events)[..] else {
        panic!("{events:?}");
    };
    assert!(!record, "its media is routed only to be dropped");
    assert!(!s.call(key).decision.record);
    s.sip(
        20,
        (PBX, CARRIER),
        &answer("c1", 200, 1, "INVITE", "4711"),
        Some(("10.20.1.5", 30000)),
    );
    let events = s.sip(
        9_000,
        (PBX, CARRIER),
        &from_organisation("BYE", 1, ""),
        None,
    );
    assert_eq!(ended(&events), Some((key, false)));
    assert_eq!(s.call(key).end_reason(), Some("organisation_hangup"));
}

#[test]
fn a_cancel_before_the_answer_ends_the_attempt_as_cancelled() {
    let mut s = Script::new();
    let events = s.sip(
        0,
        (CARRIER, PBX),
        &invite("c1", "a1", LISTED, ""),
        Some(("192.0.2.10", 20000)),
    );
    let key = recorded(&events).unwrap();
    s.sip(
        10,
        (PBX, CARRIER),
        &answer("c1", 180, 1, "INVITE", LISTED),
        None,
    );
    let cancel = invite("c1", "a1", LISTED, "")
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    let events = s.sip(4_000, (CARRIER, PBX), &cancel, None);
    assert_eq!(ended(&events), Some((key, true)));
    assert_eq!(s.call(key).end_reason(), Some("cancelled"));
    assert_eq!(s.tracker.counters.cancels, 1);
    // the 487 that follows changes nothing
    assert!(
        s.sip(
            4_010,
            (PBX, CARRIER),
            &answer("c1", 487, 1, "INVITE", LISTED),
            None
        )
        .is_empty()
    );
    assert_eq!(s.call(key).end_reason(), Some("cancelled"));
}

#[test]
fn a_rejection_ends_the_leg_but_a_challenge_and_retry_does_not() {
    let mut s = Script::new();
    let events = s.sip(
        0,
        (CARRIER, PBX),
        &invite("c1", "a1", LISTED, ""),
        Some(("192.0.2.10", 20000)),
    );
    let key = recorded(&events).unwrap();
    assert_eq!(
        ended(&s.sip(
            5,
            (PBX, CARRIER),
            &answer("c1", 407, 1, "INVITE", LISTED),
            None
        )),
        None
    );
    let retry = invite(
        "c1",
        "a1",
        LISTED,
        "Proxy-Authorization: Digest username=\"x\"\r\n",
    )
    .replace("CSeq: 1", "CSeq: 2");
    s.sip(10, (CARRIER, PBX), &retry, Some(("192.0.2.10", 20000)));
    // a late answer to the challenged INVITE no longer counts; the retry's does
    s.sip(
        15,
        (PBX, CARRIER),
        &answer("c1", 200, 1, "INVITE", LISTED),
        None,
    );
    assert_eq!(s.call(key).legs[0].state, LegState::Calling);
    let events = s.sip(
        20,
        (PBX, CARRIER),
        &answer("c1", 486, 2, "INVITE", LISTED),
        None,
    );
    assert_eq!(ended(&events), Some((key, true)));
    assert_eq!(s.call(key).end_reason(), Some("rejected_486"));
}

#[test]
fn a_reinvite_is_counted_and_moves_the_callers_media() {
    let mut s = Script::new();
    let key = s.answered_call();
    let reinvite = from_caller("INVITE", 2, "b1");
    let events = s.sip(
        5_000,
        (CARRIER, PBX),
        &reinvite,
        Some(("192.0.2.10", 20100)),
    );
    assert_eq!(s.tracker.counters.reinvites, 1);
    assert!(
        endpoints(&events).contains(&(key, "192.0.2.10:20100".into(), Side::Caller, true)),
        "{events:?}"
    );
    assert_eq!(s.call(key).legs[0].state, LegState::Confirmed);
}

#[test]
fn the_bye_releasing_another_fork_does_not_end_the_conversation() {
    let mut s = Script::new();
    let key = s.answered_call();
    let other_fork = from_caller("BYE", 2, "b2");
    assert_eq!(ended(&s.sip(100, (CARRIER, PBX), &other_fork, None)), None);
    assert_eq!(s.call(key).legs[0].state, LegState::Confirmed);
    let events = s.sip(200, (CARRIER, PBX), &from_caller("BYE", 3, "b1"), None);
    assert_eq!(ended(&events), Some((key, true)));
}

#[test]
fn a_blind_transfer_keeps_the_call_open_for_the_transferee_and_records_it() {
    let mut s = Script::new();
    let key = s.answered_call();
    let refer = from_organisation(
        "REFER",
        1,
        "Refer-To: <sip:4712@10.20.0.5>\r\nReferred-By: <sip:4711@10.20.0.5>\r\n",
    );
    s.sip(10_000, (PBX, CARRIER), &refer, None);
    assert_eq!(s.tracker.counters.refers, 1);
    // the retransmission of the same REFER is the same transfer
    s.sip(10_500, (PBX, CARRIER), &refer, None);
    assert_eq!(s.call(key).legs[0].transfers.len(), 1);
    let notify = from_organisation(
        "NOTIFY",
        2,
        "Event: refer\r\nContent-Type: message/sipfrag\r\n",
    );
    let notify = format!("{notify}\r\nSIP/2.0 200 OK");
    let bytes = notify.replace("\r\n\r\nSIP", "\r\nContent-Length: 15\r\n\r\nSIP");
    let msg = crate::sip::parse(bytes.as_bytes()).unwrap();
    s.tracker.on_message(
        at(10_600),
        &msg,
        (PBX.parse().unwrap(), CARRIER.parse().unwrap()),
        false,
        &|_| None,
    );
    assert_eq!(
        s.call(key).legs[0].transfers[0].status,
        Some(200),
        "refer progress from the sipfrag"
    );

    // the transferor hangs up: the call waits for its transferee
    let events = s.sip(
        10_700,
        (PBX, CARRIER),
        &from_organisation("BYE", 3, ""),
        None,
    );
    assert_eq!(ended(&events), None);

    // the PBX sends the caller on to 4712, saying who referred it
    let transferee = "INVITE sip:4712@10.20.0.5 SIP/2.0\r\nFrom: <sip:+447700900123@10.20.0.5>;tag=t1\r\nTo: <sip:4712@10.20.1.6>\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nReferred-By: <sip:4711@10.20.0.5>\r\n";
    let events = s.sip(
        11_000,
        (PBX, "10.20.1.6:5060"),
        transferee,
        Some(("10.20.0.5", 40000)),
    );
    assert_eq!(
        recorded(&events),
        None,
        "no second recording: the same call goes on"
    );
    assert!(
        endpoints(&events)
            .iter()
            .all(|(call, _, _, record)| *call == key && *record),
        "{events:?}"
    );
    let legs = &s.call(key).legs;
    assert_eq!(legs.len(), 2);
    assert_eq!(legs[1].joined_by, JoinedBy::Refer);

    let bye = "BYE sip:4712@10.20.1.6 SIP/2.0\r\nFrom: <sip:+447700900123@10.20.0.5>;tag=t1\r\nTo: <sip:4712@10.20.1.6>;tag=u1\r\nCall-ID: c2\r\nCSeq: 2 BYE\r\n";
    let events = s.sip(70_000, (PBX, "10.20.1.6:5060"), bye, None);
    assert_eq!(ended(&events), Some((key, true)));
}

#[test]
fn a_transfer_of_an_unrecorded_call_stays_unrecorded_whatever_it_dials() {
    let mut s = Script::new();
    // the caller dialled a staff member directly, who transfers to the contact centre
    let events = s.sip(
        0,
        (CARRIER, PBX),
        &invite("c1", "a1", "4711", ""),
        Some(("192.0.2.10", 20000)),
    );
    assert_eq!(recorded(&events), None);
    let key = endpoints(&events)[0].0;
    s.sip(
        20,
        (PBX, CARRIER),
        &answer("c1", 200, 1, "INVITE", "4711"),
        Some(("10.20.1.5", 30000)),
    );
    let refer = from_organisation(
        "REFER",
        1,
        &format!("Refer-To: <sip:{LISTED}@10.20.0.5>\r\nReferred-By: <sip:4711@10.20.0.5>\r\n"),
    )
    .replace(&format!("From: <sip:{LISTED}@"), "From: <sip:4711@");
    s.sip(5_000, (PBX, CARRIER), &refer, None);
    let transferee = format!(
        "INVITE sip:{LISTED}@10.20.0.5 SIP/2.0\r\nFrom: <sip:+447700900123@10.20.0.5>;tag=t1\r\nTo: <sip:{LISTED}@10.20.0.5>\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nReferred-By: <sip:4711@10.20.0.5>\r\n"
    );
    let events = s.sip(
        5_500,
        (PBX, "10.20.1.7:5060"),
        &transferee,
        Some(("10.20.0.5", 40000)),
    );
    assert_eq!(
        recorded(&events),
        None,
        "the listed number does not make it in scope"
    );
    assert!(
        endpoints(&events)
            .iter()
            .all(|(call, _, _, record)| *call == key && !record),
        "{events:?}"
    );
    assert_eq!(s.call(key).legs.len(), 2);
}

#[test]
fn an_attended_transfer_by_replaces_joins_the_call() {
    let mut s = Script::new();
    let key = s.answered_call();
    let replacing = "INVITE sip:4711@10.20.1.5 SIP/2.0\r\nFrom: <sip:4712@10.20.0.5>;tag=r1\r\nTo: <sip:4711@10.20.1.5>\r\nCall-ID: c3\r\nCSeq: 1 INVITE\r\nReplaces: c1;to-tag=b1;from-tag=a1\r\n";
    let events = s.sip(
        20_000,
        (PBX, "10.20.1.5:5060"),
        replacing,
        Some(("10.20.1.6", 30006)),
    );
    assert_eq!(recorded(&events), None);
    assert!(!endpoints(&events).is_empty());
    assert!(
        endpoints(&events)
            .iter()
            .all(|(call, _, _, record)| *call == key && *record),
        "{events:?}"
    );
    assert_eq!(s.call(key).legs[1].joined_by, JoinedBy::Replaces);
}

#[test]
fn a_call_that_goes_quiet_ends_on_the_rtp_timeout() {
    let mut s = Script::new();
    let key = s.answered_call();
    assert_eq!(ended(&s.tick(60_000)), None);
    let events = s.tick(200_000);
    assert_eq!(ended(&events), Some((key, true)));
    assert_eq!(s.call(key).end_reason(), Some("rtp_timeout"));
}

/// An SDP offer receiving audio at `ip:port` with the direction attribute `direction`.
fn offer(ip: &str, port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=- 1 2 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n{direction}"
    )
}

impl Script {
    /// `head` with an SDP `body` of its own.
    fn sip_sdp(
        &mut self,
        ms: u64,
        (src, dst): (&str, &str),
        head: &str,
        body: &str,
    ) -> Vec<CallEvent> {
        let bytes = format!(
            "{}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            head.trim_end(),
            body.len()
        )
        .into_bytes();
        let msg = crate::sip::parse(&bytes).expect("the script's SIP parses");
        self.tracker.on_message(
            at(ms),
            &msg,
            (src.parse().unwrap(), dst.parse().unwrap()),
            false,
            &|_| None,
        );
        self.tracker.drain_events().collect()
    }
}

#[test]
fn holds_are_noted_with_who_held_and_when_they_ended() {
    let mut s = Script::new();
    let key = s.answered_call();
    // the agent holds (sendonly), the retransmission is the same hold, then takes the caller back
    let hold = from_organisation("INVITE", 2, "");
    s.sip_sdp(
        5_000,
        (PBX, CARRIER),
        &hold,
        &offer("10.20.1.5", 30000, "a=sendonly\r\n"),
    );
    s.sip_sdp(
        5_100,
        (PBX, CARRIER),
        &hold,
        &offer("10.20.1.5", 30000, "a=sendonly\r\n"),
    );
    s.sip_sdp(
        9_000,
        (PBX, CARRIER),
        &from_organisation("INVITE", 3, ""),
        &offer("10.20.1.5", 30000, "a=sendrecv\r\n"),
    );
    // the caller's phone holds the old way (c=0.0.0.0) and the call ends on hold
    s.sip_sdp(
        12_000,
        (CARRIER, PBX),
        &from_caller("INVITE", 2, "b1"),
        &offer("0.0.0.0", 20000, ""),
    );
    let holds = &s.call(key).legs[0].holds;
    assert_eq!(holds.len(), 2, "{holds:?}");
    assert_eq!(holds[0].by, Side::Organisation);
    assert_eq!(
        (holds[0].started_at, holds[0].ended_at),
        (at(5_000), Some(at(9_000)))
    );
    assert_eq!(
        (holds[1].by, holds[1].started_at, holds[1].ended_at),
        (Side::Caller, at(12_000), None)
    );
    // an offer before the answer is not a hold (early media set up sendonly)
    let mut s = Script::new();
    let events = s.sip_sdp(
        0,
        (CARRIER, PBX),
        &invite("c1", "a1", LISTED, ""),
        &offer("192.0.2.10", 20000, "a=sendonly\r\n"),
    );
    let key = recorded(&events).expect("the call");
    assert!(s.call(key).legs[0].holds.is_empty());
}
