//! `callvault catalogue`: where recordings are kept, found and listened to.
//!
//! This session's part: the HTTP API the agents ship to (`ingest`), over the database
//! (`store`: SQLite or PostgreSQL) and the segment files (`blobs`). Managers' search,
//! purpose-bound retrieval, audit and retention build on these.

pub mod blobs;
pub mod config;
pub mod ingest;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use axum::routing::{post, put};

use blobs::Blobs;
use config::CatalogueConfig;
use store::Store;

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub blobs: Blobs,
    pub config: Arc<CatalogueConfig>,
}

pub fn router(app: App) -> axum::Router {
    let limit = app.config.server.max_upload_mb << 20;
    axum::Router::new()
        .route("/api/v1/segments/{segment_id}", put(ingest::put_segment))
        .route("/api/v1/calls", post(ingest::post_call))
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(app)
}

pub async fn open(cfg: &CatalogueConfig) -> anyhow::Result<App> {
    let store = Store::connect(&cfg.storage.database_url)
        .await
        .with_context(|| {
            format!(
                "storage.database_url: cannot open {}",
                cfg.storage.database_url
            )
        })?;
    let blobs = Blobs::open(&cfg.storage.blob_dir)?;
    Ok(App {
        store,
        blobs,
        config: Arc::new(cfg.clone()),
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
        let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
            .await
            .with_context(|| format!("server.listen = {:?}: cannot listen", cfg.server.listen))?;
        tracing::info!(listen = %cfg.server.listen, database = ?app.store.backend, "catalogue ready");
        crate::agent::systemd::notify("READY=1");
        let store = app.store.clone();
        axum::serve(listener, router(app))
            .with_graceful_shutdown(async {
                use tokio::signal::unix::{SignalKind, signal};
                if let (Ok(mut term), Ok(mut int)) =
                    (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
                {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
            })
            .await?;
        store.close().await;
        Ok(())
    })
}

/// `callvault catalogue agent-add NAME`: registers an agent and returns its new token
/// (shown once; only its hash is kept).
pub fn add_agent(cfg: &CatalogueConfig, name: &str) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = open(cfg).await?;
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let token = crate::segment::writer::hex(&raw);
        app.store
            .add_agent(name, &ingest::token_hash(&token))
            .await
            .with_context(|| format!("cannot add agent {name:?} (does it exist already?)"))?;
        app.store.close().await;
        Ok(token)
    })
}
