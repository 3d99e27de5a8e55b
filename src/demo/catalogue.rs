//! The demo's second half: the calls `demo` recorded are shipped by the agent's own outbox
//! into a local catalogue (SQLite and a directory), then found and heard through the
//! catalogue's HTTP API as a manager would: a search, a stated purpose and reference (audited
//! first), the WAV. Then the audit chain is verified.
//!
//! Owns the demo catalogue's configuration file and the one-off server it runs on an
//! ephemeral loopback port; it must not touch anything outside the demo directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::agent::metrics::{HepStats, Status};
use crate::agent::outbox::Outbox;
use crate::catalogue::config::CatalogueConfig;
use crate::catalogue::people::Role;
use crate::catalogue::{self as catalogue, audit, ingest, search};
use crate::config::{AgentConfig, CatalogueLink};

/// Where `callvault catalogue -c <config>` serves the demo catalogue afterwards (another
/// free port when this one is taken).
pub const DEMO_LISTEN: &str = "127.0.0.1:8480";

/// One person of the demo: role, user name, password, what they see.
pub struct DemoUser {
    pub role: Role,
    pub name: String,
    pub password: String,
    pub sees: &'static str,
}

/// What the demo did in the catalogue.
pub struct DemoCatalogue {
    pub config: PathBuf,
    pub shipped: u64,
    /// Calls the manager's search found.
    pub found: i64,
    /// The call retrieved, its audit record, and the WAV served.
    pub retrieved: (String, i64, Vec<u8>),
    pub manager: (String, String),
    /// Everyone who may sign in, one per role.
    pub people: Vec<DemoUser>,
    /// Where it is served afterwards (`DEMO_LISTEN`, else a free port).
    pub listen: String,
    pub audit_records: i64,
}

/// `DEMO_LISTEN` when it is free, else another free loopback port (said so).
fn listen_address() -> String {
    if std::net::TcpListener::bind(DEMO_LISTEN).is_ok() {
        return DEMO_LISTEN.to_owned();
    }
    match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.to_string(),
        Err(_) => DEMO_LISTEN.to_owned(),
    }
}

fn password() -> anyhow::Result<String> {
    let mut raw = [0u8; 9];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(raw))
}

/// Ships the spool to a fresh catalogue in `dir`, then searches and retrieves as a manager.
pub fn run(
    dir: &Path,
    agent: &AgentConfig,
    spool: &Path,
    private_key: &Path,
) -> anyhow::Result<DemoCatalogue> {
    for old in ["catalogue.db", "catalogue.db-wal", "catalogue.db-shm"] {
        let _ = std::fs::remove_file(dir.join(old));
    }
    let _ = std::fs::remove_dir_all(dir.join("blobs"));
    let config = dir.join("catalogue.toml");
    let listen = listen_address();
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    std::fs::write(
        &config,
        format!(
            "# The demo's catalogue (made by `callvault demo`): SQLite and a directory, loopback only.\n[server]\nlisten = \"{listen}\"\n[storage]\ndatabase_url = \"sqlite://{}\"\nblob_dir = {:?}\n[keys]\nprivate_keys = [{:?}]\n# The demo signs in with passwords only; a real catalogue asks managers and DPOs for an\n# authenticator app's code too.\n[sign_in]\nsecond_factor = false\n",
            absolute(&dir.join("catalogue.db")).display(),
            absolute(&dir.join("blobs")),
            absolute(private_key),
        ),
    )
    .with_context(|| format!("cannot write {}", config.display()))?;
    let cfg = CatalogueConfig::load(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = catalogue::open(&cfg).await?;
        let services: Vec<String> = agent
            .scope
            .numbers
            .iter()
            .map(|n| n.service.clone())
            .collect();
        let mut people = Vec::new();
        for (role, name, sees) in [
            (
                Role::Manager,
                "manager",
                "search the calls of every service, listen for a stated purpose",
            ),
            (
                Role::Auditor,
                "auditor",
                "the audit log, and whether its hash chain verifies",
            ),
            (
                Role::Dpo,
                "dpo",
                "legal hold, restriction, erasure, subject access, training exports",
            ),
            (
                Role::Admin,
                "admin",
                "users, agents, the operations page, a call's signalling",
            ),
        ] {
            let password = password()?;
            let theirs: &[String] = if role == Role::Manager {
                &services
            } else {
                &[]
            };
            app.store
                .add_user(name, &password, role, theirs, None, None)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            people.push(DemoUser {
                role,
                name: name.to_owned(),
                password,
                sees,
            });
        }
        let manager = (people[0].name.clone(), people[0].password.clone());
        for p in &people {
            app.store
                .audit(audit::Entry {
                    actor: "demo",
                    action: "user_add",
                    detail: serde_json::json!({ "username": p.name, "role": p.role.as_str() }),
                    ..Default::default()
                })
                .await?;
        }
        let token = password()?;
        app.store
            .add_agent(&agent.agent.name, &ingest::token_hash(&token))
            .await?;

        // the catalogue, for this run only, on an ephemeral port
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(catalogue::serve::serve_plain(
            listener,
            catalogue::router(app.clone()),
        ));

        // the agent's outbox ships what was recorded
        let status = Arc::new(Status::new(Vec::new(), Arc::new(HepStats::default())));
        // the replay that recorded them has finished: the demo agent reports itself well
        status.publish(crate::agent::metrics::Snapshot {
            published_at: Some(std::time::Instant::now()),
            ..Default::default()
        });
        let link = CatalogueLink {
            url: base.clone(),
            ..CatalogueLink::default()
        };
        let mut outbox = Outbox::new(&link, token, spool, &agent.scope, status.clone())?;
        outbox
            .ship_all()
            .await
            .map_err(|e| anyhow::anyhow!("shipping to the demo catalogue: {e}"))?;
        let shipped = status
            .shipped_calls
            .load(std::sync::atomic::Ordering::Relaxed);

        // a manager searches, states a purpose, listens
        let client = reqwest::Client::new();
        let login = client
            .post(format!("{base}/api/v1/login"))
            .json(&serde_json::json!({ "username": manager.0, "password": manager.1 }))
            .send()
            .await?
            .error_for_status()?;
        let cookie = login
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("no session cookie")?
            .to_owned();
        let found: search::SearchResult = client
            .get(format!("{base}/api/v1/calls"))
            .header(reqwest::header::COOKIE, &cookie)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let call = found.calls.first().context("the search found no call")?;
        let grant: serde_json::Value = client
            .post(format!("{base}/api/v1/calls/{}/access", call.call_id))
            .header(reqwest::header::COOKIE, &cookie)
            .json(&serde_json::json!({ "purpose": "quality_training", "reference": "DEMO-1" }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let audio = grant["audio"].as_str().context("no grant")?;
        let wav = client
            .get(format!("{base}{audio}"))
            .header(reqwest::header::COOKIE, &cookie)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?
            .to_vec();
        let verification = app.store.audit_verify().await?;
        anyhow::ensure!(
            verification.ok,
            "the demo catalogue's audit chain does not verify"
        );
        server.abort();
        app.store.close().await;
        Ok(DemoCatalogue {
            config,
            shipped,
            found: found.total,
            retrieved: (
                call.call_id.clone(),
                grant["audit_seq"].as_i64().unwrap_or_default(),
                wav,
            ),
            manager,
            people,
            listen,
            audit_records: verification.records,
        })
    })
}
