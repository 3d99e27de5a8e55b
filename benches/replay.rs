//! End-to-end replay benchmark: generated contact-centre captures (half the calls in scope)
//! through the whole pipeline — parse, scope, decode, mix, encrypt, write — measuring RTP
//! packets per CPU-second, wall-clock rate and peak memory per recorded call.
//!
//! `cargo bench --bench replay` runs the standard set (200 and 1,000 concurrent calls, 60 s),
//! each twice: with the spool on tmpfs (`/dev/shm`: the pipeline's own cost) and on the disk
//! under `target/` (adds the filesystem's cost of creating, writing and syncing segments).
//! `cargo bench --bench replay -- CALLS SECONDS` runs one size. Captures are generated into
//! `target/bench-captures/` once and reused.

use std::path::PathBuf;
use std::time::Instant;

use callvault::config::{AgentConfig, EXAMPLE_AGENT_TOML};
use callvault::io_util::{cpu_time, peak_rss};
use callvault::replay::{self, ReplayOptions};
use callvault::vault::generate_keypair_files;
use callvault_synth::{Scenario, write_capture};

fn capture(calls: usize, seconds: u64) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-captures");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("mix-{calls}x{seconds}s.pcap"));
    if !path.exists() {
        let t = Instant::now();
        let scenario = Scenario::contact_centre_mix(calls, seconds * 1000, 42);
        let tmp = path.with_extension("tmp");
        let file = std::fs::File::create(&tmp).unwrap();
        let stats =
            write_capture(&scenario, std::io::BufWriter::with_capacity(1 << 20, file)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        eprintln!(
            "generated {} ({} frames, {:.0} MB) in {:.1} s",
            path.display(),
            stats.frames,
            stats.bytes as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
    }
    path
}

fn rss_now() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Runs one measurement in a child process, so that its peak memory is its own.
fn run(calls: usize, seconds: u64) {
    capture(calls, seconds);
    let mut places = vec![];
    if std::path::Path::new("/dev/shm").is_dir() {
        places.push("tmpfs");
    }
    places.push("disk");
    for place in places {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([calls.to_string(), seconds.to_string(), place.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn run_place(calls: usize, seconds: u64, place: &str) {
    match place {
        "tmpfs" => run_in(calls, seconds, std::path::Path::new("/dev/shm"), "tmpfs"),
        _ => {
            let disk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
            run_in(calls, seconds, &disk, "disk ")
        }
    }
}

fn run_in(calls: usize, seconds: u64, base: &std::path::Path, label: &str) {
    let path = capture(calls, seconds);
    let work = tempfile::tempdir_in(base).unwrap();
    let (public, _) = generate_keypair_files(&work.path().join("keys")).unwrap();
    let cfg = AgentConfig::from_toml(EXAMPLE_AGENT_TOML, "example").unwrap();
    let base_rss = rss_now();
    let cpu0 = cpu_time().unwrap_or_default();
    let t = Instant::now();
    let report = replay::run(ReplayOptions {
        config: cfg,
        spool: work.path().join("spool"),
        public_key: public,
        files: vec![path],
        progress: false,
    })
    .unwrap();
    let wall = t.elapsed().as_secs_f64();
    let cpu = (cpu_time().unwrap_or_default() - cpu0).as_secs_f64();
    let peak = peak_rss().unwrap_or(0);
    let s = &report.summary;
    let rtp = s.routes.rtp_recorded + s.routes.rtp_out_of_scope + s.routes.rtp_unmatched;
    let recorded = s.calls.calls_recorded.max(1);
    println!(
        "{label} {calls:>5} calls x {seconds} s: {:>9} RTP pkts, {:>5} recorded calls | {:>10.0} RTP pkts/CPU-s | {:>10.0} frames/s wall | CPU {:.2} s | peak RSS {:.1} MiB, {:.1} KiB per recorded call | {:.0} s audio",
        rtp,
        s.calls.calls_recorded,
        rtp as f64 / cpu.max(1e-9),
        s.net.frames as f64 / wall,
        cpu,
        peak as f64 / 1048576.0,
        peak.saturating_sub(base_rss) as f64 / 1024.0 / recorded as f64,
        s.media.audio_ms_written as f64 / 1000.0,
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match &args[..] {
        [calls, seconds] => {
            run(
                calls.parse().expect("CALLS"),
                seconds.parse().expect("SECONDS"),
            );
            return;
        }
        [calls, seconds, place] => {
            run_place(
                calls.parse().expect("CALLS"),
                seconds.parse().expect("SECONDS"),
                place,
            );
            return;
        }
        _ => {}
    }
    for (calls, seconds) in [(200, 60), (1000, 60)] {
        run(calls, seconds);
    }
}
