//! Live agent load: how many concurrent calls (and RTP packets per second) `callvault agent`
//! takes from a real-time HEP feed over loopback with zero drops, on this machine.
//!
//! `cargo bench --bench agent_load` runs 250, 500, 1,000 and 2,000 concurrent calls (half in
//! scope, 12 s of talk); `cargo bench --bench agent_load -- CALLS...` runs the sizes given.
//! Each size: a generated capture is re-sent at real speed by `callvault hep-send` (one
//! process, one core) to an agent with the example configuration; when the feed ends the
//! agent's `/metrics` say what was dropped where (HEP socket, pipeline queue, media queues,
//! late packets) and `/proc` how much CPU and memory it used. Real time, so no speed-up:
//! a feed sent faster than real time would also compress the media timing the jitter
//! buffers follow. The spool is on the disk under `target/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callvault::config::EXAMPLE_AGENT_TOML;
use callvault::vault::generate_keypair_files;
use callvault_synth::{Scenario, write_capture};

mod common;
use common::{http_get, metric, usage};

const BIN: &str = env!("CARGO_BIN_EXE_callvault");
const TALK_SECONDS: u64 = 12;

fn capture(dir: &Path, calls: usize) -> (PathBuf, u64) {
    let path = dir.join(format!("load-{calls}x{TALK_SECONDS}s.pcap"));
    let scenario = Scenario::contact_centre_mix(calls, TALK_SECONDS * 1000, 7);
    let file = std::fs::File::create(&path).unwrap();
    let stats = write_capture(&scenario, std::io::BufWriter::with_capacity(1 << 20, file)).unwrap();
    (path, stats.rtp_packets)
}

fn run(work: &Path, calls: usize) {
    let dir = work.join(format!("run-{calls}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (public, _) = generate_keypair_files(&dir.join("keys")).unwrap();
    let (pcap, rtp) = capture(&dir, calls);
    let port = 19_000 + (calls % 1000) as u16;
    let config = EXAMPLE_AGENT_TOML
        .replace(
            "spool_dir = \"/var/spool/callvault\"",
            &format!("spool_dir = {:?}", dir.join("spool")),
        )
        .replace(
            "catalogue_public_key = \"/etc/callvault/catalogue.pub\"",
            &format!("catalogue_public_key = {public:?}"),
        )
        .replace(
            "metrics_listen = \"127.0.0.1:9187\"",
            &format!("metrics_listen = \"127.0.0.1:{port}\""),
        )
        .replace(
            "listen_udp = \"\"",
            &format!("listen_udp = \"127.0.0.1:{port}\""),
        )
        .replace("min_free_mb = 2048", "min_free_mb = 256");
    let config_path = dir.join("agent.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut agent = Command::new(BIN)
        .args(["agent", "-c"])
        .arg(&config_path)
        .env("CALLVAULT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log")).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while http_get(port, "/healthz").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "agent did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    let sent = Command::new(BIN)
        .args(["hep-send", "--to", &format!("127.0.0.1:{port}")])
        .arg(&pcap)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(sent.success());
    let feed = t.elapsed().as_secs_f64();
    // let the last calls end and their segments be written
    let started = Instant::now();
    let m = loop {
        let m = http_get(port, "/metrics").unwrap_or_default();
        if metric(&m, "calls_active") == 0 || started.elapsed() > Duration::from_secs(30) {
            break m;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (cpu, peak) = usage(agent.id());
    if std::env::var_os("AGENT_LOAD_THREADS").is_some() {
        for t in std::fs::read_dir(format!("/proc/{}/task", agent.id()))
            .unwrap()
            .flatten()
        {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let f: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, r)| r.split_whitespace().collect())
                .unwrap_or_default();
            eprintln!(
                "  thread {:<12} user {:>6} sys {:>6} ticks",
                name.trim(),
                f.get(11).unwrap_or(&""),
                f.get(12).unwrap_or(&"")
            );
        }
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let _ = agent.wait();
    let drops = |cause: &str| metric(&m, &format!("drops_total{{cause=\"{cause}\"}}"));
    let lost = drops("hep_socket") + drops("hep_queue") + drops("media_queue");
    let late = drops("rtp_late");
    if lost > 0 {
        eprintln!(
            "  {calls} calls: dropped at the HEP socket {}, pipeline queue {}, media queues {}",
            drops("hep_socket"),
            drops("hep_queue"),
            drops("media_queue")
        );
    }
    let recorded = metric(&m, "calls_recorded_total");
    let pps = rtp as f64 / feed;
    println!(
        "| {calls:>6} | {recorded:>5} | {pps:>9.0} | {lost:>7} | {late:>6} | {:>6.2} | {:>9.0} | {:>6.1} | {} |",
        cpu / feed,
        rtp as f64 / cpu.max(1e-9),
        peak as f64 / (1 << 20) as f64,
        if lost + late == 0 { "yes" } else { "no" }
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![250, 500, 1000, 2000]
    } else {
        sizes
    };
    let work = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/agent-load");
    std::fs::create_dir_all(&work).unwrap();
    println!(
        "| calls | recorded | RTP pkts/s offered | dropped | late | agent cores busy | pkts per CPU-s | peak RSS MiB | zero loss |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for calls in sizes {
        run(&work, calls);
    }
}
