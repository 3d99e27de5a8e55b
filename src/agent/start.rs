//! Starting the agent: the catalogue key, the spool and what a crash left in it, every
//! source opened (a wrong address or a missing capability stops the start with the key to
//! fix, and systemd sees the failure), the media workers, capture and I/O threads, READY=1.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::Context;

use super::af_packet::{self, CaptureStats, PacketRing};
use super::interfaces::listener_addresses;
use super::merge::{Delivery, SourceMerge};
use super::metrics::{HepStats, Snapshot, Status};
use super::workers::ShardedMedia;
use super::{
    AgentOptions, Control, INPUT_QUEUE, Input, IoThread, Running, disk, hep_listener, outbox,
};
use crate::config::AgentConfig;
use crate::entropy::Entropy;
use crate::pipeline::Pipeline;
use crate::spool::Spool;
use crate::systemd;
use crate::vault::CataloguePublicKey;

impl Running {
    /// Opens everything and starts every thread; recording has begun when it returns.
    pub(super) fn start(opts: AgentOptions) -> anyhow::Result<Running> {
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
        let Sources {
            token,
            hep_udp,
            hep_udp_port,
            hep_tcp,
            metrics_tcp,
            rings,
        } = Sources::open(&cfg, &opts.config_path.display().to_string())?;
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
        let merge = SourceMerge::new(&ordered);
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
        if let Some(free) = disk::free_bytes(spool.root()) {
            status.spool_free_bytes.store(free, Ordering::Relaxed);
        }
        status.publish(Snapshot {
            published_at: Some(Instant::now()),
            ..Snapshot::default()
        });
        systemd::notify("READY=1\nSTATUS=recording");

        let auth_key = (!cfg.hep.auth_key.is_empty()).then(|| cfg.hep.auth_key.as_bytes().to_vec());
        Ok(Running {
            floor: disk::DiskFloor::new(cfg.agent.min_free_mb.saturating_mul(1 << 20)),
            auth_key,
            config_path: opts.config_path,
            cfg,
            pipeline,
            merge,
            rx,
            control,
            status,
            spool,
            media_drops,
            capture_threads,
            io_thread,
        })
    }
}

/// What the agent listens on and captures from, opened.
struct Sources {
    /// The agent's token for the catalogue (None: no catalogue configured).
    token: Option<String>,
    hep_udp: Option<std::net::UdpSocket>,
    hep_udp_port: Option<u16>,
    hep_tcp: Option<std::net::TcpListener>,
    metrics_tcp: Option<std::net::TcpListener>,
    rings: Vec<PacketRing>,
}

impl Sources {
    /// Opens every source of `cfg` (read from `file`): an error names the key to fix.
    fn open(cfg: &AgentConfig, file: &str) -> anyhow::Result<Sources> {
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
        Ok(Sources {
            token,
            hep_udp,
            hep_udp_port,
            hep_tcp,
            metrics_tcp,
            rings,
        })
    }
}
