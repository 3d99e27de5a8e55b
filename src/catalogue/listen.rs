//! Listening: a call's audio served as one stereo WAV, decrypted on the fly, for a stated
//! purpose.
//!
//! Owns retrieval grants (their table) and the audio response. The grant is handed out by
//! `POST /api/v1/calls/{id}/access` (`api::access`: a purpose from the policy's list and a
//! reference, the audit record committed first), and stored here (ten minutes, this user, this call); `GET /api/v1/calls/{id}/audio?grant=`
//! serves the WAV, with HTTP Range so that a player can seek. Segments are decrypted in memory
//! as the bytes are asked for; no plaintext is ever written to disk.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sqlx::Row;

use super::App;
use super::people::{Caller, refuse, token_hash};
use super::store::{Store, now_ms};
use crate::record::CallRecord;
use crate::segment::wav;
use crate::vault::{HEADER_LEN, SegmentHeader, SegmentOpener, TAG_LEN};

/// The purposes the policy allows a recording to be retrieved for.
pub const PURPOSES: &[(&str, &str)] = &[
    ("complaint", "Complaint or ombudsman investigation"),
    ("health_and_safety", "Staff health and safety"),
    ("crime", "Prevention or detection of crime"),
    ("legal_proceedings", "Legal proceedings"),
    ("subject_access", "Subject access request"),
    ("quality_training", "Quality and training"),
];

const GRANT_MS: i64 = 10 * 60 * 1000;

#[derive(Deserialize)]
pub struct AccessRequest {
    pub purpose: String,
    pub reference: String,
}

/// A segment's place in the call's stereo timeline.
#[derive(Clone, Debug)]
struct Part {
    blob: String,
    complete: bool,
    /// First frame, at the call's output rate.
    start: u64,
    /// Frames at the output rate.
    frames: u64,
    /// Each source frame is repeated this often (8 kHz in a 16 kHz call).
    repeat: u64,
    /// The sealed segment's size, as received (and hash-checked) by the catalogue.
    bytes: u64,
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub rate: u32,
    pub frames: u64,
    parts: Vec<Part>,
}

impl Layout {
    pub fn wav_len(&self) -> u64 {
        wav::HEADER_LEN as u64 + self.frames * 4
    }
}

/// Frames of 16-bit stereo in a sealed segment, from its size alone (no key needed).
fn segment_frames(header: &SegmentHeader, len: u64, complete: bool) -> u64 {
    let chunk = u64::from(header.chunk_size).max(1);
    let stride = chunk + TAG_LEN as u64;
    let body = len.saturating_sub(HEADER_LEN as u64);
    let plain = if complete {
        body.saturating_sub(body.div_ceil(stride) * TAG_LEN as u64)
    } else {
        body / stride * chunk
    };
    plain.saturating_sub(wav::HEADER_LEN as u64) / 4
}

/// Why a call's audio cannot be laid out or served.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// What is stored is not what was received: another recording's file, a truncated or
    /// altered one. Never served as silence; audited.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    #[error(transparent)]
    Storage(#[from] anyhow::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<AudioError> for super::error::Failure {
    fn from(e: AudioError) -> Self {
        match e {
            AudioError::Database(e) => e.into(),
            other => anyhow::Error::from(other).into(),
        }
    }
}

/// The largest call WAV: its sizes are 32-bit.
const MAX_WAV_DATA: u64 = u32::MAX as u64 - wav::HEADER_LEN as u64;

/// The timeline of a call: its segments in order, placed by their offsets, at the highest
/// rate among them (as `callvault export` lays it out). Each segment is checked against what
/// the catalogue received before any of it is served: its sealed header must name this
/// segment of this call and its file must have the size that was received and hashed. With
/// the per-chunk seal (every chunk authenticates the header, its own index and whether it is
/// the last), that is the stored SHA-256's equivalent at every read: a copied, truncated,
/// reordered or altered file fails, at this check or when its chunks are opened.
pub async fn layout(app: &App, record: &CallRecord) -> Result<Layout, AudioError> {
    let mut segs = record.segments.clone();
    segs.sort_by_key(|s| s.seq);
    let rate = segs
        .iter()
        .map(|s| s.sample_rate)
        .max()
        .unwrap_or(8000)
        .max(1);
    let mut parts = Vec::new();
    let mut frames = 0u64;
    for s in &segs {
        let Some(row) = app.store.segment(&s.segment_id).await? else {
            return Err(AudioError::Integrity(format!(
                "segment {} of call {} is not in the catalogue",
                s.segment_id, record.call_id
            )));
        };
        let (head, size) = app.blobs.head(&row.blob, HEADER_LEN).await?;
        let header = SegmentHeader::parse(&head)
            .map_err(|e| AudioError::Integrity(format!("segment {}: {e}", s.segment_id)))?;
        if row.call_id != record.call_id
            || header.segment_id.to_string() != s.segment_id
            || header.call_id.to_string() != record.call_id
        {
            return Err(AudioError::Integrity(format!(
                "the file of segment {} of call {} holds segment {} of call {}",
                s.segment_id, record.call_id, header.segment_id, header.call_id
            )));
        }
        let len = u64::try_from(row.bytes).unwrap_or(0);
        if size != len {
            return Err(AudioError::Integrity(format!(
                "segment {} is {size} bytes; {len} were received",
                s.segment_id
            )));
        }
        let repeat = u64::from((rate / s.sample_rate.max(1)).max(1));
        let start = s.offset_ms.saturating_mul(u64::from(rate)) / 1000;
        let n = segment_frames(&header, len, s.complete).saturating_mul(repeat);
        frames = frames.max(start.saturating_add(n));
        parts.push(Part {
            blob: row.blob,
            complete: s.complete,
            start,
            frames: n,
            repeat,
            bytes: len,
        });
    }
    if frames.saturating_mul(4) > MAX_WAV_DATA {
        return Err(AudioError::Integrity(format!(
            "call {} would be a WAV of {frames} frames, past the format's 4 GiB",
            record.call_id
        )));
    }
    Ok(Layout {
        rate,
        frames,
        parts,
    })
}

/// Writes an audit record of a failed integrity check (someone, or something, changed a
/// stored recording: the DPO must know), and says it in the log.
pub async fn audit_failure(app: &App, actor: &str, call_id: &str, e: &AudioError) {
    tracing::error!(call_id, "{e}");
    if let AudioError::Integrity(what) = e {
        let entry = super::audit::Entry {
            actor,
            action: "integrity_failure",
            call_id: Some(call_id),
            detail: serde_json::json!({ "what": what.chars().take(300).collect::<String>() }),
            ..Default::default()
        };
        if let Err(e) = app.store.audit(entry).await {
            tracing::error!(call_id, "the integrity failure could not be audited: {e}");
        }
    }
}

/// The segments opened while serving one response: each DEK is unwrapped once.
#[derive(Default)]
struct Openers(Vec<Option<Arc<SegmentOpener>>>);

impl Part {
    /// Plaintext bytes `[lo, hi)` of this segment's WAV (header included), reading and
    /// opening only the chunks they fall in: a 64 KiB piece of a long call costs one or two
    /// chunks, not the whole segment.
    async fn plaintext(
        &self,
        app: &App,
        opener: &mut Option<Arc<SegmentOpener>>,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<u8>, AudioError> {
        let op = match opener {
            Some(o) => o.clone(),
            None => {
                let head = app.blobs.get(&self.blob, Some(HEADER_LEN)).await?;
                let o = app
                    .keys
                    .iter()
                    .find_map(|k| SegmentOpener::new(&head, k).ok())
                    .ok_or_else(|| {
                        AudioError::Storage(anyhow::anyhow!(
                            "{}: cannot be opened with any catalogue key",
                            self.blob
                        ))
                    })?;
                opener.insert(Arc::new(o)).clone()
            }
        };
        let chunk = u64::from(op.header().chunk_size);
        let stride = op.header().chunk_stride();
        let body = self.bytes.saturating_sub(HEADER_LEN as u64);
        // a segment recovered after a crash: its whole chunks only (as `segment_frames`)
        let chunks = if self.complete {
            body.div_ceil(stride)
        } else {
            body / stride
        };
        if chunks == 0 || lo >= hi {
            return Ok(Vec::new());
        }
        let first = lo / chunk;
        let last = ((hi - 1) / chunk).min(chunks - 1);
        if first > last {
            return Ok(Vec::new());
        }
        let offset = op.chunk_offset(first as u32);
        let end = (op.chunk_offset(last as u32) + stride).min(self.bytes);
        let want = end.saturating_sub(offset);
        let sealed = app.blobs.get_range(&self.blob, offset, want).await?;
        if sealed.len() as u64 != want {
            return Err(AudioError::Integrity(format!(
                "{}: {} bytes where {want} were stored",
                self.blob,
                sealed.len()
            )));
        }
        let (complete, blob) = (self.complete, self.blob.clone());
        let plain = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, AudioError> {
            let mut plain = Vec::with_capacity(sealed.len());
            for (k, piece) in sealed.chunks(stride as usize).enumerate() {
                let i = first + k as u64;
                let opened = match op.open_chunk(i as u32, piece, complete && i == chunks - 1) {
                    Ok(p) => p,
                    Err(e) if complete => {
                        return Err(AudioError::Integrity(format!("{blob}: chunk {i}: {e}")));
                    }
                    // a recovered segment may end with a chunk sealed as the last one; past
                    // a chunk that does not open (torn by the crash) it has no audio
                    Err(_) => match op.open_chunk(i as u32, piece, true) {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                plain.extend_from_slice(&opened);
            }
            Ok(plain)
        })
        .await
        .map_err(|e| AudioError::Storage(e.into()))??;
        let skip = ((lo - first * chunk) as usize).min(plain.len());
        let take = ((hi - lo) as usize).min(plain.len() - skip);
        Ok(plain[skip..skip + take].to_vec())
    }
}

/// Bytes `from..to` of the call's WAV (header included), decrypting only the chunks of the
/// segments they touch.
async fn render(
    app: &App,
    layout: &Layout,
    openers: &mut Openers,
    from: u64,
    to: u64,
) -> Result<Vec<u8>, AudioError> {
    let mut out = Vec::with_capacity((to - from) as usize);
    let header = wav::header(layout.rate, Some((layout.frames * 4) as u32));
    let hlen = wav::HEADER_LEN as u64;
    if from < hlen {
        out.extend_from_slice(&header[from as usize..hlen.min(to) as usize]);
    }
    if to <= hlen {
        return Ok(out);
    }
    // audio bytes [a, b) of the data chunk
    let (a, b) = (from.max(hlen) - hlen, to - hlen);
    let mut data = vec![0u8; (b - a) as usize];
    openers.0.resize(layout.parts.len(), None);
    for (p, opener) in layout.parts.iter().zip(openers.0.iter_mut()) {
        let (ps, pe) = (p.start * 4, (p.start + p.frames) * 4);
        if pe <= a || ps >= b {
            continue;
        }
        let (lo, hi) = (a.max(ps), b.min(pe));
        if lo >= hi {
            continue;
        }
        let src = |k: u64| source_byte(k, p.repeat);
        let (src_lo, src_hi) = source_span(lo - ps, hi - ps, p.repeat);
        let pcm = p
            .plaintext(app, opener, hlen + src_lo, hlen + src_hi)
            .await?;
        if p.repeat == 1 {
            let n = pcm.len().min((hi - lo) as usize);
            let at = (lo - a) as usize;
            data[at..at + n].copy_from_slice(&pcm[..n]);
        } else {
            for pos in lo..hi {
                if let Some(&byte) = pcm.get((src(pos - ps) - src_lo) as usize) {
                    data[(pos - a) as usize] = byte;
                }
            }
        }
    }
    out.extend_from_slice(&data);
    Ok(out)
}

/// The byte of a part's PCM that its output byte `k` comes from: source frame
/// (k/4)/repeat, byte k%4 (an 8 kHz segment in a 16 kHz call repeats each frame twice).
fn source_byte(k: u64, repeat: u64) -> u64 {
    (k / 4 / repeat) * 4 + k % 4
}

/// The part's PCM bytes that its output bytes `[lo, hi)` come from: whole source frames
/// (with `repeat > 1` an output range cut inside a frame still needs all of it).
fn source_span(lo: u64, hi: u64, repeat: u64) -> (u64, u64) {
    if repeat == 1 {
        return (lo, hi);
    }
    (lo / 4 / repeat * 4, ((hi - 1) / 4 / repeat + 1) * 4)
}

/// The whole WAV of a call, in memory (subject-access and training bundles).
pub async fn whole_wav(app: &App, record: &CallRecord) -> Result<Vec<u8>, AudioError> {
    let l = layout(app, record).await?;
    render(app, &l, &mut Openers::default(), 0, l.wav_len()).await
}

/// Peaks of the call's two channels for a waveform: the largest |sample| in each of at most
/// `buckets` slices of the call. Read a piece at a time: a long call is never all in memory.
pub async fn peaks(
    app: &App,
    record: &CallRecord,
    buckets: usize,
) -> Result<serde_json::Value, AudioError> {
    const PIECE: u64 = 1 << 20;
    let layout = layout(app, record).await?;
    let frames = layout.frames.max(1);
    let n = buckets
        .min(usize::try_from(frames).unwrap_or(usize::MAX))
        .max(1);
    let mut caller = vec![0i32; n];
    let mut org = vec![0i32; n];
    let mut openers = Openers::default();
    let (start, end) = (wav::HEADER_LEN as u64, layout.wav_len());
    let mut at = start;
    while at < end {
        let to = (at + PIECE).min(end);
        let pcm = render(app, &layout, &mut openers, at, to).await?;
        let first = (at - start) / 4;
        for (k, b) in pcm.chunks_exact(4).enumerate() {
            let f = first + k as u64;
            let i = ((f as u128 * n as u128) / frames as u128) as usize;
            let (Some(c), Some(o)) = (caller.get_mut(i), org.get_mut(i)) else {
                continue;
            };
            *c = (*c).max(i32::from(i16::from_le_bytes([b[0], b[1]]).unsigned_abs()));
            *o = (*o).max(i32::from(i16::from_le_bytes([b[2], b[3]]).unsigned_abs()));
        }
        at = to;
    }
    Ok(serde_json::json!({ "caller": caller, "organisation": org }))
}

/// Whether `grant` lets `caller` hear `call_id` now.
pub async fn grant_valid(
    app: &App,
    caller: &Caller,
    call_id: &str,
    grant: &str,
) -> Result<bool, sqlx::Error> {
    Ok(matches!(
        app.store.grant(grant).await?,
        Some((user, call)) if user == caller.username && call == call_id
    ))
}

/// Parses a single `Range: bytes=...` against a length; None when absent, Err when it cannot
/// be satisfied.
fn range(headers: &HeaderMap, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = spec.strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (a, b) = first.split_once('-')?;
    let r = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(a), Some(b)) if a <= b && a < len => Ok((a, b.saturating_add(1).min(len))),
        (Some(a), None) if a < len => Ok((a, len)),
        (None, Some(n)) if n > 0 => Ok((len.saturating_sub(n), len)),
        _ => Err(()),
    };
    Some(r)
}

impl Store {
    pub async fn add_grant(
        &self,
        token: &str,
        username: &str,
        call_id: &str,
        purpose: &str,
        reference: &str,
        audit_seq: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO grants (token_sha256, username, call_id, purpose, reference, audit_seq, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token_hash(token))
        .bind(username)
        .bind(call_id)
        .bind(purpose)
        .bind(reference)
        .bind(audit_seq)
        .bind(now_ms() + GRANT_MS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The grant's user and call, if it is valid now.
    pub async fn grant(&self, token: &str) -> Result<Option<(String, String)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT username, call_id FROM grants WHERE token_sha256 = $1 AND expires_ms > $2",
        )
        .bind(token_hash(token))
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("username")?, r.try_get("call_id")?)))
            .transpose()
    }
}

/// Serves the WAV (or the asked range of it).
pub async fn audio(
    app: &App,
    caller: &Caller,
    call_id: &str,
    grant: &str,
    headers: &HeaderMap,
) -> Response {
    match app.store.grant(grant).await {
        Ok(Some((user, call))) if user == caller.username && call == call_id => {}
        Ok(_) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "no valid grant for this call: state a purpose first",
            );
        }
        Err(e) => return super::error::fail(e),
    }
    let record = match app.store.call_document(call_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "no such call"),
        Err(e) => return super::error::fail(e),
    };
    let layout = match layout(app, &record).await {
        Ok(l) => Arc::new(l),
        Err(e) => {
            audit_failure(app, &caller.username, call_id, &e).await;
            return super::error::fail(e);
        }
    };
    let len = layout.wav_len();
    let (code, from, to) = match range(headers, len) {
        None => (StatusCode::OK, 0, len),
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(Err(())) => {
            let mut r = refuse(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    // Served in pieces of about a second of audio, decrypted as they are sent.
    const PIECE: u64 = 1 << 16;
    let (app2, user, call) = (app.clone(), caller.username.clone(), call_id.to_owned());
    let stream =
        futures_util::stream::unfold((from, Openers::default()), move |(at, mut openers)| {
            let (app, layout) = (app2.clone(), layout.clone());
            let (user, call) = (user.clone(), call.clone());
            async move {
                if at >= to {
                    return None;
                }
                let end = (at + PIECE).min(to);
                match render(&app, &layout, &mut openers, at, end).await {
                    Ok(piece) => Some((Ok(Bytes::from(piece)), (end, openers))),
                    // the response stops here (the player sees a broken download, never
                    // silence), and the failure is in the audit log
                    Err(e) => {
                        audit_failure(&app, &user, &call, &e).await;
                        let e = std::io::Error::other(format!("{e:#}"));
                        Some((Err(e), (to, openers)))
                    }
                }
            }
        });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&(to - from).to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if code == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {from}-{}/{len}", to - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every output byte of a range, however cut, comes from inside the source span fetched.
    #[test]
    fn a_range_cut_inside_a_frame_fetches_the_whole_source_frames() {
        for repeat in [1, 2] {
            for lo in 0..48 {
                for hi in lo + 1..64 {
                    let (src_lo, src_hi) = source_span(lo, hi, repeat);
                    for k in lo..hi {
                        let b = source_byte(k, repeat);
                        assert!(
                            (src_lo..src_hi).contains(&b),
                            "repeat {repeat} [{lo}, {hi}): byte {k} from {b}, fetched [{src_lo}, {src_hi})"
                        );
                    }
                }
            }
        }
    }
}
