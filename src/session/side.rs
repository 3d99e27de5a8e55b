//! The two parties of a recorded call, and the stereo channel each is heard on.

use serde::Serialize;

/// The two channels of a recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The outside party: left channel.
    Caller,
    /// The contact centre (agent, then whoever the call is transferred to): right channel.
    Organisation,
}

impl Side {
    pub fn channel(self) -> usize {
        match self {
            Side::Caller => 0,
            Side::Organisation => 1,
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Organisation,
            Side::Organisation => Side::Caller,
        }
    }
}
