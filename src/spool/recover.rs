//! Startup recovery: the spool as a crash (SIGKILL, power cut, OOM) left it is made whole.
//!
//! A recorded call's metadata is written when its recording starts (a journal: no end, no
//! segments) and again when it ends. A journal still without an end at start-up belongs to a
//! call the agent was recording when it died. Its segments are found by the call id in their
//! headers (plaintext, so the agent needs no private key): each `.partial` is cut back to its
//! last whole sealed chunk and renamed (`complete: false`: it has no final chunk), and the
//! call is closed with `end_reason = "agent_restart"`. Nothing is decrypted here and no audio
//! is lost beyond the chunk being written at the time of the crash.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use uuid::Uuid;

use super::sha256_file_hex;
use super::{CALLS_DIR, PARTIAL_SUFFIX, SEGMENTS_DIR, Spool};
use crate::record::CallRecord;
use crate::record::SegmentInfo;
use crate::segment::wav;
use crate::time::Timestamp;
use crate::vault::{HEADER_LEN, SegmentHeader, TAG_LEN};

pub const RESTART_REASON: &str = "agent_restart";

/// What recovery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Calls the agent was recording when it stopped, now closed.
    pub calls_closed: usize,
    /// `.partial` segments cut back to their last sealed chunk and kept.
    pub segments_recovered: usize,
    /// `.partial` segments with no whole chunk of audio (removed: they held nothing).
    pub segments_empty: usize,
    /// Segment files whose header does not parse (left in place, logged).
    pub segments_unreadable: usize,
    /// `.partial` segments of no open call (left in place for the export tool, logged).
    pub orphans: usize,
    /// Audio kept in recovered segments, milliseconds.
    pub audio_ms_recovered: u64,
}

struct FoundSegment {
    path: PathBuf,
    partial: bool,
    header: SegmentHeader,
}

/// Recovers `spool`. Safe to run on a spool in good order (it changes nothing then).
pub fn recover(spool: &Spool) -> io::Result<Recovery> {
    let mut out = Recovery::default();
    let calls_dir = spool.root().join(CALLS_DIR);
    // a metadata write interrupted before its rename: the previous version is intact. Beside
    // a journal it is an end the disk refused (or a crash cut): the call's recording failed.
    let mut unfinished_writes: std::collections::HashSet<String> = Default::default();
    for entry in fs::read_dir(&calls_dir)? {
        let path = entry?.path();
        let name = path.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".json.tmp") {
            if let Some(id) = Path::new(stem).file_name() {
                unfinished_writes.insert(id.to_string_lossy().into_owned());
            }
            let _ = fs::remove_file(&path);
        }
    }
    let mut by_call: HashMap<Uuid, Vec<FoundSegment>> = HashMap::new();
    for entry in fs::read_dir(spool.root().join(SEGMENTS_DIR))? {
        let path = entry?.path();
        let name = path.to_string_lossy();
        let partial = name.ends_with(PARTIAL_SUFFIX);
        if !(partial || name.ends_with(".cvseg")) {
            continue;
        }
        match read_header(&path) {
            Ok(header) => by_call
                .entry(header.call_id)
                .or_default()
                .push(FoundSegment {
                    path,
                    partial,
                    header,
                }),
            Err(e) => {
                out.segments_unreadable += 1;
                tracing::warn!(file = %path.display(), "segment header unreadable: {e}");
            }
        }
    }
    for entry in fs::read_dir(&calls_dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let Ok(record) = serde_json::from_str::<CallRecord>(&text) else {
            tracing::warn!(file = %path.display(), "not a call document; left alone");
            continue;
        };
        if record.ended_at.is_some() {
            continue;
        }
        let segs = record
            .call_id
            .parse::<Uuid>()
            .ok()
            .and_then(|id| by_call.remove(&id))
            .unwrap_or_default();
        let write_failed = unfinished_writes.contains(&record.call_id);
        close_call(spool, record, segs, write_failed, &mut out)?;
    }
    for segs in by_call.values() {
        for s in segs.iter().filter(|s| s.partial) {
            out.orphans += 1;
            tracing::warn!(file = %s.path.display(), "unfinished segment of no open call; left for `callvault decrypt`");
        }
    }
    Ok(out)
}

/// Why a segment file's header could not be read.
#[derive(Debug, thiserror::Error)]
enum HeaderError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Format(#[from] crate::vault::VaultError),
}

fn read_header(path: &Path) -> Result<SegmentHeader, HeaderError> {
    let mut buf = [0u8; HEADER_LEN];
    let mut f = fs::File::open(path)?;
    f.read_exact(&mut buf)?;
    Ok(SegmentHeader::parse(&buf)?)
}

fn close_call(
    spool: &Spool,
    mut record: CallRecord,
    mut segs: Vec<FoundSegment>,
    write_failed: bool,
    out: &mut Recovery,
) -> io::Result<()> {
    segs.sort_by_key(|s| s.header.seq);
    let mut infos: Vec<SegmentInfo> = Vec::new();
    let mut origin: Option<Timestamp> = None;
    let mut offset_ms = 0u64;
    for seg in segs {
        let chunk = seg.header.chunk_size as u64;
        let stride = chunk + TAG_LEN as u64;
        let len = fs::metadata(&seg.path)?.len();
        let body = len.saturating_sub(HEADER_LEN as u64);
        let (path, plain, complete) = if seg.partial {
            let whole = body / stride;
            if whole == 0 {
                fs::remove_file(&seg.path)?;
                out.segments_empty += 1;
                continue;
            }
            let keep = HEADER_LEN as u64 + whole * stride;
            let f = OpenOptions::new().write(true).open(&seg.path)?;
            f.set_len(keep)?;
            f.sync_all()?;
            let done = PathBuf::from(
                seg.path
                    .to_string_lossy()
                    .trim_end_matches(PARTIAL_SUFFIX)
                    .to_owned(),
            );
            fs::rename(&seg.path, &done)?;
            out.segments_recovered += 1;
            (done, whole * chunk, false)
        } else {
            (
                seg.path,
                body - body.div_ceil(stride) * TAG_LEN as u64,
                true,
            )
        };
        // the writer seals half a second of 16-bit stereo per chunk: chunk = 2 × rate
        let rate = (seg.header.chunk_size / 2).max(1);
        let frames = plain.saturating_sub(wav::HEADER_LEN as u64) / 4;
        let duration_ms = frames * 1000 / rate as u64;
        let created = uuid_time(&seg.header.segment_id);
        let start = *origin.get_or_insert(created.unwrap_or(Timestamp::ZERO));
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        infos.push(SegmentInfo {
            file: format!("{SEGMENTS_DIR}/{file_name}"),
            segment_id: seg.header.segment_id.to_string(),
            seq: seg.header.seq,
            offset_ms,
            duration_ms,
            started_at: (start + Duration::from_millis(offset_ms)).rfc3339(),
            sample_rate: rate,
            bytes: fs::metadata(&path)?.len(),
            sha256: sha256_file_hex(&path)?,
            key_id: seg.header.key_id.to_string(),
            complete,
        });
        if !complete {
            out.audio_ms_recovered += duration_ms;
        }
        offset_ms += duration_ms;
    }
    let ended_at = match (origin, infos.last()) {
        (Some(o), Some(last)) => {
            (o + Duration::from_millis(last.offset_ms + last.duration_ms)).rfc3339()
        }
        _ => record.started_at.clone(),
    };
    for leg in &mut record.legs {
        if leg.ended_at.is_none() {
            leg.ended_at = Some(ended_at.clone());
            leg.end_reason = Some(RESTART_REASON.to_owned());
        }
    }
    record.audio_ms = infos.iter().map(|s| s.duration_ms).sum();
    record.segments = infos;
    record.ended_at = Some(ended_at);
    record.end_reason = Some(RESTART_REASON.to_owned());
    record.write_failed |= write_failed;
    let mut spool = spool.clone();
    spool.write_call(&record)?;
    out.calls_closed += 1;
    tracing::info!(call_id = %record.call_id, audio_ms = record.audio_ms, "call open when the agent stopped closed: {RESTART_REASON}");
    Ok(())
}

/// Creation time of a v7 UUID (segments are named when their first audio is written).
fn uuid_time(id: &Uuid) -> Option<Timestamp> {
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(Timestamp::from_secs_nanos(secs, nanos))
}
