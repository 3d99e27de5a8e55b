//! A whole pcap or pcapng file through the capture source.
//! Invariants: every frame read is counted; no frame is larger than the file; reading ends
//! (each call makes progress or reports the end).
#![no_main]

use std::path::Path;

use callvault::source::CaptureFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = CaptureFile::from_bytes(Path::new("fuzz.pcapng"), data.to_vec()) else {
        return;
    };
    let mut delivered = 0u64;
    let mut calls = 0usize;
    loop {
        calls += 1;
        // a read of 64 frames that returns true consumed at least one block of 12 bytes
        assert!(calls <= data.len() / 12 + 2, "reading does not end");
        let more = file.read(64, &mut |_, _, frame| {
            delivered += 1;
            assert!(frame.len() <= data.len());
        });
        match more {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                assert!(e.to_string().contains("fuzz.pcapng"), "{e}");
                break;
            }
        }
    }
    let c = &file.counters;
    assert_eq!(c.frames, delivered + c.unsupported_link);
    assert!(file.consumed() <= data.len() as u64);
});
