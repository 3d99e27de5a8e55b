//! Numbers as people type them and as agents send them, read by the agents' own rules.
//!
//! Owns the catalogue's numbering rules (`[numbers]`: the agents' country and extension
//! length, through the same normaliser, [`crate::policy::number::normalise`]) and the
//! searchable forms of a call's numbers: every party as the PBX wrote it and as one
//! normalised number, so "07700 900403", "447700900403" and "+44 7700 900403" find the same
//! calls whichever way the PBX wrote them. When the rules change, [`renormalise`] rebuilds
//! the stored forms from the calls' documents. It decides nothing about who may search.

use sqlx::Row;

use super::config::NumbersSection;
use super::store::Store;
use crate::policy::number::{Country, normalise, user_part};
use crate::record::CallRecord;

/// The catalogue's numbering rules.
#[derive(Clone, Copy, Debug)]
pub struct Numbers {
    country: Country,
    extension_max_digits: usize,
}

impl Numbers {
    /// The rules of `[numbers]` (checked when the configuration was read; GB otherwise).
    pub fn of(section: &NumbersSection) -> Numbers {
        Numbers {
            country: Country::from_iso(&section.country).unwrap_or(Country::GB),
            extension_max_digits: section.extension_max_digits,
        }
    }

    /// What the stored forms were made with (kept in `settings`).
    fn label(&self) -> String {
        format!("{}/{}", self.country.iso, self.extension_max_digits)
    }

    /// One number as the agents normalise it ("+447700900403", "2001", or as written).
    pub fn normal(&self, raw: &str) -> String {
        normalise(raw, self.country, self.extension_max_digits).to_string()
    }

    /// The forms a typed number is looked up by: normalised, and as typed (a stored "anonymous"
    /// or "*99" is found as written).
    pub fn typed(&self, raw: &str) -> Vec<String> {
        let mut forms = vec![self.normal(raw), user_part(raw).trim().to_owned()];
        forms.retain(|f| !f.is_empty());
        forms.dedup();
        forms
    }

    /// Every number that took part in a call (its caller, each leg's from, to and dialled),
    /// as written and normalised, sorted and once each.
    pub fn parties(&self, record: &CallRecord) -> Vec<String> {
        let mut parties: Vec<String> = record
            .legs
            .iter()
            .flat_map(|l| [l.from.as_str(), l.to.as_str(), l.dialled.as_str()])
            .chain(std::iter::once(record.caller.as_str()))
            .filter(|p| !p.trim().is_empty())
            .flat_map(|p| [p.trim().to_owned(), self.normal(p)])
            .filter(|p| !p.is_empty())
            .collect();
        parties.sort_unstable();
        parties.dedup();
        parties
    }
}

/// Rebuilds every call's searchable numbers when they were made with other rules (or none
/// recorded: a catalogue from before they were kept). Returns how many calls it re-read.
pub async fn renormalise(store: &Store, numbers: Numbers) -> Result<u64, sqlx::Error> {
    let made_with: Option<String> =
        sqlx::query("SELECT value FROM settings WHERE name = 'numbers_rules'")
            .fetch_optional(&store.pool)
            .await?
            .map(|r| r.try_get("value"))
            .transpose()?;
    if made_with.as_deref() == Some(numbers.label().as_str()) {
        return Ok(0);
    }
    let mut after = String::new();
    let mut done = 0;
    loop {
        let rows = sqlx::query(
            "SELECT call_id, document FROM calls WHERE call_id > $1 ORDER BY call_id LIMIT 500",
        )
        .bind(after.clone())
        .fetch_all(&store.pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("call_id")?;
        let mut tx = store.write_tx().await?;
        for row in &rows {
            let call_id: String = row.try_get("call_id")?;
            let document: String = row.try_get("document")?;
            // a document that no longer reads keeps the forms it has
            let Ok(record) = serde_json::from_str::<CallRecord>(&document) else {
                continue;
            };
            sqlx::query("DELETE FROM call_parties WHERE call_id = $1")
                .bind(&call_id)
                .execute(&mut *tx)
                .await?;
            for p in numbers.parties(&record) {
                // another instance starting at the same time may be doing the same
                sqlx::query(
                    "INSERT INTO call_parties (call_id, party) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                    .bind(&call_id)
                    .bind(p)
                    .execute(&mut *tx)
                    .await?;
            }
            done += 1;
        }
        tx.commit().await?;
    }
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ('numbers_rules', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(numbers.label())
    .execute(&store.pool)
    .await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ways_people_type_one_number_are_one_number() {
        let n = Numbers::of(&NumbersSection::default());
        for typed in [
            "07700 900403",
            "07700900403",
            "447700900403",
            "+44 7700 900403",
            "+447700900403",
            "00447700900403",
            "sip:07700900403@pbx.example",
        ] {
            assert_eq!(n.normal(typed), "+447700900403", "{typed}");
            assert_eq!(n.typed(typed)[0], "+447700900403", "{typed}");
        }
        assert_eq!(n.normal("2001"), "2001");
        assert_eq!(n.typed("anonymous"), vec!["anonymous"]);
    }
}
