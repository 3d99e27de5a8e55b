//! The administrator's pages: users (added, disabled, enabled, deleted, reset, edited), API
//! tokens, agents, and a call's SIP ladder. The changes are [`accounts`]'.

use super::call::{CallView, call_view};
use super::{UserView, opt, page};
use crate::catalogue::App;
use crate::catalogue::accounts::{self, AccountError, Change, Outcome};
use crate::catalogue::audit::Entry;
use crate::catalogue::error::fail;
use crate::catalogue::people::{Caller, Role, UserError, UserRow};
use crate::catalogue::signed_in::{Admin, Allowed, ManagesPeople, Page};
use askama::Template;
use axum::Form;
use axum::body::Bytes;
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
                    for m in &mut c.messages {
                        m.text = crate::catalogue::ladder::mask_numbers(&m.text);
                    }
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
    users: Vec<UserRow>,
    agents: Vec<crate::catalogue::store::AgentRow>,
    tokens: Vec<TokenView>,
    /// The services agents report, to choose a manager's from.
    services: Vec<String>,
    message: Option<String>,
    /// A new agent's token, shown once.
    token: Option<(String, String)>,
    /// A user's temporary password after a reset, shown once.
    temporary: Option<(String, String)>,
}

struct TokenView {
    id: String,
    username: String,
    label: String,
    created: String,
    expires: String,
}

/// What the admin page shows once, after an action.
#[derive(Default)]
struct Shown {
    message: Option<String>,
    token: Option<(String, String)>,
    temporary: Option<(String, String)>,
}

async fn admin_page(app: &App, who: &Caller, message: Option<String>) -> Response {
    admin_page_with(
        app,
        who,
        Shown {
            message,
            ..Default::default()
        },
    )
    .await
}

async fn admin_page_with(app: &App, who: &Caller, shown: Shown) -> Response {
    let users = match app.store.list_users().await {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let mut agents = match app.store.list_agents().await {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    for a in &mut agents {
        if let Some(ms) = crate::catalogue::store::rfc3339_ms(&a.created_at) {
            a.created_at = app.zone.when(ms);
        }
    }
    let tokens = match accounts::list_tokens(&app.store, None).await {
        Ok(t) => t
            .into_iter()
            .map(|t| TokenView {
                id: t.id,
                username: t.username,
                label: t.label,
                created: app.zone.when(t.created_ms),
                expires: app.zone.when(t.expires_ms),
            })
            .collect(),
        Err(e) => return fail(e),
    };
    let services = match accounts::known_services(&app.store).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    page(&AdminPage {
        user: Some(UserView::of(who)),
        users,
        agents,
        tokens,
        services,
        message: shown.message,
        token: shown.token,
        temporary: shown.temporary,
    })
}

pub async fn admin(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Page>,
) -> Response {
    admin_page(&app, &who, None).await
}

/// A form's fields, repeated ones (the services' check boxes) in order.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn of(body: &[u8]) -> Fields {
        Fields(form_urlencoded::parse(body).into_owned().collect())
    }
    fn one(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

pub async fn add_user(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Page>,
    body: Bytes,
) -> Response {
    let f = Fields::of(&body);
    let (username, role_name) = (f.one("username"), f.one("role"));
    let Some(role) = Role::parse(&role_name) else {
        return admin_page(&app, &who, Some("Unknown role.".into())).await;
    };
    let services = match accounts::known_services(&app.store).await {
        Ok(known) => match accounts::resolve_services(&known, &f.all("services")) {
            Ok(s) => s,
            Err(why) => return admin_page(&app, &who, Some(format!("{why}."))).await,
        },
        Err(e) => return fail(e),
    };
    let extension = opt(&f.one("extension"));
    let added = match app
        .store
        .add_user(
            &username,
            &f.one("password"),
            role,
            &services,
            extension.as_deref(),
            Some(&who.username),
        )
        .await
    {
        Ok(added) => added,
        Err(why @ (UserError::Invalid | UserError::Exists(_))) => {
            return admin_page(&app, &who, Some(format!("{why}."))).await;
        }
        Err(other) => return other.response(),
    };
    let waits = added == crate::catalogue::people::Added::AwaitingApproval;
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "user_add",
            detail: json!({ "username": username, "role": role_name, "services": services, "awaiting_approval": waits }),
            ..Default::default()
        })
        .await
    {
        return fail(e);
    }
    let message = if waits {
        format!(
            "User {username} added as {}: a DPO must approve the account before it can sign in.",
            role.as_str()
        )
    } else {
        format!("User {username} added as {}.", role.as_str())
    };
    admin_page(&app, &who, Some(message)).await
}

#[derive(Deserialize)]
pub struct UserActionForm {
    pub username: String,
    /// disable, enable, reset or delete.
    pub action: String,
    #[serde(default)]
    pub reason: String,
}

/// Disables, enables, deletes an account or resets its password, with the reason given.
pub async fn user_action(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Page>,
    Form(f): Form<UserActionForm>,
) -> Response {
    let c = Change {
        actor: &who.username,
        reason: &f.reason,
        console: false,
    };
    let name = f.username.as_str();
    let waits = |o: Outcome, done: String| match o {
        Outcome::Done => done,
        Outcome::AwaitingApproval => {
            format!("{done} A DPO must approve it before {name} can sign in.")
        }
    };
    let done = match f.action.as_str() {
        "disable" => accounts::disable_user(&app.store, c, name)
            .await
            .map(|()| format!("{name} is disabled and signed out everywhere.")),
        "enable" => accounts::enable_user(&app.store, c, name)
            .await
            .map(|o| waits(o, format!("{name} is enabled."))),
        "second-factor" => accounts::reset_second_factor(&app.store, c, name)
            .await
            .map(|o| {
                waits(
                    o,
                    format!("{name}'s second factor is cleared: they set up a new one when they next sign in."),
                )
            }),
        "delete" => accounts::delete_user(&app.store, c, name)
            .await
            .map(|()| format!("{name} is deleted; their audit history stays.")),
        "reset" => match accounts::reset_password(&app.store, c, name).await {
            Ok((temporary, o)) => {
                let message = waits(
                    o,
                    format!(
                        "{name}'s password is reset: they set a new one when they sign in with the temporary password."
                    ),
                );
                return admin_page_with(
                    &app,
                    &who,
                    Shown {
                        message: Some(message),
                        temporary: Some((name.to_owned(), temporary)),
                        ..Default::default()
                    },
                )
                .await;
            }
            Err(e) => Err(e),
        },
        _ => return admin_page(&app, &who, Some("Unknown action.".into())).await,
    };
    match done {
        Ok(message) => admin_page(&app, &who, Some(message)).await,
        Err(AccountError::Database(e)) => fail(e),
        Err(why) => admin_page(&app, &who, Some(format!("Not done: {why}."))).await,
    }
}

/// Changes a manager's services or a member of staff's extension.
pub async fn edit_user(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Page>,
    body: Bytes,
) -> Response {
    let f = Fields::of(&body);
    let name = f.one("username");
    let services = match accounts::known_services(&app.store).await {
        Ok(known) => match accounts::resolve_services(&known, &f.all("services")) {
            Ok(s) => s,
            Err(why) => return admin_page(&app, &who, Some(format!("Not done: {why}."))).await,
        },
        Err(e) => return fail(e),
    };
    let is_manager = f.one("role") == "manager";
    let edit = accounts::Edit {
        services: is_manager.then_some(services),
        extension: Some(opt(&f.one("extension"))),
    };
    let reason = f.one("reason");
    let c = Change {
        actor: &who.username,
        reason: &reason,
        console: false,
    };
    match accounts::edit_user(&app.store, c, &name, &edit).await {
        Ok(Outcome::Done) => admin_page(&app, &who, Some(format!("{name} is changed."))).await,
        Ok(Outcome::AwaitingApproval) => {
            admin_page(
                &app,
                &who,
                Some(format!(
                    "{name} is changed; the services added wait for a DPO's approval."
                )),
            )
            .await
        }
        Err(AccountError::Database(e)) => fail(e),
        Err(why) => admin_page(&app, &who, Some(format!("Not done: {why}."))).await,
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    pub id: String,
    #[serde(default)]
    pub reason: String,
}

/// Revokes an API token.
pub async fn revoke_token(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Page>,
    Form(f): Form<RevokeForm>,
) -> Response {
    let c = Change {
        actor: &who.username,
        reason: &f.reason,
        console: false,
    };
    match accounts::revoke_token(&app.store, c, &f.id, None).await {
        Ok(()) => admin_page(&app, &who, Some(format!("Token {} is revoked.", f.id))).await,
        Err(AccountError::Database(e)) => fail(e),
        Err(why) => admin_page(&app, &who, Some(format!("Not done: {why}."))).await,
    }
}

#[derive(Deserialize)]
pub struct AgentActionForm {
    pub name: String,
    /// disable or enable.
    pub action: String,
    #[serde(default)]
    pub reason: String,
}

/// Disables an agent (its token stops working at once) or enables it again.
pub async fn agent_action(
    State(app): State<App>,
    Allowed(who, _): Allowed<ManagesPeople, Page>,
    Form(f): Form<AgentActionForm>,
) -> Response {
    let c = Change {
        actor: &who.username,
        reason: &f.reason,
        console: false,
    };
    let disable = match f.action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return admin_page(&app, &who, Some("Unknown action.".into())).await,
    };
    match accounts::set_agent_disabled(&app.store, c, &f.name, disable).await {
        Ok(()) => {
            let state = if disable {
                "disabled: its token is refused"
            } else {
                "enabled"
            };
            admin_page(&app, &who, Some(format!("Agent {} is {state}.", f.name))).await
        }
        Err(AccountError::Database(e)) => fail(e),
        Err(why) => admin_page(&app, &who, Some(format!("Not done: {why}."))).await,
    }
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
    match app
        .store
        .add_agent(&name, &crate::catalogue::ingest::token_hash(&token))
        .await
    {
        Ok(()) => {}
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            let why = format!(
                "An agent named {name} is registered already: choose another name (or disable the old one)."
            );
            return admin_page(&app, &who, Some(why)).await;
        }
        Err(e) => return fail(e),
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
    admin_page_with(
        &app,
        &who,
        Shown {
            token: Some((name, token)),
            ..Default::default()
        },
    )
    .await
}
