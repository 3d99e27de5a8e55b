//! Shared test fixtures: keys, configs, sinks, spool inspection.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use callvault::calls::Call;
use callvault::config::{AgentConfig, EXAMPLE_AGENT_TOML};
use callvault::pipeline::CallSink;
use callvault::spool::{CallRecord, Spool};
use callvault::vault::{CataloguePrivateKey, CataloguePublicKey};

/// A fresh catalogue key pair.
pub fn test_keys() -> ((), Arc<CataloguePublicKey>, CataloguePrivateKey) {
    let (private, public) = CataloguePrivateKey::generate();
    ((), Arc::new(public), private)
}

pub fn example_config() -> AgentConfig {
    AgentConfig::from_toml(EXAMPLE_AGENT_TOML, "config/agent.toml").unwrap()
}

/// A config listing `numbers` (number, service) for `country`.
pub fn config_with(country: &str, numbers: &[(&str, &str)]) -> AgentConfig {
    let mut toml = format!("[scope]\ncountry = \"{country}\"\n");
    for (n, s) in numbers {
        toml.push_str(&format!(
            "[[scope.numbers]]\nnumber = \"{n}\"\nservice = \"{s}\"\n"
        ));
    }
    AgentConfig::from_toml(&toml, "test").unwrap()
}

/// Writes recorded calls to the spool and remembers every call decided.
pub struct CollectingSink {
    spool: Spool,
    pub recorded: Vec<CallRecord>,
    pub decided: Vec<String>,
    pub decisions: Vec<(String, bool, String)>,
}

impl CollectingSink {
    pub fn new(spool: Spool) -> Self {
        CollectingSink {
            spool,
            recorded: Vec::new(),
            decided: Vec::new(),
            decisions: Vec::new(),
        }
    }
}

impl CallSink for CollectingSink {
    fn recorded(&mut self, record: &CallRecord) -> std::io::Result<()> {
        self.spool.write_call(record)?;
        self.recorded.push(record.clone());
        Ok(())
    }
    fn decided(&mut self, call: &Call) {
        for leg in &call.legs {
            self.decided.push(leg.sip_call_id.clone());
            self.decisions.push((
                leg.sip_call_id.clone(),
                call.decision.record,
                call.decision.reason.clone(),
            ));
        }
    }
}

/// Every file under `dir`, recursively.
pub fn spool_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
