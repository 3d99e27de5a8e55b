//! The catalogue's key pair: X25519 keys for HPKE (RFC 9180), their key id, and their files.
//!
//! Owns generation, the key id (first 8 bytes of SHA-256 of the public key), and the two small
//! JSON key files. Receives paths and key bytes; emits keys usable by `seal` (public) and
//! `open` (private). Must never: write private key material anywhere but a new 0600 file,
//! overwrite an existing key file, print private key material (Debug shows only the key id), or
//! keep a copy of it longer than needed.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hpke::{Deserializable, Kem as _, Serializable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::VaultError;

/// The HPKE KEM of algorithm 1.
pub(crate) type CatalogueKem = hpke::kem::X25519HkdfSha256;
type HpkePublicKey = <CatalogueKem as hpke::Kem>::PublicKey;
type HpkePrivateKey = <CatalogueKem as hpke::Kem>::PrivateKey;

const PUBLIC_KIND: &str = "callvault-catalogue-public-key";
const PRIVATE_KIND: &str = "callvault-catalogue-private-key";
const ALGORITHM_NAME: &str = "X25519-HKDF-SHA256";
/// Key files are a few hundred bytes; anything larger is not one, and is not read into memory.
const MAX_KEY_FILE_LEN: u64 = 4096;
pub const PUBLIC_KEY_FILE: &str = "catalogue.pub";
pub const PRIVATE_KEY_FILE: &str = "catalogue.key";

/// Identifies a catalogue key pair: the first 8 bytes of SHA-256 of the public key. Stored in
/// every segment header so that the catalogue picks the right key after rotation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    pub fn of_public_key(public_key: &[u8; 32]) -> KeyId {
        let digest = Sha256::digest(public_key);
        let mut id = [0u8; 8];
        id.copy_from_slice(digest.get(..8).unwrap_or(&[0u8; 8]));
        KeyId(id)
    }

    /// Parses the 16-hex-character form used in key files and logs.
    pub fn from_hex(text: &str) -> Option<KeyId> {
        decode_hex::<8>(text).map(KeyId)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The catalogue's public key: all a recording server holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CataloguePublicKey {
    key: HpkePublicKey,
    bytes: [u8; 32],
    key_id: KeyId,
}

/// The catalogue's private key. The underlying x25519 secret zeroizes itself on drop.
pub struct CataloguePrivateKey {
    secret: HpkePrivateKey,
    public: CataloguePublicKey,
}

impl fmt::Debug for CataloguePrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CataloguePrivateKey")
            .field("key_id", &self.public.key_id)
            .finish_non_exhaustive()
    }
}

/// Read first, leniently, so that a key file of the other kind gets a message saying so
/// rather than a complaint about its unknown fields.
#[derive(Deserialize)]
struct KindProbe {
    kind: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeyDocument {
    kind: String,
    algorithm: String,
    key_id: String,
    public_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivateKeyDocument {
    kind: String,
    algorithm: String,
    key_id: String,
    private_key: String,
}

impl CataloguePublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Result<CataloguePublicKey, VaultError> {
        let key = HpkePublicKey::from_bytes(&bytes)
            .map_err(|e| VaultError::InvalidKey(format!("X25519 public key rejected: {e}")))?;
        Ok(CataloguePublicKey {
            key,
            bytes,
            key_id: KeyId::of_public_key(&bytes),
        })
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub(crate) fn hpke(&self) -> &HpkePublicKey {
        &self.key
    }

    /// Writes the public key file; refuses to replace an existing file.
    pub fn save(&self, path: &Path) -> Result<(), VaultError> {
        let doc = PublicKeyDocument {
            kind: PUBLIC_KIND.to_owned(),
            algorithm: ALGORITHM_NAME.to_owned(),
            key_id: self.key_id.to_string(),
            public_key: encode_hex(&self.bytes),
        };
        let mut text = serde_json::to_vec_pretty(&doc).map_err(|e| key_file(path, e))?;
        text.push(b'\n');
        write_new_file(path, &text, 0o644)
    }

    pub fn load(path: &Path) -> Result<CataloguePublicKey, VaultError> {
        let text = read_key_file(path)?;
        check_kind(path, &text, PUBLIC_KIND)?;
        let doc: PublicKeyDocument = serde_json::from_slice(&text).map_err(|e| {
            key_file(
                path,
                format!("is not a catalogue public key document (JSON: {e})"),
            )
        })?;
        check_algorithm(path, &doc.algorithm)?;
        let bytes = decode_hex::<32>(&doc.public_key)
            .ok_or_else(|| key_file(path, "public_key is not 64 hexadecimal characters"))?;
        let key = CataloguePublicKey::from_bytes(bytes).map_err(|e| key_file(path, e))?;
        check_key_id(path, &doc.key_id, key.key_id)?;
        Ok(key)
    }
}

impl CataloguePrivateKey {
    /// Generates a fresh key pair from the operating system's random number generator.
    /// Panics only if that generator fails, as hpke's `gen_keypair` does.
    pub fn generate() -> (CataloguePrivateKey, CataloguePublicKey) {
        let (secret, _) = CatalogueKem::gen_keypair();
        let private = CataloguePrivateKey::from_secret(secret);
        let public = private.public();
        (private, public)
    }

    fn from_secret(secret: HpkePrivateKey) -> CataloguePrivateKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&CatalogueKem::sk_to_pk(&secret).to_bytes());
        let public = CataloguePublicKey {
            key: CatalogueKem::sk_to_pk(&secret),
            bytes,
            key_id: KeyId::of_public_key(&bytes),
        };
        CataloguePrivateKey { secret, public }
    }

    pub fn public(&self) -> CataloguePublicKey {
        self.public.clone()
    }

    pub fn key_id(&self) -> KeyId {
        self.public.key_id
    }

    /// 32 bytes for another purpose, derived from this key and `label` (SHA-256 over a
    /// domain label and the secret): the catalogue's audit-head signing seed is one, so that
    /// it is kept, backed up and rotated with the catalogue key itself.
    pub fn derive_seed(&self, label: &str) -> [u8; 32] {
        let mut secret = self.secret.to_bytes();
        let mut h = Sha256::new();
        h.update(b"callvault derived key\0");
        h.update(label.as_bytes());
        h.update(b"\0");
        h.update(&secret[..]);
        wipe(&mut secret);
        h.finalize().into()
    }

    pub(crate) fn hpke(&self) -> &HpkePrivateKey {
        &self.secret
    }

    /// Writes the private key file with mode 0600, atomically, refusing to replace a file.
    pub fn save(&self, path: &Path) -> Result<(), VaultError> {
        let mut secret = self.secret.to_bytes();
        let mut hex = encode_hex(&secret);
        wipe(&mut secret);
        let doc = PrivateKeyDocument {
            kind: PRIVATE_KIND.to_owned(),
            algorithm: ALGORITHM_NAME.to_owned(),
            key_id: self.key_id().to_string(),
            private_key: std::mem::take(&mut hex),
        };
        // Sized up front so that serde_json never reallocates and leaves a stray copy behind.
        let mut text = Vec::with_capacity(512);
        let written = serde_json::to_writer_pretty(&mut text, &doc);
        wipe_string(doc.private_key);
        wipe_string(hex);
        if let Err(e) = written {
            wipe(&mut text);
            return Err(key_file(path, e));
        }
        text.push(b'\n');
        let result = write_new_file(path, &text, 0o600);
        wipe(&mut text);
        result
    }

    /// Loads a private key file; one that others than its owner may read is refused, as ssh
    /// refuses such a key (a copy may already have been taken: make a new key).
    pub fn load(path: &Path) -> Result<CataloguePrivateKey, VaultError> {
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(key_file(
                    path,
                    format!(
                        "is readable by others than its owner (mode {mode:o}): run chmod 600 on it, and consider it exposed"
                    ),
                ));
            }
        }
        let mut text = read_key_file(path)?;
        if let Err(e) = check_kind(path, &text, PRIVATE_KIND) {
            wipe(&mut text);
            return Err(e);
        }
        let parsed: Result<PrivateKeyDocument, _> = serde_json::from_slice(&text);
        wipe(&mut text);
        // serde_json's messages may quote the offending value, which here could be the secret:
        // report only where the document went wrong.
        let doc = parsed.map_err(|e| {
            let what = if e.is_data() {
                "has missing, unknown or mistyped fields"
            } else {
                "is not valid JSON"
            };
            key_file(
                path,
                format!(
                    "{what} for a catalogue private key document (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let checked = check_algorithm(path, &doc.algorithm);
        let mut secret = decode_hex::<32>(&doc.private_key);
        let key_id_text = doc.key_id.clone();
        wipe_string(doc.private_key);
        checked?;
        let Some(bytes) = secret.as_mut() else {
            return Err(key_file(
                path,
                "private_key is not 64 hexadecimal characters",
            ));
        };
        let parsed = HpkePrivateKey::from_bytes(bytes.as_slice());
        wipe(bytes);
        let secret = parsed.map_err(|e| key_file(path, format!("private_key rejected: {e}")))?;
        let key = CataloguePrivateKey::from_secret(secret);
        check_key_id(path, &key_id_text, key.key_id())?;
        Ok(key)
    }
}

/// Creates `dir/catalogue.pub` and `dir/catalogue.key` for a new key pair. Refuses to start if
/// either exists, so an existing catalogue key is never replaced by accident.
pub fn generate_keypair_files(dir: &Path) -> Result<(PathBuf, PathBuf), VaultError> {
    let public_path = dir.join(PUBLIC_KEY_FILE);
    let private_path = dir.join(PRIVATE_KEY_FILE);
    for path in [&public_path, &private_path] {
        if path.symlink_metadata().is_ok() {
            return Err(key_file(
                path,
                "already exists; refusing to overwrite a key file",
            ));
        }
    }
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)
            .map_err(|e| key_file(dir, format!("cannot create directory: {e}")))?;
        // the directory holds a private key: owner only
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let (private, public) = CataloguePrivateKey::generate();
    private.save(&private_path)?;
    public.save(&public_path)?;
    Ok((public_path, private_path))
}

/// Overwrites secret bytes (zeroize: volatile writes the optimiser cannot drop).
pub(crate) fn wipe(bytes: &mut [u8]) {
    zeroize::Zeroize::zeroize(bytes);
}

fn wipe_string(text: String) {
    let mut bytes = text.into_bytes();
    wipe(&mut bytes);
}

fn key_file(path: &Path, problem: impl fmt::Display) -> VaultError {
    VaultError::KeyFile {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

/// Only reports a kind that is present and wrong; a missing or mistyped `kind` is left to the
/// strict parse, whose message says which field is at fault.
fn check_kind(path: &Path, text: &[u8], expected_kind: &str) -> Result<(), VaultError> {
    let Ok(probe) = serde_json::from_slice::<KindProbe>(text) else {
        return Ok(());
    };
    let kind = probe.kind.as_str();
    if kind == expected_kind {
        return Ok(());
    }
    let hint = match kind {
        PUBLIC_KIND => " (this is the public key file; the private key file is needed)",
        PRIVATE_KIND => " (this is the private key file; give the public key file)",
        _ => "",
    };
    Err(key_file(
        path,
        format!("kind is {kind:?}, expected {expected_kind:?}{hint}"),
    ))
}

fn check_algorithm(path: &Path, algorithm: &str) -> Result<(), VaultError> {
    if algorithm != ALGORITHM_NAME {
        return Err(key_file(
            path,
            format!("algorithm is {algorithm:?}, only {ALGORITHM_NAME:?} is supported"),
        ));
    }
    Ok(())
}

fn check_key_id(path: &Path, stated: &str, actual: KeyId) -> Result<(), VaultError> {
    match KeyId::from_hex(stated) {
        Some(id) if id == actual => Ok(()),
        Some(_) => Err(key_file(
            path,
            format!("key_id {stated} does not match the key in the file (its id is {actual})"),
        )),
        None => Err(key_file(path, "key_id is not 16 hexadecimal characters")),
    }
}

fn read_key_file(path: &Path) -> Result<Vec<u8>, VaultError> {
    let file = File::open(path).map_err(|e| key_file(path, format!("cannot be opened: {e}")))?;
    let mut text = Vec::with_capacity(1024);
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut text)
        .map_err(|e| key_file(path, format!("cannot be read: {e}")))?;
    if text.len() as u64 > MAX_KEY_FILE_LEN {
        wipe(&mut text);
        return Err(key_file(
            path,
            format!("is larger than {MAX_KEY_FILE_LEN} bytes, so it is not a key file"),
        ));
    }
    Ok(text)
}

/// Writes a new file atomically: the content goes to a temporary file in the same directory,
/// which is then hard-linked to the final name. Unlike rename, link fails if the name exists,
/// so a concurrent or earlier key is never replaced, and readers never see a half-written file.
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), VaultError> {
    let name = path
        .file_name()
        .ok_or_else(|| key_file(path, "has no file name"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.symlink_metadata().is_ok() {
        return Err(key_file(
            path,
            "already exists; refusing to overwrite a key file",
        ));
    }
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| VaultError::Randomness(e.to_string()))?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        encode_hex(&suffix)
    ));
    let written = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        // The umask may have cleared bits of `mode`; make the result exact.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(key_file(path, format!("cannot be written: {e}")));
    }
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(key_file(
                path,
                "already exists; refusing to overwrite a key file",
            ));
        }
        Err(e) => return Err(key_file(path, format!("cannot be created: {e}"))),
    }
    // Make the new directory entry durable; a failure here leaves a valid file, so not fatal.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *byte = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_key_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (public, private) = generate_keypair_files(dir.path()).unwrap();
        assert!(CataloguePrivateKey::load(&private).is_ok());
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = CataloguePrivateKey::load(&private).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        // the public key may be read by anyone
        assert!(CataloguePublicKey::load(&public).is_ok());
    }

    #[test]
    fn key_id_is_sha256_prefix_and_prints_as_hex() {
        let public = [7u8; 32];
        let digest = Sha256::digest(public);
        let id = KeyId::of_public_key(&public);
        assert_eq!(&id.0[..], &digest[..8]);
        let text = id.to_string();
        assert_eq!(text.len(), 16);
        assert!(
            text.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(KeyId::from_hex(&text), Some(id));
        assert_eq!(KeyId::from_hex("00112233445566"), None);
        assert_eq!(KeyId::from_hex("001122334455667g"), None);
        assert_eq!(
            KeyId([0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xff]).to_string(),
            "00112233445566ff"
        );
    }

    #[test]
    fn generated_pair_matches() {
        let (private, public) = CataloguePrivateKey::generate();
        assert_eq!(private.public(), public);
        assert_eq!(private.key_id(), public.key_id());
        assert_eq!(public.key_id(), KeyId::of_public_key(&public.to_bytes()));
        let (_, other) = CataloguePrivateKey::generate();
        assert_ne!(other.key_id(), public.key_id());
        // Debug must not reveal the secret.
        let shown = format!("{private:?}");
        let secret_hex = encode_hex(&private.hpke().to_bytes());
        assert!(!shown.contains(&secret_hex));
        assert!(shown.contains(&public.key_id().to_string()));
    }

    #[test]
    fn key_files_round_trip_with_private_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (pub_path, key_path) = generate_keypair_files(dir.path()).unwrap();
        assert_eq!(pub_path, dir.path().join("catalogue.pub"));
        assert_eq!(key_path, dir.path().join("catalogue.key"));
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let public = CataloguePublicKey::load(&pub_path).unwrap();
        let private = CataloguePrivateKey::load(&key_path).unwrap();
        assert_eq!(private.public(), public);
        assert_eq!(private.key_id(), public.key_id());

        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&pub_path).unwrap()).unwrap();
        assert_eq!(doc["kind"], "callvault-catalogue-public-key");
        assert_eq!(doc["algorithm"], "X25519-HKDF-SHA256");
        assert_eq!(doc["key_id"], public.key_id().to_string());
        assert_eq!(doc["public_key"], encode_hex(&public.to_bytes()));
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&key_path).unwrap()).unwrap();
        assert_eq!(doc["kind"], "callvault-catalogue-private-key");
        assert_eq!(doc["key_id"], public.key_id().to_string());
        assert_eq!(doc["private_key"].as_str().unwrap().len(), 64);

        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        generate_keypair_files(dir.path()).unwrap();
        let before = std::fs::read(dir.path().join("catalogue.key")).unwrap();
        let err = generate_keypair_files(dir.path()).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let (private, public) = CataloguePrivateKey::generate();
        let err = private.save(&dir.path().join("catalogue.key")).unwrap_err();
        assert!(err.to_string().contains("catalogue.key"), "{err}");
        assert!(public.save(&dir.path().join("catalogue.pub")).is_err());
        assert_eq!(
            std::fs::read(dir.path().join("catalogue.key")).unwrap(),
            before
        );
    }

    #[test]
    fn malformed_files_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let (pub_path, key_path) = generate_keypair_files(dir.path()).unwrap();
        let good_pub = std::fs::read_to_string(&pub_path).unwrap();
        let good_key = std::fs::read_to_string(&key_path).unwrap();

        let cases: Vec<(&str, String, &str)> = vec![
            (
                "garbage.pub",
                "not json".into(),
                "not a catalogue public key",
            ),
            (
                "wrongid.pub",
                good_pub.replacen("\"key_id\": \"", "\"key_id\": \"ff", 1),
                "key_id",
            ),
            (
                "shorthex.pub",
                good_pub.replacen("\"public_key\": \"", "\"public_key\": \"zz", 1),
                "public_key is not 64 hexadecimal",
            ),
            (
                "algo.pub",
                good_pub.replace("X25519-HKDF-SHA256", "P256"),
                "algorithm",
            ),
            ("swapped.pub", good_key.clone(), "private key file"),
        ];
        let public_id = CataloguePublicKey::load(&pub_path)
            .unwrap()
            .key_id()
            .to_string();
        let mut cases = cases;
        cases.push((
            "otherid.pub",
            good_pub.replace(&public_id, "0123456789abcdef"),
            "key_id 0123456789abcdef does not match",
        ));
        for (name, text, problem) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let err = CataloguePublicKey::load(&path).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains(problem), "{name}: {msg}");
        }

        let private_cases: Vec<(&str, String, &str)> = vec![
            ("garbage.key", "{\"kind\":".into(), "not valid JSON"),
            ("swapped.key", good_pub.clone(), "public key file"),
            (
                "badhex.key",
                good_key.replacen("\"private_key\": \"", "\"private_key\": \"q", 1),
                "private_key is not 64 hexadecimal",
            ),
            (
                "missing.key",
                "{\"kind\":\"callvault-catalogue-private-key\"}".into(),
                "missing, unknown or mistyped",
            ),
            ("huge.key", " ".repeat(5000), "larger than 4096"),
        ];
        for (name, text, problem) in private_cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let err = CataloguePrivateKey::load(&path).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains(problem), "{name}: {msg}");
        }

        // A private key whose stated key id belongs to another key is rejected.
        let (other, _) = CataloguePrivateKey::generate();
        let other_path = dir.path().join("other.key");
        other.save(&other_path).unwrap();
        let other_text = std::fs::read_to_string(&other_path).unwrap();
        let forged = other_text.replace(
            &other.key_id().to_string(),
            &CataloguePrivateKey::load(&key_path)
                .unwrap()
                .key_id()
                .to_string(),
        );
        let forged_path = dir.path().join("forged.key");
        std::fs::write(&forged_path, forged).unwrap();
        std::fs::set_permissions(&forged_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let msg = CataloguePrivateKey::load(&forged_path)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("forged.key") && msg.contains("does not match"),
            "{msg}"
        );

        let missing = dir.path().join("absent.key");
        let msg = CataloguePrivateKey::load(&missing).unwrap_err().to_string();
        assert!(
            msg.contains("absent.key") && msg.contains("cannot be opened"),
            "{msg}"
        );
    }
}
