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
    /// The calls being recorded (for the catalogue's operations page).
    pub live: Vec<crate::record::health::LiveCall>,
    pub published_at: Option<Instant>,
}

#[derive(Default)]
pub struct Status {
    pub started: Started,
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

/// When the agent started (its uptime's origin).
pub struct Started(pub Instant);

impl Default for Started {
    fn default() -> Self {
        Started(Instant::now())
    }
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
            captures,
            hep,
            ..Status::default()
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

    /// The report the outbox sends the catalogue (`PUT /api/v1/agent/health`).
    pub fn report(&self) -> crate::record::health::AgentHealth {
        let snap = self.snapshot();
        let (ok, why) = self.health();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let capture: u64 = self
            .captures
            .iter()
            .map(|(_, c)| load(&c.kernel_drops) + load(&c.queue_drops))
            .sum();
        crate::record::health::AgentHealth {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.0.elapsed().as_secs(),
            problem: (!ok).then(|| why.trim().to_owned()),
            recording_paused: self.recording_paused.load(Ordering::Relaxed),
            outbox_calls: load(&self.outbox_calls),
            rejected_calls: load(&self.rejected_calls),
            spool_free_bytes: load(&self.spool_free_bytes),
            drops: capture
                + load(&self.hep.socket_drops)
                + load(&self.hep.queue_drops)
                + snap.media_queue_drops,
            late_packets: snap.summary.media.rtp_late,
            active_calls: snap.active_calls as u64,
            recording_calls: snap.recording_calls as u64,
            live: snap.live,
        }
    }

    /// The Prometheus text exposition: every family of [`FAMILIES`], in order.
    pub fn render(&self) -> String {
        let scrape = Scrape {
            status: self,
            snap: self.snapshot(),
        };
        let mut out = String::with_capacity(4096);
        for family in FAMILIES {
            let _ = writeln!(out, "# HELP callvault_{} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE callvault_{} {}", family.name, family.kind);
            for sample in (family.samples)(&scrape) {
                let _ = write!(out, "callvault_{}", family.name);
                for (i, (label, value)) in sample.labels.iter().enumerate() {
                    let sep = if i == 0 { '{' } else { ',' };
                    let _ = write!(out, "{sep}{label}=\"{}\"", escape_label(value));
                }
                if !sample.labels.is_empty() {
                    out.push('}');
                }
                let _ = writeln!(out, " {}", sample.value);
            }
        }
        out
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped
/// (an interface or a rule name must not end the label or the line).
fn escape_label(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.into()
}

/// What one scrape reads: the status and the pipeline's last snapshot.
struct Scrape<'a> {
    status: &'a Status,
    snap: Snapshot,
}

impl Scrape<'_> {
    fn load(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }
}

/// One line of a family.
struct Sample {
    labels: Vec<(&'static str, String)>,
    value: u64,
}

/// A family with no labels: one sample.
fn one(value: u64) -> Vec<Sample> {
    vec![Sample {
        labels: Vec::new(),
        value,
    }]
}

/// A family with one label: a sample per value of it.
fn by(label: &'static str, values: &[(&str, u64)]) -> Vec<Sample> {
    values
        .iter()
        .map(|(v, value)| Sample {
            labels: vec![(label, (*v).to_owned())],
            value: *value,
        })
        .collect()
}

/// A metric family: name (after `callvault_`), type, help, and how a scrape reads it.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: fn(&Scrape<'_>) -> Vec<Sample>,
}

const COUNTER: &str = "counter";
const GAUGE: &str = "gauge";

/// Every metric the agent exposes, each once.
const FAMILIES: &[Family] = &[
    Family {
        name: "packets_total",
        kind: COUNTER,
        help: "Frames captured and HEP packets received.",
        samples: |s| {
            let mut out: Vec<Sample> = s
                .status
                .captures
                .iter()
                .map(|(name, c)| Sample {
                    labels: vec![("source", "capture".into()), ("interface", name.clone())],
                    value: Scrape::load(&c.frames),
                })
                .collect();
            out.push(Sample {
                labels: vec![("source", "hep".into()), ("interface", String::new())],
                value: Scrape::load(&s.status.hep.packets),
            });
            out
        },
    },
    Family {
        name: "drops_total",
        kind: COUNTER,
        help: "Packets lost or refused, by cause. Any growth of kernel or *_queue loses audio.",
        samples: |s| {
            let st = s.status;
            let sum = &s.snap.summary;
            let (n, r, m) = (&sum.net, &sum.routes, &sum.media);
            let captures = |f: fn(&CaptureStats) -> &AtomicU64| -> u64 {
                st.captures.iter().map(|(_, c)| Scrape::load(f(c))).sum()
            };
            by(
                "cause",
                &[
                    ("kernel", captures(|c| &c.kernel_drops)),
                    ("capture_queue", captures(|c| &c.queue_drops)),
                    ("hep_socket", Scrape::load(&st.hep.socket_drops)),
                    ("hep_queue", Scrape::load(&st.hep.queue_drops)),
                    ("media_queue", s.snap.media_queue_drops),
                    ("hep_auth", n.hep_auth_failed),
                    (
                        "hep_malformed",
                        n.hep_rejected + Scrape::load(&st.hep.truncated),
                    ),
                    ("truncated", n.truncated),
                    ("sip_malformed", r.sip_rejected),
                    ("rtp_malformed", m.rtp_malformed),
                    ("rtp_late", m.rtp_late),
                    ("routes_full", r.routes_refused),
                ],
            )
        },
    },
    Family {
        name: "sip_messages_total",
        kind: COUNTER,
        help: "SIP messages parsed.",
        samples: |s| one(s.snap.summary.routes.sip_messages),
    },
    Family {
        name: "rtp_packets_total",
        kind: COUNTER,
        help: "RTP packets by what became of them.",
        samples: |s| {
            let r = &s.snap.summary.routes;
            by(
                "route",
                &[
                    ("recorded", r.rtp_recorded),
                    ("out_of_scope", r.rtp_out_of_scope),
                    ("unmatched", r.rtp_unmatched),
                    ("after_end", r.rtp_after_end),
                ],
            )
        },
    },
    Family {
        name: "rtp_relay_copies_total",
        kind: COUNTER,
        help: "RTP packets of recorded calls seen again on another hop of a media relay (before \
               and after an SBC): the voice is recorded once, the copies are counted.",
        samples: |s| one(s.snap.summary.media.rtp_relay_copies),
    },
    Family {
        name: "hep_captured_to_listener_total",
        kind: COUNTER,
        help: "HEP packets a capture interface saw on their way to this agent's HEP listener: \
               left to the listener, not recorded twice.",
        samples: |s| one(s.snap.summary.net.hep_to_own_listener),
    },
    Family {
        name: "calls_active",
        kind: GAUGE,
        help: "Calls being tracked now.",
        samples: |s| one(s.snap.active_calls as u64),
    },
    Family {
        name: "calls_recording",
        kind: GAUGE,
        help: "Calls being recorded now.",
        samples: |s| one(s.snap.recording_calls as u64),
    },
    Family {
        name: "calls_seen_total",
        kind: COUNTER,
        help: "Calls seen (INVITEs that started a call).",
        samples: |s| one(s.snap.summary.calls.calls_seen),
    },
    Family {
        name: "calls_recorded_total",
        kind: COUNTER,
        help: "Calls decided in scope and recorded.",
        samples: |s| one(s.snap.summary.calls.calls_recorded),
    },
    Family {
        name: "calls_not_recorded_total",
        kind: COUNTER,
        help: "Calls not recorded, by the scope rule that decided it.",
        samples: |s| {
            s.snap
                .summary
                .calls
                .not_recorded_by_rule
                .iter()
                .map(|(rule, v)| Sample {
                    labels: vec![("rule", rule.to_string())],
                    value: *v,
                })
                .collect()
        },
    },
    Family {
        name: "recordings_refused_total",
        kind: COUNTER,
        help: "Calls in scope not recorded because recording was paused (disk below its floor).",
        samples: |s| one(s.snap.summary.routes.recordings_refused),
    },
    Family {
        name: "recording_paused",
        kind: GAUGE,
        help: "1 while new recordings are refused for lack of disk space.",
        samples: |s| one(s.status.recording_paused.load(Ordering::Relaxed) as u64),
    },
    Family {
        name: "segments_written_total",
        kind: COUNTER,
        help: "Encrypted segments committed to the spool.",
        samples: |s| one(s.snap.summary.media.segments_written),
    },
    Family {
        name: "audio_seconds_written_total",
        kind: COUNTER,
        help: "Seconds of stereo audio written.",
        samples: |s| one(s.snap.summary.media.audio_ms_written / 1000),
    },
    Family {
        name: "write_errors_total",
        kind: COUNTER,
        help: "Segment and metadata writes that failed.",
        samples: |s| {
            let m = &s.snap.summary.media;
            by(
                "what",
                &[("segment", m.write_errors), ("metadata", m.metadata_errors)],
            )
        },
    },
    Family {
        name: "outbox_depth",
        kind: GAUGE,
        help: "Recorded calls in the spool waiting for the catalogue.",
        samples: |s| one(Scrape::load(&s.status.outbox_calls)),
    },
    Family {
        name: "shipped_calls_total",
        kind: COUNTER,
        help: "Recorded calls the catalogue acknowledged, and calls it refused (set aside in \
               rejected/).",
        samples: |s| {
            by(
                "result",
                &[
                    ("acknowledged", Scrape::load(&s.status.shipped_calls)),
                    ("rejected", Scrape::load(&s.status.rejected_calls)),
                ],
            )
        },
    },
    Family {
        name: "ship_failures_total",
        kind: COUNTER,
        help: "Shipping rounds cut short because the catalogue could not be reached.",
        samples: |s| one(Scrape::load(&s.status.ship_failures)),
    },
    Family {
        name: "spool_bytes",
        kind: GAUGE,
        help: "Bytes of segments and metadata in the spool.",
        samples: |s| one(Scrape::load(&s.status.spool_bytes)),
    },
    Family {
        name: "spool_free_bytes",
        kind: GAUGE,
        help: "Free bytes on the spool's filesystem.",
        samples: |s| one(Scrape::load(&s.status.spool_free_bytes)),
    },
    Family {
        name: "config_reloads_total",
        kind: COUNTER,
        help: "SIGHUP reloads of the number lists and policy, by result.",
        samples: |s| {
            by(
                "result",
                &[
                    ("ok", Scrape::load(&s.status.reloads)),
                    ("failed", Scrape::load(&s.status.reload_failures)),
                ],
            )
        },
    },
    Family {
        name: "recovered_calls_total",
        kind: COUNTER,
        help: "Calls found open at start (left by a crash) and closed with agent_restart.",
        samples: |s| one(Scrape::load(&s.status.recovered_calls)),
    },
    Family {
        name: "uptime_seconds",
        kind: GAUGE,
        help: "Seconds since the agent started.",
        samples: |s| one(s.status.started.0.elapsed().as_secs()),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Each family once, with its HELP and TYPE, and label values that cannot break out of
    /// their quotes or their line.
    #[test]
    fn the_exposition_lists_each_family_once_and_escapes_label_values() {
        let capture = Arc::new(CaptureStats::default());
        capture.frames.store(7, Ordering::Relaxed);
        let status = Status::new(
            vec![("mirror\"0\\\nx".into(), capture)],
            Arc::new(HepStats::default()),
        );
        status.shipped_calls.store(3, Ordering::Relaxed);
        let text = status.render();
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len(), "a family is listed twice");
        for f in FAMILIES {
            assert_eq!(
                text.matches(&format!("# TYPE callvault_{} ", f.name))
                    .count(),
                1,
                "{}",
                f.name
            );
        }
        assert!(
            text.contains(
                "callvault_packets_total{source=\"capture\",interface=\"mirror\\\"0\\\\\\nx\"} 7\n"
            ),
            "{text}"
        );
        assert!(text.contains("callvault_shipped_calls_total{result=\"acknowledged\"} 3\n"));
        // every line is a comment or `name[{labels}] value`
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }
}
