//! The data-protection officer's tools and the retention rules: legal hold, restriction,
//! erasure, the periodic purge, which keys are still needed, subject-access bundles and
//! anonymised training exports.
//!
//! Owns what leaves or disappears from the catalogue by policy rather than by a manager's
//! retrieval. Every action writes its audit record before it takes effect (an export's
//! record is committed before its first byte is sent).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use super::App;
use super::audit::Entry;
use super::error::{Failure, fail};
use super::listen;
use super::people::refuse;
use super::signed_in::{Allowed, Api, Dpo, Permitted, SeesKeys};
use super::store::{Store, now_ms};
use crate::record::CallRecord;

#[derive(Deserialize)]
pub struct Switch {
    pub on: bool,
    pub reason: String,
}

#[derive(Deserialize)]
pub struct Reason {
    pub reason: String,
}

fn needs_reason(reason: &str) -> Option<Response> {
    let r = reason.trim();
    (r.is_empty() || r.len() > 500).then(|| {
        refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give the reason (a case or request reference), at most 500 characters",
        )
    })
}

/// What the DPO has set on a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    pub legal_hold: bool,
    pub restricted: bool,
}

impl Store {
    /// A call's hold and restriction; None when there is no such call.
    pub async fn call_flags(&self, call_id: &str) -> Result<Option<Flags>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT CASE WHEN legal_hold THEN 1 ELSE 0 END AS held, \
             CASE WHEN restricted THEN 1 ELSE 0 END AS restricted FROM calls WHERE call_id = $1",
        )
        .bind(call_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Flags {
                legal_hold: r.try_get::<i32, _>("held")? != 0,
                restricted: r.try_get::<i32, _>("restricted")? != 0,
            })
        })
        .transpose()
    }

    async fn set_flag(&self, call_id: &str, hold: bool, on: bool) -> Result<bool, sqlx::Error> {
        let sql = if hold {
            "UPDATE calls SET legal_hold = $1 WHERE call_id = $2"
        } else {
            "UPDATE calls SET restricted = $1 WHERE call_id = $2"
        };
        let done = sqlx::query(sql)
            .bind(on)
            .bind(call_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a call's rows and tombstones its id, unless it is under legal hold (checked in
    /// the same transaction, so a hold placed while the purge runs wins); returns the blobs its
    /// segments were in, to delete after.
    pub async fn erase_rows(&self, call_id: &str, cause: &str) -> Result<Erasure, sqlx::Error> {
        let mut tx = self.write_tx().await?;
        // takes the call's row lock (PostgreSQL; SQLite's write transaction is exclusive)
        let free = sqlx::query(
            "UPDATE calls SET legal_hold = legal_hold WHERE call_id = $1 AND NOT legal_hold",
        )
        .bind(call_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if free == 0 {
            let held = sqlx::query("SELECT call_id FROM calls WHERE call_id = $1")
                .bind(call_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Ok(if held {
                Erasure::Held
            } else {
                Erasure::NoSuchCall
            });
        }
        let blobs = sqlx::query("SELECT blob FROM segments WHERE call_id = $1")
            .bind(call_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("blob"))
            .collect::<Result<Vec<_>, _>>()?;
        for sql in [
            "DELETE FROM grants WHERE call_id = $1",
            "DELETE FROM segments WHERE call_id = $1",
            "DELETE FROM call_parties WHERE call_id = $1",
            "DELETE FROM call_sip_ids WHERE call_id = $1",
            "DELETE FROM calls WHERE call_id = $1",
        ] {
            sqlx::query(sql).bind(call_id).execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO erased_calls (call_id, erased_ms, cause) VALUES ($1, $2, $3) \
             ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(call_id)
        .bind(now_ms())
        .bind(cause)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Erasure::Erased(blobs))
    }

    /// Calls past their retention date and not under legal hold.
    pub async fn expired(&self, now_ms: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query(
            "SELECT call_id FROM calls WHERE expires_ms < $1 AND NOT legal_hold ORDER BY expires_ms",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("call_id"))
        .collect()
    }

    /// Per catalogue key: the calls still sealed to it and when the last one expires
    /// (None: one is under legal hold).
    pub async fn key_usage(&self) -> Result<Vec<KeyUsage>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT s.key_id AS key_id, COUNT(DISTINCT s.call_id) AS calls, MAX(c.expires_ms) AS last_expiry, \
             MAX(CASE WHEN c.legal_hold THEN 1 ELSE 0 END) AS held \
             FROM segments s JOIN calls c ON c.call_id = s.call_id GROUP BY s.key_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyUsage {
                    key_id: r
                        .try_get::<Option<String>, _>("key_id")?
                        .unwrap_or_default(),
                    calls: r.try_get("calls")?,
                    last_expiry_ms: r.try_get("last_expiry")?,
                    held: r.try_get::<i32, _>("held")? != 0,
                })
            })
            .collect()
    }

    pub async fn consent(&self, party: &str, by: &str, agreed: bool) -> Result<(), sqlx::Error> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM training_consents WHERE party = $1")
            .bind(party)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO training_consents (party, agreed_ms, recorded_by, withdrawn_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(party)
        .bind(now_ms())
        .bind(by)
        .bind((!agreed).then(now_ms))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Whether a member of staff who took part in the call has agreed (and not withdrawn).
    /// Whether a member of staff who took part in the call (a user's extension among its
    /// parties, never its caller) has agreed to training use.
    pub async fn training_agreed(&self, call_id: &str) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "SELECT p.party FROM call_parties p JOIN training_consents t ON t.party = p.party \
             JOIN users u ON u.extension = p.party JOIN calls c ON c.call_id = p.call_id \
             WHERE p.call_id = $1 AND t.withdrawn_ms IS NULL AND p.party <> c.caller LIMIT 1",
        )
        .bind(call_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The user whose extension `party` is, if any.
    pub async fn staff_with_extension(&self, party: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT username FROM users WHERE extension = $1 LIMIT 1")
            .bind(party)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("username")).transpose()
    }

    /// Calls of one caller (`forms`: their number normalised and as typed) between two
    /// times (restricted ones included).
    pub async fn calls_of_caller(
        &self,
        forms: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        if forms.is_empty() {
            return Ok(Vec::new());
        }
        // one query in time order over every form of the number (placeholders only; every
        // value is bound)
        let list: Vec<String> = (0..forms.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT call_id FROM calls WHERE started_ms >= $1 AND started_ms < $2 AND caller IN ({}) \
             ORDER BY started_ms, call_id",
            list.join(", ")
        ));
        let mut q = sqlx::query(sql).bind(from_ms).bind(to_ms);
        for form in forms {
            q = q.bind(form.clone());
        }
        let ids: Vec<String> = q
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("call_id"))
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct KeyUsage {
    pub key_id: String,
    pub calls: i64,
    pub last_expiry_ms: i64,
    pub held: bool,
}

/// What an erasure found.
#[derive(Debug, PartialEq, Eq)]
pub enum Erasure {
    /// The call's rows are gone; these files of its segments are to be deleted.
    Erased(Vec<String>),
    /// Under legal hold: nothing was erased.
    Held,
    NoSuchCall,
}

/// Why an erasure or the purge stopped.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The rows are gone; this file of theirs could not be deleted.
    #[error("deleting {blob}: {cause:#}")]
    Storage { blob: String, cause: anyhow::Error },
}

impl From<EraseError> for Failure {
    fn from(e: EraseError) -> Failure {
        match e {
            EraseError::Database(e) => e.into(),
            EraseError::Storage { blob, cause } => cause.context(format!("deleting {blob}")).into(),
        }
    }
}

/// Erases one call (`cause`: "erase" or "purge"): rows first (it disappears from every view
/// at once, and its id is refused from then on), then its files. A call under legal hold is
/// not erased.
pub async fn erase(app: &App, call_id: &str, cause: &str) -> Result<Erasure, EraseError> {
    let erasure = app.store.erase_rows(call_id, cause).await?;
    if let Erasure::Erased(blobs) = &erasure {
        for blob in blobs {
            if let Err(cause) = app.blobs.delete(blob).await {
                return Err(EraseError::Storage {
                    blob: blob.clone(),
                    cause,
                });
            }
        }
    }
    Ok(erasure)
}

/// The retention purge: every call past its date and not held is erased; one audit record
/// says which. One instance at a time (the `purge` lease: another instance running it at the
/// same moment finds the lease taken and leaves the work to it). Returns the calls erased.
pub async fn purge(app: &App, actor: &str) -> Result<Vec<String>, EraseError> {
    const LEASE_MS: i64 = 10 * 60 * 1000;
    if !app
        .store
        .take_lease("purge", &app.instance, LEASE_MS)
        .await?
    {
        tracing::info!("another catalogue instance is running the retention purge");
        return Ok(Vec::new());
    }
    let erased = purge_held(app, actor).await;
    app.store.release_lease("purge", &app.instance).await?;
    erased
}

/// The purge's work, under its lease (renewed as it goes).
async fn purge_held(app: &App, actor: &str) -> Result<Vec<String>, EraseError> {
    let due = app.store.expired(now_ms()).await?;
    if due.is_empty() {
        return Ok(due);
    }
    app.store
        .audit(Entry {
            actor,
            action: "purge",
            detail: json!({ "calls": due, "count": due.len(), "rule": "retention period ended, no legal hold" }),
            ..Default::default()
        })
        .await?;
    let mut erased = Vec::with_capacity(due.len());
    for (i, id) in due.into_iter().enumerate() {
        if i % 100 == 99 {
            app.store
                .take_lease("purge", &app.instance, 10 * 60 * 1000)
                .await?;
        }
        // a hold placed since the list was read keeps the call
        if let Erasure::Erased(_) = erase(app, &id, "purge").await? {
            erased.push(id);
        }
    }
    Ok(erased)
}

pub async fn hold(
    State(app): State<App>,
    who: Allowed<Dpo, Api>,
    Path(id): Path<String>,
    Json(s): Json<Switch>,
) -> Response {
    flag_as(&app, who.permitted(), &id, &s, true).await
}

pub async fn restrict(
    State(app): State<App>,
    who: Allowed<Dpo, Api>,
    Path(id): Path<String>,
    Json(s): Json<Switch>,
) -> Response {
    flag_as(&app, who.permitted(), &id, &s, false).await
}

/// Legal hold (`hold`) or restriction on or off, by `who`.
pub async fn flag_as(
    app: &App,
    who: Permitted<'_, Dpo>,
    id: &str,
    s: &Switch,
    hold: bool,
) -> Response {
    if let Some(r) = needs_reason(&s.reason) {
        return r;
    }
    let action = match (hold, s.on) {
        (true, true) => "hold_on",
        (true, false) => "hold_off",
        (false, true) => "restrict_on",
        (false, false) => "restrict_off",
    };
    // nothing is audited for a call that is not there
    match app.store.call_flags(id).await {
        Ok(Some(_)) => {}
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "no such call"),
        Err(e) => return fail(e),
    }
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action,
            call_id: Some(id),
            reference: Some(s.reason.trim()),
            ..Default::default()
        })
        .await
    {
        return fail(e);
    }
    match app.store.set_flag(id, hold, s.on).await {
        Ok(true) => refuse(StatusCode::OK, action),
        Ok(false) => refuse(StatusCode::NOT_FOUND, "no such call"),
        Err(e) => fail(e),
    }
}

pub async fn erase_call(
    State(app): State<App>,
    who: Allowed<Dpo, Api>,
    Path(id): Path<String>,
    Json(r): Json<Reason>,
) -> Response {
    erase_as(&app, who.permitted(), &id, &r.reason).await
}

/// Erasure of a call by `who`, for `reason`.
pub async fn erase_as(app: &App, who: Permitted<'_, Dpo>, id: &str, reason: &str) -> Response {
    if let Some(resp) = needs_reason(reason) {
        return resp;
    }
    match app.store.call_flags(id).await {
        Ok(Some(flags)) if flags.legal_hold => {
            return refuse(
                StatusCode::CONFLICT,
                "the call is under legal hold: lift the hold (with its reason) before erasing",
            );
        }
        Ok(Some(_)) => {}
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "no such call"),
        Err(e) => return fail(e),
    }
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "erase",
            call_id: Some(id),
            reference: Some(reason.trim()),
            ..Default::default()
        })
        .await
    {
        return fail(e);
    }
    match erase(app, id, "erase").await {
        Ok(Erasure::Erased(_)) => refuse(StatusCode::OK, "erased"),
        // a hold placed between the check and the erasure
        Ok(Erasure::Held) => refuse(StatusCode::CONFLICT, "the call is under legal hold"),
        Ok(Erasure::NoSuchCall) => refuse(StatusCode::NOT_FOUND, "no such call"),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
pub struct Consent {
    /// The member of staff's extension (as it appears in calls).
    pub party: String,
    pub agreed: bool,
}

pub async fn consent(
    State(app): State<App>,
    who: Allowed<Dpo, Api>,
    Json(c): Json<Consent>,
) -> Response {
    consent_as(&app, who.permitted(), &c).await
}

/// A member of staff's training agreement (or its withdrawal), recorded by `who`.
pub async fn consent_as(app: &App, who: Permitted<'_, Dpo>, c: &Consent) -> Response {
    if c.party.trim().is_empty() {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "name the extension");
    }
    // an agreement is a member of staff's: not a caller's number, not a service's
    match app.store.staff_with_extension(c.party.trim()).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no member of staff has this extension: add them, with their extension, first",
            );
        }
        Err(e) => return fail(e),
    }
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: if c.agreed {
                "training_consent"
            } else {
                "training_consent_withdrawn"
            },
            detail: json!({ "party": c.party }),
            ..Default::default()
        })
        .await
    {
        return fail(e);
    }
    match app
        .store
        .consent(c.party.trim(), &who.username, c.agreed)
        .await
    {
        Ok(()) => refuse(StatusCode::OK, "recorded"),
        Err(e) => fail(e),
    }
}

fn tar_entry(tar: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    h.set_mtime((now_ms() / 1000) as u64);
    h.set_cksum();
    tar.append_data(&mut h, name, data)
}

fn bundle_response(name: &str, data: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(data));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// A whole call's WAV, decrypted in memory.
async fn call_wav(app: &App, record: &CallRecord) -> Result<Vec<u8>, String> {
    listen::whole_wav(app, record)
        .await
        .map_err(|e| format!("{e:#}"))
}

#[derive(Deserialize)]
pub struct SubjectAccess {
    /// The caller's number, in any format people write numbers in.
    pub caller: String,
    /// A day, RFC 3339 or ms; default: everything kept.
    pub from: Option<String>,
    pub to: Option<String>,
    /// The request's reference (e.g. "SAR-2026-017").
    pub reference: String,
    /// Only count the calls found (what the DPO sees before the bundle downloads).
    #[serde(default)]
    pub preview: bool,
}

/// The calls one subject-access request finds: the subject's number as normalised, and the
/// ids, oldest first; or the 422 saying which filter to fix.
pub async fn calls_of_subject(
    app: &App,
    q: &SubjectAccess,
) -> Result<(String, Vec<String>), Response> {
    if q.caller.trim().is_empty() {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give the caller's number (any format: 07700 900403, +44 7700 900403)",
        ));
    }
    let window = super::search::CallQuery {
        from: q.from.clone(),
        to: q.to.clone(),
        ..Default::default()
    }
    .read(&app.numbers, &[], &app.zone)
    .map_err(|e| refuse(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()))?;
    let forms = app.numbers.typed(&q.caller);
    let ids = app
        .store
        .calls_of_caller(
            &forms,
            window.from_ms.unwrap_or(0),
            window.to_ms.unwrap_or(i64::MAX),
        )
        .await
        .map_err(fail)?;
    Ok((app.numbers.normal(&q.caller), ids))
}

/// Everything recorded of one caller number, as one bundle: an index, each call's metadata
/// and each call's audio.
pub async fn subject_access(
    State(app): State<App>,
    who: Allowed<Dpo, Api>,
    Json(q): Json<SubjectAccess>,
) -> Response {
    subject_access_as(&app, who.permitted(), &q).await
}

/// How many calls a subject-access request finds (what the DPO sees before the bundle
/// downloads), audited as a search: the subject's number as normalised, and the count.
pub async fn preview_subject_access(
    app: &App,
    who: &Permitted<'_, Dpo>,
    q: &SubjectAccess,
) -> Result<(String, usize), Response> {
    if let Some(r) = needs_reason(&q.reference) {
        return Err(r);
    }
    let (subject, ids) = calls_of_subject(app, q).await?;
    app.store
        .audit(Entry {
            actor: &who.username,
            action: "subject_access_search",
            purpose: Some("subject_access"),
            reference: Some(q.reference.trim()),
            detail: json!({ "caller": subject, "from": q.from, "to": q.to, "calls": ids.len() }),
            ..Default::default()
        })
        .await
        .map_err(fail)?;
    Ok((subject, ids.len()))
}

/// The subject-access bundle of one caller number, made for `who`.
pub async fn subject_access_as(app: &App, who: Permitted<'_, Dpo>, q: &SubjectAccess) -> Response {
    if let Some(r) = needs_reason(&q.reference) {
        return r;
    }
    if q.preview {
        return match preview_subject_access(app, &who, q).await {
            Ok((subject, calls)) => {
                Json(json!({ "subject": subject, "calls": calls })).into_response()
            }
            Err(r) => r,
        };
    }
    let (subject, ids) = match calls_of_subject(app, q).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "subject_access_export",
            purpose: Some("subject_access"),
            reference: Some(q.reference.trim()),
            detail: json!({ "caller": subject, "from": q.from, "to": q.to, "calls": ids }),
            ..Default::default()
        })
        .await
    {
        return fail(e);
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut index = Vec::new();
    for id in &ids {
        let record = match app.store.call_document(id).await {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => return fail(e),
        };
        let wav = match call_wav(app, &record).await {
            Ok(w) => w,
            Err(e) => return fail(e),
        };
        let meta = serde_json::to_vec_pretty(&for_the_subject(&record, &subject, &app.numbers))
            .unwrap_or_default();
        if let Err(e) = tar_entry(&mut tar, &format!("calls/{id}.json"), &meta)
            .and_then(|_| tar_entry(&mut tar, &format!("calls/{id}.wav"), &wav))
        {
            return fail(e);
        }
        index.push(json!({
            "call_id": id,
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "service": record.service,
            "dialled": record.dialled,
            "audio": format!("calls/{id}.wav"),
            "metadata": format!("calls/{id}.json"),
        }));
    }
    let index = json!({
        "subject": subject,
        "reference": q.reference.trim(),
        "generated_at": crate::time::Timestamp::now().rfc3339(),
        "generated_by": who.username,
        "calls": index,
        "audio_format": "WAV, 16-bit stereo: left = caller, right = organisation",
        "redacted": REDACTED_FOR_THE_SUBJECT,
    });
    let index = serde_json::to_vec_pretty(&index).unwrap_or_default();
    match tar_entry(&mut tar, "index.json", &index).and_then(|_| tar.into_inner()) {
        Ok(data) => bundle_response("subject-access.tar", data),
        Err(e) => fail(e),
    }
}

/// What a subject-access bundle leaves out of each call's metadata: other people's data and
/// the organisation's internals, not the requester's.
pub const REDACTED_FOR_THE_SUBJECT: &[&str] = &[
    "the numbers and extensions of every other party to the call (staff, transfer targets), shown as \"[another party]\"",
    "SIP Call-IDs and the signalling ladder (network addresses of the organisation's systems)",
    "the RTP streams' identifiers (SSRC) and timing",
    "how the audio is stored (segment files, hashes, encryption key ids)",
];

/// A call's metadata as its caller may have it: their own number, the organisation's number
/// they called, when, how it went and why it was recorded; no one else's number and nothing
/// of the organisation's internals ([`REDACTED_FOR_THE_SUBJECT`]).
fn for_the_subject(
    record: &CallRecord,
    subject: &str,
    numbers: &super::numbers::Numbers,
) -> serde_json::Value {
    let party = |n: &str| {
        // the subject's own number (however the PBX wrote it), and the organisation's number
        // they called
        let theirs = n == subject || n == record.caller || numbers.normal(n) == subject;
        let called = record.dialled.as_deref() == Some(n) || record.dialled_raw == n;
        if theirs || called {
            n.to_owned()
        } else {
            "[another party]".to_owned()
        }
    };
    json!({
        "call_id": record.call_id,
        "caller": record.caller,
        "dialled": record.dialled,
        "service": record.service,
        "started_at": record.started_at,
        "answered_at": record.answered_at,
        "ended_at": record.ended_at,
        "end_reason": record.end_reason,
        "why_recorded": record.decision.reason,
        "audio_ms": record.audio_ms,
        "legs": record.legs.iter().map(|l| json!({
            "from": party(&l.from),
            "to": party(&l.to),
            "started_at": l.started_at,
            "answered_at": l.answered_at,
            "ended_at": l.ended_at,
            "joined_by": l.joined_by,
            "transferred": !l.transfers.is_empty(),
        })).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
pub struct TrainingExport {
    pub reference: String,
    /// Ranges of the call (ms from its start) where the caller is silenced; none = the whole
    /// caller channel.
    #[serde(default)]
    pub silence: Vec<(u64, u64)>,
}

/// The call's metadata with every identifier of the caller and of the call removed.
fn anonymised(record: &CallRecord) -> serde_json::Value {
    json!({
        "service": record.service,
        "duration_ms": record.audio_ms,
        "end_reason": record.end_reason,
        "legs": record.legs.iter().map(|l| json!({
            "joined_by": l.joined_by,
            "answered": l.answered_at.is_some(),
            "transfers": l.transfers.len(),
        })).collect::<Vec<_>>(),
        "streams": record.streams.iter().map(|s| json!({
            "direction": s.direction,
            "codec": s.codec,
        })).collect::<Vec<_>>(),
    })
}

pub async fn training_export(
    State(app): State<App>,
    who: Allowed<Dpo, Api>,
    Path(id): Path<String>,
    Json(t): Json<TrainingExport>,
) -> Response {
    training_export_as(&app, who.permitted(), &id, &t).await
}

/// An anonymised training export of one call, made by `who`.
pub async fn training_export_as(
    app: &App,
    who: Permitted<'_, Dpo>,
    id: &str,
    t: &TrainingExport,
) -> Response {
    if let Some(r) = needs_reason(&t.reference) {
        return r;
    }
    let record = match app.store.call_document(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "no such call"),
        Err(e) => return fail(e),
    };
    match app.store.training_agreed(id).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                StatusCode::CONFLICT,
                "no member of staff on this call has agreed to training use",
            );
        }
        Err(e) => return fail(e),
    }
    if let Err(e) = app
        .store
        .audit(Entry {
            actor: &who.username,
            action: "training_export",
            call_id: Some(id),
            purpose: Some("quality_training"),
            reference: Some(t.reference.trim()),
            detail: json!({ "silenced": if t.silence.is_empty() { json!("whole caller channel") } else { json!(t.silence) } }),
        })
        .await
    {
        return fail(e);
    }
    let mut wav = match call_wav(app, &record).await {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let rate = record
        .segments
        .iter()
        .map(|s| s.sample_rate)
        .max()
        .unwrap_or(8000) as u64;
    let frames = (wav.len() - crate::segment::wav::HEADER_LEN) / 4;
    let silence_all = t.silence.is_empty();
    for f in 0..frames {
        let ms = f as u64 * 1000 / rate;
        if silence_all || t.silence.iter().any(|&(a, b)| a <= ms && ms < b) {
            let at = crate::segment::wav::HEADER_LEN + f * 4;
            wav[at] = 0;
            wav[at + 1] = 0;
        }
    }
    let mut tar = tar::Builder::new(Vec::new());
    let meta = serde_json::to_vec_pretty(&anonymised(&record)).unwrap_or_default();
    match tar_entry(&mut tar, "call.json", &meta)
        .and_then(|_| tar_entry(&mut tar, "call.wav", &wav))
        .and_then(|_| tar.into_inner())
    {
        Ok(data) => bundle_response("training.tar", data),
        Err(e) => fail(e),
    }
}

pub async fn keys(State(app): State<App>, _: Allowed<SeesKeys, Api>) -> Response {
    match app.store.key_usage().await {
        Ok(k) => Json(k).into_response(),
        Err(e) => fail(e),
    }
}
