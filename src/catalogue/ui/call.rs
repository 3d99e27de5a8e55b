//! The call page: metadata, legs, transfers, the waveform, and listening for a stated purpose
//! (the audit record is committed before the grant that plays the audio).

use super::{UserView, length, not_allowed, page};
use crate::catalogue::App;
use crate::catalogue::api::{may_see, open_access};
use crate::catalogue::audit::Entry;
use crate::catalogue::error::fail;
use crate::catalogue::listen::{self, AccessRequest, PURPOSES};
use crate::catalogue::people::{Caller, Role, caller};
use crate::catalogue::signed_in::{Page, SignedIn};
use crate::catalogue::store::rfc3339_ms;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

pub struct LegView {
    pub label: String,
    pub from: String,
    pub to: String,
    pub joined: String,
    pub span: String,
    pub left: f64,
    pub width: f64,
    /// The pauses on this leg, on the same scale.
    pub holds: Vec<HoldView>,
}

/// One SIP message of the ladder, its full text behind a click.
pub struct MessageView {
    pub n: usize,
    /// "+0.002 s" from the first message.
    pub at: String,
    pub from: String,
    pub to: String,
    pub summary: String,
    /// The text as captured (empty: not kept, the call's budget was spent).
    pub text: String,
}

impl MessageView {
    fn of(signals: &[crate::record::SignalRecord]) -> Vec<MessageView> {
        let t0 = signals.first().and_then(|s| rfc3339_ms(&s.at)).unwrap_or(0);
        signals
            .iter()
            .enumerate()
            .map(|(i, s)| MessageView {
                n: i + 1,
                at: format!(
                    "+{:.3} s",
                    (rfc3339_ms(&s.at).unwrap_or(t0) - t0) as f64 / 1000.0
                ),
                from: s.from.clone(),
                to: s.to.clone(),
                summary: s.message.clone(),
                text: s.text.clone(),
            })
            .collect()
    }
}

/// A hold on the timeline: who held, when, and where on the bar.
pub struct HoldView {
    pub text: String,
    pub left: f64,
    pub width: f64,
}

pub struct CallView {
    pub id: String,
    pub service: String,
    pub started: String,
    pub caller: String,
    pub dialled: String,
    pub length: String,
    /// How long it rang before it was answered (None: never answered, or not known).
    pub ringing: Option<String>,
    pub end_reason: String,
    pub reason: String,
    pub expires: String,
    pub held: bool,
    pub restricted: bool,
    pub legs: Vec<LegView>,
    pub segments: Vec<String>,
    pub audio_ms: u64,
    /// Where later legs joined, as fractions of the recording, comma-separated.
    pub marks: String,
    /// The SIP ladder, as SVG.
    pub ladder: Option<String>,
    /// Network quality per direction.
    pub quality: crate::catalogue::quality::Quality,
    /// The ladder's messages with their text.
    pub messages: Vec<MessageView>,
}

pub struct GrantView {
    purpose: String,
    reference: String,
    seq: i64,
    audio: String,
    peaks: String,
}

#[derive(Template)]
#[template(path = "call.html")]
struct CallPage {
    user: Option<UserView>,
    ladder: Option<String>,
    c: CallView,
    grant: Option<GrantView>,
    can_listen: bool,
    dpo: bool,
    purposes: Vec<(&'static str, &'static str)>,
    error: Option<String>,
}

fn joined_words(j: &str) -> &'static str {
    match j {
        "initial" => "direct",
        "refer" => "blind transfer",
        "replaces" => "attended transfer",
        "media_endpoint" => "PBX-made leg",
        "consultation" => "consultation",
        "b2bua" => "other side of the SBC",
        "mid_call" => "joined mid-call",
        _ => "joined",
    }
}

pub(super) async fn call_view(app: &App, id: &str) -> Result<CallView, Response> {
    let record = match app.store.call_document(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err((StatusCode::NOT_FOUND, "no such call").into_response()),
        Err(e) => return Err(fail(e)),
    };
    let (hold, restricted, expires) = match app.store.search_one(id).await {
        Ok(Some(s)) => (s.legal_hold, s.restricted, s.expires_ms),
        Ok(None) => (false, false, 0),
        Err(e) => return Err(fail(e)),
    };
    let ms = |t: &Option<String>| t.as_deref().and_then(rfc3339_ms);
    let start = rfc3339_ms(&record.started_at).unwrap_or(0);
    let end = ms(&record.ended_at).unwrap_or(start).max(start + 1);
    let span = (end - start) as f64;
    let rec_start = record
        .segments
        .first()
        .and_then(|s| rfc3339_ms(&s.started_at))
        .unwrap_or(start);
    let legs: Vec<LegView> = record
        .legs
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let a = rfc3339_ms(&l.started_at).unwrap_or(start);
            let b = ms(&l.ended_at).unwrap_or(end);
            LegView {
                label: format!("Leg {}", i + 1),
                from: l.from.clone(),
                to: l.to.clone(),
                joined: joined_words(&l.joined_by).to_owned(),
                span: format!("{} – {}", app.zone.time_of_day(a), app.zone.time_of_day(b)),
                left: ((a - start) as f64 / span * 100.0).clamp(0.0, 100.0),
                width: ((b - a) as f64 / span * 100.0).clamp(0.5, 100.0),
                holds: l
                    .holds
                    .iter()
                    .map(|h| {
                        let ha = rfc3339_ms(&h.started_at).unwrap_or(a);
                        let hb = ms(&h.ended_at).unwrap_or(b);
                        let who = if h.by == "caller" {
                            "the caller"
                        } else {
                            "the organisation"
                        };
                        HoldView {
                            text: format!(
                                "on hold {} – {} ({}), put on hold by {who}",
                                app.zone.time_of_day(ha),
                                app.zone.time_of_day(hb),
                                length((hb - ha).max(0)),
                            ),
                            left: ((ha - start) as f64 / span * 100.0).clamp(0.0, 100.0),
                            width: ((hb - ha) as f64 / span * 100.0).clamp(0.3, 100.0),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let audio = record.audio_ms.max(1) as f64;
    let marks = record
        .legs
        .iter()
        .skip(1)
        .filter_map(|l| rfc3339_ms(&l.started_at))
        .map(|t| format!("{:.4}", ((t - rec_start) as f64 / audio).clamp(0.0, 1.0)))
        .collect::<Vec<_>>()
        .join(",");
    Ok(CallView {
        id: record.call_id.clone(),
        service: record.service.clone().unwrap_or_default(),
        started: app.zone.when(start),
        caller: record.caller.clone(),
        dialled: record.dialled.clone().unwrap_or_default(),
        length: length(record.audio_ms as i64),
        ringing: ms(&record.answered_at).map(|a| length((a - start).max(0))),
        end_reason: record
            .end_reason
            .clone()
            .unwrap_or_default()
            .replace('_', " "),
        reason: record.decision.reason.clone(),
        expires: app.zone.day(expires),
        held: hold,
        restricted,
        legs,
        segments: record
            .segments
            .iter()
            .map(|s| {
                format!(
                    "#{} from {} for {} at {} Hz{}",
                    s.seq,
                    length(s.offset_ms as i64),
                    length(s.duration_ms as i64),
                    s.sample_rate,
                    if s.complete {
                        ""
                    } else {
                        " (recovered after a crash)"
                    }
                )
            })
            .collect(),
        audio_ms: record.audio_ms,
        marks,
        ladder: crate::catalogue::ladder::svg(&record.signalling),
        quality: crate::catalogue::quality::of(&record.streams),
        messages: MessageView::of(&record.signalling),
    })
}

async fn call_page(
    app: &App,
    who: &Caller,
    id: &str,
    grant: Option<GrantView>,
    error: Option<String>,
) -> Response {
    if !who.role.finds_calls() {
        return not_allowed(who);
    }
    if let Err(r) = may_see(app, who, id).await {
        return r;
    }
    let c = match call_view(app, id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    page(&CallPage {
        user: Some(UserView::of(who)),
        ladder: c.ladder.clone(),
        c,
        grant,
        can_listen: who.role.hears_calls(),
        dpo: who.role == Role::Dpo,
        purposes: PURPOSES.to_vec(),
        error,
    })
}

pub async fn call(
    State(app): State<App>,
    SignedIn(who, _): SignedIn<Page>,
    Path(id): Path<String>,
) -> Response {
    if who.role.finds_calls()
        && may_see(&app, &who, &id).await.is_ok()
        && let Err(e) = app
            .store
            .audit(Entry {
                actor: &who.username,
                action: "view",
                call_id: Some(&id),
                ..Default::default()
            })
            .await
    {
        return fail(e);
    }
    call_page(&app, &who, &id, None, None).await
}

#[derive(Deserialize)]
pub struct ListenForm {
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub reference: String,
}

pub async fn listen(
    State(app): State<App>,
    SignedIn(who, _): SignedIn<Page>,
    Path(id): Path<String>,
    Form(f): Form<ListenForm>,
) -> Response {
    let req = AccessRequest {
        purpose: f.purpose.clone(),
        reference: f.reference.clone(),
    };
    match open_access(&app, &who, &id, &req).await {
        Ok((grant, seq)) => {
            let label = PURPOSES
                .iter()
                .find(|(p, _)| *p == f.purpose)
                .map(|(_, l)| *l)
                .unwrap_or_default();
            let g = GrantView {
                purpose: label.to_owned(),
                reference: f.reference.trim().to_owned(),
                seq,
                audio: format!("/api/v1/calls/{id}/audio?grant={grant}"),
                peaks: format!("/api/v1/calls/{id}/peaks?grant={grant}"),
            };
            call_page(&app, &who, &id, Some(g), None).await
        }
        Err(r) if r.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let mut page = call_page(
                &app,
                &who,
                &id,
                None,
                Some("Choose a purpose and give a reference before listening.".into()),
            )
            .await;
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            page
        }
        Err(r) => r,
    }
}

/// `GET /api/v1/calls/{id}/peaks?grant=`: the waveform's data, under the same grant as the
/// audio.
pub async fn peaks(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let who = match caller(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    // the same checks as the audio's: a call restricted since the grant is not shown
    if let Err(r) = crate::catalogue::api::may_see(&app, &who, &id).await {
        return r;
    }
    let Some(grant) = q.get("grant") else {
        return (StatusCode::FORBIDDEN, "state a purpose first").into_response();
    };
    match listen::grant_valid(&app, &who, &id, grant).await {
        Ok(true) => {}
        Ok(false) => return (StatusCode::FORBIDDEN, "no valid grant").into_response(),
        Err(e) => return fail(e),
    }
    let record = match app.store.call_document(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such call").into_response(),
        Err(e) => return fail(e),
    };
    // 3,600 buckets: a 900-pixel waveform zoomed four times still has one per pixel
    let buckets = q
        .get("buckets")
        .and_then(|b| b.parse::<usize>().ok())
        .unwrap_or(900)
        .clamp(100, 4000);
    match listen::peaks(&app, &record, buckets).await {
        Ok(p) => axum::Json(p).into_response(),
        Err(e) => {
            listen::audit_failure(&app, &who.username, &id, &e).await;
            fail(e)
        }
    }
}
