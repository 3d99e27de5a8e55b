//! `callvault agent`: the live recording daemon.
//!
//! The same [`Pipeline`] as `replay`, fed from live sources and run for months. Threads:
//! one per capture interface (copies blocks of frames out of the kernel ring), one I/O thread
//! (tokio: HEP over UDP and TCP, `/metrics` and `/healthz`, signals, the systemd watchdog),
//! the pipeline thread (SIP and call state, routing: this function's own thread) and the media
//! workers (decode, mix, seal, write; see [`workers`]). Sources reach the pipeline through one
//! bounded queue; a source never waits for it: what does not fit is dropped and counted.
//!
//! Lifecycle: on start, what a crash left in the spool is recovered ([`crate::spool::recover`])
//! before anything is captured; `READY=1` once every source is open; SIGHUP re-reads the
//! configuration and applies its `[scope]` (number lists and policy) to new calls; SIGTERM
//! stops capture, processes what was already captured, closes every call
//! (`end_reason = "agent_shutdown"`) and seals its segments within
//! `agent.shutdown_timeout_seconds`.

pub mod af_packet;
pub mod disk;
pub mod hep_listener;
mod interfaces;
pub mod merge;
pub mod metrics;
pub mod outbox;
mod receive;
mod start;
pub mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::AgentConfig;
use crate::pipeline::Pipeline;
use crate::spool::Spool;
use crate::systemd;
use merge::{Delivery, SourceId, SourceMerge};
use metrics::{HepStats, Status};
use workers::ShardedMedia;

/// A message from a source to the pipeline thread.
pub struct Input {
    pub source: SourceId,
    pub delivery: Delivery,
}

/// Batches (frame blocks or HEP packets) the pipeline's input queue holds.
const INPUT_QUEUE: usize = 4096;

pub struct AgentOptions {
    pub config_path: PathBuf,
    pub config: AgentConfig,
}

/// Shared between the threads.
struct Control {
    stop: AtomicBool,
    reload: AtomicBool,
}

/// The running agent, as [`Running::start`] leaves it for the receive loop.
struct Running {
    config_path: PathBuf,
    cfg: AgentConfig,
    pipeline: Pipeline<ShardedMedia>,
    merge: SourceMerge,
    rx: Receiver<Input>,
    control: Arc<Control>,
    status: Arc<Status>,
    spool: Spool,
    /// Packets the media workers' queues had no room for.
    media_drops: Arc<AtomicU64>,
    floor: disk::DiskFloor,
    /// `hep.auth_key`, when set.
    auth_key: Option<Vec<u8>>,
    capture_threads: Vec<JoinHandle<()>>,
    io_thread: JoinHandle<()>,
}

/// Runs the agent until SIGTERM: start, the receive loop, shutdown.
pub fn run(opts: AgentOptions) -> anyhow::Result<()> {
    let mut agent = Running::start(opts)?;
    agent.receive();
    agent.shutdown();
    Ok(())
}

impl Running {
    /// Closes every call (`agent_shutdown`), waits for the media workers to seal their
    /// segments within `agent.shutdown_timeout_seconds`, and joins every thread.
    fn shutdown(self) {
        let Running {
            cfg,
            mut pipeline,
            capture_threads,
            io_thread,
            ..
        } = self;
        systemd::notify("STOPPING=1\nSTATUS=closing open calls");
        let deadline =
            Instant::now() + Duration::from_secs(cfg.agent.shutdown_timeout_seconds as u64);
        let open = pipeline.recording_calls();
        pipeline.finish("agent_shutdown");
        let summary = pipeline.summary();
        let late = pipeline.into_media().shutdown(deadline);
        for t in capture_threads {
            let _ = t.join();
        }
        let _ = io_thread.join();
        if late > 0 {
            tracing::error!(
                workers = late,
                "media workers did not finish within agent.shutdown_timeout_seconds: their open segments stay .partial and are recovered at the next start"
            );
        }
        tracing::info!(
            calls_closed = open,
            calls_seen = summary.calls.calls_seen,
            calls_recorded = summary.calls.calls_recorded,
            "stopped"
        );
    }
}

/// SIGHUP: re-reads the file; a valid `[scope]` applies to calls that start from now on.
fn reload<M: crate::pipeline::MediaPort>(
    path: &std::path::Path,
    running: &AgentConfig,
    pipeline: &mut Pipeline<M>,
    status: &Status,
) {
    match AgentConfig::load(path) {
        Ok(new) => {
            pipeline.set_policy(&new);
            status.set_scope(&new.scope);
            status.reloads.fetch_add(1, Ordering::Relaxed);
            let unchanged_rest = new.agent.spool_dir == running.agent.spool_dir
                && new.capture.interfaces == running.capture.interfaces
                && new.hep.listen_udp == running.hep.listen_udp
                && new.hep.listen_tcp == running.hep.listen_tcp;
            tracing::info!(
                numbers = new.scope.numbers.len(),
                "configuration reloaded: the scope applies to new calls; calls in progress keep their decision"
            );
            if !unchanged_rest {
                tracing::warn!(
                    "only [scope] is applied on reload; restart the agent for the other changes"
                );
            }
        }
        Err(e) => {
            status.reload_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!("reload refused, the running configuration stays: {e}");
        }
    }
}

struct IoThread {
    hep_udp: Option<std::net::UdpSocket>,
    hep_tcp: Option<std::net::TcpListener>,
    metrics_tcp: Option<std::net::TcpListener>,
    tx: SyncSender<Input>,
    hep: Arc<HepStats>,
    status: Arc<Status>,
    control: Arc<Control>,
    spool_root: PathBuf,
    hep_udp_port: Option<u16>,
    /// Source ids of the HEP UDP and TCP listeners.
    hep_sources: (SourceId, SourceId),
    outbox: Option<outbox::Outbox>,
}

impl IoThread {
    fn run(self) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("cannot start the I/O runtime: {e}");
                self.control.stop.store(true, Ordering::Relaxed);
                return;
            }
        };
        rt.block_on(self.serve());
    }

    async fn serve(self) {
        use tokio::signal::unix::{SignalKind, signal};
        let IoThread {
            hep_udp,
            hep_tcp,
            metrics_tcp,
            tx,
            hep,
            status,
            control,
            spool_root,
            hep_udp_port,
            hep_sources,
            outbox,
        } = self;
        let shipping = outbox.is_some();
        if let Some(outbox) = outbox {
            tokio::spawn(outbox.run());
        }
        if let Some(port) = hep_udp_port {
            let hep = hep.clone();
            tokio::spawn(async move {
                let base = hep_listener::socket_drops(port);
                loop {
                    let now = hep_listener::socket_drops(port);
                    hep.socket_drops
                        .store(now.saturating_sub(base), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        if let Some(sock) = hep_udp {
            match tokio::net::UdpSocket::from_std(sock) {
                Ok(s) => {
                    tokio::spawn(hep_listener::udp(s, hep_sources.0, tx.clone(), hep.clone()));
                }
                Err(e) => tracing::error!("HEP UDP socket: {e}"),
            }
        }
        if let Some(l) = hep_tcp {
            match tokio::net::TcpListener::from_std(l) {
                Ok(l) => {
                    tokio::spawn(hep_listener::tcp(l, hep_sources.1, tx.clone(), hep.clone()));
                }
                Err(e) => tracing::error!("HEP TCP listener: {e}"),
            }
        }
        drop(tx);
        if let Some(l) = metrics_tcp {
            match tokio::net::TcpListener::from_std(l) {
                Ok(l) => {
                    tokio::spawn(serve_metrics(l, status.clone()));
                }
                Err(e) => tracing::error!("metrics listener: {e}"),
            }
        }
        // spool size and outbox depth: a directory walk, off the pipeline thread
        {
            let status = status.clone();
            tokio::spawn(async move {
                loop {
                    let root = spool_root.clone();
                    if let Ok((bytes, calls)) = tokio::task::spawn_blocking(move || {
                        let calls = std::fs::read_dir(root.join(crate::spool::CALLS_DIR))
                            .map(|d| d.flatten().count() as u64)
                            .unwrap_or(0);
                        (disk::tree_bytes(&root), calls)
                    })
                    .await
                    {
                        status.spool_bytes.store(bytes, Ordering::Relaxed);
                        if !shipping {
                            // nothing ships: every call waits in the spool
                            status.outbox_calls.store(calls, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            });
        }
        if let Some(every) = systemd::watchdog_interval() {
            let status = status.clone();
            tokio::spawn(async move {
                let mut t = tokio::time::interval(every);
                loop {
                    t.tick().await;
                    // only while the pipeline thread is alive: a hung agent gets restarted,
                    // but one that merely paused recording (disk below its floor) does not
                    if status.pipeline_alive() {
                        systemd::notify("WATCHDOG=1");
                    }
                }
            });
        }
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install signal handlers");
            control.stop.store(true, Ordering::Relaxed);
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    control.reload.store(true, Ordering::Relaxed);
                }
            }
        }
        tracing::info!("stopping: finishing open calls");
        control.stop.store(true, Ordering::Relaxed);
    }
}

async fn serve_metrics(listener: tokio::net::TcpListener, status: Arc<Status>) {
    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(|State(s): State<Arc<Status>>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    s.render(),
                )
            }),
        )
        .route(
            "/healthz",
            get(|State(s): State<Arc<Status>>| async move {
                let (ok, text) = s.health();
                let code = if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (code, text)
            }),
        )
        .with_state(status);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("metrics endpoint stopped: {e}");
    }
}
