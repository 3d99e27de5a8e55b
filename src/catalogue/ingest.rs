//! The agents' side of the catalogue API: segments and call metadata shipped from spools.
//!
//! `PUT /api/v1/segments/{segment_id}?call_id=..&sha256=..` (the encrypted file as it is in the
//! spool), then `POST /api/v1/calls` (the call's metadata document). Both are idempotent: the
//! same upload again is accepted and changes nothing, so an agent retries freely. A stored
//! call is never rewritten (another document for it is refused, 409) and an erased one is
//! never stored again (its id is tombstoned); both refusals are audited. What the DPO set on
//! a call (hold, restriction) and its expiry are the catalogue's, never the document's. An agent
//! authenticates with its own bearer token and can write only its own calls. Every segment's
//! SHA-256 is checked on receipt, and a call is accepted only once every segment it lists
//! is here with the hash it names.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::App;
use super::blobs::Blobs;
use super::error::Failure;
use super::store::{SegmentRow, Stored};
use super::tls::ClientCert;
use crate::record::CallRecord;
use crate::vault::{HEADER_LEN, SegmentHeader};

fn reply(code: StatusCode, text: impl Into<String>) -> Response {
    (code, text.into()).into_response()
}

/// A failure storing an upload: 503 when the database or storage is out of reach (the agent
/// retries), else 500 (it retries too; see [`Failure::server_side`]).
fn internal(e: impl Into<Failure>) -> Response {
    e.into().server_side().into_response()
}

/// SHA-256 of an agent token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// The agent presenting `Authorization: Bearer <token>` and, when `server.client_ca` is set,
/// a client certificate naming that same agent (a stolen token alone is not enough).
async fn agent(app: &App, headers: &HeaderMap, cert: &ClientCert) -> Result<String, Response> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| reply(StatusCode::UNAUTHORIZED, "agent token required\n"))?;
    let name = match app.store.agent_by_token(&token_hash(token)).await {
        Ok(Some(name)) => name,
        Ok(None) => return Err(reply(StatusCode::UNAUTHORIZED, "unknown agent token\n")),
        Err(e) => return Err(internal(e)),
    };
    if app.config.server.client_ca.is_some() && !cert.names(&name) {
        let why = match cert.0 {
            None => format!(
                "this catalogue requires agents to present a client certificate (catalogue.client_cert) for their name, \"{name}\"\n"
            ),
            Some(_) => format!(
                "the client certificate does not name agent \"{name}\" (a subjectAltName DNS entry)\n"
            ),
        };
        return Err(reply(StatusCode::UNAUTHORIZED, why));
    }
    Ok(name)
}

pub async fn put_segment(
    State(app): State<App>,
    ConnectInfo(cert): ConnectInfo<ClientCert>,
    Path(segment_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let agent = match agent(&app, &headers, &cert).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (Some(call_id), Some(sha256)) = (q.get("call_id"), q.get("sha256")) else {
        return reply(StatusCode::BAD_REQUEST, "call_id and sha256 are required\n");
    };
    let got = hex::encode(Sha256::digest(&body));
    if &got != sha256 {
        return reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("SHA-256 of the body is {got}, not {sha256}\n"),
        );
    }
    // the ids the agent sealed into the header must be the ones it names
    let header = match SegmentHeader::parse(&body[..body.len().min(HEADER_LEN)]) {
        Ok(h) => h,
        Err(e) => {
            return reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a callvault segment: {e}\n"),
            );
        }
    };
    if header.segment_id.to_string() != segment_id || &header.call_id.to_string() != call_id {
        return reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the segment's header names another segment or call\n",
        );
    }
    match app.store.call_agent(call_id).await {
        Ok(Some(owner)) if owner != agent => {
            return reply(StatusCode::FORBIDDEN, "the call belongs to another agent\n");
        }
        Ok(_) => {}
        Err(e) => return internal(e),
    }
    match app.store.was_erased(call_id).await {
        Ok(true) => {
            let why = "the call was erased: its segments are not stored again";
            return refuse_upload(&app, &agent, call_id, Some(&segment_id), why).await;
        }
        Ok(false) => {}
        Err(e) => return internal(e),
    }
    match app.store.segment(&segment_id).await {
        Ok(Some(existing)) => {
            return if existing.agent != agent || &existing.call_id != call_id {
                reply(
                    StatusCode::FORBIDDEN,
                    "the segment belongs to another call\n",
                )
            } else if &existing.sha256 == sha256 {
                reply(StatusCode::OK, "already stored\n")
            } else {
                reply(
                    StatusCode::CONFLICT,
                    "a different segment with this id is stored\n",
                )
            };
        }
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    let name = Blobs::name_for(&segment_id);
    if let Err(e) = app.blobs.put(&name, &body).await {
        return internal(format!("writing segment {segment_id}: {e:#}"));
    }
    let row = SegmentRow {
        key_id: header.key_id.to_string(),
        segment_id: segment_id.clone(),
        call_id: call_id.to_owned(),
        agent,
        sha256: sha256.clone(),
        bytes: body.len() as i64,
        blob: name,
    };
    match app.store.insert_segment(&row).await {
        Ok(()) => reply(StatusCode::CREATED, "stored\n"),
        // a concurrent upload of the same segment won the insert: the same bytes are stored
        Err(_) if matches!(app.store.segment(&segment_id).await, Ok(Some(s)) if s.sha256 == row.sha256) => {
            reply(StatusCode::OK, "already stored\n")
        }
        Err(e) => internal(e),
    }
}

/// The checks of an uploaded call document that need nothing but the document and the
/// agent that sent it (hostile input: never panics; the fuzz target `call_document` holds
/// it to that). The store's checks (ownership, segments received) come after.
pub fn check_call_document(body: &[u8], agent: &str) -> Result<CallRecord, (StatusCode, String)> {
    let record: CallRecord = serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("not a call document: {e}\n"),
        )
    })?;
    if record.agent != agent {
        return Err((
            StatusCode::FORBIDDEN,
            format!("agent {agent} cannot write calls of {}\n", record.agent),
        ));
    }
    if uuid::Uuid::parse_str(&record.call_id).is_err() {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "call_id is not a UUID\n".into(),
        ));
    }
    // the limits every agent keeps inside (record::limits), and the document's own sense
    record
        .check()
        .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")))?;
    Ok(record)
}

pub async fn post_call(
    State(app): State<App>,
    ConnectInfo(cert): ConnectInfo<ClientCert>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let agent = match agent(&app, &headers, &cert).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let record = match check_call_document(&body, &agent) {
        Ok(r) => r,
        Err((status, why)) => return reply(status, why),
    };
    match app.store.call_agent(&record.call_id).await {
        Ok(Some(owner)) if owner != agent => {
            return reply(StatusCode::FORBIDDEN, "the call belongs to another agent\n");
        }
        Ok(_) => {}
        Err(e) => return internal(e),
    }
    match app.store.was_erased(&record.call_id).await {
        Ok(true) => {
            let why = "the call was erased: it is not stored again";
            return refuse_upload(&app, &agent, &record.call_id, None, why).await;
        }
        Ok(false) => {}
        Err(e) => return internal(e),
    }
    for seg in &record.segments {
        match app.store.segment(&seg.segment_id).await {
            Ok(Some(s)) if s.agent != agent => {
                return reply(
                    StatusCode::FORBIDDEN,
                    format!("segment {} belongs to another agent\n", seg.segment_id),
                );
            }
            // what the catalogue received is the truth: the size it hashed and the key the
            // sealed header names; a document that says otherwise is refused
            Ok(Some(s))
                if s.call_id == record.call_id
                    && s.sha256 == seg.sha256
                    && (s.bytes != seg.bytes as i64 || s.key_id != seg.key_id) =>
            {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "segment {}: the document says {} bytes sealed to key {}, the stored segment is {} bytes sealed to key {}\n",
                        seg.segment_id, seg.bytes, seg.key_id, s.bytes, s.key_id
                    ),
                );
            }
            Ok(Some(s)) if s.call_id == record.call_id && s.sha256 == seg.sha256 => {}
            Ok(Some(_)) => {
                return reply(
                    StatusCode::CONFLICT,
                    format!(
                        "segment {} is stored with another call or hash\n",
                        seg.segment_id
                    ),
                );
            }
            Ok(None) => {
                return reply(
                    StatusCode::CONFLICT,
                    format!("segment {} has not been received\n", seg.segment_id),
                );
            }
            Err(e) => return internal(e),
        }
    }
    // the service is one the agent said it records (once it has said: it reports its number
    // list before it ships, at every start)
    if let Some(service) = &record.service {
        match app.store.agent_scope(&agent).await {
            Ok(Some(scope))
                if !scope.is_empty() && !scope.iter().any(|n| &n.service == service) =>
            {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "service {service:?} is not one this agent reported it records: its number list names {}\n",
                        scope
                            .iter()
                            .map(|n| n.service.as_str())
                            .collect::<std::collections::BTreeSet<_>>()
                            .into_iter()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => return internal(e),
        }
    }
    let days = match retention_days(&app, &agent, &record).await {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let parties = app.numbers.parties(&record);
    match app.store.store_call(&record, days, &parties).await {
        Ok(Stored::Created) => reply(StatusCode::CREATED, "stored\n"),
        Ok(Stored::Unchanged) => reply(StatusCode::OK, "already stored\n"),
        Ok(Stored::Erased) => {
            let why = "the call was erased: it is not stored again";
            refuse_upload(&app, &agent, &record.call_id, None, why).await
        }
        Ok(Stored::Differs(fields)) => {
            let why = format!(
                "another document is stored for this call (it differs in {}): a stored call is never rewritten",
                fields.join(", ")
            );
            refuse_upload(&app, &agent, &record.call_id, None, &why).await
        }
        Err(e) => internal(e),
    }
}

/// How long the catalogue keeps a call: the retention its agent reported for the call's
/// service (`PUT /api/v1/agent/scope`; the longest when the service's numbers disagree), else
/// `retention.default_days`. Never the document's own figure: a call's expiry is not the
/// sender's to set.
async fn retention_days(app: &App, agent: &str, record: &CallRecord) -> Result<u32, sqlx::Error> {
    let scope = app.store.agent_scope(agent).await?.unwrap_or_default();
    let listed = scope
        .iter()
        .filter(|n| record.service.as_deref() == Some(n.service.as_str()))
        .filter_map(|n| n.retention_days)
        .filter(|d| (1..=MAX_RETENTION_DAYS).contains(d))
        .max();
    Ok(listed.unwrap_or(app.config.retention.default_days))
}

/// The longest retention an agent's number list can ask for (100 years).
const MAX_RETENTION_DAYS: u32 = 36_500;

/// A 409 for an upload the catalogue will not store, with an audit record saying why (an
/// agent resending an erased call is something the DPO should see).
async fn refuse_upload(
    app: &App,
    agent: &str,
    call_id: &str,
    segment_id: Option<&str>,
    why: &str,
) -> Response {
    let entry = super::audit::Entry {
        actor: agent,
        action: "upload_refused",
        call_id: Some(call_id),
        detail: serde_json::json!({ "segment": segment_id, "why": why }),
        ..Default::default()
    };
    if let Err(e) = app.store.audit(entry).await {
        return internal(e);
    }
    reply(StatusCode::CONFLICT, format!("{why}\n"))
}

/// `PUT /api/v1/agent/scope`: the number list the agent runs with (what admins see).
pub async fn put_scope(
    State(app): State<App>,
    ConnectInfo(cert): ConnectInfo<ClientCert>,
    headers: HeaderMap,
    axum::Json(numbers): axum::Json<Vec<super::store::ScopeEntry>>,
) -> Response {
    let agent = match agent(&app, &headers, &cert).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if numbers.len() > 10_000 {
        return reply(StatusCode::PAYLOAD_TOO_LARGE, "too many numbers\n");
    }
    // what an agent records is policy: a change of its number list goes in the audit log,
    // before the new list is stored (a failure after it re-audits on the retry; none is lost)
    let before = match app.store.agent_scope(&agent).await {
        Ok(b) => b.unwrap_or_default(),
        Err(e) => return internal(e),
    };
    let describe = |list: &[super::store::ScopeEntry], other: &[super::store::ScopeEntry]| {
        list.iter()
            .filter(|n| !other.contains(n))
            .map(|n| format!("{} ({})", n.number, n.service))
            .collect::<Vec<_>>()
    };
    let (added, removed) = (describe(&numbers, &before), describe(&before, &numbers));
    if !added.is_empty() || !removed.is_empty() {
        let entry = super::audit::Entry {
            actor: &agent,
            action: "agent_scope",
            detail: serde_json::json!({
                "numbers": numbers.len(),
                "added": added,
                "removed": removed,
            }),
            ..Default::default()
        };
        if let Err(e) = app.store.audit(entry).await {
            return internal(e);
        }
    }
    if let Err(e) = app.store.set_agent_scope(&agent, &numbers).await {
        return internal(e);
    }
    reply(StatusCode::OK, "stored\n")
}

/// `PUT /api/v1/agent/health`: how the agent is (what the admin's operations page shows).
/// Not audited: it comes every half minute and changes nothing anyone may see or hear.
pub async fn put_health(
    State(app): State<App>,
    ConnectInfo(cert): ConnectInfo<ClientCert>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let agent = match agent(&app, &headers, &cert).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let health = match check_health_report(&body) {
        Ok(h) => h,
        Err(why) => return reply(StatusCode::UNPROCESSABLE_ENTITY, why),
    };
    if let Err(e) = app.store.set_agent_health(&agent, &health).await {
        return internal(e);
    }
    reply(StatusCode::OK, "stored\n")
}

/// Reads an agent's health report and holds it to its bounds (the fuzz target's entry).
pub fn check_health_report(body: &[u8]) -> Result<crate::record::health::AgentHealth, String> {
    let health: crate::record::health::AgentHealth =
        serde_json::from_slice(body).map_err(|e| format!("not a health report: {e}\n"))?;
    health.check().map_err(|e| format!("{e}\n"))?;
    Ok(health)
}
