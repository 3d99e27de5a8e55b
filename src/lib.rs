//! callvault: a passive, scope-limited, encrypted call recorder for contact centres.
//!
//! The tree follows the agent's data flow (README, "Source layout"). Pipeline stages are
//! synchronous state machines with no I/O, clock or randomness of their own: `net`, `sip`,
//! `calls`, `policy`, `rtp`, `decode`, `mixer`, `media`, `segment`, composed by `pipeline`,
//! over the shared `session` vocabulary and the `record` contract; time and `entropy` are
//! handed in. Shells that may block, spawn or touch files and sockets: `source` (capture
//! files), `spool`, `agent`, `catalogue`, `replay`, `export`, `demo` and the CLI in
//! `main.rs`. Two workspace crates sit beside it: `callvault-codec` (G.711 and G.722, the
//! decoders `decode` wraps and the encoders the generator needs) and `callvault-synth` (the
//! capture generator behind the demo, `generate`, the tests and the benches).

pub mod agent;
pub mod calls;
pub mod catalogue;
pub mod config;
pub mod decode;
pub mod demo;
pub mod entropy;
pub mod export;
pub mod io_util;
pub mod media;
pub mod mixer;
pub mod net;
pub mod pipeline;
pub mod policy;
pub mod record;
pub mod replay;
pub mod rtp;
pub mod segment;
pub mod session;
pub mod sip;
pub mod source;
pub mod spool;
pub mod systemd;
pub mod time;
pub mod vault;
