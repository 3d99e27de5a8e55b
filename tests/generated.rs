//! Recordings of generated captures checked against what was sent: the generator knows every
//! sample each side put on the wire, so the decrypted recording can be compared with it.

mod common;

use std::path::Path;
use std::time::Duration;

use callvault::config::AgentConfig;
use callvault::decode::g711;
use callvault::record::CallRecord;
use callvault::replay::{self, ReplayOptions, ReplayReport};
use callvault::time::Timestamp;
use callvault::vault::{CataloguePrivateKey, generate_keypair_files};
use callvault_synth::{
    CallEnd, CallSpec, CallTruth, CaptureFormat, Codec, Generator, LinkKind, Scenario, Signal,
    SipTransport, write_capture,
};
use common::{example_config, spool_files};

struct Run {
    report: ReplayReport,
    dir: tempfile::TempDir,
    key: CataloguePrivateKey,
    truth: Vec<CallTruth>,
}

impl Run {
    fn spool(&self) -> std::path::PathBuf {
        self.dir.path().join("spool")
    }

    fn record_of(&self, truth: &CallTruth) -> Option<&CallRecord> {
        self.report
            .recorded
            .iter()
            .find(|r| r.sip_call_ids.contains(&truth.sip_call_id))
    }

    /// The decrypted recording of a call: (rate, left, right).
    fn audio(&self, rec: &CallRecord) -> (u32, Vec<i16>, Vec<i16>) {
        let json = self
            .spool()
            .join("calls")
            .join(format!("{}.json", rec.call_id));
        let call = callvault::export::export_call(&json, &self.key).expect("export");
        let left = call.samples.iter().step_by(2).copied().collect();
        let right = call.samples.iter().skip(1).step_by(2).copied().collect();
        (call.rate, left, right)
    }
}

fn run(scenario: &Scenario, cfg: AgentConfig) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (public, private) = generate_keypair_files(&dir.path().join("keys")).unwrap();
    let capture = dir.path().join("capture.pcap");
    let file = std::fs::File::create(&capture).unwrap();
    write_capture(scenario, std::io::BufWriter::new(file)).unwrap();
    let report = replay::run(ReplayOptions {
        config: cfg,
        spool: dir.path().join("spool"),
        public_key: public,
        files: vec![capture],
        progress: false,
    })
    .expect("replay");
    let truth = Generator::new(scenario).truth();
    Run {
        report,
        key: CataloguePrivateKey::load(&private).unwrap(),
        dir,
        truth,
    }
}

fn call(id: &str) -> CallSpec {
    CallSpec {
        sip_call_id: format!("{id}@test.callvault"),
        ..CallSpec::default()
    }
}

/// Timeline origin of a recording: its first segment's start.
fn origin_of(rec: &CallRecord) -> Timestamp {
    let t = humantime::parse_rfc3339(&rec.segments[0].started_at).unwrap();
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap();
    Timestamp::from_nanos(d.as_nanos() as u64)
}

/// Places the truth packets of one side on a timeline at `rate` relative to `origin`.
fn expected_track(
    packets: &[(Duration, Vec<i16>)],
    origin: Timestamp,
    rate: u32,
    len: usize,
) -> Vec<i16> {
    let mut out = vec![0i16; len];
    for (t, samples) in packets {
        let pos = (t.as_nanos() as i128 - origin.as_nanos() as i128) * rate as i128 / 1_000_000_000;
        for (i, &s) in samples.iter().enumerate() {
            let p = pos + i as i128;
            if p >= 0 && (p as usize) < len {
                out[p as usize] = s;
            }
        }
    }
    out
}

/// The lag (in samples, within ±max) at which `got` best matches `want`, and the correlation.
fn best_lag(want: &[i16], got: &[i16], max: i64) -> (i64, f64) {
    let mut best = (0, -1.0);
    for lag in -max..=max {
        let mut num = 0f64;
        let (mut ew, mut eg) = (0f64, 0f64);
        for (i, &w) in want.iter().enumerate() {
            let j = i as i64 + lag;
            if j < 0 || j as usize >= got.len() {
                continue;
            }
            let g = got[j as usize] as f64;
            num += w as f64 * g;
            ew += (w as f64).powi(2);
            eg += g * g;
        }
        let c = if ew > 0.0 && eg > 0.0 {
            num / (ew.sqrt() * eg.sqrt())
        } else {
            0.0
        };
        if c > best.1 {
            best = (lag, c);
        }
    }
    best
}

/// Fraction of truth packets whose samples appear exactly at their place (shifted by `lag`).
fn exact_packets(
    packets: &[(Duration, Vec<i16>)],
    origin: Timestamp,
    rate: u32,
    got: &[i16],
    lag: i64,
) -> f64 {
    let mut ok = 0;
    for (t, samples) in packets {
        let pos = (t.as_nanos() as i128 - origin.as_nanos() as i128) * rate as i128 / 1_000_000_000
            + lag as i128;
        if pos < 0 {
            continue;
        }
        let pos = pos as usize;
        if pos + samples.len() <= got.len() && got[pos..pos + samples.len()] == samples[..] {
            ok += 1;
        }
    }
    ok as f64 / packets.len().max(1) as f64
}

/// Checks both channels of a recorded call against the truth: alignment within 20 ms, and
/// `min_exact` of the packets sample for sample.
fn check_call(run: &Run, truth: &CallTruth, min_exact: f64, min_corr: f64) -> CallRecord {
    let rec = run
        .record_of(truth)
        .unwrap_or_else(|| {
            panic!(
                "{} not recorded:\n{}",
                truth.sip_call_id, run.report.summary
            )
        })
        .clone();
    let (rate, left, right) = run.audio(&rec);
    let origin = origin_of(&rec);
    for (name, packets, got) in [
        ("caller/left", &truth.caller_audio, &left),
        ("organisation/right", &truth.agent_audio, &right),
    ] {
        let want = expected_track(packets, origin, rate, got.len());
        let (lag, corr) = best_lag(&want, got, rate as i64 / 25);
        assert!(
            lag.abs() <= rate as i64 / 50,
            "{}: {name} is {lag} samples off (more than 20 ms)",
            truth.sip_call_id
        );
        assert!(
            corr >= min_corr,
            "{}: {name} correlation {corr}",
            truth.sip_call_id
        );
        let exact = exact_packets(packets, origin, rate, got, lag);
        assert!(
            exact >= min_exact,
            "{}: {name}: only {:.1}% of packets sample-exact (lag {lag}, corr {corr:.3})",
            truth.sip_call_id,
            exact * 100.0
        );
    }
    rec
}

/// No file in the spool holds the audio, numbers or SIP identity of an out-of-scope call.
fn assert_no_trace(run: &Run, truth: &CallTruth, spec: &CallSpec) {
    let files = spool_files(&run.spool());
    let mut needles: Vec<Vec<u8>> = vec![truth.sip_call_id.as_bytes().to_vec()];
    // (short extension numbers could occur by chance inside hashes and ids)
    if spec.caller.len() >= 8 {
        needles.push(spec.caller.as_bytes().to_vec());
    }
    // plaintext audio as it was on the wire (G.711 bytes) and as PCM a recorder would write
    for (_, samples) in truth.caller_audio.iter().chain(&truth.agent_audio).take(50) {
        if samples.len() < 32 {
            continue;
        }
        let wire: Vec<u8> = samples[8..24]
            .iter()
            .map(|&s| match truth.codec {
                Codec::Pcmu => g711::linear_to_ulaw(s),
                _ => g711::linear_to_alaw(s),
            })
            .collect();
        needles.push(wire);
        needles.push(
            samples[8..24]
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect(),
        );
    }
    for f in &files {
        let data = std::fs::read(f).unwrap();
        for n in &needles {
            assert!(
                !data.windows(n.len()).any(|w| w == n.as_slice()),
                "{} holds data of out-of-scope call {}",
                f.display(),
                truth.sip_call_id
            );
        }
    }
    // and no decryptable segment carries its audio either
    for rec in &run.report.recorded {
        assert!(!rec.sip_call_ids.contains(&truth.sip_call_id));
    }
}

fn segment_count(dir: &Path) -> usize {
    spool_files(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cvseg"))
        .count()
}

#[test]
fn lossless_calls_are_recorded_sample_for_sample_in_both_laws() {
    let calls = vec![
        CallSpec {
            codec: Codec::Pcma,
            ..call("alaw")
        },
        CallSpec {
            codec: Codec::Pcmu,
            dialled: "+442073715678".into(),
            start_ms: 700,
            ..call("ulaw")
        },
    ];
    let scenario = Scenario::new(11, calls);
    let run = run(&scenario, example_config());
    assert_eq!(run.report.recorded.len(), 2, "{}", run.report.summary);
    for t in &run.truth {
        let rec = check_call(&run, t, 1.0, 0.999);
        assert!(rec.decision.record);
        assert_eq!(rec.end_reason.as_deref(), Some("caller_hangup"));
        assert!(rec.streams.iter().all(|s| s.lost == 0 && s.decoded));
    }
    let parking = run
        .report
        .recorded
        .iter()
        .find(|r| r.service.as_deref() == Some("Parking"))
        .unwrap();
    assert_eq!(parking.decision.reason, "dialled +442073715678 = Parking");
    assert_eq!(parking.dialled.as_deref(), Some("+442073715678"));
}

#[test]
fn loss_reordering_jitter_and_duplicates_keep_audio_in_place() {
    let spec = CallSpec {
        loss: 0.03,
        reorder: 0.05,
        jitter_ms: 15,
        duplicate: 0.03,
        talk_ms: 15_000,
        ..call("impaired")
    };
    let scenario = Scenario::new(5, vec![spec]);
    let run = run(&scenario, example_config());
    let t = &run.truth[0];
    let rec = check_call(&run, t, 0.97, 0.9);
    let lost: u64 = rec.streams.iter().map(|s| s.lost).sum();
    assert!(lost > 0, "loss is reported: {:?}", rec.streams);
    let dups: u64 = rec.streams.iter().map(|s| s.duplicates).sum();
    assert!(dups > 0, "duplicates are reported: {:?}", rec.streams);
}

#[test]
fn transports_links_and_formats_all_record_the_same_audio() {
    let variants: Vec<(&str, CallSpec, LinkKind, CaptureFormat)> = vec![
        (
            "vlan",
            CallSpec {
                vlan: vec![120],
                ..call("vlan")
            },
            LinkKind::Ethernet,
            CaptureFormat::Pcap {
                nanos: false,
                big_endian: false,
            },
        ),
        (
            "qinq",
            CallSpec {
                vlan: vec![300, 120],
                ..call("qinq")
            },
            LinkKind::Ethernet,
            CaptureFormat::PcapNg,
        ),
        (
            "ipv6",
            CallSpec {
                ipv6: true,
                ..call("ipv6")
            },
            LinkKind::Ethernet,
            CaptureFormat::Pcap {
                nanos: true,
                big_endian: true,
            },
        ),
        (
            "frag",
            CallSpec {
                fragment_invite: true,
                ..call("frag")
            },
            LinkKind::LinuxSll,
            CaptureFormat::Pcap {
                nanos: false,
                big_endian: true,
            },
        ),
        (
            "frag6",
            CallSpec {
                fragment_invite: true,
                ipv6: true,
                ..call("frag6")
            },
            LinkKind::LinuxSll2,
            CaptureFormat::PcapNg,
        ),
        (
            "tcp",
            CallSpec {
                transport: SipTransport::Tcp,
                ..call("tcp")
            },
            LinkKind::Raw,
            CaptureFormat::Pcap {
                nanos: true,
                big_endian: false,
            },
        ),
    ];
    for (name, spec, link, format) in variants {
        let spec = CallSpec {
            talk_ms: 4_000,
            ..spec
        };
        let scenario = Scenario {
            link,
            format,
            ..Scenario::new(3, vec![spec])
        };
        let run = run(&scenario, example_config());
        assert_eq!(
            run.report.recorded.len(),
            1,
            "{name}: {}",
            run.report.summary
        );
        check_call(&run, &run.truth[0], 1.0, 0.999);
    }
}

#[test]
fn every_out_of_scope_rule_leaves_nothing_on_disk() {
    let mut cfg = example_config();
    cfg.scope.never_record = vec!["020 8753 4466".into()];
    let specs = vec![
        // in scope, as a control
        CallSpec {
            start_ms: 0,
            ..call("switchboard")
        },
        // direct dial to a staff member's DDI
        CallSpec {
            dialled: "02087484711".into(),
            start_ms: 100,
            caller_signal: Signal::Noise {
                seed: 71,
                amplitude: 6000,
            },
            agent_signal: Signal::Noise {
                seed: 171,
                amplitude: 6000,
            },
            caller: "+447700900200".into(),
            ..call("ddi")
        },
        // direct dial to an extension number
        CallSpec {
            dialled: "4711".into(),
            start_ms: 200,
            caller_signal: Signal::Noise {
                seed: 72,
                amplitude: 6000,
            },
            agent_signal: Signal::Noise {
                seed: 172,
                amplitude: 6000,
            },
            caller: "+447700900201".into(),
            ..call("extension")
        },
        // internal staff-to-staff call
        CallSpec {
            caller: "4712".into(),
            dialled: "4713".into(),
            start_ms: 300,
            caller_signal: Signal::Noise {
                seed: 73,
                amplitude: 6000,
            },
            agent_signal: Signal::Noise {
                seed: 173,
                amplitude: 6000,
            },
            ..call("internal")
        },
        // staff member calling the switchboard
        CallSpec {
            caller: "4714".into(),
            dialled: "02087483020".into(),
            start_ms: 400,
            caller_signal: Signal::Noise {
                seed: 74,
                amplitude: 6000,
            },
            agent_signal: Signal::Noise {
                seed: 174,
                amplitude: 6000,
            },
            ..call("internal-to-listed")
        },
        // listed but in never_record
        CallSpec {
            dialled: "02087534466".into(),
            start_ms: 500,
            caller_signal: Signal::Noise {
                seed: 75,
                amplitude: 6000,
            },
            agent_signal: Signal::Noise {
                seed: 175,
                amplitude: 6000,
            },
            caller: "+447700900202".into(),
            ..call("never")
        },
        // unlisted public number
        CallSpec {
            dialled: "02079460000".into(),
            start_ms: 600,
            caller_signal: Signal::Noise {
                seed: 76,
                amplitude: 6000,
            },
            agent_signal: Signal::Noise {
                seed: 176,
                amplitude: 6000,
            },
            caller: "+447700900203".into(),
            ..call("unlisted")
        },
    ];
    let scenario = Scenario::new(21, specs.clone());
    let run = run(&scenario, cfg);
    assert_eq!(run.report.recorded.len(), 1, "{}", run.report.summary);
    check_call(&run, &run.truth[0], 1.0, 0.999);
    let calls = &run.report.summary.calls;
    assert_eq!(calls.calls_not_recorded, 6);
    for (rule, n) in [
        ("direct_dial_extension", 1),
        ("unlisted_number", 2),
        ("internal_call", 2),
        ("never_record", 1),
    ] {
        assert_eq!(
            calls.not_recorded_by_rule.get(rule).copied().unwrap_or(0),
            n,
            "{rule}: {:?}",
            calls.not_recorded_by_rule
        );
    }
    assert!(run.report.summary.routes.rtp_out_of_scope > 0);
    for (t, spec) in run.truth.iter().zip(&specs).skip(1) {
        assert_no_trace(&run, t, spec);
    }
    // exactly the control call's segments and document are on disk
    let files = spool_files(&run.spool());
    assert_eq!(
        files.len(),
        1 + run.report.recorded[0].segments.len(),
        "{files:?}"
    );
}

#[test]
fn a_call_already_in_progress_when_capture_starts_is_not_recorded() {
    let spec = CallSpec {
        talk_ms: 6_000,
        ..call("midcall")
    };
    let scenario = Scenario::new(8, vec![spec.clone()]);
    // write the capture, then cut away everything before the answer + 1 s
    let dir = tempfile::tempdir().unwrap();
    let (public, _private) = generate_keypair_files(&dir.path().join("keys")).unwrap();
    let truth = Generator::new(&scenario).truth();
    let cut = truth[0].answered_at.unwrap() + Duration::from_secs(1);
    let mut generator = Generator::new(&scenario);
    let mut buf = Vec::new();
    let path = dir.path().join("mid.pcap");
    {
        let mut w = callvault_synth::PcapWriter::new(
            std::fs::File::create(&path).unwrap(),
            LinkKind::Ethernet,
            false,
            false,
        )
        .unwrap();
        while let Some(t) = generator.next_frame(&mut buf) {
            if t >= cut {
                w.write_packet(t, &buf).unwrap();
            }
        }
        w.flush().unwrap();
    }
    let report = replay::run(ReplayOptions {
        config: example_config(),
        spool: dir.path().join("spool"),
        public_key: public,
        files: vec![path],
        progress: false,
    })
    .unwrap();
    assert!(report.recorded.is_empty());
    assert!(report.summary.routes.rtp_recorded == 0);
    assert_eq!(segment_count(&dir.path().join("spool")), 0);
    assert!(spool_files(&dir.path().join("spool")).is_empty());
}

#[test]
fn hold_is_silence_of_the_right_length_and_audio_resumes_in_step() {
    let spec = CallSpec {
        talk_ms: 12_000,
        hold: Some((3_000, 4_000)),
        ..call("hold")
    };
    let run = run(&Scenario::new(4, vec![spec]), example_config());
    let t = &run.truth[0];
    let rec = check_call(&run, t, 1.0, 0.999);
    let (rate, left, right) = run.audio(&rec);
    let (h0, h1) = t.hold.expect("truth has the hold");
    let origin = origin_of(&rec);
    let a =
        ((h0.as_nanos() as u64 - origin.as_nanos()) * rate as u64 / 1_000_000_000) as usize + 400;
    let b =
        ((h1.as_nanos() as u64 - origin.as_nanos()) * rate as u64 / 1_000_000_000) as usize - 400;
    assert!(b > a + rate as usize * 3, "hold spans {} samples", b - a);
    assert!(left[a..b].iter().all(|&s| s == 0) && right[a..b].iter().all(|&s| s == 0));
}

#[test]
fn a_new_ssrc_mid_call_keeps_the_audio_continuous() {
    let spec = CallSpec {
        talk_ms: 8_000,
        ssrc_change_at: Some(4_000),
        ..call("ssrc")
    };
    let run = run(&Scenario::new(6, vec![spec]), example_config());
    let rec = check_call(&run, &run.truth[0], 1.0, 0.999);
    assert_eq!(
        rec.streams
            .iter()
            .filter(|s| s.direction == "from_organisation")
            .count(),
        2
    );
}

#[test]
fn dtmf_events_are_counted_not_rendered() {
    let spec = CallSpec {
        talk_ms: 6_000,
        telephone_event: true,
        ..call("dtmf")
    };
    let run = run(&Scenario::new(7, vec![spec]), example_config());
    let t = &run.truth[0];
    let rec = check_call(&run, t, 1.0, 0.99);
    let events: u64 = rec.streams.iter().map(|s| s.events).sum();
    assert!(events > 0, "{:?}", rec.streams);
    let dtmf = t.caller_dtmf.as_ref().unwrap();
    let (rate, left, _) = run.audio(&rec);
    let origin = origin_of(&rec);
    let at =
        ((dtmf.at.as_nanos() as u64 - origin.as_nanos()) * rate as u64 / 1_000_000_000) as usize;
    let n = (dtmf.duration_ms as usize * rate as usize / 1000).saturating_sub(40);
    assert!(
        left[at + 20..at + n].iter().all(|&s| s == 0),
        "event rendered as audio"
    );
    // the digit itself is not kept anywhere
    let json = std::fs::read_to_string(
        run.spool()
            .join("calls")
            .join(format!("{}.json", rec.call_id)),
    )
    .unwrap();
    assert!(!json.contains("\"digits\""));
}

#[test]
fn calls_without_bye_end_on_media_timeout_and_unanswered_calls_keep_metadata_only() {
    let mut cfg = example_config();
    cfg.calls.rtp_timeout_seconds = 5;
    let specs = vec![
        CallSpec {
            end: CallEnd::NoBye,
            talk_ms: 4_000,
            ..call("nobye")
        },
        CallSpec {
            end: CallEnd::Cancel,
            start_ms: 100,
            ..call("cancel")
        },
        CallSpec {
            end: CallEnd::Busy,
            start_ms: 200,
            ..call("busy")
        },
        // keeps the capture going past the timeout
        CallSpec {
            start_ms: 300,
            talk_ms: 14_000,
            ..call("long")
        },
    ];
    let run = run(&Scenario::new(9, specs), cfg);
    let by_id = |id: &str| {
        run.report
            .recorded
            .iter()
            .find(|r| r.sip_call_ids[0].starts_with(id))
            .unwrap()
    };
    assert_eq!(by_id("nobye").end_reason.as_deref(), Some("rtp_timeout"));
    assert!(by_id("nobye").audio_ms >= 3_500);
    assert_eq!(by_id("cancel").end_reason.as_deref(), Some("cancelled"));
    assert!(by_id("cancel").segments.is_empty());
    assert_eq!(by_id("busy").end_reason.as_deref(), Some("rejected_486"));
    assert!(by_id("busy").answered_at.is_none());
}

#[test]
fn segments_roll_and_the_call_exports_as_one_timeline() {
    let mut cfg = example_config();
    cfg.media.segment_seconds = 10;
    let spec = CallSpec {
        talk_ms: 25_000,
        ..call("long")
    };
    let run = run(&Scenario::new(10, vec![spec]), cfg);
    let rec = check_call(&run, &run.truth[0], 1.0, 0.999);
    assert_eq!(rec.segments.len(), 3, "{:?}", rec.segments);
    let mut expect_offset = 0;
    for s in &rec.segments {
        assert_eq!(s.offset_ms, expect_offset);
        expect_offset += s.duration_ms;
        assert!(run.spool().join(&s.file).is_file());
    }
}

#[test]
fn tampered_or_truncated_segments_fail_to_decrypt() {
    let run = run(
        &Scenario::new(
            12,
            vec![CallSpec {
                talk_ms: 3_000,
                ..call("tamper")
            }],
        ),
        example_config(),
    );
    let rec = &run.report.recorded[0];
    let path = run.spool().join(&rec.segments[0].file);
    let original = std::fs::read(&path).unwrap();
    let mut flipped = original.clone();
    let i = flipped.len() / 2;
    flipped[i] ^= 0x01;
    std::fs::write(&path, &flipped).unwrap();
    let err = format!(
        "{:#}",
        callvault::export::open_segment(&path, &run.key)
            .err()
            .expect("tamper detected")
    );
    assert!(
        err.contains("authentication") || err.contains("altered"),
        "{err}"
    );
    std::fs::write(&path, &original[..original.len() - 100]).unwrap();
    let err = format!(
        "{:#}",
        callvault::export::open_segment(&path, &run.key)
            .err()
            .expect("truncation detected")
    );
    assert!(
        err.contains("trunc") || err.contains("authentication"),
        "{err}"
    );
    std::fs::write(&path, &original).unwrap();
    let (other, _) = CataloguePrivateKey::generate();
    let err = format!(
        "{:#}",
        callvault::export::open_segment(&path, &other)
            .err()
            .expect("wrong key detected")
    );
    assert!(err.to_lowercase().contains("key"), "{err}");
    assert!(callvault::export::open_segment(&path, &run.key).is_ok());
}

#[test]
fn concurrent_mix_records_exactly_the_in_scope_calls() {
    let scenario = Scenario::contact_centre_mix(40, 6_000, 77);
    let run = run(&scenario, example_config());
    let in_scope: Vec<_> = run
        .truth
        .iter()
        .filter(|t| t.index % 4 == 0 || t.index % 4 == 2)
        .collect();
    assert_eq!(
        run.report.recorded.len(),
        in_scope.len(),
        "{}",
        run.report.summary
    );
    for t in in_scope {
        check_call(&run, t, 1.0, 0.999);
    }
    for t in run
        .truth
        .iter()
        .filter(|t| t.index % 4 == 1 || t.index % 4 == 3)
    {
        assert_no_trace(&run, t, &scenario.calls[t.index]);
    }
}

#[test]
fn a_g722_call_is_recorded_at_16_khz() {
    let spec = CallSpec {
        codec: Codec::G722,
        talk_ms: 5_000,
        ..call("g722")
    };
    let run = run(&Scenario::new(13, vec![spec]), example_config());
    assert_eq!(run.report.recorded.len(), 1, "{}", run.report.summary);
    let rec = check_call(&run, &run.truth[0], 1.0, 0.999);
    assert!(rec.segments.iter().all(|s| s.sample_rate == 16_000));
    assert!(rec.streams.iter().all(|s| s.codec == "G722" && s.decoded));
    let (rate, left, _) = run.audio(&rec);
    assert_eq!(rate, 16_000);
    let secs = left.len() as f64 / rate as f64;
    assert!((4.8..=5.6).contains(&secs), "{secs} s");
}

#[test]
fn policy_check_gives_the_same_decisions_and_reasons_and_records_nothing() {
    let scenario = Scenario::contact_centre_mix(12, 3_000, 31);
    let run = run(&scenario, example_config());
    let capture = run.dir.path().join("capture.pcap");
    let before = spool_files(run.dir.path());
    let report =
        callvault::replay::check::check(&example_config(), &[capture], false, false).unwrap();
    assert_eq!(
        spool_files(run.dir.path()),
        before,
        "a dry run writes nothing"
    );
    assert_eq!(report.calls.len(), 12);
    assert_eq!(report.recorded, 6);
    assert_eq!(report.by_rule.get("listed_number"), Some(&6));
    assert_eq!(report.by_rule.get("internal_call"), Some(&3));
    assert_eq!(report.by_rule.get("unlisted_number"), Some(&3));
    for rec in &run.report.recorded {
        let checked = report
            .calls
            .iter()
            .find(|c| c.sip_call_ids == rec.sip_call_ids)
            .expect("every recorded call is in the report");
        assert!(checked.record);
        assert_eq!(checked.reason, rec.decision.reason);
        assert!(
            !checked.caller.contains(&rec.caller),
            "caller numbers are masked"
        );
    }
}

#[test]
fn early_media_before_the_answer_is_recorded_on_the_organisation_side() {
    let spec = CallSpec {
        early_media: true,
        ring_ms: 3_000,
        talk_ms: 4_000,
        ..call("early")
    };
    let run = run(&Scenario::new(14, vec![spec]), example_config());
    let t = &run.truth[0];
    let answered = t.answered_at.unwrap();
    assert!(
        t.agent_audio.iter().any(|(at, _)| *at < answered),
        "the truth has early media"
    );
    let rec = check_call(&run, t, 1.0, 0.999);
    let origin = origin_of(&rec);
    assert!(
        origin < answered.into(),
        "the recording starts with the early media"
    );
}

/// Sealing takes its randomness from the entropy the shell hands in, as it takes its time:
/// the same capture with the same predictable entropy gives the same spool, byte for byte
/// (call and segment ids, data keys, nonces, HPKE's ephemeral keys), so a test can compare
/// sealed output. Other entropy gives ciphertext with nothing in common, that opens to the
/// same audio.
#[test]
fn sealed_segments_follow_from_the_entropy_handed_in() {
    use callvault::entropy::Entropy;
    use callvault::pipeline::Pipeline;
    use callvault::source::CaptureFile;
    use callvault::spool::Spool;

    let scenario = Scenario {
        calls: vec![call("repro-1"), call("repro-2")],
        ..Scenario::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture.pcap");
    write_capture(
        &scenario,
        std::io::BufWriter::new(std::fs::File::create(&capture).unwrap()),
    )
    .unwrap();
    let (_, public, private) = common::test_keys();
    let record = |name: &str, entropy: Entropy| {
        let root = dir.path().join(name);
        let spool = Spool::open(&root).unwrap();
        let mut p = Pipeline::new(
            &example_config(),
            public.clone(),
            spool.clone(),
            common::CollectingSink::new(spool),
            entropy,
        );
        let mut file = CaptureFile::open(&capture).unwrap();
        while let Ok(true) = file.read(64, &mut |t, link, frame| p.frame(t, link, frame)) {}
        p.finish("end_of_capture");
        let recorded = p.sink().recorded.clone();
        let files: Vec<(String, Vec<u8>)> = spool_files(&root)
            .into_iter()
            .map(|f| {
                let name = f.strip_prefix(&root).unwrap().display().to_string();
                (name, std::fs::read(&f).unwrap())
            })
            .collect();
        (root, recorded, files)
    };
    let (_, first_calls, first) = record("first", Entropy::predictable(42));
    let (_, _, again) = record("again", Entropy::predictable(42));
    let (other_root, other_calls, other) = record("other", Entropy::predictable(43));
    assert_eq!(first_calls.len(), 2, "{first_calls:?}");
    let segments =
        |files: &[(String, Vec<u8>)]| files.iter().filter(|(n, _)| n.ends_with(".cvseg")).count();
    assert!(segments(&first) >= 2);
    assert_eq!(first, again, "the same entropy must seal the same bytes");

    let sealed = |files: &[(String, Vec<u8>)]| -> Vec<Vec<u8>> {
        files
            .iter()
            .filter(|(n, _)| n.ends_with(".cvseg"))
            .map(|(_, b)| b.clone())
            .collect()
    };
    let (ours, theirs) = (sealed(&first), sealed(&other));
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(theirs.iter()) {
        assert_eq!(a.len(), b.len());
        // same layout, and (but for the header's fixed fields) no byte in common by position
        let same = a.iter().zip(b.iter()).filter(|(x, y)| x == y).count();
        assert!(
            same < a.len() / 64 + 64,
            "{same} of {} bytes alike",
            a.len()
        );
    }
    let audio = |root: &Path, rec: &CallRecord| {
        let json = root.join("calls").join(format!("{}.json", rec.call_id));
        callvault::export::export_call(&json, &private)
            .unwrap()
            .samples
    };
    let first_root = dir.path().join("first");
    for (a, b) in first_calls.iter().zip(other_calls.iter()) {
        assert_ne!(a.call_id, b.call_id);
        assert_eq!(audio(&first_root, a), audio(&other_root, b));
    }
}
