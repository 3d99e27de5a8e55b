//! The lab of the real-SIP-peer tests (tests/sipp.rs, tests/sbc.rs): SIPp processes and
//! tcpdump on a loopback network of the test's own, the signals each endpoint streams, and
//! the checks of a recording against what each endpoint sent and what the capture holds.
#![allow(dead_code)]

pub mod agent;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use callvault::config::AgentConfig;
use callvault::decode::g711;
use callvault::record::CallRecord;
use callvault::replay::{self, ReplayOptions, ReplayReport};
use callvault::vault::{CataloguePrivateKey, generate_keypair_files};

use crate::common;

/// A member of the public, calling from a UK mobile.
pub const CALLER: &str = "+447700900123";
/// The Switchboard: a listed number in `config/agent.toml`.
pub const SWITCHBOARD: &str = "02087483020";
/// A staff member's direct line: a public number that is not listed.
pub const STAFF_DDI: &str = "02087484711";

/// A SIPp process that has not finished after this long is killed and the test fails.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------
// Signals: one per endpoint, deterministic noise, as the raw A-law SIPp streams.

/// Samples in one loop of a signal file (SIPp loops the file): 1 s at 8 kHz, 50 packets.
pub const PERIOD: usize = 8000;
/// Samples per comparison window: 100 ms.
pub const WINDOW: usize = 800;
/// A window is silence below this RMS (the signals are around 4,600).
pub const SILENCE_RMS: f32 = 300.0;
/// A window is a party's audio when it correlates at least this much with its signal.
pub const MIN_CORRELATION: f32 = 0.5;

pub struct Signal {
    pub name: &'static str,
    /// How its windows show in a printed timeline.
    pub mark: char,
    /// What SIPp plays: one period of A-law bytes.
    pub alaw: Vec<u8>,
    /// The decoded period, followed by its first WINDOW samples again (circular lags).
    pub ext: Vec<f32>,
    /// Prefix sums of ext², for the energy under every lag.
    pub energy: Vec<f64>,
}

impl Signal {
    pub fn noise(name: &'static str, mark: char, seed: u64) -> Signal {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let alaw: Vec<u8> = (0..PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let s = ((x >> 48) as i64 % 16_001 - 8_000) as i16;
                g711::linear_to_alaw(s)
            })
            .collect();
        let mut pcm = vec![0i16; PERIOD];
        g711::decode_alaw(&alaw, &mut pcm);
        let ext: Vec<f32> = pcm
            .iter()
            .chain(&pcm[..WINDOW])
            .map(|&s| s as f32)
            .collect();
        let mut energy = Vec::with_capacity(ext.len() + 1);
        energy.push(0.0);
        for &v in &ext {
            energy.push(energy.last().unwrap() + (v as f64) * (v as f64));
        }
        Signal {
            name,
            mark,
            alaw,
            ext,
            energy,
        }
    }

    /// The RMS level of what it sends.
    pub fn rms(&self) -> f64 {
        (self.energy[PERIOD] / PERIOD as f64).sqrt()
    }

    /// The loudest sample it sends.
    pub fn peak(&self) -> u16 {
        self.ext.iter().map(|s| s.abs() as u16).max().unwrap_or(0)
    }

    /// The best normalised cross-correlation of `w` (WINDOW samples, norm `w_norm`) with this
    /// signal over every lag.
    pub fn best_correlation(&self, w: &[f32], w_norm: f64) -> f32 {
        let mut best = f32::MIN;
        for lag in 0..PERIOD {
            let dot = dot(&self.ext[lag..lag + WINDOW], w) as f64;
            let e = self.energy[lag + WINDOW] - self.energy[lag];
            if e > 0.0 {
                best = best.max((dot / (w_norm * e.sqrt())) as f32);
            }
        }
        best
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    acc.iter().sum()
}

/// What one 100 ms window of a channel holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Heard {
    Silence,
    /// Sound that matches no endpoint (best correlation given).
    Unclear(f32),
    Party(&'static str, char),
}

/// Every window of `channel`, matched against the signals of every endpoint of the test;
/// prints the timeline (one character per window: `.` silence, `?` unclear, else the mark
/// of the party heard).
pub fn listen(name: &str, channel: &[i16], signals: &[&Signal]) -> Vec<Heard> {
    let heard: Vec<Heard> = channel
        .chunks_exact(WINDOW)
        .map(|w| {
            let w: Vec<f32> = w.iter().map(|&s| s as f32).collect();
            let e: f64 = w.iter().map(|&v| (v as f64) * (v as f64)).sum();
            if ((e / WINDOW as f64).sqrt() as f32) < SILENCE_RMS {
                return Heard::Silence;
            }
            let (name, mark, c) = signals
                .iter()
                .map(|s| (s.name, s.mark, s.best_correlation(&w, e.sqrt())))
                .fold(("", '?', f32::MIN), |a, b| if b.2 > a.2 { b } else { a });
            if c >= MIN_CORRELATION {
                Heard::Party(name, mark)
            } else {
                Heard::Unclear(c)
            }
        })
        .collect();
    let timeline: String = heard
        .iter()
        .map(|h| match h {
            Heard::Silence => '.',
            Heard::Unclear(_) => '?',
            Heard::Party(_, mark) => *mark,
        })
        .collect();
    let legend: Vec<String> = signals
        .iter()
        .map(|s| format!("{}={}", s.mark, s.name))
        .collect();
    println!("  {name:>5} {timeline}  ({})", legend.join(" "));
    heard
}

/// The parties heard in order, with how many windows each (silence and unclear windows
/// left out).
pub fn runs(heard: &[Heard]) -> Vec<(&'static str, usize)> {
    let mut out: Vec<(&'static str, usize)> = Vec::new();
    for h in heard {
        if let Heard::Party(p, _) = h {
            match out.last_mut() {
                Some((q, n)) if q == p => *n += 1,
                _ => out.push((p, 1)),
            }
        }
    }
    out
}

/// Checks that a channel holds exactly `expected` parties in that order, each for at least
/// `min_windows` windows, and that hardly any sound in it is unaccounted for.
pub fn assert_heard(channel: &str, heard: &[Heard], expected: &[&str], min_windows: usize) {
    let runs = runs(heard);
    let unclear: Vec<f32> = heard
        .iter()
        .filter_map(|h| match h {
            Heard::Unclear(c) => Some(*c),
            _ => None,
        })
        .collect();
    let sound = heard.iter().filter(|h| **h != Heard::Silence).count();
    println!(
        "  {channel}: {} windows of 100 ms, {sound} with sound: heard {runs:?}, {} unclear",
        heard.len(),
        unclear.len()
    );
    let names: Vec<&str> = runs.iter().map(|r| r.0).collect();
    assert_eq!(
        names, expected,
        "{channel}: parties heard in order (windows each: {runs:?})"
    );
    for (p, n) in &runs {
        assert!(
            *n >= min_windows,
            "{channel}: {p} heard in only {n} windows of 100 ms ({runs:?})"
        );
    }
    // windows straddling the start of a stream or a transfer may match nothing
    assert!(
        unclear.len() <= 3 + sound / 20,
        "{channel}: {} of {sound} windows with sound match no endpoint (correlations {unclear:?})",
        unclear.len()
    );
}

// ---------------------------------------------------------------------------------------
// The lab: tcpdump and SIPp processes on one loopback network, killed when it is dropped.

pub fn missing_tools() -> Option<String> {
    use common::parts::{root, tool};
    let install = "apt-get install sip-tester tcpdump; tests/run.sh installs them as root";
    root()
        .and(tool("sipp", install))
        .and(tool("tcpdump", install))
        .err()
}

/// The decrypted recording of `rec` in `spool`, at 8 kHz: (left = caller, right =
/// organisation).
pub fn decrypt_call(
    spool: &Path,
    key: &CataloguePrivateKey,
    rec: &CallRecord,
) -> (Vec<i16>, Vec<i16>) {
    let json = spool.join("calls").join(format!("{}.json", rec.call_id));
    let call = callvault::export::export_call(&json, key).expect("export");
    assert_eq!(call.rate, 8000);
    let left = call.samples.iter().step_by(2).copied().collect();
    let right = call.samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

/// Says that a test did not run and why (fails it under CI: see `common::parts`).
pub fn skipped(what: &str, why: &str) {
    common::parts::skipped(what, why);
}

pub struct Process {
    pub name: String,
    pub dir: PathBuf,
    pub child: Child,
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub net: u8,
    pub tcpdump: Option<Child>,
    pub tcpdump_log: Arc<Mutex<String>>,
    pub processes: Vec<Process>,
}

/// What callvault made of the capture.
pub struct Outcome {
    pub report: ReplayReport,
    pub key: CataloguePrivateKey,
    pub spool: PathBuf,
}

impl Lab {
    /// A lab on 127.0.`net`.0/24, or None (after saying why) when the tools are missing.
    pub fn new(test: &str, net: u8) -> Option<Lab> {
        if let Some(why) = missing_tools() {
            skipped(&format!("sipp test {test}"), &why);
            return None;
        }
        let mut dir = tempfile::Builder::new()
            .prefix(&format!("callvault-sipp-{test}-"))
            .tempdir()
            .unwrap();
        // SIPP_TEST_KEEP=1 keeps the capture, the SIPp logs and the spool for a look
        let keep = std::env::var_os("SIPP_TEST_KEEP").is_some();
        dir.disable_cleanup(keep);
        println!(
            "sipp test {test} on 127.0.{net}.0/24{}",
            if keep {
                format!(", kept in {}", dir.path().display())
            } else {
                String::new()
            }
        );
        Some(Lab {
            dir,
            net,
            tcpdump: None,
            tcpdump_log: Arc::default(),
            processes: Vec::new(),
        })
    }

    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, self.net, host)
    }

    pub fn addr(&self, host: u8, port: u16) -> String {
        format!("{}:{port}", self.ip(host))
    }

    pub fn pcap(&self) -> PathBuf {
        self.dir.path().join("capture.pcap")
    }

    /// Starts tcpdump on the lab's network and returns once it is capturing.
    pub fn capture(&mut self) {
        let mut child = Command::new("tcpdump")
            .args([
                "-i",
                "lo",
                "-U",
                "--immediate-mode",
                // 32 MiB of kernel buffer: parallel tests replaying captures must not make it
                // drop packets while it waits for a core
                "-B",
                "32768",
                "-s",
                "0",
                "-Z",
                "root",
                "-w",
            ])
            .arg(self.pcap())
            .args(["udp", "and", "net", &format!("127.0.{}.0/24", self.net)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        let stderr = child.stderr.take().unwrap();
        self.tcpdump = Some(child);
        let (tx, rx) = mpsc::channel();
        let log = self.tcpdump_log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            panic!(
                "tcpdump did not start capturing:\n{}",
                self.tcpdump_log.lock().unwrap()
            );
        }
    }

    /// Starts a SIPp process `name` at 127.0.net.`host`:`port` with media on `media_port`,
    /// streaming `signal`, running `scenario` (a file in tests/sipp/) with `args` (the
    /// remote address for a client, -s, -d, -set ...). Returns once its SIP socket is bound.
    #[allow(clippy::too_many_arguments)]
    pub fn sipp(
        &mut self,
        name: &str,
        scenario: &str,
        host: u8,
        port: u16,
        media_port: u16,
        signal: &Signal,
        args: &[&str],
    ) {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("send.al"), &signal.alaw).unwrap();
        let scenario_path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(scenario);
        let ip = self.ip(host).to_string();
        let child = Command::new("sipp")
            .args(args)
            .arg("-sf")
            .arg(&scenario_path)
            .args(["-i", &ip, "-p", &port.to_string()])
            .args(["-mi", &ip, "-mp", &media_port.to_string()])
            .args(["-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error"])
            .args(["-trace_msg", "-message_file"])
            .arg(dir.join("messages.log"))
            .args(["-trace_err", "-error_file"])
            .arg(dir.join("errors.log"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("start sipp");
        self.adopt(name, dir, child);
        self.wait_bound(name, self.sock(host, port));
    }

    /// The answering side of a call: `scenario` at 127.0.net.`host`:5060 as extension
    /// `user` (To tag `tag`), media on `media_port`, with `args` (-d, -set ...).
    #[allow(clippy::too_many_arguments)]
    pub fn phone(
        &mut self,
        name: &str,
        scenario: &str,
        host: u8,
        media_port: u16,
        signal: &Signal,
        user: &str,
        tag: &str,
        args: &[&str],
    ) {
        let mut all = vec!["-set", "user", user, "-set", "tag", tag];
        all.extend_from_slice(args);
        self.sipp(name, scenario, host, 5060, media_port, signal, &all);
    }

    /// The calling side: `scenario` at 127.0.net.`host`:5060 as `caller` (From tag `tag`),
    /// media on `media_port`, dialling `number` at the phone on 127.0.net.`to`:5060.
    #[allow(clippy::too_many_arguments)]
    pub fn dial(
        &mut self,
        name: &str,
        scenario: &str,
        host: u8,
        media_port: u16,
        signal: &Signal,
        to: u8,
        number: &str,
        caller: &str,
        tag: &str,
        args: &[&str],
    ) {
        let remote = self.addr(to, 5060);
        let mut all = vec![
            remote.as_str(),
            "-s",
            number,
            "-set",
            "caller",
            caller,
            "-set",
            "tag",
            tag,
        ];
        all.extend_from_slice(args);
        self.sipp(name, scenario, host, 5060, media_port, signal, &all);
    }

    /// The INVITE a transfer's REFER asked for: the caller's phone (CALLER, From tag cl2)
    /// at 127.0.net.`host`:5062 with media on `media_port`, dialling `target` at `remote`
    /// with Referred-By `referred_by` and one more header `extra` (Replaces for an attended
    /// transfer, a Subject otherwise); talks for 3 s and hangs up.
    #[allow(clippy::too_many_arguments)]
    pub fn transferee(
        &mut self,
        host: u8,
        media_port: u16,
        signal: &Signal,
        remote: &str,
        target: &str,
        referred_by: &str,
        extra: (&str, &str),
    ) {
        self.sipp(
            "transferee",
            "transferee.xml",
            host,
            5062,
            media_port,
            signal,
            &[
                remote,
                "-s",
                target,
                "-set",
                "caller",
                CALLER,
                "-set",
                "tag",
                "cl2",
                "-set",
                "referred_by",
                referred_by,
                "-set",
                "extra_header",
                extra.0,
                "-set",
                "extra_value",
                extra.1,
                "-d",
                "3000",
            ],
        );
    }

    /// Waits until SIPp process `name` has sent a message starting with `start` (its
    /// message log shows what it sent: the start line is the second line after "message
    /// sent"; the messages it received later follow in the same block and are not looked at).
    pub fn wait_for_sent(&mut self, name: &str, start: &str) {
        let log = self.process(name).dir.join("messages.log");
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text
                .split("message sent")
                .skip(1)
                .any(|m| m.lines().nth(2).is_some_and(|l| l.starts_with(start)))
            {
                return;
            }
            if started.elapsed() > Duration::from_secs(20) {
                panic!("{name}: never sent {start}{}", self.logs(name));
            }
            if let Some(status) = self.process(name).child.try_wait().unwrap() {
                panic!(
                    "{name}: ended ({status}) before sending {start}{}",
                    self.logs(name)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Makes a process the test started part of the lab: killed when the lab is dropped,
    /// its logs in `dir` shown when something fails.
    pub fn adopt(&mut self, name: &str, dir: PathBuf, child: Child) {
        self.processes.push(Process {
            name: name.to_owned(),
            dir,
            child,
        });
    }

    /// Waits until process `name` has bound UDP socket `at`.
    pub fn wait_bound(&mut self, name: &str, at: SocketAddrV4) {
        let started = Instant::now();
        while !udp_bound(*at.ip(), at.port()) {
            if started.elapsed() > Duration::from_secs(20) {
                panic!("{name}: never bound {at}{}", self.logs(name));
            }
            if let Some(status) = self.process(name).child.try_wait().unwrap() {
                panic!("{name}: exited at once ({status}){}", self.logs(name));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn sock(&self, host: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip(host), port)
    }

    /// Every UDP packet of the capture (after `replay` stopped it), read here independently
    /// of callvault: the ground truth of what each endpoint sent and when.
    pub fn captured(&self) -> Vec<Captured> {
        let data = std::fs::read(self.pcap()).expect("read capture");
        let u32_at = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
        let nanos = match u32_at(0) {
            0xa1b2_c3d4 => false,
            0xa1b2_3c4d => true,
            magic => panic!("tcpdump wrote an unexpected pcap (magic {magic:#x})"),
        };
        assert_eq!(u32_at(20), 1, "link type Ethernet expected");
        let mut out = Vec::new();
        let mut at = 24;
        while at + 16 <= data.len() {
            let sub = u32_at(at + 4) as f64 / if nanos { 1e9 } else { 1e6 };
            let time = u32_at(at) as f64 + sub;
            let len = u32_at(at + 8) as usize;
            let frame = &data[at + 16..(at + 16 + len).min(data.len())];
            at += 16 + len;
            if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
                continue;
            }
            let ip = &frame[14..];
            let udp = &ip[(ip[0] & 0x0f) as usize * 4..];
            let addr = |a: &[u8], p: &[u8]| {
                SocketAddrV4::new(
                    Ipv4Addr::new(a[0], a[1], a[2], a[3]),
                    u16::from_be_bytes([p[0], p[1]]),
                )
            };
            out.push(Captured {
                time,
                src: addr(&ip[12..16], &udp[0..2]),
                payload: udp[8..].to_vec(),
            });
        }
        out
    }

    pub fn process(&mut self, name: &str) -> &mut Process {
        self.processes
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// The tail of a SIPp process's logs, for failure messages.
    pub fn logs(&self, name: &str) -> String {
        let Some(p) = self.processes.iter().find(|p| p.name == name) else {
            return String::new();
        };
        let mut out = String::new();
        for f in [
            "errors.log",
            "stderr.log",
            "messages.log",
            "stdout.log",
            "kamailio.log",
            "rtpengine.log",
        ] {
            if !p.dir.join(f).exists() {
                continue;
            }
            let text = std::fs::read_to_string(p.dir.join(f)).unwrap_or_default();
            let tail: String = {
                let chars: Vec<char> = text.chars().collect();
                chars[chars.len().saturating_sub(4000)..].iter().collect()
            };
            out.push_str(&format!("\n--- {name} {f} (tail) ---\n{tail}"));
        }
        out
    }

    /// Waits for a SIPp process to end (killing it after PROCESS_TIMEOUT); it must succeed.
    pub fn wait(&mut self, name: &str) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.process(name).child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > PROCESS_TIMEOUT {
                let p = self.process(name);
                let _ = p.child.kill();
                let _ = p.child.wait();
                panic!("{name}: sipp did not finish, killed{}", self.logs(name));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "{name}: sipp failed ({status}){}",
            self.logs(name)
        );
    }

    /// Stops the capture (SIGTERM) and replays it through callvault.
    pub fn replay(&mut self) -> Outcome {
        self.stop_capture();
        self.replay_files(vec![self.pcap()], "spool")
    }

    /// Stops the capture (SIGTERM), checking that tcpdump lost nothing.
    pub fn stop_capture(&mut self) {
        // let the last packets (the final 200 OK) reach the capture
        std::thread::sleep(Duration::from_millis(300));
        let mut child = self.tcpdump.take().expect("capture running");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -TERM tcpdump failed");
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tcpdump did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // its statistics are the last lines it writes
        std::thread::sleep(Duration::from_millis(100));
        let log = self.tcpdump_log.lock().unwrap().clone();
        assert!(
            !log.lines()
                .any(|l| l.contains("dropped by kernel") && !l.starts_with("0 ")),
            "tcpdump lost packets:\n{log}"
        );
        println!("  tcpdump: {}", log.trim().replace('\n', "; "));
    }

    /// Replays `files` through callvault with the example configuration, into the spool
    /// `spool` of the lab's directory.
    pub fn replay_files(&self, files: Vec<PathBuf>, spool: &str) -> Outcome {
        let config =
            AgentConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agent.toml"))
                .expect("config/agent.toml");
        let (public, private) =
            generate_keypair_files(&self.dir.path().join(format!("{spool}-keys"))).unwrap();
        let spool = self.dir.path().join(spool);
        let report = replay::run(ReplayOptions {
            config,
            spool: spool.clone(),
            public_key: public,
            files,
            progress: false,
        })
        .expect("replay");
        assert!(report.file_errors.is_empty(), "{:?}", report.file_errors);
        Outcome {
            report,
            key: CataloguePrivateKey::load(&private).unwrap(),
            spool,
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in &mut self.processes {
            if let Ok(None) = p.child.try_wait() {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
        if let Some(mut t) = self.tcpdump.take() {
            let _ = t.kill();
            let _ = t.wait();
        }
    }
}

/// RTP that no SIPp process plays (a media port the PBX moves a call to, the early media of
/// another fork): `signal` as PCMA from `from` to `to`, one 20 ms packet every 20 ms, SSRC
/// `ssrc`, from when it is made until it is stopped or dropped.
pub struct RtpSender {
    pub stop: Arc<AtomicBool>,
    pub thread: Option<JoinHandle<usize>>,
}

impl RtpSender {
    pub fn start(from: SocketAddrV4, to: SocketAddrV4, signal: &Signal, ssrc: u32) -> RtpSender {
        let socket = UdpSocket::bind(from).unwrap_or_else(|e| panic!("bind {from}: {e}"));
        let alaw = signal.alaw.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut sent = 0usize;
            while !flag.load(Ordering::Relaxed) {
                let seq = sent as u16;
                let ts = (sent as u32).wrapping_mul(160);
                let mut packet = vec![0x80, 8];
                packet.extend_from_slice(&seq.to_be_bytes());
                packet.extend_from_slice(&ts.to_be_bytes());
                packet.extend_from_slice(&ssrc.to_be_bytes());
                let at = (sent * 160) % PERIOD;
                packet.extend_from_slice(&alaw[at..at + 160]);
                socket.send_to(&packet, to).expect("send RTP");
                sent += 1;
                let next = started + Duration::from_millis(20 * sent as u64);
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            sent
        });
        RtpSender {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops streaming; returns how many packets were sent.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("RTP sender")
    }
}

impl Drop for RtpSender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether a UDP socket is bound to ip:port (from /proc/net/udp).
pub fn udp_bound(ip: Ipv4Addr, port: u16) -> bool {
    let want = format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip.octets()));
    // the calling thread's view: a test may run in a network namespace of its own
    std::fs::read_to_string("/proc/thread-self/net/udp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

impl Outcome {
    pub fn print(&self) {
        let s = &self.report.summary;
        println!(
            "  callvault: {} calls seen, {} recorded, not recorded by rule {:?}, legs joined \
             {:?}; RTP {} recorded, {} out of scope, {} unmatched",
            s.calls.calls_seen,
            s.calls.calls_recorded,
            s.calls.not_recorded_by_rule,
            s.calls.legs_joined,
            s.routes.rtp_recorded,
            s.routes.rtp_out_of_scope,
            s.routes.rtp_unmatched
        );
        for rec in &self.report.recorded {
            let legs: Vec<(&str, &str, &str)> = rec
                .legs
                .iter()
                .map(|l| {
                    (
                        l.dialled.as_str(),
                        l.joined_by.as_str(),
                        l.sip_call_id.as_str(),
                    )
                })
                .collect();
            println!(
                "  recorded {}: {:?} {:?}, legs {legs:?}, {} ms",
                rec.call_id, rec.service, rec.decision.reason, rec.audio_ms
            );
            for st in &rec.streams {
                println!(
                    "    stream {} {} ssrc {} packets {} lost {} duplicates {} late {} resyncs {} \
                     relay copies {} {}..{}",
                    st.direction,
                    st.codec,
                    st.ssrc,
                    st.packets,
                    st.lost,
                    st.duplicates,
                    st.late,
                    st.resyncs,
                    st.relay_copies,
                    st.first_seen,
                    st.last_seen
                );
            }
        }
    }

    /// The only recorded call.
    pub fn the_call(&self) -> &CallRecord {
        assert_eq!(
            self.report.recorded.len(),
            1,
            "one recorded call expected:\n{}",
            self.report.summary
        );
        &self.report.recorded[0]
    }

    /// The decrypted recording: (left = caller, right = organisation).
    pub fn audio(&self, rec: &CallRecord) -> (Vec<i16>, Vec<i16>) {
        decrypt_call(&self.spool, &self.key, rec)
    }

    /// Nothing at all was written: no metadata, no segment, not even a partial one.
    pub fn assert_spool_empty(&self) {
        let files = common::spool_files(&self.spool);
        assert!(
            files.is_empty(),
            "out-of-scope call left files behind: {files:?}"
        );
    }

    /// No file in the spool holds any of `signals` in the clear, as A-law bytes on the wire
    /// or as 16-bit PCM.
    pub fn assert_no_plaintext(&self, signals: &[&Signal]) {
        let mut needles: Vec<(&str, Vec<u8>)> = Vec::new();
        for s in signals {
            let mut pcm = vec![0i16; PERIOD];
            g711::decode_alaw(&s.alaw, &mut pcm);
            for at in (0..PERIOD - 16).step_by(PERIOD / 8) {
                needles.push((s.name, s.alaw[at..at + 16].to_vec()));
                let bytes = pcm[at..at + 12]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                needles.push((s.name, bytes));
            }
        }
        for f in common::spool_files(&self.spool) {
            let data = std::fs::read(&f).unwrap();
            for (name, n) in &needles {
                assert!(
                    !data.windows(n.len()).any(|w| w == n.as_slice()),
                    "{} holds {name}'s audio in the clear",
                    f.display()
                );
            }
        }
    }
}

/// A loopback capture neither loses, duplicates nor delays packets: every packet callvault
/// counts as a duplicate or as late is audio it dropped. The one exception: when a device
/// restarts the sequence of an SSRC (SIPp does, in every new call), the first packet of the
/// new run is held as "late" until its successor confirms the restart (RFC 3550 probation).
pub fn assert_no_packet_dropped(rec: &CallRecord) {
    for st in &rec.streams {
        assert!(
            st.duplicates == 0 && st.late <= st.resyncs,
            "{} stream (SSRC {}): {} of {} packets dropped as duplicates and {} as late on a \
             loopback capture (every SIPp process sends SSRC 0xCA110000 from sequence 0, so \
             the transferred leg restarts the sequence of an SSRC already seen): {:?}",
            st.direction,
            st.ssrc,
            st.duplicates,
            st.packets,
            st.late,
            rec.streams
        );
    }
}

pub fn joined(rec: &CallRecord) -> Vec<&str> {
    rec.legs.iter().map(|l| l.joined_by.as_str()).collect()
}

// ---------------------------------------------------------------------------------------
// Ground truth from the capture

/// One UDP packet as tcpdump captured it; `time` in seconds since the epoch.
pub struct Captured {
    pub time: f64,
    pub src: SocketAddrV4,
    pub payload: Vec<u8>,
}

/// The SIP messages of the capture: (time, start line).
pub fn sip_messages(cap: &[Captured]) -> Vec<(f64, String)> {
    cap.iter()
        .filter_map(|p| {
            let text = String::from_utf8_lossy(&p.payload);
            let line = text.lines().next()?;
            (line.starts_with("SIP/2.0 ") || line.ends_with(" SIP/2.0"))
                .then(|| (p.time, line.to_owned()))
        })
        .collect()
}

/// When the first SIP message whose start line begins with `start` was captured.
pub fn first_sip(cap: &[Captured], start: &str) -> Option<f64> {
    sip_messages(cap)
        .into_iter()
        .find(|(_, l)| l.starts_with(start))
        .map(|(t, _)| t)
}

/// When each RTP packet (PCMA) sent from `from` was captured.
pub fn rtp_times(cap: &[Captured], from: SocketAddrV4) -> Vec<f64> {
    cap.iter()
        .filter(|p| {
            p.src == from
                && p.payload.len() >= 12
                && p.payload[0] >> 6 == 2
                && p.payload[1] & 0x7f == 8
        })
        .map(|p| p.time)
        .collect()
}

/// The longest pause between two consecutive packets: (last before it, first after it).
pub fn longest_gap(times: &[f64]) -> (f64, f64) {
    times
        .windows(2)
        .map(|w| (w[0], w[1]))
        .fold((0.0, 0.0), |a, b| if b.1 - b.0 > a.1 - a.0 { b } else { a })
}

/// Seconds since the epoch of an RFC 3339 timestamp from call metadata.
pub fn epoch_seconds(rfc3339: &str) -> f64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Where the recording's first sample lies in capture time.
pub fn recording_start(rec: &CallRecord) -> f64 {
    epoch_seconds(&rec.segments.first().expect("a segment").started_at)
}

/// Checks a channel window by window against what `party` sent according to the capture
/// (`sent`: capture times of its RTP packets, 20 ms each; `start`: capture time of the
/// recording's first sample). A window the party streamed all through must be the party; a
/// window with none of its packets within 100 ms either side must be silence; windows at
/// the edges of a stream are not judged (anchoring may shift audio by a packet or two).
pub fn assert_follows_capture(
    channel: &str,
    heard: &[Heard],
    party: &str,
    sent: &[f64],
    start: f64,
) {
    let count = |from: f64, to: f64| sent.iter().filter(|&&t| t >= from && t < to).count();
    let mut wrong = Vec::new();
    let (mut judged_sound, mut judged_silence) = (0, 0);
    for (i, h) in heard.iter().enumerate() {
        let from = start + i as f64 * 0.1;
        if count(from - 0.01, from + 0.1) >= 5 {
            judged_sound += 1;
            if !matches!(h, Heard::Party(p, _) if *p == party) {
                wrong.push((i, "sound of", h));
            }
        } else if count(from - 0.1, from + 0.2) == 0 {
            judged_silence += 1;
            if *h != Heard::Silence {
                wrong.push((i, "silence", h));
            }
        }
    }
    println!(
        "  {channel}: against the capture, {judged_sound} windows of {party} and \
         {judged_silence} of silence judged, {} wrong",
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "{channel}: windows (index, expected, heard) that do not follow what {party} sent: \
         {wrong:?}"
    );
    assert!(judged_sound >= 5, "{channel}: {party} hardly streamed");
}

/// The spool holds exactly the metadata and segment files of `recorded`.
pub fn assert_spool_holds_only(out: &Outcome, recorded: &[&CallRecord]) {
    let mut want: Vec<PathBuf> = Vec::new();
    for rec in recorded {
        want.push(
            out.spool
                .join("calls")
                .join(format!("{}.json", rec.call_id)),
        );
        want.extend(rec.segments.iter().map(|s| out.spool.join(&s.file)));
    }
    want.sort();
    assert_eq!(common::spool_files(&out.spool), want, "files in the spool");
}
