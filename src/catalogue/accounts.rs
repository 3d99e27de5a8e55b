//! The account lifecycle after an account exists: disable, enable, delete, reset a password,
//! change a manager's services or a member of staff's extension, list and revoke API tokens,
//! disable an agent.
//!
//! Owns those changes and their audit records (who, why, what changed): the CLI, the API and
//! the admin page call these functions, and nothing else changes an account. A change that
//! could let someone hear recordings (enabling a manager or DPO, widening a manager's services,
//! resetting their password, which the admin then knows) waits for a DPO's approval, as adding
//! such an account does ([`super::approvals`]): no single person gives anyone access to
//! recordings. It does not decide who may ask (the extractors of [`super::signed_in`] do, and
//! the host's console is trusted), and it never deletes an audit record: a deleted user keeps
//! their row, without password, services or extension, so the log's names keep their meaning.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use super::approvals::{ask_for_services, awaits_dpo, withdraw};
use super::audit::Entry;
use super::people::{Role, hash_password, refuse, split_services};
use super::store::{Store, now_ms};

/// Who asks for a change, and why (both go in the audit record).
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    pub actor: &'a str,
    pub reason: &'a str,
    /// From the host's console (`callvault catalogue …`): nothing waits for a DPO. Whoever
    /// runs it holds the database and the keys already, and it is how a catalogue whose only
    /// DPO is locked out gets one back (break-glass); it is audited like the rest.
    pub console: bool,
}

impl Change<'_> {
    /// Whether a change that could let someone hear recordings waits for a DPO.
    fn needs_dpo(&self, role: Role) -> bool {
        role.hears_calls() && !self.console
    }

    /// What a change to an account of `role` comes to: done, or waiting for a DPO.
    fn outcome_for(&self, role: Role) -> Outcome {
        if self.needs_dpo(role) {
            Outcome::AwaitingApproval
        } else {
            Outcome::Done
        }
    }
}

/// Why an account change was not made.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no user named {0:?}")]
    NoUser(String),
    #[error("no agent named {0:?}")]
    NoAgent(String),
    #[error("no API token {0:?} (GET /api/v1/tokens lists them)")]
    NoToken(String),
    #[error("say why (1 to 500 characters): the reason goes in the audit log")]
    NoReason,
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    UnknownService(String),
    #[error("cannot set the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl AccountError {
    /// 404 for what does not exist, 422 for what cannot be done, the store's status otherwise.
    pub fn response(self) -> Response {
        match self {
            AccountError::NoUser(_) | AccountError::NoAgent(_) | AccountError::NoToken(_) => {
                refuse(StatusCode::NOT_FOUND, &self.to_string())
            }
            AccountError::NoReason | AccountError::Refused(_) | AccountError::UnknownService(_) => {
                refuse(StatusCode::UNPROCESSABLE_ENTITY, &self.to_string())
            }
            AccountError::Hash(why) => super::error::fail(why),
            AccountError::Database(e) => super::error::fail(e),
        }
    }
}

/// What became of a change: done, or waiting for a DPO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    AwaitingApproval,
}

/// An API token as its owner and the admin see it: never its secret.
#[derive(Clone, Debug, Serialize)]
pub struct TokenRow {
    /// The first 16 hex digits of the token's SHA-256 (what revoking it names).
    pub id: String,
    pub username: String,
    pub label: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// A user as a change needs them.
struct Current {
    role: Role,
    services: Vec<String>,
    extension: Option<String>,
    disabled: bool,
    awaiting: bool,
    /// Signs in with the directory (no local password; services from its claims).
    directory: bool,
}

fn reason(c: &Change<'_>) -> Result<(), AccountError> {
    let n = c.reason.trim().chars().count();
    if n == 0 || n > 500 {
        return Err(AccountError::NoReason);
    }
    Ok(())
}

async fn current(store: &Store, username: &str) -> Result<Current, AccountError> {
    let row = sqlx::query(
        "SELECT role, services, extension, CASE WHEN disabled THEN 1 ELSE 0 END AS disabled, \
         CASE WHEN awaiting_approval THEN 1 ELSE 0 END AS awaiting, CASE WHEN directory_subject IS NULL THEN 0 ELSE 1 END AS directory \
         FROM users WHERE username = $1 AND deleted_ms IS NULL",
    )
    .bind(username)
    .fetch_optional(&store.pool)
    .await?
    .ok_or_else(|| AccountError::NoUser(username.to_owned()))?;
    let role: String = row.try_get("role")?;
    Ok(Current {
        role: Role::parse(&role).ok_or_else(|| AccountError::NoUser(username.to_owned()))?,
        services: split_services(&row.try_get::<String, _>("services")?),
        extension: row.try_get("extension")?,
        disabled: row.try_get::<i32, _>("disabled")? != 0,
        awaiting: row.try_get::<i32, _>("awaiting")? != 0,
        directory: row.try_get::<i32, _>("directory")? != 0,
    })
}

/// Refuses taking away the account of the one asking, or the last admin who can sign in
/// (nobody could then add users or agents without the host's console).
async fn keeps_an_admin(
    store: &Store,
    c: &Change<'_>,
    username: &str,
    user: &Current,
) -> Result<(), AccountError> {
    if c.actor == username {
        return Err(AccountError::Refused(
            "you cannot disable or delete your own account: ask another admin".into(),
        ));
    }
    if user.role == Role::Admin && !user.disabled {
        let admins: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND NOT disabled AND deleted_ms IS NULL",
        )
        .fetch_one(&store.pool)
        .await?
        .try_get("n")?;
        if admins <= 1 {
            return Err(AccountError::Refused(format!(
                "{username} is the last admin who can sign in: add another admin first"
            )));
        }
    }
    Ok(())
}

/// Ends every session, API token and grant of `username`, in `tx`.
async fn sign_out_everywhere(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    username: &str,
) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM sessions WHERE username = $1",
        "DELETE FROM grants WHERE username = $1",
    ] {
        sqlx::query(sql).bind(username).execute(&mut **tx).await?;
    }
    Ok(())
}

async fn audit(
    store: &Store,
    c: &Change<'_>,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let mut detail = detail;
    detail["reason"] = json!(c.reason.trim());
    store
        .audit(Entry {
            actor: c.actor,
            action,
            detail,
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// Disables an account: it cannot sign in, and its sessions, API tokens and grants end now.
pub async fn disable_user(
    store: &Store,
    c: Change<'_>,
    username: &str,
) -> Result<(), AccountError> {
    reason(&c)?;
    let user = current(store, username).await?;
    keeps_an_admin(store, &c, username, &user).await?;
    audit(store, &c, "user_disable", json!({ "username": username })).await?;
    let mut tx = store.write_tx().await?;
    sqlx::query("UPDATE users SET disabled = TRUE WHERE username = $1")
        .bind(username)
        .execute(&mut *tx)
        .await?;
    // what waited for a DPO goes too: an approval must not enable the account again
    withdraw(&mut tx, username).await?;
    sign_out_everywhere(&mut tx, username).await?;
    tx.commit().await?;
    Ok(())
}

/// Enables a disabled account. One that may hear recordings waits for a DPO's approval.
pub async fn enable_user(
    store: &Store,
    c: Change<'_>,
    username: &str,
) -> Result<Outcome, AccountError> {
    reason(&c)?;
    let user = current(store, username).await?;
    if !user.disabled {
        return Err(AccountError::Refused(format!("{username} is not disabled")));
    }
    if user.awaiting {
        return Err(AccountError::Refused(format!(
            "{username} already waits for a DPO's approval"
        )));
    }
    let outcome = c.outcome_for(user.role);
    audit(
        store,
        &c,
        "user_enable",
        json!({ "username": username, "awaiting_approval": outcome == Outcome::AwaitingApproval }),
    )
    .await?;
    let mut tx = store.write_tx().await?;
    match outcome {
        Outcome::Done => {
            sqlx::query("UPDATE users SET disabled = FALSE WHERE username = $1")
                .bind(username)
                .execute(&mut *tx)
                .await?;
        }
        // still disabled until the DPO approves
        Outcome::AwaitingApproval => awaits_dpo(&mut tx, &c, username, "enable").await?,
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Deletes an account: it can never sign in again, and its name is not given to anyone
/// else. Its audit history stays.
pub async fn delete_user(store: &Store, c: Change<'_>, username: &str) -> Result<(), AccountError> {
    reason(&c)?;
    let user = current(store, username).await?;
    keeps_an_admin(store, &c, username, &user).await?;
    audit(
        store,
        &c,
        "user_delete",
        json!({ "username": username, "role": user.role.as_str() }),
    )
    .await?;
    let mut tx = store.write_tx().await?;
    sqlx::query(
        "UPDATE users SET deleted_ms = $1, disabled = TRUE, password_hash = '', services = '', extension = NULL, \
         must_change_password = FALSE, totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL WHERE username = $2",
    )
    .bind(now_ms())
    .bind(username)
    .execute(&mut *tx)
    .await?;
    withdraw(&mut tx, username).await?;
    sign_out_everywhere(&mut tx, username).await?;
    tx.commit().await?;
    Ok(())
}

/// Resets a password: a new, random one the admin hands to the user, who must replace it at
/// their next sign-in; every session and token of theirs ends. An account that may hear
/// recordings then waits for a DPO's approval (the admin knows the temporary password).
pub async fn reset_password(
    store: &Store,
    c: Change<'_>,
    username: &str,
) -> Result<(String, Outcome), AccountError> {
    reason(&c)?;
    let user = current(store, username).await?;
    if user.disabled && !user.awaiting {
        return Err(AccountError::Refused(format!(
            "{username} is disabled: enable the account first"
        )));
    }
    directory_refuses(&user, username, "a password")?;
    let temporary = temporary_password();
    let outcome = c.outcome_for(user.role);
    let hash = {
        let t = temporary.clone();
        tokio::task::spawn_blocking(move || hash_password(&t))
            .await
            .map_err(|e| AccountError::Hash(e.to_string()))?
            .map_err(|e| AccountError::Hash(e.to_string()))?
    };
    audit(
        store,
        &c,
        "user_password_reset",
        json!({ "username": username, "awaiting_approval": outcome == Outcome::AwaitingApproval }),
    )
    .await?;
    let mut tx = store.write_tx().await?;
    sqlx::query(
        "UPDATE users SET password_hash = $1, must_change_password = TRUE WHERE username = $2",
    )
    .bind(hash)
    .bind(username)
    .execute(&mut *tx)
    .await?;
    if outcome == Outcome::AwaitingApproval {
        awaits_dpo(&mut tx, &c, username, "password_reset").await?;
    }
    sign_out_everywhere(&mut tx, username).await?;
    tx.commit().await?;
    Ok((temporary, outcome))
}

/// Clears a user's second factor (a lost phone): they set up a new one at their next
/// sign-in, and their sessions end. For an account that may hear recordings this waits for a
/// DPO's approval (the admin may know the password too).
pub async fn reset_second_factor(
    store: &Store,
    c: Change<'_>,
    username: &str,
) -> Result<Outcome, AccountError> {
    reason(&c)?;
    let user = current(store, username).await?;
    if user.disabled && !user.awaiting {
        return Err(AccountError::Refused(format!(
            "{username} is disabled: enable the account first"
        )));
    }
    directory_refuses(&user, username, "a second factor")?;
    let outcome = c.outcome_for(user.role);
    audit(
        store,
        &c,
        "user_second_factor_reset",
        json!({ "username": username, "awaiting_approval": outcome == Outcome::AwaitingApproval }),
    )
    .await?;
    let mut tx = store.write_tx().await?;
    sqlx::query(
        "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL WHERE username = $1",
    )
    .bind(username)
    .execute(&mut *tx)
    .await?;
    if outcome == Outcome::AwaitingApproval {
        awaits_dpo(&mut tx, &c, username, "second_factor_reset").await?;
    }
    sign_out_everywhere(&mut tx, username).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Refuses changing `what` of an account that signs in with the directory: the directory
/// holds it (a local password would be a way in the directory does not control).
fn directory_refuses(user: &Current, username: &str, what: &str) -> Result<(), AccountError> {
    if user.directory {
        return Err(AccountError::Refused(format!(
            "{username} signs in with the directory, which holds {what}: change it there"
        )));
    }
    Ok(())
}

/// 20 letters and digits without look-alikes (no l, o, 0, 1): 100 random bits an admin can
/// read out over the phone.
pub(crate) fn temporary_password() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut raw = [0u8; 20];
    if let Err(e) = getrandom::fill(&mut raw) {
        tracing::error!("the system's random generator failed: {e}");
        std::process::abort();
    }
    raw.iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect()
}

/// What an admin changes of an account (None: leave as it is).
#[derive(Clone, Debug, Default)]
pub struct Edit {
    /// A manager's services, as [`resolve_services`] read them.
    pub services: Option<Vec<String>>,
    /// A member of staff's extension (Some(None) removes it).
    pub extension: Option<Option<String>>,
}

/// Changes a manager's services or a member of staff's extension. Services taken away go at
/// once; services added wait for a DPO's approval.
pub async fn edit_user(
    store: &Store,
    c: Change<'_>,
    username: &str,
    edit: &Edit,
) -> Result<Outcome, AccountError> {
    reason(&c)?;
    let user = current(store, username).await?;
    let mut outcome = Outcome::Done;
    let mut detail = json!({ "username": username });
    // the services the manager has once this is done, those waiting for a DPO, and whether
    // any were taken away
    let mut services: Option<(Vec<String>, Option<Vec<String>>, bool)> = None;
    if let Some(wanted) = &edit.services {
        if user.role != Role::Manager && !wanted.is_empty() {
            return Err(AccountError::Refused(format!(
                "services are a manager's; {username} is {}",
                user.role.as_str()
            )));
        }
        let added: Vec<&String> = wanted
            .iter()
            .filter(|s| !user.services.contains(s))
            .collect();
        let now: Vec<String> = if added.is_empty() || c.console {
            wanted.clone()
        } else {
            outcome = Outcome::AwaitingApproval;
            detail["services_awaiting_approval"] = json!(added);
            // what is taken away goes at once; what is added waits
            user.services
                .iter()
                .filter(|s| wanted.contains(s))
                .cloned()
                .collect()
        };
        detail["services_before"] = json!(user.services);
        detail["services_now"] = json!(now);
        let waiting = (outcome == Outcome::AwaitingApproval).then(|| wanted.clone());
        let shrinks = user.services.iter().any(|s| !wanted.contains(s));
        services = Some((now, waiting, shrinks));
    }
    if let Some(ext) = &edit.extension {
        detail["extension_before"] = json!(user.extension);
        detail["extension_now"] = json!(ext);
    }
    audit(store, &c, "user_edit", detail).await?;
    let mut tx = store.write_tx().await?;
    if let Some((now, waiting, shrinks)) = services {
        ask_for_services(&mut tx, &c, username, &now, waiting.as_deref()).await?;
        if shrinks {
            // a call of a service taken away is not heard on a grant made before
            sqlx::query("DELETE FROM grants WHERE username = $1")
                .bind(username)
                .execute(&mut *tx)
                .await?;
        }
    }
    if let Some(ext) = &edit.extension {
        sqlx::query("UPDATE users SET extension = $1 WHERE username = $2")
            .bind(ext.clone())
            .bind(username)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// API tokens (of one user, or everyone's), newest first.
pub async fn list_tokens(store: &Store, owner: Option<&str>) -> Result<Vec<TokenRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT substr(token_sha256, 1, 16) AS id, username, label, created_ms, expires_ms FROM sessions \
         WHERE api AND expires_ms > $1 AND ($2 IS NULL OR username = $2) ORDER BY created_ms DESC",
    )
    .bind(now_ms())
    .bind(owner.map(str::to_owned))
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenRow {
                id: r.try_get("id")?,
                username: r.try_get("username")?,
                label: r.try_get("label")?,
                created_ms: r.try_get("created_ms")?,
                expires_ms: r.try_get("expires_ms")?,
            })
        })
        .collect()
}

/// Revokes an API token (`owner`: only if it is theirs); it stops working at once.
pub async fn revoke_token(
    store: &Store,
    c: Change<'_>,
    id: &str,
    owner: Option<&str>,
) -> Result<(), AccountError> {
    reason(&c)?;
    let id = id.trim().to_ascii_lowercase();
    let token = list_tokens(store, owner)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| AccountError::NoToken(id.clone()))?;
    audit(
        store,
        &c,
        "token_revoke",
        json!({ "token": token.id, "username": token.username, "label": token.label }),
    )
    .await?;
    sqlx::query("DELETE FROM sessions WHERE api AND substr(token_sha256, 1, 16) = $1")
        .bind(id)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Disables an agent (its token is refused from the next request on) or enables it again.
pub async fn set_agent_disabled(
    store: &Store,
    c: Change<'_>,
    name: &str,
    disabled: bool,
) -> Result<(), AccountError> {
    reason(&c)?;
    let row =
        sqlx::query("SELECT CASE WHEN disabled THEN 1 ELSE 0 END AS d FROM agents WHERE name = $1")
            .bind(name)
            .fetch_optional(&store.pool)
            .await?
            .ok_or_else(|| AccountError::NoAgent(name.to_owned()))?;
    if (row.try_get::<i32, _>("d")? != 0) == disabled {
        return Err(AccountError::Refused(format!(
            "agent {name} is already {}",
            if disabled { "disabled" } else { "enabled" }
        )));
    }
    let action = if disabled {
        "agent_disable"
    } else {
        "agent_enable"
    };
    audit(store, &c, action, json!({ "agent": name })).await?;
    sqlx::query("UPDATE agents SET disabled = $1, disabled_ms = $2 WHERE name = $3")
        .bind(disabled)
        .bind(disabled.then(now_ms))
        .bind(name)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// The services agents report recording (their number lists), sorted.
pub async fn known_services(store: &Store) -> Result<Vec<String>, sqlx::Error> {
    let mut services: Vec<String> = store
        .list_agents()
        .await?
        .into_iter()
        .flat_map(|a| a.numbers.into_iter().map(|n| n.service))
        .filter(|s| !s.is_empty())
        .collect();
    services.sort_unstable();
    services.dedup();
    Ok(services)
}

/// Reads services as a person typed them ("parking, Switchboard"), against the services
/// agents report: each one as the agents spell it, or an error naming the ones there are.
pub fn resolve_services(known: &[String], typed: &[String]) -> Result<Vec<String>, AccountError> {
    let mut out: Vec<String> = Vec::new();
    for t in typed.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match known.iter().find(|k| k.eq_ignore_ascii_case(t)) {
            Some(k) if !out.contains(k) => out.push(k.clone()),
            Some(_) => {}
            None if known.is_empty() => {
                return Err(AccountError::UnknownService(format!(
                    "no agent has reported the services it records yet, so {t:?} cannot be checked: start an agent (it reports its number list when it connects), then give the manager services"
                )));
            }
            None => {
                return Err(AccountError::UnknownService(format!(
                    "no agent records a service called {t:?}; the services are: {}",
                    known.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

/// Services typed as one comma-separated line.
pub fn typed_services(line: &str) -> Vec<String> {
    line.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_read_against_what_agents_report() {
        let known = vec!["Parking".to_owned(), "Switchboard".to_owned()];
        assert_eq!(
            resolve_services(&known, &typed_services("parking, SWITCHBOARD ,Parking")).unwrap(),
            vec!["Parking", "Switchboard"]
        );
        let e = resolve_services(&known, &typed_services("Parkng")).unwrap_err();
        assert!(e.to_string().contains("Parking, Switchboard"), "{e}");
        let e = resolve_services(&[], &typed_services("Parking")).unwrap_err();
        assert!(e.to_string().contains("no agent has reported"), "{e}");
        assert!(resolve_services(&[], &[]).unwrap().is_empty());
    }
}
