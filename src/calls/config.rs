//! The `[calls]` section of `agent.toml`: how long calls and dialogs are followed. Read and checked by `crate::config`,
//! which names the file and key of any error.

use serde::Deserialize;

/// How long calls and dialogs are followed, and how many.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsSection {
    /// A call with no RTP and no SIP for this long is closed (`end_reason = "rtp_timeout"`).
    #[serde(default = "default_rtp_timeout")]
    pub rtp_timeout_seconds: u32,
    /// A call longer than this is closed (`end_reason = "max_length"`).
    #[serde(default = "default_max_call")]
    pub max_call_seconds: u32,
    /// An INVITE with no final answer is forgotten after this long.
    #[serde(default = "default_setup_timeout")]
    pub setup_timeout_seconds: u32,
    /// Upper bound on dialogs tracked at once; beyond it new calls are counted, not tracked.
    #[serde(default = "default_max_dialogs")]
    pub max_dialogs: usize,
}

impl Default for CallsSection {
    fn default() -> Self {
        CallsSection {
            rtp_timeout_seconds: default_rtp_timeout(),
            max_call_seconds: default_max_call(),
            setup_timeout_seconds: default_setup_timeout(),
            max_dialogs: default_max_dialogs(),
        }
    }
}

fn default_rtp_timeout() -> u32 {
    120
}
fn default_max_call() -> u32 {
    4 * 3600
}
fn default_setup_timeout() -> u32 {
    300
}
fn default_max_dialogs() -> usize {
    200_000
}
