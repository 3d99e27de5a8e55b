//! The text of every SIP message and SDP body the generator sends.
//!
//! Owns: start lines, headers (Via stacks with branches, Max-Forwards, From/To tags, Call-ID,
//! CSeq, Contact, Route/Record-Route through the PBX, P-Asserted-Identity from the trunk,
//! User-Agent/Server, exact Content-Length) and SDP offers/answers for the initial INVITE,
//! early media and hold/resume re-INVITEs. Receives a call plan, a message and the hop it is
//! on; emits bytes into a caller-owned buffer. Must never allocate per message once the
//! buffers have grown, and never emit anything that depends on anything but the plan.

use std::fmt;
use std::io::Write;
use std::net::IpAddr;

use super::plan::{CallPlan, Hop, Msg};
use super::scenario::SipTransport;
use super::signal::hash2;

/// An address as it appears in a SIP URI or Via: IPv6 in brackets.
struct UriHost(IpAddr);

impl fmt::Display for UriHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// An address as SDP writes it, with its address type.
struct SdpAddr(IpAddr);

impl fmt::Display for SdpAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "IN IP4 {a}"),
            IpAddr::V6(a) => write!(f, "IN IP6 {a}"),
        }
    }
}

/// Writing into a Vec cannot fail; this keeps the call sites free of ignored Results.
fn put(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
}

/// Transactions of a dialog, for branch parameters. CANCEL and the ACK of a failure share
/// the INVITE's branch (RFC 3261 §9.1, §17.1.1.3).
fn transaction(msg: Msg) -> u64 {
    match msg {
        Msg::Invite
        | Msg::Trying
        | Msg::Ringing
        | Msg::Progress
        | Msg::Answer
        | Msg::Cancel
        | Msg::CancelOk
        | Msg::Terminated
        | Msg::Busy
        | Msg::AckFailure => 0,
        Msg::AckAnswer => 1,
        Msg::ReInvite { resume: false } | Msg::ReInviteOk { resume: false } => 2,
        Msg::ReInviteAck { resume: false } => 3,
        Msg::ReInvite { resume: true } | Msg::ReInviteOk { resume: true } => 4,
        Msg::ReInviteAck { resume: true } => 5,
        Msg::Bye { .. } | Msg::ByeOk { .. } => 6,
    }
}

fn method(msg: Msg) -> &'static str {
    match msg {
        Msg::Invite
        | Msg::Trying
        | Msg::Ringing
        | Msg::Progress
        | Msg::Answer
        | Msg::Terminated
        | Msg::Busy
        | Msg::ReInvite { .. }
        | Msg::ReInviteOk { .. } => "INVITE",
        Msg::AckAnswer | Msg::AckFailure | Msg::ReInviteAck { .. } => "ACK",
        Msg::Cancel | Msg::CancelOk => "CANCEL",
        Msg::Bye { .. } | Msg::ByeOk { .. } => "BYE",
    }
}

fn status(msg: Msg) -> (u16, &'static str) {
    match msg {
        Msg::Trying => (100, "Trying"),
        Msg::Ringing => (180, "Ringing"),
        Msg::Progress => (183, "Session Progress"),
        Msg::Terminated => (487, "Request Terminated"),
        Msg::Busy => (486, "Busy Here"),
        _ => (200, "OK"),
    }
}

/// What the SDP of a message says, if it has one.
#[derive(Clone, Copy)]
struct Sdp {
    caller_side: bool,
    version: u32,
    direction: &'static str,
}

fn sdp_of(msg: Msg) -> Option<Sdp> {
    let (caller_side, version, direction) = match msg {
        Msg::Invite => (true, 0, "sendrecv"),
        Msg::Progress | Msg::Answer => (false, 0, "sendrecv"),
        Msg::ReInvite { resume: false } => (false, 1, "sendonly"),
        Msg::ReInviteOk { resume: false } => (true, 1, "recvonly"),
        Msg::ReInvite { resume: true } => (false, 2, "sendrecv"),
        Msg::ReInviteOk { resume: true } => (true, 2, "sendrecv"),
        _ => return None,
    };
    Some(Sdp {
        caller_side,
        version,
        direction,
    })
}

fn write_sdp(plan: &CallPlan, sdp: Sdp, out: &mut Vec<u8>) {
    let media = if sdp.caller_side {
        plan.caller_media
    } else {
        plan.agent_media
    };
    let session = hash2(plan.seed, sdp.caller_side as u64 + 0x5D) % 1_000_000_000;
    let codec = plan.spec.codec;
    let pt = codec.payload_type();
    let name = if sdp.caller_side && !plan.internal {
        "SBC"
    } else {
        "-"
    };
    put(
        out,
        format_args!(
            "v=0\r\no={name} {session} {} {}\r\n",
            sdp.version,
            SdpAddr(media.ip())
        ),
    );
    put(
        out,
        format_args!("s=call\r\nc={}\r\nt=0 0\r\n", SdpAddr(media.ip())),
    );
    put(
        out,
        format_args!("m=audio {} RTP/AVP {pt} 101\r\n", media.port()),
    );
    put(
        out,
        format_args!("a=rtpmap:{pt} {}/8000\r\n", codec.encoding_name()),
    );
    put(
        out,
        format_args!("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"),
    );
    put(out, format_args!("a=ptime:20\r\na={}\r\n", sdp.direction));
}

fn agent_of(plan: &CallPlan, caller_side: bool) -> &'static str {
    match (caller_side, plan.internal) {
        (true, false) => "ExampleSBC/7.2",
        (false, false) => "ExamplePBX/18.4",
        _ => "ExamplePhone/3.1",
    }
}

/// Writes `msg` as sent on `hop` into `out` (appending); `body` is scratch for the SDP.
pub(crate) fn write_message(
    plan: &CallPlan,
    msg: Msg,
    hop: Hop,
    out: &mut Vec<u8>,
    body: &mut Vec<u8>,
) {
    let spec = &plan.spec;
    let tcp = spec.transport == SipTransport::Tcp;
    let transport = if tcp { "TCP" } else { "UDP" };
    let uri_param = if tcp { ";transport=tcp" } else { "" };
    let (caller, dialled) = (spec.caller.as_str(), spec.dialled.as_str());
    let a = UriHost(plan.a_sip.ip());
    let b = UriHost(plan.b_sip.ip());
    let pbx = UriHost(plan.pbx.ip());
    // Phones and the PBX share the PBX's domain; the trunk names itself.
    let caller_domain = if plan.internal {
        UriHost(plan.pbx.ip())
    } else {
        UriHost(plan.a_sip.ip())
    };
    let request = msg.is_request();
    let by_caller = msg.caller_transaction();
    let tx = transaction(msg);
    let from_tag = hash2(plan.seed, 0xF0) as u32;
    let to_tag = hash2(plan.seed, 0x70) as u32;
    let cseq_a = 1 + hash2(plan.seed, 0xC5A) % 900;
    let cseq_b = 1 + hash2(plan.seed, 0xC5B) % 900;
    let in_dialog = matches!(
        msg,
        Msg::AckAnswer | Msg::ReInvite { .. } | Msg::ReInviteAck { .. } | Msg::Bye { .. }
    );

    body.clear();
    if let Some(sdp) = sdp_of(msg) {
        write_sdp(plan, sdp, body);
    }

    // Start line.
    if request {
        put(out, format_args!("{} ", method(msg)));
        match (in_dialog, by_caller, hop) {
            (false, _, Hop::FromProxy) => put(out, format_args!("sip:{dialled}@{b}:5060")),
            (false, _, _) => put(out, format_args!("sip:{dialled}@{pbx}")),
            (true, true, _) => put(out, format_args!("sip:{dialled}@{b}:5060{uri_param}")),
            (true, false, _) => put(out, format_args!("sip:{caller}@{a}:5060{uri_param}")),
        }
        put(out, format_args!(" SIP/2.0\r\n"));
    } else {
        let (code, reason) = status(msg);
        put(out, format_args!("SIP/2.0 {code} {reason}\r\n"));
    }

    // Via stack: the PBX's Via sits on top between the PBX and the party that did not start
    // the transaction.
    let proxy_via = match hop {
        Hop::Direct => false,
        Hop::FromProxy => request,
        Hop::ToProxy => !request,
    };
    if proxy_via {
        let branch = hash2(plan.seed, 0xB000 + tx);
        put(
            out,
            format_args!("Via: SIP/2.0/{transport} {pbx}:5060;branch=z9hG4bK{branch:016x}\r\n"),
        );
    }
    let origin = if by_caller { &a } else { &b };
    let branch = hash2(plan.seed, 0xA000 + tx);
    put(
        out,
        format_args!("Via: SIP/2.0/{transport} {origin}:5060;branch=z9hG4bK{branch:016x}"),
    );
    put(
        out,
        format_args!("{}\r\n", if request { ";rport" } else { "" }),
    );
    if request {
        let hops = if hop == Hop::FromProxy { 69 } else { 70 };
        put(out, format_args!("Max-Forwards: {hops}\r\n"));
    }
    if plan.internal && in_dialog && hop == Hop::ToProxy {
        put(out, format_args!("Route: <sip:{pbx};lr>\r\n"));
    }
    let dialog_forming = matches!(msg, Msg::Ringing | Msg::Progress | Msg::Answer)
        || (msg == Msg::Invite && hop == Hop::FromProxy);
    if plan.internal && dialog_forming {
        put(out, format_args!("Record-Route: <sip:{pbx};lr>\r\n"));
    }

    // From/To follow the transaction's originator; the callee's tag exists once it answered.
    let to_has_tag = !matches!(msg, Msg::Invite | Msg::Trying | Msg::Cancel);
    if by_caller {
        put(
            out,
            format_args!(
                "From: \"{caller}\" <sip:{caller}@{caller_domain}>;tag={from_tag:08x}\r\n"
            ),
        );
        put(out, format_args!("To: <sip:{dialled}@{pbx}>"));
        if to_has_tag {
            put(out, format_args!(";tag={to_tag:08x}"));
        }
        put(out, format_args!("\r\n"));
    } else {
        put(
            out,
            format_args!("From: <sip:{dialled}@{pbx}>;tag={to_tag:08x}\r\n"),
        );
        put(
            out,
            format_args!("To: \"{caller}\" <sip:{caller}@{caller_domain}>;tag={from_tag:08x}\r\n"),
        );
    }
    put(out, format_args!("Call-ID: {}\r\n", spec.sip_call_id));
    let cseq = match msg {
        Msg::Bye { by_caller: true } | Msg::ByeOk { by_caller: true } => cseq_a + 1,
        Msg::ReInvite { resume } | Msg::ReInviteOk { resume } | Msg::ReInviteAck { resume } => {
            cseq_b + resume as u64
        }
        Msg::Bye { by_caller: false } | Msg::ByeOk { by_caller: false } => cseq_b + 2,
        _ => cseq_a,
    };
    put(out, format_args!("CSeq: {cseq} {}\r\n", method(msg)));

    // Contact: whoever sends a target-refreshing request or its 18x/2xx.
    let contact = match msg {
        Msg::Invite | Msg::ReInviteOk { .. } => Some(true),
        Msg::Ringing | Msg::Progress | Msg::Answer | Msg::ReInvite { .. } => Some(false),
        _ => None,
    };
    match contact {
        Some(true) => put(
            out,
            format_args!("Contact: <sip:{caller}@{a}:5060{uri_param}>\r\n"),
        ),
        Some(false) => put(
            out,
            format_args!("Contact: <sip:{dialled}@{b}:5060{uri_param}>\r\n"),
        ),
        None => {}
    }
    if msg == Msg::Invite && !plan.internal {
        put(
            out,
            format_args!("P-Asserted-Identity: <sip:{caller}@{a}>\r\n"),
        );
    }
    if matches!(
        msg,
        Msg::Invite | Msg::Answer | Msg::ReInvite { .. } | Msg::ReInviteOk { .. }
    ) {
        put(
            out,
            format_args!(
                "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, REFER, NOTIFY, INFO\r\n"
            ),
        );
        put(out, format_args!("Supported: replaces, timer\r\n"));
    }
    if msg == Msg::Invite {
        put(out, format_args!("Session-Expires: 1800\r\nMin-SE: 90\r\n"));
    }
    let sender_is_caller = msg.sent_by_caller();
    let agent = if msg == Msg::Trying && plan.internal {
        "ExamplePBX/18.4"
    } else {
        agent_of(plan, sender_is_caller)
    };
    let agent_header = if request { "User-Agent" } else { "Server" };
    put(out, format_args!("{agent_header}: {agent}\r\n"));
    if !body.is_empty() {
        put(out, format_args!("Content-Type: application/sdp\r\n"));
    }
    put(out, format_args!("Content-Length: {}\r\n\r\n", body.len()));
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::CallPlan;
    use crate::scenario::{CallSpec, DEFAULT_EPOCH};

    fn text(plan: &CallPlan, msg: Msg, hop: Hop) -> String {
        let (mut out, mut body) = (Vec::new(), Vec::new());
        write_message(plan, msg, hop, &mut out, &mut body);
        String::from_utf8(out).unwrap_or_default()
    }

    fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
        msg.split("\r\n")
            .filter_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
            .collect()
    }

    fn content_length_matches(msg: &str) -> bool {
        let Some((head, body)) = msg.split_once("\r\n\r\n") else {
            return false;
        };
        header(head, "Content-Length")
            .first()
            .and_then(|v| v.parse::<usize>().ok())
            == Some(body.len())
    }

    #[test]
    fn trunk_invite_is_complete_and_exact() {
        let plan = CallPlan::new(1, DEFAULT_EPOCH.as_nanos() as u64, 0, &CallSpec::default());
        let inv = text(&plan, Msg::Invite, Hop::Direct);
        assert!(
            inv.starts_with("INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\n"),
            "{inv}"
        );
        assert!(header(&inv, "Via")[0].starts_with("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK"));
        assert_eq!(header(&inv, "Max-Forwards"), ["70"]);
        assert!(header(&inv, "From")[0].contains(";tag="));
        assert!(!header(&inv, "To")[0].contains(";tag="));
        assert_eq!(
            header(&inv, "P-Asserted-Identity"),
            ["<sip:+447700900123@192.0.2.10>"]
        );
        assert_eq!(header(&inv, "Content-Type"), ["application/sdp"]);
        assert!(content_length_matches(&inv));
        assert!(inv.contains("c=IN IP4 192.0.2.10\r\n"));
        assert!(inv.contains("m=audio 20000 RTP/AVP 8 101\r\n"));
        assert!(inv.contains("a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"));
        assert!(inv.contains("a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"));

        let ok = text(&plan, Msg::Answer, Hop::Direct);
        assert!(ok.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(header(&ok, "To")[0].contains(";tag="));
        assert_eq!(header(&ok, "CSeq"), header(&inv, "CSeq"));
        assert_eq!(
            header(&ok, "Via"),
            header(&inv, "Via")
                .iter()
                .map(|v| v.trim_end_matches(";rport"))
                .collect::<Vec<_>>()
        );
        assert!(ok.contains("c=IN IP4 10.20.1.1\r\nt=0 0\r\nm=audio 30000 "));
        assert!(content_length_matches(&ok));
        assert!(content_length_matches(&text(
            &plan,
            Msg::Trying,
            Hop::Direct
        )));
    }

    #[test]
    fn cancel_shares_the_invite_branch_and_bye_does_not() {
        let spec = CallSpec {
            end: crate::scenario::CallEnd::Cancel,
            ..CallSpec::default()
        };
        let plan = CallPlan::new(1, DEFAULT_EPOCH.as_nanos() as u64, 0, &spec);
        let inv = text(&plan, Msg::Invite, Hop::Direct);
        let cancel = text(&plan, Msg::Cancel, Hop::Direct);
        let bye = text(&plan, Msg::Bye { by_caller: true }, Hop::Direct);
        assert_eq!(header(&inv, "Via"), header(&cancel, "Via"));
        assert_ne!(header(&inv, "Via"), header(&bye, "Via"));
        assert!(header(&cancel, "CSeq")[0].ends_with(" CANCEL"));
        let terminated = text(&plan, Msg::Terminated, Hop::Direct);
        assert!(terminated.starts_with("SIP/2.0 487 Request Terminated\r\n"));
    }

    #[test]
    fn hold_reinvite_comes_from_the_agent_side() {
        let spec = CallSpec {
            hold: Some((1_000, 2_000)),
            ..CallSpec::default()
        };
        let plan = CallPlan::new(1, DEFAULT_EPOCH.as_nanos() as u64, 0, &spec);
        let hold = text(&plan, Msg::ReInvite { resume: false }, Hop::Direct);
        assert!(hold.starts_with("INVITE sip:+447700900123@192.0.2.10:5060 SIP/2.0\r\n"));
        assert!(header(&hold, "From")[0].starts_with("<sip:02087483020@10.20.0.5>;tag="));
        assert!(hold.contains("a=sendonly\r\n") && hold.contains("o=- "));
        let ok = text(&plan, Msg::ReInviteOk { resume: false }, Hop::Direct);
        assert!(ok.contains("a=recvonly\r\n"));
        let resume = text(&plan, Msg::ReInvite { resume: true }, Hop::Direct);
        assert!(resume.contains("a=sendrecv\r\n"));
        assert_ne!(header(&hold, "CSeq"), header(&resume, "CSeq"));
    }

    #[test]
    fn proxied_messages_carry_the_pbx_via_and_ipv6_uses_brackets() {
        let spec = CallSpec {
            caller: "4711".into(),
            dialled: "4712".into(),
            ipv6: true,
            transport: SipTransport::Tcp,
            ..CallSpec::default()
        };
        let plan = CallPlan::new(1, DEFAULT_EPOCH.as_nanos() as u64, 5, &spec);
        let first = text(&plan, Msg::Invite, Hop::ToProxy);
        let second = text(&plan, Msg::Invite, Hop::FromProxy);
        assert!(
            first.starts_with("INVITE sip:4712@[2001:db8:20::5] SIP/2.0\r\n"),
            "{first}"
        );
        assert!(second.starts_with("INVITE sip:4712@[2001:db8:20::1:6]:5060 SIP/2.0\r\n"));
        assert_eq!(header(&first, "Via").len(), 1);
        assert_eq!(header(&second, "Via").len(), 2);
        assert!(header(&second, "Via")[0].starts_with("SIP/2.0/TCP [2001:db8:20::5]:5060"));
        assert!(header(&first, "P-Asserted-Identity").is_empty());
        assert!(second.contains("c=IN IP6 2001:db8:20::2:6\r\n"));
        let ok_back = text(&plan, Msg::Answer, Hop::FromProxy);
        assert_eq!(header(&ok_back, "Via").len(), 1);
        assert_eq!(
            header(&ok_back, "Record-Route"),
            ["<sip:[2001:db8:20::5];lr>"]
        );
        assert!(content_length_matches(&second) && content_length_matches(&ok_back));
    }
}
