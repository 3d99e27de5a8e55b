//! Signed heads of the audit chain, kept outside the database: the anchor an insider with
//! the database alone cannot forge.
//!
//! The hash chain (`audit`) shows a record changed or removed in the middle; it cannot show
//! the last records deleted, or the whole chain rebuilt and re-hashed after an edit, since
//! its hashes need no key. So every [`AuditSection::sign_every_seconds`] (and every
//! [`SIGN_EVERY_RECORDS`] records) the catalogue signs the chain's head (its last record's
//! number and hash, and the time) with an Ed25519 key derived from the catalogue's private
//! key, and appends the signed head to a file (`audit.heads_file`, synced, mode 0600) and to
//! the log (journald under systemd; a remote syslog takes it further). `audit verify` checks
//! the chain against the newest head whose signature holds: a chain that ends before it was
//! truncated, one whose record differs from it was rewritten.
//!
//! What it does not protect against: someone who holds the catalogue's private key (they can
//! sign new heads), or who can also delete the heads file and the log; and records appended
//! after the newest signed head (at most a minute's or [`SIGN_EVERY_RECORDS`]) can still be
//! removed without trace. Keep a copy of the heads off the host (syslog, an object-locked
//! bucket) where that matters.
//!
//! Owns the head statement, its signature, the file and the check. Signing uses ring (already
//! in the tree for TLS); the key is derived, so it is backed up and rotated with the
//! catalogue key and needs no file of its own.
//!
//! [`AuditSection::sign_every_seconds`]: super::config::AuditSection::sign_every_seconds

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::App;
use super::store::{Store, now_ms};
use crate::vault::CataloguePrivateKey;

/// A head is signed at least this often, counted in records.
pub const SIGN_EVERY_RECORDS: i64 = 100;
const SEED_LABEL: &str = "audit head signing key v1";

/// One signed head, as a line of the heads file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedHead {
    pub seq: i64,
    pub hash: String,
    pub at_ms: i64,
    /// The signing key's public half, hex.
    pub key: String,
    pub sig: String,
}

/// What is signed.
fn statement(seq: i64, hash: &str, at_ms: i64) -> Vec<u8> {
    format!("callvault audit head v1\nseq {seq}\nhash {hash}\nat {at_ms}\n").into_bytes()
}

/// The signing key of a catalogue key.
pub struct Signer(Ed25519KeyPair);

impl Signer {
    pub fn of(key: &CataloguePrivateKey) -> Option<Signer> {
        let seed = key.derive_seed(SEED_LABEL);
        Ed25519KeyPair::from_seed_unchecked(&seed).ok().map(Signer)
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.0.public_key().as_ref())
    }

    pub fn sign(&self, seq: i64, hash: &str, at_ms: i64) -> SignedHead {
        let sig = self.0.sign(&statement(seq, hash, at_ms));
        SignedHead {
            seq,
            hash: hash.to_owned(),
            at_ms,
            key: self.public_hex(),
            sig: hex::encode(sig.as_ref()),
        }
    }
}

/// Whether `head` is signed by one of `keys` (the public halves, hex).
pub fn signature_holds(head: &SignedHead, keys: &[String]) -> bool {
    if !keys.contains(&head.key) {
        return false;
    }
    let (Ok(public), Ok(sig)) = (hex::decode(&head.key), hex::decode(&head.sig)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public)
        .verify(&statement(head.seq, &head.hash, head.at_ms), &sig)
        .is_ok()
}

/// Appends a head to the file, synced (created 0600).
pub fn append(path: &Path, head: &SignedHead) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut line = serde_json::to_vec(head).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(&line)?;
    f.sync_data()
}

/// The heads in a file (none if there is no file), and how many lines were not heads.
pub fn read(path: &Path) -> std::io::Result<(Vec<SignedHead>, usize)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut heads = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(h) => heads.push(h),
            Err(_) => bad += 1,
        }
    }
    Ok((heads, bad))
}

/// The chain against its newest signed head.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HeadCheck {
    /// The newest head whose signature holds.
    pub newest: Option<SignedHead>,
    /// Heads whose signature does not hold (forged, or signed by a key not configured).
    pub unsigned: usize,
    /// What is wrong, if anything: (the signed record's number, why).
    pub problem: Option<(i64, String)>,
}

impl Store {
    /// The chain's last record: (seq, hash).
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, sqlx::Error> {
        let row = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("seq")?, r.try_get("hash")?)))
            .transpose()
    }

    async fn audit_hash(&self, seq: i64) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT hash FROM audit WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("hash")).transpose()
    }

    /// Checks the chain against `heads`, signed by one of `keys`.
    pub async fn check_heads(
        &self,
        heads: &[SignedHead],
        keys: &[String],
    ) -> Result<HeadCheck, sqlx::Error> {
        let (good, forged): (Vec<&SignedHead>, Vec<&SignedHead>) =
            heads.iter().partition(|h| signature_holds(h, keys));
        let newest = good.into_iter().max_by_key(|h| (h.seq, h.at_ms)).cloned();
        let mut check = HeadCheck {
            newest: newest.clone(),
            unsigned: forged.len(),
            problem: None,
        };
        let Some(head) = newest else {
            return Ok(check);
        };
        let signed_at = crate::time::Timestamp::from_millis(head.at_ms.max(0) as u64).rfc3339();
        check.problem = match self.audit_hash(head.seq).await? {
            None => {
                let last = self.audit_head().await?.map(|h| h.0).unwrap_or(0);
                Some((
                    head.seq,
                    format!(
                        "the chain ends at record {last}, but a head signed at {signed_at} names record {}: records were removed (truncated)",
                        head.seq
                    ),
                ))
            }
            Some(hash) if hash != head.hash => Some((
                head.seq,
                format!(
                    "record {} is not the one signed at {signed_at}: the chain was rewritten",
                    head.seq
                ),
            )),
            Some(_) => None,
        };
        Ok(check)
    }
}

/// The chain walked, then held to its newest signed head in `heads_file`: a truncated or
/// rewritten chain is broken even when its hashes hold.
pub async fn verify(
    store: &Store,
    heads_file: &Path,
    keys: &[CataloguePrivateKey],
) -> Result<super::audit::Verification, sqlx::Error> {
    let mut v = store.audit_verify().await?;
    let heads = match read(heads_file) {
        Ok((heads, _)) => heads,
        Err(e) => {
            tracing::warn!("{}: {e}", heads_file.display());
            Vec::new()
        }
    };
    let check = store.check_heads(&heads, &public_keys(keys)).await?;
    if v.first_broken.is_none()
        && let Some(problem) = &check.problem
    {
        v.ok = false;
        v.first_broken = Some(problem.clone());
    }
    v.signed = Some(check);
    Ok(v)
}

/// The public halves of the signing keys of every configured catalogue key.
pub fn public_keys(keys: &[CataloguePrivateKey]) -> Vec<String> {
    keys.iter()
        .filter_map(Signer::of)
        .map(|s| s.public_hex())
        .collect()
}

/// Signs the head when it has moved (every `every`, or every [`SIGN_EVERY_RECORDS`]
/// records), until the process ends; `last` is the seq signed last.
pub async fn sign_now(app: &App, last: &mut i64) -> Result<(), String> {
    let Some(signer) = app.keys.first().and_then(Signer::of) else {
        return Err("no catalogue key to sign with".into());
    };
    let Some((seq, hash)) = app.store.audit_head().await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    if seq <= *last {
        return Ok(());
    }
    let head = signer.sign(seq, &hash, now_ms());
    let path = app.config.audit.heads_file.clone();
    let line = head.clone();
    tokio::task::spawn_blocking(move || append(&path, &line))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{}: {e}", app.config.audit.heads_file.display()))?;
    // the same head in the log, for a copy outside this host (journald, syslog)
    tracing::info!(
        target: "callvault::audit_head",
        seq = head.seq,
        hash = %head.hash,
        at_ms = head.at_ms,
        key = %head.key,
        sig = %head.sig,
        "audit chain head signed"
    );
    *last = seq;
    Ok(())
}

/// The signer's loop (one per instance; each signs the head it sees).
pub async fn run(app: App) {
    let every = Duration::from_secs(app.config.audit.sign_every_seconds.max(1));
    let mut last = 0i64;
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every.min(Duration::from_secs(5))).await;
        let moved = match app.store.audit_head().await {
            Ok(Some((seq, _))) => seq - last,
            _ => 0,
        };
        if moved >= SIGN_EVERY_RECORDS || (moved > 0 && since.elapsed() >= every) {
            if let Err(e) = sign_now(&app, &mut last).await {
                tracing::error!("signing the audit chain's head: {e}");
            }
            since = tokio::time::Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_verifies_with_its_key_only_and_every_field_is_signed() {
        let (key, _) = CataloguePrivateKey::generate();
        let (other, _) = CataloguePrivateKey::generate();
        let signer = Signer::of(&key).unwrap();
        let keys = public_keys(std::slice::from_ref(&key));
        let head = signer.sign(41, "ab", 1_000);
        assert!(signature_holds(&head, &keys));
        // the same key derived twice
        assert_eq!(Signer::of(&key).unwrap().public_hex(), keys[0]);
        assert!(!signature_holds(&head, &public_keys(&[other])));
        for forged in [
            SignedHead {
                seq: 40,
                ..head.clone()
            },
            SignedHead {
                hash: "ac".into(),
                ..head.clone()
            },
            SignedHead {
                at_ms: 1_001,
                ..head.clone()
            },
        ] {
            assert!(!signature_holds(&forged, &keys), "{forged:?}");
        }
    }
}
