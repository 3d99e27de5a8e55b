//! The agent's configuration file.
//! Invariants: never panics, however deep or large the TOML; a refused file's error names
//! the file (an admin must know which file to fix).
#![no_main]

use callvault::config::AgentConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match AgentConfig::from_toml(text, "/etc/callvault/agent.toml") {
        Ok(cfg) => {
            let _ = cfg.country();
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("/etc/callvault/agent.toml"), "{msg}");
        }
    }
});
