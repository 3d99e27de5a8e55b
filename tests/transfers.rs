//! Transfers on the wire, scripted message by message: every way a recorded conversation can
//! move to another dialog, and the ways an unrelated call must not be swept in.

mod common;

use std::net::SocketAddrV4;

use callvault::entropy::Entropy;
use callvault::net::LinkType;
use callvault::pipeline::{LocalPipeline, Pipeline, Summary};
use callvault::record::CallRecord;
use callvault::spool::Spool;
use callvault::time::Timestamp;
use callvault::vault::CataloguePrivateKey;
use common::{
    CollectingSink, example_config, rtp_packet, sip_with_sdp, spool_files, test_keys, udp_frame,
};

const X_SIP: &str = "192.0.2.10:5060"; // the caller, behind the SBC
const X_RTP: &str = "192.0.2.10:20000";
const A_SIP: &str = "10.20.1.5:5060"; // the agent's phone, extension 4711
const A_RTP: &str = "10.20.1.5:30000";
const A_RTP2: &str = "10.20.1.5:30002";
const B_SIP: &str = "10.20.1.9:5060"; // the back-office officer, extension 4712
const B_RTP: &str = "10.20.1.9:30100";
const PBX: &str = "10.20.0.5:5060";
const CALLER: &str = "+447700900123";

fn a(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn ip_port(s: &str) -> (&str, u16) {
    let (ip, port) = s.split_once(':').unwrap();
    (ip, port.parse().unwrap())
}

struct Script {
    p: LocalPipeline<Spool, CollectingSink>,
    dir: tempfile::TempDir,
    key: CataloguePrivateKey,
    seqs: std::collections::HashMap<u32, u16>,
}

impl Script {
    fn new() -> Script {
        Script::with_config(example_config())
    }

    fn with_config(cfg: callvault::config::AgentConfig) -> Script {
        let (_, public, key) = test_keys();
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let p = Pipeline::new(
            &cfg,
            public,
            spool.clone(),
            CollectingSink::new(spool),
            Entropy::system(),
        );
        Script {
            p,
            dir,
            key,
            seqs: Default::default(),
        }
    }

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(1_772_442_000_000 + ms)
    }

    /// One SIP message; `sdp` = media address "ip:port" of the sender.
    fn sip(&mut self, ms: u64, src: &str, dst: &str, head: &str, sdp: Option<&str>) {
        let msg = sip_with_sdp(head, sdp.map(ip_port));
        self.p.frame(
            Self::t(ms),
            LinkType::Ethernet,
            &udp_frame(a(src), a(dst), &msg),
        );
    }

    /// `n` RTP packets, 20 ms apart, from `src` to `dst`.
    fn rtp(&mut self, ms: u64, src: &str, dst: &str, ssrc: u32, fill: u8, n: u16) {
        for i in 0..n {
            let seq = self.seqs.entry(ssrc).or_insert(0);
            *seq += 1;
            let pkt = rtp_packet(*seq, *seq as u32 * 160, ssrc, fill);
            self.p.frame(
                Self::t(ms + i as u64 * 20),
                LinkType::Ethernet,
                &udp_frame(a(src), a(dst), &pkt),
            );
        }
    }

    fn both_ways(&mut self, ms: u64, x: &str, other: &str, ssrc_x: u32, ssrc_o: u32, n: u16) {
        for i in 0..n {
            self.rtp(ms + i as u64 * 20, x, other, ssrc_x, 0x11, 1);
            self.rtp(
                ms + i as u64 * 20,
                other,
                x,
                ssrc_o,
                (ssrc_o as u8).wrapping_mul(17) | 0x80,
                1,
            );
        }
    }

    fn finish(
        mut self,
    ) -> (
        Summary,
        Vec<CallRecord>,
        tempfile::TempDir,
        CataloguePrivateKey,
    ) {
        self.p.finish("capture_end");
        let recorded = self.p.sink().recorded.clone();
        (self.p.summary(), recorded, self.dir, self.key)
    }

    /// Caller X rings the switchboard and agent A (4711) answers; 1 s of conversation.
    fn answered_call(&mut self) {
        self.sip(0, X_SIP, A_SIP, &format!("INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>\r\nCall-ID: leg1\r\nCSeq: 1 INVITE"), Some(X_RTP));
        self.sip(300, A_SIP, X_SIP, &format!("SIP/2.0 200 OK\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=a1\r\nCall-ID: leg1\r\nCSeq: 1 INVITE\r\nContact: <sip:4711@10.20.1.5>"), Some(A_RTP));
        self.sip(310, X_SIP, A_SIP, &format!("ACK sip:4711@10.20.1.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=a1\r\nCall-ID: leg1\r\nCSeq: 1 ACK"), None);
        self.both_ways(320, X_RTP, A_RTP, 1, 2, 50);
    }
}

fn joined(rec: &CallRecord) -> Vec<&str> {
    rec.legs.iter().map(|l| l.joined_by.as_str()).collect()
}

fn packets(rec: &CallRecord, direction: &str) -> u64 {
    rec.streams
        .iter()
        .filter(|s| s.direction == direction)
        .map(|s| s.packets)
        .sum()
}

#[test]
fn blind_transfer_the_transferee_invite_joins_even_after_the_transferor_hung_up() {
    let mut s = Script::new();
    s.answered_call();
    // agent refers the caller to 4712, then hangs up at once
    s.sip(1_400, A_SIP, X_SIP, &format!("REFER sip:{CALLER}@192.0.2.10 SIP/2.0\r\nFrom: <sip:02087483020@10.20.0.5>;tag=a1\r\nTo: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nCall-ID: leg1\r\nCSeq: 2 REFER\r\nRefer-To: <sip:4712@10.20.0.5>\r\nReferred-By: <sip:4711@10.20.0.5>"), None);
    s.sip(1_410, X_SIP, A_SIP, &format!("SIP/2.0 202 Accepted\r\nFrom: <sip:02087483020@10.20.0.5>;tag=a1\r\nTo: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nCall-ID: leg1\r\nCSeq: 2 REFER"), None);
    s.sip(1_420, A_SIP, X_SIP, &format!("BYE sip:{CALLER}@192.0.2.10 SIP/2.0\r\nFrom: <sip:02087483020@10.20.0.5>;tag=a1\r\nTo: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nCall-ID: leg1\r\nCSeq: 3 BYE"), None);
    // the caller's phone calls the transfer target, a whole second later
    s.sip(2_500, X_SIP, B_SIP, &format!("INVITE sip:4712@10.20.0.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x2\r\nTo: <sip:4712@10.20.0.5>\r\nCall-ID: leg3\r\nCSeq: 1 INVITE\r\nReferred-By: <sip:4711@10.20.0.5>"), Some(X_RTP));
    s.sip(2_700, B_SIP, X_SIP, &format!("SIP/2.0 200 OK\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x2\r\nTo: <sip:4712@10.20.0.5>;tag=b1\r\nCall-ID: leg3\r\nCSeq: 1 INVITE"), Some(B_RTP));
    s.both_ways(2_720, X_RTP, B_RTP, 3, 4, 50);
    s.sip(3_800, X_SIP, B_SIP, &format!("BYE sip:4712@10.20.1.9 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x2\r\nTo: <sip:4712@10.20.0.5>;tag=b1\r\nCall-ID: leg3\r\nCSeq: 2 BYE"), None);
    let (summary, recorded, _dir, _key) = s.finish();
    assert_eq!(recorded.len(), 1, "one conversation, one call:\n{summary}");
    let rec = &recorded[0];
    assert_eq!(joined(rec), ["initial", "refer"]);
    assert_eq!(rec.sip_call_ids, ["leg1", "leg3"]);
    assert_eq!(
        (
            packets(rec, "from_caller"),
            packets(rec, "from_organisation")
        ),
        (100, 100),
        "{:?}",
        rec.streams
    );
    assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
    assert_eq!(summary.calls.calls_seen, 1);
}

#[test]
fn attended_transfer_records_the_conversation_but_not_the_consultation() {
    let mut s = Script::new();
    s.attended_transfer();
    let (summary, recorded, _dir, _key) = s.finish();
    assert_eq!(recorded.len(), 1, "{summary}");
    let rec = &recorded[0];
    assert_eq!(joined(rec), ["initial", "refer"]);
    assert_eq!(
        (
            packets(rec, "from_caller"),
            packets(rec, "from_organisation")
        ),
        (100, 100),
        "{:?}",
        rec.streams
    );
    assert!(
        rec.streams
            .iter()
            .all(|s| s.ssrc != "0x00000005" && s.ssrc != "0x00000006"),
        "consultation audio kept out"
    );
    assert_eq!(
        summary.calls.not_recorded_by_rule.get("internal_call"),
        Some(&1)
    );
    assert_eq!(
        summary.routes.rtp_out_of_scope, 50,
        "the consultation's packets were dropped"
    );
    assert_eq!(rec.end_reason.as_deref(), Some("organisation_hangup"));
    let t = &rec.legs[0].transfers;
    assert_eq!(t.len(), 1, "{:?}", rec.legs);
    assert_eq!(
        (t[0].target.as_str(), t[0].attended, t[0].status),
        ("4712", true, Some(200))
    );
}

#[test]
fn with_the_switch_on_the_consultation_is_kept_with_the_call_on_the_organisation_channel() {
    let mut cfg = example_config();
    cfg.scope.record_consultation_calls = true;
    let mut s = Script::with_config(cfg);
    s.attended_transfer();
    let (summary, recorded, _dir, _key) = s.finish();
    assert_eq!(recorded.len(), 1, "{summary}");
    let rec = &recorded[0];
    assert_eq!(joined(rec), ["initial", "consultation", "refer"]);
    assert_eq!(
        summary.calls.calls_seen, 1,
        "the consultation is not a call of its own"
    );
    // caller: 50 + 50; organisation: agent 50, consultation 25 + 25, back office 50
    assert_eq!(
        (
            packets(rec, "from_caller"),
            packets(rec, "from_organisation")
        ),
        (100, 150),
        "{:?}",
        rec.streams
    );
    assert_eq!(summary.routes.rtp_out_of_scope, 0);
}

#[test]
fn a_pbx_leg_carrying_the_callers_media_joins_the_call() {
    let mut s = Script::new();
    // trunk leg: SBC to PBX, answered by the PBX with the phone's media (direct media)
    s.sip(0, X_SIP, PBX, &format!("INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>\r\nCall-ID: trunk\r\nCSeq: 1 INVITE"), Some(X_RTP));
    // the PBX's own leg to the agent's phone: dialled 4711, offering the caller's media
    s.sip(20, PBX, A_SIP, &format!("INVITE sip:4711@10.20.1.5 SIP/2.0\r\nFrom: <sip:{CALLER}@10.20.0.5>;tag=p1\r\nTo: <sip:4711@10.20.1.5>\r\nCall-ID: pbxleg\r\nCSeq: 1 INVITE"), Some(X_RTP));
    s.sip(300, A_SIP, PBX, &format!("SIP/2.0 200 OK\r\nFrom: <sip:{CALLER}@10.20.0.5>;tag=p1\r\nTo: <sip:4711@10.20.1.5>;tag=a9\r\nCall-ID: pbxleg\r\nCSeq: 1 INVITE"), Some(A_RTP));
    s.sip(310, PBX, X_SIP, &format!("SIP/2.0 200 OK\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=p9\r\nCall-ID: trunk\r\nCSeq: 1 INVITE"), Some(A_RTP));
    s.both_ways(320, X_RTP, A_RTP, 1, 2, 50);
    s.sip(1_400, A_SIP, PBX, &format!("BYE sip:x@10.20.0.5 SIP/2.0\r\nFrom: <sip:4711@10.20.1.5>;tag=a9\r\nTo: <sip:{CALLER}@10.20.0.5>;tag=p1\r\nCall-ID: pbxleg\r\nCSeq: 2 BYE"), None);
    s.sip(1_410, PBX, X_SIP, &format!("BYE sip:x@192.0.2.10 SIP/2.0\r\nFrom: <sip:02087483020@10.20.0.5>;tag=p9\r\nTo: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nCall-ID: trunk\r\nCSeq: 2 BYE"), None);
    let (summary, recorded, _dir, _key) = s.finish();
    assert_eq!(recorded.len(), 1, "{summary}");
    assert_eq!(joined(&recorded[0]), ["initial", "media_endpoint"]);
    assert_eq!(
        summary.calls.calls_seen, 1,
        "the PBX leg is not a call of its own"
    );
    assert_eq!(
        (
            packets(&recorded[0], "from_caller"),
            packets(&recorded[0], "from_organisation")
        ),
        (50, 50)
    );
}

#[test]
fn transferring_an_unrecorded_call_to_a_listed_number_records_nothing() {
    let mut s = Script::new();
    // a member of the public direct-dials a staff member's DDI: out of scope
    s.sip(0, X_SIP, A_SIP, &format!("INVITE sip:02087484711@10.20.0.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087484711@10.20.0.5>\r\nCall-ID: ddi\r\nCSeq: 1 INVITE"), Some(X_RTP));
    s.sip(300, A_SIP, X_SIP, &format!("SIP/2.0 200 OK\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087484711@10.20.0.5>;tag=a1\r\nCall-ID: ddi\r\nCSeq: 1 INVITE"), Some(A_RTP));
    s.both_ways(320, X_RTP, A_RTP, 1, 2, 25);
    // the staff member transfers them to the switchboard, a recorded number
    s.sip(900, A_SIP, X_SIP, &format!("REFER sip:{CALLER}@192.0.2.10 SIP/2.0\r\nFrom: <sip:02087484711@10.20.0.5>;tag=a1\r\nTo: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nCall-ID: ddi\r\nCSeq: 2 REFER\r\nRefer-To: <sip:02087483020@10.20.0.5>\r\nReferred-By: <sip:4711@10.20.0.5>"), None);
    s.sip(950, A_SIP, X_SIP, &format!("BYE sip:{CALLER}@192.0.2.10 SIP/2.0\r\nFrom: <sip:02087484711@10.20.0.5>;tag=a1\r\nTo: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nCall-ID: ddi\r\nCSeq: 3 BYE"), None);
    s.sip(1_000, X_SIP, B_SIP, &format!("INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x2\r\nTo: <sip:02087483020@10.20.0.5>\r\nCall-ID: after\r\nCSeq: 1 INVITE\r\nReferred-By: <sip:4711@10.20.0.5>"), Some(X_RTP));
    s.sip(1_200, B_SIP, X_SIP, &format!("SIP/2.0 200 OK\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x2\r\nTo: <sip:02087483020@10.20.0.5>;tag=b1\r\nCall-ID: after\r\nCSeq: 1 INVITE"), Some(B_RTP));
    s.both_ways(1_220, X_RTP, B_RTP, 3, 4, 25);
    s.sip(1_800, X_SIP, B_SIP, &format!("BYE sip:x@10.20.1.9 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x2\r\nTo: <sip:02087483020@10.20.0.5>;tag=b1\r\nCall-ID: after\r\nCSeq: 2 BYE"), None);
    let (summary, recorded, dir, _key) = s.finish();
    assert!(recorded.is_empty(), "{summary}");
    assert_eq!(summary.calls.legs_joined.get("refer"), Some(&1));
    assert_eq!(summary.routes.rtp_recorded, 0);
    assert!(spool_files(dir.path()).is_empty());
}

#[test]
fn somebody_else_dialling_the_transfer_target_is_not_swept_in() {
    let mut s = Script::new();
    s.answered_call();
    s.sip(1_400, A_SIP, X_SIP, &format!("REFER sip:{CALLER}@192.0.2.10 SIP/2.0\r\nFrom: <sip:02087483020@10.20.0.5>;tag=a1\r\nTo: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nCall-ID: leg1\r\nCSeq: 2 REFER\r\nRefer-To: <sip:4712@10.20.0.5>\r\nReferred-By: <sip:4711@10.20.0.5>"), None);
    // an unrelated member of the public direct-dials extension 4712 in the same second
    s.sip(1_500, "192.0.2.10:5060", B_SIP, "INVITE sip:4712@10.20.0.5 SIP/2.0\r\nFrom: <sip:+447700900555@192.0.2.10>;tag=y1\r\nTo: <sip:4712@10.20.0.5>\r\nCall-ID: other\r\nCSeq: 1 INVITE", Some("192.0.2.10:20500"));
    s.sip(1_700, B_SIP, "192.0.2.10:5060", "SIP/2.0 200 OK\r\nFrom: <sip:+447700900555@192.0.2.10>;tag=y1\r\nTo: <sip:4712@10.20.0.5>;tag=b7\r\nCall-ID: other\r\nCSeq: 1 INVITE", Some(B_RTP));
    s.both_ways(1_720, "192.0.2.10:20500", B_RTP, 7, 8, 25);
    s.sip(2_300, "192.0.2.10:5060", B_SIP, "BYE sip:4712@10.20.1.9 SIP/2.0\r\nFrom: <sip:+447700900555@192.0.2.10>;tag=y1\r\nTo: <sip:4712@10.20.0.5>;tag=b7\r\nCall-ID: other\r\nCSeq: 2 BYE", None);
    s.sip(2_400, X_SIP, A_SIP, &format!("BYE sip:4711@10.20.1.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=a1\r\nCall-ID: leg1\r\nCSeq: 4 BYE"), None);
    let (summary, recorded, _dir, _key) = s.finish();
    assert_eq!(recorded.len(), 1, "{summary}");
    assert_eq!(joined(&recorded[0]), ["initial"]);
    assert_eq!(
        summary
            .calls
            .not_recorded_by_rule
            .get("direct_dial_extension"),
        Some(&1)
    );
    assert!(
        recorded[0]
            .streams
            .iter()
            .all(|s| s.ssrc != "0x00000007" && s.ssrc != "0x00000008")
    );
}

#[test]
fn a_transfer_to_another_listed_queue_stays_one_call() {
    let mut s = Script::new();
    s.answered_call();
    s.sip(1_400, A_SIP, X_SIP, &format!("REFER sip:{CALLER}@192.0.2.10 SIP/2.0\r\nFrom: <sip:02087483020@10.20.0.5>;tag=a1\r\nTo: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nCall-ID: leg1\r\nCSeq: 2 REFER\r\nRefer-To: <sip:02073715678@10.20.0.5>\r\nReferred-By: <sip:4711@10.20.0.5>"), None);
    s.sip(1_450, X_SIP, B_SIP, &format!("INVITE sip:02073715678@10.20.0.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x2\r\nTo: <sip:02073715678@10.20.0.5>\r\nCall-ID: parking\r\nCSeq: 1 INVITE\r\nReferred-By: <sip:4711@10.20.0.5>"), Some(X_RTP));
    s.sip(1_600, B_SIP, X_SIP, &format!("SIP/2.0 200 OK\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x2\r\nTo: <sip:02073715678@10.20.0.5>;tag=q1\r\nCall-ID: parking\r\nCSeq: 1 INVITE"), Some(B_RTP));
    s.sip(1_650, X_SIP, A_SIP, &format!("BYE sip:4711@10.20.1.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=a1\r\nCall-ID: leg1\r\nCSeq: 3 BYE"), None);
    s.both_ways(1_700, X_RTP, B_RTP, 3, 4, 25);
    s.sip(2_300, X_SIP, B_SIP, &format!("BYE sip:x@10.20.1.9 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x2\r\nTo: <sip:02073715678@10.20.0.5>;tag=q1\r\nCall-ID: parking\r\nCSeq: 2 BYE"), None);
    let (summary, recorded, _dir, _key) = s.finish();
    assert_eq!(recorded.len(), 1, "{summary}");
    assert_eq!(summary.calls.calls_recorded, 1);
    assert_eq!(joined(&recorded[0]), ["initial", "refer"]);
    assert_eq!(
        recorded[0].service.as_deref(),
        Some("Switchboard"),
        "the call keeps its first decision"
    );
}

#[test]
fn a_forked_invite_is_one_call_answered_by_one_fork() {
    let mut s = Script::new();
    s.sip(0, X_SIP, PBX, &format!("INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>\r\nCall-ID: fork\r\nCSeq: 1 INVITE"), Some(X_RTP));
    // two phones of the hunt group ring; one sends early media
    s.sip(100, PBX, X_SIP, &format!("SIP/2.0 180 Ringing\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=f1\r\nCall-ID: fork\r\nCSeq: 1 INVITE"), None);
    s.sip(120, PBX, X_SIP, &format!("SIP/2.0 183 Session Progress\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=f2\r\nCall-ID: fork\r\nCSeq: 1 INVITE"), Some(B_RTP));
    s.rtp(140, B_RTP, X_RTP, 9, 0xaa, 20);
    // the first fork answers
    s.sip(600, PBX, X_SIP, &format!("SIP/2.0 200 OK\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=f1\r\nCall-ID: fork\r\nCSeq: 1 INVITE"), Some(A_RTP));
    s.both_ways(620, X_RTP, A_RTP, 1, 2, 50);
    s.sip(1_700, X_SIP, PBX, &format!("BYE sip:x@10.20.0.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=f1\r\nCall-ID: fork\r\nCSeq: 2 BYE"), None);
    let (summary, recorded, _dir, _key) = s.finish();
    assert_eq!(recorded.len(), 1, "{summary}");
    let rec = &recorded[0];
    assert_eq!(rec.legs.len(), 1);
    assert!(rec.answered_at.is_some());
    assert_eq!(packets(rec, "from_caller"), 50);
    // the early media of the fork that did not answer, then the answering phone
    assert_eq!(packets(rec, "from_organisation"), 70, "{:?}", rec.streams);
}

#[test]
fn another_caller_announcing_the_same_private_address_is_not_joined() {
    let mut s = Script::new();
    s.answered_call();
    // a second caller behind another NAT announces the same private media address
    s.sip(1_400, "192.0.2.10:5060", B_SIP, "INVITE sip:02087484712@10.20.0.5 SIP/2.0\r\nFrom: <sip:+447700900555@192.0.2.10>;tag=y1\r\nTo: <sip:02087484712@10.20.0.5>\r\nCall-ID: natted\r\nCSeq: 1 INVITE", Some(X_RTP));
    s.sip(1_600, B_SIP, "192.0.2.10:5060", "SIP/2.0 200 OK\r\nFrom: <sip:+447700900555@192.0.2.10>;tag=y1\r\nTo: <sip:02087484712@10.20.0.5>;tag=b7\r\nCall-ID: natted\r\nCSeq: 1 INVITE", Some(B_RTP));
    s.both_ways(1_620, B_RTP, X_RTP, 7, 8, 25);
    s.sip(2_200, X_SIP, A_SIP, &format!("BYE sip:4711@10.20.1.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=a1\r\nCall-ID: leg1\r\nCSeq: 4 BYE"), None);
    let (summary, recorded, _dir, _key) = s.finish();
    assert_eq!(recorded.len(), 1, "{summary}");
    assert_eq!(joined(&recorded[0]), ["initial"]);
    assert_eq!(
        summary.calls.not_recorded_by_rule.get("unlisted_number"),
        Some(&1)
    );
    assert!(
        recorded[0]
            .streams
            .iter()
            .all(|s| s.ssrc != "0x00000007" && s.ssrc != "0x00000008"),
        "{:?}",
        recorded[0].streams
    );
}

impl Script {
    /// Attended transfer: the caller talks to the agent, the agent consults the back office
    /// (an internal call on a new port), refers the caller with Replaces, the caller's phone
    /// replaces the consultation, and the conversation goes on with the back office.
    fn attended_transfer(&mut self) {
        let s = self;
        s.answered_call();
        // agent consults the back office (internal call, a new port on the agent's phone)
        s.sip(1_400, A_SIP, B_SIP, "INVITE sip:4712@10.20.0.5 SIP/2.0\r\nFrom: <sip:4711@10.20.0.5>;tag=c1\r\nTo: <sip:4712@10.20.0.5>\r\nCall-ID: consult\r\nCSeq: 1 INVITE", Some(A_RTP2));
        s.sip(1_600, B_SIP, A_SIP, "SIP/2.0 200 OK\r\nFrom: <sip:4711@10.20.0.5>;tag=c1\r\nTo: <sip:4712@10.20.0.5>;tag=c2\r\nCall-ID: consult\r\nCSeq: 1 INVITE", Some(B_RTP));
        s.both_ways(1_620, A_RTP2, B_RTP, 5, 6, 25);
        // the agent refers the caller to the officer, replacing the consultation
        s.sip(2_200, A_SIP, X_SIP, &format!("REFER sip:{CALLER}@192.0.2.10 SIP/2.0\r\nFrom: <sip:02087483020@10.20.0.5>;tag=a1\r\nTo: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nCall-ID: leg1\r\nCSeq: 2 REFER\r\nRefer-To: <sip:4712@10.20.0.5?Replaces=consult%3Bto-tag%3Dc2%3Bfrom-tag%3Dc1>\r\nReferred-By: <sip:4711@10.20.0.5>"), None);
        s.sip(2_300, X_SIP, B_SIP, &format!("INVITE sip:4712@10.20.1.9 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x3\r\nTo: <sip:4712@10.20.0.5>\r\nCall-ID: leg3\r\nCSeq: 1 INVITE\r\nReplaces: consult;to-tag=c2;from-tag=c1"), Some(X_RTP));
        s.sip(2_400, B_SIP, X_SIP, &format!("SIP/2.0 200 OK\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x3\r\nTo: <sip:4712@10.20.0.5>;tag=b3\r\nCall-ID: leg3\r\nCSeq: 1 INVITE"), Some(B_RTP));
        let notify = format!(
            "NOTIFY sip:4711@10.20.1.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=a1\r\nCall-ID: leg1\r\nCSeq: 3 NOTIFY\r\nEvent: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag\r\nContent-Length: 16\r\n\r\nSIP/2.0 200 OK\r\n"
        );
        s.p.frame(
            Script::t(2_410),
            LinkType::Ethernet,
            &udp_frame(a(X_SIP), a(A_SIP), notify.as_bytes()),
        );
        s.sip(2_450, B_SIP, A_SIP, "BYE sip:4711@10.20.1.5 SIP/2.0\r\nFrom: <sip:4712@10.20.0.5>;tag=c2\r\nTo: <sip:4711@10.20.0.5>;tag=c1\r\nCall-ID: consult\r\nCSeq: 2 BYE", None);
        s.sip(2_460, X_SIP, A_SIP, &format!("BYE sip:4711@10.20.1.5 SIP/2.0\r\nFrom: <sip:{CALLER}@192.0.2.10>;tag=x1\r\nTo: <sip:02087483020@10.20.0.5>;tag=a1\r\nCall-ID: leg1\r\nCSeq: 4 BYE"), None);
        s.both_ways(2_500, X_RTP, B_RTP, 3, 4, 50);
        s.sip(3_600, B_SIP, X_SIP, &format!("BYE sip:{CALLER}@192.0.2.10 SIP/2.0\r\nFrom: <sip:4712@10.20.0.5>;tag=b3\r\nTo: <sip:{CALLER}@192.0.2.10>;tag=x3\r\nCall-ID: leg3\r\nCSeq: 2 BYE"), None);
    }
}
