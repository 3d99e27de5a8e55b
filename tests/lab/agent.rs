//! `callvault agent` as a process of the lab: capturing live (AF_PACKET on the loopback
//! interface of a network namespace of the test's own, so that it sees the test's traffic
//! only), its metrics, its spool and what it recorded.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callvault::record::CallRecord;
use callvault::vault::{CataloguePrivateKey, generate_keypair_files};

use super::{Lab, Outcome, decrypt_call, joined, skipped};
use crate::common::http_get;

/// The metrics port of the example configuration (free in the test's own namespace).
const METRICS_PORT: u16 = 9187;

/// Moves the calling thread (and every process it starts from now on) into a network
/// namespace of its own with its loopback up; false (after saying SKIPPED) when it cannot.
pub fn enter_own_network_namespace(what: &str) -> bool {
    // SAFETY: unshare(2) moves this thread into a new network namespace; other threads are
    // not affected.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        skipped(
            what,
            &format!(
                "cannot create a network namespace ({})",
                std::io::Error::last_os_error()
            ),
        );
        return false;
    }
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    assert!(up.is_ok_and(|s| s.success()), "ip link set lo up");
    true
}

pub struct LiveAgent {
    child: Child,
    pub spool: PathBuf,
    key: CataloguePrivateKey,
    log: PathBuf,
}

impl LiveAgent {
    /// Starts the agent with the example configuration capturing `lo` (and listening for
    /// HEP over UDP on `hep_udp`, if given) into a spool of the lab's; returns once it is
    /// healthy.
    pub fn start(lab: &Lab, hep_udp: Option<&str>) -> LiveAgent {
        let dir = lab.dir.path();
        let (public, private) = generate_keypair_files(&dir.join("agent-keys")).unwrap();
        let spool = dir.join("agent-spool");
        let mut config = callvault::config::EXAMPLE_AGENT_TOML
            .replace(
                "spool_dir = \"/var/spool/callvault\"",
                &format!("spool_dir = {spool:?}"),
            )
            .replace(
                "catalogue_public_key = \"/etc/callvault/catalogue.pub\"",
                &format!("catalogue_public_key = {public:?}"),
            )
            .replace("interfaces = []", "interfaces = [\"lo\"]")
            .replace("min_free_mb = 2048", "min_free_mb = 16");
        if let Some(hep) = hep_udp {
            config = config.replace("listen_udp = \"\"", &format!("listen_udp = \"{hep}\""));
        }
        let config_path = dir.join("agent.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join("agent.log");
        let child = Command::new(env!("CARGO_BIN_EXE_callvault"))
            .args(["agent", "-c"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start callvault agent");
        let mut agent = LiveAgent {
            child,
            spool,
            key: CataloguePrivateKey::load(&private).unwrap(),
            log,
        };
        let started = Instant::now();
        while http_get(METRICS_PORT, "/healthz").is_none_or(|(code, _)| code != 200) {
            assert!(
                agent.child.try_wait().unwrap().is_none(),
                "the agent exited:\n{}",
                agent.log()
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its metrics, once they contain `line` (waiting up to 20 s).
    pub fn metrics_once(&self, line: &str) -> String {
        let started = Instant::now();
        loop {
            let (_, m) = http_get(METRICS_PORT, "/metrics").expect("metrics");
            if m.contains(line) {
                return m;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{m}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it with SIGTERM (it must exit cleanly) and returns the calls it recorded.
    pub fn stop(&mut self) -> Vec<CallRecord> {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.pid(), libc::SIGTERM) }, 0);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}\n{}", self.log());
        std::fs::read_dir(self.spool.join("calls"))
            .unwrap()
            .flatten()
            .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
            .collect()
    }

    /// Checks that the agent recorded `rec` as replay recorded `replayed` (in `out`) from
    /// tcpdump's capture of the same traffic: the same Call-IDs, decision, caller, legs, end
    /// and streams, and the same audio sample for sample. Returns the audio.
    pub fn assert_recorded_as_replay(
        &self,
        rec: &CallRecord,
        out: &Outcome,
        replayed: &CallRecord,
    ) -> (Vec<i16>, Vec<i16>) {
        assert_eq!(rec.sip_call_ids, replayed.sip_call_ids);
        assert_eq!(rec.decision, replayed.decision);
        assert_eq!(rec.end_reason, replayed.end_reason);
        assert_eq!(rec.caller, replayed.caller);
        assert_eq!(joined(rec), joined(replayed));
        assert_eq!(
            rec.streams, replayed.streams,
            "the same packets, the same streams"
        );
        let (left, right) = self.audio(rec);
        let (want_left, want_right) = out.audio(replayed);
        println!(
            "  live: {} samples, replay: {} samples",
            left.len(),
            want_left.len()
        );
        assert_eq!(left, want_left, "caller channel sample for sample");
        assert_eq!(right, want_right, "organisation channel sample for sample");
        (left, right)
    }

    /// The decrypted recording of `rec`: (left = caller, right = organisation).
    pub fn audio(&self, rec: &CallRecord) -> (Vec<i16>, Vec<i16>) {
        decrypt_call(&self.spool, &self.key, rec)
    }
}

impl Drop for LiveAgent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every cause in `causes` of `callvault_drops_total` is at 0 in `metrics`.
pub fn assert_no_drops(metrics: &str, causes: &[&str]) {
    for cause in causes {
        let line = format!("callvault_drops_total{{cause=\"{cause}\"}} 0");
        assert!(metrics.contains(&line), "{line}:\n{metrics}");
    }
}
