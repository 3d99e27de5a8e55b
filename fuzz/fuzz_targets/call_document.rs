//! The catalogue's parsing and validation of a call document uploaded by an agent.
//! Invariants: never panics; what is accepted is the sending agent's, has ended, has a UUID,
//! and survives a round trip through JSON unchanged.
#![no_main]

use callvault::catalogue::ingest::check_call_document;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = check_call_document(data, "agent-1") else {
        return;
    };
    assert_eq!(record.agent, "agent-1");
    assert!(record.ended_at.is_some());
    assert!(uuid::Uuid::parse_str(&record.call_id).is_ok());
    let again = serde_json::to_vec(&record).unwrap();
    let back = check_call_document(&again, "agent-1").expect("a stored document re-reads");
    assert_eq!(serde_json::to_vec(&back).unwrap(), again);
});
