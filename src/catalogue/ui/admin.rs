//! The administrator's pages: users, agents, and a call's SIP ladder.

use super::call::{CallView, call_view};
use super::{UserView, opt, page};
use crate::catalogue::App;
use crate::catalogue::audit::Entry;
use crate::catalogue::error::fail;
use crate::catalogue::people::{Caller, Role, UserError};
use crate::catalogue::signed_in::{Admin, Allowed, ManagesPeople, Page};
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

#[derive(Template)]
#[template(path = "signalling.html")]
struct SignallingPage {
    user: Option<UserView>,
    sip_call_id: String,
    call: Option<CallView>,
    /// The call found is restricted: not shown.
    restricted: bool,
}

#[derive(Deserialize, Default)]
pub struct SignallingQuery {
    #[serde(default)]
    pub sip_call_id: String,
}

pub async fn signalling(
    State(app): State<App>,
    Allowed(who, _): Allowed<Admin, Page>,
    Query(q): Query<SignallingQuery>,
) -> Response {
    let sip = q.sip_call_id.trim().to_owned();
    let mut call = None;
    if !sip.is_empty() {
        let found = match app.store.call_of_sip_call_id(&sip).await {
            Ok(found) => found,
            Err(e) => return fail(e),
        };
        let restricted = match &found {
            Some(id) => match app.store.call_flags(id).await {
                Ok(flags) => flags.is_some_and(|f| f.restricted),
                Err(e) => return fail(e),
            },
            None => false,
        };
        if restricted {
            return page(&SignallingPage {
                user: Some(UserView::of(&who)),
                sip_call_id: sip,
                call: None,
                restricted: true,
            });
        }
        if let Some(found) = found {
            if let Err(e) = app
                .store
                .audit(Entry {
                    actor: &who.username,
                    action: "view_signalling",
                    call_id: Some(&found),
                    ..Default::default()
                })
                .await
            {
                return fail(e);
            }
            match call_view(&app, &found).await {
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
        restricted: false,
    })
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    user: Option<UserView>,
    users: Vec<(String, String, String, String)>,
    agents: Vec<crate::catalogue::store::AgentRow>,
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

pub async fn admin(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Page>,
) -> Response {
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
    Allowed(who, _): Allowed<ManagesPeople, Page>,
    Form(f): Form<NewUserForm>,
) -> Response {
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
    let added = match app
        .store
        .add_user(
            &f.username,
            &f.password,
            role,
            &services,
            extension.as_deref(),
            Some(&who.username),
        )
        .await
    {
        Ok(added) => added,
        Err(why @ (UserError::Invalid | UserError::Exists(_))) => {
            return admin_page(&app, &who, Some(why.to_string())).await;
        }
        Err(other) => return other.response(),
    };
    let waits = added == crate::catalogue::people::Added::AwaitingApproval;
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "user_add",
            detail: json!({ "username": f.username, "role": f.role, "services": services, "awaiting_approval": waits }),
            ..Default::default()
        })
        .await
    {
        return fail(e);
    }
    let message = if waits {
        format!(
            "User {} added as {}: a DPO must approve the account before it can sign in.",
            f.username,
            role.as_str()
        )
    } else {
        format!("User {} added as {}.", f.username, role.as_str())
    };
    admin_page(&app, &who, Some(message)).await
}

#[derive(Deserialize)]
pub struct NewAgentForm {
    pub name: String,
}

/// Registers a recording server; its token is shown on the page once.
pub async fn add_agent(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Page>,
    Form(f): Form<NewAgentForm>,
) -> Response {
    let name = f.name.trim().to_owned();
    if let Some(why) = crate::catalogue::people::agent_name_problem(&name) {
        return admin_page(&app, &who, Some(format!("{why}."))).await;
    }
    let token = crate::catalogue::people::new_token();
    if let Err(e) = app
        .store
        .add_agent(&name, &crate::catalogue::ingest::token_hash(&token))
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
