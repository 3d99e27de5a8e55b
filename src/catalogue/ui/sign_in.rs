//! Signing in and out of the web UI.

use super::{UserView, page};
use crate::catalogue::App;
use crate::catalogue::audit::Entry;
use crate::catalogue::csrf;
use crate::catalogue::people::{caller, new_token, presented_token};
use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    user: Option<UserView>,
    error: Option<String>,
    /// The form's own token, also in the `cv_login` cookie ([`csrf`]): a page of another
    /// origin cannot sign the browser in as someone else.
    login_token: String,
}

/// The sign-in form with a new token, and the cookie holding it.
fn login_page(app: &App, error: Option<String>) -> Response {
    let token = new_token();
    let mut r = page(&LoginPage {
        user: None,
        error,
        login_token: token.clone(),
    });
    let secure = if app.config.server.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={token}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600{secure}",
        csrf::LOGIN_COOKIE
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub async fn login_form(State(app): State<App>) -> Response {
    login_page(&app, None)
}

pub async fn login(
    State(app): State<App>,
    ConnectInfo(from): ConnectInfo<std::net::SocketAddr>,
    Form(f): Form<crate::catalogue::api::Login>,
) -> Response {
    match crate::catalogue::api::sign_in(&app, &f, from.ip()).await {
        Ok(Some((_, cookie))) => {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        Ok(None) => {
            let mut r = login_page(&app, Some("Wrong user name or password.".into()));
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
