//! Source signals at 8 kHz and the generator's deterministic randomness.
//!
//! Owns: the sample-by-sample definition of every [`Signal`] (tone, band-limited noise,
//! speech-like syllables, UK ringback, silence) and the counter-based PRNG every other synth
//! decision is drawn from. Receives a signal and a sample index; emits 16-bit linear samples.
//! Every sample is a pure function of (signal, index), so the test side can recompute the
//! exact audio that the capture carries without replaying the capture, and a stream can be
//! synthesised from any point (holds and SSRC changes skip ahead). Must never read the clock,
//! the OS RNG or any global mutable state.

use std::sync::OnceLock;

use super::scenario::Signal;

/// Sample rate of every signal (the G.711 clock).
pub const SAMPLE_RATE: u32 = 8000;

/// SplitMix64's output function: a bijective 64-bit mixer. Used as a counter-based hash so a
/// decision for "stream s, packet n" can be recomputed without replaying the decisions before it.
#[inline]
pub const fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of two words; order matters.
#[inline]
pub const fn hash2(a: u64, b: u64) -> u64 {
    mix64(mix64(a) ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

/// SplitMix64: small, fast, deterministic, good enough statistically for traffic synthesis.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n); 0 when n is 0.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `p` (clamped to [0, 1]; NaN counts as 0).
    #[inline]
    pub fn chance(&mut self, p: f32) -> bool {
        p > 0.0 && self.unit() < p as f64
    }
}

const SINE_BITS: u32 = 12;
const SINE_LEN: usize = 1 << SINE_BITS;

/// One period of sin(), indexed by the top bits of a 32-bit phase. A table (not `f32::sin`)
/// keeps synthesis near 1 ns/sample, which the "millions of frames per second" budget needs.
fn sine_table() -> &'static [f32; SINE_LEN] {
    static TABLE: OnceLock<Box<[f32; SINE_LEN]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([0f32; SINE_LEN]);
        for (i, v) in t.iter_mut().enumerate() {
            *v = (i as f64 * std::f64::consts::TAU / SINE_LEN as f64).sin() as f32;
        }
        t
    })
}

#[inline]
fn sine_at(table: &[f32; SINE_LEN], phase: u32) -> f32 {
    table[(phase >> (32 - SINE_BITS)) as usize]
}

/// Phase increment per 8 kHz sample for `hz`, in units of 2^-32 turn.
fn phase_step(hz: f32) -> u32 {
    let turns = (hz as f64 / SAMPLE_RATE as f64).rem_euclid(1.0);
    (turns * 4_294_967_296.0) as u64 as u32
}

#[inline]
fn clip(x: f32) -> i16 {
    x.clamp(-32768.0, 32767.0) as i16
}

/// murmur3's 32-bit finaliser. 32-bit multiplies vectorise (8 lanes with AVX2) where the
/// 64-bit mixer does not: noise synthesis went from ~3.6 to well under 1 ns/sample.
#[inline]
const fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// White noise sample n for key `k`, uniform over i16. The key is XORed in (not added:
/// adding would make every seed a time-shift of one sequence). The index wraps at 2^32
/// samples (6.2 days at 8 kHz).
#[inline]
fn white(k: u32, n: u32) -> i32 {
    (fmix32(n.wrapping_mul(0x9E37_79B1) ^ k) >> 16) as i16 as i32
}

/// Samples per noise block: white noise is drawn into a stack array first so both loops
/// vectorise.
const NOISE_BLOCK: usize = 256;

fn noise(seed: u64, amplitude: i16, start: u64, out: &mut [i16]) {
    let k = mix64(seed) as u32;
    let amp = amplitude as i32;
    let mut w = [0i32; NOISE_BLOCK + 2];
    let mut done = 0usize;
    for chunk in out.chunks_mut(NOISE_BLOCK) {
        // y[n] = (w[n] - w[n-2]) / 2: zeros at DC and 4 kHz, -3 dB band 1-3 kHz, so the
        // noise survives G.711 and telephone filtering and correlates sharply.
        let first = (start.wrapping_add(done as u64) as u32).wrapping_sub(2);
        for (i, v) in w[..chunk.len() + 2].iter_mut().enumerate() {
            *v = white(k, first.wrapping_add(i as u32));
        }
        for (i, o) in chunk.iter_mut().enumerate() {
            // |w0 - w2| < 2^16 and |amp| <= 2^15, so the product fits i32 and the result
            // fits i16 after the shift.
            *o = (((w[i + 2] - w[i]) * amp) >> 16) as i16;
        }
        done += chunk.len();
    }
}

/// Speech-like cell length: one syllable or pause per 200 ms cell.
const SYLLABLE_CELL: u64 = 1600;

/// Relative amplitudes of the harmonics of a voiced syllable (a falling spectrum, roughly
/// what a vowel looks like through a telephone band-pass).
const HARMONICS: [f32; 6] = [1.0, 0.7, 0.5, 0.35, 0.25, 0.15];

/// UK ringback (BT SIN 350): 400 Hz + 450 Hz, 0.4 s on, 0.2 s off, 0.4 s on, 2.0 s off.
fn ringback_on(n: u64) -> bool {
    let p = n % 24_000;
    p < 3_200 || (4_800..8_000).contains(&p)
}

impl Signal {
    /// Writes samples `start_sample .. start_sample + out.len()` of this signal at 8 kHz.
    pub fn samples(&self, start_sample: u64, out: &mut [i16]) {
        match *self {
            Signal::Silence => out.fill(0),
            Signal::Tone { hz, amplitude } => {
                let table = sine_table();
                let step = phase_step(hz);
                let amp = amplitude as f32;
                let mut phase = (start_sample as u32).wrapping_mul(step);
                for o in out.iter_mut() {
                    *o = clip(amp * sine_at(table, phase));
                    phase = phase.wrapping_add(step);
                }
            }
            Signal::Noise { seed, amplitude } => noise(seed, amplitude, start_sample, out),
            Signal::Speechlike { seed } => speechlike(seed, start_sample, out),
            Signal::Ringback => {
                let table = sine_table();
                let (s1, s2) = (phase_step(400.0), phase_step(450.0));
                for (i, o) in out.iter_mut().enumerate() {
                    let n = start_sample.wrapping_add(i as u64);
                    *o = if ringback_on(n) {
                        let a = sine_at(table, (n as u32).wrapping_mul(s1));
                        let b = sine_at(table, (n as u32).wrapping_mul(s2));
                        clip(2500.0 * (a + b))
                    } else {
                        0
                    };
                }
            }
        }
    }

    /// One sample; convenient in tests, slow in loops.
    pub fn sample(&self, n: u64) -> i16 {
        let mut s = [0i16; 1];
        self.samples(n, &mut s);
        s[0]
    }
}

/// Parameters of one 200 ms cell of speech-like sound, all drawn from (seed, cell).
struct Syllable {
    onset: u64,
    len: u64,
    step: u32,
    glide: i32,
    amp: f32,
    tilt: f32,
}

fn syllable(seed: u64, cell: u64) -> Option<Syllable> {
    let mut r = SplitMix64::new(hash2(seed, cell));
    // About a third of cells are pauses between words.
    if r.below(100) < 32 {
        return None;
    }
    let onset = r.below(400);
    let len = (600 + r.below(800)).min(SYLLABLE_CELL - onset);
    let f0 = 95.0 + r.below(130) as f32;
    Some(Syllable {
        onset,
        len,
        step: phase_step(f0),
        glide: r.below(60_001) as i32 - 30_000,
        amp: 3000.0 + r.below(5000) as f32,
        tilt: 0.6 + r.unit() as f32 * 0.8,
    })
}

fn speechlike(seed: u64, start: u64, out: &mut [i16]) {
    let table = sine_table();
    let seed = mix64(seed ^ 0x5EEC_4000);
    let mut i = 0usize;
    while i < out.len() {
        let n = start.wrapping_add(i as u64);
        let cell = n / SYLLABLE_CELL;
        let in_cell = n % SYLLABLE_CELL;
        let run = ((SYLLABLE_CELL - in_cell) as usize).min(out.len() - i);
        let chunk = &mut out[i..i + run];
        match syllable(seed, cell) {
            None => chunk.fill(0),
            Some(s) => {
                for (j, o) in chunk.iter_mut().enumerate() {
                    let t = in_cell + j as u64;
                    if t < s.onset || t >= s.onset + s.len {
                        *o = 0;
                        continue;
                    }
                    let k = t - s.onset;
                    // Raised-cosine envelope: sin^2 over the syllable.
                    let env_phase = ((k as u128 * (1u128 << 31)) / s.len as u128) as u32;
                    let e = sine_at(table, env_phase);
                    let env = e * e;
                    // Pitch glides linearly across the syllable; phase is the integral of the
                    // step, so it stays continuous.
                    let kk = k as i64;
                    let base = (s.step as i64 * kk + (s.glide as i64 * kk * kk) / 2) as u32;
                    let mut acc = 0f32;
                    let mut weight = 1f32;
                    for (h, a) in HARMONICS.iter().enumerate() {
                        let ph = base.wrapping_mul(h as u32 + 1);
                        acc += a * weight * sine_at(table, ph);
                        weight *= s.tilt;
                    }
                    *o = clip(s.amp * env * acc * 0.5);
                }
            }
        }
        i += run;
    }
}

/// Normalised cross-correlation of two equal-length sample runs at lag 0 (1.0 = identical
/// shape). Zero when either run is silent.
pub fn normalized_correlation(a: &[i16], b: &[i16]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(s: &Signal, start: u64, n: usize) -> Vec<i16> {
        let mut v = vec![0i16; n];
        s.samples(start, &mut v);
        v
    }

    fn rms(v: &[i16]) -> f64 {
        (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
    }

    #[test]
    fn every_signal_is_deterministic_and_random_access() {
        let signals = [
            Signal::Tone {
                hz: 1004.0,
                amplitude: 8000,
            },
            Signal::Noise {
                seed: 7,
                amplitude: 8000,
            },
            Signal::Speechlike { seed: 3 },
            Signal::Ringback,
            Signal::Silence,
        ];
        for s in &signals {
            let whole = render(s, 1000, 8000);
            assert_eq!(whole, render(s, 1000, 8000), "{s:?} not deterministic");
            // Rendering from the middle must give the same samples as rendering through.
            let part = render(s, 1000 + 1234, 500);
            assert_eq!(&whole[1234..1734], &part[..], "{s:?} not random access");
        }
    }

    #[test]
    fn noise_seeds_are_uncorrelated_and_band_limited() {
        let seeds: Vec<u64> = (0..12).chain([1000, 0xdead_beef, u64::MAX]).collect();
        let runs: Vec<Vec<i16>> = seeds
            .iter()
            .map(|&seed| {
                render(
                    &Signal::Noise {
                        seed,
                        amplitude: 8000,
                    },
                    0,
                    16_000,
                )
            })
            .collect();
        for i in 0..runs.len() {
            assert!(rms(&runs[i]) > 2000.0, "noise too quiet");
            for j in i + 1..runs.len() {
                // Also at small lags: a recorder's alignment search must not lock onto
                // another call's noise.
                for lag in 0..4 {
                    let c = normalized_correlation(&runs[i][lag..], &runs[j]).abs();
                    assert!(
                        c < 0.1,
                        "seeds {} and {} correlate {c} at lag {lag}",
                        seeds[i],
                        seeds[j]
                    );
                }
            }
        }
        // Band-limited: no DC, and the lag-1 correlation of (w[n] - w[n-2]) is zero while
        // lag 2 is -0.5.
        let v = &runs[0];
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 100.0, "DC {mean}");
        let lag2 = normalized_correlation(&v[2..], &v[..v.len() - 2]);
        assert!((lag2 + 0.5).abs() < 0.05, "lag-2 correlation {lag2}");
    }

    #[test]
    fn tone_has_the_right_frequency_and_level() {
        let v = render(
            &Signal::Tone {
                hz: 1000.0,
                amplitude: 10_000,
            },
            0,
            8000,
        );
        let crossings = v.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        assert!(
            (999..=1001).contains(&crossings),
            "{crossings} cycles in 1 s"
        );
        let peak = v.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0);
        assert!((9_900..=10_000).contains(&peak), "peak {peak}");
    }

    #[test]
    fn speechlike_has_bursts_and_pauses() {
        let v = render(&Signal::Speechlike { seed: 11 }, 0, 8000 * 10);
        let cells: Vec<f64> = v.chunks(1600).map(rms).collect();
        let silent = cells.iter().filter(|&&r| r == 0.0).count();
        let loud = cells.iter().filter(|&&r| r > 500.0).count();
        assert!(
            silent >= 5 && loud >= 20,
            "silent {silent} loud {loud} of {}",
            cells.len()
        );
        let other = render(&Signal::Speechlike { seed: 12 }, 0, 8000 * 10);
        assert_ne!(v, other);
    }

    #[test]
    fn ringback_follows_uk_cadence() {
        let v = render(&Signal::Ringback, 0, 24_000);
        assert!(rms(&v[0..3200]) > 1000.0);
        assert_eq!(rms(&v[3200..4800]), 0.0);
        assert!(rms(&v[4800..8000]) > 1000.0);
        assert_eq!(rms(&v[8000..24_000]), 0.0);
    }

    #[test]
    fn prng_is_reproducible_and_spread() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut r = SplitMix64::new(1);
        let hits = (0..100_000).filter(|_| r.chance(0.1)).count();
        assert!((9_000..11_000).contains(&hits), "{hits}");
        assert!((0..1000).all(|_| r.below(7) < 7));
        assert!(!r.chance(f32::NAN) && !r.chance(0.0));
    }
}
