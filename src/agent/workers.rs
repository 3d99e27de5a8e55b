//! Media workers: the media side of the pipeline on threads, sharded by call.
//!
//! The pipeline thread hands each recorded call to one worker (by slot) and sends it that
//! call's packets, ticks and end through a bounded queue, in batches. A worker owns its
//! calls' jitter buffers, mixers and segment writers, and writes their segments and
//! metadata to the spool; so disk latency stalls a worker, never capture. When a worker's
//! queue is full its packets are dropped and counted (`media_queue` drops); opening and
//! closing a call are never dropped: they wait in the batch for the next send.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::config::AgentConfig;
use crate::entropy::Entropy;
use crate::media::{MediaCounters, MediaPacket, MediaSlot, MediaStage};
use crate::pipeline::local_media::LocalMedia;
use crate::pipeline::{CallSink, MediaPort};
use crate::record::CallRecord;
use crate::session::{PayloadMap, Side};
use crate::spool::Spool;
use crate::time::Timestamp;
use crate::vault::CataloguePublicKey;

/// Batches in flight per worker: at 256 messages each, about two seconds of 4,000 calls'
/// packets (a worker waiting on the disk catches up from here; at most ~25 MiB).
const QUEUE_BATCHES: usize = 512;
/// A batch is sent when it holds this many messages (or at the next tick).
const BATCH_MESSAGES: usize = 256;

enum Msg {
    Open {
        slot: MediaSlot,
        call_id: Uuid,
        journal: Box<CallRecord>,
    },
    Packet {
        slot: MediaSlot,
        side: Side,
        source: SocketAddr,
        time: Timestamp,
        start: u32,
        end: u32,
        codecs: Arc<PayloadMap>,
    },
    Tick(Timestamp),
    Quiet {
        slot: MediaSlot,
        from: Option<Timestamp>,
    },
    Close {
        slot: MediaSlot,
        ended_at: Timestamp,
        record: Box<CallRecord>,
    },
}

#[derive(Default)]
struct Batch {
    msgs: Vec<Msg>,
    bytes: Vec<u8>,
}

struct Shard {
    tx: Option<SyncSender<Batch>>,
    batch: Batch,
    counters: Arc<Mutex<MediaCounters>>,
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// The agent's media side: one worker thread per shard.
pub struct ShardedMedia {
    shards: Vec<Shard>,
    next_slot: MediaSlot,
    /// Packets dropped because a worker's queue was full.
    pub queue_drops: Arc<AtomicU64>,
}

/// Writes the metadata of recorded calls into the spool.
pub struct SpoolCalls {
    pub spool: Spool,
}

impl CallSink for SpoolCalls {
    fn opened(&mut self, journal: &CallRecord) -> std::io::Result<()> {
        self.spool.write_call(journal).map(drop)
    }

    fn recorded(&mut self, record: &CallRecord) -> std::io::Result<()> {
        self.spool.write_call(record).map(drop)
    }
}

impl ShardedMedia {
    pub fn start(
        workers: usize,
        cfg: &AgentConfig,
        key: Arc<CataloguePublicKey>,
        spool: &Spool,
    ) -> std::io::Result<ShardedMedia> {
        let mut shards = Vec::new();
        for i in 0..workers.max(1) {
            let (tx, rx) = sync_channel::<Batch>(QUEUE_BATCHES);
            let counters = Arc::new(Mutex::new(MediaCounters::default()));
            let done = Arc::new(AtomicBool::new(false));
            let stage = MediaStage::new(
                spool.clone(),
                key.clone(),
                cfg.media.clone(),
                Duration::from_secs(cfg.calls.rtp_timeout_seconds as u64),
                Entropy::system(),
            );
            let media = LocalMedia::new(
                stage,
                SpoolCalls {
                    spool: spool.clone(),
                },
            );
            let (c, d) = (counters.clone(), done.clone());
            let handle = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || {
                    work(rx, media, &c);
                    d.store(true, Ordering::Release);
                })?;
            shards.push(Shard {
                tx: Some(tx),
                batch: Batch::default(),
                counters,
                done,
                handle: Some(handle),
            });
        }
        Ok(ShardedMedia {
            shards,
            next_slot: 0,
            queue_drops: Arc::new(AtomicU64::new(0)),
        })
    }

    fn shard_of(&self, slot: MediaSlot) -> usize {
        slot as usize % self.shards.len()
    }

    fn push(&mut self, shard: usize, msg: Msg) {
        let s = &mut self.shards[shard];
        s.batch.msgs.push(msg);
        if s.batch.msgs.len() >= BATCH_MESSAGES {
            self.send(shard);
        }
    }

    /// Sends a shard's batch if its queue has room; otherwise its packets are dropped
    /// (counted) and its control messages wait for the next send.
    fn send(&mut self, shard: usize) {
        let drops = &self.queue_drops;
        let s = &mut self.shards[shard];
        if s.batch.msgs.is_empty() {
            return;
        }
        let Some(tx) = &s.tx else { return };
        let batch = std::mem::take(&mut s.batch);
        match tx.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(mut batch)) | Err(TrySendError::Disconnected(mut batch)) => {
                let before = batch.msgs.len();
                batch.msgs.retain(|m| !matches!(m, Msg::Packet { .. }));
                drops.fetch_add((before - batch.msgs.len()) as u64, Ordering::Relaxed);
                // only the newest tick matters
                let last_tick = batch.msgs.iter().rposition(|m| matches!(m, Msg::Tick(_)));
                let mut i = 0;
                batch.msgs.retain(|m| {
                    let keep = !matches!(m, Msg::Tick(_)) || Some(i) == last_tick;
                    i += 1;
                    keep
                });
                batch.bytes.clear();
                s.batch = batch;
            }
        }
    }

    /// Sends every shard's batch.
    pub fn flush(&mut self) {
        for i in 0..self.shards.len() {
            self.send(i);
        }
    }

    /// Sends what is left, lets the workers finish (seal segments, write metadata) and waits
    /// for them until `deadline`. Returns the number of workers that did not finish in time.
    pub fn shutdown(mut self, deadline: Instant) -> usize {
        for s in &mut self.shards {
            let Some(tx) = s.tx.take() else { continue };
            let mut batch = std::mem::take(&mut s.batch);
            while !batch.msgs.is_empty() {
                match tx.try_send(batch) {
                    Ok(()) => break,
                    Err(TrySendError::Full(b)) if Instant::now() < deadline => {
                        batch = b;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
            // dropping the sender ends the worker once its queue is empty
        }
        let mut late = 0;
        for s in &mut self.shards {
            while !s.done.load(Ordering::Acquire) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if s.done.load(Ordering::Acquire) {
                if let Some(h) = s.handle.take() {
                    let _ = h.join();
                }
            } else {
                late += 1;
            }
        }
        late
    }
}

impl MediaPort for ShardedMedia {
    fn open(&mut self, call_id: Uuid, journal: CallRecord) -> MediaSlot {
        let slot = self.next_slot;
        self.next_slot = self.next_slot.wrapping_add(1);
        let shard = self.shard_of(slot);
        self.push(
            shard,
            Msg::Open {
                slot,
                call_id,
                journal: Box::new(journal),
            },
        );
        slot
    }

    #[inline]
    fn packet(&mut self, slot: MediaSlot, packet: &MediaPacket) {
        let shard = self.shard_of(slot);
        let bytes = &mut self.shards[shard].batch.bytes;
        let start = bytes.len() as u32;
        bytes.extend_from_slice(packet.rtp);
        let end = bytes.len() as u32;
        self.push(
            shard,
            Msg::Packet {
                slot,
                side: packet.side,
                source: packet.source,
                time: packet.time,
                start,
                end,
                codecs: packet.codecs.clone(),
            },
        );
    }

    fn tick(&mut self, now: Timestamp) {
        for i in 0..self.shards.len() {
            self.shards[i].batch.msgs.push(Msg::Tick(now));
            self.send(i);
        }
    }

    fn quiet(&mut self, slot: MediaSlot, from: Option<Timestamp>) {
        let shard = self.shard_of(slot);
        self.push(shard, Msg::Quiet { slot, from });
    }

    fn close(&mut self, slot: MediaSlot, ended_at: Timestamp, record: CallRecord) {
        let shard = self.shard_of(slot);
        self.push(
            shard,
            Msg::Close {
                slot,
                ended_at,
                record: Box::new(record),
            },
        );
    }

    fn counters(&self) -> MediaCounters {
        let mut sum = MediaCounters::default();
        for s in &self.shards {
            if let Ok(c) = s.counters.lock() {
                sum.add(&c);
            }
        }
        sum
    }
}

/// A worker: the same local media path replay runs ([`LocalMedia`]), fed from the queue.
fn work(
    rx: Receiver<Batch>,
    mut media: LocalMedia<Spool, SpoolCalls>,
    counters: &Mutex<MediaCounters>,
) {
    // the pipeline's slot numbers → this worker's
    let mut slots: HashMap<MediaSlot, MediaSlot> = HashMap::new();
    while let Ok(batch) = rx.recv() {
        for msg in batch.msgs {
            match msg {
                Msg::Open {
                    slot,
                    call_id,
                    journal,
                } => {
                    slots.insert(slot, media.open(call_id, *journal));
                }
                Msg::Packet {
                    slot,
                    side,
                    source,
                    time,
                    start,
                    end,
                    codecs,
                } => {
                    if let (Some(&local), Some(rtp)) = (
                        slots.get(&slot),
                        batch.bytes.get(start as usize..end as usize),
                    ) {
                        let packet = MediaPacket {
                            side,
                            source,
                            time,
                            rtp,
                            codecs: &codecs,
                        };
                        media.packet(local, &packet);
                    }
                }
                Msg::Tick(now) => media.tick(now),
                Msg::Quiet { slot, from } => {
                    if let Some(&local) = slots.get(&slot) {
                        media.quiet(local, from);
                    }
                }
                Msg::Close {
                    slot,
                    ended_at,
                    record,
                } => {
                    if let Some(local) = slots.remove(&slot) {
                        media.close(local, ended_at, *record);
                    }
                }
            }
        }
        if let Ok(mut c) = counters.lock() {
            *c = media.counters();
        }
    }
    // the queue closed (the agent stops): metadata the disk refused, once more
    media.retry_unwritten();
    if media.unwritten() > 0 {
        tracing::error!(
            calls = media.unwritten(),
            "the disk still refuses these calls' metadata: the next start closes them as agent_restart, marked write_failed"
        );
    }
    if let Ok(mut c) = counters.lock() {
        *c = media.counters();
    }
}
