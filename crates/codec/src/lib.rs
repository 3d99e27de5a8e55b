//! The telephone codecs callvault knows, both ways: G.711 µ-law and A-law ([`g711`]) and
//! G.722 at 64 kbit/s ([`g722`]).
//!
//! The recorder decodes with them (its `decode` stage wraps these decoders in the per-stream
//! state it keeps); the capture generator (`callvault-synth`) encodes with them. They are one
//! crate because a G.722 encoder embeds the decoder's adaptive predictors: the two halves
//! share every table and the band state. Pure functions and fixed-size state: no I/O, no
//! allocation, no panic on any input.
// Decoders of hostile input: no unwrap, no expect (the recorder's fuzz targets reach them
// through its RTP path). Indexing stays allowed: every index is a code masked to its table's
// width (a byte into a 256-entry table, `& 31` into 32 entries), in range by construction.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod g711;
pub mod g722;
