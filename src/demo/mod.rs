//! `callvault demo`: the main job end to end on an embedded default, in one directory.
//!
//! Generates a contact-centre capture (listed numbers, staff direct dials, internal calls),
//! records it through the pipeline with the example `agent.toml`, exports the recorded calls
//! with the catalogue key, then ships them into a local catalogue and retrieves one as a
//! manager would ([`catalogue`]). Owns nothing outside the demo directory; prints what each
//! step did, and fails if what the catalogue served differs from what was exported.

pub mod catalogue;

use std::fs;
use std::path::Path;

use anyhow::Context;

use crate::config::{AgentConfig, EXAMPLE_AGENT_TOML};
use crate::export;
use crate::replay::{self, ReplayOptions};
use crate::vault::{CataloguePrivateKey, generate_keypair_files};
use callvault_synth as synth;

pub fn run(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let keys = dir.join("keys");
    let public = keys.join("catalogue.pub");
    let private = keys.join("catalogue.key");
    if !public.exists() {
        generate_keypair_files(&keys)?;
    }
    let capture = dir.join("contact-centre.pcap");
    let mut scenario = synth::Scenario::contact_centre_mix(8, 20_000, 2026);
    // calls of a few minutes ago: within retention when the demo catalogue is served after
    scenario.epoch =
        (crate::time::Timestamp::now() - std::time::Duration::from_secs(120)).since_epoch();
    let file = fs::File::create(&capture)?;
    let stats = synth::write_capture(&scenario, std::io::BufWriter::new(file))?;
    println!(
        "1. generated {} ({} calls, {} frames): calls to listed council numbers, direct dials to staff extensions, internal calls",
        capture.display(),
        scenario.calls.len(),
        stats.frames
    );
    let spool = dir.join("spool");
    if spool.exists() {
        fs::remove_dir_all(&spool)?;
    }
    let cfg = AgentConfig::from_toml(EXAMPLE_AGENT_TOML, "config/agent.toml (embedded)")?;
    let report = replay::run(ReplayOptions {
        config: cfg,
        spool: spool.clone(),
        public_key: public.clone(),
        files: vec![capture],
        progress: false,
    })?;
    println!("2. recorded it through the pipeline with config/agent.toml:\n");
    println!("{}", report.summary);
    let wav_dir = dir.join("wav");
    fs::create_dir_all(&wav_dir)?;
    let key = CataloguePrivateKey::load(&private)?;
    println!(
        "3. recorded calls (decision and reason from the scope policy), exported with the catalogue key:"
    );
    let mut calls: Vec<_> = report.recorded.iter().collect();
    calls.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    for rec in calls {
        let json = spool.join("calls").join(format!("{}.json", rec.call_id));
        let exported = export::export_call(&json, &key)?;
        let out = wav_dir.join(format!("{}.wav", rec.call_id));
        export::write_wav(&out, exported.rate, &exported.samples)?;
        println!(
            "   {}  {:<14} {:>5.1} s  {}  -> {}",
            rec.started_at,
            rec.service.as_deref().unwrap_or("-"),
            rec.audio_ms as f64 / 1000.0,
            rec.decision.reason,
            out.display()
        );
    }
    if report.summary.calls.calls_not_recorded > 0 {
        println!(
            "   {} calls out of scope (direct dials, internal calls) left no audio and no metadata",
            report.summary.calls.calls_not_recorded
        );
    }
    println!(
        "\nencrypted segments and call metadata are in {}",
        spool.display()
    );
    let cfg = AgentConfig::from_toml(EXAMPLE_AGENT_TOML, "config/agent.toml (embedded)")?;
    let cat = catalogue::run(dir, &cfg, &spool, &private)?;
    let (call_id, audit_seq, wav) = &cat.retrieved;
    let exported = fs::read(wav_dir.join(format!("{call_id}.wav")))?;
    println!(
        "\n4. shipped {} calls with the agent's outbox to a local catalogue ({}: SQLite + files);",
        cat.shipped,
        cat.config.display()
    );
    println!(
        "   as manager \"{}\" searched ({} calls found), stated a purpose (quality_training,",
        cat.manager.0, cat.found
    );
    println!(
        "   reference DEMO-1: audit record #{audit_seq}) and played call {call_id}: the WAV served {}",
        if *wav == exported {
            "is the exported one, byte for byte"
        } else {
            "DIFFERS from the exported one"
        }
    );
    println!(
        "   the audit chain verifies ({} records)",
        cat.audit_records
    );
    println!(
        "\nsee it yourself:  callvault catalogue -c {}",
        cat.config.display()
    );
    println!(
        "then open http://{}/ and sign in as {} / {} (search, listen)",
        catalogue::DEMO_LISTEN,
        cat.manager.0,
        cat.manager.1
    );
    println!(
        "             or as {} / {} (the audit log)",
        cat.auditor.0, cat.auditor.1
    );
    anyhow::ensure!(
        *wav == exported,
        "the catalogue served a different WAV from the exported one"
    );
    Ok(())
}
