//! G.711 µ-law (PCMU) and A-law (PCMA), ITU-T G.711.
//!
//! Decoding is a 256-entry table lookup built at compile time: one load per sample on the hot
//! path. The encoders exist for the capture generator and tests (callvault never encodes audio
//! it records).

/// Expands one µ-law byte to 16-bit linear PCM.
pub const fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Expands one A-law byte to 16-bit linear PCM.
pub const fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let sign = a & 0x80;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if sign != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_to_linear(i as u8)
        } else {
            ulaw_to_linear(i as u8)
        };
        i += 1;
    }
    table
}

/// µ-law byte → linear sample.
pub static ULAW_TABLE: [i16; 256] = build_table(false);
/// A-law byte → linear sample.
pub static ALAW_TABLE: [i16; 256] = build_table(true);

/// Decodes µ-law bytes into `out` (which must be at least as long as `input`).
#[inline]
pub fn decode_ulaw(input: &[u8], out: &mut [i16]) {
    for (o, &b) in out.iter_mut().zip(input) {
        *o = ULAW_TABLE[b as usize];
    }
}

/// Decodes A-law bytes into `out` (which must be at least as long as `input`).
#[inline]
pub fn decode_alaw(input: &[u8], out: &mut [i16]) {
    for (o, &b) in out.iter_mut().zip(input) {
        *o = ALAW_TABLE[b as usize];
    }
}

/// Compresses one linear sample to µ-law (for generators and tests).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut pcm = sample as i32;
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(CLIP) + BIAS;
    let exponent = (31 - (pcm as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (pcm >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 as i32 | mantissa) as u8
}

/// Compresses one linear sample to A-law (for generators and tests).
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = sample as i32;
    let sign = if pcm >= 0 {
        0x80
    } else {
        pcm = -pcm - 1;
        0
    };
    pcm = pcm.min(32767);
    let byte = if pcm < 256 {
        (pcm >> 4) as u8
    } else {
        let exponent = (31 - (pcm as u32).leading_zeros() as i32 - 7).clamp(1, 7);
        let mantissa = (pcm >> (exponent + 3)) & 0x0f;
        ((exponent << 4) | mantissa) as u8
    };
    (byte | sign) ^ 0x55
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
    }

    #[test]
    fn every_code_round_trips() {
        for b in 0..=255u8 {
            let lin = ULAW_TABLE[b as usize];
            // 0x7f and 0xff both mean zero; the encoder picks 0xff.
            if lin != 0 {
                assert_eq!(linear_to_ulaw(lin), b, "ulaw {b:#x}");
            }
            assert_eq!(linear_to_alaw(ALAW_TABLE[b as usize]), b, "alaw {b:#x}");
        }
    }

    #[test]
    fn encoding_error_is_small() {
        for s in (-32768i32..32768).step_by(7) {
            let s = s as i16;
            let u = ulaw_to_linear(linear_to_ulaw(s)) as i32;
            let a = alaw_to_linear(linear_to_alaw(s)) as i32;
            let tol = (s as i32).abs() / 16 + 16;
            assert!((u - s as i32).abs() <= tol.max(132), "ulaw {s} -> {u}");
            assert!((a - s as i32).abs() <= tol.max(132), "alaw {s} -> {a}");
        }
    }
}
