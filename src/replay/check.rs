//! `callvault policy check`: the scope proof a data-protection officer attaches to a DPIA.
//!
//! Runs the same pipeline as `replay` over capture files in dry-run mode: every call is
//! decided by the same code with the same reason strings that recorded calls carry in their
//! metadata, but no audio is decoded and nothing is written anywhere. Caller numbers are masked
//! unless asked for, so the report itself holds as little personal data as possible.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::calls::Call;
use crate::config::AgentConfig;
use crate::entropy::Entropy;
use crate::pipeline::{CallSink, Pipeline};
use crate::record::CallRecord;
use crate::segment::SegmentStore;
use crate::vault::CataloguePrivateKey;

/// One call as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct CheckedCall {
    pub started_at: String,
    pub sip_call_ids: Vec<String>,
    pub caller: String,
    pub dialled: String,
    pub service: Option<String>,
    pub record: bool,
    pub rule: String,
    pub reason: String,
    pub legs: Vec<CheckedLeg>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckedLeg {
    pub sip_call_id: String,
    pub dialled: String,
    pub joined_by: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PolicyReport {
    pub files: Vec<String>,
    pub file_errors: Vec<String>,
    pub calls: Vec<CheckedCall>,
    pub recorded: u64,
    pub not_recorded: u64,
    /// Calls per rule (`listed_number`, `internal_call`, ...).
    pub by_rule: BTreeMap<String, u64>,
    pub sip_messages: u64,
    pub sip_rejected: u64,
}

/// Collects decisions; writes nothing.
struct DecisionSink {
    show_numbers: bool,
    calls: Vec<CheckedCall>,
}

impl CallSink for DecisionSink {
    fn recorded(&mut self, _record: &CallRecord) -> io::Result<()> {
        Ok(())
    }

    fn decided(&mut self, call: &Call) {
        let mask = |n: &str| {
            if self.show_numbers {
                n.to_owned()
            } else {
                mask_number(n)
            }
        };
        self.calls.push(CheckedCall {
            started_at: call.started_at.rfc3339(),
            sip_call_ids: call.legs.iter().map(|l| l.sip_call_id.clone()).collect(),
            caller: mask(&call.caller),
            dialled: call.dialled_raw.clone(),
            service: call.decision.service.clone(),
            record: call.decision.record,
            rule: call.decision.rule.as_str().to_owned(),
            reason: call.decision.reason.clone(),
            legs: call
                .legs
                .iter()
                .map(|l| CheckedLeg {
                    sip_call_id: l.sip_call_id.clone(),
                    dialled: l.dialled.clone(),
                    joined_by: l.joined_by.as_str().to_owned(),
                })
                .collect(),
        });
    }
}

/// A store that is never written to (dry run opens no recording).
struct NoStore;

impl SegmentStore for NoStore {
    type File = io::Sink;
    fn create(&mut self, name: &str) -> io::Result<io::Sink> {
        Err(io::Error::other(format!("dry run: {name} not created")))
    }
    fn sync(&mut self, _file: &mut io::Sink) -> io::Result<()> {
        Ok(())
    }
    fn commit(&mut self, _file: io::Sink, _name: &str) -> io::Result<()> {
        Ok(())
    }
}

/// Keeps the last two digits of a number: enough to tell calls apart in a report.
pub fn mask_number(n: &str) -> String {
    let digits = n.chars().filter(|c| c.is_ascii_digit()).count();
    if digits <= 4 {
        return n.to_owned(); // an extension: staff, not a member of the public
    }
    let mut seen = 0;
    n.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen > 3 && seen <= digits - 2 {
                    '•'
                } else {
                    c
                }
            } else {
                c
            }
        })
        .collect()
}

pub fn check(
    cfg: &AgentConfig,
    files: &[PathBuf],
    show_numbers: bool,
    progress: bool,
) -> anyhow::Result<PolicyReport> {
    // The pipeline wants a key to seal with; a dry run never seals anything.
    let (_, throwaway) = CataloguePrivateKey::generate();
    let sink = DecisionSink {
        show_numbers,
        calls: Vec::new(),
    };
    let mut pipeline = Pipeline::new(cfg, Arc::new(throwaway), NoStore, sink, Entropy::system());
    pipeline.set_dry_run();
    let file_errors = super::feed(&mut pipeline, files, progress)?;
    let summary = pipeline.summary();
    let mut calls = std::mem::take(&mut pipeline.sink_mut().calls);
    calls.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    let mut by_rule = BTreeMap::new();
    for c in &calls {
        *by_rule.entry(c.rule.clone()).or_insert(0u64) += 1;
    }
    Ok(PolicyReport {
        files: files.iter().map(|f| f.display().to_string()).collect(),
        file_errors,
        recorded: calls.iter().filter(|c| c.record).count() as u64,
        not_recorded: calls.iter().filter(|c| !c.record).count() as u64,
        calls,
        by_rule,
        sip_messages: summary.routes.sip_messages,
        sip_rejected: summary.routes.sip_rejected,
    })
}

impl fmt::Display for PolicyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Scope check (dry run: nothing was recorded)")?;
        for file in &self.files {
            writeln!(f, "  capture: {file}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<24} {:<8} {:<16} {:<16} reason",
            "started (UTC)", "decision", "caller", "dialled"
        )?;
        for c in &self.calls {
            writeln!(
                f,
                "{:<24} {:<8} {:<16} {:<16} {}",
                c.started_at,
                if c.record { "RECORD" } else { "skip" },
                c.caller,
                c.dialled,
                c.reason
            )?;
            for leg in c.legs.iter().skip(1) {
                writeln!(
                    f,
                    "{:<24} {:<8} {:<16} {:<16} + leg {} joined by {}",
                    "", "", "", leg.dialled, leg.sip_call_id, leg.joined_by
                )?;
            }
        }
        writeln!(f)?;
        writeln!(
            f,
            "calls: {} recorded, {} not recorded ({} SIP messages, {} rejected)",
            self.recorded, self.not_recorded, self.sip_messages, self.sip_rejected
        )?;
        for (rule, n) in &self.by_rule {
            writeln!(f, "  {rule:<30} {n}")?;
        }
        for e in &self.file_errors {
            writeln!(f, "warning: {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_public_numbers_not_extensions() {
        assert_eq!(mask_number("+447700900123"), "+447•••••••23");
        assert_eq!(mask_number("4711"), "4711");
        assert_eq!(mask_number("anonymous"), "anonymous");
    }
}
