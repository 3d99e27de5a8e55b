//! The managers' web UI: server-rendered pages (askama templates in `templates/`, a little
//! JavaScript for the waveform), over the same store, roles and audit as the API.
//!
//! Owns the HTML pages and forms. Personal data never goes into a URL: searches are POSTed
//! (a caller's number stays out of history, proxies and server logs), and pages are
//! addressed by ids only. It decides nothing about access itself: it calls the same checks
//! and writes the same audit records as the API.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::App;
use super::api::{may_see, open_access};
use super::audit::{AuditQuery, Entry};
use super::error::fail;
use super::listen::{self, AccessRequest, PURPOSES};
use super::people::{Caller, Role, UserError, caller, presented_token};
use super::search::{CallQuery, SearchResult};
use super::store::rfc3339_ms;
use crate::time::Timestamp;

/// The signed-in user as the page header shows them.
pub struct UserView {
    pub name: String,
    pub role: &'static str,
    pub finds: bool,
    pub audits: bool,
    pub staff: bool,
    pub dpo: bool,
    pub admin: bool,
}

impl UserView {
    fn of(c: &Caller) -> UserView {
        UserView {
            name: c.username.clone(),
            role: c.role.as_str(),
            finds: c.role.finds_calls(),
            audits: c.role.reads_audit(),
            staff: c.role == Role::Staff,
            dpo: c.role == Role::Dpo,
            admin: c.role == Role::Admin,
        }
    }
}

fn page(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => {
            let mut r = Html(html).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut().insert(
                header::HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static(
                    "default-src 'self'; media-src 'self'; object-src 'none'; frame-ancestors 'none'",
                ),
            );
            r
        }
        Err(e) => fail(format!("rendering a page: {e}")),
    }
}

/// The signed-in caller, or a redirect to the sign-in page.
async fn signed_in(app: &App, headers: &HeaderMap) -> Result<Caller, Response> {
    caller(&app.store, headers)
        .await
        .map_err(|_| Redirect::to("/login").into_response())
}

fn not_allowed(user: &Caller) -> Response {
    let mut r = page(&Message {
        user: Some(UserView::of(user)),
        title: "Not allowed",
        text: "Your role does not give access to this page.",
    });
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

#[derive(Template)]
#[template(
    source = "{% extends \"base.html\" %}{% block content %}<h1>{{ title }}</h1><p>{{ text }}</p>{% endblock %}",
    ext = "html"
)]
struct Message<'a> {
    user: Option<UserView>,
    title: &'a str,
    text: &'a str,
}

pub async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css")],
        include_str!("../../static/style.css"),
    )
        .into_response()
}

pub async fn wave_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript")],
        include_str!("../../static/wave.js"),
    )
        .into_response()
}

pub async fn home(State(app): State<App>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers).await {
        Ok(c) if c.role.finds_calls() => Redirect::to("/search").into_response(),
        Ok(c) if matches!(c.role, Role::Auditor | Role::Staff) => {
            Redirect::to("/audit").into_response()
        }
        Ok(c) if c.role == Role::Admin => Redirect::to("/admin").into_response(),
        Ok(c) => page(&Message {
            user: Some(UserView::of(&c)),
            title: "Signed in",
            text: "There is nothing for your role here.",
        }),
        Err(r) => r,
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    user: Option<UserView>,
    error: Option<String>,
}

pub async fn login_form() -> Response {
    page(&LoginPage {
        user: None,
        error: None,
    })
}

pub async fn login(State(app): State<App>, Form(f): Form<super::api::Login>) -> Response {
    match super::api::sign_in(&app, &f).await {
        Ok(Some((_, cookie))) => {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        Ok(None) => {
            let mut r = page(&LoginPage {
                user: None,
                error: Some("Wrong user name or password.".into()),
            });
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        Err(r) => r,
    }
}

pub async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Ok(who) = caller(&app.store, &headers).await {
        if let Some(t) = presented_token(&headers) {
            let _ = app.store.close_session(&t).await;
        }
        let _ = app
            .store
            .audit(Entry {
                actor: &who.username,
                action: "logout",
                ..Default::default()
            })
            .await;
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cv_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

/// The search form as typed (dates as YYYY-MM-DD).
#[derive(Deserialize, Default, Clone)]
pub struct SearchForm {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub caller: String,
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub party: String,
    #[serde(default)]
    pub sip_call_id: String,
    #[serde(default)]
    pub page: Option<i64>,
}

pub struct Row {
    id: String,
    started: String,
    service: String,
    caller: String,
    length: String,
    expires: String,
    held: bool,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    user: Option<UserView>,
    scope: String,
    q: SearchForm,
    result: Option<SearchResult>,
    rows: Vec<Row>,
    pages: i64,
}

fn when(ms: i64) -> String {
    let t = Timestamp::from_millis(ms.max(0) as u64).rfc3339();
    // 2026-11-22T19:22:01.123Z -> 2026-11-22 19:22
    t.get(..16).unwrap_or(&t).replace('T', " ")
}

fn length(ms: i64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

fn day_ms(d: &str) -> Option<String> {
    let d = d.trim();
    (!d.is_empty())
        .then(|| rfc3339_ms(&format!("{d}T00:00:00Z")))
        .flatten()
        .map(|ms| ms.to_string())
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

pub async fn search_form(State(app): State<App>, headers: HeaderMap) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !who.role.finds_calls() {
        return not_allowed(&who);
    }
    page(&SearchPage {
        scope: who.services.join(", "),
        user: Some(UserView::of(&who)),
        q: SearchForm::default(),
        result: None,
        rows: Vec::new(),
        pages: 0,
    })
}

pub async fn search(
    State(app): State<App>,
    headers: HeaderMap,
    Form(f): Form<SearchForm>,
) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !who.role.finds_calls() {
        return not_allowed(&who);
    }
    let q = CallQuery {
        from: day_ms(&f.from),
        to: day_ms(&f.to),
        caller: opt(&f.caller),
        service: opt(&f.service),
        party: opt(&f.party),
        sip_call_id: opt(&f.sip_call_id),
        page: f.page,
        page_size: Some(25),
        ..Default::default()
    };
    let result = match app.store.audited_search(&who, &q).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let rows = result
        .calls
        .iter()
        .map(|c| Row {
            id: c.call_id.clone(),
            started: when(c.started_ms),
            service: c.service.clone().unwrap_or_default(),
            caller: c.caller.clone(),
            length: length(c.duration_ms),
            expires: when(c.expires_ms).get(..10).unwrap_or_default().to_owned(),
            held: c.legal_hold,
        })
        .collect();
    let pages = (result.total + result.page_size - 1) / result.page_size;
    page(&SearchPage {
        scope: if who.role == Role::Manager {
            who.services.join(", ")
        } else {
            String::new()
        },
        user: Some(UserView::of(&who)),
        q: f,
        result: Some(result),
        rows,
        pages,
    })
}

pub struct LegView {
    label: String,
    from: String,
    to: String,
    joined: String,
    span: String,
    left: f64,
    width: f64,
}

pub struct CallView {
    id: String,
    service: String,
    started: String,
    caller: String,
    dialled: String,
    length: String,
    end_reason: String,
    reason: String,
    expires: String,
    held: bool,
    restricted: bool,
    legs: Vec<LegView>,
    segments: Vec<String>,
    audio_ms: u64,
    /// Where later legs joined, as fractions of the recording, comma-separated.
    marks: String,
    /// The SIP ladder, as SVG.
    ladder: Option<String>,
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

async fn call_view(app: &App, id: &str) -> Result<CallView, Response> {
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
                span: format!(
                    "{} – {}",
                    when(a).get(11..).unwrap_or_default(),
                    when(b).get(11..).unwrap_or_default()
                ),
                left: ((a - start) as f64 / span * 100.0).clamp(0.0, 100.0),
                width: ((b - a) as f64 / span * 100.0).clamp(0.5, 100.0),
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
        started: when(start),
        caller: record.caller.clone(),
        dialled: record.dialled.clone().unwrap_or_default(),
        length: length(record.audio_ms as i64),
        end_reason: record
            .end_reason
            .clone()
            .unwrap_or_default()
            .replace('_', " "),
        reason: record.decision.reason.clone(),
        expires: when(expires).get(..10).unwrap_or_default().to_owned(),
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
        ladder: super::ladder::svg(&record.signalling),
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

pub async fn call(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
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
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ListenForm>,
) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
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
    let who = match caller(&app.store, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
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
    match listen::peaks(&app, &record, 900).await {
        Ok(p) => axum::Json(p).into_response(),
        Err(e) => fail(e),
    }
}

pub struct AuditRow {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    call: String,
    purpose: String,
    reference: String,
}

#[derive(Deserialize, Default)]
pub struct AuditFilter {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub call_id: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// The actions the audit log records, for the filter.
const ACTIONS: &[&str] = &[
    "login",
    "login_failed",
    "logout",
    "search",
    "view",
    "retrieve",
    "token_created",
    "user_add",
    "hold_on",
    "hold_off",
    "restrict_on",
    "restrict_off",
    "erase",
    "purge",
    "subject_access_export",
    "training_consent",
    "training_consent_withdrawn",
    "training_export",
];

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    user: Option<UserView>,
    f: AuditFilter,
    actions: &'static [&'static str],
    staff: bool,
    verified: Option<(bool, String)>,
    records: Vec<AuditRow>,
}

pub async fn audit(
    State(app): State<App>,
    headers: HeaderMap,
    Query(f): Query<AuditFilter>,
) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut q = AuditQuery {
        limit: 200,
        actor: opt(&f.actor),
        action: opt(&f.action),
        call_id: opt(&f.call_id),
        from_ms: day_ms(&f.from).and_then(|v| v.parse().ok()),
        to_ms: day_ms(&f.to).and_then(|v| v.parse().ok()),
        ..Default::default()
    };
    let verified = match who.role {
        Role::Auditor => match app.store.audit_verify().await {
            Ok(v) => Some(match v.first_broken {
                None => (
                    true,
                    format!("Hash chain verified: {} records intact.", v.records),
                ),
                Some((seq, why)) => (false, format!("Hash chain BROKEN at record {seq}: {why}.")),
            }),
            Err(e) => return fail(e),
        },
        Role::Staff => match &who.extension {
            Some(ext) => {
                q = AuditQuery {
                    limit: 200,
                    party: Some(ext.clone()),
                    action: Some("retrieve".into()),
                    ..Default::default()
                };
                None
            }
            None => return not_allowed(&who),
        },
        _ => return not_allowed(&who),
    };
    let records = match app.store.audit_list(&q).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    page(&AuditPage {
        user: Some(UserView::of(&who)),
        f,
        actions: ACTIONS,
        staff: who.role == Role::Staff,
        verified,
        records: records
            .into_iter()
            .map(|r| AuditRow {
                seq: r.seq,
                at: when(r.at_ms),
                actor: r.actor,
                action: r.action.replace('_', " "),
                call: r.call_id.unwrap_or_default(),
                purpose: r.purpose.unwrap_or_default(),
                reference: r.reference.unwrap_or_default(),
            })
            .collect(),
    })
}

// The DPO's pages: actions on a call, subject access and training agreements.

#[derive(Deserialize)]
pub struct SwitchForm {
    pub on: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub confirm: String,
    #[serde(default)]
    pub reference: String,
}

/// After a DPO action: back to the call page when it worked, the reason when it did not.
fn after(who: &Caller, r: Response, back: String) -> Response {
    if r.status().is_success() {
        return Redirect::to(&back).into_response();
    }
    let status = r.status();
    let mut m = page(&Message {
        user: Some(UserView::of(who)),
        title: "Not done",
        text: match status {
            StatusCode::FORBIDDEN => "Your role may not do this.",
            StatusCode::NOT_FOUND => "There is no such call.",
            StatusCode::CONFLICT => "No member of staff on this call has agreed to training use.",
            StatusCode::UNPROCESSABLE_ENTITY => "Give the reason or reference the form asks for.",
            _ => "Something went wrong; nothing was changed.",
        },
    });
    *m.status_mut() = status;
    m
}

async fn flag_form(
    app: App,
    headers: HeaderMap,
    id: String,
    f: SwitchForm,
    hold: bool,
) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let s = super::rights::Switch {
        on: f.on == "1",
        reason: f.reason,
    };
    let r = super::rights::flag_as(&app, &who, &id, &s, hold).await;
    after(&who, r, format!("/calls/{id}"))
}

pub async fn hold(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<SwitchForm>,
) -> Response {
    flag_form(app, headers, id, f, true).await
}

pub async fn restrict(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<SwitchForm>,
) -> Response {
    flag_form(app, headers, id, f, false).await
}

pub async fn erase(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if f.confirm != "yes" {
        return after(
            &who,
            StatusCode::UNPROCESSABLE_ENTITY.into_response(),
            String::new(),
        );
    }
    let r = super::rights::erase_as(&app, &who, &id, &f.reason).await;
    after(&who, r, "/search".into())
}

pub async fn training(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let t = super::rights::TrainingExport {
        reference: f.reference,
        silence: Vec::new(),
    };
    let r = super::rights::training_export_as(&app, &who, &id, &t).await;
    if r.status().is_success() {
        r
    } else {
        after(&who, r, String::new())
    }
}

#[derive(Template)]
#[template(path = "dpo.html")]
struct DpoPage {
    user: Option<UserView>,
    message: Option<String>,
}

pub async fn dpo(State(app): State<App>, headers: HeaderMap) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if who.role != Role::Dpo {
        return not_allowed(&who);
    }
    page(&DpoPage {
        user: Some(UserView::of(&who)),
        message: None,
    })
}

#[derive(Deserialize)]
pub struct SubjectAccessForm {
    pub caller: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    pub reference: String,
}

pub async fn subject_access(
    State(app): State<App>,
    headers: HeaderMap,
    Form(f): Form<SubjectAccessForm>,
) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = super::rights::SubjectAccess {
        caller: f.caller,
        from: day_ms(&f.from),
        to: day_ms(&f.to),
        reference: f.reference,
    };
    let r = super::rights::subject_access_as(&app, &who, &q).await;
    if r.status().is_success() {
        r
    } else {
        after(&who, r, String::new())
    }
}

#[derive(Deserialize)]
pub struct ConsentForm {
    pub party: String,
    pub agreed: String,
}

pub async fn consent(
    State(app): State<App>,
    headers: HeaderMap,
    Form(f): Form<ConsentForm>,
) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let agreed = f.agreed == "yes";
    let c = super::rights::Consent {
        party: f.party.clone(),
        agreed,
    };
    let r = super::rights::consent_as(&app, &who, &c).await;
    if !r.status().is_success() {
        return after(&who, r, String::new());
    }
    page(&DpoPage {
        user: Some(UserView::of(&who)),
        message: Some(format!(
            "Recorded: extension {} has {} training use.",
            f.party.trim(),
            if agreed {
                "agreed to"
            } else {
                "withdrawn from"
            }
        )),
    })
}

// The admin's pages: signalling of a call (no caller number, no audio), users, agents.

#[derive(Template)]
#[template(path = "signalling.html")]
struct SignallingPage {
    user: Option<UserView>,
    sip_call_id: String,
    call: Option<CallView>,
}

#[derive(Deserialize, Default)]
pub struct SignallingQuery {
    #[serde(default)]
    pub sip_call_id: String,
}

pub async fn signalling(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<SignallingQuery>,
) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if who.role != Role::Admin {
        return not_allowed(&who);
    }
    let sip = q.sip_call_id.trim().to_owned();
    let mut call = None;
    if !sip.is_empty() {
        let dpo_view = Caller {
            username: who.username.clone(),
            role: Role::Dpo,
            services: Vec::new(),
            extension: None,
        };
        let found = match app
            .store
            .search(
                &dpo_view,
                &CallQuery {
                    sip_call_id: Some(sip.clone()),
                    page_size: Some(1),
                    ..Default::default()
                },
            )
            .await
        {
            Ok(r) => r.calls.into_iter().next(),
            Err(e) => return fail(e),
        };
        if let Some(found) = found {
            if let Err(e) = app
                .store
                .audit(Entry {
                    actor: &who.username,
                    action: "view_signalling",
                    call_id: Some(&found.call_id),
                    ..Default::default()
                })
                .await
            {
                return fail(e);
            }
            match call_view(&app, &found.call_id).await {
                // the admin sees how the call was handled, not who called
                Ok(mut c) => {
                    c.caller = String::new();
                    call = Some(c);
                }
                Err(r) => return r,
            }
        }
    }
    page(&SignallingPage {
        user: Some(UserView::of(&who)),
        sip_call_id: sip,
        call,
    })
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    user: Option<UserView>,
    users: Vec<(String, String, String, String)>,
    agents: Vec<super::store::AgentRow>,
    message: Option<String>,
    /// A new agent's token, shown once.
    token: Option<(String, String)>,
}

async fn admin_page(app: &App, who: &Caller, message: Option<String>) -> Response {
    admin_page_with(app, who, message, None).await
}

async fn admin_page_with(
    app: &App,
    who: &Caller,
    message: Option<String>,
    token: Option<(String, String)>,
) -> Response {
    let users = match app.store.list_users().await {
        Ok(u) => u
            .iter()
            .map(|u| {
                let s = |k: &str| u[k].as_str().unwrap_or_default().to_owned();
                (s("username"), s("role"), s("services"), s("extension"))
            })
            .collect(),
        Err(e) => return fail(e),
    };
    let agents = match app.store.list_agents().await {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    page(&AdminPage {
        user: Some(UserView::of(who)),
        users,
        agents,
        message,
        token,
    })
}

pub async fn admin(State(app): State<App>, headers: HeaderMap) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !who.role.manages_people() {
        return not_allowed(&who);
    }
    admin_page(&app, &who, None).await
}

#[derive(Deserialize)]
pub struct NewUserForm {
    pub username: String,
    pub password: String,
    pub role: String,
    #[serde(default)]
    pub services: String,
    #[serde(default)]
    pub extension: String,
}

pub async fn add_user(
    State(app): State<App>,
    headers: HeaderMap,
    Form(f): Form<NewUserForm>,
) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !who.role.manages_people() {
        return not_allowed(&who);
    }
    let Some(role) = Role::parse(&f.role) else {
        return admin_page(&app, &who, Some("Unknown role.".into())).await;
    };
    let services: Vec<String> = f
        .services
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let extension = opt(&f.extension);
    if let Err(why) = app
        .store
        .add_user(
            &f.username,
            &f.password,
            role,
            &services,
            extension.as_deref(),
        )
        .await
    {
        return match why {
            UserError::Invalid | UserError::Exists(_) => {
                admin_page(&app, &who, Some(why.to_string())).await
            }
            other => other.response(),
        };
    }
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "user_add",
            detail: json!({ "username": f.username, "role": f.role, "services": services }),
            ..Default::default()
        })
        .await
    {
        return fail(e);
    }
    admin_page(
        &app,
        &who,
        Some(format!("User {} added as {}.", f.username, role.as_str())),
    )
    .await
}

#[derive(Deserialize)]
pub struct NewAgentForm {
    pub name: String,
}

/// Registers a recording server; its token is shown on the page once.
pub async fn add_agent(
    State(app): State<App>,
    headers: HeaderMap,
    Form(f): Form<NewAgentForm>,
) -> Response {
    let who = match signed_in(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !who.role.manages_people() {
        return not_allowed(&who);
    }
    let name = f.name.trim().to_owned();
    if let Some(why) = super::people::agent_name_problem(&name) {
        return admin_page(&app, &who, Some(format!("{why}."))).await;
    }
    let token = super::people::new_token();
    if let Err(e) = app
        .store
        .add_agent(&name, &super::ingest::token_hash(&token))
        .await
    {
        return admin_page(
            &app,
            &who,
            Some(format!("Agent {name} could not be added: {e}")),
        )
        .await;
    }
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "agent_add",
            detail: json!({ "agent": name }),
            ..Default::default()
        })
        .await
    {
        return fail(e);
    }
    admin_page_with(&app, &who, None, Some((name, token))).await
}
