//! Encryption at rest of recording segments (README "Encrypted segments").
//!
//! Owns the segment file format (`format`), the catalogue key pair and its files (`keys`),
//! sealing a segment as it is written (`seal`) and opening it again (`open`). It receives
//! plaintext segment bytes (already framed audio) and the catalogue's public key; it emits
//! sealed bytes to any `Write`. Opening needs the catalogue's private key.
//!
//! Must never: write plaintext or a data key to its output, keep a data key after the sealer or
//! opener is dropped, hand back plaintext from a chunk that failed authentication, or panic on
//! any file content.

mod format;
mod keys;
mod open;
mod seal;

use std::path::PathBuf;

pub use format::{
    ALGORITHM_X25519_AES256GCM, DEFAULT_CHUNK_SIZE, FORMAT_VERSION, HEADER_LEN, HPKE_INFO, MAGIC,
    MAX_CHUNK_SIZE, SegmentHeader, TAG_LEN,
};
pub use keys::{CataloguePrivateKey, CataloguePublicKey, KeyId, generate_keypair_files};
pub use open::{DecryptSummary, SegmentOpener};
pub use seal::{SealSummary, SegmentIds, SegmentSealer};

/// Everything that can go wrong sealing, opening or loading keys. Messages say which input was
/// at fault so that an operator can tell corruption from a wrong key from an unfinished file.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("not a callvault segment: the file does not start with the magic \"CVSG\"")]
    BadMagic,
    #[error("segment format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u8),
    #[error("segment encryption algorithm {0} is not supported (this build knows algorithm 1)")]
    UnsupportedAlgorithm(u8),
    #[error("segment header declares a length of {0} bytes; version 1 headers are 143 bytes")]
    BadHeaderLength(u16),
    #[error("segment header declares a chunk size of {0} bytes; accepted sizes are 1..=1048576")]
    BadChunkSize(u32),
    #[error("segment header is truncated: fewer bytes than a complete header")]
    HeaderTruncated,
    #[error(
        "segment was sealed to catalogue key {segment_key_id} but key {given_key_id} was given"
    )]
    WrongKey {
        segment_key_id: KeyId,
        given_key_id: KeyId,
    },
    #[error(
        "the segment's data key could not be unwrapped: wrong catalogue key or tampered header"
    )]
    DataKeyUnwrap,
    #[error(
        "chunk {index} failed authentication: the file was altered or is not a callvault segment"
    )]
    ChunkAuthentication { index: u32 },
    #[error(
        "final chunk {index} failed authentication: the file was cut inside a chunk or altered"
    )]
    FinalChunkInvalid { index: u32 },
    #[error(
        "file ends after {chunks_ok} chunks without its final chunk: truncated or still being written"
    )]
    Truncated { chunks_ok: u32 },
    #[error("bytes follow the segment's final chunk: the file was appended to or altered")]
    TrailingData,
    #[error("segment would need more than 2^32 chunks; start a new segment")]
    SegmentTooLong,
    #[error("an earlier write of this segment failed; the segment cannot be continued")]
    SealerFailed,
    #[error("the operating system's random number generator failed: {0}")]
    Randomness(String),
    #[error("HPKE could not seal the data key to the catalogue public key: {0}")]
    DataKeyWrap(String),
    #[error("AES-GCM refused to seal chunk {index}")]
    ChunkSeal { index: u32 },
    #[error("invalid catalogue key: {0}")]
    InvalidKey(String),
    #[error("key file {}: {problem}", path.display())]
    KeyFile { path: PathBuf, problem: String },
    #[error("I/O error on segment data: {0}")]
    Io(#[from] std::io::Error),
}
