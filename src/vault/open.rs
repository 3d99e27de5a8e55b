//! Opening sealed segments (in the catalogue, and in `decrypt` and `export` with the key on the
//! recording server): whole files, single chunks, streams, and the
//! `.partial` files a crashed recorder leaves behind.
//!
//! Receives untrusted segment bytes and the catalogue's private key; emits plaintext only from
//! chunks whose tag verified, in order. Must never: return or write plaintext of a chunk that
//! failed authentication, accept a file without its final chunk as complete, panic on any
//! input, or allocate more than the input (or two chunk buffers, when streaming) needs.
//!
//! Chunk geometry: chunk i starts at header_len + i * (chunk_size + 16); every chunk but the
//! last holds exactly chunk_size bytes, and only the last carries the "last" nonce flag. So the
//! layout of a file tells where each chunk ends, and the flag tells whether the end is real.

use std::io::{Read, Write};

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Aes256Gcm, Key, KeyInit, Tag};
use hpke::Deserializable;

use super::VaultError;
use super::format::{DEK_BINDING_LEN, HEADER_LEN, HPKE_INFO, SegmentHeader, TAG_LEN};
use super::keys::{CatalogueKem, CataloguePrivateKey, wipe};

type EncappedKey = <CatalogueKem as hpke::Kem>::EncappedKey;
type DekTag = hpke::aead::AeadTag<hpke::aead::AesGcm256>;

/// What a streamed decryption produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptSummary {
    pub header: SegmentHeader,
    pub plaintext_bytes: u64,
    pub chunks: u32,
}

/// A segment whose header has been authenticated (its DEK unwrapped under it), ready to open
/// chunks. The AES key schedule is cleared on drop by aes-gcm's `zeroize` feature.
pub struct SegmentOpener {
    header: SegmentHeader,
    header_bytes: [u8; HEADER_LEN],
    cipher: Aes256Gcm,
}

impl SegmentOpener {
    /// Parses and authenticates the header (by unwrapping the DEK); error if key id differs
    /// from the key given. `header_bytes_prefix` starts with the header and may be longer.
    pub fn new(header_bytes_prefix: &[u8], key: &CataloguePrivateKey) -> Result<Self, VaultError> {
        let header = SegmentHeader::parse(header_bytes_prefix)?;
        if header.key_id != key.key_id() {
            return Err(VaultError::WrongKey {
                segment_key_id: header.key_id,
                given_key_id: key.key_id(),
            });
        }
        // The encoding is canonical, so these are exactly the bytes the sealer authenticated.
        let header_bytes = header.to_bytes();
        let binding = header_bytes.get(..DEK_BINDING_LEN).unwrap_or_default();
        let enc = EncappedKey::from_bytes(&header.enc).map_err(|_| VaultError::DataKeyUnwrap)?;
        let (wrapped, tag) = header.wrapped_dek.split_at(32);
        let tag = DekTag::from_bytes(tag).map_err(|_| VaultError::DataKeyUnwrap)?;
        let mut dek = [0u8; 32];
        let unwrapped = InOutBuf::new(wrapped, &mut dek)
            .map_err(|_| VaultError::DataKeyUnwrap)
            .and_then(|buf| {
                hpke::single_shot_open_inout_detached::<
                    hpke::aead::AesGcm256,
                    hpke::kdf::HkdfSha256,
                    CatalogueKem,
                >(
                    &hpke::OpModeR::Base,
                    key.hpke(),
                    &enc,
                    HPKE_INFO,
                    buf,
                    binding,
                    &tag,
                )
                .map_err(|_| VaultError::DataKeyUnwrap)
            });
        if let Err(e) = unwrapped {
            wipe(&mut dek);
            return Err(e);
        }
        let mut aes_key = Key::<Aes256Gcm>::from(dek);
        let cipher = Aes256Gcm::new(&aes_key);
        wipe(&mut aes_key);
        wipe(&mut dek);
        Ok(SegmentOpener {
            header,
            header_bytes,
            cipher,
        })
    }

    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    pub fn chunk_offset(&self, index: u32) -> u64 {
        self.header.chunk_offset(index)
    }

    /// Opens one chunk's bytes (ct||tag); `last` says which nonce flag to use.
    pub fn open_chunk(&self, index: u32, sealed: &[u8], last: bool) -> Result<Vec<u8>, VaultError> {
        self.check_chunk_len(index, sealed, last)?;
        let mut plain = vec![0u8; sealed.len().saturating_sub(TAG_LEN)];
        self.open_chunk_into(index, sealed, last, &mut plain)?;
        Ok(plain)
    }

    /// Like `open_chunk` but into the caller's buffer (at least `sealed.len() - 16` bytes), so
    /// a server answering Range requests need not allocate per chunk. Returns the plaintext
    /// length. On failure `out` holds no plaintext.
    pub fn open_chunk_into(
        &self,
        index: u32,
        sealed: &[u8],
        last: bool,
        out: &mut [u8],
    ) -> Result<usize, VaultError> {
        self.check_chunk_len(index, sealed, last)?;
        let fail = VaultError::ChunkAuthentication { index };
        let (ct, tag) = sealed
            .split_at_checked(sealed.len().saturating_sub(TAG_LEN))
            .ok_or(VaultError::ChunkAuthentication { index })?;
        let tag = Tag::try_from(tag).map_err(|_| VaultError::ChunkAuthentication { index })?;
        let dst = out
            .get_mut(..ct.len())
            .ok_or(VaultError::ChunkAuthentication { index })?;
        let nonce = self.header.chunk_nonce(index, last).into();
        // Decrypting from `sealed` into `out` leaves the ciphertext untouched, so the caller
        // can retry with the other flag.
        let buf = InOutBuf::new(ct, dst).map_err(|_| VaultError::ChunkAuthentication { index })?;
        self.cipher
            .decrypt_inout_detached(&nonce, &self.header_bytes, buf, &tag)
            .map_err(|_| fail)?;
        Ok(ct.len())
    }

    /// Non-last chunks are always full, and no chunk is longer than a full one; anything else
    /// cannot be authentic, so it is refused before any crypto or allocation.
    fn check_chunk_len(&self, index: u32, sealed: &[u8], last: bool) -> Result<(), VaultError> {
        let len = sealed.len() as u64;
        let stride = self.header.chunk_stride();
        let plausible = if last {
            (TAG_LEN as u64..=stride).contains(&len)
        } else {
            len == stride
        };
        if plausible {
            Ok(())
        } else {
            Err(VaultError::ChunkAuthentication { index })
        }
    }

    /// Decrypts a whole complete file; detects truncation (missing last chunk), reordering,
    /// tampering, trailing bytes.
    pub fn decrypt_file(
        data: &[u8],
        key: &CataloguePrivateKey,
    ) -> Result<(SegmentHeader, Vec<u8>), VaultError> {
        // Plaintext is never longer than the file, so this bounds the allocation by the input.
        let mut plain = Vec::with_capacity(data.len());
        let summary = SegmentOpener::decrypt_reader(data, key, &mut plain)?;
        Ok((summary.header, plain))
    }

    /// Streams a segment from `input` to `out`, holding two sealed chunks at a time. Plaintext
    /// of each chunk is written only after its tag verified; on an error, what was written is
    /// an authentic prefix, and the error says why the rest is missing.
    pub fn decrypt_reader(
        mut input: impl Read,
        key: &CataloguePrivateKey,
        mut out: impl Write,
    ) -> Result<DecryptSummary, VaultError> {
        let mut header_buf = [0u8; HEADER_LEN];
        let got = read_full(&mut input, &mut header_buf)?;
        let opener = SegmentOpener::new(header_buf.get(..got).unwrap_or_default(), key)?;
        // chunk_size was validated at <= 1 MiB, so these buffers are bounded.
        let stride = opener.header.chunk_size as usize + TAG_LEN;
        let mut cur = vec![0u8; stride];
        let mut next = vec![0u8; stride];
        let mut plain = vec![0u8; stride];
        let mut n = read_full(&mut input, &mut cur)?;
        let mut index: u32 = 0;
        let mut plaintext_bytes: u64 = 0;
        loop {
            let piece = cur.get(..n).unwrap_or_default();
            if n < stride {
                // A short piece at end of input can only be the last chunk.
                if n < TAG_LEN {
                    return Err(VaultError::Truncated { chunks_ok: index });
                }
                let len = opener
                    .open_chunk_into(index, piece, true, &mut plain)
                    .map_err(|_| VaultError::FinalChunkInvalid { index })?;
                out.write_all(plain.get(..len).unwrap_or_default())?;
                return Ok(opener.summary(index, plaintext_bytes + len as u64));
            }
            let m = read_full(&mut input, &mut next)?;
            if m == 0 {
                // A full chunk at the end: a full last chunk, or a file cut at a boundary.
                if let Ok(len) = opener.open_chunk_into(index, piece, true, &mut plain) {
                    out.write_all(plain.get(..len).unwrap_or_default())?;
                    return Ok(opener.summary(index, plaintext_bytes + len as u64));
                }
                if opener
                    .open_chunk_into(index, piece, false, &mut plain)
                    .is_ok()
                {
                    return Err(VaultError::Truncated {
                        chunks_ok: index.saturating_add(1),
                    });
                }
                return Err(VaultError::ChunkAuthentication { index });
            }
            match opener.open_chunk_into(index, piece, false, &mut plain) {
                Ok(len) => {
                    out.write_all(plain.get(..len).unwrap_or_default())?;
                    plaintext_bytes += len as u64;
                }
                Err(e) => {
                    if opener
                        .open_chunk_into(index, piece, true, &mut plain)
                        .is_ok()
                    {
                        return Err(VaultError::TrailingData);
                    }
                    return Err(e);
                }
            }
            // The last chunk of a valid file has index <= u32::MAX; more data is not valid.
            index = index.checked_add(1).ok_or(VaultError::TrailingData)?;
            std::mem::swap(&mut cur, &mut next);
            n = m;
        }
    }

    /// For a `.partial` left by a crash: returns the plaintext of every authentic leading
    /// chunk and whether the file was complete (a valid final chunk ending exactly at the end
    /// of `data`, i.e. exactly when `decrypt_file` would succeed). Only a header that does not
    /// parse or authenticate is an error: there is nothing to recover then.
    pub fn recover(
        data: &[u8],
        key: &CataloguePrivateKey,
    ) -> Result<(SegmentHeader, Vec<u8>, bool), VaultError> {
        let opener = SegmentOpener::new(data, key)?;
        let stride = opener.header.chunk_size as usize + TAG_LEN;
        let mut rest = data.get(HEADER_LEN..).unwrap_or_default();
        let mut plain = Vec::with_capacity(rest.len());
        let mut index: u32 = 0;
        let complete = loop {
            if rest.is_empty() {
                break false;
            }
            let (piece, after) = rest.split_at(stride.min(rest.len()));
            let start = plain.len();
            plain.resize(start + piece.len().saturating_sub(TAG_LEN), 0);
            let dst = plain.get_mut(start..).unwrap_or_default();
            if piece.len() == stride && opener.open_chunk_into(index, piece, false, dst).is_ok() {
                match index.checked_add(1) {
                    Some(i) => index = i,
                    None => break false,
                }
                rest = after;
                continue;
            }
            if opener.open_chunk_into(index, piece, true, dst).is_ok() {
                break after.is_empty();
            }
            plain.truncate(start);
            break false;
        };
        Ok((opener.header, plain, complete))
    }

    fn summary(&self, last_index: u32, plaintext_bytes: u64) -> DecryptSummary {
        DecryptSummary {
            header: self.header.clone(),
            plaintext_bytes,
            chunks: last_index.saturating_add(1),
        }
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes arrived.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, VaultError> {
    let mut got = 0;
    while let Some(space) = buf.get_mut(got..) {
        if space.is_empty() {
            break;
        }
        match input.read(space) {
            Ok(0) => break,
            Ok(k) => got += k.min(space.len()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::Entropy;
    use crate::vault::{CataloguePublicKey, SegmentIds, SegmentSealer};
    use uuid::Uuid;

    const CS: usize = 1024;
    const STRIDE: usize = CS + TAG_LEN;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i * 131 % 253) as u8 ^ (i >> 8) as u8)
            .collect()
    }

    fn seal(public: &CataloguePublicKey, data: &[u8]) -> Vec<u8> {
        let ids = SegmentIds {
            segment_id: Uuid::now_v7(),
            call_id: Uuid::now_v7(),
            seq: 0,
        };
        let mut s =
            SegmentSealer::new(Vec::new(), public, ids, CS as u32, &mut Entropy::system()).unwrap();
        s.write(data).unwrap();
        s.finish().unwrap().0
    }

    fn keys() -> (CataloguePrivateKey, CataloguePublicKey) {
        CataloguePrivateKey::generate()
    }

    #[test]
    fn round_trips_edge_sizes() {
        let (private, public) = keys();
        for len in [0, 1, CS - 1, CS, CS + 1, CS * 7 / 2] {
            let data = pattern(len);
            let file = seal(&public, &data);
            let (header, plain) = SegmentOpener::decrypt_file(&file, &private)
                .unwrap_or_else(|e| panic!("len {len}: {e}"));
            assert_eq!(plain, data, "len {len}");
            assert_eq!(header.chunk_size, CS as u32);
            let mut streamed = Vec::new();
            let summary =
                SegmentOpener::decrypt_reader(&file[..], &private, &mut streamed).unwrap();
            assert_eq!(streamed, data);
            assert_eq!(summary.plaintext_bytes, len as u64);
            assert_eq!(summary.chunks as usize, len / CS + 1);
            let (_, recovered, complete) = SegmentOpener::recover(&file, &private).unwrap();
            assert!(complete, "len {len}");
            assert_eq!(recovered, data);
        }
    }

    /// A file whose last chunk is full, which the format allows but our sealer never writes
    /// (it ends an exact multiple with an empty last chunk): re-seal chunk 1 of a two-chunk
    /// segment as the last chunk, with the segment's own key.
    fn full_last_file(
        private: &CataloguePrivateKey,
        public: &CataloguePublicKey,
        data: &[u8],
    ) -> Vec<u8> {
        assert_eq!(data.len(), 2 * CS);
        let file = seal(public, data);
        let opener = SegmentOpener::new(&file, private).unwrap();
        let mut full_last = file[..HEADER_LEN + STRIDE].to_vec();
        let mut chunk = data[CS..].to_vec();
        let nonce = opener.header.chunk_nonce(1, true).into();
        let tag = opener
            .cipher
            .encrypt_inout_detached(&nonce, &opener.header_bytes, chunk.as_mut_slice().into())
            .unwrap();
        full_last.extend_from_slice(&chunk);
        full_last.extend_from_slice(&tag);
        full_last
    }

    #[test]
    fn a_full_last_chunk_is_accepted() {
        let (private, public) = keys();
        let data = pattern(2 * CS);
        let full_last = full_last_file(&private, &public, &data);
        let file = seal(&public, &data);
        let opener = SegmentOpener::new(&file, &private).unwrap();
        assert_eq!(
            SegmentOpener::decrypt_file(&full_last, &private).unwrap().1,
            data
        );
        let (_, plain, complete) = SegmentOpener::recover(&full_last, &private).unwrap();
        assert!(complete);
        assert_eq!(plain, data);
        // ...while the sealer's file without its empty final chunk is a truncation.
        let cut = &file[..file.len() - TAG_LEN];
        assert!(matches!(
            SegmentOpener::decrypt_file(cut, &private),
            Err(VaultError::Truncated { chunks_ok: 2 })
        ));
        assert_eq!(
            opener
                .open_chunk(2, &file[file.len() - 16..], true)
                .unwrap(),
            b""
        );
    }

    #[test]
    fn every_flipped_bit_in_header_is_detected() {
        let (private, public) = keys();
        let file = seal(&public, &pattern(CS + 10));
        for byte in 0..HEADER_LEN {
            // One bit per byte, a different one each time (debug-mode HPKE is slow).
            let bit = byte % 8;
            let mut bad = file.clone();
            bad[byte] ^= 1 << bit;
            let err = SegmentOpener::decrypt_file(&bad, &private).unwrap_err();
            // Fields outside the DEK binding (enc, wrapped DEK) and inside it both fail at
            // unwrap; version/algorithm/length/chunk size/key id fail earlier, by name.
            assert!(
                matches!(
                    err,
                    VaultError::DataKeyUnwrap
                        | VaultError::BadMagic
                        | VaultError::UnsupportedVersion(_)
                        | VaultError::UnsupportedAlgorithm(_)
                        | VaultError::BadHeaderLength(_)
                        | VaultError::BadChunkSize(_)
                        | VaultError::WrongKey { .. }
                ),
                "byte {byte} bit {bit}: {err}"
            );
            assert!(SegmentOpener::recover(&bad, &private).is_err());
        }
    }

    #[test]
    fn every_flipped_byte_in_body_is_detected() {
        let (private, public) = keys();
        let data = pattern(2 * CS + 100);
        let file = seal(&public, &data);
        // Every tag byte and the edges of every chunk, plus a sample of ciphertext bytes
        // (every position would take a minute in a debug build).
        let positions = (HEADER_LEN..file.len()).filter(|&pos| {
            let at = (pos - HEADER_LEN) % STRIDE;
            at.is_multiple_of(13) || !(2..CS - 1).contains(&at) || pos >= file.len() - TAG_LEN - 1
        });
        for pos in positions {
            let mut bad = file.clone();
            bad[pos] ^= 0x10;
            let err = SegmentOpener::decrypt_file(&bad, &private).unwrap_err();
            let chunk = ((pos - HEADER_LEN) / STRIDE) as u32;
            match err {
                VaultError::ChunkAuthentication { index } => assert_eq!(index, chunk),
                VaultError::FinalChunkInvalid { index } => {
                    assert_eq!(index, 2);
                    assert_eq!(chunk, 2);
                }
                other => panic!("pos {pos}: {other}"),
            }
            // Recovery keeps exactly the chunks before the damaged one.
            let (_, recovered, complete) = SegmentOpener::recover(&bad, &private).unwrap();
            assert!(!complete);
            assert_eq!(recovered, data[..chunk as usize * CS]);
        }
    }

    #[test]
    fn flipped_tag_bits_are_detected() {
        let (private, public) = keys();
        let file = seal(&public, &pattern(3 * CS / 2));
        let tag0 = HEADER_LEN + CS; // first chunk's tag
        for pos in tag0..tag0 + TAG_LEN {
            let mut bad = file.clone();
            bad[pos] ^= 0x01;
            assert!(matches!(
                SegmentOpener::decrypt_file(&bad, &private),
                Err(VaultError::ChunkAuthentication { index: 0 })
            ));
        }
        let last_tag = file.len() - TAG_LEN;
        let mut bad = file.clone();
        bad[last_tag] ^= 0x80;
        assert!(matches!(
            SegmentOpener::decrypt_file(&bad, &private),
            Err(VaultError::FinalChunkInvalid { index: 1 })
        ));
    }

    #[test]
    fn truncation_is_detected() {
        let (private, public) = keys();
        let data = pattern(CS * 7 / 2);
        let file = seal(&public, &data);
        // At each chunk boundary the leading chunks are authentic but the last is missing.
        for k in 0..=3usize {
            let cut = &file[..HEADER_LEN + k * STRIDE];
            assert!(
                matches!(
                    SegmentOpener::decrypt_file(cut, &private),
                    Err(VaultError::Truncated { chunks_ok }) if chunks_ok as usize == k
                ),
                "cut after {k} chunks"
            );
        }
        // Inside a chunk: too short to be a chunk, or a piece that fails as a final chunk.
        for extra in [1, TAG_LEN - 1, TAG_LEN, TAG_LEN + 1, STRIDE - 1] {
            let cut = &file[..HEADER_LEN + STRIDE + extra];
            let err = SegmentOpener::decrypt_file(cut, &private).unwrap_err();
            assert!(
                matches!(
                    err,
                    VaultError::Truncated { chunks_ok: 1 }
                        | VaultError::FinalChunkInvalid { index: 1 }
                ),
                "extra {extra}: {err}"
            );
        }
        // Losing only part of the final chunk.
        let cut = &file[..file.len() - 1];
        assert!(matches!(
            SegmentOpener::decrypt_file(cut, &private),
            Err(VaultError::FinalChunkInvalid { index: 3 })
        ));
        // Inside the header.
        assert!(matches!(
            SegmentOpener::decrypt_file(&file[..HEADER_LEN - 1], &private),
            Err(VaultError::HeaderTruncated)
        ));
    }

    #[test]
    fn swapped_chunks_are_detected() {
        let (private, public) = keys();
        let file = seal(&public, &pattern(CS * 7 / 2));
        let mut bad = file.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + STRIDE);
        let first = file[a..a + STRIDE].to_vec();
        bad.copy_within(b..b + STRIDE, a);
        bad[b..b + STRIDE].copy_from_slice(&first);
        assert!(matches!(
            SegmentOpener::decrypt_file(&bad, &private),
            Err(VaultError::ChunkAuthentication { index: 0 })
        ));
        // A chunk moved between two segments of the same key fails too (different DEK/aad).
        let other = seal(&public, &pattern(CS * 7 / 2));
        let mut spliced = file.clone();
        spliced[b..b + STRIDE].copy_from_slice(&other[b..b + STRIDE]);
        assert!(matches!(
            SegmentOpener::decrypt_file(&spliced, &private),
            Err(VaultError::ChunkAuthentication { index: 1 })
        ));
    }

    #[test]
    fn appended_bytes_are_detected() {
        let (private, public) = keys();
        for len in [0, 100, CS, CS * 7 / 2] {
            let file = seal(&public, &pattern(len));
            for extra in [1usize, 15, 16, 17, STRIDE, STRIDE + 5] {
                let mut bad = file.clone();
                bad.extend(std::iter::repeat_n(0xA5u8, extra));
                let err = SegmentOpener::decrypt_file(&bad, &private).unwrap_err();
                assert!(
                    matches!(
                        err,
                        VaultError::TrailingData
                            | VaultError::FinalChunkInvalid { .. }
                            | VaultError::ChunkAuthentication { .. }
                    ),
                    "len {len} extra {extra}: {err}"
                );
                let (_, _, complete) = SegmentOpener::recover(&bad, &private).unwrap();
                assert!(!complete, "len {len} extra {extra}");
            }
        }
        // When the final chunk is full, bytes after it are named precisely: it opens as last.
        let file = full_last_file(&private, &public, &pattern(2 * CS));
        for extra in [1usize, 16, STRIDE, STRIDE + 3] {
            let mut bad = file.clone();
            bad.extend(std::iter::repeat_n(0u8, extra));
            assert!(matches!(
                SegmentOpener::decrypt_file(&bad, &private),
                Err(VaultError::TrailingData)
            ));
            let (_, plain, complete) = SegmentOpener::recover(&bad, &private).unwrap();
            assert_eq!(plain, pattern(2 * CS));
            assert!(!complete);
        }
    }

    #[test]
    fn wrong_key_and_forged_key_id() {
        let (private, public) = keys();
        let (other, _) = keys();
        let file = seal(&public, &pattern(100));
        match SegmentOpener::decrypt_file(&file, &other) {
            Err(VaultError::WrongKey {
                segment_key_id,
                given_key_id,
            }) => {
                assert_eq!(segment_key_id, public.key_id());
                assert_eq!(given_key_id, other.key_id());
            }
            r => panic!("expected WrongKey, got {r:?}"),
        }
        // Relabel the segment with the other key's id: the id check passes, the unwrap fails.
        let mut forged = file.clone();
        forged[44..52].copy_from_slice(&other.key_id().0);
        assert!(matches!(
            SegmentOpener::decrypt_file(&forged, &other),
            Err(VaultError::DataKeyUnwrap)
        ));
        assert!(matches!(
            SegmentOpener::new(&forged, &other),
            Err(VaultError::DataKeyUnwrap)
        ));
        assert!(SegmentOpener::decrypt_file(&file, &private).is_ok());
    }

    #[test]
    fn the_data_key_is_bound_to_the_segment_ids() {
        // Copying the encapsulated and wrapped DEK of one segment into another's header (to
        // open it with a DEK the attacker has seen elsewhere) must fail at unwrap.
        let (private, public) = keys();
        let a = seal(&public, &pattern(100));
        let b = seal(&public, &pattern(100));
        let mut mixed = b.clone();
        mixed[63..HEADER_LEN].copy_from_slice(&a[63..HEADER_LEN]);
        assert!(matches!(
            SegmentOpener::new(&mixed, &private),
            Err(VaultError::DataKeyUnwrap)
        ));
    }

    #[test]
    fn recover_returns_whole_chunks_of_a_crashed_file() {
        let (private, public) = keys();
        let data = pattern(CS * 7 / 2);
        let ids = SegmentIds {
            segment_id: Uuid::now_v7(),
            call_id: Uuid::now_v7(),
            seq: 1,
        };
        let mut s = SegmentSealer::new(Vec::new(), &public, ids, CS as u32, &mut Entropy::system())
            .unwrap();
        s.write(&data).unwrap();
        // The crash: no finish(); only what was written so far (3 full chunks) exists.
        let partial = s.get_ref().clone();
        assert_eq!(partial.len(), HEADER_LEN + 3 * STRIDE);
        let (header, plain, complete) = SegmentOpener::recover(&partial, &private).unwrap();
        assert!(!complete);
        assert_eq!(plain, data[..3 * CS]);
        assert_eq!(header.segment_id, ids.segment_id);

        // Cut after chunk 2, with part of chunk 3 torn off mid-write.
        for tail in [0, 1, 16, 500, STRIDE - 1] {
            let cut = &partial[..HEADER_LEN + 2 * STRIDE + tail];
            let (_, plain, complete) = SegmentOpener::recover(cut, &private).unwrap();
            assert!(!complete, "tail {tail}");
            assert_eq!(plain, data[..2 * CS], "tail {tail}");
        }
        // Only a header.
        let (_, plain, complete) =
            SegmentOpener::recover(&partial[..HEADER_LEN], &private).unwrap();
        assert!(plain.is_empty() && !complete);
        // A broken header leaves nothing to recover.
        assert!(matches!(
            SegmentOpener::recover(&partial[..100], &private),
            Err(VaultError::HeaderTruncated)
        ));
    }

    #[test]
    fn open_chunk_gives_random_access() {
        let (private, public) = keys();
        let data = pattern(CS * 7 / 2);
        let file = seal(&public, &data);
        let opener = SegmentOpener::new(&file, &private).unwrap();
        let chunks = 4u32;
        for i in (0..chunks).rev() {
            let start = opener.chunk_offset(i) as usize;
            let last = i == chunks - 1;
            let end = if last { file.len() } else { start + STRIDE };
            let plain = opener.open_chunk(i, &file[start..end], last).unwrap();
            let p0 = i as usize * CS;
            assert_eq!(plain, data[p0..(p0 + CS).min(data.len())], "chunk {i}");
            // The wrong flag or the wrong index fails.
            assert!(opener.open_chunk(i, &file[start..end], !last).is_err());
            assert!(opener.open_chunk(i ^ 1, &file[start..end], last).is_err());
        }
        let mut out = vec![0u8; CS];
        let start = opener.chunk_offset(1) as usize;
        assert_eq!(
            opener
                .open_chunk_into(1, &file[start..start + STRIDE], false, &mut out)
                .unwrap(),
            CS
        );
        assert_eq!(out, data[CS..2 * CS]);
        // Implausible lengths are refused without allocation or crypto.
        assert!(
            opener
                .open_chunk(0, &file[start..start + 10], true)
                .is_err()
        );
        assert!(
            opener
                .open_chunk(0, &file[start..start + STRIDE - 1], false)
                .is_err()
        );
        assert!(opener.open_chunk(0, &[0u8; STRIDE + 1], true).is_err());
        assert!(
            opener
                .open_chunk_into(1, &file[start..start + STRIDE], false, &mut [0u8; 8])
                .is_err()
        );
    }

    #[test]
    fn streaming_writes_only_authentic_prefix() {
        let (private, public) = keys();
        let data = pattern(CS * 7 / 2);
        let mut file = seal(&public, &data);
        let pos = HEADER_LEN + 2 * STRIDE + 5;
        file[pos] ^= 1;
        let mut out = Vec::new();
        let err = SegmentOpener::decrypt_reader(&file[..], &private, &mut out).unwrap_err();
        assert!(matches!(err, VaultError::ChunkAuthentication { index: 2 }));
        assert_eq!(out, data[..2 * CS]);
    }

    #[test]
    fn random_bytes_after_a_valid_magic_never_panic() {
        let (private, public) = keys();
        let file = seal(&public, &pattern(3000));
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..120usize {
            let mut bad = file.clone();
            for _ in 0..(round % 5 + 1) {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let pos = (s as usize) % bad.len();
                bad[pos] = (s >> 32) as u8;
            }
            bad.truncate((s >> 40) as usize % (bad.len() + 1));
            let _ = SegmentOpener::decrypt_file(&bad, &private);
            let _ = SegmentOpener::recover(&bad, &private);
        }
    }

    #[test]
    fn error_messages_say_what_happened() {
        assert_eq!(
            VaultError::ChunkAuthentication { index: 4 }.to_string(),
            "chunk 4 failed authentication: the file was altered or is not a callvault segment"
        );
        assert_eq!(
            VaultError::Truncated { chunks_ok: 2 }.to_string(),
            "file ends after 2 chunks without its final chunk: truncated or still being written"
        );
    }
}
