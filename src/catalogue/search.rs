//! Finding calls: by date range, caller number, service, staff extension or any party's
//! number, SIP Call-ID and duration; paged, newest first.
//!
//! Owns the search query. It never widens a caller's view: a manager's search is confined to
//! their services in the query itself, and restricted calls are seen by the DPO only.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::numbers::Numbers;
use super::people::{Caller, Role};
use super::store::{Store, rfc3339_ms};

/// A search as asked for (the API's query string, the search form): every filter as typed.
/// [`CallQuery::read`] reads it into [`Filters`] or says what to fix; nothing typed is ignored.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CallQuery {
    /// A day (2026-03-03) or a time without an offset (2026-03-03T09:30), both in the
    /// catalogue's time zone, an RFC 3339 time or milliseconds since the epoch.
    pub from: Option<String>,
    /// Exclusive, like `from`.
    pub to: Option<String>,
    /// The caller's number, in any format people write numbers in.
    pub caller: Option<String>,
    /// A service the agents report (any case).
    pub service: Option<String>,
    /// A staff extension or any number that took part in the call.
    pub party: Option<String>,
    pub sip_call_id: Option<String>,
    /// Talk time (the audio recorded), at least and at most, seconds.
    pub min_seconds: Option<String>,
    pub max_seconds: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// A search's filters, read: numbers in every form they are stored in, times in ms.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub caller: Vec<String>,
    pub service: Option<String>,
    pub party: Vec<String>,
    pub sip_call_id: Option<String>,
    pub min_ms: Option<i64>,
    pub max_ms: Option<i64>,
    pub page: i64,
    pub page_size: i64,
}

/// A filter that cannot be read: which, and what to write instead.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadFilter(pub String);

impl CallQuery {
    /// Reads the filters: numbers by the agents' rules, the service against those the agents
    /// report (`services`; any spelling of case), times and counts strictly.
    pub fn read(
        &self,
        numbers: &Numbers,
        services: &[String],
        zone: &super::zone::Zone,
    ) -> Result<Filters, BadFilter> {
        let time = |key: &str, v: &Option<String>| -> Result<Option<i64>, BadFilter> {
            let Some(v) = blank(v) else { return Ok(None) };
            if let Ok(n) = v.parse::<i64>()
                && n < MIN_MS
            {
                return Err(BadFilter(format!(
                    "{key}: {v} is not milliseconds since 1970 (it would be before 1973): seconds? write {v}000"
                )));
            }
            time_ms(&v, zone).map(Some).ok_or_else(|| {
                BadFilter(format!(
                    "{key}: {v:?} is not a time: write a day (2026-03-03) or a time (2026-03-03T09:30), both read in {}, a time with its offset (2026-03-03T09:30:00Z) or milliseconds since 1970",
                    zone.name()
                ))
            })
        };
        let count = |key: &str, v: &Option<String>, what: &str| -> Result<Option<i64>, BadFilter> {
            let Some(v) = blank(v) else { return Ok(None) };
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or_else(|| BadFilter(format!("{key}: {v:?} is not {what}")))
        };
        let from_ms = time("from", &self.from)?;
        let to_ms = time("to", &self.to)?;
        if let (Some(f), Some(t)) = (from_ms, to_ms)
            && f >= t
        {
            return Err(BadFilter(
                "from is not before to: no call can be found between them (swap them?)".into(),
            ));
        }
        let min_s = count(
            "min_seconds",
            &self.min_seconds,
            "a whole number of seconds",
        )?;
        let max_s = count(
            "max_seconds",
            &self.max_seconds,
            "a whole number of seconds",
        )?;
        if let (Some(lo), Some(hi)) = (min_s, max_s)
            && lo > hi
        {
            return Err(BadFilter(
                "min_seconds is more than max_seconds: no call is that long and that short".into(),
            ));
        }
        let service = match blank(&self.service) {
            None => None,
            Some(typed) if services.is_empty() => Some(typed),
            Some(typed) => Some(
                services
                    .iter()
                    .find(|s| s.eq_ignore_ascii_case(&typed))
                    .cloned()
                    .ok_or_else(|| {
                        BadFilter(format!(
                            "service: no agent records a service called {typed:?}; the services are: {}",
                            services.join(", ")
                        ))
                    })?,
            ),
        };
        let page = count("page", &self.page, "a page number (1, 2, ...)")?;
        let page_size = count(
            "page_size",
            &self.page_size,
            "a number of calls per page (1 to 500)",
        )?;
        Ok(Filters {
            from_ms,
            to_ms,
            caller: blank(&self.caller)
                .map(|c| numbers.typed(&c))
                .unwrap_or_default(),
            service,
            party: blank(&self.party)
                .map(|p| numbers.typed(&p))
                .unwrap_or_default(),
            sip_call_id: blank(&self.sip_call_id),
            min_ms: min_s.map(|s| s.saturating_mul(1000)),
            max_ms: max_s.map(|s| s.saturating_mul(1000)),
            page: page.unwrap_or(1).clamp(1, 1_000_000),
            page_size: page_size.unwrap_or(50).clamp(1, 500),
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallSummary {
    pub call_id: String,
    pub started_ms: i64,
    pub duration_ms: i64,
    /// Talk time: the audio recorded (the call's length everywhere people read it).
    pub audio_ms: i64,
    /// How long it rang before it was answered (None: never answered, or not known).
    #[serde(default)]
    pub ring_ms: Option<i64>,
    pub caller: String,
    pub dialled: Option<String>,
    pub service: Option<String>,
    pub end_reason: Option<String>,
    pub expires_ms: i64,
    pub legal_hold: bool,
    pub restricted: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchResult {
    pub page: i64,
    pub page_size: i64,
    pub total: i64,
    pub calls: Vec<CallSummary>,
}

/// The smallest number read as milliseconds since 1970 (3 March 1973): anything smaller is
/// seconds (a Unix time of 10 digits) or a mistake, never a call recorded.
const MIN_MS: i64 = 100_000_000_000;

/// Milliseconds since the epoch, an RFC 3339 time, or a day (its first moment) or a time
/// without an offset, in the catalogue's zone.
fn time_ms(s: &str, zone: &super::zone::Zone) -> Option<i64> {
    let s = s.trim();
    // the zone's reading first: a time without an offset is the zone's, not UTC
    s.parse::<i64>()
        .ok()
        .or_else(|| zone.local_ms(s))
        .or_else(|| rfc3339_ms(s))
}

fn blank(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn summary(r: &sqlx::any::AnyRow) -> Result<CallSummary, sqlx::Error> {
    Ok(CallSummary {
        call_id: r.try_get("call_id")?,
        started_ms: r.try_get("started_ms")?,
        duration_ms: r.try_get("duration_ms")?,
        audio_ms: r.try_get("audio_ms")?,
        ring_ms: r.try_get("ring_ms")?,
        caller: r.try_get("caller")?,
        dialled: r.try_get("dialled")?,
        service: r.try_get("service")?,
        end_reason: r.try_get("end_reason")?,
        expires_ms: r.try_get("expires_ms")?,
        legal_hold: r.try_get::<i32, _>("legal_hold")? != 0,
        restricted: r.try_get::<i32, _>("restricted")? != 0,
    })
}

/// A bound value of a search.
enum Arg {
    Int(i64),
    Text(String),
}

/// The WHERE clause of a search, with only the filters given (each query then uses its
/// index; a generic `($n IS NULL OR ...)` form made SQLite scan the table: 150 ms for one
/// caller among 100,000 calls, against under a millisecond here), and its arguments.
fn filter(who: &Caller, q: &Filters) -> (String, Vec<Arg>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    let mut add = |clause: &str, arg: Arg| {
        args.push(arg);
        clauses.push(clause.replace('?', &format!("${}", args.len())));
    };
    if let Some(t) = q.from_ms {
        add("c.started_ms >= ?", Arg::Int(t));
    }
    if let Some(t) = q.to_ms {
        add("c.started_ms < ?", Arg::Int(t));
    }
    // a number's forms (normalised, as typed): each its own equality, so each uses the index
    if !q.caller.is_empty() {
        let mut ors = Vec::new();
        for form in &q.caller {
            args.push(Arg::Text(form.clone()));
            ors.push(format!("c.caller = ${}", args.len()));
        }
        clauses.push(format!("({})", ors.join(" OR ")));
    }
    if let Some(v) = &q.service {
        args.push(Arg::Text(v.clone()));
        clauses.push(format!("c.service = ${}", args.len()));
    }
    if !q.party.is_empty() {
        let mut marks = Vec::new();
        for form in &q.party {
            args.push(Arg::Text(form.clone()));
            marks.push(format!("${}", args.len()));
        }
        clauses.push(format!(
            "c.call_id IN (SELECT call_id FROM call_parties WHERE party IN ({}))",
            marks.join(", ")
        ));
    }
    if let Some(v) = &q.sip_call_id {
        args.push(Arg::Text(v.clone()));
        clauses.push(format!(
            "c.call_id IN (SELECT call_id FROM call_sip_ids WHERE sip_call_id = ${})",
            args.len()
        ));
    }
    if let Some(v) = q.min_ms {
        args.push(Arg::Int(v));
        clauses.push(format!("c.audio_ms >= ${}", args.len()));
    }
    if let Some(v) = q.max_ms {
        args.push(Arg::Int(v));
        clauses.push(format!("c.audio_ms <= ${}", args.len()));
    }
    if who.role == Role::Manager {
        // a manager with no service sees nothing
        let mut placeholders = Vec::new();
        for svc in &who.services {
            args.push(Arg::Text(svc.clone()));
            placeholders.push(format!("${}", args.len()));
        }
        if placeholders.is_empty() {
            clauses.push("1 = 0".into());
        } else {
            clauses.push(format!("c.service IN ({})", placeholders.join(", ")));
        }
    }
    if !who.role.sees_restricted() {
        clauses.push("NOT c.restricted".into());
    }
    if clauses.is_empty() {
        clauses.push("1 = 1".into());
    }
    (clauses.join(" AND "), args)
}

fn bind<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    args: &[Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for a in args {
        query = match a {
            Arg::Int(v) => query.bind(*v),
            Arg::Text(v) => query.bind(v.clone()),
        };
    }
    query
}

impl Store {
    /// A search as a person runs it (API or web UI): the result, and its audit record
    /// (who, the filters, how many calls matched) committed before it is shown.
    pub async fn audited_search(
        &self,
        who: &Caller,
        q: &CallQuery,
        filters: &Filters,
    ) -> Result<SearchResult, sqlx::Error> {
        let result = self.search(who, filters).await?;
        self.audit(super::audit::Entry {
            actor: &who.username,
            action: "search",
            detail: serde_json::json!({ "filters": q, "total": result.total }),
            ..Default::default()
        })
        .await?;
        Ok(result)
    }

    pub async fn search(&self, who: &Caller, q: &Filters) -> Result<SearchResult, sqlx::Error> {
        let (page, page_size) = (q.page, q.page_size);
        let (where_clause, args) = filter(who, q);
        // the clause is built from fixed fragments; every value is a bound argument
        let count_sql = sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM calls c WHERE {where_clause}"
        ));
        let total: i64 = bind(sqlx::query(count_sql), &args)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let list_sql = sqlx::AssertSqlSafe(format!(
            "SELECT c.call_id, c.started_ms, c.duration_ms, c.audio_ms, c.ring_ms, c.caller, c.dialled, c.service, c.end_reason, c.expires_ms, \
             CASE WHEN c.legal_hold THEN 1 ELSE 0 END AS legal_hold, CASE WHEN c.restricted THEN 1 ELSE 0 END AS restricted \
             FROM calls c WHERE {where_clause} ORDER BY c.started_ms DESC, c.call_id LIMIT {page_size} OFFSET {}",
            (page - 1) * page_size
        ));
        let rows = bind(sqlx::query(list_sql), &args)
            .fetch_all(&self.pool)
            .await?;
        let calls = rows
            .iter()
            .map(summary)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(SearchResult {
            page,
            page_size,
            total,
            calls,
        })
    }

    /// A search's whole result for a report (newest first, at most [`EXPORT_MAX`] calls),
    /// with its audit record (who, the filters, how many) committed first.
    pub async fn audited_export(
        &self,
        who: &Caller,
        q: &CallQuery,
        filters: &Filters,
    ) -> Result<(Vec<CallSummary>, i64), sqlx::Error> {
        let mut page = Filters {
            page: 1,
            page_size: 500,
            ..filters.clone()
        };
        let first = self.search(who, &page).await?;
        self.audit(super::audit::Entry {
            actor: &who.username,
            action: "search_export",
            detail: serde_json::json!({ "filters": q, "total": first.total, "rows": first.total.min(EXPORT_MAX) }),
            ..Default::default()
        })
        .await?;
        let total = first.total;
        let mut calls = first.calls;
        while (calls.len() as i64) < total.min(EXPORT_MAX) {
            page.page += 1;
            let more = self.search(who, &page).await?.calls;
            if more.is_empty() {
                break;
            }
            calls.extend(more);
        }
        calls.truncate(EXPORT_MAX as usize);
        Ok((calls, total))
    }

    /// One call's search row (its hold and retention date), whoever asks.
    pub async fn search_one(&self, call_id: &str) -> Result<Option<CallSummary>, sqlx::Error> {
        let dpo = Caller {
            username: String::new(),
            role: Role::Dpo,
            services: Vec::new(),
            extension: None,
            form_token: String::new(),
            api_token: false,
        };
        let q = Filters {
            page: 1,
            page_size: 1,
            ..Default::default()
        };
        let (mut where_clause, mut args) = filter(&dpo, &q);
        args.push(Arg::Text(call_id.to_owned()));
        where_clause.push_str(&format!(" AND c.call_id = ${}", args.len()));
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT c.call_id, c.started_ms, c.duration_ms, c.audio_ms, c.ring_ms, c.caller, c.dialled, c.service, c.end_reason, c.expires_ms, \
             CASE WHEN c.legal_hold THEN 1 ELSE 0 END AS legal_hold, CASE WHEN c.restricted THEN 1 ELSE 0 END AS restricted \
             FROM calls c WHERE {where_clause}"
        ));
        let row = bind(sqlx::query(sql), &args)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| summary(&r)).transpose()
    }

    /// The service and restriction of a call (to decide who may see it).
    pub async fn call_scope(
        &self,
        call_id: &str,
    ) -> Result<Option<(Option<String>, bool)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT service, CASE WHEN restricted THEN 1 ELSE 0 END AS restricted FROM calls WHERE call_id = $1",
        )
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok((
                r.try_get("service")?,
                r.try_get::<i32, _>("restricted")? != 0,
            ))
        })
        .transpose()
    }
}

/// The most calls one CSV export holds (a report, not a copy of the catalogue).
pub const EXPORT_MAX: i64 = 10_000;

/// Calls found as CSV (RFC 4180) for a manager's report: one row per call, times in UTC.
/// A cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@` first: a caller's
/// "+44…" too) starts with `'`, so no number or name sent by a caller runs as one.
pub fn csv(calls: &[CallSummary]) -> String {
    fn cell(v: &str) -> String {
        let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{v}")
        } else {
            v.to_owned()
        };
        if v.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v
        }
    }
    let time = |ms: i64| crate::time::Timestamp::from_millis(ms.max(0) as u64).rfc3339();
    let mut out = String::from(
        "call_id,started_utc,service,caller,dialled,talk_seconds,ring_seconds,end_reason,kept_until_utc,legal_hold\r\n",
    );
    for c in calls {
        let row = [
            cell(&c.call_id),
            cell(&time(c.started_ms)),
            cell(c.service.as_deref().unwrap_or_default()),
            cell(&c.caller),
            cell(c.dialled.as_deref().unwrap_or_default()),
            (c.audio_ms / 1000).to_string(),
            c.ring_ms
                .map(|r| (r / 1000).to_string())
                .unwrap_or_default(),
            cell(c.end_reason.as_deref().unwrap_or_default()),
            cell(&time(c.expires_ms)),
            (if c.legal_hold { "yes" } else { "no" }).to_owned(),
        ];
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_times_without_an_offset_are_the_zones() {
        let london = crate::catalogue::zone::Zone::default();
        // 13:00 BST is 12:00 UTC, with or without seconds; with an offset or Z, as written
        for t in [
            "2026-07-15T13:00",
            "2026-07-15T13:00:00",
            "2026-07-15T12:00:00Z",
        ] {
            assert_eq!(time_ms(t, &london), Some(1_784_116_800_000), "{t}");
        }
        assert_eq!(time_ms("1784116800000", &london), Some(1_784_116_800_000));
    }

    #[test]
    fn csv_cells_never_run_as_formulas_and_quote_what_needs_it() {
        let call = CallSummary {
            call_id: "c1".into(),
            started_ms: 0,
            duration_ms: 70_000,
            audio_ms: 61_500,
            ring_ms: Some(8_200),
            caller: "+447700900403".into(),
            dialled: Some("=HYPERLINK(\"x\")".into()),
            service: Some("Parking, fines".into()),
            end_reason: None,
            expires_ms: 0,
            legal_hold: true,
            restricted: false,
        };
        let text = csv(&[call]);
        let row = text.lines().nth(1).unwrap();
        assert_eq!(
            row,
            "c1,1970-01-01T00:00:00.000Z,\"Parking, fines\",'+447700900403,\"'=HYPERLINK(\"\"x\"\")\",61,8,,1970-01-01T00:00:00.000Z,yes"
        );
    }
}
