//! Cross-site request forgery: a page of another origin making a signed-in browser change
//! something (add a DPO, erase a call, write a `retrieve` audit record with a purpose of the
//! attacker's choosing), or sign the browser in as someone else.
//!
//! Owns the check every state-changing request (POST, PUT, PATCH, DELETE) passes before its
//! handler runs ([`guard`], a layer over the whole router). `SameSite=Strict` cookies stop
//! other sites only; a page on another port or host of the same site gets them sent. So:
//!
//! 1. **Origin.** A request that says where it comes from (`Origin`, else `Referer`) must come
//!    from the catalogue's own origin: `server.public_url` when set, else the origin of the
//!    request's own `Host` (over http or https). `Origin: null` (sandboxed frames, some
//!    redirects) is refused.
//! 2. **Form tokens.** Every form of the web UI carries a token tied to the session
//!    ([`form_token`], a hash of the session's secret: a page that cannot read the cookie
//!    cannot make it). The sign-in form, before any session, carries a random one that must
//!    match a cookie of its own (`cv_login`, sent back only to `/login`).
//! 3. **The API with a session cookie takes JSON only**, which no page of another origin can
//!    send without a CORS preflight the catalogue never answers.
//!
//! A request with an `Authorization: Bearer` token and no session cookie (an agent, a script)
//! carries no ambient credential of a browser: only rule 1 applies to it, when it says where it
//! comes from. A refusal is 403 with a line saying why, and an audit record when the browser
//! was signed in (someone's session was used). This module decides nothing about roles.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::App;
use super::audit::Entry;
use super::people::{SESSION_COOKIE, caller};

/// The name of the form field that carries the token.
pub const FIELD: &str = "csrf";
/// The sign-in form's own cookie (double submit: it must equal the form's field).
pub const LOGIN_COOKIE: &str = "cv_login";
/// The largest form the web UI posts (a search, a reason, a new user): far above any of them.
const MAX_FORM: usize = 64 << 10;

/// The token the forms of a session carry: the first 128 bits of SHA-256 over a label and the
/// session's secret (the cookie value, which the database holds only hashed).
pub fn form_token(session: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"callvault form token\0");
    h.update(session.trim().as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// `scheme://host[:port]` of an http(s) URL, lower-cased, default ports dropped.
pub fn origin_of(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url.trim()).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = u.host_str()?.to_ascii_lowercase();
    Some(match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forged {
    /// It came from a page of another origin (what it said, bounded).
    Origin(String),
    /// A form without its token, or with another session's.
    FormToken,
    /// The API called with a session cookie and a body that is not JSON.
    NotJson,
    /// A form larger than any of the UI's.
    TooLarge,
}

impl Forged {
    fn why(&self) -> &'static str {
        match self {
            Forged::Origin(_) => {
                "refused: the request came from a page of another origin (open callvault's own pages and try again)"
            }
            Forged::FormToken => {
                "refused: the form is out of date or was not sent by callvault (reload the page and try again)"
            }
            Forged::NotJson => "refused: a signed-in browser calls the API with a JSON body only",
            Forged::TooLarge => "refused: the form is too large",
        }
    }
}

/// Rule 1: the origins a state-changing request may come from.
fn origin_check(headers: &HeaderMap, public: Option<&str>) -> Result<(), Forged> {
    let said = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_default())
        .map(|o| (o.clone(), if o == "null" { None } else { origin_of(&o) }))
        .or_else(|| {
            headers.get(header::REFERER).map(|v| {
                let r = v.to_str().unwrap_or_default().to_owned();
                let o = origin_of(&r);
                (r, o)
            })
        });
    let Some((text, origin)) = said else {
        // a client that says nothing is not a browser's cross-origin request (browsers send
        // Origin with every cross-origin POST); forms still need their token
        return Ok(());
    };
    let bounded = || text.chars().take(200).collect::<String>();
    let Some(origin) = origin else {
        return Err(Forged::Origin(bounded()));
    };
    let allowed = match public.and_then(origin_of) {
        Some(own) => origin == own,
        None => headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|host| {
                let host = host.to_ascii_lowercase();
                origin == format!("http://{host}") || origin == format!("https://{host}")
            })
            .unwrap_or(false),
    };
    if allowed {
        Ok(())
    } else {
        Err(Forged::Origin(bounded()))
    }
}

/// Rule 2: the form's token, given the form's fields.
fn form_check(path: &str, headers: &HeaderMap, form: &[u8]) -> Result<(), Forged> {
    let sent = form_urlencoded::parse(form)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let expected = if path == "/login" {
        cookie(headers, LOGIN_COOKIE).map(str::to_owned)
    } else {
        // without a session the handler signs nobody in and changes nothing
        match cookie(headers, SESSION_COOKIE) {
            Some(s) => Some(form_token(s)),
            None => return Ok(()),
        }
    };
    match expected {
        Some(e) if !sent.is_empty() && equal(&sent, &e) => Ok(()),
        _ => Err(Forged::FormToken),
    }
}

/// The layer: rules 1 to 3 for every state-changing request.
pub async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return next.run(req).await;
    }
    let headers = req.headers().clone();
    let path = req.uri().path().to_owned();
    let public = app.config.server.public_url.as_deref();
    if let Err(f) = origin_check(&headers, public) {
        return refused(&app, &headers, &path, f).await;
    }
    let session = cookie(&headers, SESSION_COOKIE).is_some();
    let bearer = headers.contains_key(header::AUTHORIZATION);
    if path.starts_with("/api/") {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if session && !bearer && !json {
            return refused(&app, &headers, &path, Forged::NotJson).await;
        }
        return next.run(req).await;
    }
    // a page's form: read it (bounded) to see its token, then hand it on whole
    let (parts, body) = req.into_parts();
    let Ok(form) = axum::body::to_bytes(body, MAX_FORM).await else {
        return refused(&app, &headers, &path, Forged::TooLarge).await;
    };
    if let Err(f) = form_check(&path, &headers, &form) {
        return refused(&app, &headers, &path, f).await;
    }
    next.run(Request::from_parts(parts, Body::from(form))).await
}

async fn refused(app: &App, headers: &HeaderMap, path: &str, f: Forged) -> Response {
    tracing::warn!(path, reason = ?f, "cross-site request refused");
    if cookie(headers, SESSION_COOKIE).is_some()
        && let Ok(who) = caller(app, headers).await
    {
        let origin = match &f {
            Forged::Origin(o) => Some(o.as_str()),
            _ => None,
        };
        let entry = Entry {
            actor: &who.username,
            action: "csrf_refused",
            detail: serde_json::json!({
                "path": path.chars().take(200).collect::<String>(),
                "origin": origin,
                "reason": f.why(),
            }),
            ..Default::default()
        };
        if let Err(e) = app.store.audit(entry).await {
            return super::error::fail(e);
        }
    }
    // the body may be left unread: the connection is not one to reuse
    (
        StatusCode::FORBIDDEN,
        [(header::CONNECTION, "close")],
        format!("{}\n", f.why()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origins_are_compared_whole() {
        assert_eq!(
            origin_of("https://Rec.Example:443/x?y").as_deref(),
            Some("https://rec.example")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("javascript:alert(1)"), None);
        let host = (header::HOST, "127.0.0.1:8080");
        let ok = |o: &str| origin_check(&headers(&[host.clone(), (header::ORIGIN, o)]), None);
        assert!(ok("http://127.0.0.1:8080").is_ok());
        assert!(ok("https://127.0.0.1:8080").is_ok());
        // another port of the same host is another origin (and the same site)
        assert!(ok("http://127.0.0.1:8081").is_err());
        assert!(ok("http://127.0.0.1:8080.evil.example").is_err());
        assert!(ok("null").is_err());
        // Referer when there is no Origin
        let r = headers(&[host.clone(), (header::REFERER, "http://127.0.0.1:9/a")]);
        assert!(origin_check(&r, None).is_err());
        let r = headers(&[host.clone(), (header::REFERER, "http://127.0.0.1:8080/a")]);
        assert!(origin_check(&r, None).is_ok());
        // behind a proxy: the configured address, whatever Host says
        let h = headers(&[host, (header::ORIGIN, "https://rec.example")]);
        assert!(origin_check(&h, Some("https://rec.example/")).is_ok());
        assert!(origin_check(&h, Some("https://other.example")).is_err());
    }

    #[test]
    fn forms_need_their_sessions_token() {
        let h = headers(&[(header::COOKIE, "a=b; cv_session=s3cret")]);
        let good = format!("reason=x&csrf={}", form_token("s3cret"));
        assert!(form_check("/calls/1/erase", &h, good.as_bytes()).is_ok());
        let other = format!("reason=x&csrf={}", form_token("another"));
        assert_eq!(
            form_check("/calls/1/erase", &h, other.as_bytes()),
            Err(Forged::FormToken)
        );
        assert_eq!(
            form_check("/calls/1/erase", &h, b"reason=x"),
            Err(Forged::FormToken)
        );
        // no session: nothing to protect (the handler sends the browser to sign in)
        assert!(form_check("/calls/1/erase", &HeaderMap::new(), b"reason=x").is_ok());
        // sign-in: the form's random token must match its cookie
        let h = headers(&[(header::COOKIE, "cv_login=abc123")]);
        assert!(form_check("/login", &h, b"username=u&csrf=abc123").is_ok());
        assert!(form_check("/login", &h, b"username=u&csrf=abc124").is_err());
        assert!(form_check("/login", &HeaderMap::new(), b"username=u&csrf=").is_err());
    }
}
