//! What the fuzz targets found, each minimised input held here with the invariant it broke
//! (the targets are in `fuzz/`; README "Fuzzing"). The inputs are in `tests/fuzz_findings/`,
//! made by libFuzzer from the repository's own captures.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use callvault::config::{AgentConfig, EXAMPLE_AGENT_TOML};
use callvault::entropy::Entropy;
use callvault::pipeline::Pipeline;
use callvault::record::CallRecord;
use callvault::source::CaptureFile;
use callvault::spool::Spool;
use common::{CollectingSink, test_keys};

fn finding(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_findings")
        .join(name)
}

/// The `pipeline` target's scope: the example numbers and the corpus's recorded call.
fn fuzz_config() -> AgentConfig {
    let toml = format!(
        "{EXAMPLE_AGENT_TOML}\n[[scope.numbers]]\nnumber = \"+1 905 555 1212\"\nservice = \"Corpus\"\n"
    );
    AgentConfig::from_toml(&toml, "fuzz.toml").unwrap()
}

/// Runs a capture through the pipeline as the `pipeline` target does and checks its
/// invariant: no call holds more audio than the capture spans, plus the playout delay and
/// one packet.
fn pipeline_invariant(name: &str) -> (Vec<CallRecord>, Duration) {
    let cfg = fuzz_config();
    let (_, public, _) = test_keys();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let mut p = Pipeline::new(
        &cfg,
        public,
        spool.clone(),
        CollectingSink::new(spool),
        Entropy::system(),
    );
    let mut file = CaptureFile::open(&finding(name)).unwrap();
    while let Ok(true) = file.read(64, &mut |time, link, frame| p.frame(time, link, frame)) {}
    p.finish("end_of_capture");
    let summary = p.summary();
    let bound = summary.capture_span
        + Duration::from_millis(cfg.media.playout_delay_ms as u64)
        + Duration::from_millis(240);
    for rec in &p.sink().recorded {
        assert!(
            Duration::from_millis(rec.audio_ms) <= bound,
            "{name}: {} ms of audio from a capture spanning {:?}\n{summary}",
            rec.audio_ms,
            summary.capture_span
        );
    }
    (p.sink().recorded.clone(), summary.capture_span)
}

/// An INVITE, then one RTP frame whose record says it was captured 56 years earlier: the
/// lone frame was handed to the media stage with its own time, and the call was padded with
/// 120 s of silence (the RTP timeout) behind a capture that spans nothing.
#[test]
fn a_lone_rtp_frame_far_in_the_past_writes_no_padding() {
    let (recorded, span) = pipeline_invariant("pipeline-lone-rtp-frame-far-in-the-past.pcap");
    assert_eq!(span, Duration::ZERO);
    assert!(recorded.iter().all(|r| r.audio_ms <= 500), "{recorded:?}");
}

/// A call's capture whose last frames say 1970 (several of them, so capture time follows):
/// the capture's span was taken as "now minus first", which the step back made zero, though
/// four seconds of capture time had passed and 0.7 s of audio were rightly recorded.
#[test]
fn a_capture_whose_clock_steps_back_still_spans_the_time_that_passed() {
    let (recorded, span) = pipeline_invariant("pipeline-clock-steps-back-to-1970.pcap");
    assert!(span >= Duration::from_secs(4), "{span:?}");
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].audio_ms >= 600, "{}", recorded[0].audio_ms);
}

/// An INVITE stamped 4 s after the RTP frame that follows it in the file: capture time starts
/// at the INVITE and never moves, so the span, counted as forward moves only, was zero, though
/// the capture covers 4 s and the call's audio (its one packet, then silence to the end)
/// rightly does too. The span now runs from the earliest frame handled.
#[test]
fn a_capture_whose_first_frame_is_its_latest_spans_from_its_earliest() {
    let (recorded, span) = pipeline_invariant("pipeline-first-frame-is-the-latest.pcap");
    assert_eq!(span, Duration::from_micros(3_990_057), "{span:?}");
    assert_eq!(recorded.len(), 1);
}
