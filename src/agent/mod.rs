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
pub mod merge;
pub mod metrics;
pub mod outbox;
pub mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::AgentConfig;
use crate::entropy::Entropy;
use crate::pipeline::Pipeline;
use crate::spool::Spool;
use crate::systemd;
use crate::time::Timestamp;
use crate::vault::CataloguePublicKey;
use af_packet::{CaptureStats, PacketRing};
use merge::{Delivery, Ready, SourceId, SourceMerge};
use metrics::{HepStats, Snapshot, Status};
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

pub fn run(opts: AgentOptions) -> anyhow::Result<()> {
    let cfg = opts.config;
    let key = CataloguePublicKey::load(&cfg.agent.catalogue_public_key).with_context(|| {
        format!(
            "{}: agent.catalogue_public_key: cannot load the catalogue public key (make one with `callvault keys generate --out DIR`)",
            opts.config_path.display()
        )
    })?;
    let key = Arc::new(key);
    let spool = Spool::open(&cfg.agent.spool_dir)?.with_background_sync()?;

    let recovery = crate::spool::recover::recover(&spool).with_context(|| {
        format!(
            "recovering the spool {} after the last stop",
            spool.root().display()
        )
    })?;
    if recovery != Default::default() {
        tracing::warn!(
            calls_closed = recovery.calls_closed,
            segments_recovered = recovery.segments_recovered,
            segments_empty = recovery.segments_empty,
            unreadable = recovery.segments_unreadable,
            orphans = recovery.orphans,
            audio_ms = recovery.audio_ms_recovered,
            "recovered what the last stop left in the spool"
        );
    }

    // Every source is opened before anything runs: a wrong address or a missing capability
    // stops the start with the key to fix, and systemd sees the failure.
    let file = opts.config_path.display().to_string();
    let bind_udp = |key: &str, addr: &str| -> anyhow::Result<Option<std::net::UdpSocket>> {
        if addr.is_empty() {
            return Ok(None);
        }
        let s = std::net::UdpSocket::bind(addr)
            .with_context(|| format!("{file}: {key} = {addr:?}: cannot listen"))?;
        s.set_nonblocking(true)?;
        Ok(Some(s))
    };
    let bind_tcp = |key: &str, addr: &str| -> anyhow::Result<Option<std::net::TcpListener>> {
        if addr.is_empty() {
            return Ok(None);
        }
        let s = std::net::TcpListener::bind(addr)
            .with_context(|| format!("{file}: {key} = {addr:?}: cannot listen"))?;
        s.set_nonblocking(true)?;
        Ok(Some(s))
    };
    let token = if cfg.catalogue.url.is_empty() {
        None
    } else {
        let t = std::fs::read_to_string(&cfg.catalogue.token_file).with_context(|| {
            format!(
                "{file}: catalogue.token_file = {:?}: cannot read the agent's token (make one with `callvault catalogue agent-add NAME` on the catalogue host)",
                cfg.catalogue.token_file
            )
        })?;
        Some(t)
    };
    let hep_udp = bind_udp("hep.listen_udp", &cfg.hep.listen_udp)?;
    if let Some(s) = &hep_udp {
        hep_listener::enlarge_receive_buffer(s);
    }
    let hep_udp_port = hep_udp
        .as_ref()
        .and_then(|s| s.local_addr().ok())
        .map(|a| a.port());
    let hep_tcp = bind_tcp("hep.listen_tcp", &cfg.hep.listen_tcp)?;
    let metrics_tcp = bind_tcp("agent.metrics_listen", &cfg.agent.metrics_listen)?;
    let mut rings = Vec::new();
    for (i, iface) in cfg.capture.interfaces.iter().enumerate() {
        let ring = PacketRing::open(
            iface,
            cfg.capture.ring_mb,
            cfg.capture.ring_seconds,
            cfg.capture.promiscuous,
        )
        .with_context(|| format!("{file}: capture.interfaces[{i}] = {iface:?}"))?;
        let g = ring.geometry;
        tracing::info!(
            interface = %iface,
            blocks = g.block_nr,
            block_kib = g.block_size >> 10,
            "capture ring of {:.1} MiB: rides out a stall of {:.1} s at up to {:.1} MB/s of traffic (about {} RTP packets/s)",
            g.bytes() as f64 / f64::from(1 << 20),
            g.seconds(),
            g.rate_held() / 1e6,
            (g.rate_held() / 214.0) as u64
        );
        rings.push(ring);
    }
    if rings.is_empty() && hep_udp.is_none() && hep_tcp.is_none() {
        anyhow::bail!(
            "{file}: no source: set capture.interfaces (a mirror port) or hep.listen_udp / hep.listen_tcp"
        );
    }

    let workers = match cfg.agent.media_workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get().saturating_sub(1))
            .unwrap_or(1)
            .max(1),
        n => n,
    };
    let media = ShardedMedia::start(workers, &cfg, key, &spool)?;
    let media_drops = media.queue_drops.clone();
    let mut pipeline = Pipeline::with_media(&cfg, media, Entropy::system());
    pipeline.set_live(
        hep_udp
            .as_ref()
            .and_then(|s| s.local_addr().ok())
            .map(listener_addresses)
            .unwrap_or_default(),
    );

    let control = Arc::new(Control {
        stop: AtomicBool::new(false),
        reload: AtomicBool::new(false),
    });
    let (tx, rx) = sync_channel::<Input>(INPUT_QUEUE);
    let hep_stats = Arc::new(HepStats::default());
    let mut capture_stats = Vec::new();
    let mut capture_threads = Vec::new();
    // Sources by id: the interfaces, then HEP over UDP (kernel timestamps, merged in capture
    // order with them), then HEP over TCP (timed when read: not ordered).
    let hep_udp_source = rings.len();
    let hep_tcp_source = rings.len() + 1;
    // (a listener that is not configured never reports: it must not hold capture time back)
    let mut ordered = vec![true; rings.len()];
    ordered.push(hep_udp.is_some());
    ordered.push(false);
    let mut merge = SourceMerge::new(&ordered);
    for (source, ring) in rings.into_iter().enumerate() {
        let stats = Arc::new(CaptureStats::default());
        capture_stats.push((ring.name.clone(), stats.clone()));
        let (tx, control) = (tx.clone(), control.clone());
        let name = ring.name.clone();
        capture_threads.push(
            std::thread::Builder::new()
                .name(format!("capture-{name}"))
                .spawn(move || {
                    let mut send =
                        |delivery: Delivery| tx.try_send(Input { source, delivery }).is_ok();
                    if let Err(e) = af_packet::run(ring, &stats, &control.stop, &mut send) {
                        tracing::error!(interface = %name, "capture stopped: {e}");
                    }
                })?,
        );
    }
    let status = Arc::new(Status::new(capture_stats, hep_stats.clone()));
    status
        .recovered_calls
        .store(recovery.calls_closed as u64, Ordering::Relaxed);

    let io = IoThread {
        hep_udp,
        hep_tcp,
        metrics_tcp,
        tx: tx.clone(),
        hep: hep_stats,
        status: status.clone(),
        control: control.clone(),
        spool_root: spool.root().to_owned(),
        hep_udp_port,
        hep_sources: (hep_udp_source, hep_tcp_source),
        outbox: match token {
            Some(token) => Some(outbox::Outbox::new(
                &cfg.catalogue,
                token,
                spool.root(),
                &cfg.scope,
                status.clone(),
            )?),
            None => None,
        },
    };
    let io_thread = std::thread::Builder::new()
        .name("io".into())
        .spawn(move || io.run())?;
    drop(tx);

    tracing::info!(
        agent = %cfg.agent.name,
        interfaces = ?cfg.capture.interfaces,
        hep_udp = %cfg.hep.listen_udp,
        hep_tcp = %cfg.hep.listen_tcp,
        media_workers = workers,
        spool = %spool.root().display(),
        "recording"
    );
    status.publish(Snapshot {
        published_at: Some(Instant::now()),
        ..Snapshot::default()
    });
    systemd::notify("READY=1\nSTATUS=recording");

    let auth_key = (!cfg.hep.auth_key.is_empty()).then(|| cfg.hep.auth_key.as_bytes().to_vec());
    let mut floor = disk::DiskFloor::new(cfg.agent.min_free_mb.saturating_mul(1 << 20));
    let mut next_tick = Instant::now();
    let mut next_second = Instant::now();
    let mut disconnected = false;
    loop {
        let stopping = control.stop.load(Ordering::Relaxed) || disconnected;
        // Capture time moves on only as the sources say: batches are handed to the pipeline
        // in capture order across sources, and while nothing is waiting it ticks to where
        // every source has drained (a stall of the agent leaves frames in the kernel's ring
        // and socket buffers; ticking past them by the wall clock would make them late).
        let wait = if stopping {
            Duration::ZERO
        } else if merge.queued() > 0 {
            Duration::from_millis(5)
        } else {
            Duration::from_millis(20)
        };
        match rx.recv_timeout(wait) {
            Ok(input) => merge.push(input.source, input.delivery, Instant::now()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => disconnected = true,
        }
        // what else is queued, without waiting (bounded: a source whose batches wait for
        // another source's finds the queue full and counts its drops)
        while merge.queued() < INPUT_QUEUE
            && let Ok(input) = rx.try_recv()
        {
            merge.push(input.source, input.delivery, Instant::now());
        }
        while let Some(ready) = merge.next(Instant::now(), stopping) {
            match ready {
                Ready::Frames(batch) => {
                    if let Some(link) = batch.link {
                        for (time, frame) in batch.iter() {
                            pipeline.frame(time, link, frame);
                        }
                    }
                }
                Ready::Hep(batch) => {
                    for (arrival, packet) in batch.iter() {
                        pipeline.hep_received(arrival, packet, auth_key.as_deref());
                    }
                }
            }
        }
        if stopping && merge.queued() == 0 {
            match rx.try_recv() {
                Ok(input) => merge.push(input.source, input.delivery, Instant::now()),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        if merge.queued() == 0 && now >= next_tick {
            next_tick = now + Duration::from_millis(100);
            if !merge.has_ordered() {
                // HEP over TCP only: timed when read, so the wall clock
                pipeline.tick(Timestamp::now());
            } else if let Some(settled) = merge.settled(now) {
                pipeline.tick(settled);
            }
        }
        if now >= next_second {
            next_second = now + Duration::from_secs(1);
            if let Some(free) = disk::free_bytes(spool.root()) {
                status.spool_free_bytes.store(free, Ordering::Relaxed);
                if let Some(paused) = floor.update(free) {
                    pipeline.set_recording_allowed(!paused);
                    status.recording_paused.store(paused, Ordering::Relaxed);
                    if paused {
                        tracing::error!(
                            free_mb = free >> 20,
                            floor_mb = cfg.agent.min_free_mb,
                            "spool disk below agent.min_free_mb: new calls are not recorded until space is freed; calls in progress go on"
                        );
                        systemd::notify("STATUS=recording paused: spool disk full");
                    } else {
                        tracing::warn!(
                            free_mb = free >> 20,
                            "spool disk has room again: recording resumed"
                        );
                        systemd::notify("STATUS=recording");
                    }
                }
            }
            if control.reload.swap(false, Ordering::Relaxed) {
                reload(&opts.config_path, &cfg, &mut pipeline, &status);
            }
            status.publish(Snapshot {
                summary: pipeline.summary(),
                active_calls: pipeline.active_calls(),
                recording_calls: pipeline.recording_calls(),
                media_queue_drops: media_drops.load(Ordering::Relaxed),
                published_at: Some(now),
            });
        }
    }

    systemd::notify("STOPPING=1\nSTATUS=closing open calls");
    let deadline = Instant::now() + Duration::from_secs(cfg.agent.shutdown_timeout_seconds as u64);
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
    Ok(())
}

/// The addresses HEP sent to a listener on `listen` arrives at: that one, or for an
/// unspecified address every address of this host's interfaces (HEP on a mirror port bound
/// for another collector on the same port is not ours).
fn listener_addresses(listen: std::net::SocketAddr) -> Vec<std::net::SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs(3) fills `list`, freed below with freeifaddrs(3); each entry's
    // address is checked for null and its family before it is read as that family's type.
    unsafe {
        if libc::getifaddrs(&mut list) == 0 {
            let mut p = list;
            while !p.is_null() {
                let a = (*p).ifa_addr;
                if !a.is_null() {
                    match i32::from((*a).sa_family) {
                        libc::AF_INET => {
                            let sin = &*(a as *const libc::sockaddr_in);
                            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                            out.push(SocketAddr::new(IpAddr::V4(ip), listen.port()));
                        }
                        libc::AF_INET6 => {
                            let sin6 = &*(a as *const libc::sockaddr_in6);
                            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                            out.push(SocketAddr::new(IpAddr::V6(ip), listen.port()));
                        }
                        _ => {}
                    }
                }
                p = (*p).ifa_next;
            }
            libc::freeifaddrs(list);
        }
    }
    if out.is_empty() {
        // no interface list: any destination on the listener's port
        out.push(listen);
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_on_every_address_is_each_address_of_this_host() {
        let any = listener_addresses("0.0.0.0:9060".parse().unwrap());
        assert!(any.contains(&"127.0.0.1:9060".parse().unwrap()), "{any:?}");
        assert!(
            any.iter()
                .all(|a| a.port() == 9060 && !a.ip().is_unspecified())
        );
        let one: std::net::SocketAddr = "10.1.2.3:9060".parse().unwrap();
        assert_eq!(listener_addresses(one), vec![one]);
    }
}
