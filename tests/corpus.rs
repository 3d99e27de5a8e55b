//! The real captures of `tests/corpus/pcaps/` (public projects' test files, with tshark's
//! ground truth in truth.json) through the whole pipeline: nothing panics, every SIP call and
//! every signalled RTP stream tshark sees is seen, and nothing out of scope is written.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use callvault::entropy::Entropy;
use callvault::pipeline::Pipeline;
use callvault::source::CaptureFile;
use common::{CollectingSink, example_config, spool_files, test_keys};

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus"))
}

fn truth() -> serde_json::Value {
    let text = std::fs::read_to_string(corpus_dir().join("truth.json")).expect("truth.json");
    serde_json::from_str(&text).expect("truth.json parses")
}

struct FileRun {
    summary: callvault::pipeline::Summary,
    calls: BTreeSet<String>,
    recorded: Vec<callvault::record::CallRecord>,
    spool: tempfile::TempDir,
    key: callvault::vault::CataloguePrivateKey,
}

fn replay_file(name: &str, cfg: &callvault::config::AgentConfig) -> FileRun {
    let (_keys, public, private) = test_keys();
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = callvault::spool::Spool::open(spool_dir.path()).unwrap();
    let sink = CollectingSink::new(spool.clone());
    let mut p = Pipeline::new(cfg, public, spool, sink, Entropy::system());
    let mut file = CaptureFile::open(&corpus_dir().join("pcaps").join(name)).expect(name);
    loop {
        match file.read(10_000, &mut |t, link, frame| p.frame(t, link, frame)) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                eprintln!("{name}: {e}");
                break;
            }
        }
    }
    p.finish("capture_end");
    FileRun {
        summary: p.summary(),
        calls: p.sink().decided.iter().cloned().collect(),
        recorded: p.sink().recorded.clone(),
        spool: spool_dir,
        key: private,
    }
}

#[test]
fn every_corpus_file_replays_and_matches_tshark() {
    let truth = truth();
    let cfg = example_config();
    let mut report = Vec::new();
    for f in truth["files"].as_array().unwrap() {
        let name = f["file"].as_str().unwrap();
        let run = replay_file(name, &cfg);
        let s = &run.summary;
        // Calls: every Call-ID tshark saw start with an INVITE (or carry SDP) is a call we saw.
        let sctp_or_ws = f["features"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "sip_sctp" || x == "sip_ws");
        for c in f["calls"].as_array().unwrap() {
            if c["first_method"] != "INVITE" || sctp_or_ws {
                continue;
            }
            let id = c["call_id"].as_str().unwrap();
            let id = id.split('\0').next().unwrap();
            assert!(
                run.calls
                    .iter()
                    .any(|seen| seen.trim_end_matches('\0') == id
                        || seen.split('\0').next() == Some(id)),
                "{name}: call {id:?} seen by tshark was not seen (seen: {:?})",
                run.calls
            );
        }
        // RTP: every packet of a stream whose address an SDP announced is routed to its call
        // (and dropped there, since these numbers are not the council's).
        // (tshark ties a stream to the last call that announced its address, however long
        // ago that call ended; a stream that starts more than 10 s after its call's last SIP
        // message belongs to no call in progress and is not expected to be routed.)
        let calls = f["calls"].as_array().unwrap();
        let signalled: u64 = f["rtp_streams"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|st| st["signalled"] == true && !st["call_id"].is_null())
            .filter(|st| {
                calls.iter().any(|c| {
                    c["call_id"] == st["call_id"]
                        && st["start_ts"].as_f64().unwrap() <= c["last_ts"].as_f64().unwrap() + 10.0
                })
            })
            .map(|st| st["packets"].as_u64().unwrap())
            .sum();
        let routed = s.routes.rtp_recorded + s.routes.rtp_out_of_scope + s.routes.rtp_after_end;
        report.push(format!(
            "{name}: calls {}/{} rtp routed {routed} (signalled {signalled}) unmatched {}",
            s.calls.calls_seen,
            f["calls"].as_array().unwrap().len(),
            s.routes.rtp_unmatched
        ));
        assert!(
            routed + 2 >= signalled,
            "{name}: {routed} RTP packets routed, tshark saw {signalled} in signalled streams"
        );
        // Nothing in the corpus dials a council number: nothing may be written.
        assert!(
            run.recorded.is_empty(),
            "{name}: recorded {:?}",
            run.recorded
        );
        assert!(
            spool_files(run.spool.path()).is_empty(),
            "{name}: files left in the spool"
        );
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn a_real_pcmu_call_is_recorded_when_its_number_is_listed() {
    // MagicJack sample: +1 905 555 1212 dialled, PCMU both ways, 1268 packets.
    let cfg = common::config_with("US", &[("905 555 1212", "Test line")]);
    let run = replay_file("Red-Rabbit__examples_pcap_MagicJack+_short_call.pcap", &cfg);
    assert_eq!(run.recorded.len(), 1, "{}", run.summary);
    let rec = &run.recorded[0];
    assert!(rec.decision.record);
    assert_eq!(rec.service.as_deref(), Some("Test line"));
    assert_eq!(rec.dialled.as_deref(), Some("+19055551212"));
    let packets: u64 = rec.streams.iter().map(|s| s.packets).sum();
    assert_eq!(packets, 1268, "{:?}", rec.streams);
    assert!(rec.streams.iter().any(|s| s.direction == "from_caller"));
    assert!(
        rec.streams
            .iter()
            .any(|s| s.direction == "from_organisation")
    );
    assert!(rec.streams.iter().all(|s| s.codec == "PCMU" && s.decoded));
    let private = &run.key;
    let json = run
        .spool
        .path()
        .join("calls")
        .join(format!("{}.json", rec.call_id));
    let call = callvault::export::export_call(&json, private).unwrap();
    assert_eq!(call.rate, 8000);
    let left_energy: f64 = call
        .samples
        .iter()
        .step_by(2)
        .map(|&s| (s as f64).powi(2))
        .sum();
    let right_energy: f64 = call
        .samples
        .iter()
        .skip(1)
        .step_by(2)
        .map(|&s| (s as f64).powi(2))
        .sum();
    assert!(
        left_energy > 0.0 && right_energy > 0.0,
        "both channels carry audio"
    );
    let secs = call.samples.len() as f64 / 2.0 / 8000.0;
    assert!(secs > 10.0, "{secs} s");
}

#[test]
fn the_corpus_attended_transfer_is_followed_and_its_consultation_is_not_recorded() {
    // 20008777 calls 20008909, who holds, consults 20008910 and sends REFER with Replaces; the
    // PBX completes it with re-INVITEs (no INVITE with Replaces on the wire).
    let cfg = common::config_with("DE", &[("20008909", "Test queue")]);
    let run = replay_file("heplify__example_pcap_erspan_sip_ipv4_udp.pcapng", &cfg);
    assert_eq!(run.recorded.len(), 1, "{}", run.summary);
    let rec = &run.recorded[0];
    assert!(rec.sip_call_ids[0].starts_with("ddd141f1d982d8989fb73db754a8fbb7"));
    let transfers: Vec<_> = rec.legs.iter().flat_map(|l| &l.transfers).collect();
    assert!(!transfers.is_empty(), "{:?}", rec.legs);
    assert!(
        transfers
            .iter()
            .all(|t| t.target == "20008910" && t.attended)
    );
    assert!(run.summary.calls.calls_not_recorded >= 2, "{}", run.summary);
    // each REFER is on the wire four times (both sides of the proxy, retransmitted): the
    // notes keep one per transfer
    assert_eq!(run.summary.calls.refers, 4);
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    // the hold before the consultation is on the timeline: the organisation's side held
    let holds: Vec<_> = rec.legs.iter().flat_map(|l| &l.holds).collect();
    assert!(!holds.is_empty(), "{:?}", rec.legs);
    assert!(holds.iter().all(|h| h.by == "organisation"), "{holds:?}");
    assert!(
        holds.iter().all(|h| h
            .ended_at
            .as_deref()
            .is_none_or(|e| e >= h.started_at.as_str())),
        "{holds:?}"
    );
}

/// The repository stands alone: no source, test, bench or build file reads anything beside
/// it (the corpus once lived in a directory next to the checkout, so a clone's tests failed).
#[test]
fn nothing_in_the_repository_reads_files_outside_it() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut offenders = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !["target", ".git", "node_modules", "corpus"].contains(&name.as_str()) {
                    dirs.push(path);
                }
                continue;
            }
            let code = [".rs", ".toml", ".sh", ".mjs", ".json", ".cfg", ".xml"]
                .iter()
                .any(|ext| name.ends_with(ext))
                || name == "run";
            if !code {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // spelt in pieces, so that this file does not name what it looks for
            let outside = [
                concat!("\"/", "../"),
                concat!("/..", "/shared"),
                concat!("..", "/shared/"),
            ];
            if outside.iter().any(|p| text.contains(p)) {
                offenders.push(path.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "these files read outside the repository: {offenders:?}"
    );
}
