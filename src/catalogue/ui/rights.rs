//! The DPO's pages and forms: legal hold, restriction, erasure, training use, subject access
//! and consent.

use super::{Message, UserView, opt, page};
use crate::catalogue::App;
use crate::catalogue::people::Caller;
use crate::catalogue::signed_in::{Allowed, Dpo, Page};
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

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
    who: Allowed<Dpo, Page>,
    id: String,
    f: SwitchForm,
    hold: bool,
) -> Response {
    let s = crate::catalogue::rights::Switch {
        on: f.on == "1",
        reason: f.reason,
    };
    let r = crate::catalogue::rights::flag_as(&app, who.permitted(), &id, &s, hold).await;
    after(&who.0, r, format!("/calls/{id}"))
}

pub async fn hold(
    State(app): State<App>,
    who: Allowed<Dpo, Page>,
    Path(id): Path<String>,
    Form(f): Form<SwitchForm>,
) -> Response {
    flag_form(app, who, id, f, true).await
}

pub async fn restrict(
    State(app): State<App>,
    who: Allowed<Dpo, Page>,
    Path(id): Path<String>,
    Form(f): Form<SwitchForm>,
) -> Response {
    flag_form(app, who, id, f, false).await
}

pub async fn erase(
    State(app): State<App>,
    who: Allowed<Dpo, Page>,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    if f.confirm != "yes" {
        return after(
            &who.0,
            StatusCode::UNPROCESSABLE_ENTITY.into_response(),
            String::new(),
        );
    }
    let r = crate::catalogue::rights::erase_as(&app, who.permitted(), &id, &f.reason).await;
    after(&who.0, r, "/search".into())
}

pub async fn training(
    State(app): State<App>,
    who: Allowed<Dpo, Page>,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let t = crate::catalogue::rights::TrainingExport {
        reference: f.reference,
        silence: Vec::new(),
    };
    let r = crate::catalogue::rights::training_export_as(&app, who.permitted(), &id, &t).await;
    if r.status().is_success() {
        r
    } else {
        after(&who.0, r, String::new())
    }
}

#[derive(Template)]
#[template(path = "dpo.html")]
struct DpoPage {
    user: Option<UserView>,
    message: Option<String>,
    /// What waits for a DPO's approval (accounts, services) an admin asked for.
    waiting: Vec<crate::catalogue::approvals::Approval>,
    /// A subject-access request's count, before its bundle downloads.
    sar: Option<SarPreview>,
}

/// The DPO's page, with the accounts waiting for approval.
async fn dpo_page(
    app: &App,
    who: &crate::catalogue::people::Caller,
    message: Option<String>,
) -> Response {
    dpo_page_with(app, who, message, None).await
}

async fn dpo_page_with(
    app: &App,
    who: &crate::catalogue::people::Caller,
    message: Option<String>,
    sar: Option<SarPreview>,
) -> Response {
    let waiting = match app.store.awaiting_approval().await {
        Ok(w) => w,
        Err(e) => return crate::catalogue::error::fail(e),
    };
    page(&DpoPage {
        user: Some(UserView::of(who)),
        message,
        waiting,
        sar,
    })
}

pub async fn dpo(State(app): State<App>, Allowed(who, _): Allowed<Dpo, Page>) -> Response {
    dpo_page(&app, &who, None).await
}

#[derive(Deserialize)]
pub struct ApproveForm {
    pub username: String,
    /// What the page showed ([`crate::catalogue::approvals::Approval::version`]).
    #[serde(default)]
    pub version: String,
}

/// The second person's approval of a listening account.
pub async fn approve(
    State(app): State<App>,
    who: Allowed<Dpo, Page>,
    Form(f): Form<ApproveForm>,
) -> Response {
    let approved = match crate::catalogue::api::approve_user_as(
        &app,
        who.permitted(),
        &f.username,
        &f.version,
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return after(&who.0, r, String::new()),
    };
    let mut done = format!("Approved for {}: {}.", f.username, approved.approval.what);
    if let Some(code) = &approved.setup_code {
        done.push_str(&format!(
            " Give {} this set-up code yourself (not through the admin who asked): they need it, once, to set up their second factor at their first sign-in. It is shown only now: {code}",
            f.username
        ));
    }
    dpo_page(&app, &who.0, Some(done)).await
}

#[derive(Deserialize)]
pub struct SubjectAccessForm {
    pub caller: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    pub reference: String,
    /// Set by the confirmation form: download the bundle (without it, count the calls).
    #[serde(default)]
    pub confirm: String,
}

/// What a subject-access request found, shown before the bundle downloads.
pub struct SarPreview {
    pub subject: String,
    pub calls: usize,
    pub caller: String,
    pub from: String,
    pub to: String,
    pub reference: String,
}

pub async fn subject_access(
    State(app): State<App>,
    who: Allowed<Dpo, Page>,
    Form(f): Form<SubjectAccessForm>,
) -> Response {
    let q = crate::catalogue::rights::SubjectAccess {
        caller: f.caller.clone(),
        from: opt(&f.from),
        to: opt(&f.to),
        reference: f.reference.clone(),
        preview: f.confirm.is_empty(),
    };
    if q.preview {
        return match crate::catalogue::rights::preview_subject_access(&app, &who.permitted(), &q)
            .await
        {
            Ok((subject, calls)) => {
                dpo_page_with(
                    &app,
                    &who.0,
                    None,
                    Some(SarPreview {
                        subject,
                        calls,
                        caller: f.caller,
                        from: f.from,
                        to: f.to,
                        reference: f.reference,
                    }),
                )
                .await
            }
            Err(r) => after(&who.0, r, String::new()),
        };
    }
    let r = crate::catalogue::rights::subject_access_as(&app, who.permitted(), &q).await;
    if r.status().is_success() {
        r
    } else {
        after(&who.0, r, String::new())
    }
}

#[derive(Deserialize)]
pub struct ConsentForm {
    pub party: String,
    pub agreed: String,
}

pub async fn consent(
    State(app): State<App>,
    who: Allowed<Dpo, Page>,
    Form(f): Form<ConsentForm>,
) -> Response {
    let agreed = f.agreed == "yes";
    let c = crate::catalogue::rights::Consent {
        party: f.party.clone(),
        agreed,
    };
    let r = crate::catalogue::rights::consent_as(&app, who.permitted(), &c).await;
    if !r.status().is_success() {
        return after(&who.0, r, String::new());
    }
    let message = format!(
        "Recorded: extension {} has {} training use.",
        f.party.trim(),
        if agreed {
            "agreed to"
        } else {
            "withdrawn from"
        }
    );
    dpo_page(&app, &who.0, Some(message)).await
}

// The admin's pages: signalling of a call (no caller number, no audio), users, agents.
