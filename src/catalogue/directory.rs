//! Accounts of people who sign in with the council's directory (OpenID Connect).
//!
//! Owns the `users.directory_subject` column and what a directory sign-in does to an account:
//! the first one makes it (role and services from the directory's claims); later ones follow
//! the directory (a role or services taken away go at once). What could let someone hear
//! recordings (a new listening account, a new role that hears calls, services added) waits for
//! a DPO's approval as an admin's change does ([`super::approvals`]), unless the configuration
//! says the directory's word is enough. An admin still disables or deletes such an account
//! here, and the directory cannot bring it back. Such an account has no local password, and
//! its second factor is the directory's.
//!
//! It does not check the ID token (that is [`super::oidc`]) and opens no session.

use serde_json::json;
use sqlx::Row;

use super::approvals::ask_for_services;
use super::people::split_services;
use super::store::{Store, now_ms};

/// Who asked, in the approvals the directory sets aside.
pub const DIRECTORY: &str = "directory";

/// What a directory sign-in came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Directory {
    /// The account may sign in (as it is now: services added may still wait).
    Ready(String),
    /// The account waits for a DPO's approval.
    AwaitingApproval,
    /// An admin disabled or deleted the account.
    Disabled,
    /// A local account (or another directory person) has that user name.
    NameTaken(String),
}

impl Store {
    /// The account of `who` after a directory sign-in, made or brought into line with the
    /// directory's claims; `approval`: what could let them hear recordings waits for a DPO.
    /// Returns what changed too, for the audit record.
    pub async fn directory_sign_in(
        &self,
        who: &super::oidc::Identity,
        approval: bool,
    ) -> Result<(Directory, serde_json::Value), sqlx::Error> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT username, role, services, extension, CASE WHEN disabled THEN 1 ELSE 0 END AS disabled, \
             CASE WHEN awaiting_approval THEN 1 ELSE 0 END AS awaiting, deleted_ms FROM users WHERE directory_subject = $1",
        )
        .bind(who.subject.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let hears = who.role.hears_calls();
        let claimed = who.services.clone();
        let services = claimed.clone().unwrap_or_default().join(",");
        let Some(row) = row else {
            let taken = sqlx::query("SELECT username FROM users WHERE username = $1")
                .bind(who.username.clone())
                .fetch_optional(&mut *tx)
                .await?;
            if taken.is_some() {
                return Ok((
                    Directory::NameTaken(who.username.clone()),
                    json!({ "username": who.username }),
                ));
            }
            let waits = approval && hears;
            sqlx::query(
                "INSERT INTO users (username, password_hash, role, services, extension, disabled, created_ms, awaiting_approval, \
                 requested_by, approval_for, directory_subject) VALUES ($1, '', $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(who.username.clone())
            .bind(who.role.as_str())
            .bind(services.clone())
            .bind(who.extension.clone())
            .bind(waits)
            .bind(now_ms())
            .bind(waits)
            .bind(waits.then_some(DIRECTORY))
            .bind(waits.then_some("account"))
            .bind(who.subject.clone())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let detail = json!({ "username": who.username, "role": who.role.as_str(), "services": claimed,
                "created": true, "awaiting_approval": waits });
            return Ok((
                if waits {
                    Directory::AwaitingApproval
                } else {
                    Directory::Ready(who.username.clone())
                },
                detail,
            ));
        };
        let username: String = row.try_get("username")?;
        let mut detail = json!({ "username": username });
        if row.try_get::<Option<i64>, _>("deleted_ms")?.is_some()
            || (row.try_get::<i32, _>("disabled")? != 0 && row.try_get::<i32, _>("awaiting")? == 0)
        {
            return Ok((Directory::Disabled, detail));
        }
        let role: String = row.try_get("role")?;
        let had = split_services(&row.try_get::<String, _>("services")?);
        let awaiting = row.try_get::<i32, _>("awaiting")? != 0;
        if role != who.role.as_str() {
            detail["role_before"] = json!(role);
            detail["role_now"] = json!(who.role.as_str());
            let waits = approval && hears;
            // a new role that hears calls is a new account for the DPO's eyes
            sqlx::query(
                "UPDATE users SET role = $1, services = $2, requested_services = NULL, extension = $3, \
                 disabled = $4, awaiting_approval = $4, approval_for = CASE WHEN $4 THEN 'role' ELSE NULL END, \
                 requested_by = CASE WHEN $4 THEN $5 ELSE NULL END WHERE username = $6",
            )
            .bind(who.role.as_str())
            .bind(services)
            .bind(who.extension.clone())
            .bind(waits)
            .bind(DIRECTORY)
            .bind(username.clone())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM grants WHERE username = $1")
                .bind(username.clone())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            detail["awaiting_approval"] = json!(waits);
            return Ok((
                if waits {
                    Directory::AwaitingApproval
                } else {
                    Directory::Ready(username)
                },
                detail,
            ));
        }
        if awaiting {
            // what waits follows the directory; the DPO's page shows it as it is now
            sqlx::query(
                "UPDATE users SET services = COALESCE($1, services), extension = $2 WHERE username = $3",
            )
            .bind(claimed.map(|c| c.join(",")))
            .bind(who.extension.clone())
            .bind(username.clone())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok((Directory::AwaitingApproval, detail));
        }
        // without a services claim, an admin gives a directory manager services
        let wanted = claimed.unwrap_or_else(|| had.clone());
        let added: Vec<&String> = wanted.iter().filter(|s| !had.contains(s)).collect();
        let removed = had.iter().any(|s| !wanted.contains(s));
        if !added.is_empty() || removed {
            detail["services_before"] = json!(had);
            detail["services_claimed"] = json!(wanted);
            let c = super::accounts::Change {
                actor: DIRECTORY,
                reason: "the directory's claims",
                console: false,
            };
            if approval && !added.is_empty() {
                let now: Vec<String> = had.iter().filter(|s| wanted.contains(s)).cloned().collect();
                ask_for_services(&mut tx, &c, &username, &now, Some(&wanted)).await?;
                detail["services_awaiting_approval"] = json!(added);
            } else {
                ask_for_services(&mut tx, &c, &username, &wanted, None).await?;
            }
            if removed {
                sqlx::query("DELETE FROM grants WHERE username = $1")
                    .bind(username.clone())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("UPDATE users SET extension = $1 WHERE username = $2")
            .bind(who.extension.clone())
            .bind(username.clone())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((Directory::Ready(username), detail))
    }
}
