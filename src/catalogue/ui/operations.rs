//! The operations page: how each recording server is (its last health report) and the calls
//! being recorded now, for the administrator. No audio and no numbers: which service, since
//! when, how many legs.

use super::{UserView, length, page};
use crate::catalogue::App;
use crate::catalogue::error::fail;
use crate::catalogue::signed_in::{Admin, Allowed, Page};
use crate::catalogue::store::{now_ms, rfc3339_ms};
use crate::record::health::REPORT_EVERY;
use askama::Template;
use axum::extract::State;
use axum::response::Response;

/// Calls listed on the page (the rest are counted).
const LIVE_SHOWN: usize = 500;

#[derive(Template)]
#[template(path = "operations.html")]
struct OperationsPage {
    user: Option<UserView>,
    agents: Vec<AgentHealthView>,
    live: Vec<LiveView>,
    /// Live calls not listed (beyond [`LIVE_SHOWN`]).
    more: usize,
}

struct AgentHealthView {
    name: String,
    /// "recording", "recording paused: …", "not heard from for 12 min", "disabled".
    state: String,
    /// Needs an admin's look.
    alarm: bool,
    last_seen: String,
    version: String,
    numbers: Vec<crate::catalogue::store::ScopeEntry>,
    outbox: String,
    drops: String,
    now: String,
    last_hour: i64,
    spool_free: String,
}

struct LiveView {
    /// When it started (ms), for the order.
    started_ms: i64,
    agent: String,
    service: String,
    started: String,
    so_far: String,
    legs: u32,
    state: &'static str,
}

/// An agent is silent when no report came for this long (two missed reports and some).
fn silent_after_ms() -> i64 {
    REPORT_EVERY.as_millis() as i64 * 3
}

fn ago(ms: i64) -> String {
    match ms / 1000 {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

fn bytes(b: u64) -> String {
    match b {
        b if b >= 10 << 30 => format!("{} GiB", b >> 30),
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b => format!("{} MiB", b >> 20),
    }
}

pub async fn operations(State(app): State<App>, Allowed(who, _): Allowed<Admin, Page>) -> Response {
    let rows = match app.store.list_agents().await {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let now = now_ms();
    let mut agents = Vec::new();
    let mut live = Vec::new();
    for a in rows {
        let Some((h, at)) = a.health else {
            agents.push(AgentHealthView {
                name: a.name,
                state: if a.disabled {
                    "disabled".into()
                } else {
                    "has not reported yet (is it started, with its token?)".into()
                },
                alarm: !a.disabled,
                last_seen: "never".into(),
                version: String::new(),
                numbers: a.numbers,
                outbox: String::new(),
                drops: String::new(),
                now: String::new(),
                last_hour: a.calls_last_hour,
                spool_free: String::new(),
            });
            continue;
        };
        let silent = now - at > silent_after_ms();
        let (state, alarm) = if a.disabled {
            ("disabled: its token is refused".to_owned(), false)
        } else if silent {
            (format!("not heard from since {}", ago(now - at)), true)
        } else if h.recording_paused {
            (
                "recording paused: the spool disk is full (agent.min_free_mb)".to_owned(),
                true,
            )
        } else if let Some(p) = &h.problem {
            (p.clone(), true)
        } else {
            ("recording".to_owned(), false)
        };
        if !silent && !a.disabled {
            live.extend(h.live.iter().map(|c| {
                let started = rfc3339_ms(&c.started);
                LiveView {
                    started_ms: started.unwrap_or(0),
                    agent: a.name.clone(),
                    service: c.service.clone().unwrap_or_default(),
                    started: started.map(|s| app.zone.when(s)).unwrap_or_default(),
                    so_far: started
                        .map(|s| length((now - s).max(0)))
                        .unwrap_or_default(),
                    legs: c.legs,
                    state: if c.answered { "talking" } else { "ringing" },
                }
            }));
        }
        agents.push(AgentHealthView {
            name: a.name,
            state,
            alarm,
            last_seen: format!("{} ({})", app.zone.when(at), ago(now - at)),
            version: h.version,
            numbers: a.numbers,
            outbox: format!("{} waiting, {} refused", h.outbox_calls, h.rejected_calls),
            drops: format!("{} dropped, {} late", h.drops, h.late_packets),
            now: format!(
                "{} followed, {} recorded",
                h.active_calls, h.recording_calls
            ),
            last_hour: a.calls_last_hour,
            spool_free: bytes(h.spool_free_bytes),
        });
    }
    live.sort_by_key(|c| c.started_ms);
    let more = live.len().saturating_sub(LIVE_SHOWN);
    live.truncate(LIVE_SHOWN);
    page(&OperationsPage {
        user: Some(UserView::of(&who)),
        agents,
        live,
        more,
    })
}
