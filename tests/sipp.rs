//! Real SIP user agents on loopback: SIPp (Debian's sip-tester) plays the caller, the agent's
//! phone and the back office, each streaming its own A-law signal; tcpdump captures the
//! traffic; the capture is replayed through callvault with the example configuration; the
//! recording is decrypted and each channel is compared with what the matching endpoint sent,
//! and window by window with when that endpoint streamed according to the capture.
//!
//! Scenario files live in `tests/sipp/`. Every test uses its own loopback network
//! (127.0.N.0/24), so the tests run in parallel. They need root (tcpdump), `sipp` and
//! `tcpdump` (`tests/run.sh` installs them); without those they say SKIPPED, and fail under
//! CI (`CI=true`), where the test command has installed them.

mod common;
mod lab;

use lab::agent::{LiveAgent, assert_no_drops, enter_own_network_namespace};
use lab::*;

use std::process::{Command, Stdio};
use std::time::Duration;

use callvault::record::CallRecord;

// ---------------------------------------------------------------------------------------
// Scenarios

/// A caller rings the Switchboard (a listed number); the agent (extension 4711) answers;
/// both talk for 3 s and the caller hangs up.
#[test]
fn a_call_to_the_switchboard_is_recorded_with_each_side_on_its_channel() {
    let Some(mut lab) = Lab::new("switchboard", 1) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 1);
    let agent = Signal::noise("agent", 'A', 2);
    lab.capture();
    lab.sipp(
        "agent",
        "uas.xml",
        2,
        5060,
        17000,
        &agent,
        &["-set", "user", "4711", "-set", "tag", "ag1"],
    );
    let agent_addr = lab.addr(2, 5060);
    lab.sipp(
        "caller",
        "uac.xml",
        1,
        5060,
        16000,
        &caller,
        &[
            &agent_addr,
            "-s",
            SWITCHBOARD,
            "-set",
            "caller",
            CALLER,
            "-set",
            "tag",
            "cl1",
            "-d",
            "3000",
        ],
    );
    lab.wait("caller");
    lab.wait("agent");
    let out = lab.replay();
    out.print();

    let rec = out.the_call();
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    assert_eq!(rec.decision.rule, "listed_number");
    assert_eq!(rec.caller, CALLER);
    assert_eq!(joined(rec), ["initial"]);
    assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
    for direction in ["from_caller", "from_organisation"] {
        assert!(
            rec.streams
                .iter()
                .any(|s| s.direction == direction && s.decoded && s.packets > 50),
            "{direction}: {:?}",
            rec.streams
        );
    }
    let (left, right) = out.audio(rec);
    let everyone = [&caller, &agent];
    let left_heard = listen("left", &left, &everyone);
    let right_heard = listen("right", &right, &everyone);
    assert_no_packet_dropped(rec);
    assert_heard("left", &left_heard, &["caller"], 20);
    assert_heard("right", &right_heard, &["agent"], 20);
    out.assert_no_plaintext(&everyone);
}

/// The same caller direct-dials a staff member's DDI, which is not a listed number.
#[test]
fn a_direct_dial_to_a_staff_ddi_leaves_nothing_on_disk() {
    let Some(mut lab) = Lab::new("staff_ddi", 2) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 11);
    let staff = Signal::noise("staff", 'S', 12);
    lab.capture();
    lab.sipp(
        "staff",
        "uas.xml",
        2,
        5060,
        17000,
        &staff,
        &["-set", "user", "4711", "-set", "tag", "st1"],
    );
    let staff_addr = lab.addr(2, 5060);
    lab.sipp(
        "caller",
        "uac.xml",
        1,
        5060,
        16000,
        &caller,
        &[
            &staff_addr,
            "-s",
            STAFF_DDI,
            "-set",
            "caller",
            CALLER,
            "-set",
            "tag",
            "cl1",
            "-d",
            "2000",
        ],
    );
    lab.wait("caller");
    lab.wait("staff");
    let out = lab.replay();
    out.print();

    let s = &out.report.summary;
    assert!(out.report.recorded.is_empty(), "{s}");
    assert_eq!(s.calls.calls_seen, 1, "{s}");
    assert_eq!(
        s.calls.not_recorded_by_rule.get("unlisted_number"),
        Some(&1)
    );
    assert_eq!(s.routes.rtp_recorded, 0, "{s}");
    assert!(
        s.routes.rtp_out_of_scope > 100,
        "the call's RTP was seen and dropped: {s}"
    );
    out.assert_spool_empty();
}

/// Extension 4711 calls extension 4712: staff to staff.
#[test]
fn an_internal_call_between_extensions_leaves_nothing_on_disk() {
    let Some(mut lab) = Lab::new("internal", 3) else {
        return;
    };
    let a = Signal::noise("4711", '1', 21);
    let b = Signal::noise("4712", '2', 22);
    lab.capture();
    lab.sipp(
        "ext4712",
        "uas.xml",
        2,
        5060,
        17000,
        &b,
        &["-set", "user", "4712", "-set", "tag", "b1"],
    );
    let b_addr = lab.addr(2, 5060);
    lab.sipp(
        "ext4711",
        "uac.xml",
        1,
        5060,
        16000,
        &a,
        &[
            &b_addr, "-s", "4712", "-set", "caller", "4711", "-set", "tag", "a1", "-d", "2000",
        ],
    );
    lab.wait("ext4711");
    lab.wait("ext4712");
    let out = lab.replay();
    out.print();

    let s = &out.report.summary;
    assert!(out.report.recorded.is_empty(), "{s}");
    assert_eq!(s.calls.calls_seen, 1, "{s}");
    assert_eq!(s.calls.not_recorded_by_rule.get("internal_call"), Some(&1));
    assert_eq!(s.routes.rtp_recorded, 0, "{s}");
    assert!(s.routes.rtp_out_of_scope > 100, "{s}");
    out.assert_spool_empty();
}

/// Blind transfer: the agent answers the Switchboard call, talks, REFERs the caller to the
/// back office (4712) and hangs up; the caller's phone (a second SIPp process on the same
/// address and media port, new Call-ID) INVITEs 4712 with Referred-By; the back office
/// answers and talks; the caller hangs up.
#[test]
fn a_blind_transfer_to_the_back_office_is_one_recording_of_the_whole_conversation() {
    blind_transfer("blind_transfer", 4, "4712");
}

/// A blind transfer to another contact-centre queue: the agent REFERs the Switchboard
/// caller to Parking (another listed number) and the transferee INVITE (Referred-By)
/// dials it. Still one call, under the service it was first decided for (README,
/// "Transfers").
#[test]
fn a_blind_transfer_to_another_listed_queue_stays_one_switchboard_call() {
    if let Some(rec) = blind_transfer("transfer_to_queue", 16, "02073715678") {
        assert_eq!(rec.legs[1].dialled, "02073715678");
        assert_eq!(rec.dialled_raw, SWITCHBOARD);
    }
}

/// The blind transfer of a Switchboard call to `target` (the user of the Refer-To and of
/// the transferee's Request-URI, answered at 127.0.net.3): checks it is one recorded
/// Switchboard call of two legs with each party where and when it spoke; returns it (None
/// when the tools are missing).
fn blind_transfer(test: &str, net: u8, target: &str) -> Option<CallRecord> {
    let mut lab = Lab::new(test, net)?;
    let caller = Signal::noise("caller", 'C', 31);
    let agent = Signal::noise("agent", 'A', 32);
    let back_office = Signal::noise("back_office", 'B', 33);
    let back_office_addr = lab.addr(3, 5060);
    let agent_addr = lab.addr(2, 5060);
    let refer_to = format!("sip:{target}@{back_office_addr}");
    let referred_by = format!("sip:4711@{}", lab.ip(2));
    lab.capture();
    lab.sipp(
        "back_office",
        "uas.xml",
        3,
        5060,
        18000,
        &back_office,
        &["-set", "user", "4712", "-set", "tag", "bo1"],
    );
    lab.sipp(
        "agent",
        "agent_refer.xml",
        2,
        5060,
        17000,
        &agent,
        &[
            "-set", "user", "4711", "-set", "tag", "ag1", "-set", "target", &refer_to, "-d", "3000",
        ],
    );
    lab.sipp(
        "caller",
        "caller_referred.xml",
        1,
        5060,
        16000,
        &caller,
        &[
            &agent_addr,
            "-s",
            SWITCHBOARD,
            "-set",
            "caller",
            CALLER,
            "-set",
            "tag",
            "cl1",
        ],
    );
    lab.wait("caller");
    lab.wait("agent");
    lab.transferee(
        1,
        16000,
        &caller,
        &back_office_addr,
        target,
        &referred_by,
        ("Subject", "blind transfer"),
    );
    lab.wait("transferee");
    lab.wait("back_office");
    let out = lab.replay();
    out.print();
    let cap = lab.captured();

    let s = &out.report.summary;
    let rec = out.the_call();
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    assert_eq!(rec.decision.rule, "listed_number");
    assert_eq!(joined(rec), ["initial", "refer"]);
    assert_eq!(rec.sip_call_ids.len(), 2);
    assert_eq!(rec.legs[1].dialled, target);
    assert_eq!(s.calls.calls_seen, 1, "one conversation: {s}");
    assert_eq!(s.calls.calls_recorded, 1, "{s}");
    assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
    let (left, right) = out.audio(rec);
    let everyone = [&caller, &agent, &back_office];
    let left_heard = listen("left", &left, &everyone);
    let right_heard = listen("right", &right, &everyone);
    out.assert_no_plaintext(&everyone);
    assert_no_packet_dropped(rec);
    assert_heard("left", &left_heard, &["caller"], 40);
    assert_heard("right", &right_heard, &["agent", "back_office"], 20);

    // before and after the transferee's INVITE, window by window against the capture
    let start = recording_start(rec);
    let transfer =
        first_sip(&cap, &format!("INVITE sip:{target}@")).expect("transferee INVITE captured");
    let split = (((transfer - start) / 0.1) as usize).min(right_heard.len());
    let caller_sent = rtp_times(&cap, lab.sock(1, 16000));
    let agent_sent = rtp_times(&cap, lab.sock(2, 17000));
    let back_office_sent = rtp_times(&cap, lab.sock(3, 18000));
    assert_follows_capture("left", &left_heard, "caller", &caller_sent, start);
    assert_follows_capture(
        "right before the transfer",
        &right_heard[..split],
        "agent",
        &agent_sent,
        start,
    );
    assert_follows_capture(
        "right after the transfer",
        &right_heard[split..],
        "back_office",
        &back_office_sent,
        start + split as f64 * 0.1,
    );
    Some(rec.clone())
}

/// Attended transfer: while the caller talks to the agent, the agent's phone consults the
/// back office (4711 -> 4712, an internal call on another port of the agent's phone and of
/// the back office's phone), then REFERs the caller with Refer-To carrying Replaces naming
/// the consultation; the caller's phone INVITEs the back office with that Replaces.
#[test]
fn an_attended_transfer_records_the_conversation_but_not_the_consultation() {
    let Some(mut lab) = Lab::new("attended_transfer", 5) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 41);
    let agent = Signal::noise("agent", 'A', 42);
    let agent_consulting = Signal::noise("agent_consulting", 'a', 43);
    let back_office_consulted = Signal::noise("back_office_consulted", 'b', 44);
    let back_office = Signal::noise("back_office", 'B', 45);
    let consult_call_id = format!("consult-1@{}", lab.ip(2));
    let replaces = format!("{consult_call_id};to-tag=bo1;from-tag=ag2");
    let escaped = replaces
        .replace('@', "%40")
        .replace(';', "%3B")
        .replace('=', "%3D");
    let refer_to = format!("sip:4712@{}?Replaces={escaped}", lab.addr(3, 5062));
    let referred_by = format!("sip:4711@{}", lab.ip(2));
    let agent_addr = lab.addr(2, 5060);
    let consulted_addr = lab.addr(3, 5060);
    let back_office_addr = lab.addr(3, 5062);
    lab.capture();
    lab.sipp(
        "back_office_consulted",
        "uas.xml",
        3,
        5060,
        18000,
        &back_office_consulted,
        &["-set", "user", "4712", "-set", "tag", "bo1"],
    );
    lab.sipp(
        "back_office",
        "uas.xml",
        3,
        5062,
        18010,
        &back_office,
        &["-set", "user", "4712", "-set", "tag", "bo2"],
    );
    lab.sipp(
        "agent",
        "agent_refer.xml",
        2,
        5060,
        17000,
        &agent,
        &[
            "-set", "user", "4711", "-set", "tag", "ag1", "-set", "target", &refer_to, "-d", "4000",
        ],
    );
    lab.sipp(
        "caller",
        "caller_referred.xml",
        1,
        5060,
        16000,
        &caller,
        &[
            &agent_addr,
            "-s",
            SWITCHBOARD,
            "-set",
            "caller",
            CALLER,
            "-set",
            "tag",
            "cl1",
        ],
    );
    // the consultation starts a second into the conversation
    std::thread::sleep(Duration::from_millis(1000));
    lab.sipp(
        "agent_consulting",
        "uac.xml",
        2,
        5062,
        17010,
        &agent_consulting,
        &[
            &consulted_addr,
            "-s",
            "4712",
            "-set",
            "caller",
            "4711",
            "-set",
            "tag",
            "ag2",
            "-cid_str",
            &consult_call_id,
            "-d",
            "4000",
        ],
    );
    lab.wait("caller");
    lab.wait("agent");
    lab.transferee(
        1,
        16000,
        &caller,
        &back_office_addr,
        "4712",
        &referred_by,
        ("Replaces", &replaces),
    );
    lab.wait("agent_consulting");
    lab.wait("back_office_consulted");
    lab.wait("transferee");
    lab.wait("back_office");
    let out = lab.replay();
    out.print();

    let s = &out.report.summary;
    let rec = out.the_call();
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    assert_eq!(joined(rec), ["initial", "refer"]);
    assert!(
        !rec.sip_call_ids.contains(&consult_call_id),
        "{:?}",
        rec.sip_call_ids
    );
    assert_eq!(s.calls.not_recorded_by_rule.get("internal_call"), Some(&1));
    assert!(
        s.routes.rtp_out_of_scope > 100,
        "the consultation's RTP was dropped: {s}"
    );
    let (left, right) = out.audio(rec);
    let everyone = [
        &caller,
        &agent,
        &agent_consulting,
        &back_office_consulted,
        &back_office,
    ];
    let left_heard = listen("left", &left, &everyone);
    let right_heard = listen("right", &right, &everyone);
    for (channel, heard) in [("left", &left_heard), ("right", &right_heard)] {
        assert!(
            !heard.iter().any(|h| matches!(
                h,
                Heard::Party("agent_consulting" | "back_office_consulted", _)
            )),
            "{channel}: the consultation is in the recording"
        );
    }
    out.assert_no_plaintext(&everyone);
    assert_no_packet_dropped(rec);
    assert_heard("left", &left_heard, &["caller"], 40);
    assert_heard("right", &right_heard, &["agent", "back_office"], 20);
}

/// Hold: the agent answers a Switchboard call, talks, puts the caller on hold (re-INVITE
/// a=sendonly, answered a=recvonly; both phones stop streaming), takes the caller off hold
/// (re-INVITE a=sendrecv) and both talk again until the caller hangs up.
#[test]
fn a_call_put_on_hold_is_one_recording_with_the_hold_silent_on_both_channels() {
    hold_call("hold", 6, "sendonly", "recvonly");
}

/// The same with the other way phones put calls on hold: a=inactive, answered a=inactive.
#[test]
fn a_call_put_on_hold_with_inactive_is_one_recording_with_the_hold_silent() {
    hold_call("hold_inactive", 14, "inactive", "inactive");
}

/// A Switchboard call put on hold by the agent with re-INVITE a=`hold`, answered
/// a=`answer`, and taken off hold with a=sendrecv (1.5 s of talk, hold, talk).
fn hold_call(test: &str, net: u8, hold: &str, answer: &str) {
    let Some(mut lab) = Lab::new(test, net) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 51);
    let agent = Signal::noise("agent", 'A', 52);
    lab.capture();
    lab.phone(
        "agent",
        "agent_hold.xml",
        2,
        17000,
        &agent,
        "4711",
        "ag1",
        &["-set", "hold", hold, "-set", "held", "1500", "-d", "1500"],
    );
    lab.dial(
        "caller",
        "caller_held.xml",
        1,
        16000,
        &caller,
        2,
        SWITCHBOARD,
        CALLER,
        "cl1",
        &["-set", "held_answer", answer, "-d", "1500"],
    );
    lab.wait("caller");
    lab.wait("agent");
    let out = lab.replay();
    out.print();
    let cap = lab.captured();

    let s = &out.report.summary;
    assert_eq!(s.calls.calls_seen, 1, "{s}");
    assert!(s.calls.reinvites >= 2, "both re-INVITEs seen: {s}");
    let rec = out.the_call();
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    assert_eq!(joined(rec), ["initial"]);
    assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
    assert_no_packet_dropped(rec);

    // what the phones did, from the capture
    let caller_sent = rtp_times(&cap, lab.sock(1, 16000));
    let agent_sent = rtp_times(&cap, lab.sock(2, 17000));
    for (who, sent) in [("caller", &caller_sent), ("agent", &agent_sent)] {
        let (from, to) = longest_gap(sent);
        println!(
            "  {who} on hold from {from:.3} to {to:.3} ({:.2} s)",
            to - from
        );
        assert!(
            to - from > 1.0,
            "{who} never stopped streaming for the hold"
        );
    }

    let (left, right) = out.audio(rec);
    let everyone = [&caller, &agent];
    let left_heard = listen("left", &left, &everyone);
    let right_heard = listen("right", &right, &everyone);
    out.assert_no_plaintext(&everyone);
    assert_heard("left", &left_heard, &["caller"], 20);
    assert_heard("right", &right_heard, &["agent"], 20);
    let start = recording_start(rec);
    assert_follows_capture("left", &left_heard, "caller", &caller_sent, start);
    assert_follows_capture("right", &right_heard, "agent", &agent_sent, start);

    // the recording is as long as the call: from the answer to the BYE
    let answered = first_sip(&cap, "SIP/2.0 200").expect("200 OK captured");
    let bye = first_sip(&cap, "BYE ").expect("BYE captured");
    let wall = bye - answered;
    let recorded = left.len() as f64 / 8000.0;
    println!(
        "  call {wall:.3} s from answer to BYE, recording {recorded:.3} s (audio_ms {})",
        rec.audio_ms
    );
    assert!(
        (recorded - wall).abs() <= 0.3,
        "recording {recorded:.3} s, call {wall:.3} s"
    );
    assert!((rec.audio_ms as f64 / 1000.0 - wall).abs() <= 0.3);
}

/// Early media: the agent's side answers the Switchboard call with 183 Session Progress and
/// SDP and streams (ringback, an announcement) for a second before its 200 OK; the caller
/// streams from the answer on.
#[test]
fn early_media_before_the_answer_is_on_the_organisation_channel() {
    let Some(mut lab) = Lab::new("early_media", 7) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 61);
    let agent = Signal::noise("agent", 'A', 62);
    lab.capture();
    lab.phone(
        "agent",
        "uas_early_media.xml",
        2,
        17000,
        &agent,
        "4711",
        "ag1",
        &["-d", "1000"],
    );
    lab.dial(
        "caller",
        "uac.xml",
        1,
        16000,
        &caller,
        2,
        SWITCHBOARD,
        CALLER,
        "cl1",
        &["-d", "2000"],
    );
    lab.wait("caller");
    lab.wait("agent");
    let out = lab.replay();
    out.print();
    let cap = lab.captured();

    let progress = first_sip(&cap, "SIP/2.0 183").expect("183 captured");
    let answered = first_sip(&cap, "SIP/2.0 200").expect("200 OK captured");
    let caller_sent = rtp_times(&cap, lab.sock(1, 16000));
    let agent_sent = rtp_times(&cap, lab.sock(2, 17000));
    let early = agent_sent.iter().filter(|&&t| t < answered).count();
    println!(
        "  183 to 200 OK: {:.3} s, {early} packets of early media",
        answered - progress
    );
    assert!(early >= 40, "the agent's side streamed before the answer");
    assert!(caller_sent.iter().all(|&t| t > answered));

    let rec = out.the_call();
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
    assert_no_packet_dropped(rec);
    let org = rec
        .streams
        .iter()
        .find(|s| s.direction == "from_organisation")
        .expect("organisation stream");
    let answered_at = epoch_seconds(rec.answered_at.as_deref().expect("answered_at"));
    assert!(
        epoch_seconds(&org.first_seen) < answered_at - 0.5,
        "the organisation's stream starts before the answer: {org:?}, answered {:?}",
        rec.answered_at
    );
    let (left, right) = out.audio(rec);
    let everyone = [&caller, &agent];
    let left_heard = listen("left", &left, &everyone);
    let right_heard = listen("right", &right, &everyone);
    out.assert_no_plaintext(&everyone);
    assert_heard("left", &left_heard, &["caller"], 15);
    assert_heard("right", &right_heard, &["agent"], 25);
    let start = recording_start(rec);
    assert_follows_capture("left", &left_heard, "caller", &caller_sent, start);
    assert_follows_capture("right", &right_heard, "agent", &agent_sent, start);
    // before the answer: the agent's side on the right, silence on the left
    let before = ((answered - start) / 0.1) as usize;
    assert!(
        before >= 8,
        "the recording starts {before} windows before the answer"
    );
    for (i, (l, r)) in left_heard
        .iter()
        .zip(&right_heard)
        .take(before - 1)
        .enumerate()
    {
        assert!(
            *l == Heard::Silence && matches!(r, Heard::Party("agent", _)),
            "window {i} before the answer: left {l:?}, right {r:?}"
        );
    }
}

/// The caller rings the Switchboard and gives up before anyone answers (CANCEL, 487).
#[test]
fn a_cancelled_call_to_the_switchboard_has_metadata_and_no_audio() {
    let Some(mut lab) = Lab::new("cancel", 8) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 71);
    let agent = Signal::noise("agent", 'A', 72);
    lab.capture();
    lab.phone(
        "agent",
        "uas_ringing.xml",
        2,
        17000,
        &agent,
        "4711",
        "ag1",
        &[],
    );
    lab.dial(
        "caller",
        "uac_cancel.xml",
        1,
        16000,
        &caller,
        2,
        SWITCHBOARD,
        CALLER,
        "cl1",
        &["-d", "1000"],
    );
    lab.wait("caller");
    lab.wait("agent");
    let out = lab.replay();
    out.print();
    let cap = lab.captured();
    assert!(first_sip(&cap, "CANCEL ").is_some() && first_sip(&cap, "SIP/2.0 487").is_some());

    let rec = out.the_call();
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    assert_eq!(rec.decision.rule, "listed_number");
    assert_eq!(rec.end_reason.as_deref(), Some("cancelled"));
    assert_eq!(rec.answered_at, None);
    assert!(rec.segments.is_empty(), "{:?}", rec.segments);
    assert_eq!(rec.audio_ms, 0);
    assert_spool_holds_only(&out, &[rec]);
}

/// The agent's phone is busy: 486 to the Switchboard call.
#[test]
fn a_call_rejected_busy_has_metadata_and_no_audio() {
    let Some(mut lab) = Lab::new("busy", 9) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 81);
    let agent = Signal::noise("agent", 'A', 82);
    lab.capture();
    lab.phone(
        "agent",
        "uas_busy.xml",
        2,
        17000,
        &agent,
        "4711",
        "ag1",
        &[],
    );
    lab.dial(
        "caller",
        "uac_busy.xml",
        1,
        16000,
        &caller,
        2,
        SWITCHBOARD,
        CALLER,
        "cl1",
        &[],
    );
    lab.wait("caller");
    lab.wait("agent");
    let out = lab.replay();
    out.print();
    let cap = lab.captured();
    assert!(first_sip(&cap, "SIP/2.0 486").is_some());

    let rec = out.the_call();
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    assert_eq!(rec.end_reason.as_deref(), Some("rejected_486"));
    assert_eq!(rec.answered_at, None);
    assert!(rec.segments.is_empty(), "{:?}", rec.segments);
    assert_spool_holds_only(&out, &[rec]);
}

/// The Switchboard forwards unconditionally to a duty officer's mobile: the INVITE that
/// reaches the mobile has the mobile as Request-URI and the Switchboard in Diversion.
#[test]
fn a_call_forwarded_from_the_switchboard_to_a_mobile_is_recorded() {
    let Some(mut lab) = Lab::new("forwarded_from_listed", 10) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 91);
    let officer = Signal::noise("duty_officer", 'D', 92);
    let diversion = format!(
        "Diversion: <sip:{SWITCHBOARD}@{}>;reason=unconditional;counter=1",
        lab.ip(9)
    );
    lab.capture();
    lab.phone(
        "duty_officer",
        "uas.xml",
        2,
        17000,
        &officer,
        "07700900999",
        "do1",
        &[],
    );
    lab.dial(
        "caller",
        "uac_forwarded.xml",
        1,
        16000,
        &caller,
        2,
        "07700900999",
        CALLER,
        "cl1",
        &["-set", "forwarding", &diversion, "-d", "2000"],
    );
    lab.wait("caller");
    lab.wait("duty_officer");
    let out = lab.replay();
    out.print();
    let cap = lab.captured();

    let rec = out.the_call();
    assert_eq!(rec.decision.rule, "forwarded_from_listed_number");
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    assert_eq!(rec.dialled_raw, "07700900999");
    assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
    assert_no_packet_dropped(rec);
    let (left, right) = out.audio(rec);
    let everyone = [&caller, &officer];
    let left_heard = listen("left", &left, &everyone);
    let right_heard = listen("right", &right, &everyone);
    out.assert_no_plaintext(&everyone);
    assert_heard("left", &left_heard, &["caller"], 15);
    assert_heard("right", &right_heard, &["duty_officer"], 15);
    let start = recording_start(rec);
    let caller_sent = rtp_times(&cap, lab.sock(1, 16000));
    let officer_sent = rtp_times(&cap, lab.sock(2, 17000));
    assert_follows_capture("left", &left_heard, "caller", &caller_sent, start);
    assert_follows_capture("right", &right_heard, "duty_officer", &officer_sent, start);
}

/// A staff member's DDI forwards to the Switchboard: the INVITE reaching the Switchboard
/// carries History-Info with the DDI first. The caller dialled a staff line, outside scope.
#[test]
fn a_staff_ddi_forwarded_to_the_switchboard_leaves_nothing_on_disk() {
    let Some(mut lab) = Lab::new("forwarded_to_listed", 11) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 101);
    let agent = Signal::noise("agent", 'A', 102);
    let pbx = lab.ip(9);
    let history = format!(
        "History-Info: <sip:{STAFF_DDI}@{pbx}>;index=1, <sip:{SWITCHBOARD}@{pbx};cause=302>;index=1.1"
    );
    lab.capture();
    lab.phone("agent", "uas.xml", 2, 17000, &agent, "4711", "ag1", &[]);
    lab.dial(
        "caller",
        "uac_forwarded.xml",
        1,
        16000,
        &caller,
        2,
        SWITCHBOARD,
        CALLER,
        "cl1",
        &["-set", "forwarding", &history, "-d", "2000"],
    );
    lab.wait("caller");
    lab.wait("agent");
    let out = lab.replay();
    out.print();

    let s = &out.report.summary;
    assert!(out.report.recorded.is_empty(), "{s}");
    assert_eq!(s.calls.calls_seen, 1, "{s}");
    assert_eq!(
        s.calls
            .not_recorded_by_rule
            .get("forwarded_to_listed_number"),
        Some(&1),
        "{s}"
    );
    assert_eq!(s.routes.rtp_recorded, 0, "{s}");
    assert!(s.routes.rtp_out_of_scope > 100, "{s}");
    out.assert_spool_empty();
}

/// The capture starts in the middle of a Switchboard call (after its INVITE, 200 OK and
/// ACK) and sees the rest of it, BYE included: the dialled number was never seen.
#[test]
fn a_call_seen_from_the_middle_is_undecidable_and_leaves_nothing_on_disk() {
    let Some(mut lab) = Lab::new("mid_call", 12) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 111);
    let agent = Signal::noise("agent", 'A', 112);
    lab.phone("agent", "uas.xml", 2, 17000, &agent, "4711", "ag1", &[]);
    lab.dial(
        "caller",
        "uac.xml",
        1,
        16000,
        &caller,
        2,
        SWITCHBOARD,
        CALLER,
        "cl1",
        &["-d", "3000"],
    );
    lab.wait_for_sent("caller", "ACK ");
    std::thread::sleep(Duration::from_millis(300));
    lab.capture();
    lab.wait("caller");
    lab.wait("agent");
    let out = lab.replay();
    out.print();
    let cap = lab.captured();
    let messages: Vec<String> = sip_messages(&cap).into_iter().map(|m| m.1).collect();
    println!("  SIP captured: {messages:?}");
    assert!(
        !messages
            .iter()
            .any(|m| m.starts_with("INVITE ") || m.starts_with("ACK ")),
        "the call's start was captured: {messages:?}"
    );
    assert!(first_sip(&cap, "BYE ").is_some(), "{messages:?}");
    assert!(rtp_times(&cap, lab.sock(1, 16000)).len() > 50);

    let s = &out.report.summary;
    assert!(out.report.recorded.is_empty(), "{s}");
    assert_eq!(s.calls.calls_recorded, 0, "{s}");
    assert_eq!(
        s.calls.not_recorded_by_rule.get("undecidable"),
        Some(&1),
        "a call whose BYE (and RTP) were seen but not its INVITE is counted as undecidable \
         (README: \"call start not seen (first message BYE)\"):\n{s}"
    );
    assert_eq!(s.routes.rtp_recorded, 0, "{s}");
    out.assert_spool_empty();
    out.assert_no_plaintext(&[&caller, &agent]);
}

/// One call of the mixed capture: who calls whom, with which scenarios.
struct MixedCall {
    caller: Signal,
    phone: Signal,
    /// The caller's number (From), distinct per call.
    number: &'static str,
    dialled: &'static str,
    user: &'static str,
    caller_scenario: &'static str,
    caller_args: &'static [&'static str],
    phone_scenario: &'static str,
    phone_args: &'static [&'static str],
    /// The service it must be recorded under, None when out of scope.
    service: Option<&'static str>,
}

/// Six calls on one network, started 300 ms apart so that they all overlap: three to the
/// Switchboard (plain, with early media, with a hold), two direct dials to staff DDIs and
/// one internal call. Each party streams its own signal.
#[test]
fn a_mixed_capture_records_exactly_the_in_scope_calls_each_with_its_own_parties() {
    let Some(mut lab) = Lab::new("mixed", 13) else {
        return;
    };
    let hold: &[&str] = &[
        "-set", "hold", "inactive", "-set", "held", "1000", "-d", "1000",
    ];
    let calls = [
        MixedCall {
            caller: Signal::noise("caller1", 'C', 121),
            phone: Signal::noise("agent1", 'A', 122),
            number: "+447700900101",
            dialled: SWITCHBOARD,
            user: "4711",
            caller_scenario: "uac.xml",
            caller_args: &["-d", "3000"],
            phone_scenario: "uas.xml",
            phone_args: &[],
            service: Some("Switchboard"),
        },
        MixedCall {
            caller: Signal::noise("ddi_caller1", 'x', 123),
            phone: Signal::noise("staff1", 's', 124),
            number: "+447700900102",
            dialled: STAFF_DDI,
            user: "4712",
            caller_scenario: "uac.xml",
            caller_args: &["-d", "2500"],
            phone_scenario: "uas.xml",
            phone_args: &[],
            service: None,
        },
        MixedCall {
            caller: Signal::noise("caller2", 'D', 125),
            phone: Signal::noise("agent2", 'B', 126),
            number: "+447700900103",
            dialled: SWITCHBOARD,
            user: "4713",
            caller_scenario: "uac.xml",
            caller_args: &["-d", "2500"],
            phone_scenario: "uas_early_media.xml",
            phone_args: &["-d", "800"],
            service: Some("Switchboard"),
        },
        MixedCall {
            caller: Signal::noise("ext4714", '4', 127),
            phone: Signal::noise("ext4715", '5', 128),
            number: "4714",
            dialled: "4715",
            user: "4715",
            caller_scenario: "uac.xml",
            caller_args: &["-d", "2500"],
            phone_scenario: "uas.xml",
            phone_args: &[],
            service: None,
        },
        MixedCall {
            caller: Signal::noise("caller3", 'E', 129),
            phone: Signal::noise("agent3", 'F', 130),
            number: "+447700900105",
            dialled: SWITCHBOARD,
            user: "4716",
            caller_scenario: "caller_held.xml",
            caller_args: &["-set", "held_answer", "inactive", "-d", "1000"],
            phone_scenario: "agent_hold.xml",
            phone_args: hold,
            service: Some("Switchboard"),
        },
        MixedCall {
            caller: Signal::noise("ddi_caller2", 'y', 131),
            phone: Signal::noise("staff2", 't', 132),
            number: "+447700900106",
            dialled: "02087484712",
            user: "4717",
            caller_scenario: "uac.xml",
            caller_args: &["-d", "2500"],
            phone_scenario: "uas.xml",
            phone_args: &[],
            service: None,
        },
    ];
    // call i: caller at host 11 + i, phone at host 21 + i
    let caller_host = |i: usize| 11 + i as u8;
    let phone_host = |i: usize| 21 + i as u8;
    lab.capture();
    for (i, c) in calls.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        // tags are unique per party (RFC 3261 19.3): a From tag tells who sent a request
        let (caller_tag, phone_tag) = (format!("c{i}"), format!("p{i}"));
        lab.phone(
            &format!("phone{i}"),
            c.phone_scenario,
            phone_host(i),
            17000,
            &c.phone,
            c.user,
            &phone_tag,
            c.phone_args,
        );
        lab.dial(
            &format!("caller{i}"),
            c.caller_scenario,
            caller_host(i),
            16000,
            &c.caller,
            phone_host(i),
            c.dialled,
            c.number,
            &caller_tag,
            c.caller_args,
        );
    }
    for i in 0..calls.len() {
        lab.wait(&format!("caller{i}"));
        lab.wait(&format!("phone{i}"));
    }
    let out = lab.replay();
    out.print();
    let cap = lab.captured();

    let s = &out.report.summary;
    assert_eq!(s.calls.calls_seen, 6, "{s}");
    assert_eq!(s.calls.calls_recorded, 3, "{s}");
    assert_eq!(
        s.calls.not_recorded_by_rule.get("unlisted_number"),
        Some(&2),
        "{s}"
    );
    assert_eq!(
        s.calls.not_recorded_by_rule.get("internal_call"),
        Some(&1),
        "{s}"
    );
    assert!(s.routes.rtp_out_of_scope > 300, "{s}");
    let everyone: Vec<&Signal> = calls.iter().flat_map(|c| [&c.caller, &c.phone]).collect();
    let mut recorded = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        let rec = out.report.recorded.iter().find(|r| r.caller == c.number);
        let Some(service) = c.service else {
            assert!(rec.is_none(), "{} -> {} was recorded", c.number, c.dialled);
            continue;
        };
        let rec = rec.unwrap_or_else(|| panic!("{} -> {} not recorded", c.number, c.dialled));
        println!(
            "  call {i}: {} -> {} ({})",
            c.number, c.dialled, c.phone_scenario
        );
        assert_eq!(rec.service.as_deref(), Some(service));
        assert_eq!(joined(rec), ["initial"]);
        assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
        assert_no_packet_dropped(rec);
        let (left, right) = out.audio(rec);
        let left_heard = listen("left", &left, &everyone);
        let right_heard = listen("right", &right, &everyone);
        assert_heard("left", &left_heard, &[c.caller.name], 15);
        assert_heard("right", &right_heard, &[c.phone.name], 15);
        let start = recording_start(rec);
        let caller_sent = rtp_times(&cap, lab.sock(caller_host(i), 16000));
        let phone_sent = rtp_times(&cap, lab.sock(phone_host(i), 17000));
        assert_follows_capture("left", &left_heard, c.caller.name, &caller_sent, start);
        assert_follows_capture("right", &right_heard, c.phone.name, &phone_sent, start);
        recorded.push(rec);
    }
    assert_eq!(recorded.len(), out.report.recorded.len());
    assert_spool_holds_only(&out, &recorded);
    out.assert_no_plaintext(&everyone);
}

/// PBX media move: the agent's side of a Switchboard call (a PBX anchoring the media) talks,
/// then re-INVITEs the caller with SDP that moves its media to another port, and goes on
/// talking from there with another RTP stream (new SSRC, another signal). One call, one
/// leg; the organisation channel follows the first stream, then the second.
#[test]
fn a_pbx_moving_the_agents_media_with_a_reinvite_stays_one_leg_without_a_gap() {
    let Some(mut lab) = Lab::new("media_move", 15) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 141);
    let agent = Signal::noise("agent", 'A', 142);
    let agent_moved = Signal::noise("agent_moved", 'M', 143);
    lab.capture();
    lab.phone(
        "agent",
        "agent_move.xml",
        2,
        17000,
        &agent,
        "4711",
        "ag1",
        &["-set", "moved_port", "17010", "-d", "2000"],
    );
    lab.dial(
        "caller",
        "caller_reinvited.xml",
        1,
        16000,
        &caller,
        2,
        SWITCHBOARD,
        CALLER,
        "cl1",
        &["-d", "2000"],
    );
    // the moved media starts once the re-INVITE is acknowledged
    lab.wait_for_sent("agent", "ACK ");
    let moved = RtpSender::start(
        lab.sock(2, 17010),
        lab.sock(1, 16000),
        &agent_moved,
        0x5EED_0002,
    );
    lab.wait_for_sent("caller", "BYE ");
    let moved_packets = moved.stop();
    lab.wait("caller");
    lab.wait("agent");
    let out = lab.replay();
    out.print();
    let cap = lab.captured();

    let reinvite = sip_messages(&cap)
        .into_iter()
        .filter(|(_, l)| l.starts_with("INVITE "))
        .nth(1)
        .expect("re-INVITE captured")
        .0;
    let bye = first_sip(&cap, "BYE ").expect("BYE captured");
    let caller_sent = rtp_times(&cap, lab.sock(1, 16000));
    let agent_sent = rtp_times(&cap, lab.sock(2, 17000));
    let moved_sent = rtp_times(&cap, lab.sock(2, 17010));
    println!(
        "  agent's last packet {:.3} s before the re-INVITE, moved media's first {:.3} s after \
         it; {moved_packets} packets sent from the new port",
        reinvite - agent_sent.last().unwrap(),
        moved_sent[0] - reinvite
    );
    assert!(moved_sent.len() > 50, "the moved media was captured");
    assert!(agent_sent.iter().all(|&t| t < reinvite));
    assert!(
        moved_sent[0] - agent_sent.last().unwrap() < 0.2,
        "no pause in the move"
    );

    let s = &out.report.summary;
    assert_eq!(s.calls.calls_seen, 1, "{s}");
    assert_eq!(s.calls.calls_recorded, 1, "{s}");
    assert!(s.calls.reinvites >= 1, "the re-INVITE was seen: {s}");
    let rec = out.the_call();
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    assert_eq!(joined(rec), ["initial"]);
    assert_eq!(rec.sip_call_ids.len(), 1);
    assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
    assert_no_packet_dropped(rec);
    // every packet the organisation side sent before the BYE is in the recording
    let org_sent = agent_sent
        .iter()
        .chain(&moved_sent)
        .filter(|&&t| t < bye)
        .count() as u64;
    let org_recorded: u64 = rec
        .streams
        .iter()
        .filter(|st| st.direction == "from_organisation")
        .map(|st| st.packets)
        .sum();
    assert!(
        org_recorded >= org_sent,
        "{org_sent} organisation packets sent before the BYE, {org_recorded} recorded: {:?}",
        rec.streams
    );

    let (left, right) = out.audio(rec);
    let everyone = [&caller, &agent, &agent_moved];
    let left_heard = listen("left", &left, &everyone);
    let right_heard = listen("right", &right, &everyone);
    out.assert_no_plaintext(&everyone);
    assert_heard("left", &left_heard, &["caller"], 30);
    assert_heard("right", &right_heard, &["agent", "agent_moved"], 15);
    let start = recording_start(rec);
    assert_follows_capture("left", &left_heard, "caller", &caller_sent, start);
    let split = (((reinvite - start) / 0.1) as usize).min(right_heard.len());
    assert_follows_capture(
        "right before the move",
        &right_heard[..split],
        "agent",
        &agent_sent,
        start,
    );
    assert_follows_capture(
        "right after the move",
        &right_heard[split..],
        "agent_moved",
        &moved_sent,
        start + split as f64 * 0.1,
    );
    // no silence where the media moved beyond the window it falls in
    let quiet = right_heard[split.saturating_sub(2)..(split + 3).min(right_heard.len())]
        .iter()
        .filter(|h| **h == Heard::Silence)
        .count();
    assert!(
        quiet <= 1,
        "{quiet} silent windows of 100 ms around the move"
    );
}

/// Forking: a proxy forked the caller's INVITE to two phones. The caller sees 180 Ringing
/// from the first phone (To tag forkA), 183 Session Progress with SDP from the second (To
/// tag forkB, its own media address, early media for a second), then the 200 OK of the
/// first phone (To tag forkA), which talks. One call, one leg, answered by the first phone.
#[test]
fn a_forked_invite_answered_by_one_phone_is_one_call_with_that_phone_on_the_right() {
    let Some(mut lab) = Lab::new("forking", 17) else {
        return;
    };
    let caller = Signal::noise("caller", 'C', 151);
    let agent = Signal::noise("agent", 'A', 152);
    let other_fork = Signal::noise("other_fork", 'F', 153);
    let fork_ip = lab.ip(3).to_string();
    lab.capture();
    lab.phone(
        "agent",
        "uas_forked.xml",
        2,
        17000,
        &agent,
        "4711",
        "forkA",
        &[
            "-set",
            "fork_user",
            "4712",
            "-set",
            "fork_tag",
            "forkB",
            "-set",
            "fork_ip",
            &fork_ip,
            "-set",
            "fork_port",
            "17010",
            "-d",
            "1500",
        ],
    );
    lab.dial(
        "caller",
        "uac.xml",
        1,
        16000,
        &caller,
        2,
        SWITCHBOARD,
        CALLER,
        "cl1",
        &["-d", "2000"],
    );
    lab.wait_for_sent("agent", "SIP/2.0 183");
    let early = RtpSender::start(
        lab.sock(3, 17010),
        lab.sock(1, 16000),
        &other_fork,
        0x5EED_0003,
    );
    std::thread::sleep(Duration::from_millis(1000));
    let early_packets = early.stop();
    lab.wait("caller");
    lab.wait("agent");
    let out = lab.replay();
    out.print();
    let cap = lab.captured();

    let answered = first_sip(&cap, "SIP/2.0 200").expect("200 OK captured");
    let caller_sent = rtp_times(&cap, lab.sock(1, 16000));
    let agent_sent = rtp_times(&cap, lab.sock(2, 17000));
    let fork_sent = rtp_times(&cap, lab.sock(3, 17010));
    println!(
        "  {early_packets} packets of early media from the other fork, the last {:.3} s before \
         the answer",
        answered - fork_sent.last().unwrap()
    );
    assert!(fork_sent.iter().all(|&t| t < answered));
    assert!(agent_sent.iter().all(|&t| t > answered));

    let s = &out.report.summary;
    assert_eq!(s.calls.calls_seen, 1, "one INVITE, one call: {s}");
    let rec = out.the_call();
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    assert_eq!(joined(rec), ["initial"]);
    assert_eq!(rec.sip_call_ids.len(), 1);
    assert!(rec.answered_at.is_some(), "answered");
    assert!(
        rec.legs[0].answered_at.is_some(),
        "the leg was answered: {:?}",
        rec.legs
    );
    assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
    assert_no_packet_dropped(rec);

    let (left, right) = out.audio(rec);
    let everyone = [&caller, &agent, &other_fork];
    let left_heard = listen("left", &left, &everyone);
    let right_heard = listen("right", &right, &everyone);
    out.assert_no_plaintext(&everyone);
    let start = recording_start(rec);
    // from the answer on: the caller on the left, the phone that answered on the right
    let from = (((answered - start) / 0.1).ceil().max(0.0) as usize + 1).min(right_heard.len());
    let after = start + from as f64 * 0.1;
    assert_heard(
        "left after the answer",
        &left_heard[from..],
        &["caller"],
        15,
    );
    assert_heard(
        "right after the answer",
        &right_heard[from..],
        &["agent"],
        15,
    );
    assert_follows_capture("left", &left_heard, "caller", &caller_sent, start);
    assert_follows_capture(
        "right after the answer",
        &right_heard[from..],
        "agent",
        &agent_sent,
        after,
    );
    // before it: silence from the caller, at most the other fork's early media (what the
    // caller heard) on the organisation side; a window the early media starts or stops
    // inside holds part sound, part silence, and may match nothing clearly
    let until = (((answered - start) / 0.1).floor().max(0.0) as usize).min(from);
    let fork_edges = [fork_sent[0], fork_sent[fork_sent.len() - 1] + 0.02];
    for (i, (l, r)) in left_heard.iter().zip(&right_heard).take(until).enumerate() {
        let (from_t, to_t) = (start + i as f64 * 0.1, start + (i + 1) as f64 * 0.1);
        let straddles = fork_edges.iter().any(|&t| from_t < t && t < to_t);
        assert!(
            *l == Heard::Silence
                && (matches!(r, Heard::Silence | Heard::Party("other_fork", _))
                    || (straddles && matches!(r, Heard::Unclear(_)))),
            "window {i} before the answer: left {l:?}, right {r:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The live agent

/// `callvault agent` capturing live (AF_PACKET on the loopback interface of a network
/// namespace of the test's own, so that it sees this test's traffic only) records a SIPp
/// call to the Switchboard exactly as `replay` records tcpdump's capture of the same traffic,
/// while a HEP feed (a second source of the same pipeline) brings it a call to Parking.
#[test]
fn a_call_captured_live_by_the_agent_is_recorded_as_replay_records_it() {
    if let Some(why) = missing_tools() {
        skipped("live agent test", &why);
        return;
    }
    if !enter_own_network_namespace("live agent test") {
        return;
    }
    let Some(mut lab) = Lab::new("live", 40) else {
        return;
    };
    let mut agent = LiveAgent::start(&lab, Some("127.0.0.1:9060"));

    let caller = Signal::noise("caller", 'C', 401);
    let staff = Signal::noise("agent", 'A', 402);
    lab.capture();
    lab.phone("agent", "uas.xml", 2, 17000, &staff, "4711", "ag1", &[]);
    lab.dial(
        "caller",
        "uac.xml",
        1,
        16000,
        &caller,
        2,
        SWITCHBOARD,
        CALLER,
        "cl1",
        &["-d", "3000"],
    );
    // meanwhile, on the HEP source: a generated call to Parking
    let parking = callvault_synth::Scenario::new(
        7,
        vec![callvault_synth::CallSpec {
            sip_call_id: "parking-over-hep@synth.callvault".into(),
            dialled: "02073715678".into(),
            ring_ms: 300,
            talk_ms: 2_000,
            ..Default::default()
        }],
    );
    let hep_capture = lab.dir.path().join("hep.pcap");
    callvault_synth::write_capture(
        &parking,
        std::io::BufWriter::new(std::fs::File::create(&hep_capture).unwrap()),
    )
    .unwrap();
    let hep = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["hep-send", "--to", "127.0.0.1:9060"])
        .arg(&hep_capture)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(hep.success());
    lab.wait("caller");
    lab.wait("agent");
    // the calls close once their last packets have had the playout delay to arrive
    let metrics = agent.metrics_once("callvault_segments_written_total 2");
    // the loopback capture sees the HEP feed on its way to the listener: it is recorded once
    assert!(
        !metrics.contains("callvault_hep_captured_to_listener_total 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("callvault_calls_seen_total 2\n"),
        "{metrics}"
    );
    assert_no_drops(&metrics, &["kernel", "capture_queue", "media_queue"]);
    let live = agent.stop();

    let out = lab.replay();
    out.print();
    let replayed = out.the_call();
    assert_eq!(live.len(), 2, "the SIPp call and the HEP call");
    let over_hep = live
        .iter()
        .find(|r| r.sip_call_ids == ["parking-over-hep@synth.callvault"])
        .expect("the HEP call");
    assert_eq!(over_hep.service.as_deref(), Some("Parking"));
    assert!(
        over_hep.streams.iter().all(|s| s.duplicates == 0),
        "{:#?}",
        over_hep.streams
    );
    assert!(
        over_hep.audio_ms >= 1_900,
        "{} ms: {:#?}\n{}",
        over_hep.audio_ms,
        over_hep.streams,
        agent.log()
    );
    let rec = live
        .iter()
        .find(|r| r.sip_call_ids == replayed.sip_call_ids)
        .unwrap();
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    let (left, right) = agent.assert_recorded_as_replay(rec, &out, replayed);
    let everyone = [&caller, &staff];
    assert_heard("left", &listen("left", &left, &everyone), &["caller"], 20);
    assert_heard("right", &listen("right", &right, &everyone), &["agent"], 20);
}
