//! Mixer: the stereo timeline of one recorded call.
//!
//! Owns a short ring of stereo samples (left = caller, right = organisation side) in which
//! decoded packets are placed at their timeline position, summed when two streams overlap on
//! one side, and from which audio is drained in order up to the position the caller names
//! (when audio is old enough to drain is the jitter buffer's, `media::jitter_buffer`). Unwritten positions drain as silence, so holds and losses keep their real
//! length and a position in the file is a wall-clock time. It never reads the clock, never
//! allocates after construction, and never writes anything anywhere: draining hands samples to
//! the caller.

pub mod timeline;

pub use timeline::{Timeline, WriteOutcome};
