//! Calls through a real SBC: Kamailio (Debian's `kamailio`: stateful proxy, double
//! Record-Route, the `rtpengine` module, `siptrace` in HEP v3) anchors the signalling and
//! rtpengine (Debian's `rtpengine-daemon`, userspace forwarding only, no kernel module) relays
//! the media between its outside address (callers) and its inside address (agents' phones).
//! SIPp plays the phones. The mirror (tcpdump on the lab's loopback network) sees every SIP
//! message and every RTP packet twice, once on each side of the SBC, as a mirror port in
//! front of a real SBC does.
//!
//! Each recording is decrypted and checked per channel: the right voice, heard once (level
//! within 1 dB of what the phone sent, no sample louder than anything the phone sent: two
//! relay copies summed would be 6 dB up and clip), every Call-ID of the conversation in one
//! recording, and nothing of an out-of-scope call on disk.
//!
//! Each test has its own loopback network (127.0.N.0/24) and rtpengine port range, so the
//! tests run in parallel. They need root, `sipp`, `tcpdump`, `kamailio` and `rtpengine`
//! (`tests/run.sh` installs them); without them they say SKIPPED.

mod common;
mod lab;

use lab::agent::{LiveAgent, assert_no_drops, enter_own_network_namespace};
use lab::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use callvault::record::CallRecord;

/// Where the dial plan sends the Switchboard: the agent on duty.
const AGENT_EXT: &str = "2005";
/// The staff member whose DDI is `STAFF_DDI`.
const STAFF_EXT: &str = "4711";
/// The back office the agent transfers callers to.
const BACK_OFFICE_EXT: &str = "4712";

/// Lab hosts: the phones, the SBC's two addresses and rtpengine's control socket.
const CALLER_HOST: u8 = 1;
const AGENT_HOST: u8 = 2;
const STAFF_HOST: u8 = 3;
const BACK_OFFICE_HOST: u8 = 4;
const SBC_OUTSIDE: u8 = 10;
const SBC_INSIDE: u8 = 11;
const RTPENGINE_NG: u8 = 12;

fn missing_sbc_tools() -> Option<String> {
    let install = "apt-get install kamailio rtpengine-daemon; tests/run.sh installs them as root";
    common::parts::tool("kamailio", install)
        .and(common::parts::tool("rtpengine", install))
        .err()
}

/// How the SBC of a test is set up, and where callvault gets the SIP from.
#[derive(Clone, Copy, Debug)]
struct Setup {
    /// Kamailio hides the inside topology (`topoh`: Call-ID, Via, Contact masked).
    topoh: bool,
    /// callvault gets the SIP from Kamailio's HEP feed (siptrace), the RTP from the mirror.
    sip_over_hep: bool,
}

const MIRROR: Setup = Setup {
    topoh: false,
    sip_over_hep: false,
};
const TOPOH: Setup = Setup {
    topoh: true,
    sip_over_hep: false,
};

/// The HEP collector siptrace sends to (nothing listens: the mirror captures the feed).
const HEP_COLLECTOR: u8 = 20;

/// The SBC of a lab: rtpengine and Kamailio, started with the lab's addresses (the lab
/// owns the processes).
struct Sbc {
    setup: Setup,
}

impl Sbc {
    /// Starts rtpengine and Kamailio on `lab`'s network and returns once both listen.
    fn start(lab: &mut Lab, setup: Setup) -> Sbc {
        let topoh = setup.topoh;
        let net = lab.net;
        let dir = lab.dir.path().join("sbc");
        std::fs::create_dir_all(&dir).unwrap();
        let ng = lab.addr(RTPENGINE_NG, 2223);
        let ports = 30_000 + net as u16 * 100;
        let rtpengine = Command::new("rtpengine")
            .args([
                "--config-file=none",
                "--foreground",
                "--log-stderr",
                "--table=-1",
                "--log-level=6",
            ])
            .arg(format!("--interface=outside/{}", lab.ip(SBC_OUTSIDE)))
            .arg(format!("--interface=inside/{}", lab.ip(SBC_INSIDE)))
            .arg(format!("--listen-ng={ng}"))
            .arg(format!("--port-min={ports}"))
            .arg(format!("--port-max={}", ports + 99))
            .arg(format!("--pidfile={}", dir.join("rtpengine.pid").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("rtpengine.log")).unwrap())
            .spawn()
            .expect("start rtpengine");
        lab.adopt("rtpengine", dir.clone(), rtpengine);
        lab.wait_bound("rtpengine", lab.sock(RTPENGINE_NG, 2223));

        let dialplan = [
            (SWITCHBOARD, AGENT_EXT, AGENT_HOST),
            (STAFF_DDI, STAFF_EXT, STAFF_HOST),
            (AGENT_EXT, AGENT_EXT, AGENT_HOST),
            (STAFF_EXT, STAFF_EXT, STAFF_HOST),
            (BACK_OFFICE_EXT, BACK_OFFICE_EXT, BACK_OFFICE_HOST),
        ]
        .iter()
        .map(|(number, ext, host)| {
            format!(
                "    if ($rU == \"{number}\") {{\n        $ru = \"sip:{ext}@{}\";\n    }} else ",
                lab.addr(*host, 5060)
            )
        })
        .collect::<String>()
            + "{\n        sl_send_reply(\"404\", \"No such number\");\n        exit;\n    }";
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sbc/kamailio.cfg"),
        )
        .unwrap();
        let cfg = template
            .replace("@OUTSIDE@", &lab.ip(SBC_OUTSIDE).to_string())
            .replace("@INSIDE@", &lab.ip(SBC_INSIDE).to_string())
            .replace("@RTPENGINE_NG@", &ng)
            .replace("@HEP_COLLECTOR@", &lab.addr(HEP_COLLECTOR, 9060))
            .replace("@TRACE_ON@", if setup.sip_over_hep { "1" } else { "0" })
            .replace(
                "@TOPOH_LOAD@",
                if topoh { "loadmodule \"topoh.so\"" } else { "" },
            )
            .replace(
                "@TOPOH_PARAMS@",
                if topoh {
                    "modparam(\"topoh\", \"mask_callid\", 1)"
                } else {
                    ""
                },
            )
            .replace("@DIALPLAN@", &dialplan);
        let cfg_path = dir.join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let kamailio = Command::new("kamailio")
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-m", "32", "-M", "8"])
            .arg("-Y")
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("kamailio.log")).unwrap())
            .spawn()
            .expect("start kamailio");
        lab.adopt("kamailio", dir, kamailio);
        lab.wait_bound("kamailio", lab.sock(SBC_OUTSIDE, 5060));
        lab.wait_bound("kamailio", lab.sock(SBC_INSIDE, 5060));
        Sbc { setup }
    }

    /// What callvault records of the lab's traffic: replay of the mirror's capture, or with
    /// `sip_over_hep`, of the capture without its SIP (port 5060) but with the HEP feed: the RTP from the mirror,
    /// the SIP from siptrace's HEP feed, in the order Kamailio traced it.
    fn record(&self, lab: &mut Lab) -> Outcome {
        if !self.setup.sip_over_hep {
            return lab.replay();
        }
        lab.stop_capture();
        let hep = lab.dir.path().join("rtp-and-hep.pcap");
        let ok = Command::new("tcpdump")
            .arg("-r")
            .arg(lab.pcap())
            .arg("-w")
            .arg(&hep)
            .arg("not port 5060 or dst port 9060")
            .stderr(Stdio::null())
            .status()
            .expect("tcpdump -r");
        assert!(ok.success(), "filtering the capture failed");
        lab.replay_files(vec![hep], "spool")
    }
}

/// A lab with an SBC, or None (after saying SKIPPED and why) when a tool is missing.
fn sbc_lab(test: &str, net: u8, setup: Setup) -> Option<(Lab, Sbc)> {
    if let Some(why) = lab::missing_tools().or_else(missing_sbc_tools) {
        lab::skipped(&format!("sbc test {test}"), &why);
        return None;
    }
    let mut lab = Lab::new(test, net)?;
    lab.capture();
    let sbc = Sbc::start(&mut lab, setup);
    Some((lab, sbc))
}

/// A caller at CALLER_HOST dials `number` at the SBC's outside address; the phone with the
/// extension the dial plan gives answers. Both talk for `talk_ms`, then the caller hangs up.
fn inbound_call(
    lab: &mut Lab,
    number: &str,
    phone_host: u8,
    phone_ext: &str,
    caller: &Signal,
    phone: &Signal,
    talk_ms: u32,
) {
    let sbc = lab.addr(SBC_OUTSIDE, 5060);
    let media = 16_000 + lab.net as u16 * 10;
    lab.sipp(
        "phone",
        "uas.xml",
        phone_host,
        5060,
        media + 2,
        phone,
        &["-set", "user", phone_ext, "-set", "tag", "ph1"],
    );
    lab.sipp(
        "caller",
        "uac.xml",
        CALLER_HOST,
        5060,
        media,
        caller,
        &[
            &sbc,
            "-s",
            number,
            "-set",
            "caller",
            CALLER,
            "-set",
            "tag",
            "cl1",
            "-d",
            &talk_ms.to_string(),
        ],
    );
    lab.wait("caller");
    lab.wait("phone");
}

/// Each voice once: a channel's level is within 1 dB of what the phone sent, and no sample
/// is louder than the loudest the phone sent. Judged on the windows heard as the party
/// between two more of its windows: where one stream hands over to the next (a transfer, a
/// restarted sequence re-anchored) a few samples of both may meet, which is no relay copy.
fn assert_heard_once(channel: &str, samples: &[i16], heard: &[Heard], party: &Signal) {
    let sent_rms = party.rms();
    let sent_peak = party.peak();
    let is_party = |h: Option<&Heard>| matches!(h, Some(Heard::Party(p, _)) if *p == party.name);
    let windows: Vec<&[i16]> = samples
        .chunks_exact(WINDOW)
        .enumerate()
        .filter(|&(i, _)| {
            is_party(heard.get(i))
                && is_party(i.checked_sub(1).and_then(|j| heard.get(j)))
                && is_party(heard.get(i + 1))
        })
        .map(|(_, w)| w)
        .collect();
    assert!(
        windows.len() >= 10,
        "{channel}: {} hardly heard",
        party.name
    );
    let mut levels: Vec<f64> = windows
        .iter()
        .map(|w| {
            let e: f64 = w.iter().map(|&s| (s as f64) * (s as f64)).sum();
            (e / WINDOW as f64).sqrt()
        })
        .collect();
    levels.sort_by(|a, b| a.total_cmp(b));
    let median = levels[levels.len() / 2];
    let db = 20.0 * (median / sent_rms).log10();
    let peak = windows
        .iter()
        .flat_map(|w| w.iter())
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap_or(0);
    let full_scale = samples
        .iter()
        .filter(|s| s.unsigned_abs() >= 32_000)
        .count();
    println!(
        "  {channel}: {} at {db:+.2} dB of what it sent (median of {} windows), peak {peak} \
         (sent {sent_peak}), {full_scale} samples of the channel at full scale",
        party.name,
        levels.len()
    );
    assert!(
        db.abs() <= 1.0,
        "{channel}: {} recorded {db:+.2} dB from what it sent (two relay copies summed are \
         +6 dB)",
        party.name
    );
    assert!(
        peak <= sent_peak,
        "{channel}: a sample of {peak} is louder than anything {} sent ({sent_peak})",
        party.name
    );
    assert_eq!(full_scale, 0, "{channel}: samples at full scale");
}

/// Every stream of `rec` that is a relay copy was counted as one, and each direction has
/// exactly one stream that was heard.
fn assert_one_copy_per_direction(rec: &CallRecord) {
    for direction in ["from_caller", "from_organisation"] {
        let streams: Vec<_> = rec
            .streams
            .iter()
            .filter(|s| s.direction == direction)
            .collect();
        let heard: Vec<_> = streams
            .iter()
            .filter(|s| s.packets > s.relay_copies + 5)
            .collect();
        let copies: u64 = streams.iter().map(|s| s.relay_copies).sum();
        println!(
            "  {direction}: {} streams, {} heard, {copies} relay copies counted",
            streams.len(),
            heard.len()
        );
        assert_eq!(heard.len(), 1, "{direction}: {streams:?}");
        assert!(
            copies + 5 >= heard[0].packets,
            "{direction}: the other hop's copies were not all recognised: {streams:?}"
        );
    }
}

/// The recording names `dialogs` outside Call-IDs and as many masked ones (topoh's `!!:`).
fn assert_hidden_call_ids(rec: &CallRecord, dialogs: usize) {
    let masked = rec
        .sip_call_ids
        .iter()
        .filter(|id| id.starts_with("!!:"))
        .count();
    assert_eq!(
        (rec.sip_call_ids.len() - masked, masked),
        (dialogs, dialogs),
        "{:?}",
        rec.sip_call_ids
    );
}

// ---------------------------------------------------------------------------------------
// Scenarios

/// A caller rings the Switchboard through the SBC; the dial plan rings the agent on duty
/// (extension 2005: the dialled number is only in the outside INVITE); they talk for 3 s.
#[test]
fn a_call_to_the_switchboard_through_the_sbc_is_recorded_once_per_voice() {
    switchboard_call("sbc-switchboard", 101, MIRROR);
}

/// The same with the SBC hiding its topology (`topoh`): on the agent's side the dialog has
/// another Call-ID (and Via, Contact masked), and the number dialled is only on the outside.
/// It is the same conversation: one recording, both Call-IDs, the inside dialog joined as
/// `b2bua` with the outside dialog's decision.
#[test]
fn a_call_through_an_sbc_hiding_its_topology_is_one_recording_with_both_call_ids() {
    switchboard_call("sbc-topoh", 104, TOPOH);
}

/// The same with callvault reading the SIP from the SBC's HEP feed (Kamailio siptrace, not
/// in wire order) and the RTP from the mirror.
#[test]
fn a_call_through_the_sbc_with_sip_over_hep_is_recorded_once_per_voice() {
    switchboard_call(
        "sbc-hep",
        108,
        Setup {
            topoh: true,
            sip_over_hep: true,
        },
    );
}

fn switchboard_call(test: &str, net: u8, setup: Setup) {
    let Some((mut lab, sbc)) = sbc_lab(test, net, setup) else {
        return;
    };
    let topoh = setup.topoh;
    let caller = Signal::noise("caller", 'C', 11);
    let agent = Signal::noise("agent", 'A', 12);
    inbound_call(
        &mut lab,
        SWITCHBOARD,
        AGENT_HOST,
        AGENT_EXT,
        &caller,
        &agent,
        3000,
    );
    let out = sbc.record(&mut lab);
    out.print();

    let rec = out.the_call();
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    assert_eq!(rec.decision.rule, "listed_number");
    assert_eq!(rec.caller, CALLER);
    assert_eq!(out.report.summary.calls.calls_seen, 1, "one conversation");
    if topoh {
        assert_eq!(joined(rec), ["initial", "b2bua"]);
        assert_hidden_call_ids(rec, 1);
    } else {
        assert_eq!(joined(rec), ["initial"]);
        assert_eq!(rec.sip_call_ids.len(), 1, "{:?}", rec.sip_call_ids);
    }
    assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
    assert_one_copy_per_direction(rec);
    assert_no_packet_dropped(rec);
    let (left, right) = out.audio(rec);
    let everyone = [&caller, &agent];
    let left_heard = listen("left", &left, &everyone);
    let right_heard = listen("right", &right, &everyone);
    assert_heard("left", &left_heard, &["caller"], 20);
    assert_heard("right", &right_heard, &["agent"], 20);
    assert_heard_once("left", &left, &left_heard, &caller);
    assert_heard_once("right", &right, &right_heard, &agent);
    out.assert_no_plaintext(&everyone);
}

/// The same caller dials a staff member's DDI through the SBC: nothing is recorded.
#[test]
fn a_staff_ddi_through_the_sbc_leaves_nothing_on_disk() {
    staff_ddi("sbc-ddi", 102, MIRROR);
}

/// The same through an SBC hiding its topology: the inside dialog (to extension 4711, under
/// another Call-ID) is the same unrecorded conversation, never a call of its own.
#[test]
fn a_staff_ddi_through_an_sbc_hiding_its_topology_leaves_nothing_on_disk() {
    staff_ddi("sbc-topoh-ddi", 106, TOPOH);
}

fn staff_ddi(test: &str, net: u8, setup: Setup) {
    let Some((mut lab, sbc)) = sbc_lab(test, net, setup) else {
        return;
    };
    let topoh = setup.topoh;
    let caller = Signal::noise("caller", 'C', 13);
    let staff = Signal::noise("staff", 'S', 14);
    inbound_call(
        &mut lab, STAFF_DDI, STAFF_HOST, STAFF_EXT, &caller, &staff, 2000,
    );
    let out = sbc.record(&mut lab);
    out.print();
    let s = &out.report.summary;
    assert!(out.report.recorded.is_empty(), "{s}");
    assert_eq!(s.calls.calls_seen, 1, "one conversation: {s}");
    assert_eq!(
        s.calls.not_recorded_by_rule.get("unlisted_number"),
        Some(&1),
        "{s}"
    );
    let b2bua = s.calls.legs_joined.get("b2bua").copied().unwrap_or(0);
    assert_eq!(b2bua, u64::from(topoh), "{s}");
    assert!(s.routes.rtp_out_of_scope > 300, "{s}");
    assert_eq!(s.routes.rtp_recorded, 0, "{s}");
    out.assert_spool_empty();
}

/// Blind transfer through the SBC: the caller rings the Switchboard, the agent on duty
/// answers, talks for 3 s and REFERs the caller (relayed by the SBC) to the back office; the
/// caller's phone INVITEs the back office through the SBC, talks for 3 s and hangs up.
/// Both dialogs, each seen on both sides of the SBC, are one recording: the caller on the
/// left, the agent then the back office on the right, each voice once.
#[test]
fn a_blind_transfer_through_the_sbc_is_one_recording_of_the_whole_conversation() {
    blind_transfer("sbc-blind-transfer", 103, MIRROR);
}

/// The same with the SBC hiding its topology (`topoh`): each dialog has another Call-ID on
/// the agents' side; all four are named by the one recording.
#[test]
fn a_blind_transfer_through_an_sbc_hiding_its_topology_is_one_recording() {
    blind_transfer("sbc-topoh-transfer", 105, TOPOH);
}

/// The same with the SIP from the SBC's HEP feed: Kamailio traces a forwarded message after
/// its reply and often after the next request (the REFER relayed to the caller after the
/// caller's 202, NOTIFY and new INVITE), so the transfer is seen out of order.
#[test]
fn a_blind_transfer_through_an_sbc_hiding_its_topology_seen_over_hep_is_one_recording() {
    blind_transfer(
        "sbc-hep-transfer",
        109,
        Setup {
            topoh: true,
            sip_over_hep: true,
        },
    );
}

fn blind_transfer(test: &str, net: u8, setup: Setup) {
    let Some((mut lab, sbc)) = sbc_lab(test, net, setup) else {
        return;
    };
    let topoh = setup.topoh;
    let caller = Signal::noise("caller", 'C', 15);
    let agent = Signal::noise("agent", 'A', 16);
    let back_office = Signal::noise("back_office", 'B', 17);
    let sbc_addr = lab.addr(SBC_OUTSIDE, 5060);
    let media = 16_000 + lab.net as u16 * 10;
    let refer_to = format!("sip:{BACK_OFFICE_EXT}@{}", lab.ip(SBC_OUTSIDE));
    let referred_by = format!("sip:{AGENT_EXT}@{}", lab.ip(AGENT_HOST));
    lab.sipp(
        "back_office",
        "uas.xml",
        BACK_OFFICE_HOST,
        5060,
        media + 4,
        &back_office,
        &["-set", "user", BACK_OFFICE_EXT, "-set", "tag", "bo1"],
    );
    lab.sipp(
        "agent",
        "agent_refer.xml",
        AGENT_HOST,
        5060,
        media + 2,
        &agent,
        &[
            "-set", "user", AGENT_EXT, "-set", "tag", "ag1", "-set", "target", &refer_to, "-d",
            "3000",
        ],
    );
    lab.sipp(
        "caller",
        "caller_referred.xml",
        CALLER_HOST,
        5060,
        media,
        &caller,
        &[
            &sbc_addr,
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
        CALLER_HOST,
        media,
        &caller,
        &sbc_addr,
        BACK_OFFICE_EXT,
        &referred_by,
        ("Subject", "blind transfer"),
    );
    lab.wait("transferee");
    lab.wait("back_office");
    let out = sbc.record(&mut lab);
    out.print();

    let s = &out.report.summary;
    let rec = out.the_call();
    assert_eq!(s.calls.calls_seen, 1, "one conversation: {s}");
    assert_eq!(rec.service.as_deref(), Some("Switchboard"));
    if topoh {
        assert_eq!(joined(rec), ["initial", "b2bua", "refer", "b2bua"]);
        assert_hidden_call_ids(rec, 2);
    } else {
        assert_eq!(joined(rec), ["initial", "refer"]);
        assert_eq!(rec.sip_call_ids.len(), 2, "{:?}", rec.sip_call_ids);
    }
    assert_eq!(
        rec.legs[0].transfers.len(),
        1,
        "one transfer, seen on both hops"
    );
    assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
    assert_no_packet_dropped(rec);
    let (left, right) = out.audio(rec);
    let everyone = [&caller, &agent, &back_office];
    let left_heard = listen("left", &left, &everyone);
    let right_heard = listen("right", &right, &everyone);
    assert_heard("left", &left_heard, &["caller"], 40);
    assert_heard("right", &right_heard, &["agent", "back_office"], 20);
    assert_heard_once("left", &left, &left_heard, &caller);
    assert_heard_once("right", &right, &right_heard, &agent);
    assert_heard_once("right", &right, &right_heard, &back_office);
    out.assert_no_plaintext(&everyone);
    if !setup.sip_over_hep {
        return;
    }
    // the same HEP feed, each message delayed by up to 1 s (its own trace time kept), as
    // a collector on a busy network delivers it: the transfer comes out the same
    let expected = joined(rec);
    let mut call_ids = rec.sip_call_ids.clone();
    call_ids.sort();
    let traced = lab.dir.path().join("rtp-and-hep.pcap");
    for seed in 1..=4u64 {
        let shuffled = lab.dir.path().join(format!("rtp-and-hep-{seed}.pcap"));
        let swapped = delay_hep(&traced, &shuffled, seed, 1_000_000);
        let again = lab.replay_files(vec![shuffled], &format!("spool-{seed}"));
        let s = &again.report.summary;
        println!("  HEP delayed (seed {seed}): {swapped} pairs of SIP messages out of trace order");
        assert!(swapped > 0, "seed {seed}: nothing was reordered");
        let rec = again.the_call();
        assert_eq!(s.calls.calls_seen, 1, "seed {seed}: one conversation: {s}");
        assert_eq!(joined(rec), expected, "seed {seed}: {s}");
        let mut ids = rec.sip_call_ids.clone();
        ids.sort();
        assert_eq!(ids, call_ids, "seed {seed}");
        let (left, right) = again.audio(rec);
        // audio that arrives before the SIP that announces it is not recorded: fewer windows
        assert_heard("left", &listen("left", &left, &everyone), &["caller"], 30);
        let right_heard = listen("right", &right, &everyone);
        assert_heard("right", &right_heard, &["agent", "back_office"], 10);
        again.assert_no_plaintext(&everyone);
    }
}

/// Writes `from` (tcpdump's pcap) to `to` with every HEP packet (UDP to port 9060) delayed by
/// a pseudo-random time below `max_delay_us` and the records put in arrival order; returns
/// how many pairs of HEP packets changed order.
fn delay_hep(from: &Path, to: &Path, seed: u64, max_delay_us: u64) -> usize {
    let bytes = std::fs::read(from).unwrap();
    assert_eq!(
        bytes[..4],
        [0xd4, 0xc3, 0xb2, 0xa1],
        "pcap, microseconds, little-endian"
    );
    let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(le32(20), 1, "Ethernet link type");
    let is_hep = |frame: &[u8]| {
        frame.len() > 42
            && frame[12..14] == [0x08, 0x00]
            && frame[23] == 17
            && u16::from_be_bytes([frame[36], frame[37]]) == 9060
    };
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // (arrival µs, trace order of HEP packets, record bytes without its header)
    let mut records: Vec<(u64, Option<usize>, &[u8])> = Vec::new();
    let mut at = 24;
    let mut heps = 0;
    while at + 16 <= bytes.len() {
        let time = le32(at) as u64 * 1_000_000 + le32(at + 4) as u64;
        let len = le32(at + 8) as usize;
        let frame = &bytes[at + 16..at + 16 + len];
        let hep = is_hep(frame).then(|| {
            heps += 1;
            heps
        });
        let delay = if hep.is_some() {
            next() % max_delay_us
        } else {
            0
        };
        records.push((time + delay, hep, frame));
        at += 16 + len;
    }
    records.sort_by_key(|r| r.0);
    let order: Vec<usize> = records.iter().filter_map(|r| r.1).collect();
    let swapped = (0..order.len())
        .map(|i| order[i + 1..].iter().filter(|&&j| j < order[i]).count())
        .sum();
    let mut out = bytes[..24].to_vec();
    for (time, _, frame) in records {
        out.extend_from_slice(&((time / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((time % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(frame);
    }
    std::fs::write(to, out).unwrap();
    swapped
}

/// The agent stalls mid-call: `callvault agent` captures the SBC's traffic live (AF_PACKET
/// on the loopback interface of a network namespace of the test's own), is stopped with
/// SIGSTOP for 2 s in the middle of a Switchboard call and continued. The kernel's ring holds
/// what was captured meanwhile and capture time waits for it, so the recording equals
/// replay's recording of tcpdump's capture of the same traffic, sample for sample, with no
/// packet late and none dropped by the kernel.
#[test]
fn an_agent_stalled_for_two_seconds_mid_call_loses_nothing() {
    if let Some(why) = lab::missing_tools().or_else(missing_sbc_tools) {
        lab::skipped("sbc stall test", &why);
        return;
    }
    if !enter_own_network_namespace("sbc stall test") {
        return;
    }
    let Some((mut lab, _sbc)) = sbc_lab("sbc-stall", 107, MIRROR) else {
        return;
    };
    let mut agent = LiveAgent::start(&lab, None);
    let caller = Signal::noise("caller", 'C', 18);
    let agent_voice = Signal::noise("agent", 'A', 19);
    let pid = agent.pid();
    let stall = std::thread::spawn(move || {
        // two seconds into the conversation, for two seconds
        std::thread::sleep(Duration::from_millis(2_500));
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    });
    inbound_call(
        &mut lab,
        SWITCHBOARD,
        AGENT_HOST,
        AGENT_EXT,
        &caller,
        &agent_voice,
        6_000,
    );
    stall.join().unwrap();
    let metrics = agent.metrics_once("callvault_segments_written_total 1");
    assert_no_drops(
        &metrics,
        &["kernel", "capture_queue", "media_queue", "rtp_late"],
    );
    let live = agent.stop();
    println!(
        "  agent: {}",
        agent
            .log()
            .lines()
            .find(|l| l.contains("capture ring"))
            .unwrap_or("(no ring line)")
    );

    let out = lab.replay();
    out.print();
    let replayed = out.the_call();
    assert_eq!(live.len(), 1, "{live:#?}");
    let (left, right) = agent.assert_recorded_as_replay(&live[0], &out, replayed);
    let everyone = [&caller, &agent_voice];
    let left_heard = listen("left", &left, &everyone);
    let right_heard = listen("right", &right, &everyone);
    assert_heard("left", &left_heard, &["caller"], 50);
    assert_heard("right", &right_heard, &["agent"], 50);
    assert_heard_once("left", &left, &left_heard, &caller);
    assert_heard_once("right", &right, &right_heard, &agent_voice);
}
