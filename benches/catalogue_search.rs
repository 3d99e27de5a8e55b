//! Catalogue search on a large catalogue: how long the searches managers and DPOs run take
//! with a million calls, on SQLite and on PostgreSQL.
//!
//! `cargo bench --bench catalogue_search [-- CALLS]` (default 1,000,000). PostgreSQL runs
//! when CALLVAULT_TEST_POSTGRES names a server (tests/run.sh starts one; the bench makes and
//! drops its own database). Rows are bulk-loaded (six months of calls, 200,000 callers, the
//! 19 services, three parties and one SIP Call-ID per call), then each search runs through
//! the catalogue's own `Store::search`, 15 times; the median is reported.

use std::time::{Duration, Instant};

use callvault::catalogue::people::{Caller, Role};
use callvault::catalogue::search::CallQuery;
use callvault::catalogue::store::Store;

const SERVICES: [&str; 19] = [
    "Out of hours",
    "Switchboard",
    "Cleaner Greener",
    "Electoral Services",
    "Environmental Services",
    "Registrars",
    "Family Information Service",
    "Resident Services",
    "Leaseholders",
    "Parking",
    "Rent Income",
    "Resident Experience Team",
    "Adult Social Care",
    "Housing Advice",
    "Careline",
    "Careline 2",
    "Homebuy",
    "CSD Reablement",
    "Housing Repairs",
];
const DAY: i64 = 86_400_000;
const START: i64 = 1_767_225_600_000; // 2026-01-01

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn caller_number(i: u64) -> String {
    format!("+4477009{i:05}")
}

async fn load(store: &Store, calls: u64) {
    let pool = store.pool_for_tests();
    store.add_agent("agent", "bench-token-hash").await.unwrap();
    let mut rng = Rng(7);
    let batch = 500u64;
    let mut i = 0;
    while i < calls {
        let n = batch.min(calls - i);
        let mut c = String::from(
            "INSERT INTO calls (call_id, agent, started_ms, ended_ms, duration_ms, audio_ms, caller, dialled, service, end_reason, retention_days, expires_ms, legal_hold, restricted, document, received_ms) VALUES ",
        );
        let mut p = String::from("INSERT INTO call_parties (call_id, party) VALUES ");
        let mut s = String::from("INSERT INTO call_sip_ids (call_id, sip_call_id) VALUES ");
        for k in 0..n {
            let id = format!("01a00000-0000-7000-8000-{:012x}", i + k);
            let started = START + rng.below(181 * DAY as u64) as i64;
            let dur = 30_000 + rng.below(1_200_000) as i64;
            let caller = caller_number(rng.below(200_000));
            let service = SERVICES[rng.below(19) as usize];
            let ext = 4000 + rng.below(400);
            let sep = if k == 0 { "" } else { "," };
            c.push_str(&format!(
                "{sep}('{id}','agent',{started},{},{dur},{dur},'{caller}','+442087483020','{service}','caller_hangup',183,{},FALSE,FALSE,'{{}}',0)",
                started + dur,
                started + 183 * DAY
            ));
            p.push_str(&format!(
                "{sep}('{id}','{caller}'),('{id}','+442087483020'),('{id}','{ext}')"
            ));
            s.push_str(&format!("{sep}('{id}','{:x}@pbx.example')", i + k));
        }
        let mut tx = pool.begin().await.unwrap();
        for sql in [c, p, s] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        i += n;
    }
    let analyze = match store.backend {
        callvault::catalogue::store::Backend::Sqlite => "ANALYZE",
        callvault::catalogue::store::Backend::Postgres => "VACUUM ANALYZE",
    };
    sqlx::raw_sql(analyze).execute(&pool).await.unwrap();
}

async fn median(store: &Store, who: &Caller, q: &CallQuery) -> (Duration, i64) {
    // the filters as the API reads them (numbers normalised, the service as agents spell it)
    let numbers = callvault::catalogue::numbers::Numbers::of(&Default::default());
    let filters = q
        .read(&numbers, &[], &callvault::catalogue::zone::Zone::default())
        .unwrap();
    let mut times = Vec::new();
    let mut total = 0;
    for _ in 0..15 {
        let t = Instant::now();
        let r = store.search(who, &filters).await.unwrap();
        times.push(t.elapsed());
        total = r.total;
    }
    times.sort();
    (times[times.len() / 2], total)
}

async fn run(label: &str, url: &str, calls: u64) {
    let store = Store::connect(url).await.unwrap();
    let t = Instant::now();
    load(&store, calls).await;
    eprintln!(
        "{label}: {calls} calls loaded in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let dpo = Caller {
        username: "dpo".into(),
        role: Role::Dpo,
        services: vec![],
        extension: None,
        form_token: String::new(),
        api_token: false,
    };
    let manager = Caller {
        username: "m".into(),
        role: Role::Manager,
        services: vec!["Parking".into(), "Housing Repairs".into()],
        extension: None,
        form_token: String::new(),
        api_token: false,
    };
    let day = |d: i64| Some((START + d * DAY).to_string());
    let q = |f: &dyn Fn(&mut CallQuery)| {
        let mut q = CallQuery::default();
        f(&mut q);
        q
    };
    let cases: Vec<(&str, &Caller, CallQuery)> = vec![
        (
            "one day, all services (DPO)",
            &dpo,
            q(&|q| {
                q.from = day(90);
                q.to = day(91);
            }),
        ),
        (
            "one caller number, all time",
            &dpo,
            q(&|q| q.caller = Some(caller_number(4242))),
        ),
        (
            "one service, one week",
            &dpo,
            q(&|q| {
                q.service = Some("Parking".into());
                q.from = day(60);
                q.to = day(67);
            }),
        ),
        (
            "a staff extension, one month",
            &dpo,
            q(&|q| {
                q.party = Some("4123".into());
                q.from = day(30);
                q.to = day(60);
            }),
        ),
        (
            "a SIP Call-ID",
            &dpo,
            q(&|q| q.sip_call_id = Some(format!("{:x}@pbx.example", calls / 2))),
        ),
        (
            "calls over 15 min, one month",
            &dpo,
            q(&|q| {
                q.min_seconds = Some("900".into());
                q.from = day(120);
                q.to = day(150);
            }),
        ),
        (
            "manager of 2 services, last 7 days",
            &manager,
            q(&|q| {
                q.from = day(174);
                q.to = day(181);
            }),
        ),
        (
            "manager, page 20 of everything",
            &manager,
            q(&|q| {
                q.page = Some("20".into());
            }),
        ),
    ];
    for (what, who, query) in cases {
        let (t, total) = median(&store, who, &query).await;
        println!(
            "| {label} | {calls} | {what} | {total} | {:.1} |",
            t.as_secs_f64() * 1000.0
        );
    }
    store.close().await;
}

fn main() {
    let calls: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    println!("| database | calls | search | matches | median ms (page of 50 + total) |");
    println!("|---|---|---|---|---|");
    rt.block_on(run(
        "SQLite",
        &format!("sqlite://{}", dir.path().join("bench.db").display()),
        calls,
    ));
    if let Ok(admin) = std::env::var("CALLVAULT_TEST_POSTGRES") {
        rt.block_on(async {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
            let _ = sqlx::raw_sql("DROP DATABASE IF EXISTS cv_search_bench WITH (FORCE)")
                .execute(&pool)
                .await;
            sqlx::raw_sql("CREATE DATABASE cv_search_bench")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        });
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        rt.block_on(run("PostgreSQL", &format!("{base}/cv_search_bench"), calls));
    } else {
        eprintln!("PostgreSQL skipped: set CALLVAULT_TEST_POSTGRES");
    }
}
