//! The media side run inline: on the pipeline's own thread (replay, `policy check`, tests)
//! and, the same code, on each of the agent's media workers.

use uuid::Uuid;

use super::{CallSink, MediaPort};
use crate::calls::Call;
use crate::media::{MediaCounters, MediaPacket, MediaSlot, MediaStage};
use crate::record::CallRecord;
use crate::segment::SegmentStore;
use crate::time::Timestamp;

pub struct LocalMedia<S: SegmentStore, K: CallSink> {
    stage: MediaStage<S>,
    sink: K,
}

impl<S: SegmentStore, K: CallSink> LocalMedia<S, K> {
    pub fn new(stage: MediaStage<S>, sink: K) -> Self {
        LocalMedia { stage, sink }
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
    }

    fn quiet(&mut self, slot: MediaSlot, from: Option<Timestamp>) {
        self.stage.quiet(slot, from);
    }

    /// Finishes the recording and stores its completed metadata (a failure is counted and
    /// logged: the segments are on disk, the metadata can be rebuilt from them).
    fn close(&mut self, slot: MediaSlot, ended_at: Timestamp, mut record: CallRecord) {
        record.set_media(self.stage.close(slot, ended_at));
        if let Err(e) = self.sink.recorded(&record) {
            self.stage.counters.metadata_errors += 1;
            tracing::error!(call_id = %record.call_id, "writing call metadata failed: {e}");
        }
    }

    fn decided(&mut self, call: &Call) {
        self.sink.decided(call);
    }

    fn counters(&self) -> MediaCounters {
        self.stage.counters.clone()
    }
}
