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
    for (k, call) in scenario.calls.iter_mut().enumerate() {
        // syllable-like bursts with pauses, not noise: the waveform and the player read as a
        // conversation
        call.caller_signal = synth::Signal::Speechlike { seed: 2 * k as u64 };
        call.agent_signal = synth::Signal::Speechlike {
            seed: 2 * k as u64 + 1,
        };
    }
    // the first call is put on hold for four seconds (re-INVITE sendonly, then sendrecv);
    // the second crosses a poor network (loss and jitter show on its quality panel)
    scenario.calls[0].hold = Some((6_000, 4_000));
    scenario.calls[2].loss = 0.03;
    scenario.calls[2].jitter_ms = 40;
    // calls of a few minutes ago: within retention when the demo catalogue is served after
    scenario.epoch =
        (crate::time::Timestamp::now() - std::time::Duration::from_secs(120)).since_epoch();
    let file = fs::File::create(&capture)?;
    let stats = synth::write_capture(&scenario, std::io::BufWriter::new(file))?;
    println!(
        "1. generated {} ({} calls, {} frames): calls to listed council numbers (one put on hold, one over a lossy network), direct dials to staff extensions, internal calls",
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
    // the binary that is running now, as the reader would type it (target/release/callvault)
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let cwd = std::env::current_dir().ok()?;
            Some(exe.strip_prefix(&cwd).map(Path::to_path_buf).unwrap_or(exe))
        })
        .map_or("callvault".to_owned(), |p| p.display().to_string());
    println!(
        "\nsee it yourself:  {binary} catalogue -c {}",
        cat.config.display()
    );
    if cat.listen != catalogue::DEMO_LISTEN {
        println!(
            "({} is taken on this machine: the demo catalogue is set to serve on {} instead)",
            catalogue::DEMO_LISTEN,
            cat.listen
        );
    }
    println!("then open http://{}/ and sign in as", cat.listen);
    for p in &cat.people {
        println!(
            "   {:<8} {:<8} / {}  ({})",
            p.role.as_str(),
            p.name,
            p.password,
            p.sees
        );
    }
    println!(
        "(the demo signs in with passwords only; a real catalogue asks managers and DPOs for an authenticator code too)"
    );
    anyhow::ensure!(
        *wav == exported,
        "the catalogue served a different WAV from the exported one"
    );
    Ok(())
}
