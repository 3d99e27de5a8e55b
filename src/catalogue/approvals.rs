//! What waits for a data-protection officer's approval, and the approval itself.
//!
//! Owns the `awaiting_approval`, `approval_for`, `requested_services`, `requested_by` and
//! `setup_code_sha256` columns of `users`. An admin's change that could let someone hear
//! recordings (a listening account added or enabled, its password reset or second factor
//! cleared, a manager's services widened) is set aside here ([`awaits_dpo`],
//! [`ask_for_services`]) and takes effect only when a DPO who asked for none of it approves
//! exactly what they were shown ([`approve`]): the DPO's page and the API carry a version of
//! what was shown, and an approval of anything since changed is refused. Every part that
//! waits is shown, and approving approves them all.
//!
//! When the approval leaves a listening account without a second factor (a new account, a
//! cleared factor) and the catalogue asks for one, the DPO is given a one-time set-up code
//! for the person: the factor can be set up only with it, so the admin, who knows the first
//! password, cannot set it up first and keep the account.
//!
//! It does not decide who may ask or approve (the extractors of [`super::signed_in`] do) and
//! writes no audit record (its callers do, with who and why).

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::accounts::Change;
use super::people::{Role, split_services};
use super::store::Store;

/// Something waiting for a DPO's approval, as the DPO is shown it.
#[derive(Clone, Debug, Serialize)]
pub struct Approval {
    pub username: String,
    pub role: String,
    /// Who asked, every one of them ("adam, console:ops-jo"): none of them may approve.
    pub requested_by: String,
    /// Every part of what is asked, in words ("a new account; a password reset").
    pub what: String,
    /// The services the account has once approved (a manager's; empty for others).
    pub services: Vec<String>,
    /// What was shown, as 32 hex digits: an approval names it, and is refused when what
    /// waits has changed since (another request, other services, another password).
    pub version: String,
}

/// Why an approval was not made.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("nothing of that account awaits approval")]
    NothingWaits,
    #[error(
        "what awaits approval for {0} changed since you looked at it: look at it again and approve what is asked now"
    )]
    Changed(String),
    #[error("the approval is another person's: you asked for part of it")]
    OwnRequest,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// An approval made: what was approved, and the set-up code to hand to the person (shown
/// once, to the approving DPO only) when they must set up a second factor.
#[derive(Clone, Debug)]
pub struct Approved {
    pub approval: Approval,
    pub setup_code: Option<String>,
}

/// A waiting account's row, as read for the DPO and checked again by the approval.
struct Pending {
    username: String,
    role: String,
    awaiting: bool,
    approval_for: Option<String>,
    requested_services: Option<String>,
    services: String,
    requested_by: Option<String>,
    password_hash: String,
    has_second_factor: bool,
    /// Signs in with the directory (whose second factor it is).
    directory: bool,
}

/// The columns [`read`] reads (a macro: sqlx takes only literal SQL).
macro_rules! pending_columns {
    () => {
        "username, role, CASE WHEN awaiting_approval THEN 1 ELSE 0 END AS awaiting, approval_for, \
         requested_services, services, requested_by, password_hash, \
         CASE WHEN totp_secret IS NULL THEN 0 ELSE 1 END AS has_factor, \
         CASE WHEN directory_subject IS NULL THEN 0 ELSE 1 END AS directory"
    };
}

fn read(r: &sqlx::any::AnyRow) -> Result<Pending, sqlx::Error> {
    Ok(Pending {
        username: r.try_get("username")?,
        role: r.try_get("role")?,
        awaiting: r.try_get::<i32, _>("awaiting")? != 0,
        approval_for: r.try_get("approval_for")?,
        requested_services: r.try_get("requested_services")?,
        services: r.try_get("services")?,
        requested_by: r.try_get("requested_by")?,
        password_hash: r.try_get("password_hash")?,
        has_second_factor: r.try_get::<i32, _>("has_factor")? != 0,
        directory: r.try_get::<i32, _>("directory")? != 0,
    })
}

impl Pending {
    /// The parts asked for: `approval_for` (an account waiting with none is a new one) and
    /// widened services.
    fn approval(&self) -> Approval {
        let current = split_services(&self.services);
        let mut what: Vec<String> = Vec::new();
        if self.awaiting {
            let parts = self.approval_for.as_deref().map(split_services);
            for part in parts.unwrap_or_else(|| vec!["account".into()]) {
                what.push(
                    match part.as_str() {
                        "enable" => "enable the account again",
                        "role" => "a new role, from the directory",
                        "password_reset" => {
                            "a password reset (the admin knows the temporary password)"
                        }
                        "second_factor_reset" => "a new second factor (the old one was cleared)",
                        _ if self.directory => "a new account, from the directory",
                        _ => "a new account",
                    }
                    .to_owned(),
                );
            }
        }
        let after = match &self.requested_services {
            Some(wanted) => {
                let wanted = split_services(wanted);
                let added: Vec<&String> = wanted.iter().filter(|s| !current.contains(s)).collect();
                if !added.is_empty() {
                    what.push(format!(
                        "services added: {}",
                        added
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                wanted
            }
            None => current,
        };
        let mut h = Sha256::new();
        for field in [
            self.username.as_str(),
            &self.role,
            if self.awaiting { "1" } else { "0" },
            self.approval_for.as_deref().unwrap_or("\u{0}"),
            self.requested_services.as_deref().unwrap_or("\u{0}"),
            &self.services,
            self.requested_by.as_deref().unwrap_or("\u{0}"),
            &self.password_hash,
            if self.has_second_factor { "1" } else { "0" },
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        Approval {
            username: self.username.clone(),
            role: self.role.clone(),
            requested_by: self
                .requested_by
                .as_deref()
                .map(split_services)
                .unwrap_or_default()
                .join(", "),
            what: what.join("; "),
            services: after,
            version: hex::encode(&h.finalize()[..16]),
        }
    }

    fn asked_by(&self, who: &str) -> bool {
        self.requested_by
            .as_deref()
            .map(split_services)
            .unwrap_or_default()
            .iter()
            .any(|r| r == who)
    }
}

/// `list` with `item` added once (comma-separated, as `users` keeps sets).
fn with(list: Option<String>, item: &str) -> String {
    let mut items = list.as_deref().map(split_services).unwrap_or_default();
    if !items.iter().any(|i| i == item) {
        items.push(item.to_owned());
    }
    items.join(",")
}

/// Sets an account aside, disabled, until a DPO approves `what` ("enable", "password_reset",
/// "second_factor_reset") as well as anything already waiting, in `tx`.
pub async fn awaits_dpo(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    c: &Change<'_>,
    username: &str,
    what: &str,
) -> Result<(), sqlx::Error> {
    let row = sqlx::query(
        "SELECT approval_for, requested_by, CASE WHEN awaiting_approval THEN 1 ELSE 0 END AS awaiting FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_one(&mut **tx)
    .await?;
    let awaiting = row.try_get::<i32, _>("awaiting")? != 0;
    let mut parts: Option<String> = row.try_get("approval_for")?;
    if awaiting && parts.is_none() {
        parts = Some("account".into());
    }
    sqlx::query(
        "UPDATE users SET disabled = TRUE, awaiting_approval = TRUE, approval_for = $1, requested_by = $2, setup_code_sha256 = NULL WHERE username = $3",
    )
    .bind(with(parts, what))
    .bind(with(row.try_get("requested_by")?, c.actor))
    .bind(username)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sets a manager's services to `now` with `wanted` (None: nothing) waiting for a DPO, in
/// `tx`. What waited before is replaced: an admin's edit says the whole set they want.
pub async fn ask_for_services(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    c: &Change<'_>,
    username: &str,
    now: &[String],
    wanted: Option<&[String]>,
) -> Result<(), sqlx::Error> {
    let asked: Option<String> = sqlx::query("SELECT requested_by FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&mut **tx)
        .await?
        .try_get("requested_by")?;
    let asked = match wanted {
        Some(_) => Some(with(asked, c.actor)),
        None => asked,
    };
    sqlx::query(
        "UPDATE users SET services = $1, requested_services = $2, requested_by = $3 WHERE username = $4",
    )
    .bind(now.join(","))
    .bind(wanted.map(|w| w.join(",")))
    .bind(asked)
    .bind(username)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Forgets everything waiting for `username` (the account was disabled or deleted: a later
/// approval must not bring it back), in `tx`.
pub async fn withdraw(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    username: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET awaiting_approval = FALSE, approval_for = NULL, requested_services = NULL, \
         requested_by = NULL, setup_code_sha256 = NULL WHERE username = $1",
    )
    .bind(username)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// What waits for a DPO's approval, oldest account first.
    pub async fn awaiting_approval(&self) -> Result<Vec<Approval>, sqlx::Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            pending_columns!(),
            " FROM users WHERE (awaiting_approval OR requested_services IS NOT NULL) \
             AND deleted_ms IS NULL ORDER BY created_ms"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let a = read(r)?.approval();
            // services "widened" to a subset of what the manager has already ask for nothing
            if !a.what.is_empty() {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// What waits for `username`, if anything does.
    pub async fn approval_of(&self, username: &str) -> Result<Option<Approval>, sqlx::Error> {
        Ok(self
            .awaiting_approval()
            .await?
            .into_iter()
            .find(|a| a.username == username))
    }

    /// `approver` approves what waits for `username`, exactly as shown in `version`: every
    /// part of it. With `second_factor` (the catalogue asks for one) a listening account left
    /// without one gets a set-up code.
    pub async fn approve(
        &self,
        username: &str,
        version: &str,
        approver: &str,
        second_factor: bool,
    ) -> Result<Approved, ApprovalError> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            pending_columns!(),
            " FROM users WHERE username = $1 AND deleted_ms IS NULL"
        ))
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(ApprovalError::NothingWaits)?;
        let row = read(&row)?;
        let approval = row.approval();
        if approval.what.is_empty() {
            return Err(ApprovalError::NothingWaits);
        }
        if approval.version != version.trim() {
            return Err(ApprovalError::Changed(username.to_owned()));
        }
        if row.asked_by(approver) {
            return Err(ApprovalError::OwnRequest);
        }
        let hears = Role::parse(&row.role).is_some_and(|r| r.hears_calls());
        let setup_code =
            (second_factor && hears && row.awaiting && !row.has_second_factor && !row.directory)
                .then(super::accounts::temporary_password);
        // the same row as read, or nothing (Postgres reads committed: a change between the
        // read and here makes this match no row)
        let changed = sqlx::query(
            "UPDATE users SET services = COALESCE(requested_services, services), requested_services = NULL, \
             disabled = CASE WHEN awaiting_approval THEN FALSE ELSE disabled END, \
             awaiting_approval = FALSE, approval_for = NULL, requested_by = NULL, \
             setup_code_sha256 = COALESCE($1, setup_code_sha256), \
             totp_pending = CASE WHEN $1 IS NULL THEN totp_pending ELSE NULL END \
             WHERE username = $2 AND deleted_ms IS NULL AND password_hash = $3 AND services = $4 \
             AND approval_for IS NOT DISTINCT FROM $5 AND requested_services IS NOT DISTINCT FROM $6 \
             AND requested_by IS NOT DISTINCT FROM $7",
        )
        .bind(setup_code.as_deref().map(code_hash))
        .bind(username)
        .bind(row.password_hash.clone())
        .bind(row.services.clone())
        .bind(row.approval_for.clone())
        .bind(row.requested_services.clone())
        .bind(row.requested_by.clone())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(ApprovalError::Changed(username.to_owned()));
        }
        tx.commit().await?;
        Ok(Approved {
            approval,
            setup_code,
        })
    }
}

/// How a set-up code is kept (and compared: hashes of equal length).
pub fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(
        code.trim()
            .to_ascii_lowercase()
            .replace([' ', '-'], "")
            .as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_gain_an_item_once() {
        assert_eq!(with(None, "adam"), "adam");
        assert_eq!(with(Some("adam".into()), "adam"), "adam");
        assert_eq!(with(Some("adam".into()), "console:jo"), "adam,console:jo");
    }

    #[test]
    fn codes_are_read_as_people_type_them() {
        assert_eq!(code_hash("abcd efgh-ijkm"), code_hash("ABCDEFGHIJKM"));
        assert_ne!(code_hash("abcd"), code_hash("abce"));
    }
}
