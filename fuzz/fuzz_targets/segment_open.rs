//! A sealed segment opened with the catalogue key: arbitrary bytes, and a valid segment
//! truncated and with bytes flipped (the recovery path for `.partial` files included).
//! Invariants: whatever opens is an authentic prefix of what was sealed; a file is reported
//! complete only when it is the sealed file, byte for byte.
#![no_main]

use std::sync::OnceLock;

use callvault::entropy::Entropy;
use callvault::vault::{CataloguePrivateKey, SegmentIds, SegmentOpener, SegmentSealer};
use libfuzzer_sys::fuzz_target;

struct Seed {
    key: CataloguePrivateKey,
    plain: Vec<u8>,
    sealed: Vec<u8>,
}

fn seed() -> &'static Seed {
    static SEED: OnceLock<Seed> = OnceLock::new();
    SEED.get_or_init(|| {
        let (key, public) = CataloguePrivateKey::generate();
        let plain: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        let ids = SegmentIds { segment_id: uuid::Uuid::from_u128(8), call_id: uuid::Uuid::from_u128(7), seq: 0 };
        let mut sealer = SegmentSealer::new(Vec::new(), &public, ids, 256, &mut Entropy::system()).unwrap();
        sealer.write(&plain).unwrap();
        let (sealed, _) = sealer.finish().unwrap();
        Seed { key, plain, sealed }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = seed();
    // the input itself as a segment file
    let _ = SegmentOpener::decrypt_file(data, &s.key);
    let _ = SegmentOpener::recover(data, &s.key);

    // the valid segment, cut at a point and with bytes flipped where the input says
    let Some((cut, flips)) = data.split_first_chunk::<2>() else {
        return;
    };
    let cut = (u16::from_le_bytes(*cut) as usize) % (s.sealed.len() + 1);
    let mut file = s.sealed[..cut].to_vec();
    for f in flips.chunks_exact(3) {
        let at = u16::from_le_bytes([f[0], f[1]]) as usize;
        if let Some(b) = file.get_mut(at) {
            *b ^= f[2];
        }
    }
    let intact = file == s.sealed;
    match SegmentOpener::decrypt_file(&file, &s.key) {
        Ok((_, plain)) => {
            assert!(intact, "a changed or cut file decrypted");
            assert_eq!(plain, s.plain);
        }
        Err(_) => assert!(!intact),
    }
    if let Ok((_, plain, complete)) = SegmentOpener::recover(&file, &s.key) {
        assert!(
            s.plain.starts_with(&plain),
            "recovery gave bytes that were not sealed"
        );
        assert_eq!(complete, intact);
    }
});
