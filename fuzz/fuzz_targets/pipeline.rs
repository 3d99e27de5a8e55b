//! The whole agent pipeline over a short capture (pcap or pcapng), with the example scope
//! (the generator's numbers) plus the corpus's recorded call, writing sealed segments into
//! memory. Invariants: no call holds more audio than the capture spans in capture time, plus
//! the playout delay and one packet; nothing of a call is written unless it was decided in
//! scope; every segment listed in a call's metadata was written.
#![no_main]

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use callvault::entropy::Entropy;
use callvault::config::{AgentConfig, EXAMPLE_AGENT_TOML};
use callvault::pipeline::{CallSink, Pipeline};
use callvault::segment::SegmentStore;
use callvault::source::CaptureFile;
use callvault::record::CallRecord;
use callvault::vault::{CataloguePrivateKey, CataloguePublicKey};
use libfuzzer_sys::fuzz_target;

/// The longest packet a decoder renders (decode::MAX_PACKET_SAMPLES at 8 kHz is 240 ms;
/// 1920 samples at 16 kHz is 120 ms).
const ONE_PACKET: Duration = Duration::from_millis(240);

#[derive(Default)]
struct MemStore {
    committed: HashMap<String, usize>,
}

impl SegmentStore for MemStore {
    type File = Vec<u8>;
    fn create(&mut self, _name: &str) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }
    fn sync(&mut self, _file: &mut Vec<u8>) -> io::Result<()> {
        Ok(())
    }
    fn commit(&mut self, file: Vec<u8>, name: &str) -> io::Result<()> {
        self.committed.insert(name.to_owned(), file.len());
        Ok(())
    }
}

#[derive(Default)]
struct Calls {
    recorded: Vec<CallRecord>,
}

impl CallSink for Calls {
    fn recorded(&mut self, record: &CallRecord) -> io::Result<()> {
        self.recorded.push(record.clone());
        Ok(())
    }
}

fn setup() -> &'static (AgentConfig, Arc<CataloguePublicKey>) {
    static SETUP: OnceLock<(AgentConfig, Arc<CataloguePublicKey>)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let toml = format!(
            "{EXAMPLE_AGENT_TOML}\n[[scope.numbers]]\nnumber = \"+1 905 555 1212\"\nservice = \"Corpus\"\n"
        );
        let cfg = AgentConfig::from_toml(&toml, "fuzz.toml").expect("the example config");
        let (_, public) = CataloguePrivateKey::generate();
        (cfg, Arc::new(public))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = CaptureFile::from_bytes(Path::new("fuzz.pcap"), data.to_vec()) else {
        return;
    };
    let (cfg, public) = setup();
    let mut p = Pipeline::new(cfg, public.clone(), MemStore::default(), Calls::default(), Entropy::predictable(0));
    while let Ok(true) = file.read(64, &mut |time, link, frame| p.frame(time, link, frame)) {}
    p.finish("end_of_capture");
    let summary = p.summary();
    let bound = summary.capture_span
        + Duration::from_millis(cfg.media.playout_delay_ms as u64)
        + ONE_PACKET;
    for rec in &p.sink().recorded {
        assert!(rec.decision.record, "a call out of scope was written");
        assert!(
            Duration::from_millis(rec.audio_ms) <= bound,
            "{} ms of audio from a capture spanning {:?}\n{summary}",
            rec.audio_ms,
            summary.capture_span
        );
        for seg in &rec.segments {
            assert!(
                p.store().committed.contains_key(&seg.file)
                    || p.store()
                        .committed
                        .keys()
                        .any(|k| seg.file.ends_with(k.as_str())),
                "segment {} listed but not written",
                seg.file
            );
        }
    }
});
