//! Who is asking: the signed-in caller of a request, and what their role allows, as axum
//! extractors the API and the web UI share.
//!
//! A handler names what it needs in its signature: [`SignedIn`] for anyone signed in,
//! [`Allowed`] for a caller whose role has a [`Permission`]. Without a valid session or
//! token the API answers 401 and a page sends the browser to the sign-in form; a role
//! without the permission gets 403, in the API's words or as the UI's "not allowed" page
//! ([`Front`]). Checks finer than a role (a manager's services, a restricted call) are the
//! handlers', through the same store calls for both fronts.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use super::App;
use super::people::{Caller, Role, caller, refuse};

/// How a front end turns people away.
pub trait Front: Send + Sync + 'static {
    /// Nobody (valid) is signed in; `refusal` is the API's answer.
    fn unsigned(refusal: Response) -> Response;
    /// `who`'s role may not do `what`.
    fn refused(who: &Caller, what: &str) -> Response;
}

/// The JSON API: the status and a line saying why.
pub struct Api;

impl Front for Api {
    fn unsigned(refusal: Response) -> Response {
        refusal
    }
    fn refused(_who: &Caller, what: &str) -> Response {
        refuse(StatusCode::FORBIDDEN, &format!("your role may not {what}"))
    }
}

/// The web UI: to the sign-in form, or a page saying the role does not give access.
pub struct Page;

impl Front for Page {
    fn unsigned(_refusal: Response) -> Response {
        Redirect::to("/login").into_response()
    }
    fn refused(who: &Caller, _what: &str) -> Response {
        super::ui::not_allowed(who)
    }
}

/// The signed-in caller of a request.
pub struct SignedIn<F: Front>(pub Caller, pub PhantomData<F>);

impl<F: Front> FromRequestParts<App> for SignedIn<F> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        match caller(app, &parts.headers).await {
            Ok(who) => Ok(SignedIn(who, PhantomData)),
            Err(refusal) => Err(F::unsigned(refusal)),
        }
    }
}

/// Something a role may do.
pub trait Permission: Send + Sync + 'static {
    /// What it is, for "your role may not …".
    const WHAT: &'static str;
    fn allows(role: Role) -> bool;
}

/// Search calls and read their metadata.
pub struct FindsCalls;
/// Retrieve audio, for a stated purpose.
pub struct HearsCalls;
/// Read and verify the audit log.
pub struct ReadsAudit;
/// Add users and agents.
pub struct ManagesPeople;
/// What only the data-protection officer does.
pub struct Dpo;
/// What only an administrator does.
pub struct Admin;
/// See which catalogue keys recordings still need.
pub struct SeesKeys;

impl Permission for FindsCalls {
    const WHAT: &'static str = "search or see calls";
    fn allows(role: Role) -> bool {
        role.finds_calls()
    }
}
impl Permission for HearsCalls {
    const WHAT: &'static str = "retrieve recordings";
    fn allows(role: Role) -> bool {
        role.hears_calls()
    }
}
impl Permission for ReadsAudit {
    const WHAT: &'static str = "read the audit log";
    fn allows(role: Role) -> bool {
        role.reads_audit()
    }
}
impl Permission for ManagesPeople {
    const WHAT: &'static str = "manage users";
    fn allows(role: Role) -> bool {
        role.manages_people()
    }
}
impl Permission for Dpo {
    const WHAT: &'static str = "do what only the data-protection officer does";
    fn allows(role: Role) -> bool {
        role == Role::Dpo
    }
}
impl Permission for SeesKeys {
    const WHAT: &'static str = "see key usage";
    fn allows(role: Role) -> bool {
        role.sees_keys()
    }
}
impl Permission for Admin {
    const WHAT: &'static str = "do what only an administrator does";
    fn allows(role: Role) -> bool {
        role == Role::Admin
    }
}

/// The signed-in caller, whose role has permission `P`.
pub struct Allowed<P: Permission, F: Front>(pub Caller, pub PhantomData<(P, F)>);

impl<P: Permission, F: Front> FromRequestParts<App> for Allowed<P, F> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        let SignedIn(who, _) = SignedIn::<F>::from_request_parts(parts, app).await?;
        if P::allows(who.role) {
            Ok(Allowed(who, PhantomData))
        } else {
            Err(F::refused(&who, P::WHAT))
        }
    }
}

impl<P: Permission, F: Front> Allowed<P, F> {
    /// The caller, as proof for the functions both fronts share that its role has `P`.
    pub fn permitted(&self) -> Permitted<'_, P> {
        Permitted(&self.0, PhantomData)
    }
}

/// A caller whose role has permission `P`: made only by [`Allowed::permitted`], so a function
/// taking one cannot be reached without the check.
pub struct Permitted<'a, P: Permission>(&'a Caller, PhantomData<P>);

impl<P: Permission> std::ops::Deref for Permitted<'_, P> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        self.0
    }
}
