//! The media side run inline: on the pipeline's own thread (replay, `policy check`, tests)
//! and, the same code, on each of the agent's media workers.

use uuid::Uuid;

use super::{CallSink, MediaPort};
use crate::calls::Call;
use crate::media::{MediaCounters, MediaPacket, MediaSlot, MediaStage};
use crate::record::CallRecord;
use crate::segment::SegmentStore;
use crate::time::Timestamp;

/// Finished calls' metadata kept while the disk refuses it (a full disk), at most.
const MAX_UNWRITTEN: usize = 10_000;

pub struct LocalMedia<S: SegmentStore, K: CallSink> {
    stage: MediaStage<S>,
    sink: K,
    /// Finished calls whose metadata the disk refused: written again at each tick until it
    /// takes them (until then the spool holds their journal, which a restart would close as
    /// `agent_restart`).
    unwritten: Vec<CallRecord>,
}

impl<S: SegmentStore, K: CallSink> LocalMedia<S, K> {
    pub fn new(stage: MediaStage<S>, sink: K) -> Self {
        LocalMedia {
            stage,
            sink,
            unwritten: Vec::new(),
        }
    }

    /// Calls whose metadata is still waiting for the disk.
    pub fn unwritten(&self) -> usize {
        self.unwritten.len()
    }

    /// Tries the waiting metadata again (at each tick, and when the worker stops).
    pub fn retry_unwritten(&mut self) {
        if self.unwritten.is_empty() {
            return;
        }
        let sink = &mut self.sink;
        self.unwritten.retain(|r| match sink.recorded(r) {
            Ok(()) => {
                tracing::info!(call_id = %r.call_id, "call metadata written once the disk took it");
                false
            }
            Err(_) => true,
        });
    }

    pub fn stage(&self) -> &MediaStage<S> {
        &self.stage
    }

    pub fn sink(&self) -> &K {
        &self.sink
    }

    pub fn sink_mut(&mut self) -> &mut K {
        &mut self.sink
    }
}

impl<S: SegmentStore, K: CallSink> MediaPort for LocalMedia<S, K> {
    fn open(&mut self, call_id: Uuid, journal: CallRecord) -> MediaSlot {
        if let Err(e) = self.sink.opened(&journal) {
            self.stage.counters.metadata_errors += 1;
            tracing::error!(%call_id, "writing the call journal failed: {e}");
        }
        self.stage.open(call_id)
    }

    #[inline]
    fn packet(&mut self, slot: MediaSlot, packet: &MediaPacket) {
        self.stage.packet(slot, packet);
    }

    fn tick(&mut self, now: Timestamp) {
        self.stage.tick(now);
        self.retry_unwritten();
    }

    fn quiet(&mut self, slot: MediaSlot, from: Option<Timestamp>) {
        self.stage.quiet(slot, from);
    }

    /// Finishes the recording and stores its completed metadata. A failure is counted and
    /// logged, the call marked `write_failed`, and the metadata kept and written again at
    /// each tick until the disk takes it.
    fn close(&mut self, slot: MediaSlot, ended_at: Timestamp, mut record: CallRecord) {
        record.set_media(self.stage.close(slot, ended_at));
        if let Err(e) = self.sink.recorded(&record) {
            self.stage.counters.metadata_errors += 1;
            tracing::error!(call_id = %record.call_id, "writing call metadata failed (kept, to be written again): {e}");
            record.write_failed = true;
            if self.unwritten.len() < MAX_UNWRITTEN {
                self.unwritten.push(record);
            }
        }
    }

    fn decided(&mut self, call: &Call) {
        self.sink.decided(call);
    }

    fn counters(&self) -> MediaCounters {
        self.stage.counters.clone()
    }
}
