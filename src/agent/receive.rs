//! The agent's receive loop, on the pipeline thread: batches from every source, handed to the
//! pipeline in capture order; capture-time ticks; once a second the spool's free space, a
//! SIGHUP reload and the status `/metrics` reads. It ends when SIGTERM asked it to and every
//! batch already captured has been handled.

use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use super::merge::Ready;
use super::metrics::Snapshot;
use super::{INPUT_QUEUE, Running, disk, reload};
use crate::systemd;
use crate::time::Timestamp;

impl Running {
    pub(super) fn receive(&mut self) {
        let mut next_tick = Instant::now();
        let mut next_second = Instant::now();
        let mut disconnected = false;
        loop {
            let stopping = self.control.stop.load(Ordering::Relaxed) || disconnected;
            // Capture time moves on only as the sources say: batches are handed to the
            // pipeline in capture order across sources, and while nothing is waiting it ticks
            // to where every source has drained (a stall of the agent leaves frames in the
            // kernel's ring and socket buffers; ticking past them by the wall clock would make
            // them late).
            let wait = if stopping {
                Duration::ZERO
            } else if self.merge.queued() > 0 {
                Duration::from_millis(5)
            } else {
                Duration::from_millis(20)
            };
            match self.rx.recv_timeout(wait) {
                Ok(input) => self
                    .merge
                    .push(input.source, input.delivery, Instant::now()),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => disconnected = true,
            }
            // what else is queued, without waiting (bounded: a source whose batches wait for
            // another source's finds the queue full and counts its drops)
            while self.merge.queued() < INPUT_QUEUE
                && let Ok(input) = self.rx.try_recv()
            {
                self.merge
                    .push(input.source, input.delivery, Instant::now());
            }
            self.handle_ready(stopping);
            if stopping && self.merge.queued() == 0 {
                match self.rx.try_recv() {
                    Ok(input) => self
                        .merge
                        .push(input.source, input.delivery, Instant::now()),
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            if self.merge.queued() == 0 && now >= next_tick {
                next_tick = now + Duration::from_millis(100);
                if !self.merge.has_ordered() {
                    // HEP over TCP only: timed when read, so the wall clock
                    self.pipeline.tick(Timestamp::now());
                } else if let Some(settled) = self.merge.settled(now) {
                    self.pipeline.tick(settled);
                }
            }
            if now >= next_second {
                next_second = now + Duration::from_secs(1);
                self.every_second(now);
            }
        }
    }

    /// Hands the pipeline every batch whose turn has come in capture order.
    fn handle_ready(&mut self, stopping: bool) {
        while let Some(ready) = self.merge.next(Instant::now(), stopping) {
            match ready {
                Ready::Frames(batch) => {
                    if let Some(link) = batch.link {
                        for (time, frame) in batch.iter() {
                            self.pipeline.frame(time, link, frame);
                        }
                    }
                }
                Ready::Hep(batch) => {
                    for (arrival, packet) in batch.iter() {
                        self.pipeline
                            .hep_received(arrival, packet, self.auth_key.as_deref());
                    }
                }
            }
        }
    }

    /// The spool's free space (new recordings pause below `agent.min_free_mb`), a reload
    /// SIGHUP asked for, and the status `/metrics` reads.
    fn every_second(&mut self, now: Instant) {
        if let Some(free) = disk::free_bytes(self.spool.root()) {
            self.status.spool_free_bytes.store(free, Ordering::Relaxed);
            if let Some(paused) = self.floor.update(free) {
                self.pipeline.set_recording_allowed(!paused);
                self.status
                    .recording_paused
                    .store(paused, Ordering::Relaxed);
                if paused {
                    tracing::error!(
                        free_mb = free >> 20,
                        floor_mb = self.cfg.agent.min_free_mb,
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
        if self.control.reload.swap(false, Ordering::Relaxed) {
            reload(
                &self.config_path,
                &self.cfg,
                &mut self.pipeline,
                &self.status,
            );
        }
        self.status.publish(Snapshot {
            summary: self.pipeline.summary(),
            active_calls: self.pipeline.active_calls(),
            recording_calls: self.pipeline.recording_calls(),
            live: self.pipeline.live_calls(),
            media_queue_drops: self.media_drops.load(Ordering::Relaxed),
            published_at: Some(now),
        });
    }
}
