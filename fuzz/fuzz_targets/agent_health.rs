//! The catalogue's parsing and bounds of an agent's health report.
//! Invariants: never panics; what is accepted is within its bounds and survives a round trip
//! through JSON unchanged.
#![no_main]

use callvault::catalogue::ingest::check_health_report;
use callvault::record::health::MAX_LIVE_CALLS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = check_health_report(data) else {
        return;
    };
    assert!(report.live.len() <= MAX_LIVE_CALLS);
    let again = serde_json::to_vec(&report).unwrap();
    let back = check_health_report(&again).expect("an accepted report re-reads");
    assert_eq!(back, report);
});
