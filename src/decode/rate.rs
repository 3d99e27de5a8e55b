//! Fitting a stream's decoded samples to its call's timeline rate.
//!
//! A call is recorded at one rate, the highest of its audio streams (8 kHz for G.711, 16 kHz
//! once a G.722 stream joins). A narrowband packet on a wideband timeline repeats each sample
//! (the mixer does it as it adds, no copy); a wideband packet on a narrowband timeline (only
//! before the media stage has moved the call up, so rare) is halved here by averaging pairs.
//! Any other pairing is halved too and flagged, so it is counted as a rate mismatch.

/// Decoded samples as the timeline takes them: each repeated `repeat` times.
#[derive(Debug, PartialEq, Eq)]
pub struct Fitted<'a> {
    pub samples: &'a [i16],
    pub repeat: usize,
    /// The packet's rate was not the timeline's nor half of it: it was halved (counted as a
    /// rate mismatch).
    pub halved: bool,
}

/// Fits `decoded` (at `from` Hz) to a timeline at `to` Hz, halving into `half` when it must.
pub fn fit<'a>(decoded: &'a [i16], from: u32, to: u32, half: &'a mut [i16]) -> Fitted<'a> {
    if from == to {
        return Fitted {
            samples: decoded,
            repeat: 1,
            halved: false,
        };
    }
    if from * 2 == to {
        return Fitted {
            samples: decoded,
            repeat: 2,
            halved: false,
        };
    }
    let m = (decoded.len() / 2).min(half.len());
    for (out, pair) in half[..m].iter_mut().zip(decoded.chunks_exact(2)) {
        *out = ((pair[0] as i32 + pair[1] as i32) / 2) as i16;
    }
    Fitted {
        samples: &half[..m],
        repeat: 1,
        halved: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowband_repeats_wideband_halves_and_same_rate_passes() {
        let decoded = [100i16, 300, -50, 50, 7, 9];
        let mut half = [0i16; 8];
        let same = fit(&decoded, 8_000, 8_000, &mut half);
        assert_eq!(
            (same.samples, same.repeat, same.halved),
            (&decoded[..], 1, false)
        );
        let up = fit(&decoded, 8_000, 16_000, &mut half);
        assert_eq!((up.samples, up.repeat, up.halved), (&decoded[..], 2, false));
        let down = fit(&decoded, 16_000, 8_000, &mut half);
        assert_eq!(
            (down.samples, down.repeat, down.halved),
            (&[200i16, 0, 8][..], 1, true)
        );
    }
}
