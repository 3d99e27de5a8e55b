//! Opening recordings with the catalogue's private key: one segment (`decrypt`) or a whole
//! call (`export`), to an ordinary WAV file.
//!
//! This is the only code on the agent side that ever holds decrypted audio outside memory, and
//! only because a person holding the private key asked for it. It verifies every chunk; a
//! tampered, truncated or foreign file is an error, never silently shortened audio — except
//! that a `.partial` segment (left by a crash) is opened up to its last authentic chunk, and
//! says so.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::record::CallRecord;
use crate::segment::wav;
use crate::vault::{CataloguePrivateKey, SegmentOpener};

/// A decrypted segment.
pub struct OpenedSegment {
    /// WAV bytes with correct lengths.
    pub wav: Vec<u8>,
    pub format: wav::WavFormat,
    /// False for a `.partial` file recovered up to its last authentic chunk.
    pub complete: bool,
}

impl OpenedSegment {
    /// Interleaved samples after the header.
    pub fn samples(&self) -> Vec<i16> {
        self.wav[wav::HEADER_LEN..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }
}

/// Decrypts one segment file. A `.partial` file is recovered (complete = false).
pub fn open_segment(path: &Path, key: &CataloguePrivateKey) -> anyhow::Result<OpenedSegment> {
    let partial = path.extension().is_some_and(|e| e == "partial");
    open_segment_as(path, key, partial)
}

/// Decrypts one segment file; with `recovered` (a `.partial` file, or a segment the agent
/// closed after a crash, `complete: false` in its call's metadata) up to its last authentic
/// chunk.
pub fn open_segment_as(
    path: &Path,
    key: &CataloguePrivateKey,
    recovered: bool,
) -> anyhow::Result<OpenedSegment> {
    let data = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (mut plain, complete) = if recovered {
        let (_, plain, complete) =
            SegmentOpener::recover(&data, key).with_context(|| format!("{}", path.display()))?;
        (plain, complete)
    } else {
        let (_, plain) = SegmentOpener::decrypt_file(&data, key)
            .with_context(|| format!("{}", path.display()))?;
        (plain, true)
    };
    let format = wav::fix_lengths(&mut plain).with_context(|| format!("{}", path.display()))?;
    Ok(OpenedSegment {
        wav: plain,
        format,
        complete,
    })
}

/// Reads a call's metadata document.
pub fn read_call(path: &Path) -> anyhow::Result<CallRecord> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a callvault call document", path.display()))
}

/// The spool directory a call document lives in (`SPOOL/calls/<id>.json`).
fn spool_of(call_json: &Path) -> PathBuf {
    call_json
        .parent()
        .and_then(Path::parent)
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A whole call as one stereo timeline: segments in order, placed by their offsets, at the
/// highest sample rate among them (8 kHz segments are doubled when a 16 kHz one exists).
pub struct ExportedCall {
    pub rate: u32,
    /// Interleaved stereo samples.
    pub samples: Vec<i16>,
    pub record: CallRecord,
}

pub fn export_call(call_json: &Path, key: &CataloguePrivateKey) -> anyhow::Result<ExportedCall> {
    let record = read_call(call_json)?;
    let spool = spool_of(call_json);
    let mut segs = record.segments.clone();
    segs.sort_by_key(|s| s.seq);
    let rate = segs.iter().map(|s| s.sample_rate).max().unwrap_or(8000);
    let mut samples: Vec<i16> = Vec::new();
    for seg in &segs {
        let path = spool.join(&seg.file);
        let opened = open_segment_as(&path, key, !seg.complete)?;
        let got = crate::spool::sha256_file_hex(&path)?;
        if got != seg.sha256 {
            bail!(
                "{}: SHA-256 differs from the call document ({got} != {})",
                path.display(),
                seg.sha256
            );
        }
        if opened.format.channels != 2 || opened.format.bits != 16 {
            bail!("{}: unexpected format {:?}", path.display(), opened.format);
        }
        let repeat = (rate / opened.format.rate.max(1)).max(1) as usize;
        let start = (seg.offset_ms * rate as u64 / 1000) as usize * 2;
        if samples.len() < start {
            samples.resize(start, 0);
        }
        for frame in opened.samples().chunks_exact(2) {
            for _ in 0..repeat {
                samples.extend_from_slice(frame);
            }
        }
    }
    Ok(ExportedCall {
        rate,
        samples,
        record,
    })
}

/// Writes interleaved stereo samples as a WAV file (hound: the file is seekable here).
pub fn write_wav(path: &Path, rate: u32, samples: &[i16]) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)
        .with_context(|| format!("cannot create {}", path.display()))?;
    for &s in samples {
        w.write_sample(s)?;
    }
    w.finalize()?;
    Ok(())
}
