//! The WAV framing of a segment's plaintext.
//!
//! A segment is encrypted as it is written, so its RIFF lengths cannot be patched at the end
//! (that would mean re-sealing chunk 0 under a used nonce). The header is written once with
//! the "unknown length" value 0xFFFFFFFF that streaming WAV writers use, and every reader in
//! callvault sets the lengths from the decrypted size: `decrypt` and `export` with
//! [`fix_lengths`], the catalogue by serving a fresh [`header`] before the samples. hound needs a seekable writer, so it is used where one exists
//! (export, tests), not here.

/// Size of the canonical PCM WAV header.
pub const HEADER_LEN: usize = 44;
/// Length placeholder used while streaming.
pub const UNKNOWN_LEN: u32 = 0xFFFF_FFFF;

/// Header of a 16-bit stereo PCM stream at `rate` Hz; `data_len` None = unknown (streaming).
pub fn header(rate: u32, data_len: Option<u32>) -> [u8; HEADER_LEN] {
    let channels: u16 = 2;
    let bits: u16 = 16;
    let block_align = channels * bits / 8;
    let byte_rate = rate * block_align as u32;
    let (riff_len, data_len) = match data_len {
        Some(d) => (d.saturating_add(36), d),
        None => (UNKNOWN_LEN, UNKNOWN_LEN),
    };
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff_len.to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&bits.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Format of a segment's plaintext, read back from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavFormat {
    pub rate: u32,
    pub channels: u16,
    pub bits: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WavError {
    #[error("decrypted segment is shorter than a WAV header ({0} bytes)")]
    Short(usize),
    #[error("decrypted segment does not start with a callvault WAV header")]
    NotWav,
}

/// Reads the format of a segment plaintext written by [`header`].
pub fn parse_header(wav: &[u8]) -> Result<WavFormat, WavError> {
    if wav.len() < HEADER_LEN {
        return Err(WavError::Short(wav.len()));
    }
    if &wav[0..4] != b"RIFF" || &wav[8..12] != b"WAVE" || &wav[36..40] != b"data" {
        return Err(WavError::NotWav);
    }
    let u16_at = |i: usize| u16::from_le_bytes([wav[i], wav[i + 1]]);
    let rate = u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]);
    Ok(WavFormat {
        rate,
        channels: u16_at(22),
        bits: u16_at(34),
    })
}

/// Rewrites the RIFF and data lengths of a complete plaintext in place (dropping an odd
/// trailing byte from the length, never from the buffer).
pub fn fix_lengths(wav: &mut [u8]) -> Result<WavFormat, WavError> {
    let fmt = parse_header(wav)?;
    let data = (wav.len() - HEADER_LEN) as u64;
    let frame = (fmt.channels as u64 * fmt.bits as u64 / 8).max(1);
    let data = (data - data % frame).min(u32::MAX as u64 - 36) as u32;
    wav[4..8].copy_from_slice(&(data + 36).to_le_bytes());
    wav[40..44].copy_from_slice(&data.to_le_bytes());
    Ok(fmt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_header_is_fixed_into_a_wav_hound_reads() {
        let mut bytes = header(8000, None).to_vec();
        for i in 0..100i16 {
            bytes.extend_from_slice(&i.to_le_bytes());
            bytes.extend_from_slice(&(-i).to_le_bytes());
        }
        let fmt = fix_lengths(&mut bytes).unwrap();
        assert_eq!(
            fmt,
            WavFormat {
                rate: 8000,
                channels: 2,
                bits: 16
            }
        );
        let mut r = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(r.spec().channels, 2);
        assert_eq!(r.spec().sample_rate, 8000);
        let s: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(s.len(), 200);
        assert_eq!(s[2..4], [1, -1]);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_header(b"RIFF"), Err(WavError::Short(4)));
        assert_eq!(parse_header(&[0u8; 44]), Err(WavError::NotWav));
    }
}
