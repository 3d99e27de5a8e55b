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
    /// Ask for a new password as well (after an admin's reset, or when the user asks).
    change: bool,
    /// The user name, when the form is shown again.
    username: String,
    /// Setting up the second factor: the key (base32) and the `otpauth://` text.
    enrol: Option<(String, String)>,
    /// Setting up the second factor needs the DPO's set-up code: ask for it, and keep the
    /// one given while the key is set up.
    setup_code: Option<String>,
    /// The form's own token, also in the `cv_login` cookie ([`csrf`]): a page of another
    /// origin cannot sign the browser in as someone else.
    login_token: String,
    /// What the single sign-on button says, when a directory is configured.
    sso: Option<String>,
}

/// The sign-in form with a new token, and the cookie holding it.
pub(super) fn login_page(
    app: &App,
    error: Option<String>,
    change: bool,
    username: &str,
) -> Response {
    login_page_with(app, error, change, username, None, None)
}

fn login_page_with(
    app: &App,
    error: Option<String>,
    change: bool,
    username: &str,
    enrol: Option<(String, String)>,
    setup_code: Option<String>,
) -> Response {
    let token = new_token();
    let mut r = page(&LoginPage {
        user: None,
        error,
        change,
        username: username.to_owned(),
        enrol,
        setup_code,
        login_token: token.clone(),
        sso: app.oidc.as_ref().map(|o| o.cfg.label.clone()),
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

#[derive(serde::Deserialize, Default)]
pub struct LoginQuery {
    /// `change=1`: the form to change one's password.
    #[serde(default)]
    pub change: String,
}

pub async fn login_form(
    State(app): State<App>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    login_page(&app, None, !q.change.is_empty(), "")
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub new_password: String,
    #[serde(default)]
    pub repeat: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub setup_code: String,
}

impl LoginForm {
    fn login(&self) -> crate::catalogue::api::Login {
        crate::catalogue::api::Login {
            username: self.username.clone(),
            password: self.password.clone(),
            new_password: self.new_password.clone(),
            code: self.code.clone(),
            setup_code: self.setup_code.clone(),
        }
    }
}

pub async fn login(
    State(app): State<App>,
    ConnectInfo(from): ConnectInfo<std::net::SocketAddr>,
    Form(f): Form<LoginForm>,
) -> Response {
    use crate::catalogue::api::SignIn;
    let changing = !f.new_password.is_empty();
    if changing && f.new_password != f.repeat {
        let why = "The two new passwords differ.".to_owned();
        return login_page(&app, Some(why), true, &f.username);
    }
    match crate::catalogue::api::sign_in(&app, &f.login(), from.ip()).await {
        Ok(SignIn::Opened(_, cookie)) => {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        Ok(SignIn::Wrong) => {
            let mut r = login_page(
                &app,
                Some("Wrong user name or password.".into()),
                changing,
                &f.username,
            );
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        Ok(SignIn::NewPasswordNeeded) => login_page(
            &app,
            Some("Your password was set by an administrator: choose a new one of your own (at least 12 characters).".into()),
            true,
            &f.username,
        ),
        Ok(SignIn::CodeNeeded { wrong }) => {
            let why = if wrong {
                "Wrong or already used code: enter your password again and the current code from your authenticator app."
            } else {
                "Your account needs the code from your authenticator app: enter your password again and the code."
            };
            let mut r = login_page(&app, Some(why.into()), changing, &f.username);
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        Ok(SignIn::SetUpSecondFactor {
            secret,
            uri,
            wrong_code,
        }) => {
            let why = if wrong_code {
                "That code is not the app's current one: check the app's clock and the key, then try again."
            } else {
                "Your account may hear recordings, so it signs in with a second factor: add the key below to an authenticator app, then enter your password again and the app's code."
            };
            let setup = Some(f.setup_code.trim().to_owned()).filter(|c| !c.is_empty());
            login_page_with(
                &app,
                Some(why.into()),
                changing,
                &f.username,
                Some((secret, uri)),
                setup,
            )
        }
        Ok(SignIn::SetUpCodeNeeded { wrong }) => {
            let why = if wrong {
                "That is not the set-up code of your account: enter your password again and the code your DPO gave you."
            } else {
                "Your account may hear recordings, so it signs in with a second factor. To set it up, enter your password again and the set-up code your DPO gave you when they approved your account."
            };
            let mut r = login_page_with(
                &app,
                Some(why.into()),
                changing,
                &f.username,
                None,
                Some(String::new()),
            );
            if wrong {
                *r.status_mut() = StatusCode::UNAUTHORIZED;
            }
            r
        }
        Ok(SignIn::BadNewPassword(why)) => {
            login_page(&app, Some(format!("{why}.")), true, &f.username)
        }
        Err(r) => r,
    }
}

pub async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Ok(who) = caller(&app, &headers).await {
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
