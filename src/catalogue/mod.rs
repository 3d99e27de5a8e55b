//! `callvault catalogue`: where recordings are kept, found and listened to.
//!
//! The HTTP API the agents ship to (`ingest`) and the one people use (`api`: sign-in,
//! `search`, call pages, purpose-bound listening in `listen`, the `audit` log, users in
//! `people`), over the database (`store`: SQLite or PostgreSQL) and the segment files
//! (`blobs`).

pub mod accounts;
pub mod api;
pub mod approvals;
pub mod audit;
pub mod audit_heads;
pub mod blobs;
pub mod config;
pub mod console;
pub mod csrf;
pub mod directory;
pub mod error;
pub mod ingest;
pub mod ladder;
pub mod listen;
pub mod numbers;
pub mod oidc;
pub mod people;
pub mod quality;
pub mod rights;
pub mod s3;
pub mod search;
pub mod serve;
pub mod signed_in;
pub mod store;
pub mod throttle;
pub mod tls;
pub mod totp;
pub mod zone;

pub use console::{add_agent, add_user};
pub mod ui;

use std::sync::Arc;

use anyhow::Context;
use axum::routing::{get, patch, post, put};

use blobs::Blobs;
use config::CatalogueConfig;
use store::Store;

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub blobs: Blobs,
    pub config: Arc<CatalogueConfig>,
    /// The catalogue's private keys, newest first.
    pub keys: Arc<Vec<crate::vault::CataloguePrivateKey>>,
    /// This process among the catalogue's instances (process id and random bits), for the
    /// leases of work only one may do at a time.
    pub instance: Arc<str>,
    /// Failed sign-ins, per account and address.
    pub throttle: Arc<throttle::Throttle>,
    /// How numbers are read: the agents' rules (`[numbers]`).
    pub numbers: numbers::Numbers,
    /// The directory people sign in with (`[sign_in.oidc]`), if any.
    pub oidc: Option<Arc<oidc::Provider>>,
    /// The time zone pages show times in (`server.time_zone`).
    pub zone: zone::Zone,
}

/// The largest request body anything but a segment upload may have: a form, a JSON request.
const MAX_BODY: usize = 64 << 10;
/// The largest call metadata document (hundreds of legs and the ladder's 400 messages fit in
/// well under a megabyte).
const MAX_CALL_DOCUMENT: usize = 4 << 20;

pub fn router(app: App) -> axum::Router {
    use axum::extract::DefaultBodyLimit;
    let limit = app.config.server.max_upload_mb << 20;
    axum::Router::new()
        .route(
            "/api/v1/segments/{segment_id}",
            put(ingest::put_segment).layer(DefaultBodyLimit::max(limit)),
        )
        .route(
            "/api/v1/calls",
            post(ingest::post_call)
                .layer(DefaultBodyLimit::max(MAX_CALL_DOCUMENT))
                .get(api::search),
        )
        .route("/api/v1/agent/scope", put(ingest::put_scope))
        .route(
            "/api/v1/agent/health",
            put(ingest::put_health).layer(DefaultBodyLimit::max(MAX_CALL_DOCUMENT)),
        )
        .route(
            "/api/v1/calls/{id}",
            get(api::call).delete(rights::erase_call),
        )
        .route("/api/v1/calls/{id}/hold", post(rights::hold))
        .route("/api/v1/calls/{id}/restrict", post(rights::restrict))
        .route(
            "/api/v1/calls/{id}/training-export",
            post(rights::training_export),
        )
        .route("/api/v1/subject-access", post(rights::subject_access))
        .route("/api/v1/training/consents", post(rights::consent))
        .route("/api/v1/keys", get(rights::keys))
        .route("/api/v1/calls/{id}/access", post(api::access))
        .route("/api/v1/calls/{id}/audio", get(api::audio))
        .route("/api/v1/login", post(api::login))
        .route("/api/v1/logout", post(api::logout))
        .route("/api/v1/me", get(api::me))
        .route("/api/v1/tokens", get(api::tokens).post(api::create_token))
        .route("/api/v1/purposes", get(api::purposes))
        .route("/api/v1/audit", get(api::audit_log))
        .route("/api/v1/audit/verify", get(api::audit_verify))
        .route("/api/v1/users", get(api::users).post(api::add_user))
        .route("/api/v1/approvals", get(api::approvals))
        .route("/api/v1/users/{name}/approve", post(api::approve_user))
        .route("/api/v1/users/{name}/{action}", post(api::user_action))
        .route("/api/v1/users/{name}", patch(api::edit_user))
        .route("/api/v1/agents", get(api::agents))
        .route("/api/v1/agents/{name}/{action}", post(api::agent_action))
        .route("/api/v1/services", get(api::services))
        .route("/api/v1/calls.csv", get(api::search_csv))
        .route("/api/v1/tokens/{id}/revoke", post(api::revoke_token))
        .route("/api/v1/calls/{id}/peaks", get(ui::peaks))
        .route("/", get(ui::home))
        .route("/login", get(ui::login_form).post(ui::login))
        .route("/login/oidc", get(ui::oidc_start))
        .route("/login/oidc/callback", get(ui::oidc_callback))
        .route("/logout", post(ui::logout))
        .route("/search", get(ui::search_form).post(ui::search))
        .route("/search/export", post(ui::search_export))
        .route("/calls/{id}", get(ui::call))
        .route("/calls/{id}/listen", post(ui::listen))
        .route("/calls/{id}/hold", post(ui::hold))
        .route("/calls/{id}/restrict", post(ui::restrict))
        .route("/calls/{id}/erase", post(ui::erase))
        .route("/calls/{id}/training", post(ui::training))
        .route("/dpo", get(ui::dpo))
        .route("/admin", get(ui::admin))
        .route("/admin/users", post(ui::add_user))
        .route("/admin/agents", post(ui::add_agent))
        .route("/admin/users/action", post(ui::user_action))
        .route("/admin/users/edit", post(ui::edit_user))
        .route("/admin/tokens/revoke", post(ui::revoke_token))
        .route("/admin/agents/action", post(ui::agent_action))
        .route("/admin/signalling", get(ui::signalling))
        .route("/admin/operations", get(ui::operations))
        .route("/dpo/subject-access", post(ui::subject_access))
        .route("/dpo/consent", post(ui::consent))
        .route("/dpo/approve", post(ui::approve))
        .route("/audit", get(ui::audit))
        .route("/static/style.css", get(ui::style))
        .route("/static/wave.js", get(ui::wave_js))
        .route("/static/ladder.js", get(ui::ladder_js))
        .route("/static/favicon.svg", get(ui::favicon))
        .route("/favicon.ico", get(ui::favicon))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            csrf::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            serve::body_rate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            serve::security_headers,
        ))
        .with_state(app)
}

/// The API's OpenAPI 3.1 document (kept by hand; a test checks it names every `/api/v1`
/// route of [`router`] with its methods, and that every path it names answers).
async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

pub async fn open(cfg: &CatalogueConfig) -> anyhow::Result<App> {
    if let Some(why) = store::sqlite_problem(&cfg.storage.database_url) {
        anyhow::bail!(
            "storage.database_url = {:?}: {why}",
            cfg.storage.database_url
        );
    }
    let store = Store::connect(&cfg.storage.database_url)
        .await
        .with_context(|| {
            format!(
                "storage.database_url: cannot open {}",
                cfg.storage.database_url
            )
        })?;
    let blobs = match &cfg.storage.s3 {
        Some(s) => Blobs::S3(s3::S3::new(
            &s.endpoint,
            &s.bucket,
            &s.region,
            &s.access_key,
            &s.secret_key,
        )?),
        None => Blobs::open(&cfg.storage.blob_dir)?,
    };
    let mut keys = Vec::new();
    for (i, path) in cfg.keys.private_keys.iter().enumerate() {
        keys.push(
            crate::vault::CataloguePrivateKey::load(path)
                .with_context(|| format!("keys.private_keys[{i}] = {path:?}"))?,
        );
    }
    Ok(App {
        store,
        blobs,
        config: Arc::new(cfg.clone()),
        keys: Arc::new(keys),
        instance: format!(
            "pid {} ({})",
            std::process::id(),
            &people::new_token()[..12]
        )
        .into(),
        throttle: Arc::default(),
        numbers: numbers::Numbers::of(&cfg.numbers),
        zone: zone::Zone::named(&cfg.server.time_zone)
            .map_err(|e| anyhow::anyhow!("server.time_zone: {e}"))?,
        oidc: match (&cfg.sign_in.oidc, &cfg.server.public_url) {
            (Some(o), Some(url)) => Some(Arc::new(oidc::Provider::new(o.clone(), url)?)),
            _ => None,
        },
    })
}

/// Runs the catalogue until SIGTERM or SIGINT.
pub fn run(cfg: CatalogueConfig) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let app = open(&cfg).await?;
        let reread = numbers::renormalise(&app.store, app.numbers)
            .await
            .context("re-reading the stored numbers with [numbers]' rules")?;
        if reread > 0 {
            tracing::info!(calls = reread, country = %cfg.numbers.country, "stored numbers re-read");
        }
        let filled = app
            .store
            .backfill_ring_times()
            .await
            .context("filling in the ring times of calls stored before they were kept")?;
        if filled > 0 {
            tracing::info!(calls = filled, "ring times filled in from the stored documents");
        }
        let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
            .await
            .with_context(|| format!("server.listen = {:?}: cannot listen", cfg.server.listen))?;
        let tls = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
            (Some(c), Some(k)) => Some(tls::server_config(
                c,
                k,
                cfg.server.client_ca.as_deref(),
            )?),
            _ => None,
        };
        tracing::info!(listen = %cfg.server.listen, database = ?app.store.backend, https = tls.is_some(), "catalogue ready");
        crate::systemd::notify("READY=1");
        let store = app.store.clone();
        let signer = app.clone();
        tokio::spawn(audit_heads::run(app.clone()));
        {
            let app = app.clone();
            let every = std::time::Duration::from_secs(cfg.retention.purge_interval_minutes as u64 * 60);
            tokio::spawn(async move {
                loop {
                    if let Err(e) = app.store.forget_expired().await {
                        tracing::error!("deleting expired sessions and grants: {e}");
                    }
                    match rights::purge(&app, "retention").await {
                        Ok(done) if !done.is_empty() => {
                            tracing::info!(calls = done.len(), "retention purge")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!("retention purge failed: {e}"),
                    }
                    tokio::time::sleep(every).await;
                }
            });
        }
        let stop = async {
            use tokio::signal::unix::{SignalKind, signal};
            if let (Ok(mut term), Ok(mut int)) =
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
        };
        let mut limits = cfg.server.limits();
        serve::fit_to_open_files(&mut limits);
        serve::serve(listener, tls, router(app), limits, stop).await;
        // the head as it stands at the stop, signed
        let mut last = 0;
        if let Err(e) = audit_heads::sign_now(&signer, &mut last).await {
            tracing::error!("signing the audit chain's head: {e}");
        }
        store.close().await;
        Ok(())
    })
}

/// `callvault audit verify`: walks the audit chain in the database and holds it to its
/// newest signed head (`audit.heads_file`); the result names the first broken record.
pub fn verify_audit(cfg: &CatalogueConfig) -> anyhow::Result<audit::Verification> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = open(cfg).await?;
        let v = audit_heads::verify(&app.store, &cfg.audit.heads_file, &app.keys).await?;
        app.store.close().await;
        Ok(v)
    })
}

/// `callvault catalogue purge`: erases every call past its retention date and not held.
pub fn purge_now(cfg: &CatalogueConfig) -> anyhow::Result<Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = open(cfg).await?;
        let done = rights::purge(&app, "retention").await?;
        app.store.close().await;
        Ok(done)
    })
}

/// `callvault catalogue keys`: which configured keys recordings still need.
pub fn key_report(
    cfg: &CatalogueConfig,
) -> anyhow::Result<Vec<(String, Option<rights::KeyUsage>)>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = open(cfg).await?;
        let usage = app.store.key_usage().await?;
        app.store.close().await;
        Ok(app
            .keys
            .iter()
            .map(|k| {
                let id = k.key_id().to_string();
                let u = usage.iter().find(|u| u.key_id == id).cloned();
                (id, u)
            })
            .collect())
    })
}
