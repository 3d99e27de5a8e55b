//! People: users with roles, their passwords (argon2), sessions and API tokens, and who may
//! do what.
//!
//! Owns the `users` and `sessions` tables and the [`Caller`] every handler starts from: the
//! user behind a session cookie (`cv_session`, the web UI) or an API token (`Authorization:
//! Bearer`, scripts). What each role may do is decided by [`Role`]'s methods; the extractors
//! of [`super::signed_in`] apply them before a handler runs. What differs by role within a page
//! (a manager's services, what the audit page shows an auditor or a member of staff) is
//! decided where that view is built.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::store::{Store, now_ms};

pub const SESSION_COOKIE: &str = "cv_session";
/// A web session lasts a working day at most,
const SESSION_MS: i64 = 10 * 3600 * 1000;
/// and half an hour unused.
const SESSION_IDLE_MS: i64 = 30 * 60 * 1000;
/// An API token lasts a year.
const API_TOKEN_MS: i64 = 365 * 24 * 3600 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Finds and hears the calls of their services, for a stated purpose.
    Manager,
    /// Reads and verifies the audit log; nothing else.
    Auditor,
    /// Data-protection officer: subject access, erasure, restriction, legal holds, training
    /// approvals; finds calls of every service.
    Dpo,
    /// Users, agents and keys; never finds or hears a call.
    Admin,
    /// A member of staff: sees who retrieved the calls they took part in.
    Staff,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Manager,
        Role::Auditor,
        Role::Dpo,
        Role::Admin,
        Role::Staff,
    ];

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Auditor => "auditor",
            Role::Dpo => "dpo",
            Role::Admin => "admin",
            Role::Staff => "staff",
        }
    }

    /// May search calls and read their metadata (a manager: of their services only).
    pub fn finds_calls(self) -> bool {
        matches!(self, Role::Manager | Role::Dpo)
    }

    /// May retrieve audio (with a purpose).
    pub fn hears_calls(self) -> bool {
        matches!(self, Role::Manager | Role::Dpo)
    }

    pub fn reads_audit(self) -> bool {
        matches!(self, Role::Auditor)
    }

    pub fn manages_people(self) -> bool {
        matches!(self, Role::Admin)
    }

    /// May see restricted calls (their metadata; retrieval has its own checks).
    pub fn sees_restricted(self) -> bool {
        matches!(self, Role::Dpo)
    }

    /// May see which catalogue keys recordings still need.
    pub fn sees_keys(self) -> bool {
        matches!(self, Role::Admin | Role::Dpo)
    }
}

/// The signed-in user a request comes from.
#[derive(Clone, Debug)]
pub struct Caller {
    pub username: String,
    pub role: Role,
    /// A manager's services.
    pub services: Vec<String>,
    pub extension: Option<String>,
    /// The token the web UI's forms carry in this session ([`super::csrf::form_token`]);
    /// empty for a caller not signed in by a session cookie.
    pub form_token: String,
    /// Signed in with an API token (a script), not a web session.
    pub api_token: bool,
}

impl Caller {
    /// Whether this caller may see a call of `service` at all.
    pub fn may_see_service(&self, service: Option<&str>) -> bool {
        match self.role {
            Role::Dpo => true,
            Role::Manager => service.is_some_and(|s| self.services.iter().any(|m| m == s)),
            _ => false,
        }
    }
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// 256 random bits, hex: a session, API token or grant.
pub fn new_token() -> String {
    let mut raw = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut raw) {
        // a guessable token would open every recording: never hand one out
        tracing::error!("the system's random generator failed: {e}");
        std::process::abort();
    }
    hex::encode(raw)
}

/// An account that may sign in, as the store holds it.
struct Account {
    caller: Caller,
    password_hash: String,
    must_change_password: bool,
    /// The confirmed second factor's secret, one being set up, the last step used.
    totp_secret: Option<Vec<u8>>,
    totp_pending: Option<Vec<u8>>,
    totp_last_step: Option<u64>,
    /// The set-up code a DPO handed out with their approval (its SHA-256): the second
    /// factor is set up only with it.
    setup_code_sha256: Option<String>,
    /// Signs in with the directory: no local password, the directory's second factor.
    directory: bool,
}

/// What a person gives to sign in.
#[derive(Clone, Copy, Debug, Default)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// A new password to set first.
    pub new_password: Option<&'a str>,
    /// The code from their authenticator app.
    pub code: Option<&'a str>,
    /// The set-up code their DPO gave them with the approval of their account.
    pub setup_code: Option<&'a str>,
    /// Whether accounts that may hear recordings need the code (`sign_in.second_factor`).
    pub second_factor: bool,
}

/// What a sign-in did.
pub enum Login {
    /// Wrong user name or password (or a disabled, deleted or unapproved account).
    Wrong,
    /// The password is right but was set by an admin's reset: the user sets a new one first.
    NewPasswordNeeded(Caller),
    /// The password is right; the account's second factor wants its code.
    CodeNeeded,
    /// The password is right; the code is wrong or was used already.
    WrongCode,
    /// The password is right; setting up the second factor needs the set-up code the DPO
    /// gave with their approval (missing, or wrong).
    SetUpCodeNeeded { wrong: bool },
    /// The password is right; the account sets up its second factor first: the secret to
    /// put in an authenticator app, and whether a code was given (and was wrong).
    SetUpSecondFactor { secret: Vec<u8>, wrong_code: bool },
    /// A session (or API token) is open: its secret, shown once.
    Opened(Caller, String),
}

/// Why a new password was not set.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a new password needs at least 12 characters")]
    TooShort,
    #[error("the new password must differ from the current one")]
    Same,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub fn split_services(services: &str) -> Vec<String> {
    services
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What adding a user did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    Active,
    /// A listening account an admin asked for: a DPO approves it before it can sign in.
    AwaitingApproval,
}

/// Why a user could not be added.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("a user needs a name (at most 64 characters) and a password of at least 12 characters")]
    Invalid,
    #[error(
        "a user named {0:?} exists or existed (a name is never given to someone else: the audit log names them): choose another name"
    )]
    Exists(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("cannot add user {username:?}: {cause}")]
    Database {
        username: String,
        cause: sqlx::Error,
    },
}

impl UserError {
    /// The response for an admin adding the user: 422 for a bad name or password, 409 for a
    /// name taken, the store's own status otherwise.
    pub fn response(self) -> Response {
        match self {
            UserError::Invalid => refuse(StatusCode::UNPROCESSABLE_ENTITY, &self.to_string()),
            UserError::Exists(_) => refuse(StatusCode::CONFLICT, &self.to_string()),
            UserError::Hash(why) => super::error::fail(why),
            UserError::Database { cause, .. } => super::error::fail(cause),
        }
    }
}

pub fn hash_password(password: &str) -> Result<String, UserError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

fn password_matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).ok().is_some_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Why `name` cannot be an agent's name, if it cannot: a DNS label (1–63 of a–z, 0–9 and
/// '-', not at either end), so that a client certificate can name the agent exactly.
pub fn agent_name_problem(name: &str) -> Option<&'static str> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    (!ok).then_some(
        "an agent's name is 1 to 63 lowercase letters, digits and '-' (not first or last), e.g. recorder-1",
    )
}

pub fn refuse(code: StatusCode, why: &str) -> Response {
    (code, format!("{why}\n")).into_response()
}

impl Store {
    /// Adds a user. One `requested_by` an admin with a role that hears calls (manager, DPO)
    /// waits, disabled, for a DPO's approval ([`Store::approve`]): no single person can
    /// give themselves, or anyone, access to recordings; and one an admin adds sets their own
    /// password at first sign-in. Without `requested_by` (the host's `callvault catalogue
    /// user-add`, bootstrap) the account is active at once.
    pub async fn add_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
        services: &[String],
        extension: Option<&str>,
        requested_by: Option<&str>,
    ) -> Result<Added, UserError> {
        if username.is_empty() || username.len() > 64 || password.len() < 12 {
            return Err(UserError::Invalid);
        }
        let pending = requested_by.is_some() && role.hears_calls();
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| UserError::Hash(e.to_string()))??;
        sqlx::query(
            "INSERT INTO users (username, password_hash, role, services, extension, disabled, created_ms, awaiting_approval, requested_by, approval_for, must_change_password) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(username)
        .bind(hash)
        .bind(role.as_str())
        .bind(services.join(","))
        .bind(extension.map(str::to_owned))
        .bind(pending)
        .bind(now_ms())
        .bind(pending)
        .bind(requested_by.map(str::to_owned))
        .bind(pending.then_some("account"))
        // the admin knows the first password: the person sets their own at first sign-in
        .bind(requested_by.is_some())
        .execute(&self.pool)
        .await
        .map_err(|cause| match &cause {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                UserError::Exists(username.to_owned())
            }
            _ => UserError::Database {
                username: username.to_owned(),
                cause,
            },
        })?;
        Ok(if pending {
            Added::AwaitingApproval
        } else {
            Added::Active
        })
    }

    /// An account that may sign in, its password hash and whether it must set a new password
    /// first (after an admin's reset).
    async fn user(&self, username: &str) -> Result<Option<Account>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT username, password_hash, role, services, extension, CASE WHEN must_change_password THEN 1 ELSE 0 END AS must_change, \
             totp_secret, totp_pending, totp_last_step, setup_code_sha256, \
             CASE WHEN directory_subject IS NULL THEN 0 ELSE 1 END AS directory FROM users WHERE username = $1 AND NOT disabled AND deleted_ms IS NULL",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.try_get("role")?;
        let services: String = row.try_get("services")?;
        let Some(role) = Role::parse(&role) else {
            return Ok(None);
        };
        Ok(Some(Account {
            caller: Caller {
                username: row.try_get("username")?,
                role,
                services: split_services(&services),
                extension: row.try_get("extension")?,
                form_token: String::new(),
                api_token: false,
            },
            password_hash: row.try_get("password_hash")?,
            must_change_password: row.try_get::<i32, _>("must_change")? != 0,
            totp_secret: row
                .try_get::<Option<String>, _>("totp_secret")?
                .and_then(|h| hex::decode(h).ok()),
            totp_pending: row
                .try_get::<Option<String>, _>("totp_pending")?
                .and_then(|h| hex::decode(h).ok()),
            totp_last_step: row
                .try_get::<Option<i64>, _>("totp_last_step")?
                .map(|s| s.max(0) as u64),
            setup_code_sha256: row.try_get("setup_code_sha256")?,
            directory: row.try_get::<i32, _>("directory")? != 0,
        }))
    }

    /// The account `username` if `password` is its password (the same work whether the user
    /// exists or not: no timing oracle for user names).
    async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Account>, sqlx::Error> {
        let found = self.user(username).await?;
        let stored = found
            .as_ref()
            .map(|a| a.password_hash.clone())
            .unwrap_or_else(|| {
                "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2R1oEwJ2pUQx5Wf1pS2mBNYmn9sNnKJGvmkpOUQ1l5A".into()
            });
        // argon2 takes tens of milliseconds of CPU: off the async workers
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || password_matches(&password, &stored))
            .await
            .unwrap_or(false);
        Ok(found.filter(|_| ok))
    }

    /// Checks a password (and, for an account that may hear recordings, its second factor);
    /// on success opens a web session and returns its secret (shown once; only its hash is
    /// kept). With `new_password` the user sets a new password first (needed after an admin
    /// reset it: [`Login::NewPasswordNeeded`] otherwise); it takes effect only with the
    /// current one.
    pub async fn login(&self, c: Credentials<'_>) -> Result<Login, PasswordError> {
        let Some(account) = self.check_password(c.username, c.password).await? else {
            return Ok(Login::Wrong);
        };
        if c.second_factor && account.caller.role.hears_calls() {
            let code = c.code.map(str::trim).filter(|s| !s.is_empty());
            let setup = c.setup_code.map(str::trim).filter(|s| !s.is_empty());
            if let Some(refused) = self.second_factor(&account, code, setup).await? {
                return Ok(refused);
            }
        }
        match c.new_password.filter(|p| !p.is_empty()) {
            Some(new) => self.set_password(c.username, c.password, new).await?,
            None if account.must_change_password => {
                return Ok(Login::NewPasswordNeeded(account.caller));
            }
            None => {}
        }
        let token = new_token();
        self.open_session(&account.caller.username, &token, None)
            .await?;
        Ok(Login::Opened(account.caller, token))
    }

    /// Checks the second factor's code; None when it holds (the step is noted as used),
    /// otherwise what the sign-in comes to. An account without one sets it up: a secret is
    /// made and kept pending until a code from it is given (with the DPO's set-up code, when
    /// the approval gave one).
    async fn second_factor(
        &self,
        account: &Account,
        code: Option<&str>,
        setup_code: Option<&str>,
    ) -> Result<Option<Login>, sqlx::Error> {
        let now_s = (now_ms() / 1000).max(0) as u64;
        let username = &account.caller.username;
        if let Some(secret) = &account.totp_secret {
            let Some(code) = code else {
                return Ok(Some(Login::CodeNeeded));
            };
            let Some(step) = super::totp::check(secret, code, now_s, account.totp_last_step) else {
                return Ok(Some(Login::WrongCode));
            };
            // the step is used once, even by two sign-ins racing with the same code
            let noted = sqlx::query(
                "UPDATE users SET totp_last_step = $1 WHERE username = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
            )
            .bind(step as i64)
            .bind(username)
            .execute(&self.pool)
            .await?
            .rows_affected();
            return Ok((noted != 1).then_some(Login::WrongCode));
        }
        if let Some(expected) = &account.setup_code_sha256 {
            // hashes compared: how long the comparison takes says nothing about the code
            let same = setup_code.map(super::approvals::code_hash).as_ref() == Some(expected);
            if !same {
                return Ok(Some(Login::SetUpCodeNeeded {
                    wrong: setup_code.is_some(),
                }));
            }
        }
        let pending = match &account.totp_pending {
            Some(p) => p.clone(),
            None => {
                let mut secret = vec![0u8; 20];
                if let Err(e) = getrandom::fill(&mut secret) {
                    tracing::error!("the system's random generator failed: {e}");
                    std::process::abort();
                }
                sqlx::query("UPDATE users SET totp_pending = $1 WHERE username = $2")
                    .bind(hex::encode(&secret))
                    .bind(username)
                    .execute(&self.pool)
                    .await?;
                secret
            }
        };
        match code.and_then(|c| super::totp::check(&pending, c, now_s, None)) {
            Some(step) => {
                let confirmed = sqlx::query(
                    "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $1, setup_code_sha256 = NULL \
                     WHERE username = $2 AND totp_pending = $3 AND totp_secret IS NULL",
                )
                .bind(step as i64)
                .bind(username)
                .bind(hex::encode(&pending))
                .execute(&self.pool)
                .await?
                .rows_affected();
                // another sign-in confirmed or replaced it meanwhile
                Ok((confirmed != 1).then_some(Login::WrongCode))
            }
            None => Ok(Some(Login::SetUpSecondFactor {
                secret: pending,
                wrong_code: code.is_some(),
            })),
        }
    }

    /// An API token for `username` if `password` is theirs (made from a signed-in session,
    /// which passed the second factor): its secret, shown once.
    pub async fn open_api_token(
        &self,
        username: &str,
        password: &str,
        label: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        if self.check_password(username, password).await?.is_none() {
            return Ok(None);
        }
        let token = new_token();
        self.open_session(username, &token, Some(label)).await?;
        Ok(Some(token))
    }

    /// Replaces a user's password (its owner, who gave the current one): every session and
    /// API token of theirs ends, as after a suspected compromise.
    async fn set_password(
        &self,
        username: &str,
        current: &str,
        new: &str,
    ) -> Result<(), PasswordError> {
        if new.chars().count() < 12 {
            return Err(PasswordError::TooShort);
        }
        if new == current {
            return Err(PasswordError::Same);
        }
        let new = new.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&new))
            .await
            .map_err(|e| PasswordError::Hash(e.to_string()))?
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE users SET password_hash = $1, must_change_password = FALSE WHERE username = $2",
        )
        .bind(hash)
        .bind(username)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sessions WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn open_session(
        &self,
        username: &str,
        token: &str,
        api_label: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let life = if api_label.is_some() {
            API_TOKEN_MS
        } else {
            SESSION_MS
        };
        sqlx::query(
            "INSERT INTO sessions (token_sha256, username, api, label, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash(token))
        .bind(username)
        .bind(api_label.is_some())
        .bind(api_label.unwrap_or("").to_owned())
        .bind(now)
        .bind(now + life)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn close_session(&self, token: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE token_sha256 = $1")
            .bind(token_hash(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user of a session or API token presented `how`: a web session only as the
    /// cookie (and not after half an hour unused), an API token only as a bearer token. With
    /// `second_factor`, an account that may hear recordings counts only once its second
    /// factor is set up: a session or token made before it was asked for is refused.
    async fn session_user(
        &self,
        token: &str,
        how: Presented,
        second_factor: bool,
    ) -> Result<Option<Caller>, sqlx::Error> {
        let now = now_ms();
        let row = sqlx::query(
            "SELECT username, CASE WHEN api THEN 1 ELSE 0 END AS api, last_used_ms FROM sessions WHERE token_sha256 = $1 AND expires_ms > $2",
        )
        .bind(token_hash(token))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let api = row.try_get::<i32, _>("api")? != 0;
        let last_used: Option<i64> = row.try_get("last_used_ms")?;
        match (api, how) {
            (true, Presented::Bearer) => {}
            (false, Presented::Cookie) => {
                if last_used.is_some_and(|t| now - t > SESSION_IDLE_MS) {
                    return Ok(None);
                }
                // noted at most once a minute (a write per request would be a write lock)
                if last_used.is_none_or(|t| now - t > 60_000) {
                    sqlx::query("UPDATE sessions SET last_used_ms = $1 WHERE token_sha256 = $2")
                        .bind(now)
                        .bind(token_hash(token))
                        .execute(&self.pool)
                        .await?;
                }
            }
            // an API token in a cookie, or a web session's secret as a bearer token
            _ => return Ok(None),
        }
        let username: String = row.try_get("username")?;
        // a session opened before an admin reset the password is already gone
        let account = self.user(&username).await?.filter(|a| {
            // a directory account's second factor is the directory's
            let factorless = a.totp_secret.is_none() && !a.directory;
            !(second_factor && a.caller.role.hears_calls() && factorless)
        });
        Ok(account.map(|a| Caller {
            form_token: if api {
                String::new()
            } else {
                super::csrf::form_token(token)
            },
            api_token: api,
            ..a.caller
        }))
    }

    /// Deletes sessions, API tokens and grants past their date: nothing of them is kept.
    pub async fn forget_expired(&self) -> Result<u64, sqlx::Error> {
        let now = now_ms();
        let mut gone = 0;
        for sql in [
            "DELETE FROM sessions WHERE expires_ms < $1",
            "DELETE FROM grants WHERE expires_ms < $1",
        ] {
            gone += sqlx::query(sql)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        let idle = sqlx::query("DELETE FROM sessions WHERE NOT api AND last_used_ms < $1")
            .bind(now - SESSION_IDLE_MS)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(gone + idle)
    }

    /// Every account not deleted, for the admin.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT username, role, services, extension, requested_services, \
             CASE WHEN disabled THEN 1 ELSE 0 END AS disabled, CASE WHEN awaiting_approval THEN 1 ELSE 0 END AS awaiting, \
             CASE WHEN must_change_password THEN 1 ELSE 0 END AS must_change FROM users WHERE deleted_ms IS NULL ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UserRow {
                    username: r.try_get("username")?,
                    role: r.try_get("role")?,
                    services: split_services(&r.try_get::<String, _>("services")?),
                    requested_services: r
                        .try_get::<Option<String>, _>("requested_services")?
                        .map(|s| split_services(&s)),
                    extension: r.try_get("extension")?,
                    disabled: r.try_get::<i32, _>("disabled")? != 0,
                    awaiting_approval: r.try_get::<i32, _>("awaiting")? != 0,
                    must_change_password: r.try_get::<i32, _>("must_change")? != 0,
                })
            })
            .collect()
    }
}

/// An account as the admin sees it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UserRow {
    pub username: String,
    pub role: String,
    pub services: Vec<String>,
    /// A manager's services as an admin widened them, waiting for a DPO.
    pub requested_services: Option<Vec<String>>,
    pub extension: Option<String>,
    pub disabled: bool,
    pub awaiting_approval: bool,
    pub must_change_password: bool,
}

impl UserRow {
    /// Whether `service` is one the manager has or one asked for them (the edit form
    /// ticks both: an edit states the whole set wanted, and must not drop what waits).
    pub fn wants(&self, service: &str) -> bool {
        self.services.iter().any(|s| s == service) || self.waits_for(service)
    }

    /// Whether `service` was asked for the manager and waits for a DPO.
    pub fn waits_for(&self, service: &str) -> bool {
        !self.services.iter().any(|s| s == service)
            && self
                .requested_services
                .as_ref()
                .is_some_and(|r| r.iter().any(|s| s == service))
    }
}

/// How a request carried its secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    Bearer,
    Cookie,
}

/// The session or API token a request carries, and how.
pub fn presented(headers: &HeaderMap) -> Option<(String, Presented)> {
    if let Some(t) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some((t.trim().to_owned(), Presented::Bearer));
    }
    super::csrf::cookie(headers, SESSION_COOKIE).map(|v| (v.to_owned(), Presented::Cookie))
}

/// The session or API token a request carries.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    presented(headers).map(|(t, _)| t)
}

/// The signed-in caller, or 401.
pub async fn caller(app: &super::App, headers: &HeaderMap) -> Result<Caller, Response> {
    let Some((token, how)) = presented(headers) else {
        return Err(refuse(StatusCode::UNAUTHORIZED, "sign in first"));
    };
    let second_factor = app.config.sign_in.second_factor;
    match app.store.session_user(&token, how, second_factor).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "session expired or unknown: sign in again",
        )),
        Err(e) => Err(super::error::fail(e)),
    }
}
