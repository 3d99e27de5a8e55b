//! The people's side of the catalogue API: sign-in, search, call pages, purpose-bound
//! listening, the audit log and user management.
//!
//! Every handler starts from the signed-in [`Caller`] and asks [`Role`] what it may do; every
//! access to a call's data writes an audit record first.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::App;
use super::audit::{AuditQuery, Entry};
use super::error::fail;
use super::listen::{self, AccessRequest, PURPOSES};
use super::people::{Caller, Role, SESSION_COOKIE, new_token, presented_token, refuse};
use super::search::CallQuery;
use super::signed_in::{Allowed, Api, FindsCalls, HearsCalls, ManagesPeople, ReadsAudit, SignedIn};
use super::store::now_ms;

fn forbidden(what: &str) -> Response {
    refuse(StatusCode::FORBIDDEN, &format!("your role may not {what}"))
}

#[derive(Deserialize)]
pub struct Login {
    pub username: String,
    pub password: String,
    /// A new password to set (required after an admin reset the password).
    #[serde(default)]
    pub new_password: String,
    /// The 6-digit code from the authenticator app (accounts that may hear recordings).
    #[serde(default)]
    pub code: String,
    /// The set-up code a DPO gave with the approval of the account: needed to set up the
    /// second factor of an account an admin made or whose factor was cleared.
    #[serde(default)]
    pub setup_code: String,
}

/// What a sign-in came to.
pub enum SignIn {
    /// Wrong user name or password.
    Wrong,
    /// The second factor's code is missing, or wrong (or used already).
    CodeNeeded { wrong: bool },
    /// Setting up the second factor needs the DPO's set-up code (missing, or wrong).
    SetUpCodeNeeded { wrong: bool },
    /// The account sets up its second factor: the secret (base32) and `otpauth://` text.
    SetUpSecondFactor {
        secret: String,
        uri: String,
        wrong_code: bool,
    },
    /// The password was reset by an admin: the user sets a new one (`new_password`).
    NewPasswordNeeded,
    /// The new password cannot be used: why.
    BadNewPassword(String),
    /// Signed in: the user and the `Set-Cookie` value carrying the session.
    Opened(Caller, HeaderValue),
}

/// Checks a password, audits the attempt either way and, when it holds, opens a session
/// (API and web UI alike), setting a new password first when one is given.
pub async fn sign_in(app: &App, l: &Login, from: std::net::IpAddr) -> Result<SignIn, Response> {
    use super::people::{Login as Outcome, PasswordError};
    use super::throttle::Verdict;
    let now = now_ms();
    if let Verdict::Locked(wait) = app.throttle.check(&l.username, from, now) {
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "too many failed sign-ins: try again in {} s",
                wait.as_secs().max(1)
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(r);
    }
    let new_password = Some(l.new_password.as_str()).filter(|p| !p.is_empty());
    let code = Some(l.code.as_str()).filter(|c| !c.trim().is_empty());
    let setup_code = Some(l.setup_code.as_str()).filter(|c| !c.trim().is_empty());
    let credentials = super::people::Credentials {
        username: &l.username,
        password: &l.password,
        new_password,
        code,
        setup_code,
        second_factor: app.config.sign_in.second_factor,
    };
    let outcome = match app.store.login(credentials).await {
        Ok(o) => o,
        Err(e @ (PasswordError::TooShort | PasswordError::Same)) => {
            return Ok(SignIn::BadNewPassword(e.to_string()));
        }
        Err(PasswordError::Hash(e)) => return Err(fail(e)),
        Err(PasswordError::Database(e)) => return Err(fail(e)),
    };
    let (who, token) = match outcome {
        Outcome::Opened(who, token) => (who, token),
        Outcome::NewPasswordNeeded(_) => {
            app.throttle.succeeded(&l.username);
            return Ok(SignIn::NewPasswordNeeded);
        }
        Outcome::CodeNeeded => return Ok(SignIn::CodeNeeded { wrong: false }),
        Outcome::SetUpSecondFactor { secret, wrong_code } => {
            return Ok(SignIn::SetUpSecondFactor {
                uri: super::totp::otpauth_uri("callvault", &l.username, &secret),
                secret: super::totp::base32(&secret),
                wrong_code,
            });
        }
        Outcome::WrongCode => {
            // a wrong code counts as a failed sign-in (a guessed password then meets the lock)
            failed(app, &l.username, from, now, Some("second factor")).await;
            return Ok(SignIn::CodeNeeded { wrong: true });
        }
        Outcome::SetUpCodeNeeded { wrong } => {
            if wrong {
                failed(app, &l.username, from, now, Some("set-up code")).await;
            }
            return Ok(SignIn::SetUpCodeNeeded { wrong });
        }
        Outcome::Wrong => {
            failed(app, &l.username, from, now, None).await;
            return Ok(SignIn::Wrong);
        }
    };
    app.throttle.succeeded(&who.username);
    app.store
        .audit(Entry {
            actor: &who.username,
            action: "login",
            detail: json!({ "from": from.to_string(), "new_password": new_password.is_some() }),
            ..Default::default()
        })
        .await
        .map_err(fail)?;
    let secure = if app.config.server.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}");
    let cookie = HeaderValue::from_str(&cookie).map_err(|e| fail(e.to_string()))?;
    Ok(SignIn::Opened(who, cookie))
}

/// A failed sign-in of `username` from `from` (`why`: what was wrong besides the password),
/// audited and counted; an account or address it locks is audited too.
async fn failed(app: &App, username: &str, from: std::net::IpAddr, now: i64, why: Option<&str>) {
    use super::throttle::Locked;
    let mut detail = json!({ "from": from.to_string() });
    if let Some(why) = why {
        detail["why"] = json!(why);
    }
    let _ = app
        .store
        .audit(Entry {
            actor: username,
            action: "login_failed",
            detail,
            ..Default::default()
        })
        .await;
    for lock in app.throttle.failed(username, from, now) {
        let detail = match &lock {
            Locked::Account(a, d) => json!({ "account": a, "seconds": d.as_secs() }),
            Locked::Address(ip, d) => json!({ "from": ip.to_string(), "seconds": d.as_secs() }),
        };
        let _ = app
            .store
            .audit(Entry {
                actor: username,
                action: "login_throttled",
                detail,
                ..Default::default()
            })
            .await;
    }
}

pub async fn login(
    State(app): State<App>,
    ConnectInfo(from): ConnectInfo<std::net::SocketAddr>,
    Json(l): Json<Login>,
) -> Response {
    match sign_in(&app, &l, from.ip()).await {
        Ok(SignIn::Opened(who, cookie)) => {
            let mut r = Json(json!({
                "username": who.username,
                "role": who.role,
                "services": who.services,
            }))
            .into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        Ok(SignIn::Wrong) => refuse(StatusCode::UNAUTHORIZED, "wrong user name or password"),
        Ok(SignIn::NewPasswordNeeded) => refuse(
            StatusCode::FORBIDDEN,
            "your password was set by an admin: sign in again with a new password of your own in \"new_password\" (at least 12 characters)",
        ),
        Ok(SignIn::BadNewPassword(why)) => refuse(StatusCode::UNPROCESSABLE_ENTITY, &why),
        Ok(SignIn::CodeNeeded { wrong }) => refuse(
            StatusCode::UNAUTHORIZED,
            if wrong {
                "wrong or used code: give the current code from your authenticator app in \"code\""
            } else {
                "give the 6-digit code from your authenticator app in \"code\""
            },
        ),
        Ok(SignIn::SetUpCodeNeeded { wrong }) => refuse(
            StatusCode::FORBIDDEN,
            if wrong {
                "wrong set-up code: give the code your DPO gave you when they approved your account in \"setup_code\""
            } else {
                "to set up your second factor, give the set-up code your DPO gave you when they approved your account in \"setup_code\""
            },
        ),
        Ok(SignIn::SetUpSecondFactor {
            secret,
            uri,
            wrong_code,
        }) => (
            StatusCode::FORBIDDEN,
            Json(json!({
                "error": if wrong_code { "wrong code: give the current code from the app you set up with this key" } else { "set up a second factor: add this key to an authenticator app, then sign in again with its code in \"code\"" },
                "totp_secret": secret,
                "otpauth_uri": uri,
            })),
        )
            .into_response(),
        Err(r) => r,
    }
}

pub async fn logout(
    State(app): State<App>,
    SignedIn(who, _): SignedIn<Api>,
    headers: HeaderMap,
) -> Response {
    if let Some(t) = presented_token(&headers)
        && let Err(e) = app.store.close_session(&t).await
    {
        return fail(e);
    }
    let _ = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "logout",
            ..Default::default()
        })
        .await;
    let mut r = refuse(StatusCode::OK, "signed out");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cv_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

pub async fn me(SignedIn(who, _): SignedIn<Api>) -> Response {
    Json(json!({
        "username": who.username,
        "role": who.role,
        "services": who.services,
        "extension": who.extension,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub struct NewToken {
    pub label: String,
    /// The user's password again: a session taken over in a browser cannot make itself a
    /// token that outlives it.
    #[serde(default)]
    pub password: String,
}

/// An API token for scripts, acting as the signed-in user.
pub async fn create_token(
    State(app): State<App>,
    SignedIn(who, _): SignedIn<Api>,
    Json(t): Json<NewToken>,
) -> Response {
    // a token does not mint tokens: a stolen one cannot outlive its own revocation
    if who.api_token {
        return refuse(
            StatusCode::FORBIDDEN,
            "API tokens are made in a signed-in session, not with another token",
        );
    }
    let label = t.label.trim();
    if label.is_empty() || label.len() > 100 {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give the token a label (what it is for), at most 100 characters",
        );
    }
    let token = match app
        .store
        .open_api_token(&who.username, &t.password, label)
        .await
    {
        Ok(Some(token)) => token,
        Ok(None) => {
            let _ = app
                .store
                .audit(Entry {
                    actor: &who.username,
                    action: "token_refused",
                    detail: json!({ "label": label, "why": "password not given again, or wrong" }),
                    ..Default::default()
                })
                .await;
            return refuse(
                StatusCode::FORBIDDEN,
                "enter your password again (\"password\") to make a token",
            );
        }
        Err(e) => return fail(e),
    };
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "token_created",
            detail: json!({ "label": label }),
            ..Default::default()
        })
        .await
    {
        return fail(e);
    }
    Json(json!({ "token": token })).into_response()
}

pub async fn purposes(_: SignedIn<Api>) -> Response {
    Json(
        PURPOSES
            .iter()
            .map(|(id, label)| json!({ "id": id, "label": label }))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// A search's filters read by the catalogue's rules, or the 422 saying what to fix.
pub async fn read_filters(app: &App, q: &CallQuery) -> Result<super::search::Filters, Response> {
    let services = super::accounts::known_services(&app.store)
        .await
        .map_err(fail)?;
    q.read(&app.numbers, &services, &app.zone)
        .map_err(|e| refuse(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()))
}

pub async fn search(
    State(app): State<App>,
    Allowed(who, _): Allowed<FindsCalls, Api>,
    Query(q): Query<CallQuery>,
) -> Response {
    let filters = match read_filters(&app, &q).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let result = match app.store.audited_search(&who, &q, &filters).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    Json(result).into_response()
}

/// Whether `who` may see call `call_id`: Ok(()) or the response saying no (a call outside a
/// manager's services is "not found", so its existence is not revealed).
pub async fn may_see(app: &App, who: &Caller, call_id: &str) -> Result<(), Response> {
    match app.store.call_scope(call_id).await {
        Ok(Some((service, restricted))) => {
            if who.may_see_service(service.as_deref())
                && (!restricted || who.role.sees_restricted())
            {
                Ok(())
            } else {
                Err(refuse(StatusCode::NOT_FOUND, "no such call"))
            }
        }
        Ok(None) => Err(refuse(StatusCode::NOT_FOUND, "no such call")),
        Err(e) => Err(fail(e)),
    }
}

pub async fn call(
    State(app): State<App>,
    Allowed(who, _): Allowed<FindsCalls, Api>,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = may_see(&app, &who, &id).await {
        return r;
    }
    let record = match app.store.call_document(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "no such call"),
        Err(e) => return fail(e),
    };
    if let Err(e) = app
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
    Json(record).into_response()
}

pub async fn access(
    State(app): State<App>,
    SignedIn(who, _): SignedIn<Api>,
    Path(id): Path<String>,
    Json(req): Json<AccessRequest>,
) -> Response {
    match open_access(&app, &who, &id, &req).await {
        Ok((grant, seq)) => Json(json!({
            "grant": grant,
            "audio": format!("/api/v1/calls/{id}/audio?grant={grant}"),
            "audit_seq": seq,
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// A retrieval for a stated purpose: checks role, scope, purpose and reference, commits the
/// audit record, then makes the grant. Returns (grant, audit record's seq).
pub async fn open_access(
    app: &App,
    who: &Caller,
    id: &str,
    req: &AccessRequest,
) -> Result<(String, i64), Response> {
    if !who.role.hears_calls() {
        return Err(forbidden("retrieve recordings"));
    }
    may_see(app, who, id).await?;
    if !PURPOSES.iter().any(|(p, _)| *p == req.purpose) {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "choose a purpose from the policy's list (GET /api/v1/purposes)",
        ));
    }
    let reference = req.reference.trim();
    if reference.is_empty() || reference.len() > 200 {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give a reference (a complaint or case number), at most 200 characters",
        ));
    }
    // the audit record is committed before a grant exists, so before any audio can leave
    let record = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "retrieve",
            call_id: Some(id),
            purpose: Some(&req.purpose),
            reference: Some(reference),
            ..Default::default()
        })
        .await
        .map_err(fail)?;
    let grant = new_token();
    app.store
        .add_grant(
            &grant,
            &who.username,
            id,
            &req.purpose,
            reference,
            record.seq,
        )
        .await
        .map_err(fail)?;
    Ok((grant, record.seq))
}

pub async fn audio(
    State(app): State<App>,
    Allowed(who, _): Allowed<HearsCalls, Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = may_see(&app, &who, &id).await {
        return r;
    }
    let Some(grant) = q.get("grant") else {
        return refuse(StatusCode::FORBIDDEN, "state a purpose first");
    };
    listen::audio(&app, &who, &id, grant, &headers).await
}

#[derive(Deserialize, Default)]
pub struct AuditParams {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub call_id: Option<String>,
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

pub async fn audit_log(
    State(app): State<App>,
    SignedIn(who, _): SignedIn<Api>,
    Query(p): Query<AuditParams>,
) -> Response {
    let page_size = p.page_size.unwrap_or(100).clamp(1, 1000);
    let mut q = AuditQuery {
        from_ms: p.from,
        to_ms: p.to,
        actor: p.actor,
        action: p.action,
        call_id: p.call_id,
        party: None,
        limit: page_size,
        offset: (p.page.unwrap_or(1).clamp(1, 1_000_000) - 1) * page_size,
    };
    match who.role {
        Role::Auditor => {}
        // transparency: staff see who retrieved the calls they took part in, nothing else
        Role::Staff => match &who.extension {
            Some(ext) => {
                q.party = Some(ext.clone());
                q.action = Some("retrieve".into());
            }
            None => return forbidden("read the audit log without an extension"),
        },
        _ => return forbidden("read the audit log"),
    }
    match app.store.audit_list(&q).await {
        Ok(records) => Json(records).into_response(),
        Err(e) => fail(e),
    }
}

pub async fn audit_verify(State(app): State<App>, _: Allowed<ReadsAudit, Api>) -> Response {
    match super::audit_heads::verify(&app.store, &app.config.audit.heads_file, &app.keys).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: String,
    #[serde(default)]
    pub services: Vec<String>,
    pub extension: Option<String>,
}

/// Services as typed, read against what the agents report, or the 422 saying which exist.
pub async fn resolved_services(app: &App, typed: &[String]) -> Result<Vec<String>, Response> {
    let known = super::accounts::known_services(&app.store)
        .await
        .map_err(fail)?;
    super::accounts::resolve_services(&known, typed).map_err(|e| e.response())
}

pub async fn users(State(app): State<App>, _: Allowed<ManagesPeople, Api>) -> Response {
    match app.store.list_users().await {
        Ok(u) => Json(u).into_response(),
        Err(e) => fail(e),
    }
}

pub async fn add_user(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Api>,
    Json(u): Json<NewUser>,
) -> Response {
    let Some(role) = Role::parse(&u.role) else {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "role is one of manager, auditor, dpo, admin, staff",
        );
    };
    let services = match resolved_services(&app, &u.services).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let added = match app
        .store
        .add_user(
            &u.username,
            &u.password,
            role,
            &services,
            u.extension.as_deref(),
            Some(&who.username),
        )
        .await
    {
        Ok(added) => added,
        Err(why) => return why.response(),
    };
    let waits = added == super::people::Added::AwaitingApproval;
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "user_add",
            detail: json!({ "username": u.username, "role": u.role, "services": services, "awaiting_approval": waits }),
            ..Default::default()
        })
        .await
    {
        return fail(e);
    }
    if waits {
        refuse(
            StatusCode::ACCEPTED,
            "user added; a DPO must approve the account before it can sign in",
        )
    } else {
        refuse(StatusCode::CREATED, "user added")
    }
}

/// `GET /api/v1/approvals`: what waits for a DPO's approval, each with the version an
/// approval names.
pub async fn approvals(
    State(app): State<App>,
    _who: Allowed<super::signed_in::Dpo, Api>,
) -> Response {
    match app.store.awaiting_approval().await {
        Ok(w) => Json(w).into_response(),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
pub struct Approve {
    /// The version of what waits, as `GET /api/v1/approvals` (or the DPO page) showed it.
    #[serde(default)]
    pub version: String,
}

/// `POST /api/v1/users/{name}/approve` with `{"version": …}`: a DPO approves what an admin
/// asked for `name` (the second person of the two), exactly as it was shown; audited with
/// both names. The answer carries the set-up code to give the person, when there is one.
pub async fn approve_user(
    State(app): State<App>,
    who: Allowed<super::signed_in::Dpo, Api>,
    Path(name): Path<String>,
    Json(a): Json<Approve>,
) -> Response {
    match approve_user_as(&app, who.permitted(), &name, &a.version).await {
        Ok(approved) => Json(json!({
            "username": name,
            "approved": approved.approval.what,
            "services": approved.approval.services,
            "setup_code": approved.setup_code,
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// The approval by `who` of what waits for `name`, as shown in `version`.
pub async fn approve_user_as(
    app: &App,
    who: super::signed_in::Permitted<'_, super::signed_in::Dpo>,
    name: &str,
    version: &str,
) -> Result<super::approvals::Approved, Response> {
    use super::approvals::ApprovalError;
    if version.trim().is_empty() {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "say which version of the request you approve (\"version\", from GET /api/v1/approvals)",
        ));
    }
    let refused = |e: ApprovalError| {
        let code = match e {
            ApprovalError::NothingWaits => StatusCode::NOT_FOUND,
            ApprovalError::Changed(_) => StatusCode::CONFLICT,
            ApprovalError::OwnRequest => StatusCode::FORBIDDEN,
            ApprovalError::Database(e) => return fail(e),
        };
        refuse(code, &e.to_string())
    };
    // checked before the audit record, and again with the change itself
    let a = match app.store.approval_of(name).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err(refused(ApprovalError::NothingWaits)),
        Err(e) => return Err(fail(e)),
    };
    if a.version != version.trim() {
        return Err(refused(ApprovalError::Changed(name.to_owned())));
    }
    if a.requested_by.split(", ").any(|r| r == who.username) {
        return Err(refused(ApprovalError::OwnRequest));
    }
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "user_approved",
            detail: json!({ "username": name, "role": a.role, "requested_by": a.requested_by, "approved": a.what,
                "services": a.services, "version": a.version }),
            ..Default::default()
        })
        .await
    {
        return Err(fail(e));
    }
    let second_factor = app.config.sign_in.second_factor;
    let approved = match app
        .store
        .approve(name, version, &who.username, second_factor)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            // changed in the moment between: the record above says so
            let _ = app
                .store
                .audit(Entry {
                    actor: &who.username,
                    action: "user_approval_failed",
                    detail: json!({ "username": name, "why": e.to_string() }),
                    ..Default::default()
                })
                .await;
            return Err(refused(e));
        }
    };
    Ok(approved)
}

#[derive(Deserialize)]
pub struct Reason {
    #[serde(default)]
    pub reason: String,
}

/// `POST /api/v1/users/{name}/{disable|enable|delete|reset-password}`, with a reason.
pub async fn user_action(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Api>,
    Path((name, action)): Path<(String, String)>,
    Json(r): Json<Reason>,
) -> Response {
    use super::accounts::{self, Change, Outcome};
    let c = Change {
        actor: &who.username,
        reason: &r.reason,
        console: false,
    };
    let waits = |o: Outcome| json!({ "username": name, "outcome": o });
    let done = match action.as_str() {
        "disable" => accounts::disable_user(&app.store, c, &name)
            .await
            .map(|()| waits(Outcome::Done)),
        "enable" => accounts::enable_user(&app.store, c, &name).await.map(waits),
        "reset-second-factor" => accounts::reset_second_factor(&app.store, c, &name)
            .await
            .map(waits),
        "delete" => accounts::delete_user(&app.store, c, &name)
            .await
            .map(|()| waits(Outcome::Done)),
        "reset-password" => {
            accounts::reset_password(&app.store, c, &name)
                .await
                .map(|(temporary, o)| {
                    let mut v = waits(o);
                    v["temporary_password"] = json!(temporary);
                    v
                })
        }
        _ => {
            return refuse(
                StatusCode::NOT_FOUND,
                "a user's actions are disable, enable, delete, reset-password, reset-second-factor and approve",
            );
        }
    };
    match done {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.response(),
    }
}

#[derive(Deserialize)]
pub struct UserEdit {
    /// A manager's services (each one a service the agents report).
    pub services: Option<Vec<String>>,
    /// A member of staff's extension ("" removes it).
    pub extension: Option<String>,
    #[serde(default)]
    pub reason: String,
}

/// `PATCH /api/v1/users/{name}`: a manager's services, a member of staff's extension.
pub async fn edit_user(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Api>,
    Path(name): Path<String>,
    Json(e): Json<UserEdit>,
) -> Response {
    use super::accounts::{self, Change, Edit};
    let services = match &e.services {
        Some(typed) => match resolved_services(&app, typed).await {
            Ok(s) => Some(s),
            Err(r) => return r,
        },
        None => None,
    };
    let edit = Edit {
        services,
        extension: e
            .extension
            .as_deref()
            .map(|x| Some(x.trim().to_owned()).filter(|x| !x.is_empty())),
    };
    let c = Change {
        actor: &who.username,
        reason: &e.reason,
        console: false,
    };
    match accounts::edit_user(&app.store, c, &name, &edit).await {
        Ok(o) => Json(json!({ "username": name, "outcome": o })).into_response(),
        Err(e) => e.response(),
    }
}

/// `GET /api/v1/tokens`: the caller's API tokens (an admin: everyone's), never their secrets.
pub async fn tokens(State(app): State<App>, SignedIn(who, _): SignedIn<Api>) -> Response {
    let owner = (!who.role.manages_people()).then_some(who.username.as_str());
    match super::accounts::list_tokens(&app.store, owner).await {
        Ok(t) => Json(t).into_response(),
        Err(e) => fail(e),
    }
}

/// `POST /api/v1/tokens/{id}/revoke`: the caller's own token (an admin: anyone's).
pub async fn revoke_token(
    State(app): State<App>,
    SignedIn(who, _): SignedIn<Api>,
    Path(id): Path<String>,
    Json(r): Json<Reason>,
) -> Response {
    let owner = (!who.role.manages_people()).then_some(who.username.as_str());
    let c = super::accounts::Change {
        actor: &who.username,
        reason: &r.reason,
        console: false,
    };
    match super::accounts::revoke_token(&app.store, c, &id, owner).await {
        Ok(()) => refuse(StatusCode::OK, "revoked"),
        Err(e) => e.response(),
    }
}

/// `GET /api/v1/agents`: the recording servers, their state and number lists.
pub async fn agents(State(app): State<App>, _: Allowed<ManagesPeople, Api>) -> Response {
    match app.store.list_agents().await {
        Ok(a) => Json(
            a.iter()
                .map(|a| {
                    json!({
                        "name": a.name,
                        "registered": a.created_at,
                        "calls": a.calls,
                        "disabled": a.disabled,
                        "numbers": a.numbers,
                        "calls_last_hour": a.calls_last_hour,
                        "last_seen": a.health.as_ref().map(|(_, ms)| crate::time::Timestamp::from_millis(*ms as u64).rfc3339()),
                        "health": a.health.as_ref().map(|(h, _)| h),
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => fail(e),
    }
}

/// `POST /api/v1/agents/{name}/{disable|enable}`, with a reason.
pub async fn agent_action(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Api>,
    Path((name, action)): Path<(String, String)>,
    Json(r): Json<Reason>,
) -> Response {
    let disable = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => {
            return refuse(
                StatusCode::NOT_FOUND,
                "an agent's actions are disable and enable",
            );
        }
    };
    let c = super::accounts::Change {
        actor: &who.username,
        reason: &r.reason,
        console: false,
    };
    match super::accounts::set_agent_disabled(&app.store, c, &name, disable).await {
        Ok(()) => Json(json!({ "agent": name, "disabled": disable })).into_response(),
        Err(e) => e.response(),
    }
}

/// `GET /api/v1/services`: the services agents report recording (what a manager's services
/// and the search's service filter are chosen from).
pub async fn services(State(app): State<App>, _: SignedIn<Api>) -> Response {
    match super::accounts::known_services(&app.store).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => fail(e),
    }
}

/// `GET /api/v1/calls.csv`: the calls a search finds, as CSV for a report (audited).
pub async fn search_csv(
    State(app): State<App>,
    Allowed(who, _): Allowed<FindsCalls, Api>,
    Query(q): Query<CallQuery>,
) -> Response {
    let filters = match read_filters(&app, &q).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    csv_response(&app, &who, &q, &filters).await
}

/// The CSV of a search, as a download named for the day.
pub async fn csv_response(
    app: &App,
    who: &Caller,
    q: &CallQuery,
    filters: &super::search::Filters,
) -> Response {
    let (calls, total) = match app.store.audited_export(who, q, filters).await {
        Ok(found) => found,
        Err(e) => return fail(e),
    };
    let day = crate::time::Timestamp::now().rfc3339();
    let mut r = super::search::csv(&calls).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"calls-{}.csv\"",
        day.get(..10).unwrap_or("export")
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        headers.insert("x-calls-found", v);
    }
    r
}
