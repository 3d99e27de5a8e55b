//! callvault: a passive, scope-limited, encrypted call recorder for contact centres.
//!
//! The tree follows the agent's data flow (DESIGN.md). Pipeline stages are synchronous state
//! machines with no I/O of their own: `net`, `sip`, `calls`, `policy`, `rtp`, `decode`,
//! `mixer`, `segment`, `vault`, composed by `pipeline`. Shells that may block, spawn or touch
//! files and sockets: `source` (capture files), `spool` (segment and metadata files),
//! `replay`, and the CLI in `main.rs`. `synth` generates realistic captures for tests, benches
//! and the demo.

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
pub mod synth;
pub mod systemd;
pub mod time;
pub mod vault;
