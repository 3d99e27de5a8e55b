//! The host's console: `callvault catalogue …` subcommands an administrator runs on the
//! catalogue's server (the first admin, break-glass, scripts without a browser).
//!
//! Owns opening the store for one command and the console's actor name in the audit log
//! (`console:<login name>`). Each command goes through the same functions as the pages and
//! the API ([`super::accounts`], the store) and is audited like them; what it must not do is
//! change anything those functions would not.

use anyhow::Context;

use super::accounts::{self, Change, Edit, Outcome};
use super::{App, CatalogueConfig, audit, ingest, open, people};

/// Runs `f` on the catalogue's store, on a runtime of its own.
fn on_console<T>(
    cfg: &CatalogueConfig,
    f: impl AsyncFnOnce(&App) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = open(cfg).await?;
        let result = f(&app).await;
        app.store.close().await;
        result
    })
}

/// Who the audit log names for a console command: the login name behind `sudo`, if any.
pub fn actor() -> String {
    let name = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    match name {
        Some(n) => format!("console:{n}"),
        None => "console".into(),
    }
}

/// `callvault catalogue agent-add NAME`: registers an agent and returns its new token
/// (shown once; only its hash is kept). Audited as the admin page's registration is.
pub fn add_agent(cfg: &CatalogueConfig, name: &str) -> anyhow::Result<String> {
    if let Some(why) = people::agent_name_problem(name) {
        anyhow::bail!("agent name {name:?}: {why}");
    }
    on_console(cfg, async |app| {
        let token = people::new_token();
        app.store
            .add_agent(name, &ingest::token_hash(&token))
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => anyhow::anyhow!(
                    "an agent named {name:?} is registered already (`callvault catalogue agent-disable {name}` stops its token; choose another name for a new one)"
                ),
                _ => anyhow::Error::new(e).context(format!("cannot add agent {name:?}")),
            })?;
        app.store
            .audit(audit::Entry {
                actor: &actor(),
                action: "agent_add",
                detail: serde_json::json!({ "agent": name }),
                ..Default::default()
            })
            .await?;
        Ok(token)
    })
}

/// `callvault catalogue user-add`: adds a user, active at once (the first admin is made this
/// way). A manager's services are read against the services agents report.
pub fn add_user(
    cfg: &CatalogueConfig,
    username: &str,
    password: &str,
    role: people::Role,
    services: &[String],
    extension: Option<&str>,
) -> anyhow::Result<()> {
    on_console(cfg, async |app| {
        let services = if services.is_empty() {
            Vec::new()
        } else {
            let known = accounts::known_services(&app.store).await?;
            accounts::resolve_services(&known, services)?
        };
        app.store
            .add_user(username, password, role, &services, extension, None)
            .await?;
        app.store
            .audit(audit::Entry {
                actor: &actor(),
                action: "user_add",
                detail: serde_json::json!({ "username": username, "role": role.as_str(), "services": services }),
                ..Default::default()
            })
            .await?;
        Ok(())
    })
}

/// What the console does to an account, a token or an agent.
pub enum AccountCommand {
    Disable(String),
    Enable(String),
    Delete(String),
    ResetPassword(String),
    ResetSecondFactor(String),
    Edit {
        username: String,
        /// As typed, comma-separated.
        services: Option<String>,
        /// "" removes it.
        extension: Option<String>,
    },
    RevokeToken(String),
    DisableAgent(String),
    EnableAgent(String),
}

/// Does `command` with `reason`; returns what to tell the person at the console.
pub fn account(
    cfg: &CatalogueConfig,
    command: AccountCommand,
    reason: &str,
) -> anyhow::Result<String> {
    let who = actor();
    let c = Change {
        actor: &who,
        reason,
        console: true,
    };
    on_console(cfg, async |app| {
        let store = &app.store;
        Ok(match command {
            AccountCommand::Disable(name) => {
                accounts::disable_user(store, c, &name).await?;
                format!("{name} is disabled and signed out everywhere")
            }
            AccountCommand::Enable(name) => {
                accounts::enable_user(store, c, &name).await?;
                format!("{name} is enabled")
            }
            AccountCommand::Delete(name) => {
                accounts::delete_user(store, c, &name).await?;
                format!("{name} is deleted; their audit history stays")
            }
            AccountCommand::ResetPassword(name) => {
                let (temporary, _) = accounts::reset_password(store, c, &name).await?;
                format!(
                    "{temporary}\n(the temporary password of {name}: they choose a new one when they sign in with it)"
                )
            }
            AccountCommand::ResetSecondFactor(name) => {
                accounts::reset_second_factor(store, c, &name).await?;
                format!("{name}'s second factor is cleared: they set up a new one at sign-in")
            }
            AccountCommand::Edit {
                username,
                services,
                extension,
            } => {
                let services = match services {
                    Some(line) => {
                        let known = accounts::known_services(store).await?;
                        Some(accounts::resolve_services(
                            &known,
                            &accounts::typed_services(&line),
                        )?)
                    }
                    None => None,
                };
                let edit = Edit {
                    services,
                    extension: extension.map(|e| Some(e.trim().to_owned()).filter(|e| !e.is_empty())),
                };
                match accounts::edit_user(store, c, &username, &edit).await? {
                    Outcome::Done => format!("{username} is changed"),
                    Outcome::AwaitingApproval => {
                        format!("{username} is changed; the services added wait for a DPO")
                    }
                }
            }
            AccountCommand::RevokeToken(id) => {
                accounts::revoke_token(store, c, &id, None).await?;
                format!("token {id} is revoked")
            }
            AccountCommand::DisableAgent(name) => {
                accounts::set_agent_disabled(store, c, &name, true).await?;
                format!("agent {name} is disabled: its token is refused")
            }
            AccountCommand::EnableAgent(name) => {
                accounts::set_agent_disabled(store, c, &name, false).await?;
                format!("agent {name} is enabled")
            }
        })
    })
    .context("nothing was changed")
}

/// `callvault catalogue users`: one line per account.
pub fn users(cfg: &CatalogueConfig) -> anyhow::Result<Vec<people::UserRow>> {
    on_console(cfg, async |app| Ok(app.store.list_users().await?))
}

/// `callvault catalogue tokens`: every API token (never its secret).
pub fn tokens(cfg: &CatalogueConfig) -> anyhow::Result<Vec<accounts::TokenRow>> {
    on_console(cfg, async |app| {
        Ok(accounts::list_tokens(&app.store, None).await?)
    })
}
