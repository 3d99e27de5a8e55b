//! Segment writer: turns a call's drained stereo timeline into encrypted segment files.
//!
//! Owns the plaintext framing (a streaming WAV byte stream per segment), the rolling of
//! segments every `segment_seconds`, and the hand-over of bytes to the vault's sealer, which
//! encrypts them chunk by chunk as they arrive: plaintext audio never reaches a file. File
//! creation, syncing and the final rename belong to a [`SegmentStore`] (the spool), so this
//! code never touches the filesystem itself and can be tested in memory.

pub mod wav;
pub mod writer;

pub use writer::{SegmentError, SegmentStore, SegmentWriter};
