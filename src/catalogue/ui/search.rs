//! The search page: calls found by date, caller, service, party or Call-ID (POSTed, so no
//! number goes into a URL).

use super::{UserView, length, opt, page};
use crate::catalogue::App;
use crate::catalogue::accounts;
use crate::catalogue::error::fail;
use crate::catalogue::people::Caller;
use crate::catalogue::people::Role;
use crate::catalogue::search::{CallQuery, SearchResult};
use crate::catalogue::signed_in::{Allowed, FindsCalls, Page};
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

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
    pub page: String,
}

pub struct Row {
    id: String,
    started: String,
    service: String,
    caller: String,
    length: String,
    ringing: String,
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
    /// The services agents report, for the service list.
    services: Vec<String>,
    /// A filter that could not be read: what to fix.
    error: Option<String>,
}

pub async fn search_form(
    State(app): State<App>,
    Allowed(who, _): Allowed<FindsCalls, Page>,
) -> Response {
    let services = match services_for(&app, &who).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    page(&SearchPage {
        scope: scope_of(&who),
        user: Some(UserView::of(&who)),
        q: SearchForm::default(),
        result: None,
        rows: Vec::new(),
        pages: 0,
        services,
        error: None,
    })
}

/// The services a caller may choose from: a manager's own, everyone else's all reported.
async fn services_for(app: &App, who: &Caller) -> Result<Vec<String>, Response> {
    let known = accounts::known_services(&app.store).await.map_err(fail)?;
    Ok(match who.role {
        Role::Manager => who.services.clone(),
        _ => known,
    })
}

fn scope_of(who: &Caller) -> String {
    if who.role == Role::Manager {
        who.services.join(", ")
    } else {
        String::new()
    }
}

impl SearchForm {
    fn query(&self) -> CallQuery {
        CallQuery {
            from: opt(&self.from),
            to: opt(&self.to),
            caller: opt(&self.caller),
            service: opt(&self.service),
            party: opt(&self.party),
            sip_call_id: opt(&self.sip_call_id),
            page: opt(&self.page),
            page_size: Some("25".into()),
            ..Default::default()
        }
    }
}

/// The calls of a search as CSV, for a manager's report (audited as an export).
pub async fn search_export(
    State(app): State<App>,
    Allowed(who, _): Allowed<FindsCalls, Page>,
    Form(f): Form<SearchForm>,
) -> Response {
    let q = f.query();
    let known = match accounts::known_services(&app.store).await {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    match q.read(&app.numbers, &known, &app.zone) {
        Ok(filters) => crate::catalogue::api::csv_response(&app, &who, &q, &filters).await,
        // the search page says what to fix
        Err(_) => search(State(app), Allowed(who, std::marker::PhantomData), Form(f)).await,
    }
}

pub async fn search(
    State(app): State<App>,
    Allowed(who, _): Allowed<FindsCalls, Page>,
    Form(f): Form<SearchForm>,
) -> Response {
    let services = match services_for(&app, &who).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = f.query();
    let known = match accounts::known_services(&app.store).await {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let filters = match q.read(&app.numbers, &known, &app.zone) {
        Ok(filters) => filters,
        Err(why) => {
            let mut r = page(&SearchPage {
                scope: scope_of(&who),
                user: Some(UserView::of(&who)),
                q: f,
                result: None,
                rows: Vec::new(),
                pages: 0,
                services,
                error: Some(format!("{why}.")),
            });
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            return r;
        }
    };
    let result = match app.store.audited_search(&who, &q, &filters).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let rows = result
        .calls
        .iter()
        .map(|c| Row {
            id: c.call_id.clone(),
            started: app.zone.when(c.started_ms),
            service: c.service.clone().unwrap_or_default(),
            caller: c.caller.clone(),
            length: length(c.audio_ms),
            ringing: c.ring_ms.map(length).unwrap_or_else(|| "—".into()),
            expires: app.zone.day(c.expires_ms),
            held: c.legal_hold,
        })
        .collect();
    let pages = (result.total + result.page_size - 1) / result.page_size;
    page(&SearchPage {
        scope: scope_of(&who),
        user: Some(UserView::of(&who)),
        q: f,
        result: Some(result),
        rows,
        pages,
        services,
        error: None,
    })
}
