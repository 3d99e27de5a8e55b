//! Entropy: the randomness the stages use, handed to them from outside as time is.
//!
//! Owns the one place randomness is drawn: data keys, nonce prefixes and HPKE's ephemeral
//! keys when a segment is sealed, and the random part of call and segment ids. The shells
//! (the agent, replay) give the pipeline [`Entropy::system`], the operating system's
//! generator; tests give it [`Entropy::predictable`], so that the same capture sealed twice
//! gives the same bytes and a test can compare them. Stages never call the operating system
//! for randomness themselves (the layering test holds them to it).

use std::convert::Infallible;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::time::Timestamp;

/// The operating system's random number generator failed (nothing sealed with it).
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct EntropyError(String);

/// A source of random bytes.
#[derive(Debug)]
pub struct Entropy {
    source: Source,
    /// Ids drawn so far: keeps ids distinct even if the generator failed (see `uuid_v7`).
    drawn: u64,
}

#[derive(Debug)]
enum Source {
    System,
    /// SHA-256 of (seed, block counter): reproducible, and so never for real recordings.
    Predictable {
        seed: [u8; 32],
        block: u64,
        pending: [u8; 32],
        used: usize,
    },
}

impl Entropy {
    /// The operating system's generator (`getrandom`): what recordings are sealed with.
    pub fn system() -> Entropy {
        Entropy {
            source: Source::System,
            drawn: 0,
        }
    }

    /// Bytes that follow from `seed` alone, for tests and reproducible benchmarks. Anyone
    /// who knows the seed can open what was sealed with them: never for real recordings.
    pub fn predictable(seed: u64) -> Entropy {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        Entropy {
            source: Source::Predictable {
                seed: s,
                block: 0,
                pending: [0; 32],
                used: 32,
            },
            drawn: 0,
        }
    }

    /// Whether this is the operating system's generator.
    pub fn is_system(&self) -> bool {
        matches!(self.source, Source::System)
    }

    /// A second, independent source for another owner (the call tracker and the media
    /// stage each hold one): the system generator again, or a predictable one seeded from
    /// this one.
    pub fn fork(&mut self) -> Entropy {
        match self.source {
            Source::System => Entropy::system(),
            Source::Predictable { .. } => {
                let mut seed = [0u8; 8];
                // a predictable source cannot fail
                let _ = self.fill(&mut seed);
                Entropy::predictable(u64::from_le_bytes(seed))
            }
        }
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        match &mut self.source {
            Source::System => getrandom::fill(buf).map_err(|e| EntropyError(e.to_string())),
            Source::Predictable {
                seed,
                block,
                pending,
                used,
            } => {
                for b in buf.iter_mut() {
                    if *used == pending.len() {
                        let mut h = Sha256::new();
                        h.update(*seed);
                        h.update(block.to_le_bytes());
                        *pending = h.finalize().into();
                        *block += 1;
                        *used = 0;
                    }
                    *b = pending[*used];
                    *used += 1;
                }
                Ok(())
            }
        }
    }

    /// A time-ordered (version 7) id for something that starts at `at`. Its 74 random bits
    /// come from this source; should the operating system's generator ever fail, they come
    /// from a hash of the time and a count of ids drawn, so ids stay distinct in this
    /// process (but guessable, which an id may be).
    pub fn uuid_v7(&mut self, at: Timestamp) -> Uuid {
        self.drawn += 1;
        let mut random = [0u8; 10];
        if self.fill(&mut random).is_err() {
            let mut h = Sha256::new();
            h.update(at.as_nanos().to_le_bytes());
            h.update(self.drawn.to_le_bytes());
            h.update(std::process::id().to_le_bytes());
            let d: [u8; 32] = h.finalize().into();
            random.copy_from_slice(&d[..10]);
        }
        uuid::Builder::from_unix_timestamp_millis(at.as_millis(), &random).into_uuid()
    }

    /// This source as the generator HPKE draws its ephemeral key from. HPKE's interface
    /// cannot fail, so a failure is kept in [`HpkeRng::failed`] for the caller to act on.
    pub fn for_hpke(&mut self) -> HpkeRng<'_> {
        HpkeRng {
            entropy: self,
            failed: None,
        }
    }
}

/// An [`Entropy`] lent to HPKE (rand_core's interface).
pub struct HpkeRng<'a> {
    entropy: &'a mut Entropy,
    failed: Option<EntropyError>,
}

impl HpkeRng<'_> {
    /// The failure HPKE could not report, if the generator failed while it drew.
    pub fn failed(self) -> Option<EntropyError> {
        self.failed
    }
}

impl rand_core::TryRng for HpkeRng<'_> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        if let Err(e) = self.entropy.fill(dst) {
            dst.fill(0);
            self.failed.get_or_insert(e);
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for HpkeRng<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictable_sources_repeat_and_forks_differ() {
        let draw = |e: &mut Entropy| {
            let mut b = [0u8; 48];
            e.fill(&mut b).unwrap();
            b
        };
        let (mut a, mut b) = (Entropy::predictable(7), Entropy::predictable(7));
        assert_eq!(draw(&mut a), draw(&mut b));
        assert_ne!(draw(&mut a), draw(&mut Entropy::predictable(8)));
        let mut fork = a.fork();
        assert_ne!(draw(&mut fork), draw(&mut a));
        assert!(Entropy::system().is_system() && !fork.is_system());
    }

    #[test]
    fn ids_are_time_ordered_and_distinct() {
        let mut e = Entropy::predictable(1);
        let t = Timestamp::from_millis(1_760_000_000_000);
        let (x, y) = (e.uuid_v7(t), e.uuid_v7(t));
        assert_ne!(x, y);
        assert_eq!(x.get_version_num(), 7);
        let later = e.uuid_v7(Timestamp::from_millis(1_760_000_000_001));
        assert!(later > x && later > y);
        let ts = x.get_timestamp().unwrap().to_unix();
        assert_eq!(ts.0 * 1000 + u64::from(ts.1) / 1_000_000, t.as_millis());
    }
}
