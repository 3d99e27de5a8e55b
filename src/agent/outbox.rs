//! The outbox: ships recorded calls from the spool to the catalogue, and clears what the
//! catalogue has acknowledged once the local retention has passed.
//!
//! The spool is the outbox: a call whose metadata has an end is due. Its segments go first
//! (`PUT /api/v1/segments/{id}`), then its metadata (`POST /api/v1/calls`); once the catalogue
//! has answered 2xx to all of them, `shipped/<call_id>` records it. Every request is
//! idempotent on the catalogue's side, so a crash or a cut between two requests only means the
//! next round sends some of them again. While the catalogue cannot be reached, rounds back
//! off exponentially (with jitter, so that a fleet of agents does not come back in step) up to
//! `catalogue.retry_max_seconds`; nothing is ever deleted before it is shipped. A call the
//! catalogue refuses outright (4xx) is set aside in `rejected/<call_id>` with the reason, and
//! counted, instead of blocking the rest.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::metrics::Status;
use crate::record::CallRecord;

pub const SHIPPED_DIR: &str = "shipped";
pub const REJECTED_DIR: &str = "rejected";

pub struct Outbox {
    /// The version of the number list (`Status::scope`) the catalogue has acknowledged.
    scope_reported: u64,
    client: reqwest::Client,
    base: String,
    token: String,
    spool: PathBuf,
    keep: Duration,
    retry_max: Duration,
    status: Arc<Status>,
}

/// Why a shipping round stopped: everything not yet shipped stays in the spool for the next.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The catalogue could not be reached or answered 5xx (or refused the agent's token).
    #[error("{0}")]
    Unreachable(String),
    /// The spool could not be read or a shipped call could not be marked so.
    #[error("spool: {0}")]
    Spool(String),
}

enum ShipError {
    /// Try again later (catalogue down, network cut, 5xx).
    Transient(String),
    /// The catalogue refuses this call (4xx): retrying will not help.
    Rejected(String),
}

impl Outbox {
    pub fn new(
        link: &crate::config::CatalogueLink,
        token: String,
        spool: &Path,
        scope: &crate::policy::ScopeSection,
        status: Arc<Status>,
    ) -> anyhow::Result<Outbox> {
        status.set_scope(scope);
        let base = link.url.as_str();
        let keep = Duration::from_secs(link.keep_shipped_hours as u64 * 3600);
        let retry_max = Duration::from_secs(link.retry_max_seconds as u64);
        let ca_file = link.ca_file.as_deref();
        let mut client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120));
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| anyhow::anyhow!("catalogue.ca_file = {ca:?}: cannot read it: {e}"))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                anyhow::anyhow!("catalogue.ca_file = {ca:?}: not a PEM certificate: {e}")
            })?;
            client = client.add_root_certificate(cert);
        }
        match (&link.client_cert, &link.client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = std::fs::read(cert).map_err(|e| {
                    anyhow::anyhow!("catalogue.client_cert = {cert:?}: cannot read it: {e}")
                })?;
                pem.push(b'\n');
                pem.extend(std::fs::read(key).map_err(|e| {
                    anyhow::anyhow!("catalogue.client_key = {key:?}: cannot read it: {e}")
                })?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    anyhow::anyhow!(
                        "catalogue.client_cert / catalogue.client_key: not a PEM certificate and key: {e}"
                    )
                })?;
                client = client.identity(identity);
            }
            (None, None) => {}
            _ => anyhow::bail!(
                "catalogue.client_cert and catalogue.client_key go together: set both, or neither"
            ),
        }
        let client = client.build()?;
        for dir in [SHIPPED_DIR, REJECTED_DIR] {
            std::fs::create_dir_all(spool.join(dir))?;
        }
        Ok(Outbox {
            scope_reported: 0,
            client,
            base: base.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            spool: spool.to_owned(),
            keep,
            retry_max,
            status,
        })
    }

    pub async fn run(mut self) {
        let mut failures = 0u32;
        let mut reported: Option<std::time::Instant> = None;
        loop {
            // the number list at start, and again after each reload that changed it
            let pending = self
                .status
                .scope
                .lock()
                .ok()
                .filter(|s| s.0 != self.scope_reported)
                .map(|s| s.clone());
            if let Some((version, numbers)) = pending
                && self.report_scope(&numbers).await
            {
                self.scope_reported = version;
            }
            let shipped = self.round().await;
            // how the recording server is, for the admin's operations page: every half
            // minute whether shipping went well or not (after the round: its outbox figures
            // are fresh), an attempt that failed waiting like one that was answered
            if reported.is_none_or(|t| t.elapsed() >= crate::record::health::REPORT_EVERY) {
                self.report_health().await;
                reported = Some(std::time::Instant::now());
            }
            match shipped {
                Ok(()) => {
                    failures = 0;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(why) => {
                    failures = failures.saturating_add(1);
                    self.status.ship_failures.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(failures, self.retry_max);
                    tracing::warn!(
                        retry_in_ms = wait.as_millis() as u64,
                        "catalogue not reachable, recordings stay in the spool: {why}"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
            let spool = self.spool.clone();
            let keep = self.keep;
            let _ = tokio::task::spawn_blocking(move || expire_shipped(&spool, keep)).await;
        }
    }

    /// One pass, not a loop (`callvault demo`): the number list, then every due call; Err
    /// at the first transient failure.
    pub async fn ship_all(&mut self) -> Result<(), OutboxError> {
        let (version, numbers) = self
            .status
            .scope
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        if self.report_scope(&numbers).await {
            self.scope_reported = version;
        }
        let shipped = self.round().await;
        self.report_health().await;
        shipped
    }

    /// Tells the catalogue how this agent is (true once it has answered).
    async fn report_health(&self) -> bool {
        // a round may have spent its time on a backlog: the report waits at most a few
        // seconds, so it does not hold the next round up
        let req = self
            .client
            .put(format!("{}/api/v1/agent/health", self.base))
            .timeout(Duration::from_secs(10))
            .bearer_auth(&self.token)
            .json(&self.status.report());
        answer(req.send().await).await.is_ok()
    }

    /// Tells the catalogue which numbers this agent records (true once it has answered).
    async fn report_scope(&self, scope: &[serde_json::Value]) -> bool {
        let req = self
            .client
            .put(format!("{}/api/v1/agent/scope", self.base))
            .bearer_auth(&self.token)
            .json(scope);
        answer(req.send().await).await.is_ok()
    }

    /// Ships every due call; stops at the first transient failure.
    async fn round(&self) -> Result<(), OutboxError> {
        let spool = self.spool.clone();
        let due = tokio::task::spawn_blocking(move || due_calls(&spool))
            .await
            .map_err(|e| OutboxError::Spool(format!("listing due calls: {e}")))?;
        self.status
            .outbox_calls
            .store(due.len() as u64, Ordering::Relaxed);
        for record in due {
            match self.ship(&record).await {
                Ok(()) => {
                    mark(&self.spool, SHIPPED_DIR, &record.call_id, "").map_err(|e| {
                        OutboxError::Spool(format!("marking {} shipped: {e}", record.call_id))
                    })?;
                    self.status.shipped_calls.fetch_add(1, Ordering::Relaxed);
                    self.status.outbox_calls.fetch_sub(1, Ordering::Relaxed);
                    tracing::debug!(call_id = %record.call_id, "shipped to the catalogue");
                }
                Err(ShipError::Rejected(why)) => {
                    tracing::error!(call_id = %record.call_id, "the catalogue refused the call, set aside in rejected/: {why}");
                    let _ = mark(&self.spool, REJECTED_DIR, &record.call_id, &why);
                    self.status.rejected_calls.fetch_add(1, Ordering::Relaxed);
                    self.status.outbox_calls.fetch_sub(1, Ordering::Relaxed);
                }
                Err(ShipError::Transient(why)) => return Err(OutboxError::Unreachable(why)),
            }
        }
        Ok(())
    }

    async fn ship(&self, record: &CallRecord) -> Result<(), ShipError> {
        for seg in &record.segments {
            let path = self.spool.join(&seg.file);
            let data = tokio::fs::read(&path)
                .await
                .map_err(|e| ShipError::Rejected(format!("{}: {e}", path.display())))?;
            let req = self
                .client
                .put(format!("{}/api/v1/segments/{}", self.base, seg.segment_id))
                .query(&[("call_id", &record.call_id), ("sha256", &seg.sha256)])
                .bearer_auth(&self.token)
                .body(data);
            answer(req.send().await).await?;
        }
        let body = serde_json::to_vec(record).map_err(|e| ShipError::Rejected(e.to_string()))?;
        let req = self
            .client
            .post(format!("{}/api/v1/calls", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        answer(req.send().await).await
    }
}

async fn answer(sent: Result<reqwest::Response, reqwest::Error>) -> Result<(), ShipError> {
    let resp = sent.map_err(|e| ShipError::Transient(e.to_string()))?;
    let code = resp.status();
    if code.is_success() {
        return Ok(());
    }
    // the catalogue's line saying why, bounded (it goes into the log and rejected/)
    let text = resp.text().await.unwrap_or_default();
    let line: String = text.trim().chars().take(300).collect();
    let why = if line.is_empty() {
        format!("{code}")
    } else {
        format!("{code}: {line}")
    };
    if code == reqwest::StatusCode::UNAUTHORIZED {
        // the token is wrong or revoked: a configuration problem, not this call's; keep
        // everything and keep trying (the log says what to fix)
        tracing::error!(
            "the catalogue does not accept this agent's token (catalogue.token_file): recordings stay in the spool"
        );
        return Err(ShipError::Transient(why));
    }
    if code.is_client_error()
        && code != reqwest::StatusCode::REQUEST_TIMEOUT
        && code != reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        Err(ShipError::Rejected(why))
    } else {
        Err(ShipError::Transient(why))
    }
}

/// Exponential backoff from 1 s, capped, times a random factor in [0.5, 1.5).
fn backoff(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(16)).min(max);
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let factor = 0.5 + u16::from_le_bytes(r) as f64 / 65_536.0;
    base.mul_f64(factor)
}

/// Calls that have ended and are neither shipped nor set aside, oldest first.
fn due_calls(spool: &Path) -> Vec<CallRecord> {
    let Ok(dir) = std::fs::read_dir(spool.join(crate::spool::CALLS_DIR)) else {
        return Vec::new();
    };
    let mut due: Vec<(std::time::SystemTime, CallRecord)> = dir
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let record: CallRecord =
                serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?;
            let done = record.ended_at.is_some()
                && !spool.join(SHIPPED_DIR).join(&record.call_id).exists()
                && !spool.join(REJECTED_DIR).join(&record.call_id).exists();
            let modified = e.metadata().ok()?.modified().ok()?;
            done.then_some((modified, record))
        })
        .collect();
    due.sort_by_key(|(t, _)| *t);
    due.into_iter().map(|(_, r)| r).collect()
}

fn mark(spool: &Path, dir: &str, call_id: &str, text: &str) -> std::io::Result<()> {
    let path = spool.join(dir).join(call_id);
    let f = std::fs::File::create(&path)?;
    std::io::Write::write_all(&mut &f, text.as_bytes())?;
    f.sync_all()?;
    if let Ok(d) = std::fs::File::open(spool.join(dir)) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Deletes the files of calls shipped longer than `keep` ago (segments, then metadata, then
/// the marker: a crash half-way leaves a marker whose files are partly gone, which the next
/// pass finishes).
pub fn expire_shipped(spool: &Path, keep: Duration) {
    let Ok(dir) = std::fs::read_dir(spool.join(SHIPPED_DIR)) else {
        return;
    };
    for e in dir.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= keep);
        if !old {
            continue;
        }
        let call_id = e.file_name().to_string_lossy().into_owned();
        let json = spool
            .join(crate::spool::CALLS_DIR)
            .join(format!("{call_id}.json"));
        if let Some(record) = std::fs::read_to_string(&json)
            .ok()
            .and_then(|t| serde_json::from_str::<CallRecord>(&t).ok())
        {
            for seg in &record.segments {
                let _ = std::fs::remove_file(spool.join(&seg.file));
            }
        }
        let _ = std::fs::remove_file(&json);
        let _ = std::fs::remove_file(e.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let max = Duration::from_secs(300);
        for failures in 1..40 {
            let d = backoff(failures, max);
            let base = Duration::from_secs(1u64 << (failures - 1).min(16)).min(max);
            assert!(
                d >= base.mul_f64(0.5) && d < base.mul_f64(1.5),
                "{failures}: {d:?}"
            );
        }
    }
}
