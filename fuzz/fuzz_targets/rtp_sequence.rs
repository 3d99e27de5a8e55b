//! RTP headers and the sequence state of one stream over a packet sequence.
//! Invariants: no extended sequence number is accepted twice (no packet is rendered twice);
//! every packet is counted once as received, duplicate or too old; the newest extended
//! number only rises.
#![no_main]

use std::collections::HashSet;

use callvault::rtp::{PacketPrint, SeqVerdict, SequenceTracker};
use libfuzzer_sys::fuzz_target;
use rtp_rs::RtpReader;

fuzz_target!(|data: &[u8]| {
    // the input as one RTP packet
    if let Ok(rtp) = RtpReader::new(data) {
        let _ = PacketPrint::of(rtp.sequence_number().into(), rtp.timestamp(), rtp.payload());
        assert!(rtp.payload().len() <= data.len());
    }
    let _ = callvault::rtp::looks_like_rtp(data);
    let _ = callvault::rtp::looks_like_rtcp(data);
    // and as a sequence of sequence numbers
    let mut seq = SequenceTracker::default();
    let mut accepted = HashSet::new();
    let mut newest = 0u64;
    let mut total = 0u64;
    for pair in data.chunks_exact(2) {
        total += 1;
        let n = u16::from_be_bytes([pair[0], pair[1]]);
        match seq.accept(n) {
            SeqVerdict::Accept {
                ext,
                newest: is_newest,
            } => {
                assert_eq!(ext as u16, n);
                assert!(accepted.insert(ext), "{ext} rendered twice");
                if is_newest {
                    assert!(ext > newest || newest == 0);
                    newest = ext;
                } else {
                    assert!(ext < newest);
                }
            }
            SeqVerdict::Restart { ext } => {
                assert_eq!(ext as u16, n);
                assert!(ext > newest);
                assert!(accepted.insert(ext), "{ext} rendered twice");
                newest = ext;
            }
            SeqVerdict::Duplicate | SeqVerdict::TooOld => {}
        }
    }
    assert_eq!(seq.received() + seq.duplicates() + seq.too_old(), total);
    assert_eq!(seq.received(), accepted.len() as u64);
});
