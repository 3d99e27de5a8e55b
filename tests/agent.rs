//! `callvault agent` as a process: HEP feeds re-sent from generated captures over loopback
//! (by `callvault hep-send`), signals, crashes, reloads and a full disk. What it records is
//! compared with what `replay` records from the same capture.

mod common;

use common::{free_port, http_get};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callvault::config::EXAMPLE_AGENT_TOML;
use callvault::record::CallRecord;
use callvault::replay::{self, ReplayOptions};
use callvault::vault::{CataloguePrivateKey, generate_keypair_files};
use callvault_synth::{CallSpec, Scenario, write_capture};

/// Names of every file under `dir`.
fn spool_files(dir: &Path) -> Vec<String> {
    common::spool_files(dir)
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

const BIN: &str = env!("CARGO_BIN_EXE_callvault");
const AUTH_KEY: &str = "hep-s3cret";

/// Sets `key = value` on the first line that assigns `key` (the example config has each
/// key once, with its default).
fn set(toml: &str, key: &str, value: &str) -> String {
    let mut done = false;
    toml.lines()
        .map(|l| {
            if !done && l.starts_with(&format!("{key} = ")) {
                done = true;
                format!("{key} = {value}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Keeps only the listed services in the example config's number list.
fn only_services(toml: &str, keep: &[&str]) -> String {
    let mut out = String::new();
    for block in toml.split("[[scope.numbers]]") {
        if out.is_empty() {
            out.push_str(block);
            continue;
        }
        let service_kept = keep
            .iter()
            .any(|s| block.contains(&format!("service = \"{s}\"")));
        // the block of the last number runs on into [media] and the rest
        let tail = block.find("\n[").map(|i| &block[i..]).unwrap_or("");
        if service_kept {
            out.push_str("[[scope.numbers]]");
            out.push_str(&block[..block.len() - tail.len()]);
        }
        out.push_str(tail);
    }
    out
}

struct Lab {
    dir: tempfile::TempDir,
    key: CataloguePrivateKey,
    public: PathBuf,
    port: u16,
}

impl Lab {
    fn new(name: &str) -> Lab {
        let dir = tempfile::Builder::new()
            .prefix(&format!("callvault-agent-{name}-"))
            .tempdir()
            .unwrap();
        let (public, private) = generate_keypair_files(&dir.path().join("keys")).unwrap();
        Lab {
            key: CataloguePrivateKey::load(&private).unwrap(),
            public,
            dir,
            port: free_port(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spool(&self) -> PathBuf {
        self.path("spool")
    }

    /// The example configuration, pointed at this lab, with HEP on UDP and metrics on TCP
    /// (same port number), an auth key, and 1 s syncs.
    fn config(&self) -> String {
        let mut t = EXAMPLE_AGENT_TOML.to_owned();
        t = set(&t, "spool_dir", &format!("{:?}", self.spool()));
        t = set(&t, "catalogue_public_key", &format!("{:?}", self.public));
        t = set(
            &t,
            "metrics_listen",
            &format!("\"127.0.0.1:{}\"", self.port),
        );
        t = set(&t, "listen_udp", &format!("\"127.0.0.1:{}\"", self.port));
        t = set(&t, "auth_key", &format!("\"{AUTH_KEY}\""));
        t = set(&t, "min_free_mb", "16");
        t = set(&t, "fsync_seconds", "1");
        t = set(&t, "shutdown_timeout_seconds", "15");
        t
    }

    fn write_config(&self, text: &str) -> PathBuf {
        let p = self.path("agent.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn capture(&self, name: &str, scenario: &Scenario) -> PathBuf {
        self.capture_counted(name, scenario).0
    }

    /// A capture file and the number of SIP messages and RTP packets in it.
    fn capture_counted(&self, name: &str, scenario: &Scenario) -> (PathBuf, u64) {
        let p = self.path(name);
        let f = std::fs::File::create(&p).unwrap();
        let stats = write_capture(scenario, std::io::BufWriter::new(f)).unwrap();
        (p, stats.sip_messages + stats.rtp_packets)
    }

    fn start(&self, config: &str) -> Agent {
        self.start_with_env(config, &[])
    }

    fn start_with_env(&self, config: &str, env: &[(&str, &str)]) -> Agent {
        let path = self.write_config(config);
        // one log per start (a test may restart the agent)
        let starts = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
            .count();
        let log = self.path(&format!("agent-{starts}.log"));
        let child = Command::new(BIN)
            .args(["agent", "-c"])
            .arg(&path)
            .env("CALLVAULT_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start callvault agent");
        let mut agent = Agent {
            child,
            port: self.port,
            log,
        };
        let started = Instant::now();
        while http_get(agent.port, "/healthz").is_none() {
            if let Some(status) = agent.child.try_wait().unwrap() {
                panic!("the agent exited at once ({status}):\n{}", agent.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the agent never answered /healthz:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    /// Re-sends a capture as HEP to the agent; waits for it when `wait`.
    fn hep_send(&self, capture: &Path, speed: f64, key: Option<&str>) -> Child {
        let mut cmd = Command::new(BIN);
        cmd.args(["hep-send", "--to", &format!("127.0.0.1:{}", self.port)])
            .args(["--speed", &speed.to_string()]);
        if let Some(k) = key {
            cmd.args(["--auth-key", k]);
        }
        cmd.arg(capture)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hep-send")
    }

    fn send_all(&self, capture: &Path, speed: f64, key: Option<&str>) {
        let status = self.hep_send(capture, speed, key).wait().unwrap();
        assert!(status.success(), "hep-send failed: {status}");
    }

    /// What `replay` records from `capture` with `config`, in its own spool.
    fn replay(&self, capture: &Path, config: &str, name: &str) -> (PathBuf, Vec<CallRecord>) {
        let cfg = callvault::config::AgentConfig::from_toml(config, "test").unwrap();
        let spool = self.path(name);
        let report = replay::run(ReplayOptions {
            config: cfg,
            spool: spool.clone(),
            public_key: self.public.clone(),
            files: vec![capture.to_owned()],
            progress: false,
        })
        .unwrap();
        (spool, report.recorded)
    }

    fn calls(&self) -> Vec<CallRecord> {
        read_calls(&self.spool())
    }

    /// (left, right) of a call in `spool`.
    fn audio(&self, spool: &Path, rec: &CallRecord) -> (Vec<i16>, Vec<i16>) {
        let json = spool.join("calls").join(format!("{}.json", rec.call_id));
        let call = callvault::export::export_call(&json, &self.key).expect("export");
        let left = call.samples.iter().step_by(2).copied().collect();
        let right = call.samples.iter().skip(1).step_by(2).copied().collect();
        (left, right)
    }
}

fn read_calls(spool: &Path) -> Vec<CallRecord> {
    let Ok(dir) = std::fs::read_dir(spool.join("calls")) else {
        return Vec::new();
    };
    let mut out: Vec<CallRecord> = dir
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
        .collect();
    out.sort_by(|a, b| a.sip_call_ids.cmp(&b.sip_call_ids));
    out
}

struct Agent {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn metrics(&self) -> BTreeMap<String, u64> {
        let (code, body) = http_get(self.port, "/metrics")
            .unwrap_or_else(|| panic!("no /metrics from the agent; its log:\n{}", self.log()));
        assert_eq!(code, 200);
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((
                    k.trim_start_matches("callvault_").to_owned(),
                    v.parse().ok()?,
                ))
            })
            .collect()
    }

    fn metric(&self, name: &str) -> u64 {
        self.metrics().get(name).copied().unwrap_or(0)
    }

    /// Waits (at most `secs`) until `check` holds on the metrics.
    fn wait_for(&self, what: &str, secs: u64, check: impl Fn(&BTreeMap<String, u64>) -> bool) {
        let started = Instant::now();
        loop {
            let m = self.metrics();
            if check(&m) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(secs),
                "waited {secs} s for {what}; metrics: {m:#?}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// SIGTERM, and the exit status (which must come within the shutdown bound).
    fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log();
                assert!(status.success(), "agent exit {status}:\n{log}");
                return log;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the agent did not stop within 30 s of SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lag (±max samples) at which `b` best matches `a`, and the fraction of equal samples
/// over the overlap there.
fn best_match(a: &[i16], b: &[i16], max: i64) -> (i64, f64) {
    let mut best = (0, 0.0);
    for lag in -max..=max {
        let (mut same, mut n) = (0usize, 0usize);
        for (i, &x) in a.iter().enumerate().step_by(7) {
            let j = i as i64 + lag;
            if j < 0 || j as usize >= b.len() {
                continue;
            }
            n += 1;
            same += (x == b[j as usize]) as usize;
        }
        let f = if n > 0 { same as f64 / n as f64 } else { 0.0 };
        if f > best.1 {
            best = (lag, f);
        }
    }
    best
}

/// Audio of `got` is audio of `want` (up to a shift): the samples `got` holds are `want`'s.
fn assert_same_audio(what: &str, want: &[i16], got: &[i16]) {
    let (lag, same) = best_match(want, got, 4000);
    println!(
        "  {what}: {} vs {} samples, lag {lag}, {:.4} equal",
        want.len(),
        got.len(),
        same
    );
    assert!(
        same > 0.97,
        "{what}: only {same:.3} of samples equal at the best lag {lag}"
    );
}

fn one_long_call(seed: u64, talk_ms: u64) -> Scenario {
    Scenario::new(
        seed,
        vec![CallSpec {
            sip_call_id: format!("long-{seed}@synth.callvault"),
            ring_ms: 300,
            talk_ms,
            ..CallSpec::default()
        }],
    )
}

#[test]
fn a_hep_feed_is_recorded_as_replay_records_the_same_capture() {
    let lab = Lab::new("hep");
    let config = lab.config();
    // two calls in scope (Switchboard, Parking), a staff DDI and an internal call
    let scenario = Scenario::contact_centre_mix(4, 3_000, 21);
    let capture = lab.capture("feed.pcap", &scenario);
    let (intruder, intruder_packets) =
        lab.capture_counted("intruder.pcap", &Scenario::contact_centre_mix(4, 1_000, 22));
    let agent = lab.start(&config);
    assert_eq!(http_get(lab.port, "/healthz").unwrap().0, 200);

    lab.send_all(&capture, 1.0, Some(AUTH_KEY));
    // a sender without the key: every packet refused, no call seen
    lab.send_all(&intruder, 8.0, None);
    agent.wait_for(
        "the four calls to end and their segments to be written",
        30,
        |m| {
            m.get("calls_seen_total") == Some(&4)
                && m.get("calls_active") == Some(&0)
                && m.get("segments_written_total") == Some(&2)
                && m.get("drops_total{cause=\"hep_auth\"}") == Some(&intruder_packets)
        },
    );
    let m = agent.metrics();
    assert_eq!(m["calls_recorded_total"], 2, "{m:#?}");
    assert_eq!(
        m["drops_total{cause=\"hep_auth\"}"], intruder_packets,
        "{m:#?}"
    );
    assert_eq!(m["drops_total{cause=\"hep_socket\"}"], 0);
    assert_eq!(m["drops_total{cause=\"hep_queue\"}"], 0);
    assert_eq!(m["drops_total{cause=\"media_queue\"}"], 0);
    assert_eq!(m["rtp_packets_total{route=\"unmatched\"}"], 0);
    agent.stop();

    let live = lab.calls();
    let (replay_spool, replayed) = lab.replay(&capture, &config, "replay-spool");
    let ids = |v: &[CallRecord]| v.iter().map(|r| r.sip_call_ids.clone()).collect::<Vec<_>>();
    let mut replayed = replayed;
    replayed.sort_by(|a, b| a.sip_call_ids.cmp(&b.sip_call_ids));
    assert_eq!(ids(&live), ids(&replayed), "the same calls are recorded");
    for (l, r) in live.iter().zip(&replayed) {
        assert_eq!(l.service, r.service);
        assert_eq!(l.decision, r.decision);
        assert_eq!(l.end_reason, r.end_reason);
        assert!(
            l.audio_ms.abs_diff(r.audio_ms) < 400,
            "{} ms live, {} ms replayed",
            l.audio_ms,
            r.audio_ms
        );
        let (ll, lr) = lab.audio(&lab.spool(), l);
        let (rl, rr) = lab.audio(&replay_spool, r);
        assert_same_audio("caller channel", &rl, &ll);
        assert_same_audio("organisation channel", &rr, &lr);
    }
    // nothing of the out-of-scope calls or the intruder's
    let files = spool_files(&lab.spool());
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".json")).count(),
        2,
        "{files:?}"
    );
}

#[test]
fn sigkill_mid_call_loses_only_the_unsealed_tail_and_the_restart_closes_the_call() {
    let lab = Lab::new("kill");
    let config = lab.config();
    let capture = lab.capture("long.pcap", &one_long_call(41, 20_000));
    let agent = lab.start(&config);
    let mut sender = lab.hep_send(&capture, 1.0, Some(AUTH_KEY));
    agent.wait_for("the call to be recorded", 20, |m| {
        m.get("calls_recording") == Some(&1)
    });
    let recording_from = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    agent.kill();
    let recorded_for = recording_from.elapsed();
    let _ = sender.kill();
    let _ = sender.wait();

    // what the crash left: the journal (no end) and an unfinished segment
    let open = lab.calls();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].ended_at, None, "the journal of a call in progress");
    let files = spool_files(&lab.spool());
    assert!(
        files.iter().any(|f| f.ends_with(".cvseg.partial")),
        "{files:?}"
    );

    let agent = lab.start(&config);
    assert_eq!(agent.metric("recovered_calls_total"), 1);
    agent.stop();
    let closed = lab.calls();
    assert_eq!(closed.len(), 1);
    let rec = &closed[0];
    assert_eq!(rec.end_reason.as_deref(), Some("agent_restart"));
    assert!(rec.ended_at.is_some());
    assert_eq!(rec.segments.len(), 1);
    assert!(!rec.segments[0].complete, "{:?}", rec.segments);
    assert!(
        spool_files(&lab.spool())
            .iter()
            .all(|f| !f.ends_with(".partial"))
    );
    // Lost: the playout delay (0.3 s), the open half-second chunk, and the last drain.
    let (left, right) = lab.audio(&lab.spool(), rec);
    let kept = left.len() as f64 / 8000.0;
    println!(
        "  recorded for {:.2} s before SIGKILL, {kept:.2} s recovered",
        recorded_for.as_secs_f64()
    );
    assert!(
        kept > recorded_for.as_secs_f64() - 2.0,
        "only {kept:.2} s of audio survived {:.2} s of recording",
        recorded_for.as_secs_f64()
    );
    // and it is the call's audio, as replay records it
    let (replay_spool, replayed) = lab.replay(&capture, &config, "replay-spool");
    let (rl, rr) = lab.audio(&replay_spool, &replayed[0]);
    assert_same_audio("caller channel", &left, &rl);
    assert_same_audio("organisation channel", &right, &rr);
}

#[test]
fn sigterm_closes_the_calls_in_progress_with_sealed_segments() {
    let lab = Lab::new("term");
    let config = lab.config();
    let capture = lab.capture("long.pcap", &one_long_call(42, 20_000));
    let agent = lab.start(&config);
    let mut sender = lab.hep_send(&capture, 1.0, Some(AUTH_KEY));
    agent.wait_for("the call to be recorded", 20, |m| {
        m.get("calls_recording") == Some(&1)
    });
    std::thread::sleep(Duration::from_secs(3));
    let log = agent.stop();
    let _ = sender.kill();
    let _ = sender.wait();
    assert!(log.contains("stopped"), "{log}");
    let calls = lab.calls();
    assert_eq!(calls.len(), 1);
    let rec = &calls[0];
    assert_eq!(rec.end_reason.as_deref(), Some("agent_shutdown"));
    assert!(rec.segments.iter().all(|s| s.complete));
    assert!(
        rec.audio_ms >= 2_500,
        "{} ms recorded of 3 s before SIGTERM",
        rec.audio_ms
    );
    assert!(
        spool_files(&lab.spool())
            .iter()
            .all(|f| !f.ends_with(".partial"))
    );
    // a complete segment decrypts without recovery
    let (left, _) = lab.audio(&lab.spool(), rec);
    assert!(left.len() as u64 >= rec.audio_ms * 8 - 800);
}

#[test]
fn sighup_applies_a_new_number_list_to_new_calls_and_keeps_calls_in_progress() {
    let lab = Lab::new("hup");
    let full = lab.config();
    let agent = lab.start(&full);
    // two in-scope calls (Switchboard, Parking) of 6 s in progress when the list changes
    let first = lab.capture("first.pcap", &Scenario::contact_centre_mix(4, 6_000, 31));
    let mut sender = lab.hep_send(&first, 1.0, Some(AUTH_KEY));
    agent.wait_for("both calls to be recorded", 20, |m| {
        m.get("calls_recording") == Some(&2)
    });
    // the contact centre's list no longer has Switchboard or Parking
    lab.write_config(&only_services(&full, &["Housing Advice"]));
    agent.signal(libc::SIGHUP);
    agent.wait_for("the reload", 10, |m| {
        m.get("config_reloads_total{result=\"ok\"}") == Some(&1)
    });
    assert!(sender.wait().unwrap().success());
    agent.wait_for("the first calls to end", 20, |m| {
        m.get("calls_seen_total") == Some(&4) && m.get("calls_active") == Some(&0)
    });
    // new calls to those numbers are not recorded
    let second = lab.capture("second.pcap", &Scenario::contact_centre_mix(4, 1_000, 32));
    lab.send_all(&second, 4.0, Some(AUTH_KEY));
    agent.wait_for("the second calls to end", 20, |m| {
        m.get("calls_seen_total") == Some(&8) && m.get("calls_active") == Some(&0)
    });
    assert_eq!(agent.metric("calls_recorded_total"), 2);
    // a broken file is refused and the running list stays
    lab.write_config(&full.replace("020 8753 4321", "020 8753 43"));
    agent.signal(libc::SIGHUP);
    agent.wait_for("the refused reload", 10, |m| {
        m.get("config_reloads_total{result=\"failed\"}") == Some(&1)
    });
    assert_eq!(http_get(lab.port, "/healthz").unwrap().0, 200);
    let log = agent.stop();
    assert!(log.contains("reload refused"), "{log}");

    let calls = lab.calls();
    assert_eq!(calls.len(), 2, "only the calls of the first list");
    for rec in &calls {
        assert!(
            !matches!(
                rec.end_reason.as_deref(),
                None | Some("agent_shutdown" | "agent_restart")
            ),
            "ended by its own BYE: {:?}",
            rec.end_reason
        );
        assert!(
            rec.audio_ms >= 5_500,
            "a call in progress at the reload was recorded to its end: {} ms",
            rec.audio_ms
        );
    }
    let first_ids: Vec<String> = Scenario::contact_centre_mix(4, 6_000, 31)
        .calls
        .iter()
        .map(|c| c.sip_call_id.clone())
        .collect();
    assert!(calls.iter().all(|r| first_ids.contains(&r.sip_call_ids[0])));
}

/// A small tmpfs at `path`, unmounted on drop (root only).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, mb: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn fill(path: &Path, mb: usize) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0x5au8; 1 << 20];
    for _ in 0..mb {
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
}

#[test]
fn below_the_disk_floor_new_calls_are_refused_calls_in_progress_finish_and_recording_resumes() {
    let lab = Lab::new("disk");
    let Some(_fs) = Tmpfs::mount(&lab.spool(), 64) else {
        return common::parts::skipped("disk floor test", "cannot mount a tmpfs (needs root)");
    };
    let config = set(&lab.config(), "min_free_mb", "32");
    let filler = lab.spool().join("filler");
    fill(&filler, 40);
    let socket_path = lab.path("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let agent = lab.start_with_env(
        &config,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    agent.wait_for("recording to pause", 10, |m| {
        m.get("recording_paused") == Some(&1)
    });
    // paused is not hung: systemd's watchdog keeps being fed, so the agent is not restarted
    let mut buf = [0u8; 256];
    while socket.recv(&mut buf).is_ok() {}
    let mut pings = 0;
    let started = Instant::now();
    while pings < 2 && started.elapsed() < Duration::from_secs(5) {
        if let Ok(n) = socket.recv(&mut buf) {
            pings += String::from_utf8_lossy(&buf[..n])
                .matches("WATCHDOG=1")
                .count();
        }
    }
    assert!(
        pings >= 2,
        "the watchdog must be fed while recording is paused"
    );
    let (code, body) = http_get(lab.port, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("paused"), "{body}");

    let refused = lab.capture("refused.pcap", &Scenario::contact_centre_mix(4, 1_000, 51));
    lab.send_all(&refused, 4.0, Some(AUTH_KEY));
    agent.wait_for("the refused calls to end", 20, |m| {
        m.get("calls_seen_total") == Some(&4) && m.get("calls_active") == Some(&0)
    });
    assert_eq!(agent.metric("recordings_refused_total"), 2);
    assert_eq!(
        agent.metric("calls_recorded_total"),
        0,
        "a refused call is not counted as recorded"
    );
    assert!(
        spool_files(&lab.spool())
            .iter()
            .all(|f| f.ends_with("filler")),
        "nothing written while paused"
    );

    std::fs::remove_file(&filler).unwrap();
    agent.wait_for("recording to resume", 10, |m| {
        m.get("recording_paused") == Some(&0)
    });
    assert_eq!(http_get(lab.port, "/healthz").unwrap().0, 200);
    // a call in progress when the floor is crossed again is recorded to its end
    let long = lab.capture("long.pcap", &one_long_call(52, 6_000));
    let mut sender = lab.hep_send(&long, 1.0, Some(AUTH_KEY));
    agent.wait_for("the call to be recorded", 20, |m| {
        m.get("calls_recording") == Some(&1)
    });
    fill(&filler, 40);
    agent.wait_for("recording to pause again", 10, |m| {
        m.get("recording_paused") == Some(&1)
    });
    assert!(sender.wait().unwrap().success());
    agent.wait_for("the long call to end", 20, |m| {
        m.get("calls_active") == Some(&0)
    });
    agent.stop();
    let calls = lab.calls();
    assert_eq!(
        calls.len(),
        1,
        "only the call that started while there was room"
    );
    assert!(!calls[0].write_failed);
    assert!(
        calls[0].audio_ms >= 5_500,
        "recorded to its end: {} ms",
        calls[0].audio_ms
    );
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping_and_logs_can_be_json() {
    use std::os::unix::net::UnixDatagram;
    let lab = Lab::new("notify");
    let socket_path = lab.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = set(&lab.config(), "log_format", "\"json\"");
    let agent = lab.start_with_env(
        &config,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            // systemd's WatchdogSec=1: the agent pings every half of it
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut heard = String::new();
    let mut buf = [0u8; 512];
    let started = Instant::now();
    while !(heard.contains("READY=1") && heard.matches("WATCHDOG=1").count() >= 3) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "systemd heard only {heard:?}"
        );
        if let Ok(n) = socket.recv(&mut buf) {
            heard.push_str(&String::from_utf8_lossy(&buf[..n]));
            heard.push('\n');
        }
    }
    let log = agent.stop();
    while let Ok(n) = socket.recv(&mut buf) {
        heard.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(heard.contains("STOPPING=1"), "{heard:?}");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 2, "{log}");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
}
