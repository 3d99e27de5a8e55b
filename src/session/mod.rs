//! Session: the vocabulary the signalling and media stages share about a call's media, kept
//! below both so that neither depends on the other for it.
//!
//! Owns which party a stream belongs to and the stereo channel it is heard on ([`Side`]), and
//! what an SDP's payload types mean ([`PayloadMap`], [`Codec`]). Plain values: no state, no
//! I/O, and nothing here may use another stage.

mod codec;
mod side;

pub use codec::{Codec, CodecKind, PayloadMap};
pub use side::Side;
