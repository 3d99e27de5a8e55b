//! The managers' web UI: server-rendered pages (askama templates in `templates/`, a little
//! JavaScript for the waveform), over the same store, roles and audit as the API.
//!
//! Owns the HTML pages and forms, a file per page family (sign-in, search, the call page,
//! audit, the DPO's rights, administration); who may see a page is decided by the shared
//! extractors of [`super::signed_in`]. Personal data never goes into a URL: searches are POSTed
//! (a caller's number stays out of history, proxies and server logs), and pages are
//! addressed by ids only. It decides nothing about access itself: it calls the same checks
//! and writes the same audit records as the API.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::error::fail;
use super::people::{Caller, Role};
use super::signed_in::{Page, SignedIn};

mod admin;
mod audit;
mod call;
mod operations;
mod rights;
mod search;
mod sign_in;
mod sso;

pub use admin::{
    add_agent, add_user, admin, agent_action, edit_user, revoke_token, signalling, user_action,
};
pub use audit::audit;
pub use call::{call, listen, peaks};
pub use operations::operations;
pub use rights::{approve, consent, dpo, erase, hold, restrict, subject_access, training};
pub use search::{search, search_export, search_form};
pub use sign_in::{login, login_form, logout};
pub use sso::{oidc_callback, oidc_start};

/// The signed-in user as the page header shows them.
pub struct UserView {
    pub name: String,
    pub role: &'static str,
    pub finds: bool,
    pub audits: bool,
    pub staff: bool,
    pub dpo: bool,
    pub admin: bool,
    /// The session's form token, a hidden field of every form that posts.
    pub csrf: String,
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
            csrf: c.form_token.clone(),
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

/// The page saying the caller's role does not give access (403).
pub(super) fn not_allowed(user: &Caller) -> Response {
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
        include_str!("../../../static/style.css"),
    )
        .into_response()
}

pub async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        include_str!("../../../static/favicon.svg"),
    )
        .into_response()
}

pub async fn ladder_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript")],
        include_str!("../../../static/ladder.js"),
    )
        .into_response()
}

pub async fn wave_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript")],
        include_str!("../../../static/wave.js"),
    )
        .into_response()
}

pub async fn home(SignedIn(c, _): SignedIn<Page>) -> Response {
    match c.role {
        _ if c.role.finds_calls() => Redirect::to("/search").into_response(),
        Role::Auditor | Role::Staff => Redirect::to("/audit").into_response(),
        Role::Admin => Redirect::to("/admin").into_response(),
        _ => page(&Message {
            user: Some(UserView::of(&c)),
            title: "Signed in",
            text: "There is nothing for your role here.",
        }),
    }
}

fn length(ms: i64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A day typed into a filter, as its first moment in the catalogue's zone.
fn day_ms(zone: &super::zone::Zone, d: &str) -> Option<i64> {
    zone.local_ms(d)
}
