//! Signing in with the council's directory (OpenID Connect): the two steps a browser takes.
//!
//! `GET /login/oidc` sends the browser to the provider with a new state, nonce and PKCE
//! challenge (kept in a cookie for ten minutes); `GET /login/oidc/callback` takes the code
//! back, has [`oidc`] exchange and check it, brings the account into line with the directory
//! ([`Store::directory_sign_in`](crate::catalogue::store::Store)) and opens a session. Every
//! outcome, refusals too, is an audit record with the source address.

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;

use super::sign_in::login_page;
use crate::catalogue::App;
use crate::catalogue::audit::Entry;
use crate::catalogue::directory::Directory;
use crate::catalogue::oidc::{self, Expect, PENDING_COOKIE, Pending};
use crate::catalogue::people::{SESSION_COOKIE, new_token};
use crate::catalogue::store::now_ms;

fn cookie(app: &App, value: &str, max_age: u32) -> Option<HeaderValue> {
    let secure = if app.config.server.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    // Lax: the provider sends the browser back with a cross-site navigation
    HeaderValue::from_str(&format!(
        "{PENDING_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/login/oidc; Max-Age={max_age}{secure}"
    ))
    .ok()
}

fn refused(app: &App, code: StatusCode, why: &str) -> Response {
    let mut r = login_page(app, Some(why.to_owned()), false, "");
    *r.status_mut() = code;
    if let Some(c) = cookie(app, "", 0) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// `GET /login/oidc`: to the provider's sign-in.
pub async fn oidc_start(State(app): State<App>) -> Response {
    let Some(provider) = app.oidc.clone() else {
        return refused(
            &app,
            StatusCode::NOT_FOUND,
            "Single sign-on is not set up on this catalogue: sign in with your callvault account.",
        );
    };
    let (meta, _) = match provider.metadata(false).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("single sign-on: {e}");
            return refused(
                &app,
                StatusCode::BAD_GATEWAY,
                "The sign-in provider cannot be reached now: try again, or sign in with a callvault account.",
            );
        }
    };
    let pending = Pending::new();
    let url = oidc::authorization_url(&meta, &provider.cfg, &provider.redirect, &pending);
    let mut r = Redirect::to(&url).into_response();
    if let Some(c) = cookie(&app, &pending.cookie_value(), 600) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

#[derive(serde::Deserialize)]
pub struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn pending_of(headers: &HeaderMap) -> Option<Pending> {
    crate::catalogue::csrf::cookie(headers, PENDING_COOKIE).and_then(Pending::from_cookie)
}

/// `GET /login/oidc/callback`: the provider's answer.
pub async fn oidc_callback(
    State(app): State<App>,
    ConnectInfo(from): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let Some(provider) = app.oidc.clone() else {
        return refused(&app, StatusCode::NOT_FOUND, "Single sign-on is not set up.");
    };
    let from = from.ip().to_string();
    let audit_refusal = |why: String| {
        let app = app.clone();
        let from = from.clone();
        async move {
            let _ = app
                .store
                .audit(Entry {
                    actor: "directory",
                    action: "login_failed",
                    detail: json!({ "from": from, "via": "directory", "why": why }),
                    ..Default::default()
                })
                .await;
        }
    };
    if let Some(e) = q.error.as_deref() {
        let e: String = e.chars().take(80).collect();
        audit_refusal(format!("the provider said {e}")).await;
        return refused(
            &app,
            StatusCode::UNAUTHORIZED,
            &format!("The sign-in provider did not sign you in ({e}): try again."),
        );
    }
    let Some(pending) = pending_of(&headers).filter(|p| p.state_is(&q.state)) else {
        audit_refusal("no sign-in of this browser matches the answer (state)".into()).await;
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser, or took more than ten minutes: start again.",
        );
    };
    // RFC 9207: an answer naming another issuer is another provider's (a mix-up)
    if q.iss.as_deref().is_some_and(|i| i != provider.cfg.issuer) {
        audit_refusal("the answer names another issuer".into()).await;
        return refused(
            &app,
            StatusCode::BAD_REQUEST,
            "The answer came from another sign-in provider: start again.",
        );
    }
    let outcome = async {
        let (meta, keys) = provider.metadata(false).await.map_err(|e| e.to_string())?;
        let token = provider
            .exchange(&meta, &q.code, &pending)
            .await
            .map_err(|e| e.to_string())?;
        let expect = Expect {
            issuer: &provider.cfg.issuer,
            client_id: &provider.cfg.client_id,
            nonce: &pending.nonce,
        };
        let now_s = now_ms() / 1000;
        let claims = match oidc::verify_id_token(&token, &keys, &expect, now_s) {
            Err(e) if e.wants_new_keys() => {
                let (_, keys) = provider.metadata(true).await.map_err(|e| e.to_string())?;
                oidc::verify_id_token(&token, &keys, &expect, now_s)
            }
            other => other,
        }
        .map_err(|e| e.to_string())?;
        oidc::identity(&claims, &provider.cfg).map_err(|e| e.to_string())
    }
    .await;
    let who = match outcome {
        Ok(who) => who,
        Err(why) => {
            tracing::warn!("single sign-on refused: {why}");
            audit_refusal(why.clone()).await;
            return refused(
                &app,
                StatusCode::UNAUTHORIZED,
                &format!("Signing in with the directory failed: {why}."),
            );
        }
    };
    if who.role.hears_calls() && provider.cfg.listening_needs_mfa && !who.strong {
        audit_refusal(format!(
            "{} signed in to the directory without a second factor",
            who.username
        ))
        .await;
        return refused(
            &app,
            StatusCode::UNAUTHORIZED,
            "You may hear recordings, so callvault needs you to sign in to the directory with a second factor (an authenticator app, a security key): the directory did not use one.",
        );
    }
    let (account, detail) = match app
        .store
        .directory_sign_in(&who, provider.cfg.listening_needs_approval)
        .await
    {
        Ok(a) => a,
        Err(e) => return crate::catalogue::error::fail(e),
    };
    let audit = |action: &'static str, mut detail: serde_json::Value| {
        let app = app.clone();
        let from = from.clone();
        let actor = who.username.clone();
        async move {
            detail["from"] = json!(from);
            detail["via"] = json!("directory");
            app.store
                .audit(Entry {
                    actor: &actor,
                    action,
                    detail,
                    ..Default::default()
                })
                .await
        }
    };
    let username = match account {
        Directory::Ready(u) => u,
        Directory::AwaitingApproval => {
            let _ = audit("login_refused", detail).await;
            return refused(
                &app,
                StatusCode::FORBIDDEN,
                &format!(
                    "Your directory account gives you the {} role, which may hear recordings: a data-protection officer approves that first. Sign in again once they have.",
                    who.role.as_str()
                ),
            );
        }
        Directory::Disabled => {
            let _ = audit("login_refused", detail).await;
            return refused(
                &app,
                StatusCode::FORBIDDEN,
                "An admin has disabled your callvault account.",
            );
        }
        Directory::NameTaken(u) => {
            let _ = audit("login_refused", detail).await;
            return refused(
                &app,
                StatusCode::CONFLICT,
                &format!(
                    "A callvault account named {u} exists already and does not sign in with the directory: ask an admin."
                ),
            );
        }
    };
    if let Err(e) = audit("login", detail).await {
        return crate::catalogue::error::fail(e);
    }
    let token = new_token();
    if let Err(e) = app.store.open_session(&username, &token, None).await {
        return crate::catalogue::error::fail(e);
    }
    let secure = if app.config.server.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    // the browser arrived here from the provider (a cross-site navigation): a redirect would
    // go without the SameSite=Strict session cookie; a page of ours that moves on sends it
    let mut r = Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url=/\">\
         <title>Signed in</title></head><body><p>Signed in. <a href=\"/\">Continue</a></p></body></html>",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    if let Some(c) = cookie(&app, "", 0) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}
