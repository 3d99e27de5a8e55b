//! HEP v3, plain and compressed, as read from a capture file and as received live with an
//! authentication key. Invariants: one packet gives at most one datagram, no larger than
//! its inflation bound; live packets take the arrival time; with a key set, nothing passes
//! that does not carry the key.
#![no_main]

use callvault::net::{NetConfig, NetDecoder};
use callvault::time::Timestamp;
use libfuzzer_sys::fuzz_target;

const MAX_INFLATED: usize = 64 * 1024;
const KEY: &[u8] = b"hep-secret";

fuzz_target!(|data: &[u8]| {
    let mut net = NetDecoder::new(NetConfig::default());
    let mut n = 0;
    net.hep(data, &mut |dg| {
        n += 1;
        assert!(dg.via_hep);
        assert!(dg.payload.len() <= data.len().max(MAX_INFLATED));
    });
    assert!(n <= 1);

    let arrival = Timestamp::from_millis(1_700_000_000_000);
    let mut live = NetDecoder::new(NetConfig::default());
    let mut m = 0;
    live.hep_received(arrival, data, Some(KEY), &mut |dg| {
        m += 1;
        assert_eq!(dg.time, arrival);
    });
    assert!(m <= 1);
    if m == 1 {
        assert!(
            data.windows(KEY.len()).any(|w| w == KEY),
            "accepted without the key"
        );
    }
});
