//! What the agent exposes to monitoring: Prometheus `/metrics` and `/healthz`.
//!
//! Owns the shared status the pipeline thread publishes once a second and the text
//! rendering of it. It never reaches into the pipeline: it reads the last published
//! snapshot and the capture and HEP counters (atomics), so a scrape cannot slow capture.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::af_packet::CaptureStats;
use crate::pipeline::Summary;

/// HEP listener counters.
#[derive(Default, Debug)]
pub struct HepStats {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Packets the pipeline's queue refused.
    pub queue_drops: AtomicU64,
    pub tcp_connections: AtomicU64,
    /// TCP streams closed for carrying something other than HEP v3 frames.
    pub tcp_framing_errors: AtomicU64,
    /// Datagrams the kernel dropped on the HEP UDP socket (receive buffer full).
    pub socket_drops: AtomicU64,
    /// Datagrams larger than a receive slot (cut by the kernel, not used).
    pub truncated: AtomicU64,
}

/// What the pipeline thread publishes.
#[derive(Default, Clone, Debug)]
pub struct Snapshot {
    pub summary: Summary,
    pub active_calls: usize,
    pub recording_calls: usize,
    pub media_queue_drops: u64,
    pub published_at: Option<Instant>,
}

pub struct Status {
    pub started: Instant,
    pub snapshot: Mutex<Snapshot>,
    pub captures: Vec<(String, Arc<CaptureStats>)>,
    pub hep: Arc<HepStats>,
    pub recording_paused: AtomicBool,
    pub spool_bytes: AtomicU64,
    pub spool_free_bytes: AtomicU64,
    /// Call documents in the spool waiting for the catalogue.
    pub outbox_calls: AtomicU64,
    pub shipped_calls: AtomicU64,
    pub rejected_calls: AtomicU64,
    pub ship_failures: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    pub recovered_calls: AtomicU64,
    /// The number list the agent records, as reported to the catalogue, and its version
    /// (bumped by each reload; the outbox reports again when it changes).
    pub scope: Mutex<(u64, Vec<serde_json::Value>)>,
}

impl Status {
    /// A new number list (start, reload): the outbox reports it to the catalogue.
    pub fn set_scope(&self, scope: &crate::policy::ScopeSection) {
        let numbers = scope
            .numbers
            .iter()
            .map(|n| {
                serde_json::json!({
                    "number": n.number,
                    "service": n.service,
                    "retention_days": n.retention_days,
                })
            })
            .collect();
        if let Ok(mut s) = self.scope.lock() {
            *s = (s.0 + 1, numbers);
        }
    }

    pub fn new(captures: Vec<(String, Arc<CaptureStats>)>, hep: Arc<HepStats>) -> Status {
        Status {
            started: Instant::now(),
            snapshot: Mutex::new(Snapshot::default()),
            captures,
            hep,
            recording_paused: AtomicBool::new(false),
            spool_bytes: AtomicU64::new(0),
            spool_free_bytes: AtomicU64::new(0),
            outbox_calls: AtomicU64::new(0),
            shipped_calls: AtomicU64::new(0),
            rejected_calls: AtomicU64::new(0),
            ship_failures: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            recovered_calls: AtomicU64::new(0),
            scope: Mutex::new((0, Vec::new())),
        }
    }

    pub fn publish(&self, snap: Snapshot) {
        if let Ok(mut s) = self.snapshot.lock() {
            *s = snap;
        }
    }

    fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether the pipeline thread published its status in the last 10 s.
    pub fn pipeline_alive(&self) -> bool {
        self.snapshot
            .lock()
            .ok()
            .and_then(|s| s.published_at)
            .is_some_and(|t| t.elapsed() <= Duration::from_secs(10))
    }

    /// `/healthz`: 200 when the pipeline thread is alive and recording is possible, 503
    /// with the reason otherwise.
    pub fn health(&self) -> (bool, String) {
        let snap = self.snapshot();
        if !self.pipeline_alive() {
            return (false, "pipeline thread not responding\n".into());
        }
        if self.recording_paused.load(Ordering::Relaxed) {
            return (
                false,
                "recording paused: spool disk below agent.min_free_mb\n".into(),
            );
        }
        (
            true,
            format!(
                "ok: {} calls active, {} recording\n",
                snap.active_calls, snap.recording_calls
            ),
        )
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let snap = self.snapshot();
        let s = &snap.summary;
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP callvault_{name} {help}");
            let _ = writeln!(out, "# TYPE callvault_{name} {kind}");
            for (labels, v) in samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "callvault_{name} {v}");
                } else {
                    let _ = writeln!(out, "callvault_{name}{{{labels}}} {v}");
                }
            }
        };
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut packets: Vec<(String, u64)> = self
            .captures
            .iter()
            .map(|(n, c)| {
                (
                    format!("source=\"capture\",interface=\"{n}\""),
                    ld(&c.frames),
                )
            })
            .collect();
        packets.push((
            "source=\"hep\",interface=\"\"".into(),
            ld(&self.hep.packets),
        ));
        let packets: Vec<(&str, u64)> = packets.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            "packets_total",
            "counter",
            "Frames captured and HEP packets received.",
            &packets,
        );
        let kernel: u64 = self.captures.iter().map(|(_, c)| ld(&c.kernel_drops)).sum();
        let capture_queue: u64 = self.captures.iter().map(|(_, c)| ld(&c.queue_drops)).sum();
        let n = &s.net;
        let r = &s.routes;
        let m = &s.media;
        metric(
            "drops_total",
            "counter",
            "Packets lost or refused, by cause. Any growth of kernel or *_queue loses audio.",
            &[
                ("cause=\"kernel\"", kernel),
                ("cause=\"capture_queue\"", capture_queue),
                ("cause=\"hep_socket\"", ld(&self.hep.socket_drops)),
                ("cause=\"hep_queue\"", ld(&self.hep.queue_drops)),
                ("cause=\"media_queue\"", snap.media_queue_drops),
                ("cause=\"hep_auth\"", n.hep_auth_failed),
                (
                    "cause=\"hep_malformed\"",
                    n.hep_rejected + ld(&self.hep.truncated),
                ),
                ("cause=\"truncated\"", n.truncated),
                ("cause=\"sip_malformed\"", r.sip_rejected),
                ("cause=\"rtp_malformed\"", m.rtp_malformed),
                ("cause=\"rtp_late\"", m.rtp_late),
                ("cause=\"routes_full\"", r.routes_refused),
            ],
        );
        metric(
            "sip_messages_total",
            "counter",
            "SIP messages parsed.",
            &[("", r.sip_messages)],
        );
        metric(
            "rtp_packets_total",
            "counter",
            "RTP packets by what became of them.",
            &[
                ("route=\"recorded\"", r.rtp_recorded),
                ("route=\"out_of_scope\"", r.rtp_out_of_scope),
                ("route=\"unmatched\"", r.rtp_unmatched),
                ("route=\"after_end\"", r.rtp_after_end),
            ],
        );
        metric(
            "rtp_relay_copies_total",
            "counter",
            "RTP packets of recorded calls seen again on another hop of a media relay (before \
             and after an SBC): the voice is recorded once, the copies are counted.",
            &[("", m.rtp_relay_copies)],
        );
        metric(
            "hep_captured_to_listener_total",
            "counter",
            "HEP packets a capture interface saw on their way to this agent's HEP listener: \
             left to the listener, not recorded twice.",
            &[("", n.hep_to_own_listener)],
        );
        metric(
            "calls_active",
            "gauge",
            "Calls being tracked now.",
            &[("", snap.active_calls as u64)],
        );
        metric(
            "calls_recording",
            "gauge",
            "Calls being recorded now.",
            &[("", snap.recording_calls as u64)],
        );
        metric(
            "calls_seen_total",
            "counter",
            "Calls seen (INVITEs that started a call).",
            &[("", s.calls.calls_seen)],
        );
        metric(
            "calls_recorded_total",
            "counter",
            "Calls decided in scope and recorded.",
            &[("", s.calls.calls_recorded)],
        );
        let by_rule: Vec<(String, u64)> = s
            .calls
            .not_recorded_by_rule
            .iter()
            .map(|(k, v)| (format!("rule=\"{k}\""), *v))
            .collect();
        let by_rule: Vec<(&str, u64)> = by_rule.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            "calls_not_recorded_total",
            "counter",
            "Calls not recorded, by the scope rule that decided it.",
            &by_rule,
        );
        metric(
            "recordings_refused_total",
            "counter",
            "Calls in scope not recorded because recording was paused (disk below its floor).",
            &[("", r.recordings_refused)],
        );
        metric(
            "recording_paused",
            "gauge",
            "1 while new recordings are refused for lack of disk space.",
            &[("", self.recording_paused.load(Ordering::Relaxed) as u64)],
        );
        metric(
            "segments_written_total",
            "counter",
            "Encrypted segments committed to the spool.",
            &[("", m.segments_written)],
        );
        metric(
            "audio_seconds_written_total",
            "counter",
            "Seconds of stereo audio written.",
            &[("", m.audio_ms_written / 1000)],
        );
        metric(
            "write_errors_total",
            "counter",
            "Segment and metadata writes that failed.",
            &[
                ("what=\"segment\"", m.write_errors),
                ("what=\"metadata\"", m.metadata_errors),
            ],
        );
        metric(
            "outbox_depth",
            "gauge",
            "Recorded calls in the spool waiting for the catalogue.",
            &[("", ld(&self.outbox_calls))],
        );
        metric(
            "shipped_calls_total",
            "counter",
            "Recorded calls the catalogue acknowledged, and calls it refused (set aside in rejected/).",
            &[
                ("result=\"acknowledged\"", ld(&self.shipped_calls)),
                ("result=\"rejected\"", ld(&self.rejected_calls)),
            ],
        );
        metric(
            "ship_failures_total",
            "counter",
            "Shipping rounds cut short because the catalogue could not be reached.",
            &[("", ld(&self.ship_failures))],
        );
        metric(
            "spool_bytes",
            "gauge",
            "Bytes of segments and metadata in the spool.",
            &[("", ld(&self.spool_bytes))],
        );
        metric(
            "spool_free_bytes",
            "gauge",
            "Free bytes on the spool's filesystem.",
            &[("", ld(&self.spool_free_bytes))],
        );
        metric(
            "config_reloads_total",
            "counter",
            "SIGHUP reloads of the number lists and policy, by result.",
            &[
                ("result=\"ok\"", ld(&self.reloads)),
                ("result=\"failed\"", ld(&self.reload_failures)),
            ],
        );
        metric(
            "recovered_calls_total",
            "counter",
            "Calls found open at start (left by a crash) and closed with agent_restart.",
            &[("", ld(&self.recovered_calls))],
        );
        metric(
            "uptime_seconds",
            "gauge",
            "Seconds since the agent started.",
            &[("", self.started.elapsed().as_secs())],
        );
        out
    }
}
