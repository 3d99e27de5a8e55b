//! The audit log: append-only, hash-chained records of everything done with recordings.
//!
//! Owns the `audit` table. Each record carries the SHA-256 of the one before it and its own
//! hash over its canonical form; the database refuses UPDATE and DELETE on the table
//! (triggers), and `callvault audit verify` walks the chain offline and names the first record
//! that does not hold. A retrieval's record is committed before any audio is served.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::Mutex;

use super::store::{Store, now_ms};

/// The hash the first record chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Appends are serialised in the process, and across instances by the database: SQLite's
/// write transaction is exclusive, and on PostgreSQL each append takes [`APPEND_LOCK`] (a
/// transaction-scoped advisory lock) before it reads the chain's head. The primary key on
/// `seq` would refuse a fork even so.
pub static APPEND: Mutex<()> = Mutex::const_new(());

/// The PostgreSQL advisory lock that serialises appends to the chain.
const APPEND_LOCK: i64 = 0x6361_6c6c_7661_756c; // "callvaul"

/// The longest any text field of a record may be; longer ones are cut (and say so). A
/// stranger's 20 MiB user name must not become a 20 MiB audit record.
pub const MAX_FIELD: usize = 512;
/// The longest a record's JSON detail may be.
pub const MAX_DETAIL: usize = 64 << 10;

/// `text`, cut to `max` bytes at a character boundary, marked when cut.
fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes, cut)", &text[..end], text.len())
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub call_id: Option<String>,
    pub purpose: Option<String>,
    pub reference: Option<String>,
    /// JSON: what was done (search filters, counts, reasons).
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Every action the catalogue audits, with the words the audit page shows for it (its
/// filter offers each). A test holds the records the suites write to this list.
pub const ACTIONS: &[(&str, &str)] = &[
    ("login", "signed in"),
    ("login_failed", "sign-in failed"),
    ("login_refused", "sign-in refused (directory)"),
    ("login_throttled", "sign-ins throttled"),
    ("logout", "signed out"),
    ("token_created", "API token made"),
    ("token_refused", "API token refused"),
    ("token_revoke", "API token revoked"),
    ("csrf_refused", "forged request refused"),
    ("search", "searched calls"),
    ("search_export", "exported a search (CSV)"),
    ("view", "opened a call"),
    ("retrieve", "listened to or downloaded a call"),
    ("view_signalling", "read a call's signalling"),
    ("hold_on", "legal hold placed"),
    ("hold_off", "legal hold lifted"),
    ("restrict_on", "call restricted"),
    ("restrict_off", "restriction lifted"),
    ("erase", "call erased"),
    ("purge", "retention purge"),
    ("subject_access_search", "subject access: calls counted"),
    ("subject_access_export", "subject access: bundle made"),
    ("training_consent", "training agreement given"),
    ("training_consent_withdrawn", "training agreement withdrawn"),
    ("training_export", "anonymised training export"),
    ("user_add", "user added"),
    ("user_edit", "user changed"),
    ("user_disable", "user disabled"),
    ("user_enable", "user enabled"),
    ("user_delete", "user deleted"),
    ("user_password_reset", "password reset"),
    ("user_second_factor_reset", "second factor cleared"),
    ("user_approved", "account approved by a DPO"),
    ("user_approval_failed", "approval failed"),
    ("agent_add", "agent registered"),
    ("agent_disable", "agent disabled"),
    ("agent_enable", "agent enabled"),
    ("agent_scope", "agent's number list changed"),
    ("upload_refused", "agent upload refused"),
    ("integrity_failure", "stored audio failed its check"),
];

/// The audit page's words for an action (the action itself when unlisted).
pub fn action_label(action: &str) -> &str {
    ACTIONS
        .iter()
        .find(|(a, _)| *a == action)
        .map_or(action, |(_, label)| label)
}

/// A record's detail as a line people read: `key: value; …`, lists joined, nested objects
/// flattened (`filters.caller: …`), nulls and empty lists left out.
pub fn detail_text(detail: &str) -> String {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value;
        match v {
            Value::Null => {}
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.replace('_', " ")
                    } else {
                        format!("{prefix}.{}", k.replace('_', " "))
                    };
                    walk(&key, v, out);
                }
            }
            Value::Array(a) if a.is_empty() => {}
            Value::Array(a) => {
                let items: Vec<String> = a
                    .iter()
                    .map(|x| match x {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.push(format!("{prefix}: {}", items.join(", ")));
            }
            Value::String(s) if s.is_empty() => {}
            Value::String(s) => out.push(format!("{prefix}: {s}")),
            other => out.push(format!("{prefix}: {other}")),
        }
    }
    let mut out = Vec::new();
    match serde_json::from_str::<serde_json::Value>(detail) {
        Ok(v) => walk("", &v, &mut out),
        Err(_) => out.push(detail.to_owned()),
    }
    out.join("; ")
}

/// What a new record says.
#[derive(Clone, Debug, Default)]
pub struct Entry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub call_id: Option<&'a str>,
    pub purpose: Option<&'a str>,
    pub reference: Option<&'a str>,
    pub detail: serde_json::Value,
}

/// The hash of a record: SHA-256 over its fields, length-prefixed, and the previous hash.
pub fn record_hash(r: &AuditRecord) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(r.prev_hash.as_bytes());
    field(&r.seq.to_be_bytes());
    field(&r.at_ms.to_be_bytes());
    field(r.actor.as_bytes());
    field(r.action.as_bytes());
    for opt in [&r.call_id, &r.purpose, &r.reference] {
        match opt {
            Some(v) => {
                field(b"1");
                field(v.as_bytes());
            }
            None => field(b"0"),
        }
    }
    field(r.detail.as_bytes());
    hex::encode(h.finalize())
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at_ms")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        call_id: row.try_get("call_id")?,
        purpose: row.try_get("purpose")?,
        reference: row.try_get("reference")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Filters of an audit listing.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub call_id: Option<String>,
    /// Only records about calls in which this extension or number took part.
    pub party: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// The result of walking the chain.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Verification {
    pub records: i64,
    pub ok: bool,
    /// The first record that does not hold, and why.
    pub first_broken: Option<(i64, String)>,
    /// The chain against its newest signed head (`audit_heads`), when heads were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed: Option<super::audit_heads::HeadCheck>,
}

impl Store {
    /// Appends a record and commits it; returns it.
    pub async fn audit(&self, e: Entry<'_>) -> Result<AuditRecord, sqlx::Error> {
        let _one_writer = APPEND.lock().await;
        let mut tx = self.write_tx().await?;
        if self.backend == super::store::Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(APPEND_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let last = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (seq, prev_hash) = match last {
            Some(r) => (
                r.try_get::<i64, _>("seq")? + 1,
                r.try_get::<String, _>("hash")?,
            ),
            None => (1, GENESIS.to_owned()),
        };
        let mut r = AuditRecord {
            seq,
            at_ms: now_ms(),
            actor: bounded(e.actor, MAX_FIELD),
            action: bounded(e.action, MAX_FIELD),
            call_id: e.call_id.map(|v| bounded(v, MAX_FIELD)),
            purpose: e.purpose.map(|v| bounded(v, MAX_FIELD)),
            reference: e.reference.map(|v| bounded(v, MAX_FIELD)),
            detail: {
                let d = e.detail.to_string();
                if d.len() > MAX_DETAIL {
                    serde_json::json!({ "cut": bounded(&d, MAX_DETAIL) }).to_string()
                } else {
                    d
                }
            },
            prev_hash,
            hash: String::new(),
        };
        r.hash = record_hash(&r);
        sqlx::query(
            "INSERT INTO audit (seq, at_ms, actor, action, call_id, purpose, reference, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(r.seq)
        .bind(r.at_ms)
        .bind(&r.actor)
        .bind(&r.action)
        .bind(r.call_id.clone())
        .bind(r.purpose.clone())
        .bind(r.reference.clone())
        .bind(&r.detail)
        .bind(&r.prev_hash)
        .bind(&r.hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r)
    }

    pub async fn audit_list(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, sqlx::Error> {
        // A fixed statement with optional filters: `($n IS NULL OR col = $n)`.
        let sql = "SELECT seq, at_ms, actor, action, call_id, purpose, reference, detail, prev_hash, hash FROM audit \
             WHERE ($1 IS NULL OR at_ms >= $1) AND ($2 IS NULL OR at_ms < $2) \
             AND ($3 IS NULL OR actor = $3) AND ($4 IS NULL OR action = $4) \
             AND ($5 IS NULL OR call_id = $5) \
             AND ($6 IS NULL OR call_id IN (SELECT call_id FROM call_parties WHERE party = $6)) \
             ORDER BY seq DESC LIMIT $7 OFFSET $8";
        let rows = sqlx::query(sql)
            .bind(q.from_ms)
            .bind(q.to_ms)
            .bind(q.actor.clone())
            .bind(q.action.clone())
            .bind(q.call_id.clone())
            .bind(q.party.clone())
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Walks the whole chain in order.
    pub async fn audit_verify(&self) -> Result<Verification, sqlx::Error> {
        let mut prev = GENESIS.to_owned();
        let mut expected_seq = 1i64;
        let mut records = 0i64;
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(
                "SELECT seq, at_ms, actor, action, call_id, purpose, reference, detail, prev_hash, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT 5000",
            )
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let r = from_row(row)?;
                after = r.seq;
                records += 1;
                let broken = if r.seq != expected_seq {
                    Some(format!("record {expected_seq} is missing"))
                } else if r.prev_hash != prev {
                    Some("does not chain to the record before it".into())
                } else if record_hash(&r) != r.hash {
                    Some("its content does not match its hash (altered)".into())
                } else {
                    None
                };
                if let Some(why) = broken {
                    return Ok(Verification {
                        records,
                        ok: false,
                        first_broken: Some((r.seq, why)),
                        signed: None,
                    });
                }
                prev = r.hash;
                expected_seq += 1;
            }
        }
        Ok(Verification {
            records,
            ok: true,
            first_broken: None,
            signed: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_read_as_a_line_and_actions_by_their_words() {
        let d = r#"{"filters":{"caller":["+447700900403"],"service":null},"found":2,"added":["020 7371 5678 (Parking)"],"removed":[],"from":"10.0.0.9"}"#;
        assert_eq!(
            detail_text(d),
            "added: 020 7371 5678 (Parking); filters.caller: +447700900403; found: 2; from: 10.0.0.9"
        );
        assert_eq!(detail_text("{}"), "");
        assert_eq!(action_label("agent_scope"), "agent's number list changed");
        assert_eq!(action_label("something_new"), "something_new");
    }

    #[test]
    fn every_field_is_in_the_hash() {
        let r = AuditRecord {
            seq: 3,
            at_ms: 1,
            actor: "a".into(),
            action: "retrieve".into(),
            call_id: Some("c".into()),
            purpose: Some("complaint".into()),
            reference: Some("C-1".into()),
            detail: "{}".into(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        };
        let h = record_hash(&r);
        let variants = [
            AuditRecord {
                seq: 4,
                ..r.clone()
            },
            AuditRecord {
                at_ms: 2,
                ..r.clone()
            },
            AuditRecord {
                actor: "b".into(),
                ..r.clone()
            },
            AuditRecord {
                action: "search".into(),
                ..r.clone()
            },
            AuditRecord {
                call_id: None,
                ..r.clone()
            },
            AuditRecord {
                purpose: Some("crime".into()),
                ..r.clone()
            },
            AuditRecord {
                reference: Some("".into()),
                ..r.clone()
            },
            AuditRecord {
                detail: "{ }".into(),
                ..r.clone()
            },
            AuditRecord {
                prev_hash: "1".into(),
                ..r.clone()
            },
        ];
        for v in variants {
            assert_ne!(record_hash(&v), h, "{v:?}");
        }
        // field boundaries are unambiguous
        let a = AuditRecord {
            actor: "ab".into(),
            action: "c".into(),
            ..r.clone()
        };
        let b = AuditRecord {
            actor: "a".into(),
            action: "bc".into(),
            ..r.clone()
        };
        assert_ne!(record_hash(&a), record_hash(&b));
    }
}
