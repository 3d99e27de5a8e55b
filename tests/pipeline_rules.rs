//! Pipeline rules that need hand-made SIP: what happens when legs and media addresses meet.

mod common;

use std::net::SocketAddrV4;

use callvault::entropy::Entropy;
use callvault::net::LinkType;
use callvault::pipeline::{LocalPipeline, Pipeline};
use callvault::spool::Spool;
use callvault::time::Timestamp;
use common::{CollectingSink, example_config, rtp_packet, sip_with_sdp, test_keys, udp_frame};

fn addr(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

/// A pipeline writing into a fresh spool (kept alive by the returned directory).
fn pipeline(
    cfg: &callvault::config::AgentConfig,
) -> (LocalPipeline<Spool, CollectingSink>, tempfile::TempDir) {
    let (_, public, _private) = test_keys();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let p = Pipeline::new(
        cfg,
        public,
        spool.clone(),
        CollectingSink::new(spool),
        Entropy::system(),
    );
    (p, dir)
}

#[test]
fn an_address_shared_with_an_unrecorded_dialog_stops_being_recorded() {
    let (mut p, _dir) = pipeline(&example_config());
    let sbc = addr("192.0.2.10:5060");
    let pbx = addr("10.20.0.5:5060");
    let phone = addr("10.20.1.5:5060");
    let t = |ms: u64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let send = |p: &mut LocalPipeline<_, _>, ms: u64, src, dst, payload: &[u8]| {
        p.frame(t(ms), LinkType::Ethernet, &udp_frame(src, dst, payload));
    };
    // the public calls the switchboard
    let invite = sip_with_sdp(
        "INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>\r\nCall-ID: leg1@sbc\r\nCSeq: 1 INVITE\r\n",
        Some(("192.0.2.10", 20000)),
    );
    send(&mut p, 0, sbc, pbx, &invite);
    let ok = sip_with_sdp(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>;tag=b1\r\nCall-ID: leg1@sbc\r\nCSeq: 1 INVITE\r\n",
        Some(("10.20.1.5", 30000)),
    );
    send(&mut p, 500, pbx, sbc, &ok);
    // the agent's phone starts an internal call re-using its own media port (a consultation):
    // from then on nobody can tell whose voice arrives at that port, so it is not recorded
    let leg2 = sip_with_sdp(
        "INVITE sip:4712@10.20.0.5 SIP/2.0\r\nVia: SIP/2.0/UDP 10.20.1.5;branch=z9hG4bK2\r\nFrom: <sip:4711@10.20.0.5>;tag=p1\r\nTo: <sip:4712@10.20.0.5>\r\nCall-ID: leg2@phone\r\nCSeq: 1 INVITE\r\n",
        Some(("10.20.1.5", 30000)),
    );
    send(&mut p, 550, phone, pbx, &leg2);
    // media both ways for 2 s
    for i in 0..100u16 {
        let ms = 600 + i as u64 * 20;
        send(
            &mut p,
            ms,
            addr("192.0.2.10:20000"),
            addr("10.20.1.5:30000"),
            &rtp_packet(i, i as u32 * 160, 1, 0x55),
        );
        send(
            &mut p,
            ms,
            addr("10.20.1.5:30000"),
            addr("192.0.2.10:20000"),
            &rtp_packet(i, i as u32 * 160, 2, 0xd5),
        );
    }
    let bye = sip_with_sdp(
        "BYE sip:02087483020@10.20.0.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK3\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>;tag=b1\r\nCall-ID: leg1@sbc\r\nCSeq: 2 BYE\r\n",
        None,
    );
    send(&mut p, 2_700, sbc, pbx, &bye);
    p.finish("capture_end");
    let s = p.summary();
    assert_eq!(s.routes.route_conflicts, 1, "{s}");
    let rec = &p.sink().recorded;
    assert_eq!(rec.len(), 1);
    let streams = &rec[0].streams;
    let from_org: u64 = streams
        .iter()
        .filter(|s| s.direction == "from_organisation")
        .map(|s| s.packets)
        .sum();
    let from_caller: u64 = streams
        .iter()
        .filter(|s| s.direction == "from_caller")
        .map(|s| s.packets)
        .sum();
    // the caller's voice went to the shared port: privacy wins, it is dropped and counted
    assert_eq!((from_caller, from_org), (0, 100), "{streams:?}");
    assert_eq!(s.routes.rtp_out_of_scope, 100);
    assert_eq!(rec[0].end_reason.as_deref(), Some("caller_hangup"));
}

/// Replays hand-made SIP + RTP where the caller is behind NAT: its SDP names a private address,
/// its RTP comes from a public one, and the agent sends back to that public address (which no
/// SDP names). With symmetric RTP the agent's packets are still recorded (matched by source).
fn nat_call(symmetric: bool) -> callvault::pipeline::Summary {
    let mut cfg = example_config();
    cfg.media.symmetric_rtp = symmetric;
    let (mut p, _dir) = pipeline(&cfg);
    let t = |ms: u64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let sbc = addr("192.0.2.10:5060");
    let pbx = addr("10.20.0.5:5060");
    let invite = sip_with_sdp(
        "INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>\r\nCall-ID: nat@sbc\r\nCSeq: 1 INVITE\r\n",
        Some(("10.0.0.99", 4000)),
    );
    p.frame(t(0), LinkType::Ethernet, &udp_frame(sbc, pbx, &invite));
    let ok = sip_with_sdp(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>;tag=b1\r\nCall-ID: nat@sbc\r\nCSeq: 1 INVITE\r\n",
        Some(("10.20.1.5", 30000)),
    );
    p.frame(t(100), LinkType::Ethernet, &udp_frame(pbx, sbc, &ok));
    for i in 0..50u16 {
        let ms = 200 + i as u64 * 20;
        let caller = udp_frame(
            addr("203.0.113.7:5000"),
            addr("10.20.1.5:30000"),
            &rtp_packet(i, i as u32 * 160, 1, 0x55),
        );
        let agent = udp_frame(
            addr("10.20.1.5:30000"),
            addr("203.0.113.7:5000"),
            &rtp_packet(i, i as u32 * 160, 2, 0xd5),
        );
        p.frame(t(ms), LinkType::Ethernet, &caller);
        p.frame(t(ms), LinkType::Ethernet, &agent);
    }
    p.finish("capture_end");
    p.summary()
}

#[test]
fn symmetric_rtp_latching_records_media_sent_to_an_address_no_sdp_named() {
    let on = nat_call(true);
    assert_eq!(on.routes.rtp_recorded, 100, "{on}");
    let off = nat_call(false);
    assert_eq!(off.routes.rtp_recorded, 50, "{off}");
    assert_eq!(off.routes.rtp_unmatched, 50, "{off}");
}

#[test]
fn one_bogus_future_timestamp_does_not_stop_calls_from_ending() {
    let (mut p, _dir) = pipeline(&example_config());
    let t = |ms: u64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let (sbc, pbx) = (addr("192.0.2.10:5060"), addr("10.20.0.5:5060"));
    let invite = sip_with_sdp(
        "INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>\r\nCall-ID: leap\r\nCSeq: 1 INVITE\r\n",
        Some(("192.0.2.10", 20000)),
    );
    p.frame(t(0), LinkType::Ethernet, &udp_frame(sbc, pbx, &invite));
    let ok = sip_with_sdp(
        "SIP/2.0 200 OK\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>;tag=b1\r\nCall-ID: leap\r\nCSeq: 1 INVITE\r\n",
        Some(("10.20.1.5", 30000)),
    );
    p.frame(t(100), LinkType::Ethernet, &udp_frame(pbx, sbc, &ok));
    // one corrupt record stamped decades ahead
    p.frame(
        Timestamp::from_millis(4_102_444_800_000),
        LinkType::Ethernet,
        &udp_frame(addr("10.9.9.9:9"), addr("10.9.9.8:9"), b"junk"),
    );
    for i in 0..50u16 {
        let pkt = udp_frame(
            addr("192.0.2.10:20000"),
            addr("10.20.1.5:30000"),
            &rtp_packet(i, i as u32 * 160, 1, 0x55),
        );
        p.frame(t(200 + i as u64 * 20), LinkType::Ethernet, &pkt);
    }
    let bye = sip_with_sdp(
        "BYE sip:02087483020@10.20.0.5 SIP/2.0\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>;tag=b1\r\nCall-ID: leap\r\nCSeq: 2 BYE\r\n",
        None,
    );
    p.frame(t(1_300), LinkType::Ethernet, &udp_frame(sbc, pbx, &bye));
    // traffic goes on (another call's packets): the ended call is closed and written
    for i in 0..20u64 {
        p.frame(
            t(1_400 + i * 100),
            LinkType::Ethernet,
            &udp_frame(addr("10.9.9.9:9"), addr("10.9.9.8:9"), b"other"),
        );
    }
    assert_eq!(p.sink().recorded.len(), 1, "{}", p.summary());
    assert_eq!(
        p.sink().recorded[0].end_reason.as_deref(),
        Some("caller_hangup")
    );
    assert_eq!(p.summary().routes.clock_steps, 1);
}

/// One RTP frame stamped more than ten minutes in the past (fuzzing found it) must not drag
/// capture time back: the call would then be padded with silence up to the next good packet.
/// The recording holds no more audio than the capture spans, plus the playout delay.
#[test]
fn one_frame_stamped_far_in_the_past_does_not_pad_the_call() {
    let cfg = example_config();
    let (mut p, _dir) = pipeline(&cfg);
    let t = |ms: u64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let (sbc, pbx) = (addr("192.0.2.10:5060"), addr("10.20.0.5:5060"));
    let invite = sip_with_sdp(
        "INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>\r\nCall-ID: past\r\nCSeq: 1 INVITE\r\n",
        Some(("192.0.2.10", 20000)),
    );
    p.frame(t(0), LinkType::Ethernet, &udp_frame(sbc, pbx, &invite));
    let ok = sip_with_sdp(
        "SIP/2.0 200 OK\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>;tag=b1\r\nCall-ID: past\r\nCSeq: 1 INVITE\r\n",
        Some(("10.20.1.5", 30000)),
    );
    p.frame(t(10), LinkType::Ethernet, &udp_frame(pbx, sbc, &ok));
    let rtp = |i: u16| {
        udp_frame(
            addr("192.0.2.10:20000"),
            addr("10.20.1.5:30000"),
            &rtp_packet(i, i as u32 * 160, 1, 0x55),
        )
    };
    for i in 0..12u16 {
        // the sixth packet's record says it was captured 700 s before the call began
        let at = if i == 5 {
            Timestamp::from_millis(1_700_000_000_000 - 700_000)
        } else {
            t(20 + i as u64 * 20)
        };
        p.frame(at, LinkType::Ethernet, &rtp(i));
    }
    p.finish("end_of_capture");
    let span_ms = 20 + 11 * 20;
    let rec = &p.sink().recorded[0];
    assert!(
        rec.audio_ms <= span_ms + cfg.media.playout_delay_ms as u64,
        "{} ms of audio from a {span_ms} ms capture\n{}",
        rec.audio_ms,
        p.summary()
    );
    assert!(rec.audio_ms >= 200, "{} ms", rec.audio_ms);
    assert_eq!(p.summary().routes.clock_steps, 1);
}

/// A new dialog joins a call as the other side of an SBC only with both the From tag and the
/// caller of a live leg: the same tag from someone else, or the same caller with another tag
/// (every line of a company shares its number), is a call of its own.
#[test]
fn a_dialog_joins_as_the_other_side_of_an_sbc_only_with_the_tag_and_the_caller() {
    let (mut p, _dir) = pipeline(&example_config());
    let outside = addr("192.0.2.10:5060");
    let sbc = addr("10.20.0.5:5060");
    let phone = addr("10.20.1.5:5060");
    let t = |ms: u64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let invite = |p: &mut LocalPipeline<_, _>,
                  ms: u64,
                  src,
                  dst,
                  to: &str,
                  from: &str,
                  tag: &str,
                  id: &str| {
        let msg = sip_with_sdp(
            &format!(
                "INVITE sip:{to}@10.20.0.5 SIP/2.0\r\nVia: SIP/2.0/UDP 10.20.0.5;branch=z9hG4bK{id}\r\nFrom: <sip:{from}@192.0.2.10>;tag={tag}\r\nTo: <sip:{to}@10.20.0.5>\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\n"
            ),
            None,
        );
        p.frame(t(ms), LinkType::Ethernet, &udp_frame(src, dst, &msg));
    };
    // the public calls the switchboard (recorded)
    invite(
        &mut p,
        0,
        outside,
        sbc,
        "02087483020",
        "+447700900123",
        "a1",
        "outside@carrier",
    );
    // the same tag from another caller, and the same caller with another tag: their own calls
    invite(
        &mut p,
        10,
        outside,
        sbc,
        "02087484711",
        "+447700900999",
        "a1",
        "other@carrier",
    );
    invite(
        &mut p,
        20,
        outside,
        sbc,
        "02087484712",
        "+447700900123",
        "z9",
        "line2@carrier",
    );
    // the SBC's inside copy of the first dialog, under a Call-ID of its own (topology hiding)
    invite(
        &mut p,
        30,
        sbc,
        phone,
        "2005",
        "+447700900123",
        "a1",
        "!!:hidden",
    );
    p.finish("capture_end");
    let s = p.summary();
    assert_eq!(s.calls.calls_seen, 3, "{s}");
    assert_eq!(s.calls.calls_recorded, 1, "{s}");
    assert_eq!(s.calls.legs_joined.get("b2bua"), Some(&1), "{s}");
    let sink = p.sink();
    assert_eq!(sink.recorded.len(), 1);
    assert_eq!(
        sink.recorded[0].sip_call_ids,
        ["outside@carrier", "!!:hidden"]
    );
}

/// A HEP feed traces a forwarded REFER after the messages that follow it: here the
/// transferee's INVITE (and its answer) come before the REFER that asked for it. Within two
/// seconds that dialog is still the rest of the conversation: one recording, the back office
/// heard on the right. Later than that, it stays a call of its own, unrecorded.
#[test]
fn a_refer_seen_after_the_invite_it_caused_still_links_the_transfer() {
    for (refer_late_ms, linked) in [(50u64, true), (3_000, false)] {
        let (mut p, _dir) = pipeline(&example_config());
        let sbc = addr("192.0.2.10:5060");
        let pbx = addr("10.20.0.5:5060");
        let t = |ms: u64| Timestamp::from_millis(1_700_000_000_000 + ms);
        let send = |p: &mut LocalPipeline<_, _>, ms: u64, src, dst, payload: &[u8]| {
            p.frame(t(ms), LinkType::Ethernet, &udp_frame(src, dst, payload));
        };
        let sip = |head: &str, media: Option<(&str, u16)>| sip_with_sdp(head, media);
        let from1 =
            "From: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>";
        send(
            &mut p,
            0,
            sbc,
            pbx,
            &sip(
                &format!(
                    "INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\n{from1}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
                ),
                Some(("192.0.2.10", 20000)),
            ),
        );
        send(
            &mut p,
            100,
            pbx,
            sbc,
            &sip(
                &format!(
                    "SIP/2.0 200 OK\r\n{from1};tag=b1\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:4711@10.20.1.5>\r\n"
                ),
                Some(("10.20.1.5", 30000)),
            ),
        );
        let mut ms = 200;
        let rtp_to = |p: &mut LocalPipeline<_, _>,
                      from_ms: u64,
                      to_ms: u64,
                      caller: &str,
                      org: &str,
                      ssrc: u32| {
            for (i, at) in (from_ms..to_ms).step_by(20).enumerate() {
                let i = i as u16;
                send(
                    p,
                    at,
                    addr(caller),
                    addr(org),
                    &rtp_packet(i, i as u32 * 160, 1, 0x55),
                );
                send(
                    p,
                    at,
                    addr(org),
                    addr(caller),
                    &rtp_packet(i, i as u32 * 160, ssrc, 0xd5),
                );
            }
        };
        rtp_to(
            &mut p,
            ms,
            ms + 1_000,
            "192.0.2.10:20000",
            "10.20.1.5:30000",
            2,
        );
        ms += 1_000;
        // the transferee's INVITE (from a new port of the caller's phone) and its answer,
        // traced before the REFER
        let from2 = "From: <sip:+447700900123@192.0.2.10>;tag=a2\r\nTo: <sip:4712@10.20.0.5>";
        send(
            &mut p,
            ms,
            sbc,
            pbx,
            &sip(
                &format!(
                    "INVITE sip:4712@10.20.0.5 SIP/2.0\r\n{from2}\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nReferred-By: <sip:4711@10.20.0.5>\r\n"
                ),
                Some(("192.0.2.10", 20002)),
            ),
        );
        send(
            &mut p,
            ms + 20,
            pbx,
            sbc,
            &sip(
                &format!("SIP/2.0 200 OK\r\n{from2};tag=b2\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\n"),
                Some(("10.20.1.6", 30002)),
            ),
        );
        send(
            &mut p,
            ms + refer_late_ms,
            pbx,
            sbc,
            &sip(
                "REFER sip:+447700900123@192.0.2.10 SIP/2.0\r\nFrom: <sip:02087483020@10.20.0.5>;tag=b1\r\nTo: <sip:+447700900123@192.0.2.10>;tag=a1\r\nCall-ID: c1\r\nCSeq: 2 REFER\r\nRefer-To: <sip:4712@10.20.0.5>\r\nReferred-By: <sip:4711@10.20.0.5>\r\n",
                None,
            ),
        );
        ms += refer_late_ms + 20;
        rtp_to(
            &mut p,
            ms,
            ms + 1_000,
            "192.0.2.10:20002",
            "10.20.1.6:30002",
            3,
        );
        ms += 1_000;
        send(
            &mut p,
            ms,
            sbc,
            pbx,
            &sip(
                &format!(
                    "BYE sip:4712@10.20.0.5 SIP/2.0\r\n{from2};tag=b2\r\nCall-ID: c2\r\nCSeq: 2 BYE\r\n"
                ),
                None,
            ),
        );
        p.finish("capture_end");
        let s = p.summary();
        let sink = p.sink();
        assert_eq!(sink.recorded.len(), 1, "{s}");
        let rec = &sink.recorded[0];
        let back_office: u64 = rec
            .streams
            .iter()
            .filter(|st| st.ssrc == "0x00000003")
            .map(|st| st.packets)
            .sum();
        if linked {
            assert_eq!(s.calls.calls_seen, 1, "{s}");
            assert_eq!(s.calls.late_transfers, 1, "{s}");
            assert_eq!(rec.sip_call_ids, ["c1", "c2"]);
            assert_eq!(rec.legs[1].joined_by, "refer");
            assert!(
                back_office >= 40,
                "the back office is recorded: {:?}",
                rec.streams
            );
        } else {
            assert_eq!(s.calls.calls_seen, 2, "{s}");
            assert_eq!(s.calls.late_transfers, 0, "{s}");
            assert_eq!(rec.sip_call_ids, ["c1"]);
            assert_eq!(back_office, 0, "{:?}", rec.streams);
        }
    }
}

/// A B2BUA gives its inside leg a new Call-ID and new tags, and its dial plan a new number:
/// only the media ties it to the outside call. The same RTP packets on both (relayed a
/// fraction of a millisecond apart) join the inside dialog to the call as `b2bua`; a call
/// from the same number at the same moment with other media stays a call of its own.
#[test]
fn a_b2bua_inside_leg_joins_its_call_by_its_relayed_media_only() {
    for relayed in [true, false] {
        let (mut p, _dir) = pipeline(&example_config());
        let carrier = addr("192.0.2.10:5060");
        let b2bua = addr("10.20.0.5:5060");
        let phone = addr("10.20.1.5:5060");
        let t = |ms: u64| Timestamp::from_millis(1_700_000_000_000 + ms);
        let send = |p: &mut LocalPipeline<_, _>, ms: u64, src, dst, payload: &[u8]| {
            p.frame(t(ms), LinkType::Ethernet, &udp_frame(src, dst, payload));
        };
        let outside =
            "From: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>";
        let inside = "From: <sip:+447700900123@10.20.0.5>;tag=z7\r\nTo: <sip:2005@10.20.1.5>";
        send(
            &mut p,
            0,
            carrier,
            b2bua,
            &sip_with_sdp(
                &format!(
                    "INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\n{outside}\r\nCall-ID: out@carrier\r\nCSeq: 1 INVITE\r\n"
                ),
                Some(("192.0.2.10", 20000)),
            ),
        );
        send(
            &mut p,
            5,
            b2bua,
            phone,
            &sip_with_sdp(
                &format!(
                    "INVITE sip:2005@10.20.1.5 SIP/2.0\r\n{inside}\r\nCall-ID: in@b2bua\r\nCSeq: 1 INVITE\r\n"
                ),
                Some(("10.20.0.5", 40000)),
            ),
        );
        send(
            &mut p,
            100,
            phone,
            b2bua,
            &sip_with_sdp(
                &format!(
                    "SIP/2.0 200 OK\r\n{inside};tag=p1\r\nCall-ID: in@b2bua\r\nCSeq: 1 INVITE\r\n"
                ),
                Some(("10.20.1.5", 30000)),
            ),
        );
        send(
            &mut p,
            105,
            b2bua,
            carrier,
            &sip_with_sdp(
                &format!(
                    "SIP/2.0 200 OK\r\n{outside};tag=b1\r\nCall-ID: out@carrier\r\nCSeq: 1 INVITE\r\n"
                ),
                Some(("10.20.0.5", 40002)),
            ),
        );
        for i in 0..100u16 {
            let ms = 200 + i as u64 * 20;
            let (seq, ts) = (i, i as u32 * 160);
            // the caller's voice on the outside leg, then relayed on the inside leg
            send(
                &mut p,
                ms,
                addr("192.0.2.10:20000"),
                addr("10.20.0.5:40002"),
                &rtp_packet(seq, ts, 1, 0x55),
            );
            let fill = if relayed { 0x55 } else { 0x56 };
            send(
                &mut p,
                ms,
                addr("10.20.0.5:40000"),
                addr("10.20.1.5:30000"),
                &rtp_packet(seq, ts, 1, fill),
            );
            // the agent's voice on the inside leg, then relayed on the outside leg
            send(
                &mut p,
                ms + 1,
                addr("10.20.1.5:30000"),
                addr("10.20.0.5:40000"),
                &rtp_packet(seq, ts, 2, 0xd5),
            );
            let fill = if relayed { 0xd5 } else { 0xd6 };
            send(
                &mut p,
                ms + 1,
                addr("10.20.0.5:40002"),
                addr("192.0.2.10:20000"),
                &rtp_packet(seq, ts, 2, fill),
            );
        }
        send(
            &mut p,
            2_300,
            carrier,
            b2bua,
            &sip_with_sdp(
                &format!(
                    "BYE sip:02087483020@10.20.0.5 SIP/2.0\r\n{outside};tag=b1\r\nCall-ID: out@carrier\r\nCSeq: 2 BYE\r\n"
                ),
                None,
            ),
        );
        send(
            &mut p,
            2_301,
            b2bua,
            phone,
            &sip_with_sdp(
                &format!(
                    "BYE sip:2005@10.20.1.5 SIP/2.0\r\n{inside};tag=p1\r\nCall-ID: in@b2bua\r\nCSeq: 2 BYE\r\n"
                ),
                None,
            ),
        );
        p.finish("capture_end");
        let s = p.summary();
        let sink = p.sink();
        assert_eq!(sink.recorded.len(), 1, "{s}");
        let rec = &sink.recorded[0];
        if relayed {
            assert_eq!(s.calls.calls_seen, 1, "{s}");
            assert_eq!(s.calls.relay_joins, 1, "{s}");
            assert_eq!(rec.sip_call_ids, ["out@carrier", "in@b2bua"]);
            assert_eq!(rec.legs[1].joined_by, "b2bua");
            let copies: u64 = rec.streams.iter().map(|st| st.relay_copies).sum();
            assert!(
                copies >= 150,
                "the inside copies are counted: {:?}",
                rec.streams
            );
        } else {
            assert_eq!(s.calls.calls_seen, 2, "{s}");
            assert_eq!(s.calls.relay_joins, 0, "{s}");
            assert_eq!(rec.sip_call_ids, ["out@carrier"]);
        }
    }
}

/// A HEP feed may trace the SBC's inside copy of a dialog (another Call-ID, to the agent's
/// extension) before the outside INVITE that names the number dialled. The outcome is the
/// one of wire order: the outside INVITE decides, and the inside copy joins it.
#[test]
fn the_inside_copy_of_a_dialog_seen_first_still_joins_the_call_the_outside_one_decides() {
    let (mut p, _dir) = pipeline(&example_config());
    let outside = addr("192.0.2.10:5060");
    let sbc = addr("10.20.0.5:5060");
    let phone = addr("10.20.1.5:5060");
    let t = |ms: u64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let invite = |p: &mut LocalPipeline<_, _>, ms: u64, src, dst, to: &str, id: &str| {
        let msg = sip_with_sdp(
            &format!(
                "INVITE sip:{to}@10.20.0.5 SIP/2.0\r\nFrom: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:{to}@10.20.0.5>\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\n"
            ),
            None,
        );
        p.frame(t(ms), LinkType::Ethernet, &udp_frame(src, dst, &msg));
    };
    invite(&mut p, 0, sbc, phone, "2005", "!!:hidden");
    invite(&mut p, 3, outside, sbc, "02087483020", "outside@carrier");
    p.finish("capture_end");
    let s = p.summary();
    assert_eq!(s.calls.calls_seen, 1, "{s}");
    assert_eq!(s.calls.calls_recorded, 1, "{s}");
    assert_eq!(s.calls.calls_not_recorded, 0, "{s}");
    let sink = p.sink();
    assert_eq!(sink.recorded.len(), 1);
    assert_eq!(
        sink.recorded[0].sip_call_ids,
        ["outside@carrier", "!!:hidden"]
    );
    assert_eq!(sink.recorded[0].legs[1].joined_by, "b2bua");
}

/// A HEP feed traces a forwarded message after its reply: behind topology hiding the
/// agent's 200 OK to the SBC's inside INVITE comes before that INVITE, on a Call-ID not yet
/// known. It is held, and handled once the INVITE appears: the inside leg is answered and
/// the agent's media address on that hop is known, as in wire order.
#[test]
fn a_reply_seen_before_its_forwarded_request_is_handled_when_the_request_appears() {
    let (mut p, _dir) = pipeline(&example_config());
    let carrier = addr("192.0.2.10:5060");
    let sbc_out = addr("192.0.2.20:5060");
    let sbc_in = addr("10.20.0.5:5060");
    let phone = addr("10.20.1.5:5060");
    let t = |ms: u64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let send = |p: &mut LocalPipeline<_, _>, ms: u64, src, dst, payload: &[u8]| {
        p.frame(t(ms), LinkType::Ethernet, &udp_frame(src, dst, payload));
    };
    let outside = "From: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@192.0.2.20>";
    let inside = "From: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@192.0.2.20>";
    send(
        &mut p,
        0,
        carrier,
        sbc_out,
        &sip_with_sdp(
            &format!(
                "INVITE sip:02087483020@192.0.2.20 SIP/2.0\r\n{outside}\r\nCall-ID: out@carrier\r\nCSeq: 1 INVITE\r\n"
            ),
            Some(("192.0.2.10", 20000)),
        ),
    );
    // traced out of order: the agent's answer on the inside, then the INVITE it answers
    send(
        &mut p,
        100,
        phone,
        sbc_in,
        &sip_with_sdp(
            &format!(
                "SIP/2.0 200 OK\r\n{inside};tag=p1\r\nCall-ID: !!:hidden\r\nCSeq: 1 INVITE\r\n"
            ),
            Some(("10.20.1.5", 30000)),
        ),
    );
    send(
        &mut p,
        101,
        sbc_in,
        phone,
        &sip_with_sdp(
            &format!(
                "INVITE sip:2005@10.20.1.5 SIP/2.0\r\n{inside}\r\nCall-ID: !!:hidden\r\nCSeq: 1 INVITE\r\n"
            ),
            Some(("10.20.0.5", 40000)),
        ),
    );
    send(
        &mut p,
        102,
        sbc_out,
        carrier,
        &sip_with_sdp(
            &format!(
                "SIP/2.0 200 OK\r\n{outside};tag=p1\r\nCall-ID: out@carrier\r\nCSeq: 1 INVITE\r\n"
            ),
            Some(("192.0.2.20", 40002)),
        ),
    );
    // the caller's voice, relayed to the agent: on the inside hop only, here
    for i in 0..50u16 {
        send(
            &mut p,
            200 + i as u64 * 20,
            addr("10.20.0.5:40000"),
            addr("10.20.1.5:30000"),
            &rtp_packet(i, i as u32 * 160, 1, 0x55),
        );
    }
    p.finish("capture_end");
    let s = p.summary();
    let sink = p.sink();
    assert_eq!(s.calls.calls_seen, 1, "{s}");
    let rec = &sink.recorded[0];
    assert_eq!(rec.sip_call_ids, ["out@carrier", "!!:hidden"]);
    assert!(rec.legs[1].answered_at.is_some(), "{:?}", rec.legs[1]);
    let heard: u64 = rec
        .streams
        .iter()
        .filter(|st| st.direction == "from_caller")
        .map(|st| st.packets)
        .sum();
    assert_eq!(
        heard, 50,
        "the agent's address on the inside hop, from the held answer: {s}"
    );
}

/// A phone that reuses its From tag for a second call, made while its first (recorded) call
/// goes on, is not the first dialog seen behind an SBC: once the first is answered, only a
/// dialog forwarded before the answer (or moments after it) carries its tag.
#[test]
fn a_reused_tag_does_not_join_an_answered_call() {
    let (mut p, _dir) = pipeline(&example_config());
    let phone = addr("192.0.2.10:5060");
    let pbx = addr("10.20.0.5:5060");
    let t = |ms: u64| Timestamp::from_millis(1_700_000_000_000 + ms);
    let send = |p: &mut LocalPipeline<_, _>, ms: u64, src, dst, msg: &str| {
        p.frame(
            t(ms),
            LinkType::Ethernet,
            &udp_frame(src, dst, &sip_with_sdp(msg, None)),
        );
    };
    let from = "From: <sip:+447700900123@192.0.2.10>;tag=same";
    send(
        &mut p,
        0,
        phone,
        pbx,
        &format!(
            "INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\n{from}\r\nTo: <sip:02087483020@10.20.0.5>\r\nCall-ID: first\r\nCSeq: 1 INVITE\r\n"
        ),
    );
    send(
        &mut p,
        500,
        pbx,
        phone,
        &format!(
            "SIP/2.0 200 OK\r\n{from}\r\nTo: <sip:02087483020@10.20.0.5>;tag=b1\r\nCall-ID: first\r\nCSeq: 1 INVITE\r\n"
        ),
    );
    // a minute later, the same tag on a call to a staff DDI
    send(
        &mut p,
        60_000,
        phone,
        pbx,
        &format!(
            "INVITE sip:02087484711@10.20.0.5 SIP/2.0\r\n{from}\r\nTo: <sip:02087484711@10.20.0.5>\r\nCall-ID: second\r\nCSeq: 1 INVITE\r\n"
        ),
    );
    p.finish("capture_end");
    let s = p.summary();
    assert_eq!(s.calls.calls_seen, 2, "{s}");
    assert!(s.calls.legs_joined.is_empty(), "{s}");
    assert_eq!(p.sink().recorded[0].sip_call_ids, ["first"]);
}

/// From a HEP feed (out of wire order), a transferee's INVITE can arrive before the REFER that
/// asked for it while another call's REFER to the same target is pending. Here agent 4711
/// transfers two callers to 4712: a recorded Switchboard caller (A) and a caller (B) who
/// dialled a staff line, which is never recorded. B's INVITE comes 300 ms before its own
/// call's REFER; it must not join A's recording on the strength of A's pending REFER. Its
/// decision waits for the REFER, which ties it to B's call; then A's INVITE joins A's call.
/// Feeds one SIP message as the SBC's HEP trace of it.
fn hep_sip(
    p: &mut LocalPipeline<Spool, CollectingSink>,
    time: Timestamp,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) {
    use callvault::net::hep::{HepOut, encode};
    let mut out = Vec::new();
    let hep = HepOut {
        time,
        src: src.into(),
        dst: dst.into(),
        ip_protocol: 17,
        proto_type: 1,
        capture_id: 7,
        auth_key: None,
        payload,
    };
    assert!(encode(&hep, &mut out));
    p.hep(&out);
}

#[test]
fn a_transferee_invite_traced_before_its_refer_waits_rather_than_joining_another_call() {
    for via_hep in [true, false] {
        let (mut p, _dir) = pipeline(&example_config());
        let sbc = addr("192.0.2.10:5060");
        let pbx = addr("10.20.0.5:5060");
        let t = |ms: u64| Timestamp::from_millis(1_700_000_000_000 + ms);
        // SIP from the SBC's HEP trace (or, for contrast, the mirror port in wire order)
        let sip = |p: &mut LocalPipeline<_, _>, ms: u64, src, dst, head: &str, media| {
            let payload = sip_with_sdp(head, media);
            if via_hep {
                hep_sip(p, t(ms), src, dst, &payload);
            } else {
                p.frame(t(ms), LinkType::Ethernet, &udp_frame(src, dst, &payload));
            }
        };
        let rtp =
            |p: &mut LocalPipeline<_, _>, from_ms: u64, caller: &str, org: &str, ssrc: u32| {
                for (i, at) in (from_ms..from_ms + 1_000).step_by(20).enumerate() {
                    let i = i as u16;
                    let c = rtp_packet(i, i as u32 * 160, ssrc, 0x55);
                    let o = rtp_packet(i, i as u32 * 160, ssrc + 1, 0xd5);
                    p.frame(
                        t(at),
                        LinkType::Ethernet,
                        &udp_frame(addr(caller), addr(org), &c),
                    );
                    p.frame(
                        t(at),
                        LinkType::Ethernet,
                        &udp_frame(addr(org), addr(caller), &o),
                    );
                }
            };
        let a = "From: <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>";
        let b = "From: <sip:+447700900999@192.0.2.10>;tag=b1\r\nTo: <sip:02087489999@10.20.0.5>";
        // A calls the Switchboard (recorded), B a staff line (not), both answered by 4711
        let inv = |to: &str, rest: &str, id: &str| {
            format!(
                "INVITE sip:{to}@10.20.0.5 SIP/2.0\r\n{rest}\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\n"
            )
        };
        let ok = |rest: &str, tag: &str, id: &str, contact: &str| {
            format!(
                "SIP/2.0 200 OK\r\n{rest};tag={tag}\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{contact}@10.20.1.5>\r\n"
            )
        };
        sip(
            &mut p,
            0,
            sbc,
            pbx,
            &inv("02087483020", a, "x1"),
            Some(("192.0.2.10", 20000)),
        );
        sip(
            &mut p,
            100,
            pbx,
            sbc,
            &ok(a, "o1", "x1", "4711"),
            Some(("10.20.1.5", 30000)),
        );
        sip(
            &mut p,
            150,
            sbc,
            pbx,
            &inv("02087489999", b, "y1"),
            Some(("192.0.2.10", 20010)),
        );
        sip(
            &mut p,
            250,
            pbx,
            sbc,
            &ok(b, "o2", "y1", "4711"),
            Some(("10.20.1.5", 30010)),
        );
        rtp(&mut p, 300, "192.0.2.10:20000", "10.20.1.5:30000", 1);
        rtp(&mut p, 300, "192.0.2.10:20010", "10.20.1.5:30010", 11);
        let refer = |id: &str, from_tag: &str, to: &str| {
            format!(
                "REFER sip:x@192.0.2.10 SIP/2.0\r\nFrom: <sip:4711@10.20.0.5>;tag={from_tag}\r\nTo: <sip:{to}@192.0.2.10>;tag=a1\r\nCall-ID: {id}\r\nCSeq: 2 REFER\r\nRefer-To: <sip:4712@10.20.0.5>\r\nReferred-By: <sip:4711@10.20.0.5>\r\n"
            )
        };
        // A's transfer is asked for first
        sip(
            &mut p,
            1_300,
            pbx,
            sbc,
            &refer("x1", "o1", "+447700900123"),
            None,
        );
        // B's transferee INVITE is traced 300 ms before B's REFER
        let b2 = "From: <sip:+447700900999@192.0.2.10>;tag=b2\r\nTo: <sip:4712@10.20.0.5>";
        let by = "Referred-By: <sip:4711@10.20.0.5>";
        sip(
            &mut p,
            1_400,
            sbc,
            pbx,
            &inv("4712", &format!("{b2}\r\n{by}"), "y2"),
            Some(("192.0.2.10", 20012)),
        );
        sip(
            &mut p,
            1_420,
            pbx,
            sbc,
            &ok(b2, "o3", "y2", "4712"),
            Some(("10.20.1.6", 30012)),
        );
        rtp(&mut p, 1_440, "192.0.2.10:20012", "10.20.1.6:30012", 13);
        sip(
            &mut p,
            1_700,
            pbx,
            sbc,
            &refer("y1", "o2", "+447700900999"),
            None,
        );
        // then A's transferee INVITE
        let a2 = "From: <sip:+447700900123@192.0.2.10>;tag=a2\r\nTo: <sip:4712@10.20.0.5>";
        sip(
            &mut p,
            2_000,
            sbc,
            pbx,
            &inv("4712", &format!("{a2}\r\n{by}"), "x2"),
            Some(("192.0.2.10", 20002)),
        );
        sip(
            &mut p,
            2_020,
            pbx,
            sbc,
            &ok(a2, "o4", "x2", "4712"),
            Some(("10.20.1.7", 30002)),
        );
        rtp(&mut p, 2_040, "192.0.2.10:20002", "10.20.1.7:30002", 3);
        p.finish("capture_end");
        let s = p.summary();
        let rec = &p.sink().recorded;
        assert_eq!(rec.len(), 1, "{s}");
        let packets = |ssrc: u32| -> u64 {
            let ssrc = format!("0x{ssrc:08X}");
            rec[0]
                .streams
                .iter()
                .filter(|st| st.ssrc == ssrc)
                .map(|st| st.packets)
                .sum()
        };
        let b_heard = packets(11) + packets(12) + packets(13) + packets(14);
        if via_hep {
            assert_eq!(s.calls.calls_seen, 2, "{s}");
            assert!(s.calls.deferred_decisions >= 1, "{s}");
            assert_eq!(rec[0].sip_call_ids, ["x1", "x2"], "{s}");
            assert_eq!(
                b_heard, 0,
                "B's voice is in A's recording: {:?}",
                rec[0].streams
            );
            assert!(packets(3) >= 40 && packets(4) >= 40, "{:?}", rec[0].streams);
        } else {
            // the hazard is real: a mirror port keeps wire order, so nothing waits there, and
            // the same messages taken as they come join B's INVITE to A's pending REFER
            assert_eq!(s.calls.deferred_decisions, 0, "{s}");
            assert!(b_heard > 0, "{:?}", rec[0].streams);
        }
    }
}

/// Capture time `ms` after the origin of the hand-made HEP flows below.
fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + ms)
}

const SBC: &str = "192.0.2.10:5060";
const PBX: &str = "10.20.0.5:5060";

/// One dialog of the caller +447700900123 through the SBC to the PBX, its SIP over HEP.
struct HepDialog<'a> {
    id: &'a str,
    /// The caller's From tag (the organisation's To tag is `o` + it).
    tag: &'a str,
    dialled: &'a str,
    /// Headers for both the INVITE and its answer (Referred-By).
    extra: &'a str,
}

impl HepDialog<'_> {
    fn parties(&self, answered: bool) -> String {
        let to_tag = if answered {
            format!(";tag=o{}", self.tag)
        } else {
            String::new()
        };
        format!(
            "From: <sip:+447700900123@192.0.2.10>;tag={}\r\nTo: <sip:{}@10.20.0.5>{to_tag}\r\nCall-ID: {}\r\n",
            self.tag, self.dialled, self.id
        )
    }

    /// Its INVITE at `ms`, the caller's media offered at 192.0.2.10:`port`.
    fn invite(&self, p: &mut LocalPipeline<Spool, CollectingSink>, ms: u64, port: u16) {
        let text = format!(
            "INVITE sip:{}@10.20.0.5 SIP/2.0\r\n{}CSeq: 1 INVITE\r\n{}",
            self.dialled,
            self.parties(false),
            self.extra
        );
        let sip = sip_with_sdp(&text, Some(("192.0.2.10", port)));
        hep_sip(p, at(ms), addr(SBC), addr(PBX), &sip);
    }

    /// Its 200 OK at `ms` from agent 4711's phone, the organisation's media at `media`.
    fn answer(&self, p: &mut LocalPipeline<Spool, CollectingSink>, ms: u64, media: (&str, u16)) {
        let text = format!(
            "SIP/2.0 200 OK\r\n{}CSeq: 1 INVITE\r\n{}Contact: <sip:4711@10.20.1.5>\r\n",
            self.parties(true),
            self.extra
        );
        hep_sip(
            p,
            at(ms),
            addr(PBX),
            addr(SBC),
            &sip_with_sdp(&text, Some(media)),
        );
    }

    /// The organisation's REFER at `ms` in this dialog, agent 4711 transferring to `target`.
    fn refer(&self, p: &mut LocalPipeline<Spool, CollectingSink>, ms: u64, target: &str) {
        let text = format!(
            "REFER sip:x@192.0.2.10 SIP/2.0\r\nFrom: <sip:{}@10.20.0.5>;tag=o{}\r\nTo: <sip:+447700900123@192.0.2.10>;tag={}\r\nCall-ID: {}\r\nCSeq: 2 REFER\r\nRefer-To: <sip:{target}@10.20.0.5>\r\nReferred-By: <sip:4711@10.20.0.5>\r\n",
            self.dialled, self.tag, self.tag, self.id
        );
        hep_sip(p, at(ms), addr(PBX), addr(SBC), &sip_with_sdp(&text, None));
    }

    /// The caller's BYE at `ms`.
    fn bye(&self, p: &mut LocalPipeline<Spool, CollectingSink>, ms: u64) {
        let text = format!(
            "BYE sip:x@10.20.0.5 SIP/2.0\r\n{}CSeq: 2 BYE\r\n",
            self.parties(true)
        );
        hep_sip(p, at(ms), addr(SBC), addr(PBX), &sip_with_sdp(&text, None));
    }
}

/// RTP every 20 ms over `span` from `caller` to `org` (SSRC `ssrc`) and, with `both`, back
/// (SSRC `ssrc + 1`), from the mirror.
fn mirror_rtp(
    p: &mut LocalPipeline<Spool, CollectingSink>,
    span: std::ops::Range<u64>,
    (caller, org): (&str, &str),
    ssrc: u32,
    both: bool,
) {
    let (caller, org) = (addr(caller), addr(org));
    for ms in span.step_by(20) {
        let i = (ms / 20) as u16;
        let c = rtp_packet(i, i as u32 * 160, ssrc, 0x55);
        p.frame(at(ms), LinkType::Ethernet, &udp_frame(caller, org, &c));
        if both {
            let o = rtp_packet(i, i as u32 * 160, ssrc + 1, 0xd5);
            p.frame(at(ms), LinkType::Ethernet, &udp_frame(org, caller, &o));
        }
    }
}

/// Packets recorded of SSRC `ssrc` in `rec`.
fn packets_of(rec: &callvault::record::CallRecord, ssrc: u32) -> u64 {
    let ssrc = format!("0x{ssrc:08X}");
    rec.streams
        .iter()
        .filter(|st| st.ssrc == ssrc)
        .map(|st| st.packets)
        .sum()
}

const REFERRED_BY: &str = "Referred-By: <sip:4711@10.20.0.5>\r\n";

/// A waiting dialog that no REFER claims gets its own INVITE's decision when the wait ends:
/// here a caller with another live call dials a recorded number with Referred-By (a transfer
/// whose REFER the trace lost). It is recorded from then on, the audio of the wait dropped.
#[test]
fn a_waiting_dialog_that_no_refer_claims_is_decided_on_its_own_number() {
    let (mut p, _dir) = pipeline(&example_config());
    let staff = HepDialog {
        id: "z1",
        tag: "a1",
        dialled: "02087489999",
        extra: "",
    };
    staff.invite(&mut p, 0, 20000);
    staff.answer(&mut p, 100, ("10.20.1.5", 30000));
    let switchboard = HepDialog {
        id: "z2",
        tag: "a2",
        dialled: "02087483020",
        extra: REFERRED_BY,
    };
    switchboard.invite(&mut p, 1_000, 20002);
    switchboard.answer(&mut p, 1_020, ("10.20.1.6", 30002));
    // 4 s of media on the new dialog: the first 2 s are the wait
    mirror_rtp(
        &mut p,
        1_040..5_040,
        ("192.0.2.10:20002", "10.20.1.6:30002"),
        3,
        true,
    );
    p.finish("capture_end");
    let s = p.summary();
    assert_eq!(s.calls.deferred_decisions, 1, "{s}");
    assert_eq!(s.calls.calls_recorded, 1, "{s}");
    let rec = &p.sink().recorded;
    assert_eq!(rec.len(), 1, "{s}");
    assert_eq!(rec[0].sip_call_ids, ["z2"]);
    // about 100 packets of the wait are dropped, the rest recorded
    let caller = packets_of(&rec[0], 3);
    assert!((80..=120).contains(&caller), "{:?}", rec[0].streams);
    let waited = s.calls.not_recorded_by_rule.get("awaiting_transfer");
    assert_eq!(waited, None, "{s}");
}

/// A transfer from one listed queue to another, traced out of order: the transferee's INVITE
/// (to Registrars, with Referred-By) comes 300 ms before the Switchboard call's REFER. It waits
/// rather than starting a recording of its own, and the REFER makes it the rest of the
/// Switchboard recording: one conversation, one recording, both voices after the transfer.
#[test]
fn a_transfer_to_another_listed_queue_traced_out_of_order_is_one_recording() {
    let (mut p, _dir) = pipeline(&example_config());
    let first = HepDialog {
        id: "q1",
        tag: "a1",
        dialled: "02087483020",
        extra: "",
    };
    first.invite(&mut p, 0, 20000);
    first.answer(&mut p, 100, ("10.20.1.5", 30000));
    mirror_rtp(
        &mut p,
        120..1_000,
        ("192.0.2.10:20000", "10.20.1.5:30000"),
        1,
        true,
    );
    let registrars = HepDialog {
        id: "q2",
        tag: "a2",
        dialled: "02087532140",
        extra: REFERRED_BY,
    };
    registrars.invite(&mut p, 1_000, 20002);
    registrars.answer(&mut p, 1_020, ("10.20.1.6", 30002));
    let media = ("192.0.2.10:20002", "10.20.1.6:30002");
    mirror_rtp(&mut p, 1_040..1_300, media, 3, true);
    first.refer(&mut p, 1_300, "02087532140");
    mirror_rtp(&mut p, 1_300..3_040, media, 3, true);
    p.finish("capture_end");
    let s = p.summary();
    let rec = &p.sink().recorded;
    assert_eq!(rec.len(), 1, "{s}");
    assert_eq!(rec[0].sip_call_ids, ["q1", "q2"], "{s}");
    assert_eq!(rec[0].legs[1].joined_by, "refer");
    assert_eq!(
        (s.calls.deferred_decisions, s.calls.late_transfers),
        (1, 1),
        "{s}"
    );
    // the back office answered 1 s in and the REFER came 300 ms later: what it said while
    // its dialog waited (13 packets) is not recorded, the rest is
    assert_eq!(packets_of(&rec[0], 4), 87, "{:?}", rec[0].streams);
    assert!(s.routes.rtp_out_of_scope >= 26, "{s}");
}

/// Traced out of order, a transferee's INVITE that offers the caller's own media endpoint
/// joins the call on it before its REFER is seen; the REFER, seen 300 ms later, names the
/// join for what it is: the leg is `refer`, as in wire order.
#[test]
fn a_late_refer_names_a_join_made_on_the_callers_media_endpoint() {
    let (mut p, _dir) = pipeline(&example_config());
    let first = HepDialog {
        id: "m1",
        tag: "a1",
        dialled: "02087483020",
        extra: "",
    };
    first.invite(&mut p, 0, 20000);
    first.answer(&mut p, 100, ("10.20.1.5", 30000));
    mirror_rtp(
        &mut p,
        120..1_000,
        ("192.0.2.10:20000", "10.20.1.5:30000"),
        1,
        false,
    );
    let transferee = HepDialog {
        id: "m2",
        tag: "a2",
        dialled: "4712",
        extra: "",
    };
    transferee.invite(&mut p, 1_000, 20000);
    first.refer(&mut p, 1_300, "4712");
    p.finish("capture_end");
    let s = p.summary();
    let rec = &p.sink().recorded;
    assert_eq!(rec.len(), 1, "{s}");
    assert_eq!(rec[0].sip_call_ids, ["m1", "m2"], "{s}");
    assert_eq!(rec[0].legs[1].joined_by, "refer", "{s}");
    assert_eq!(s.calls.late_transfers, 1, "{s}");
    assert_eq!(s.calls.legs_joined.get("media_endpoint"), None, "{s}");
    assert_eq!(s.calls.legs_joined.get("refer"), Some(&1), "{s}");
}

/// From a HEP feed, a hang-up ends the call only once a REFER traced out of order can no
/// longer come (2 s); meanwhile no silence is written, so the recording ends at the BYE.
#[test]
fn a_call_hung_up_over_hep_ends_at_its_bye_though_its_end_waits_for_a_late_refer() {
    let (mut p, _dir) = pipeline(&example_config());
    let call = HepDialog {
        id: "e1",
        tag: "a1",
        dialled: "02087483020",
        extra: "",
    };
    call.invite(&mut p, 0, 20000);
    call.answer(&mut p, 100, ("10.20.1.5", 30000));
    mirror_rtp(
        &mut p,
        120..2_000,
        ("192.0.2.10:20000", "10.20.1.5:30000"),
        1,
        false,
    );
    call.bye(&mut p, 2_000);
    // capture goes on (other traffic) for 6 s
    for ms in (2_100..8_000u64).step_by(100) {
        let other = rtp_packet(0, 0, 9, 0x55);
        let (a, b) = (addr("198.51.100.1:4000"), addr("198.51.100.2:4000"));
        p.frame(at(ms), LinkType::Ethernet, &udp_frame(a, b, &other));
    }
    p.finish("capture_end");
    let s = p.summary();
    let rec = &p.sink().recorded;
    assert_eq!(rec.len(), 1, "{s}");
    assert_eq!(rec[0].end_reason.as_deref(), Some("caller_hangup"), "{s}");
    let ms = rec[0].audio_ms;
    assert!((1_800..=2_300).contains(&ms), "{ms} ms: {s}");
}
