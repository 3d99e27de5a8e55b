//! G.722 wideband audio (ITU-T G.722, 64 kbit/s mode): sub-band ADPCM with the 24-tap QMF.
//!
//! Owns the codec state of one direction of one leg: the two sub-band ADPCM predictors and the
//! quadrature mirror filter histories. The decoder receives RTP payload bytes (payload type 9,
//! one byte per 125 µs carrying a 6-bit lower-band and a 2-bit upper-band code) and emits 16 kHz
//! linear PCM, two samples per byte. The encoder (for the capture generator and tests) does the
//! reverse. Both are bit-exact with SpanDSP 0.0.6 (16-bit linear, 64 kbit/s, unpacked), checked
//! offline on the corpus G.722 stream (decode, and re-encode of its audio), on 5 s of synthetic
//! sweep, noise and full-scale input, and on 200 kB of random code bytes. The one deliberate
//! difference: the receive QMF output saturates to 16 bits where SpanDSP wraps around (reachable
//! only with near-full-scale signals, where wrapping is audible as clicks).
//!
//! Must never allocate, panic or overflow on any byte sequence: every code word is valid G.722
//! (the codec has no framing to reject), so the only defence needed is bounded arithmetic.
//! State is fixed-size and `Clone`, so a leg can snapshot it cheaply.

/// QMF taps h(0..23) are symmetric; these are h(0), h(2), .., h(22) (the even phase). The odd
/// phase h(1), h(3), .., h(23) is the same list reversed.
const QMF_EVEN: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

/// Lower-band 6-bit quantizer decision levels (scaled by the step size, Q12).
const Q6: [i32; 31] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0,
];
/// Lower-band code for a negative / positive difference in decision interval `mil`.
const ILN: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];
const ILP: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];
/// Lower-band 6-bit inverse quantizer: what the listener hears. Codes 0..=3 are never produced
/// by an encoder; the standard maps them to the smallest negative level.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Lower-band 4-bit inverse quantizer: drives the predictor, so that the 48 and 56 kbit/s modes
/// (which drop low bits) stay in step with the encoder.
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// Lower-band 4-bit code → magnitude class for the log step-size multiplier.
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];

/// Upper-band 2-bit inverse quantizer and its log step-size multiplier classes.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const RH2: [usize; 4] = [2, 1, 2, 1];
const WH: [i32; 3] = [0, -214, 798];
/// Upper-band decision level (Q12) and codes for negative / positive differences.
const Q2_DECISION: i32 = 564;
const IHN: [u8; 3] = [0, 1, 0];
const IHP: [u8; 3] = [0, 3, 2];

/// Mantissa of the log-to-linear step-size conversion, 2^(k/32) in Q11.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

/// Reconstructed sub-band signals are limited to 15 bits.
const RECON_MIN: i32 = -16384;
const RECON_MAX: i32 = 16383;

#[inline(always)]
fn sat16(x: i32) -> i32 {
    x.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// 16-bit fractional multiply (Q15), as the standard's `mult`: truncates toward minus infinity.
/// Both operands are kept within 16 bits, so the product cannot overflow i32.
#[inline(always)]
fn mul_q15(a: i32, b: i32) -> i32 {
    (a * b) >> 15
}

/// One sub-band's adaptive predictor (2 poles, 6 zeros) and log step size.
#[derive(Clone, Debug)]
struct Band {
    /// Signal estimate s = sp + sz for the next sample.
    s: i32,
    /// Pole and zero sections of the estimate.
    sp: i32,
    sz: i32,
    /// Reconstructed signal r(n-1), r(n-2).
    r: [i32; 2],
    /// Pole coefficients a1, a2.
    a: [i32; 2],
    /// Partially reconstructed signal p(n-1), p(n-2).
    p: [i32; 2],
    /// Zero coefficients b1..b6 and quantized differences d(n-1)..d(n-6).
    b: [i32; 6],
    d: [i32; 6],
    /// Log step size and the linear step size derived from it.
    nb: i32,
    det: i32,
}

impl Band {
    const fn new(det: i32) -> Self {
        Band {
            s: 0,
            sp: 0,
            sz: 0,
            r: [0; 2],
            a: [0; 2],
            p: [0; 2],
            b: [0; 6],
            d: [0; 6],
            nb: 0,
            det,
        }
    }

    /// Log-domain step-size update (LOGSCL/LOGSCH) then conversion to linear (SCALEL/SCALEH).
    /// `shift` is 8 for the lower band and 10 for the upper; `nb_max` bounds the log step so the
    /// linear one stays within 16 bits.
    #[inline(always)]
    fn adapt_step(&mut self, w: i32, nb_max: i32, shift: i32) {
        self.nb = (mul_q15(self.nb, 32512) + w).clamp(0, nb_max);
        let mantissa = ILB[((self.nb >> 6) & 31) as usize];
        let exp = shift - (self.nb >> 11);
        // nb ≤ nb_max keeps exp ≥ -1, so the left shift is at most one bit.
        let lin = if exp < 0 {
            mantissa << -exp
        } else {
            mantissa >> exp
        };
        self.det = lin << 2;
    }

    /// Predictor adaptation from the quantized difference `d` (blocks RECONS, PARREC, UPPOL2,
    /// UPPOL1, UPZERO, DELAYA, FILTEP, FILTEZ, PREDIC), yielding the next estimate in `self.s`.
    #[inline(always)]
    fn adapt_predictor(&mut self, d: i32) {
        let r0 = sat16(self.s + d);
        let p0 = sat16(self.sz + d);

        // Sign comparisons treat zero as positive, as the standard's sign-bit tests do.
        let sg0 = p0 < 0;
        let sg1 = self.p[0] < 0;
        let sg2 = self.p[1] < 0;

        // The standard negates with saturation, so -(-32768) is 32767; SpanDSP agrees bit for bit.
        let a1x4 = sat16(self.a[0] << 2);
        let wd2 = (if sg0 == sg1 { sat16(-a1x4) } else { a1x4 }) >> 7;
        let wd3 = if sg0 == sg2 { 128 } else { -128 };
        let a2 = (wd2 + wd3 + mul_q15(self.a[1], 32512)).clamp(-12288, 12288);

        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let a1_limit = 15360 - a2;
        let a1 = sat16(wd1 + mul_q15(self.a[0], 32640)).clamp(-a1_limit, a1_limit);

        let step = if d == 0 { 0 } else { 128 };
        let dneg = d < 0;
        for (b, &dk) in self.b.iter_mut().zip(&self.d) {
            let inc = if (dk < 0) == dneg { step } else { -step };
            *b = sat16(inc + mul_q15(*b, 32640));
        }

        self.d.copy_within(0..5, 1);
        self.d[0] = d;
        self.r = [r0, self.r[0]];
        self.p = [p0, self.p[0]];
        self.a = [a1, a2];

        let t1 = mul_q15(a1, sat16(self.r[0] << 1));
        let t2 = mul_q15(a2, sat16(self.r[1] << 1));
        self.sp = sat16(t1 + t2);

        let mut sz = 0;
        for (&b, &dk) in self.b.iter().zip(&self.d).rev() {
            sz = sat16(sz + mul_q15(b, sat16(dk << 1)));
        }
        self.sz = sz;
        self.s = sat16(self.sp + self.sz);
    }

    /// Lower-band update shared by encoder and decoder, from the 6-bit code.
    #[inline(always)]
    fn update_low(&mut self, code6: usize) {
        let code4 = (code6 >> 2) & 15;
        let dlt = mul_q15(self.det, QM4[code4]);
        self.adapt_step(WL[RL42[code4]], 18432, 8);
        self.adapt_predictor(dlt);
    }

    /// Upper-band update shared by encoder and decoder; returns the quantized difference.
    #[inline(always)]
    fn update_high(&mut self, code2: usize) -> i32 {
        let dh = mul_q15(self.det, QM2[code2 & 3]);
        self.adapt_step(WH[RH2[code2 & 3]], 22528, 10);
        self.adapt_predictor(dh);
        dh
    }
}

/// Initial linear step sizes of the lower and upper band.
const DETL_INIT: i32 = 32;
const DETH_INIT: i32 = 8;

/// Decoder for one G.722 stream (64 kbit/s mode).
#[derive(Clone, Debug)]
pub struct G722Decoder {
    low: Band,
    high: Band,
    /// Receive QMF history: sums rl+rh and differences rl-rh, newest first.
    qmf_sum: [i32; 12],
    qmf_diff: [i32; 12],
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    pub fn new() -> Self {
        G722Decoder {
            low: Band::new(DETL_INIT),
            high: Band::new(DETH_INIT),
            qmf_sum: [0; 12],
            qmf_diff: [0; 12],
        }
    }

    /// Returns to the initial state, as at the start of a stream (e.g. after an SSRC change).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Decodes G.722 bytes (64 kbit/s mode); writes 2 samples per input byte (16 kHz) into `out`;
    /// returns samples written (min(2*input.len(), out.len() rounded down to even)).
    pub fn decode(&mut self, input: &[u8], out: &mut [i16]) -> usize {
        let mut written = 0;
        for (&code, pair) in input.iter().zip(out.chunks_exact_mut(2)) {
            let [first, second] = self.decode_byte(code);
            pair[0] = first;
            pair[1] = second;
            written += 2;
        }
        written
    }

    #[inline(always)]
    fn decode_byte(&mut self, code: u8) -> [i16; 2] {
        let il = (code & 0x3f) as usize;
        let ih = (code >> 6) as usize;

        let dl6 = mul_q15(self.low.det, QM6[il]);
        let rl = (self.low.s + dl6).clamp(RECON_MIN, RECON_MAX);
        self.low.update_low(il);

        let sh = self.high.s;
        let dh = self.high.update_high(ih);
        let rh = (sh + dh).clamp(RECON_MIN, RECON_MAX);

        self.qmf_sum.copy_within(0..11, 1);
        self.qmf_diff.copy_within(0..11, 1);
        self.qmf_sum[0] = rl + rh;
        self.qmf_diff[0] = rl - rh;

        // The first output sample comes from the odd-phase taps over the differences, the
        // second from the even-phase taps over the sums. Σ|h| per phase × 32768 < 2^31.
        let mut first = 0i32;
        let mut second = 0i32;
        for i in 0..12 {
            first += QMF_EVEN[i] * self.qmf_diff[i];
            second += QMF_EVEN[11 - i] * self.qmf_sum[i];
        }
        [sat16(first >> 11) as i16, sat16(second >> 11) as i16]
    }
}

/// Encoder for one G.722 stream (64 kbit/s mode).
#[derive(Clone, Debug)]
pub struct G722Encoder {
    low: Band,
    high: Band,
    /// Transmit QMF history: input samples, newest first.
    qmf_in: [i32; 24],
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    pub fn new() -> Self {
        G722Encoder {
            low: Band::new(DETL_INIT),
            high: Band::new(DETH_INIT),
            qmf_in: [0; 24],
        }
    }

    /// Encodes 16 kHz samples (pairs); returns bytes written (input.len()/2, bounded by out.len()).
    pub fn encode(&mut self, input: &[i16], out: &mut [u8]) -> usize {
        let mut written = 0;
        for (pair, code) in input.chunks_exact(2).zip(out.iter_mut()) {
            *code = self.encode_pair(pair[0], pair[1]);
            written += 1;
        }
        written
    }

    #[inline(always)]
    fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        self.qmf_in.copy_within(0..22, 2);
        self.qmf_in[1] = i32::from(first);
        self.qmf_in[0] = i32::from(second);

        let mut even = 0i32;
        let mut odd = 0i32;
        for i in 0..12 {
            even += QMF_EVEN[i] * self.qmf_in[2 * i];
            odd += QMF_EVEN[11 - i] * self.qmf_in[2 * i + 1];
        }
        let xl = (even + odd) >> 14;
        let xh = (even - odd) >> 14;

        let il = self.quantize_low(sat16(xl - self.low.s));
        self.low.update_low(il as usize);

        let ih = self.quantize_high(sat16(xh - self.high.s));
        self.high.update_high(ih as usize);

        (ih << 6) | il
    }

    /// QUANTL: magnitude is the ones' complement for negatives, as in the standard.
    #[inline(always)]
    fn quantize_low(&self, el: i32) -> u8 {
        let mag = if el >= 0 { el } else { -(el + 1) };
        let mut mil = 1;
        while mil < 30 && mag >= (Q6[mil] * self.low.det) >> 12 {
            mil += 1;
        }
        if el < 0 { ILN[mil] } else { ILP[mil] }
    }

    #[inline(always)]
    fn quantize_high(&self, eh: i32) -> u8 {
        let mag = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if mag >= (Q2_DECISION * self.high.det) >> 12 {
            2
        } else {
            1
        };
        if eh < 0 { IHN[mih] } else { IHP[mih] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's corpus capture (this crate sits two folders below the root).
    fn corpus_g722() -> std::path::PathBuf {
        let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = crate_dir.ancestors().nth(2).expect("the repository root");
        root.join("tests/corpus/pcaps/Red-Rabbit__examples_pcap_sip-rtp-g722.pcap")
    }

    fn le_i16(bytes: &[u8]) -> Vec<i16> {
        bytes
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    fn rd_u32(b: &[u8], at: usize, little: bool) -> Option<u32> {
        let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        })
    }

    /// Classic pcap, Ethernet/IPv4/UDP/RTP: returns the payloads of RTP packets with `pt`.
    fn rtp_payloads(file: &[u8], pt: u8) -> Vec<Vec<u8>> {
        let little = match file.get(0..4) {
            Some([0xd4, 0xc3, 0xb2, 0xa1]) => true,
            Some([0xa1, 0xb2, 0xc3, 0xd4]) => false,
            other => panic!("not a classic pcap: {other:?}"),
        };
        let mut payloads = Vec::new();
        let mut at = 24;
        while let Some(incl) = rd_u32(file, at + 8, little) {
            let start = at + 16;
            let end = start + incl as usize;
            let Some(frame) = file.get(start..end) else {
                break;
            };
            at = end;
            if frame.get(12..14) != Some(&[0x08, 0x00]) {
                continue;
            }
            let Some(ip) = frame.get(14..) else { continue };
            let ihl = usize::from(ip.first().map_or(0, |b| b & 0x0f)) * 4;
            if ip.get(9) != Some(&17) || ihl < 20 {
                continue;
            }
            let Some(rtp) = ip.get(ihl + 8..) else {
                continue;
            };
            let (Some(&b0), Some(&b1)) = (rtp.first(), rtp.get(1)) else {
                continue;
            };
            // Version 2, no CSRCs, no extension: the header is the fixed 12 bytes.
            if b0 >> 6 != 2 || b0 & 0x1f != 0 || b1 & 0x7f != pt {
                continue;
            }
            if let Some(payload) = rtp.get(12..) {
                payloads.push(payload.to_vec());
            }
        }
        payloads
    }

    fn sine(freq: f64, amplitude: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * n as f64 / 16000.0).sin()) as i16
            })
            .collect()
    }

    /// Encodes and decodes `pcm`, aligns the output by the best lag in 0..64 and returns
    /// (lag, SNR in dB) over the part after the ADPCM adaptation settles.
    fn round_trip_snr(pcm: &[i16]) -> (usize, f64) {
        let mut coded = vec![0u8; pcm.len() / 2];
        assert_eq!(G722Encoder::new().encode(pcm, &mut coded), pcm.len() / 2);
        let mut decoded = vec![0i16; pcm.len()];
        assert_eq!(G722Decoder::new().decode(&coded, &mut decoded), pcm.len());

        let settle = 1600;
        let span = pcm.len() - settle - 64;
        let xcorr = |lag: usize| -> f64 {
            (settle..settle + span)
                .map(|n| f64::from(pcm[n]) * f64::from(decoded[n + lag]))
                .sum()
        };
        let lag = (0..64)
            .max_by(|&a, &b| xcorr(a).total_cmp(&xcorr(b)))
            .unwrap_or(0);
        let (mut signal, mut noise) = (0.0, 0.0);
        for n in settle..settle + span {
            let x = f64::from(pcm[n]);
            let e = x - f64::from(decoded[n + lag]);
            signal += x * x;
            noise += e * e;
        }
        (lag, 10.0 * (signal / noise.max(1e-9)).log10())
    }

    #[test]
    fn round_trip_lower_band_tone_keeps_snr_above_20_db() {
        let (lag, snr) = round_trip_snr(&sine(1000.0, 8000.0, 16000));
        eprintln!("1 kHz round trip: lag {lag} samples, SNR {snr:.1} dB");
        assert!(snr > 20.0, "1 kHz SNR {snr:.1} dB at lag {lag}");
    }

    #[test]
    fn round_trip_upper_band_tone_keeps_snr_above_20_db() {
        let (lag, snr) = round_trip_snr(&sine(5500.0, 8000.0, 16000));
        eprintln!("5.5 kHz round trip: lag {lag} samples, SNR {snr:.1} dB");
        assert!(snr > 20.0, "5.5 kHz SNR {snr:.1} dB at lag {lag}");
    }

    #[test]
    fn round_trip_of_a_sweep_has_the_qmf_delay() {
        // A tone's best lag is ambiguous by whole periods; a sweep pins the codec delay, which
        // for the two 24-tap QMFs is 22 samples (1.375 ms).
        let pcm: Vec<i16> = (0..32000)
            .map(|n| {
                let t = n as f64 / 16000.0;
                let phase = 2.0 * std::f64::consts::PI * (200.0 * t + 1700.0 * t * t);
                (8000.0 * phase.sin()) as i16
            })
            .collect();
        let (lag, snr) = round_trip_snr(&pcm);
        eprintln!("200 Hz..7 kHz sweep round trip: lag {lag} samples, SNR {snr:.1} dB");
        assert_eq!(lag, 22);
        assert!(snr > 15.0, "sweep SNR {snr:.1} dB");
    }

    #[test]
    fn decoder_is_bit_exact_with_spandsp_on_corpus_prefix() {
        let input = include_bytes!("g722_input.bin");
        let reference = le_i16(include_bytes!("g722_reference.bin"));
        assert_eq!(reference.len(), 2 * input.len());
        let mut out = vec![0i16; reference.len()];
        assert_eq!(G722Decoder::new().decode(input, &mut out), reference.len());
        let first_diff = out.iter().zip(&reference).position(|(a, b)| a != b);
        assert_eq!(
            first_diff, None,
            "diverges from SpanDSP at sample {first_diff:?}"
        );
    }

    #[test]
    fn decodes_real_capture_to_plausible_audio() {
        let file = std::fs::read(corpus_g722()).expect("corpus pcap");
        let payloads = rtp_payloads(&file, 9);
        assert_eq!(payloads.len(), 425);
        assert!(payloads.iter().all(|p| p.len() == 160));

        let mut dec = G722Decoder::new();
        let mut pcm = Vec::with_capacity(425 * 320);
        let mut frame = [0i16; 320];
        for payload in &payloads {
            assert_eq!(dec.decode(payload, &mut frame), 320);
            pcm.extend_from_slice(&frame);
        }
        assert_eq!(pcm.len(), 425 * 320);
        let rms =
            (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt();
        let clipped = pcm
            .iter()
            .filter(|&&s| s == i16::MAX || s <= -i16::MAX)
            .count();
        eprintln!(
            "corpus G.722: RMS {rms:.0}, clipped {clipped} of {}",
            pcm.len()
        );
        assert!(pcm.iter().any(|&s| s != 0));
        assert!((100.0..12000.0).contains(&rms), "RMS {rms}");
        assert!(clipped * 1000 < pcm.len(), "{clipped} clipped samples");

        // The bit-exact fixture is this stream's prefix, so the fixture stays tied to the capture.
        assert_eq!(
            payloads.concat().get(..1000),
            Some(&include_bytes!("g722_input.bin")[..])
        );
    }

    /// Bounds the adaptive state must keep whatever the input, as the standard's limiters do.
    fn assert_band_in_bounds(band: &Band, nb_max: i32) {
        assert!((0..=nb_max).contains(&band.nb), "nb {}", band.nb);
        assert!((0..=32767).contains(&band.det), "det {}", band.det);
        assert!((-12288..=12288).contains(&band.a[1]), "a2 {}", band.a[1]);
        assert!(
            band.a[0].abs() <= 15360 - band.a[1],
            "a1 {} a2 {}",
            band.a[0],
            band.a[1]
        );
        for v in [band.s, band.sp, band.sz]
            .iter()
            .chain(&band.b)
            .chain(&band.d)
            .chain(&band.r)
        {
            assert!((-32768..=32767).contains(v), "state value {v}");
        }
    }

    #[test]
    fn garbage_codes_never_panic_and_state_stays_bounded() {
        // Debug test builds check arithmetic overflow, so reaching the end proves none happens.
        let mut dec = G722Decoder::new();
        let mut out = [0i16; 512];
        let every_code: Vec<u8> = (0..=255u8).collect();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = [0u8; 256];
        for round in 0..400 {
            let input: &[u8] = if round % 4 == 0 {
                &every_code
            } else if round % 4 == 1 {
                // Largest-magnitude codes of one sign drive the predictor and step size to limits.
                &[0x04; 256]
            } else {
                for b in noise.iter_mut() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    *b = (rng >> 24) as u8;
                }
                &noise
            };
            assert_eq!(dec.decode(input, &mut out), 512);
            assert_band_in_bounds(&dec.low, 18432);
            assert_band_in_bounds(&dec.high, 22528);
            assert!(
                dec.qmf_sum
                    .iter()
                    .chain(&dec.qmf_diff)
                    .all(|v| v.abs() <= 32768)
            );
        }

        // A garbage-laden decoder, once reset, decodes a real stream exactly as a fresh one.
        dec.reset();
        let input = include_bytes!("g722_input.bin");
        let mut after_reset = vec![0i16; 2 * input.len()];
        dec.decode(input, &mut after_reset);
        assert_eq!(after_reset, le_i16(include_bytes!("g722_reference.bin")));
    }

    #[test]
    fn encoder_survives_full_scale_input() {
        let mut enc = G722Encoder::new();
        let mut out = [0u8; 128];
        let mut pcm = [0i16; 256];
        for round in 0..200i32 {
            for (n, s) in pcm.iter_mut().enumerate() {
                *s = match round % 3 {
                    0 => {
                        if n % 2 == 0 {
                            i16::MIN
                        } else {
                            i16::MAX
                        }
                    }
                    1 => i16::MIN,
                    _ => {
                        if (n / 3) % 2 == 0 {
                            i16::MAX
                        } else {
                            i16::MIN
                        }
                    }
                };
            }
            assert_eq!(enc.encode(&pcm, &mut out), 128);
            assert_band_in_bounds(&enc.low, 18432);
            assert_band_in_bounds(&enc.high, 22528);
        }
    }

    #[test]
    fn lengths_follow_the_shorter_buffer() {
        let mut dec = G722Decoder::new();
        let mut out = [0i16; 7];
        assert_eq!(
            dec.decode(&[0xff; 10], &mut out),
            6,
            "odd output rounds down to pairs"
        );
        assert_eq!(dec.decode(&[0xff; 2], &mut out), 4);
        assert_eq!(dec.decode(&[], &mut out), 0);

        let mut enc = G722Encoder::new();
        let mut bytes = [0u8; 3];
        assert_eq!(enc.encode(&[0; 9], &mut bytes), 3, "bounded by output");
        assert_eq!(
            enc.encode(&[0; 5], &mut bytes),
            2,
            "odd trailing sample ignored"
        );
        assert_eq!(enc.encode(&[], &mut bytes), 0);
    }

    #[test]
    fn decoding_in_pieces_matches_decoding_at_once() {
        let input = include_bytes!("g722_input.bin");
        let mut whole = vec![0i16; 2 * input.len()];
        G722Decoder::new().decode(input, &mut whole);
        let mut dec = G722Decoder::new();
        let mut pieces = Vec::new();
        for chunk in input.chunks(37) {
            let mut out = [0i16; 74];
            let n = dec.decode(chunk, &mut out);
            pieces.extend_from_slice(&out[..n]);
        }
        assert_eq!(pieces, whole);
    }
}
