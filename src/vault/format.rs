//! The segment file header and the chunk geometry that follows it.
//!
//! Owns the byte layout (all integers big-endian):
//!
//! ```text
//! offset size field
//!      0    4 magic "CVSG"
//!      4    1 version = 1
//!      5    1 algorithm = 1 (HPKE DHKEM-X25519/HKDF-SHA256/AES-256-GCM + AES-256-GCM STREAM)
//!      6    2 header_len = 143
//!      8   16 segment_id (UUID)
//!     24   16 call_id (UUID)
//!     40    4 seq
//!     44    8 key_id (catalogue key)
//!     52    4 chunk_size (1..=1 MiB)
//!     56    7 nonce_prefix
//!     63   32 HPKE encapsulated key
//!     95   48 HPKE-sealed data key (32 bytes ciphertext || 16 bytes tag)
//! ```
//!
//! Bytes 0..63 are the HPKE associated data of the data key; all 143 bytes are the associated
//! data of every chunk. Receives untrusted bytes, emits a validated [`SegmentHeader`]; it never
//! panics on any input and never decrypts anything.

use uuid::Uuid;

use super::VaultError;
use super::keys::KeyId;

pub const MAGIC: [u8; 4] = *b"CVSG";
pub const FORMAT_VERSION: u8 = 1;
/// HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM for the data key;
/// AES-256-GCM STREAM for the body.
pub const ALGORITHM_X25519_AES256GCM: u8 = 1;
pub const HEADER_LEN: usize = 143;
/// Header prefix the data key is bound to: everything up to and including the nonce prefix.
pub const DEK_BINDING_LEN: usize = 63;
pub const TAG_LEN: usize = 16;
pub const DEFAULT_CHUNK_SIZE: u32 = 65_536;
pub const MAX_CHUNK_SIZE: u32 = 1 << 20;
pub const NONCE_PREFIX_LEN: usize = 7;
pub const ENC_LEN: usize = 32;
pub const WRAPPED_DEK_LEN: usize = 48;
/// HPKE `info`: separates this use of the catalogue key from any other.
pub const HPKE_INFO: &[u8] = b"callvault segment v1";

// The header length travels as u16; keep the constant honest at compile time.
const HEADER_LEN_U16: u16 = HEADER_LEN as u16;
const _: () = assert!(HEADER_LEN_U16 as usize == HEADER_LEN);

/// A parsed, validated segment header. Validation covers syntax only: the header is
/// authenticated later, when the data key unwraps (HPKE aad) and when each chunk opens (aad).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment_id: Uuid,
    pub call_id: Uuid,
    pub seq: u32,
    pub key_id: KeyId,
    pub chunk_size: u32,
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub enc: [u8; ENC_LEN],
    pub wrapped_dek: [u8; WRAPPED_DEK_LEN],
}

impl SegmentHeader {
    /// Serializes the header; the encoding is canonical, so `parse(to_bytes(h)) == h` and
    /// re-serializing a parsed header gives back the exact bytes that were authenticated.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut at = 0usize;
        let fields: [&[u8]; 12] = [
            &MAGIC,
            &[FORMAT_VERSION],
            &[ALGORITHM_X25519_AES256GCM],
            &HEADER_LEN_U16.to_be_bytes(),
            self.segment_id.as_bytes(),
            self.call_id.as_bytes(),
            &self.seq.to_be_bytes(),
            &self.key_id.0,
            &self.chunk_size.to_be_bytes(),
            &self.nonce_prefix,
            &self.enc,
            &self.wrapped_dek,
        ];
        for field in fields {
            let end = at.saturating_add(field.len());
            if let Some(dst) = out.get_mut(at..end) {
                dst.copy_from_slice(field);
            }
            at = end;
        }
        debug_assert_eq!(at, HEADER_LEN);
        out
    }

    /// Parses the header at the start of `data` (which may continue with chunks). Checks the
    /// magic, then version, algorithm and length as soon as their bytes are present, so that a
    /// short read of a foreign or future file still gets the precise error.
    pub fn parse(data: &[u8]) -> Result<Self, VaultError> {
        let magic_seen = data.get(..MAGIC.len()).unwrap_or(data);
        if magic_seen != MAGIC.get(..magic_seen.len()).unwrap_or(&MAGIC) {
            return Err(VaultError::BadMagic);
        }
        let mut r = Cursor { rest: data };
        let _magic: [u8; 4] = r.take()?;
        let [version] = r.take()?;
        if version != FORMAT_VERSION {
            return Err(VaultError::UnsupportedVersion(version));
        }
        let [algorithm] = r.take()?;
        if algorithm != ALGORITHM_X25519_AES256GCM {
            return Err(VaultError::UnsupportedAlgorithm(algorithm));
        }
        let header_len = u16::from_be_bytes(r.take()?);
        if header_len != HEADER_LEN_U16 {
            return Err(VaultError::BadHeaderLength(header_len));
        }
        if data.len() < HEADER_LEN {
            return Err(VaultError::HeaderTruncated);
        }
        let segment_id = Uuid::from_bytes(r.take()?);
        let call_id = Uuid::from_bytes(r.take()?);
        let seq = u32::from_be_bytes(r.take()?);
        let key_id = KeyId(r.take()?);
        let chunk_size = u32::from_be_bytes(r.take()?);
        if !(1..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(VaultError::BadChunkSize(chunk_size));
        }
        Ok(SegmentHeader {
            segment_id,
            call_id,
            seq,
            key_id,
            chunk_size,
            nonce_prefix: r.take()?,
            enc: r.take()?,
            wrapped_dek: r.take()?,
        })
    }

    /// Bytes one sealed non-final chunk occupies in the file.
    pub fn chunk_stride(&self) -> u64 {
        u64::from(self.chunk_size) + TAG_LEN as u64
    }

    /// File offset of chunk `index`; cannot overflow (2^32 chunks of at most 1 MiB + 16).
    pub fn chunk_offset(&self, index: u32) -> u64 {
        HEADER_LEN as u64 + u64::from(index) * self.chunk_stride()
    }

    /// The 12-byte AES-GCM nonce of chunk `index`: prefix || counter (BE) || last flag. The
    /// flag makes "this is the end" part of what the tag proves, so a file cut at a chunk
    /// boundary cannot pass for a complete one.
    pub fn chunk_nonce(&self, index: u32, last: bool) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        let (prefix, tail) = nonce.split_at_mut(NONCE_PREFIX_LEN);
        prefix.copy_from_slice(&self.nonce_prefix);
        let (counter, flag) = tail.split_at_mut(4);
        counter.copy_from_slice(&index.to_be_bytes());
        if let Some(f) = flag.first_mut() {
            *f = u8::from(last);
        }
        nonce
    }
}

/// Reads fixed-size fields off the front of a slice without any indexing that could panic.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], VaultError> {
        let (field, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(VaultError::HeaderTruncated)?;
        self.rest = rest;
        Ok(*field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentHeader {
        SegmentHeader {
            segment_id: Uuid::from_bytes([1; 16]),
            call_id: Uuid::from_bytes([2; 16]),
            seq: 0x0102_0304,
            key_id: KeyId([3; 8]),
            chunk_size: DEFAULT_CHUNK_SIZE,
            nonce_prefix: [4; 7],
            enc: [5; 32],
            wrapped_dek: [6; 48],
        }
    }

    /// Deterministic pseudo-random bytes (xorshift) so the fuzz-style tests are repeatable.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn round_trip_and_layout() {
        let h = sample();
        let bytes = h.to_bytes();
        assert_eq!(&bytes[..4], b"CVSG");
        assert_eq!(bytes[4], 1);
        assert_eq!(bytes[5], 1);
        assert_eq!(&bytes[6..8], &[0, 143]);
        assert_eq!(&bytes[40..44], &[1, 2, 3, 4]);
        assert_eq!(&bytes[52..56], &65_536u32.to_be_bytes());
        assert_eq!(&bytes[56..63], &[4; 7]);
        assert_eq!(&bytes[63..95], &[5; 32]);
        assert_eq!(&bytes[95..], &[6; 48]);
        assert_eq!(SegmentHeader::parse(&bytes).unwrap(), h);
        // Trailing chunk bytes are not part of the header.
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(&[9; 100]);
        assert_eq!(SegmentHeader::parse(&longer).unwrap(), h);
    }

    #[test]
    fn nonce_and_offsets() {
        let h = sample();
        assert_eq!(
            h.chunk_nonce(0x0A0B_0C0D, true),
            [4, 4, 4, 4, 4, 4, 4, 0x0A, 0x0B, 0x0C, 0x0D, 1]
        );
        assert_eq!(h.chunk_nonce(1, false)[7..], [0, 0, 0, 1, 0]);
        assert_eq!(h.chunk_offset(0), 143);
        assert_eq!(h.chunk_offset(2), 143 + 2 * 65_552);
        let big = SegmentHeader {
            chunk_size: MAX_CHUNK_SIZE,
            ..sample()
        };
        assert_eq!(
            big.chunk_offset(u32::MAX),
            143 + u64::from(u32::MAX) * (MAX_CHUNK_SIZE as u64 + 16)
        );
    }

    #[test]
    fn rejects_unknown_version_algorithm_length_and_magic() {
        let good = sample().to_bytes();
        let mut b = good;
        b[4] = 2;
        assert!(matches!(
            SegmentHeader::parse(&b),
            Err(VaultError::UnsupportedVersion(2))
        ));
        // A future version is named even when only its first bytes arrived.
        assert!(matches!(
            SegmentHeader::parse(&b[..5]),
            Err(VaultError::UnsupportedVersion(2))
        ));
        let mut b = good;
        b[5] = 7;
        assert!(matches!(
            SegmentHeader::parse(&b),
            Err(VaultError::UnsupportedAlgorithm(7))
        ));
        let mut b = good;
        b[7] = 144;
        assert!(matches!(
            SegmentHeader::parse(&b),
            Err(VaultError::BadHeaderLength(144))
        ));
        let mut b = good;
        b[0] = b'X';
        assert!(matches!(
            SegmentHeader::parse(&b),
            Err(VaultError::BadMagic)
        ));
        assert!(matches!(
            SegmentHeader::parse(b"RIFF"),
            Err(VaultError::BadMagic)
        ));
        assert!(matches!(
            SegmentHeader::parse(b"CV"),
            Err(VaultError::HeaderTruncated)
        ));
    }

    #[test]
    fn rejects_chunk_sizes_outside_range() {
        for bad in [0u32, MAX_CHUNK_SIZE + 1, u32::MAX] {
            let h = SegmentHeader {
                chunk_size: bad,
                ..sample()
            };
            assert!(matches!(
                SegmentHeader::parse(&h.to_bytes()),
                Err(VaultError::BadChunkSize(c)) if c == bad
            ));
        }
        for ok in [1u32, MAX_CHUNK_SIZE] {
            let h = SegmentHeader {
                chunk_size: ok,
                ..sample()
            };
            assert_eq!(SegmentHeader::parse(&h.to_bytes()).unwrap(), h);
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample().to_bytes();
        for cut in 0..HEADER_LEN {
            assert!(
                matches!(
                    SegmentHeader::parse(&bytes[..cut]),
                    Err(VaultError::HeaderTruncated)
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        for seed in 0..2_000u64 {
            let len = (seed as usize * 7) % 300;
            let mut data = noise(seed, len);
            let _ = SegmentHeader::parse(&data);
            // Also with a valid prefix, so parsing reaches the deeper fields.
            if data.len() >= 8 {
                data[..8].copy_from_slice(&[b'C', b'V', b'S', b'G', 1, 1, 0, 143]);
                let _ = SegmentHeader::parse(&data);
            }
        }
    }
}
