//! `callvault replay`: the agent's pipeline over capture files.
//!
//! A thin shell: it reads frames from files (in the order given, as one continuous capture),
//! feeds them with their capture timestamps to the same [`Pipeline`] the live agent uses,
//! shows progress, and reports what happened. Deterministic: the same files give the same
//! recordings (bar random ids and keys).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::AgentConfig;
use crate::entropy::Entropy;
use crate::io_util::cpu_time;
use crate::pipeline::{CallSink, MediaPort, Pipeline, Summary};
use crate::record::CallRecord;
use crate::source::CaptureFile;
use crate::spool::Spool;
use crate::vault::CataloguePublicKey;

pub mod check;
pub mod hep_send;

pub struct ReplayOptions {
    pub config: AgentConfig,
    pub spool: PathBuf,
    pub public_key: PathBuf,
    pub files: Vec<PathBuf>,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
}

pub struct ReplayReport {
    pub summary: Summary,
    pub elapsed: Duration,
    pub cpu: Option<Duration>,
    /// Problems with individual files (the others were still replayed).
    pub file_errors: Vec<String>,
    pub spool: PathBuf,
    pub recorded: Vec<CallRecord>,
}

impl ReplayReport {
    pub fn packets_per_second(&self) -> f64 {
        self.summary.net.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Writes recorded calls into the spool and remembers them for the report.
pub struct SpoolSink {
    spool: Spool,
    pub recorded: Vec<CallRecord>,
}

impl CallSink for SpoolSink {
    fn opened(&mut self, journal: &CallRecord) -> std::io::Result<()> {
        self.spool.write_call(journal).map(drop)
    }

    fn recorded(&mut self, record: &CallRecord) -> std::io::Result<()> {
        self.spool.write_call(record)?;
        self.recorded.push(record.clone());
        Ok(())
    }
}

pub fn run(opts: ReplayOptions) -> anyhow::Result<ReplayReport> {
    let key = CataloguePublicKey::load(&opts.public_key).context(
        "cannot load the catalogue public key (make one with `callvault keys generate --out DIR`)",
    )?;
    let spool = Spool::open(&opts.spool)?;
    let sink = SpoolSink {
        spool: spool.clone(),
        recorded: Vec::new(),
    };
    let mut pipeline = Pipeline::new(&opts.config, Arc::new(key), spool, sink, Entropy::system());
    let started = Instant::now();
    let cpu0 = cpu_time();
    let file_errors = feed(&mut pipeline, &opts.files, opts.progress)?;
    let elapsed = started.elapsed();
    let cpu = match (cpu0, cpu_time()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let summary = pipeline.summary();
    let recorded = std::mem::take(&mut pipeline.sink_mut().recorded);
    Ok(ReplayReport {
        summary,
        elapsed,
        cpu,
        file_errors,
        spool: opts.spool,
        recorded,
    })
}

/// Reads every file in order into the pipeline (as one continuous capture), with a progress
/// bar on a terminal or a log line every 10 s otherwise, then ends the calls still open.
/// Returns the problems with individual files; fails only when no file could be read.
pub fn feed<M: MediaPort>(
    pipeline: &mut Pipeline<M>,
    paths: &[PathBuf],
    progress: bool,
) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    let mut file_errors = Vec::new();
    for path in paths {
        match CaptureFile::open(path) {
            Ok(f) => files.push(f),
            Err(e) => file_errors.push(e.to_string()),
        }
    }
    if files.is_empty() {
        anyhow::bail!(
            "no capture could be read: {}",
            if file_errors.is_empty() {
                "no files given".to_owned()
            } else {
                file_errors.join("; ")
            }
        );
    }
    let total: u64 = files.iter().map(|f| f.size()).sum();
    let bar = (progress && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut done_bytes = 0u64;
    let mut last_log = Instant::now();
    for mut file in files {
        tracing::info!(file = %file.path().display(), "reading");
        loop {
            let more = file.read(65_536, &mut |t, link, frame| pipeline.frame(t, link, frame));
            let pos = done_bytes + file.consumed();
            if let Some(b) = &bar {
                b.set_position(pos);
                b.set_message(format!("{} calls open", pipeline.active_calls()));
            } else if last_log.elapsed() > Duration::from_secs(10) {
                last_log = Instant::now();
                tracing::info!(
                    "{pos} of {total} bytes, {} calls open",
                    pipeline.active_calls()
                );
            }
            match more {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!("{e}");
                    file_errors.push(e.to_string());
                    break;
                }
            }
        }
        done_bytes += file.size();
    }
    pipeline.finish("capture_end");
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(file_errors)
}
