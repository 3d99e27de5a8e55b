//! The catalogue's database: one schema on SQLite (embedded) or PostgreSQL (by URL).
//!
//! Owns the connection pool, the migrations (`migrations/{sqlite,postgres}`, embedded and
//! applied in order on start, each once) and the calls and segments tables' queries; each
//! other module keeps its own tables' queries in an `impl Store` of its own (`people`, `audit`,
//! `search`, `rights`, `listen`). Queries are written once, with `$N`
//! placeholders both databases accept, through sqlx's `Any` driver (which cannot decode
//! SQLite's BOOLEAN columns: queries read booleans as `CASE WHEN b THEN 1 ELSE 0 END`). It
//! never touches segment files (see `blobs`) and never decides who may do what (see the
//! handlers).

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use std::path::Path;

use crate::record::CallRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Migrations, in order: (version, SQLite text, PostgreSQL text).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        include_str!("../../migrations/sqlite/0001_ingest.sql"),
        include_str!("../../migrations/postgres/0001_ingest.sql"),
    ),
    (
        2,
        include_str!("../../migrations/sqlite/0002_people_audit.sql"),
        include_str!("../../migrations/postgres/0002_people_audit.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_rights.sql"),
        include_str!("../../migrations/postgres/0003_rights.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_agent_scope.sql"),
        include_str!("../../migrations/postgres/0004_agent_scope.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_tombstones_leases.sql"),
        include_str!("../../migrations/postgres/0005_tombstones_leases.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_accounts.sql"),
        include_str!("../../migrations/postgres/0006_accounts.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_approvals.sql"),
        include_str!("../../migrations/postgres/0007_approvals.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_agent_health.sql"),
        include_str!("../../migrations/postgres/0008_agent_health.sql"),
    ),
];

#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub backend: Backend,
}

/// A segment as the catalogue holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRow {
    pub key_id: String,
    pub segment_id: String,
    pub call_id: String,
    pub agent: String,
    pub sha256: String,
    pub bytes: i64,
    pub blob: String,
}

/// One listed number as an agent runs it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScopeEntry {
    pub number: String,
    pub service: String,
    pub retention_days: Option<u32>,
}

/// An agent as the admin page lists it.
#[derive(Clone, Debug)]
pub struct AgentRow {
    pub name: String,
    pub created_at: String,
    pub calls: i64,
    pub numbers: Vec<ScopeEntry>,
    /// Disabled: its token is refused.
    pub disabled: bool,
    /// Its last health report and when it came (None: it has not reported).
    pub health: Option<(crate::record::health::AgentHealth, i64)>,
    /// Calls it recorded that started in the last hour.
    pub calls_last_hour: i64,
}

/// What an agent reports and the catalogue keeps, with when: its number list, its health.
#[derive(Clone, Copy)]
enum AgentReport {
    Scope,
    Health,
}

/// What storing a call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    Created,
    /// The same document was already stored: nothing changed.
    Unchanged,
    /// Another document is stored for this call: nothing changed (an agent cannot rewrite a
    /// call, nor undo what the DPO set on it). The fields that differ.
    Differs(Vec<String>),
    /// The call was erased (by the DPO or the purge): it is never stored again.
    Erased,
}

pub(crate) fn now_ms() -> i64 {
    crate::time::Timestamp::now().as_millis() as i64
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn rfc3339_ms(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// What stops this user opening an SQLite database at `url`, in words an admin can act on
/// (SQLite's own, "unable to open database file", do not say what to fix); None for a
/// PostgreSQL URL or a database that opens.
pub fn sqlite_problem(url: &str) -> Option<String> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let path = Path::new(path);
    let dir = path.parent().unwrap_or(Path::new("."));
    let run_as = "run the command as the catalogue's user (e.g. `sudo -u callvault callvault catalogue ...`)";
    if !dir.is_dir() {
        return Some(format!(
            "the directory {} does not exist: create it (owned by the user the catalogue runs as), or point storage.database_url elsewhere",
            dir.display()
        ));
    }
    let opens = if path.exists() {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(|_| ())
    } else {
        // SQLite creates the file and its -wal and -shm beside it
        let probe = dir.join(format!(".callvault-probe-{}", std::process::id()));
        let made = std::fs::File::create(&probe).map(|_| ());
        let _ = std::fs::remove_file(&probe);
        made
    };
    match opens {
        Ok(()) => None,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(if path.exists() {
            format!(
                "this user may not read and write {}: {run_as}",
                path.display()
            )
        } else {
            format!(
                "this user may not create files in {}: {run_as}",
                dir.display()
            )
        }),
        Err(e) => Some(format!("cannot open {}: {e}", path.display())),
    }
}

impl Store {
    /// Connects (creating a SQLite file if needed) and applies the migrations not yet applied.
    pub async fn connect(url: &str) -> Result<Store, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        if backend == Backend::Sqlite {
            // the database holds callers' numbers: made the owner's only, whatever the umask
            // (SQLite gives its -wal and -shm files the database's mode)
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
                .split('?')
                .next()
                .unwrap_or_default();
            if !path.is_empty() && path != ":memory:" {
                use std::os::unix::fs::OpenOptionsExt;
                let made = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path);
                if let Err(e) = made
                    && e.kind() != std::io::ErrorKind::AlreadyExists
                {
                    tracing::debug!("creating {path}: {e}");
                }
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::raw_sql("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")
                            .execute(conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::raw_sql("PRAGMA journal_mode = WAL;")
                .execute(&pool)
                .await?;
        }
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// A transaction that writes. On SQLite it takes the write lock at BEGIN (IMMEDIATE): a
    /// deferred transaction that reads first and writes after fails at once with "database
    /// is locked" when another connection wrote in between (busy_timeout does not cover that
    /// upgrade), which concurrent retrievals (audit, grant) hit.
    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for (version, sqlite, postgres) in MIGRATIONS {
            let mut tx = self.write_tx().await?;
            let done: Option<AnyRow> =
                sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            let text: &'static str = match self.backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            };
            sqlx::raw_sql(text).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)")
                .bind(*version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, "database migrated");
        }
        Ok(())
    }

    pub async fn add_agent(&self, name: &str, token_sha256: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO agents (name, token_sha256, created_at, disabled) VALUES ($1, $2, $3, FALSE)",
        )
        .bind(name)
        .bind(token_sha256)
        .bind(crate::time::Timestamp::now().rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Agents: name, registration time, calls shipped, the number list it last reported.
    pub async fn list_agents(&self) -> Result<Vec<AgentRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT a.name AS name, a.created_at AS created_at, a.scope AS scope, CASE WHEN a.disabled THEN 1 ELSE 0 END AS disabled, (SELECT COUNT(*) FROM calls c WHERE c.agent = a.name) AS calls, (SELECT COUNT(*) FROM calls c WHERE c.agent = a.name AND c.started_ms >= $1) AS calls_last_hour, a.health AS health, a.health_ms AS health_ms FROM agents a ORDER BY a.name",
        )
        .bind(now_ms() - 3_600_000)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let scope: Option<String> = r.try_get("scope")?;
                let health: Option<String> = r.try_get("health")?;
                let health_ms: Option<i64> = r.try_get("health_ms")?;
                Ok(AgentRow {
                    calls_last_hour: r.try_get("calls_last_hour")?,
                    health: health
                        .and_then(|h| serde_json::from_str(&h).ok())
                        .zip(health_ms),
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    calls: r.try_get("calls")?,
                    disabled: r.try_get::<i32, _>("disabled")? != 0,
                    numbers: scope
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Stores the number list an agent runs with.
    /// The number list an agent reported last (None: it has not reported one).
    pub async fn agent_scope(&self, agent: &str) -> Result<Option<Vec<ScopeEntry>>, sqlx::Error> {
        let before: Option<String> = sqlx::query("SELECT scope FROM agents WHERE name = $1")
            .bind(agent)
            .fetch_optional(&self.pool)
            .await?
            .and_then(|r| r.try_get::<Option<String>, _>("scope").ok().flatten());
        Ok(before.and_then(|b| serde_json::from_str(&b).ok()))
    }

    pub async fn set_agent_scope(
        &self,
        agent: &str,
        numbers: &[ScopeEntry],
    ) -> Result<(), sqlx::Error> {
        self.set_agent_report(agent, AgentReport::Scope, numbers)
            .await
    }

    /// Stores an agent's health report, received now.
    pub async fn set_agent_health(
        &self,
        agent: &str,
        health: &crate::record::health::AgentHealth,
    ) -> Result<(), sqlx::Error> {
        self.set_agent_report(agent, AgentReport::Health, health)
            .await
    }

    /// Fills in the ring time of calls stored before it was kept (migration 0008) from their
    /// documents; returns how many it filled. A call never answered keeps none, and once
    /// every answered call has one this finds nothing.
    pub async fn backfill_ring_times(&self) -> Result<u64, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT call_id, started_ms, document FROM calls WHERE ring_ms IS NULL AND document LIKE '%\"answered_at\":\"%'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut filled = 0;
        for r in rows {
            let document: String = r.try_get("document")?;
            let started: i64 = r.try_get("started_ms")?;
            let Some(answered) = serde_json::from_str::<CallRecord>(&document)
                .ok()
                .and_then(|d| d.answered_at)
                .and_then(|a| rfc3339_ms(&a))
            else {
                continue;
            };
            sqlx::query("UPDATE calls SET ring_ms = $1 WHERE call_id = $2 AND ring_ms IS NULL")
                .bind((answered - started).max(0))
                .bind(r.try_get::<String, _>("call_id")?)
                .execute(&self.pool)
                .await?;
            filled += 1;
        }
        Ok(filled)
    }

    /// Stores what an agent reported (as JSON) and when it came.
    async fn set_agent_report(
        &self,
        agent: &str,
        report: AgentReport,
        value: &(impl serde::Serialize + ?Sized),
    ) -> Result<(), sqlx::Error> {
        let json = serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        // the statement is one of two fixed texts; every value is a bound argument
        let sql = match report {
            AgentReport::Scope => "UPDATE agents SET scope = $1, scope_ms = $2 WHERE name = $3",
            AgentReport::Health => "UPDATE agents SET health = $1, health_ms = $2 WHERE name = $3",
        };
        sqlx::query(sql)
            .bind(json)
            .bind(now_ms())
            .bind(agent)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The agent a token belongs to (not disabled).
    pub async fn agent_by_token(&self, token_sha256: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT name FROM agents WHERE token_sha256 = $1 AND NOT disabled")
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get::<String, _>("name")).transpose()
    }

    pub async fn segment(&self, segment_id: &str) -> Result<Option<SegmentRow>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT segment_id, call_id, agent, sha256, bytes, blob, key_id FROM segments WHERE segment_id = $1",
        )
        .bind(segment_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SegmentRow {
                key_id: r
                    .try_get::<Option<String>, _>("key_id")?
                    .unwrap_or_default(),
                segment_id: r.try_get("segment_id")?,
                call_id: r.try_get("call_id")?,
                agent: r.try_get("agent")?,
                sha256: r.try_get("sha256")?,
                bytes: r.try_get("bytes")?,
                blob: r.try_get("blob")?,
            })
        })
        .transpose()
    }

    pub async fn insert_segment(&self, s: &SegmentRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO segments (segment_id, call_id, agent, sha256, bytes, blob, received_ms, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&s.segment_id)
        .bind(&s.call_id)
        .bind(&s.agent)
        .bind(&s.sha256)
        .bind(s.bytes)
        .bind(&s.blob)
        .bind(now_ms())
        .bind(&s.key_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The agent that shipped a call, if the catalogue has it.
    pub async fn call_agent(&self, call_id: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT agent FROM calls WHERE call_id = $1")
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get::<String, _>("agent")).transpose()
    }

    /// The call a SIP Call-ID took part in (the first shipped, if several did), whatever its
    /// service or restriction: for the admin's signalling view, which shows how a call was
    /// handled and never who called.
    pub async fn call_of_sip_call_id(
        &self,
        sip_call_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT s.call_id FROM call_sip_ids s JOIN calls c ON c.call_id = s.call_id \
             WHERE s.sip_call_id = $1 ORDER BY c.started_ms LIMIT 1",
        )
        .bind(sip_call_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get::<String, _>("call_id")).transpose()
    }

    /// A call's metadata document as stored.
    pub async fn call_document(&self, call_id: &str) -> Result<Option<CallRecord>, sqlx::Error> {
        let row = sqlx::query("SELECT document FROM calls WHERE call_id = $1")
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let text: String = row.try_get("document")?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }

    /// Stores a call and its search entries, in one transaction, once: a resend of the same
    /// document changes nothing, and neither does another document for a call already stored
    /// or erased (what the DPO set on a call, hold, restriction or erasure, is never undone by
    /// an agent). `retention_days` is the catalogue's, not the document's.
    /// Stores a call with the numbers it is found by (`parties`: [`super::numbers::Numbers::parties`]).
    pub async fn store_call(
        &self,
        record: &CallRecord,
        retention_days: u32,
        parties: &[String],
    ) -> Result<Stored, sqlx::Error> {
        let started = rfc3339_ms(&record.started_at).unwrap_or(0);
        let ended = record
            .ended_at
            .as_deref()
            .and_then(rfc3339_ms)
            .unwrap_or(started);
        let days = i64::from(retention_days);
        let document =
            serde_json::to_string(record).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let mut tx = self.write_tx().await?;
        let erased = sqlx::query("SELECT call_id FROM erased_calls WHERE call_id = $1")
            .bind(&record.call_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if erased {
            return Ok(Stored::Erased);
        }
        let stored = sqlx::query("SELECT document FROM calls WHERE call_id = $1")
            .bind(&record.call_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(stored) = stored {
            let text: String = stored.try_get("document")?;
            if text == document {
                return Ok(Stored::Unchanged);
            }
            let fields = |t: &str| match serde_json::from_str(t) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            let (old, new) = (fields(&text), fields(&document));
            let mut differ: Vec<String> = old
                .iter()
                .filter(|(k, v)| new.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .chain(new.keys().filter(|k| !old.contains_key(*k)).cloned())
                .collect();
            differ.sort_unstable();
            return Ok(Stored::Differs(differ));
        }
        sqlx::query(
            "INSERT INTO calls (call_id, agent, started_ms, ended_ms, duration_ms, audio_ms, caller, dialled, service, end_reason, retention_days, expires_ms, legal_hold, restricted, document, received_ms, ring_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, FALSE, FALSE, $13, $14, $15)",
        )
        .bind(&record.call_id)
        .bind(&record.agent)
        .bind(started)
        .bind(ended)
        .bind(ended - started)
        .bind(record.audio_ms as i64)
        .bind(&record.caller)
        .bind(record.dialled.clone())
        .bind(record.service.clone())
        .bind(record.end_reason.clone())
        .bind(days)
        .bind(started.saturating_add(days * 86_400_000))
        .bind(document)
        .bind(now_ms())
        .bind(
            record
                .answered_at
                .as_deref()
                .and_then(rfc3339_ms)
                .map(|a| (a - started).max(0)),
        )
        .execute(&mut *tx)
        .await?;
        for p in parties {
            sqlx::query("INSERT INTO call_parties (call_id, party) VALUES ($1, $2)")
                .bind(&record.call_id)
                .bind(p)
                .execute(&mut *tx)
                .await?;
        }
        let mut ids: Vec<&str> = record.sip_call_ids.iter().map(String::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            sqlx::query("INSERT INTO call_sip_ids (call_id, sip_call_id) VALUES ($1, $2)")
                .bind(&record.call_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Stored::Created)
    }

    /// Takes lease `name` for `holder` for `for_ms` (or renews it, when `holder` has it);
    /// false while another holder's lease runs.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        for_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE leases.until_ms < $4 OR leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now + for_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives lease `name` back, if `holder` has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// True when the call was erased (its id tombstoned).
    pub async fn was_erased(&self, call_id: &str) -> Result<bool, sqlx::Error> {
        Ok(
            sqlx::query("SELECT call_id FROM erased_calls WHERE call_id = $1")
                .bind(call_id)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    pub async fn count(&self, table: &str) -> Result<i64, sqlx::Error> {
        let sql = match table {
            "calls" => "SELECT COUNT(*) AS n FROM calls",
            "segments" => "SELECT COUNT(*) AS n FROM segments",
            _ => "SELECT COUNT(*) AS n FROM agents",
        };
        let row = sqlx::query(sql).fetch_one(&self.pool).await?;
        row.try_get::<i64, _>("n")
    }

    /// The pool, for tests that act on the database behind the catalogue's back.
    pub fn pool_for_tests(&self) -> AnyPool {
        self.pool.clone()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_times_of_calls_stored_before_they_were_kept_are_filled_in() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // a file: each connection of the pool to ":memory:" would be a database of its own
            let dir = tempfile::tempdir().unwrap();
            let store = Store::connect(&format!("sqlite://{}", dir.path().join("c.db").display()))
                .await
                .unwrap();
            let record: CallRecord = serde_json::from_str(include_str!(
                "../../fuzz/seeds/call_document/recorded-call.json"
            ))
            .unwrap();
            store.add_agent(&record.agent, "token-hash").await.unwrap();
            store.store_call(&record, 30, &[]).await.unwrap();
            let ring = |store: Store| async move {
                sqlx::query("SELECT ring_ms FROM calls")
                    .fetch_one(&store.pool)
                    .await
                    .unwrap()
                    .try_get::<Option<i64>, _>("ring_ms")
                    .unwrap()
            };
            // 09:00:00.021 to 09:00:03.439
            assert_eq!(ring(store.clone()).await, Some(3_418));
            sqlx::query("UPDATE calls SET ring_ms = NULL")
                .execute(&store.pool)
                .await
                .unwrap();
            assert_eq!(store.backfill_ring_times().await.unwrap(), 1);
            assert_eq!(ring(store.clone()).await, Some(3_418));
            assert_eq!(store.backfill_ring_times().await.unwrap(), 0);
        });
    }
}
