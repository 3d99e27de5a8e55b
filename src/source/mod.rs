//! Source: capture files (pcap, pcapng) for `replay`, `demo` and the tests. The agent's live
//! sources (AF_PACKET rings, HEP sockets) are the agent's own (`agent::af_packet`,
//! `agent::hep_listener`).
//!
//! Owns reading and timestamping a file's frames and knowing each frame's link type. It emits
//! `(capture time, link type, frame bytes)` and nothing else: no protocol parsing happens here.
//! A damaged file is reported with its name and offset and never panics the reader.
// A parsing stage of hostile input: no unwrap, no expect, no unchecked indexing (a fuzz
// target guards each parser; README "Fuzzing").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod capture_file;

pub use capture_file::{CaptureFile, SourceError};
