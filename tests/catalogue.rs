//! The catalogue as agents see it: recorded calls shipped from an agent's spool over HTTP,
//! on SQLite and on PostgreSQL (a real server: `tests/run.sh` installs and starts one and
//! sets CALLVAULT_TEST_POSTGRES; without it the PostgreSQL runs are skipped, saying so).

mod common;

use common::{free_port, http_get};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callvault::catalogue::store::Store;
use callvault::config::EXAMPLE_AGENT_TOML;
use callvault::record::CallRecord;
use callvault::replay::{self, ReplayOptions};
use callvault::vault::generate_keypair_files;
use callvault_synth::{Scenario, write_capture};

const BIN: &str = env!("CARGO_BIN_EXE_callvault");
/// The labs' catalogues keep calls ten years: the generated captures are of March 2026, and
/// the retention purge (which tombstones what it erases) must not take them while a test
/// runs, unless the test says so.
const RETENTION_DAYS: i64 = 3650;
const S3_ACCESS: &str = "callvault-test";
const S3_SECRET: &str = "callvault-test-secret-key";

fn metrics(port: u16) -> BTreeMap<String, u64> {
    let (_, body) = http_get(port, "/metrics").unwrap_or_default();
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((
                k.trim_start_matches("callvault_").to_owned(),
                v.parse().ok()?,
            ))
        })
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A database for one test: a SQLite file, or a fresh PostgreSQL database.
enum Db {
    Sqlite(String),
    Postgres { url: String, name: String },
}

impl Db {
    fn sqlite(dir: &Path) -> Db {
        Db::Sqlite(format!("sqlite://{}", dir.join("catalogue.db").display()))
    }

    fn postgres(test: &str) -> Option<Db> {
        let Ok(admin) = std::env::var("CALLVAULT_TEST_POSTGRES") else {
            common::parts::skipped(
                &format!("catalogue test {test} on PostgreSQL"),
                "CALLVAULT_TEST_POSTGRES is not set (tests/run.sh starts a server and sets it)",
            );
            return None;
        };
        let name = format!("cv_{test}_{}", std::process::id());
        rt().block_on(async {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin).await.expect("PostgreSQL");
            let drop = format!("DROP DATABASE IF EXISTS {name}");
            sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(&pool)
                .await
                .unwrap();
            let create = format!("CREATE DATABASE {name}");
            sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        });
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Some(Db::Postgres {
            url: format!("{base}/{name}"),
            name,
        })
    }

    fn url(&self) -> &str {
        match self {
            Db::Sqlite(u) => u,
            Db::Postgres { url, .. } => url,
        }
    }

    fn store(&self) -> (tokio::runtime::Runtime, Store) {
        let rt = rt();
        let store = rt.block_on(Store::connect(self.url())).unwrap();
        (rt, store)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let (Db::Postgres { name, .. }, Ok(admin)) =
            (&*self, std::env::var("CALLVAULT_TEST_POSTGRES"))
        {
            let name = name.clone();
            rt().block_on(async move {
                if let Ok(pool) = sqlx::AnyPool::connect(&admin).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            });
        }
    }
}

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Lab {
    dir: tempfile::TempDir,
    public: PathBuf,
    private: PathBuf,
    db: Db,
    catalogue_port: u16,
    agent_port: u16,
    /// (certificate, key, CA) when the catalogue serves HTTPS.
    tls: std::cell::RefCell<Option<(PathBuf, PathBuf, PathBuf)>>,
    /// The port of an S3 server holding the segments, instead of a directory.
    s3: std::cell::Cell<Option<u16>>,
    /// The CA of agents' client certificates (the catalogue's `server.client_ca`).
    client_ca: std::cell::RefCell<Option<PathBuf>>,
    /// The agent's client certificate and key.
    client_cert: std::cell::RefCell<Option<(PathBuf, PathBuf)>>,
    /// More keys of the catalogue's `[server]` section.
    server_extra: std::cell::RefCell<String>,
    /// More sections of the catalogue's configuration.
    sections_extra: std::cell::RefCell<String>,
}

impl Lab {
    fn new(db: impl FnOnce(&Path) -> Option<Db>) -> Option<Lab> {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path())?;
        let (public, private) = generate_keypair_files(&dir.path().join("keys")).unwrap();
        Some(Lab {
            dir,
            public,
            private,
            db,
            catalogue_port: free_port(),
            agent_port: free_port(),
            tls: Default::default(),
            s3: Default::default(),
            client_ca: Default::default(),
            client_cert: Default::default(),
            server_extra: Default::default(),
            sections_extra: Default::default(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn catalogue_config(&self) -> PathBuf {
        self.catalogue_config_on(self.catalogue_port)
    }

    /// The catalogue's configuration for an instance listening on `port`.
    fn catalogue_config_on(&self, port: u16) -> PathBuf {
        let mut tls = match &*self.tls.borrow() {
            Some((cert, key, _)) => format!("tls_cert = {cert:?}\ntls_key = {key:?}\n"),
            None => String::new(),
        };
        if let Some(ca) = &*self.client_ca.borrow() {
            tls.push_str(&format!("client_ca = {ca:?}\n"));
        }
        tls.push_str(&self.server_extra.borrow());
        let s3 = match self.s3.get() {
            Some(port) => format!(
                "[storage.s3]\nendpoint = \"http://127.0.0.1:{port}\"\nbucket = \"callvault\"\naccess_key = \"{S3_ACCESS}\"\nsecret_key = \"{S3_SECRET}\"\n"
            ),
            None => String::new(),
        };
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\n{tls}[storage]\ndatabase_url = \"{}\"\nblob_dir = {:?}\n[keys]\nprivate_keys = [{:?}]\n[retention]\ndefault_days = {RETENTION_DAYS}\n",
            port,
            self.db.url(),
            self.path("blobs"),
            self.private
        );
        let extra = self.sections_extra.borrow();
        // the second factor has a test of its own; the other labs sign in with passwords
        let sign_in = if extra.contains("[sign_in]") {
            ""
        } else {
            "[sign_in]\nsecond_factor = false\n"
        };
        let text = format!("{text}{s3}{sign_in}{extra}");
        let p = if port == self.catalogue_port {
            self.path("catalogue.toml")
        } else {
            self.path(&format!("catalogue-{port}.toml"))
        };
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Registers an agent; returns the file holding its token.
    fn agent_add(&self, name: &str) -> PathBuf {
        let out = Command::new(BIN)
            .args(["catalogue", "-c"])
            .arg(self.catalogue_config())
            .args(["agent-add", name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap();
        assert_eq!(token.trim().len(), 64, "{token}");
        let p = self.path(&format!("{name}.token"));
        std::fs::write(&p, token).unwrap();
        p
    }

    fn start_catalogue(&self) -> Proc {
        self.start_catalogue_on(self.catalogue_port)
    }

    /// Another instance of the same catalogue (same database and segment store) on `port`.
    fn start_catalogue_on(&self, port: u16) -> Proc {
        let log = self.path(&format!("catalogue-{port}.log"));
        let child = Command::new(BIN)
            .args(["catalogue", "-c"])
            .arg(self.catalogue_config_on(port))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let p = Proc { child, log };
        let started = Instant::now();
        let https = self.tls.borrow().is_some();
        while if https {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        } else {
            http_get(port, "/healthz").is_none()
        } {
            assert!(started.elapsed() < Duration::from_secs(30), "{}", p.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    fn spool(&self) -> PathBuf {
        self.path("spool")
    }

    /// Records a generated capture into the agent's spool (by replay): 2 of its 4 calls.
    fn record(&self, seed: u64) -> Vec<CallRecord> {
        self.record_talk(seed, 2_000)
    }

    /// As `record`, with `talk_ms` of conversation in each call.
    fn record_talk(&self, seed: u64, talk_ms: u64) -> Vec<CallRecord> {
        let capture = self.path(&format!("capture-{seed}.pcap"));
        let f = std::fs::File::create(&capture).unwrap();
        write_capture(
            &Scenario::contact_centre_mix(4, talk_ms, seed),
            std::io::BufWriter::new(f),
        )
        .unwrap();
        let cfg = callvault::config::AgentConfig::from_toml(EXAMPLE_AGENT_TOML, "test").unwrap();
        let report = replay::run(ReplayOptions {
            config: cfg,
            spool: self.spool(),
            public_key: self.public.clone(),
            files: vec![capture],
            progress: false,
        })
        .unwrap();
        assert_eq!(report.recorded.len(), 2);
        report.recorded
    }

    fn start_agent(&self, token: &Path, keep_hours: u32) -> Proc {
        let set = |t: String, key: &str, value: String| -> String {
            let mut done = false;
            t.lines()
                .map(|l| {
                    if !done && l.starts_with(&format!("{key} = ")) {
                        done = true;
                        format!("{key} = {value}")
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut t = EXAMPLE_AGENT_TOML.to_owned();
        t = set(t, "spool_dir", format!("{:?}", self.spool()));
        t = set(t, "catalogue_public_key", format!("{:?}", self.public));
        t = set(
            t,
            "metrics_listen",
            format!("\"127.0.0.1:{}\"", self.agent_port),
        );
        t = set(
            t,
            "listen_udp",
            format!("\"127.0.0.1:{}\"", self.agent_port),
        );
        t = set(t, "min_free_mb", "16".into());
        let scheme = if self.tls.borrow().is_some() {
            "https"
        } else {
            "http"
        };
        t = set(
            t,
            "url",
            format!("\"{scheme}://127.0.0.1:{}\"", self.catalogue_port),
        );
        if let Some((_, _, ca)) = &*self.tls.borrow() {
            t = t.replace(
                "# ca_file = \"/etc/callvault/ca.pem\"",
                &format!("ca_file = {ca:?}"),
            );
        }
        if let Some((cert, key)) = &*self.client_cert.borrow() {
            t = t
                .replace(
                    "# client_cert = \"/etc/callvault/agent.crt\"",
                    &format!("client_cert = {cert:?}"),
                )
                .replace(
                    "# client_key = \"/etc/callvault/agent.key\"",
                    &format!("client_key = {key:?}"),
                );
        }
        t = set(t, "token_file", format!("{token:?}"));
        t = set(t, "keep_shipped_hours", keep_hours.to_string());
        t = set(t, "retry_max_seconds", "1".into());
        let config = self.path("agent.toml");
        std::fs::write(&config, t).unwrap();
        let log = self.path("agent.log");
        let child = Command::new(BIN)
            .args(["agent", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let p = Proc { child, log };
        let started = Instant::now();
        while http_get(self.agent_port, "/healthz").is_none() {
            assert!(started.elapsed() < Duration::from_secs(30), "{}", p.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    fn wait_shipped(&self, agent: &Proc, n: u64) {
        let started = Instant::now();
        loop {
            let m = metrics(self.agent_port);
            if m.get("shipped_calls_total{result=\"acknowledged\"}") == Some(&n)
                && m.get("outbox_depth") == Some(&0)
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{m:#?}\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn shipping_works(lab: Lab) {
    let token = lab.agent_add("callvault-agent");
    let recorded = lab.record(61);
    let originals: Vec<(CallRecord, Vec<Vec<u8>>)> = recorded
        .iter()
        .map(|r| {
            let blobs = r
                .segments
                .iter()
                .map(|s| std::fs::read(lab.spool().join(&s.file)).unwrap())
                .collect();
            (r.clone(), blobs)
        })
        .collect();
    let _catalogue = lab.start_catalogue();
    let agent = lab.start_agent(&token, 0);
    lab.wait_shipped(&agent, 2);
    let (rt, store) = lab.db.store();
    assert_eq!(rt.block_on(store.count("calls")).unwrap(), 2);
    assert_eq!(rt.block_on(store.count("segments")).unwrap(), 2);
    // the agent told the catalogue which numbers it records, and how it is
    let agents = rt.block_on(store.list_agents()).unwrap();
    assert_eq!(agents[0].numbers.len(), 19, "{agents:?}");
    let started = Instant::now();
    let (health, seen_ms) = loop {
        // the first report follows the first shipping round
        if let Some(h) = rt.block_on(store.list_agents()).unwrap()[0].health.clone() {
            break h;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no health report"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(health.problem, None, "{health:?}");
    assert!(
        !health.recording_paused && health.spool_free_bytes > 0,
        "{health:?}"
    );
    assert!(health.live.is_empty(), "the replay has ended: {health:?}");
    assert!(seen_ms > 0);
    let hour_ago = callvault::time::Timestamp::now().as_millis() as i64 - 3_600_000;
    let last_hour = recorded
        .iter()
        .filter(|r| callvault::catalogue::store::rfc3339_ms(&r.started_at).unwrap() >= hour_ago)
        .count();
    assert_eq!(agents[0].calls_last_hour, last_hour as i64);
    assert!(
        agents[0]
            .numbers
            .iter()
            .any(|n| n.service == "Parking" && n.number == "020 7371 5678")
    );
    // a reload (SIGHUP) with a changed number list is reported again
    let config = lab.path("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let parking = "[[scope.numbers]]\nnumber = \"020 7371 5678\"\nservice = \"Parking\"\n";
    assert!(text.contains(parking));
    std::fs::write(&config, text.replace(parking, "")).unwrap();
    // SAFETY: kill(2) on our own child.
    assert_eq!(
        unsafe { libc::kill(agent.child.id() as i32, libc::SIGHUP) },
        0
    );
    let started = Instant::now();
    loop {
        let agents = rt.block_on(store.list_agents()).unwrap();
        if agents[0].numbers.len() == 18 {
            assert!(agents[0].numbers.iter().all(|n| n.service != "Parking"));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{agents:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // both lists are in the audit log, the change named
    let changes = rt
        .block_on(store.audit_list(&callvault::catalogue::audit::AuditQuery {
            action: Some("agent_scope".into()),
            limit: 10,
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes.iter().all(|c| c.actor == "callvault-agent"));
    let removed = changes
        .iter()
        .find(|c| c.detail.contains("\"numbers\":18"))
        .expect("the reload's record");
    assert!(
        removed.detail.contains("020 7371 5678 (Parking)"),
        "{}",
        removed.detail
    );
    for (record, blobs) in &originals {
        let stored = rt
            .block_on(store.call_document(&record.call_id))
            .unwrap()
            .expect("the call is in the catalogue");
        assert_eq!(&stored, record, "the metadata as the agent wrote it");
        for (seg, bytes) in record.segments.iter().zip(blobs) {
            let row = rt
                .block_on(store.segment(&seg.segment_id))
                .unwrap()
                .unwrap();
            assert_eq!(row.sha256, seg.sha256);
            let kept = std::fs::read(lab.path("blobs").join(&row.blob)).unwrap();
            assert_eq!(&kept, bytes, "the segment byte for byte");
            assert_eq!(sha256_hex(&kept), seg.sha256);
        }
    }
    // keep_shipped_hours = 0: the spool keeps nothing the catalogue acknowledged
    let started = Instant::now();
    loop {
        let left: Vec<String> = common::spool_files(&lab.spool())
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| p.ends_with(".cvseg") || p.ends_with(".json"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    rt.block_on(store.close());
}

#[test]
fn recorded_calls_reach_the_catalogue_on_sqlite() {
    shipping_works(Lab::new(|d| Some(Db::sqlite(d))).unwrap());
}

#[test]
fn recorded_calls_reach_the_catalogue_on_postgresql() {
    if let Some(lab) = Lab::new(|_| Db::postgres("ship")) {
        shipping_works(lab);
    }
}

#[test]
fn a_catalogue_outage_loses_nothing_and_a_resend_changes_nothing() {
    let lab = Lab::new(|d| Some(Db::sqlite(d))).unwrap();
    let token = lab.agent_add("callvault-agent");
    lab.record(62);
    // the catalogue is down: the agent keeps everything and keeps trying
    let agent = lab.start_agent(&token, 1);
    let started = Instant::now();
    while metrics(lab.agent_port).get("ship_failures_total").copied() < Some(2) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metrics(lab.agent_port)["outbox_depth"], 2);
    let catalogue = lab.start_catalogue();
    lab.wait_shipped(&agent, 2);
    // the local copy stays for keep_shipped_hours
    assert_eq!(
        std::fs::read_dir(lab.spool().join("calls"))
            .unwrap()
            .count(),
        2
    );
    // the agent forgets it shipped them (as after a crash between a send and its marker):
    // it sends everything again, and the catalogue is unchanged
    drop(catalogue);
    for e in std::fs::read_dir(lab.spool().join("shipped"))
        .unwrap()
        .flatten()
    {
        std::fs::remove_file(e.path()).unwrap();
    }
    let _catalogue = lab.start_catalogue();
    lab.wait_shipped(&agent, 4);
    let (rt, store) = lab.db.store();
    assert_eq!(rt.block_on(store.count("calls")).unwrap(), 2);
    assert_eq!(rt.block_on(store.count("segments")).unwrap(), 2);
    rt.block_on(store.close());
}

#[test]
fn agents_are_authenticated_and_write_only_their_own_calls() {
    let lab = Lab::new(|d| Some(Db::sqlite(d))).unwrap();
    let token_a = std::fs::read_to_string(lab.agent_add("callvault-agent")).unwrap();
    let token_b = std::fs::read_to_string(lab.agent_add("other-site")).unwrap();
    let recorded = lab.record(63);
    let _catalogue = lab.start_catalogue();
    let base = format!("http://127.0.0.1:{}", lab.catalogue_port);
    let rec = &recorded[0];
    let seg = &rec.segments[0];
    let bytes = std::fs::read(lab.spool().join(&seg.file)).unwrap();
    let rt = rt();
    let client = reqwest::Client::new();
    let put = |token: Option<&str>, call_id: &str, sha: &str, body: Vec<u8>| {
        let mut req = client
            .put(format!("{base}/api/v1/segments/{}", seg.segment_id))
            .query(&[("call_id", call_id), ("sha256", sha)])
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t.trim());
        }
        rt.block_on(req.send()).unwrap().status().as_u16()
    };
    let post = |token: &str, record: &CallRecord| {
        let req = client
            .post(format!("{base}/api/v1/calls"))
            .bearer_auth(token.trim())
            .json(record);
        rt.block_on(req.send()).unwrap().status().as_u16()
    };
    assert_eq!(put(None, &rec.call_id, &seg.sha256, bytes.clone()), 401);
    assert_eq!(
        put(
            Some("not-a-token"),
            &rec.call_id,
            &seg.sha256,
            bytes.clone()
        ),
        401
    );
    // the call's metadata before its segment: refused, nothing stored
    assert_eq!(post(&token_a, rec), 409);
    let mut corrupt = bytes.clone();
    corrupt[500] ^= 1;
    assert_eq!(
        put(Some(&token_a), &rec.call_id, &seg.sha256, corrupt),
        422,
        "hash checked"
    );
    assert_eq!(
        put(
            Some(&token_a),
            &rec.call_id,
            &sha256_hex(b"hello"),
            b"hello".to_vec()
        ),
        422,
        "not a segment"
    );
    assert_eq!(
        put(
            Some(&token_a),
            &recorded[1].call_id,
            &seg.sha256,
            bytes.clone()
        ),
        422,
        "the header names another call"
    );
    assert_eq!(
        put(Some(&token_a), &rec.call_id, &seg.sha256, bytes.clone()),
        201
    );
    assert_eq!(
        put(Some(&token_a), &rec.call_id, &seg.sha256, bytes.clone()),
        200,
        "idempotent"
    );
    assert_eq!(
        put(Some(&token_b), &rec.call_id, &seg.sha256, bytes.clone()),
        403
    );
    // agent B cannot write agent A's call, under either name
    assert_eq!(post(&token_b, rec), 403);
    let mut as_b = rec.clone();
    as_b.agent = "other-site".into();
    assert_eq!(post(&token_b, &as_b), 403);
    let mut open = rec.clone();
    open.ended_at = None;
    assert_eq!(
        post(&token_a, &open),
        422,
        "a call in progress is not shipped"
    );
    assert_eq!(post(&token_a, rec), 201);
    assert_eq!(post(&token_a, rec), 200, "idempotent");
    assert_eq!(post(&token_b, &as_b), 403, "still A's");
    let (rt2, store) = lab.db.store();
    assert_eq!(rt2.block_on(store.count("calls")).unwrap(), 1);
    assert_eq!(rt2.block_on(store.count("segments")).unwrap(), 1);
    rt2.block_on(store.close());
}

// ---------------------------------------------------------------------------------------
// People: roles, search, purpose-bound listening, the audit log

const PASSWORD: &str = "correct horse battery staple";

/// A signed-in HTTP client of the catalogue.
struct Api {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

struct Resp {
    code: u16,
    body: Vec<u8>,
    headers: reqwest::header::HeaderMap,
}

impl Resp {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Api {
    fn new(port: u16) -> Api {
        Api {
            rt: rt(),
            client: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        self.rt.block_on(async {
            let r = req.send().await.unwrap();
            let code = r.status().as_u16();
            let headers = r.headers().clone();
            let body = r.bytes().await.unwrap().to_vec();
            Resp {
                code,
                body,
                headers,
            }
        })
    }

    /// Signs in; returns the session cookie.
    fn login(&self, user: &str) -> String {
        self.login_as(user, PASSWORD)
    }

    fn login_as(&self, user: &str, password: &str) -> String {
        let r = self.send(
            self.client
                .post(format!("{}/api/v1/login", self.base))
                .json(&serde_json::json!({ "username": user, "password": password })),
        );
        assert_eq!(r.code, 200, "{user}: {}", String::from_utf8_lossy(&r.body));
        let cookie = r.headers[reqwest::header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        cookie.split(';').next().unwrap().to_owned()
    }

    fn get(&self, session: &str, path: &str) -> Resp {
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .header(reqwest::header::COOKIE, session),
        )
    }

    fn get_range(&self, session: &str, path: &str, range: &str) -> Resp {
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .header(reqwest::header::COOKIE, session)
                .header(reqwest::header::RANGE, range),
        )
    }

    fn post(&self, session: &str, path: &str, body: serde_json::Value) -> Resp {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header(reqwest::header::COOKIE, session)
                .json(&body),
        )
    }

    /// What waits for a DPO's approval for `user`, as `session` is shown it (Null: nothing).
    fn approval(&self, session: &str, user: &str) -> serde_json::Value {
        let r = self.get(session, "/api/v1/approvals");
        if r.code != 200 {
            return serde_json::Value::Null;
        }
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["username"] == user)
            .cloned()
            .unwrap_or_default()
    }

    /// `session` approves what waits for `user`, as it is now.
    fn approve(&self, session: &str, user: &str) -> Resp {
        let version = self.approval(session, user)["version"]
            .as_str()
            .unwrap_or("none")
            .to_owned();
        self.post(
            session,
            &format!("/api/v1/users/{user}/approve"),
            serde_json::json!({ "version": version }),
        )
    }
}

/// Asks for a grant (purpose "complaint", `reference`) and fetches the call's audio with it:
/// the answer's status and body.
async fn retrieve(
    client: &reqwest::Client,
    base: &str,
    session: &str,
    id: &str,
    reference: &str,
) -> (u16, Vec<u8>) {
    let g: serde_json::Value = client
        .post(format!("{base}/api/v1/calls/{id}/access"))
        .header(reqwest::header::COOKIE, session)
        .json(&serde_json::json!({ "purpose": "complaint", "reference": reference }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default();
    let audio = g["audio"].as_str().unwrap_or_default().to_owned();
    let r = client
        .get(format!("{base}{audio}"))
        .header(reqwest::header::COOKIE, session)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// The lab's Parking call, and the other recorded one.
fn parking_and_other(recorded: &[CallRecord]) -> (CallRecord, CallRecord) {
    let parking = recorded
        .iter()
        .find(|r| r.service.as_deref() == Some("Parking"))
        .expect("a Parking call")
        .clone();
    let other = recorded
        .iter()
        .find(|r| r.call_id != parking.call_id)
        .expect("another recorded call")
        .clone();
    (parking, other)
}

/// Reports the agent's number list as the agent does when it connects: the dialled number and
/// service of each recorded call.
fn report_scope(api: &Api, token: &str, records: &[CallRecord]) {
    let mut scope: Vec<serde_json::Value> = records
        .iter()
        .filter_map(|r| {
            Some(serde_json::json!({ "number": r.dialled.clone()?, "service": r.service.clone()?, "retention_days": null }))
        })
        .collect();
    scope.dedup();
    let r = api.send(
        api.client
            .put(format!("{}/api/v1/agent/scope", api.base))
            .bearer_auth(token.trim())
            .json(&scope),
    );
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// Ships recorded calls through the ingest API as an agent would.
fn ship(api: &Api, lab: &Lab, token: &str, records: &[CallRecord]) {
    for rec in records {
        for seg in &rec.segments {
            let bytes = std::fs::read(lab.spool().join(&seg.file)).unwrap();
            let r = api.send(
                api.client
                    .put(format!("{}/api/v1/segments/{}", api.base, seg.segment_id))
                    .query(&[("call_id", &rec.call_id), ("sha256", &seg.sha256)])
                    .bearer_auth(token.trim())
                    .body(bytes),
            );
            assert_eq!(r.code, 201);
        }
        let r = api.send(
            api.client
                .post(format!("{}/api/v1/calls", api.base))
                .bearer_auth(token.trim())
                .json(rec),
        );
        assert_eq!(r.code, 201);
    }
}

fn user_add(lab: &Lab, name: &str, role: &str, services: &str, extension: Option<&str>) {
    let mut cmd = Command::new(BIN);
    cmd.args(["catalogue", "-c"])
        .arg(lab.catalogue_config())
        .args(["user-add", name, "--role", role, "--services", services])
        .env("CALLVAULT_PASSWORD", PASSWORD);
    if let Some(e) = extension {
        cmd.args(["--extension", e]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lab with two recorded calls (Switchboard, Parking) in the catalogue and one user per
/// role: a Parking manager, a Switchboard manager, an auditor, a DPO, an admin, and a member
/// of staff whose extension took part in the Parking call.
fn people_lab(db: impl FnOnce(&Path) -> Option<Db>) -> Option<(Lab, Proc, Api, Vec<CallRecord>)> {
    Lab::new(db).map(people_lab_in)
}

fn people_lab_in(lab: Lab) -> (Lab, Proc, Api, Vec<CallRecord>) {
    let token = std::fs::read_to_string(lab.agent_add("callvault-agent")).unwrap();
    let recorded = lab.record(64);
    let parking = recorded
        .iter()
        .find(|r| r.service.as_deref() == Some("Parking"))
        .expect("a Parking call");
    let staff_ext = parking.legs[0].to.clone();
    let cat = lab.start_catalogue();
    let api = Api::new(lab.catalogue_port);
    report_scope(&api, &token, &recorded);
    ship(&api, &lab, &token, &recorded);
    // managers' services are those the agent reported
    user_add(&lab, "pat", "manager", "Parking", None);
    user_add(&lab, "sam", "manager", "Switchboard", None);
    user_add(&lab, "aud", "auditor", "", None);
    user_add(&lab, "dora", "dpo", "", None);
    user_add(&lab, "adam", "admin", "", None);
    user_add(&lab, "stef", "staff", "", Some(&staff_ext));
    (lab, cat, api, recorded)
}

fn role_matrix(db: impl FnOnce(&Path) -> Option<Db>) {
    let Some((lab, _cat, api, recorded)) = people_lab(db) else {
        return;
    };
    let parking = recorded
        .iter()
        .find(|r| r.service.as_deref() == Some("Parking"))
        .unwrap();
    let id = &parking.call_id;
    let users = ["pat", "sam", "aud", "dora", "adam", "stef"];
    let sessions: BTreeMap<&str, String> = users.iter().map(|u| (*u, api.login(u))).collect();
    let purpose = serde_json::json!({ "purpose": "complaint", "reference": "C-2026-0042" });
    // (endpoint, who gets 2xx); everyone else gets 403 (or 404 for a call they may not see)
    let gets: Vec<(String, Vec<&str>)> = vec![
        ("/api/v1/me".into(), users.to_vec()),
        ("/api/v1/purposes".into(), users.to_vec()),
        ("/api/v1/calls".into(), vec!["pat", "sam", "dora"]),
        (format!("/api/v1/calls/{id}"), vec!["pat", "dora"]),
        ("/api/v1/audit".into(), vec!["aud", "stef"]),
        ("/api/v1/audit/verify".into(), vec!["aud"]),
        ("/api/v1/users".into(), vec!["adam"]),
        ("/api/v1/agents".into(), vec!["adam"]),
        ("/api/v1/calls.csv".into(), vec!["pat", "sam", "dora"]),
        ("/api/v1/services".into(), users.to_vec()),
        ("/api/v1/tokens".into(), users.to_vec()),
        ("/api/v1/approvals".into(), vec!["dora"]),
    ];
    for (path, allowed) in &gets {
        for u in users {
            let r = api.get(&sessions[u], path);
            let ok = (200..300).contains(&r.code);
            assert_eq!(ok, allowed.contains(&u), "GET {path} as {u}: {}", r.code);
            if !ok {
                assert!(matches!(r.code, 403 | 404), "GET {path} as {u}: {}", r.code);
            }
        }
        let anonymous = api.send(api.client.get(format!("{}{path}", api.base)));
        assert_eq!(anonymous.code, 401, "GET {path} signed out");
    }
    for u in users {
        let r = api.post(
            &sessions[u],
            &format!("/api/v1/calls/{id}/access"),
            purpose.clone(),
        );
        assert_eq!(
            r.code == 200,
            ["pat", "dora"].contains(&u),
            "access as {u}: {}",
            r.code
        );
        let r = api.post(
            &sessions[u],
            "/api/v1/users",
            serde_json::json!({ "username": format!("new-{u}"), "password": PASSWORD, "role": "manager", "services": ["Parking"] }),
        );
        // a listening account an admin adds waits for a DPO (202)
        assert_eq!(r.code == 202, u == "adam", "add user as {u}: {}", r.code);
    }
    // two people for an account that hears calls: the admin's new manager cannot sign in
    // until a DPO approves it, and only a DPO can
    let signs_in = |user: &str| {
        api.send(
            api.client
                .post(format!("{}/api/v1/login", api.base))
                .json(&serde_json::json!({ "username": user, "password": PASSWORD })),
        )
        .code
    };
    assert_eq!(signs_in("new-adam"), 401, "awaiting approval");
    let version = api.approval(&sessions["dora"], "new-adam")["version"]
        .as_str()
        .unwrap()
        .to_owned();
    for u in users {
        let r = api.post(
            &sessions[u],
            "/api/v1/users/new-adam/approve",
            serde_json::json!({ "version": version }),
        );
        if u != "dora" {
            assert_eq!(r.code, 403, "approve as {u}");
        }
    }
    // the admin knew the first password: the manager sets their own before any session
    let r = api.send(
        api.client
            .post(format!("{}/api/v1/login", api.base))
            .json(&serde_json::json!({ "username": "new-adam", "password": PASSWORD })),
    );
    assert!(
        r.code == 403 && String::from_utf8_lossy(&r.body).contains("new_password"),
        "approved by the DPO, then a password of their own: {}",
        String::from_utf8_lossy(&r.body)
    );
    let r = api.send(
        api.client
            .post(format!("{}/api/v1/login", api.base))
            .json(&serde_json::json!({ "username": "new-adam", "password": PASSWORD, "new_password": "new-adam's own password" })),
    );
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    let approved = api
        .get(&sessions["aud"], "/api/v1/audit?action=user_approved")
        .json();
    let record = &approved.as_array().unwrap()[0];
    assert_eq!(record["actor"], "dora");
    assert!(
        record["detail"]
            .as_str()
            .unwrap()
            .contains("\"requested_by\":\"adam\""),
        "{record}"
    );
    // a name already taken is a conflict, not a server error (nor a bad form)
    let again = api.post(
        &sessions["adam"],
        "/api/v1/users",
        serde_json::json!({ "username": "new-adam", "password": PASSWORD, "role": "auditor" }),
    );
    assert_eq!(again.code, 409, "{}", String::from_utf8_lossy(&again.body));
    // the DPO's tools and the key report: authorised roles get past authorisation (a call
    // id that does not exist then answers 404), every other role gets 403
    let none = "01a20000-0000-7000-8000-000000000000";
    let switch = serde_json::json!({ "on": true, "reason": "r" });
    let posts: Vec<(String, serde_json::Value, Vec<&str>)> = vec![
        (
            format!("/api/v1/calls/{none}/hold"),
            switch.clone(),
            vec!["dora"],
        ),
        (
            format!("/api/v1/calls/{none}/restrict"),
            switch.clone(),
            vec!["dora"],
        ),
        (
            format!("/api/v1/calls/{none}/training-export"),
            serde_json::json!({ "reference": "r" }),
            vec!["dora"],
        ),
        (
            "/api/v1/subject-access".into(),
            serde_json::json!({ "caller": "+447700900000", "reference": "r" }),
            vec!["dora"],
        ),
        (
            "/api/v1/training/consents".into(),
            serde_json::json!({ "party": "4999", "agreed": true }),
            vec!["dora"],
        ),
        (
            "/api/v1/tokens".into(),
            serde_json::json!({ "label": "script", "password": PASSWORD }),
            users.to_vec(),
        ),
        (
            "/api/v1/users/nobody/approve".into(),
            serde_json::json!({}),
            vec!["dora"],
        ),
        (
            "/api/v1/users/nobody/disable".into(),
            serde_json::json!({ "reason": "r" }),
            vec!["adam"],
        ),
        (
            "/api/v1/agents/nobody/disable".into(),
            serde_json::json!({ "reason": "r" }),
            vec!["adam"],
        ),
        (
            "/api/v1/tokens/0000000000000000/revoke".into(),
            serde_json::json!({ "reason": "r" }),
            users.to_vec(),
        ),
    ];
    for (path, body, allowed) in &posts {
        for u in users {
            let r = api.post(&sessions[u], path, body.clone());
            if allowed.contains(&u) {
                assert!(
                    !matches!(r.code, 401 | 403),
                    "POST {path} as {u}: {}",
                    r.code
                );
            } else {
                assert_eq!(r.code, 403, "POST {path} as {u}");
            }
        }
        let anonymous = api.send(api.client.post(format!("{}{path}", api.base)).json(body));
        assert_eq!(anonymous.code, 401, "POST {path} signed out");
    }
    for u in users {
        let r = api.send(
            api.client
                .delete(format!("{}/api/v1/calls/{none}", api.base))
                .header(reqwest::header::COOKIE, &sessions[u])
                .json(&serde_json::json!({ "reason": "r" })),
        );
        assert_eq!(r.code, if u == "dora" { 404 } else { 403 }, "DELETE as {u}");
        let r = api.get(&sessions[u], "/api/v1/keys");
        assert_eq!(
            r.code == 200,
            ["dora", "adam"].contains(&u),
            "keys as {u}: {}",
            r.code
        );
    }
    // an API token works as a bearer token only, and does not make more tokens; a web
    // session's secret is a cookie only
    // making one takes the password again (a session taken over cannot outlive itself)
    let refused = api.post(
        &sessions["pat"],
        "/api/v1/tokens",
        serde_json::json!({ "label": "report script" }),
    );
    assert_eq!(refused.code, 403, "a token without the password");
    let made = api.post(
        &sessions["pat"],
        "/api/v1/tokens",
        serde_json::json!({ "label": "report script", "password": PASSWORD }),
    );
    let token = made.json()["token"].as_str().unwrap().to_owned();
    let me = |req: reqwest::RequestBuilder| api.send(req).code;
    let url = format!("{}/api/v1/me", api.base);
    assert_eq!(me(api.client.get(&url).bearer_auth(&token)), 200);
    assert_eq!(
        me(api
            .client
            .get(&url)
            .header(reqwest::header::COOKIE, format!("cv_session={token}"))),
        401,
        "an API token as a cookie"
    );
    let session_secret = sessions["pat"].trim_start_matches("cv_session=").to_owned();
    assert_eq!(
        me(api.client.get(&url).bearer_auth(&session_secret)),
        401,
        "a web session as a bearer token"
    );
    assert_eq!(
        me(api
            .client
            .post(format!("{}/api/v1/tokens", api.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "label": "more" }))),
        403,
        "a token minting a token"
    );
    // what every answer says to browsers and proxies
    let r = api.get(&sessions["pat"], "/api/v1/calls");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(r.headers["referrer-policy"], "same-origin");
    // a manager's search sees their services only; the DPO's sees both
    let total = |u: &str| {
        api.get(&sessions[u], "/api/v1/calls").json()["total"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(total("pat"), 1);
    assert_eq!(total("sam"), 1);
    assert_eq!(total("dora"), 2);
    // the admin cannot listen, not even with a purpose
    let r = api.get(
        &sessions["adam"],
        &format!("/api/v1/calls/{id}/audio?grant=x"),
    );
    assert_eq!(r.code, 403);
    drop(lab);
}

/// The OpenAPI document the catalogue serves names every `/api/v1` route the router has,
/// with its methods, and every path it names exists (signed out: 401, never 404 or 405).
#[test]
fn the_openapi_document_describes_every_api_route() {
    let (_lab, _cat, api, recorded) = people_lab(|d| Some(Db::sqlite(d))).unwrap();
    let doc = api.send(api.client.get(format!("{}/api/v1/openapi.json", api.base)));
    assert_eq!(doc.code, 200);
    assert_eq!(doc.headers["content-type"], "application/json");
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (path.clone(), m.to_uppercase()))
        })
        .collect();
    // the router's /api/v1 routes, read from its source: `.route("/api/v1/…", get(…).post(…))`
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/catalogue/mod.rs"))
            .unwrap();
    let mut routed = std::collections::BTreeSet::new();
    for part in source.split(".route(").skip(1) {
        let part = part.trim_start();
        let Some(path) = part.strip_prefix('"').and_then(|p| p.split('"').next()) else {
            continue;
        };
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let handlers = part.split_once(',').unwrap().1;
        let handlers = &handlers[..handlers.find("\n        .").unwrap_or(handlers.len())];
        for method in ["get", "post", "put", "delete", "patch"] {
            if handlers.contains(&format!("{method}(")) {
                routed.insert((path.to_owned(), method.to_uppercase()));
            }
        }
    }
    assert!(routed.len() >= 20, "{routed:?}");
    assert_eq!(documented, routed, "documented vs routed");
    let id = &recorded[0].call_id;
    for (path, method) in &documented {
        let url = format!(
            "{}{}",
            api.base,
            path.replace("{id}", id).replace("{segment_id}", id)
        );
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = api.send(api.client.request(method.clone(), &url));
        assert!(![404, 405].contains(&r.code), "{method} {path}: {}", r.code);
    }
}

#[test]
fn every_endpoint_answers_each_role_as_the_policy_says_on_sqlite() {
    role_matrix(|d| Some(Db::sqlite(d)));
}

#[test]
fn every_endpoint_answers_each_role_as_the_policy_says_on_postgresql() {
    role_matrix(|_| Db::postgres("roles"));
}

/// `callvault catalogue ARGS` on the lab's configuration: (success, stdout, stderr).
fn console(lab: &Lab, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["catalogue", "-c"])
        .arg(lab.catalogue_config())
        .args(args)
        .env("SUDO_USER", "ops-jo")
        .env("CALLVAULT_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Offboarding and the rest of an account's life, through the API and the console: each
/// change takes effect at once, what could let someone hear recordings waits for a DPO, and
/// each is in the audit log with who and why.
fn account_lifecycle(db: impl FnOnce(&Path) -> Option<Db>) {
    let Some((lab, _cat, api, recorded)) = people_lab(db) else {
        return;
    };
    let (parking, other) = parking_and_other(&recorded);
    let adam = api.login("adam");
    let dora = api.login("dora");
    let login = |user: &str, password: &str, new_password: &str| {
        let r = api.send(
            api.client
                .post(format!("{}/api/v1/login", api.base))
                .json(&serde_json::json!({ "username": user, "password": password, "new_password": new_password })),
        );
        (r.code, String::from_utf8_lossy(&r.body).into_owned())
    };
    let approve = |user: &str| {
        let r = api.approve(&dora, user);
        assert_eq!(
            r.code,
            200,
            "approve {user}: {}",
            String::from_utf8_lossy(&r.body)
        );
    };
    let act = |user: &str, action: &str, reason: &str| {
        api.post(
            &adam,
            &format!("/api/v1/users/{user}/{action}"),
            serde_json::json!({ "reason": reason }),
        )
    };
    let ids = |session: &str| -> Vec<String> {
        let r = api.get(session, "/api/v1/calls");
        assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["call_id"].as_str().unwrap().to_owned())
            .collect()
    };
    // services are the agents' (as they spell them), never a typo
    assert_eq!(
        api.get(&adam, "/api/v1/services").json(),
        serde_json::json!(["Parking", "Switchboard"])
    );
    let (ok, _, err) = console(
        &lab,
        &[
            "user-add",
            "typo",
            "--role",
            "manager",
            "--services",
            "Parkng",
        ],
    );
    assert!(!ok && err.contains("Parking, Switchboard"), "{err}");
    user_add(&lab, "cleo", "manager", "parking", None);
    let (ok, _, err) = console(&lab, &["user-add", "cleo", "--role", "auditor"]);
    assert!(
        !ok && err.contains("choose another name") && !err.contains("UNIQUE"),
        "{err}"
    );
    let (_, users, _) = console(&lab, &["users"]);
    assert!(
        users
            .lines()
            .any(|l| l.starts_with("cleo\tmanager\tParking\t")),
        "{users}"
    );
    let r = api.send(
        api.client
            .patch(format!("{}/api/v1/users/sam", api.base))
            .header(reqwest::header::COOKIE, &adam)
            .json(&serde_json::json!({ "services": ["Parkng"], "reason": "r" })),
    );
    assert_eq!(r.code, 422, "an unknown service");
    // disable: the session open now stops working; no reason, no change
    let pat = api.login("pat");
    assert_eq!(
        act("pat", "disable", " ").code,
        422,
        "a change needs a reason"
    );
    assert_eq!(api.get(&pat, "/api/v1/me").code, 200);
    let r = act("pat", "disable", "left the council");
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(api.get(&pat, "/api/v1/me").code, 401, "signed out at once");
    assert_eq!(login("pat", PASSWORD, "").0, 401);
    // enabling a manager again waits for a DPO
    let r = act("pat", "enable", "came back");
    assert_eq!(r.json()["outcome"], "awaiting_approval");
    assert_eq!(
        login("pat", PASSWORD, "").0,
        401,
        "not before the DPO approves"
    );
    approve("pat");
    assert_eq!(login("pat", PASSWORD, "").0, 200);
    // nobody locks themselves out, nor the catalogue out of its last admin
    let r = act("adam", "disable", "oops");
    assert_eq!(r.code, 422, "{}", String::from_utf8_lossy(&r.body));
    // a reset: the temporary password only sets a new one; a member of staff needs no DPO
    let r = act("stef", "reset-password", "forgot it");
    assert_eq!(r.code, 200);
    let temporary = r.json()["temporary_password"].as_str().unwrap().to_owned();
    assert!(temporary.len() >= 16);
    assert_eq!(
        login("stef", PASSWORD, "").0,
        401,
        "the old password is gone"
    );
    let (code, text) = login("stef", &temporary, "");
    assert!(
        code == 403 && text.contains("new_password"),
        "{code} {text}"
    );
    assert_eq!(login("stef", &temporary, "short").0, 422);
    assert_eq!(login("stef", &temporary, "stef's own new password").0, 200);
    assert_eq!(login("stef", "stef's own new password", "").0, 200);
    // a manager's reset waits for a DPO (the admin knows the temporary password)
    let r = act("pat", "reset-password", "locked out");
    assert_eq!(r.json()["outcome"], "awaiting_approval");
    let temporary = r.json()["temporary_password"].as_str().unwrap().to_owned();
    assert_eq!(login("pat", &temporary, "pat's own new password").0, 401);
    approve("pat");
    assert_eq!(login("pat", &temporary, "pat's own new password").0, 200);
    // services: what is added waits for a DPO, what is taken away goes at once
    let sam = api.login("sam");
    assert_eq!(ids(&sam), vec![other.call_id.clone()]);
    let edit = |user: &str, services: serde_json::Value| {
        api.send(
            api.client
                .patch(format!("{}/api/v1/users/{user}", api.base))
                .header(reqwest::header::COOKIE, &adam)
                .json(&serde_json::json!({ "services": services, "reason": "moved team" })),
        )
    };
    let r = edit("sam", serde_json::json!(["Switchboard", "parking"]));
    assert_eq!(r.json()["outcome"], "awaiting_approval");
    assert_eq!(
        ids(&sam),
        vec![other.call_id.clone()],
        "not before the DPO approves"
    );
    approve("sam");
    let sam = api.login("sam");
    assert_eq!(ids(&sam).len(), 2);
    let r = edit("sam", serde_json::json!(["Parking"]));
    assert_eq!(r.json()["outcome"], "done");
    let sam = api.login("sam");
    assert_eq!(ids(&sam), vec![parking.call_id.clone()]);
    // a grant made before a service is taken away is not heard on
    let grant = api.post(
        &sam,
        &format!("/api/v1/calls/{}/access", parking.call_id),
        serde_json::json!({ "purpose": "complaint", "reference": "C-1" }),
    );
    let audio = grant.json()["audio"].as_str().unwrap().to_owned();
    assert_eq!(api.get(&sam, &audio).code, 200);
    assert_eq!(edit("sam", serde_json::json!([])).json()["outcome"], "done");
    assert!(
        api.get(&sam, &audio).code >= 400,
        "the grant went with the service"
    );
    // the DPO approves exactly what they were shown, and every part of it
    let r = act("pat", "reset-password", "second reset");
    let temporary = r.json()["temporary_password"].as_str().unwrap().to_owned();
    assert_eq!(
        act("pat", "reset-second-factor", "lost phone too").code,
        200
    );
    let shown = api.approval(&dora, "pat");
    let what = shown["what"].as_str().unwrap();
    assert!(
        what.contains("a password reset") && what.contains("a new second factor"),
        "both parts shown: {shown}"
    );
    assert_eq!(shown["services"], serde_json::json!(["Parking"]));
    // the admin changes what waits after the DPO looked: that approval is refused
    assert_eq!(
        edit("pat", serde_json::json!(["Parking", "Switchboard"])).json()["outcome"],
        "awaiting_approval"
    );
    let stale = api.post(
        &dora,
        "/api/v1/users/pat/approve",
        serde_json::json!({ "version": shown["version"] }),
    );
    assert_eq!(stale.code, 409, "{}", String::from_utf8_lossy(&stale.body));
    assert_eq!(
        login("pat", &temporary, "pat's own new password").0,
        401,
        "nothing approved"
    );
    let no_version = api.post(&dora, "/api/v1/users/pat/approve", serde_json::json!({}));
    assert_eq!(no_version.code, 422);
    let shown = api.approval(&dora, "pat");
    assert!(
        shown["what"]
            .as_str()
            .unwrap()
            .contains("services added: Switchboard"),
        "{shown}"
    );
    // the admin's edit form ticks what waits, so an unrelated edit keeps it
    let page = String::from_utf8_lossy(&api.get(&adam, "/admin").body).into_owned();
    assert!(
        page.contains("value=\"Switchboard\" checked> Switchboard (awaiting a DPO)"),
        "the pending service ticked on the admin page"
    );
    // disabling withdraws what waited: a later approval does not bring it back
    assert_eq!(act("pat", "disable", "on leave").code, 200);
    assert!(api.approval(&dora, "pat").is_null(), "nothing waits");
    assert_eq!(
        act("pat", "reset-second-factor", "while disabled").code,
        422,
        "a disabled account is enabled first"
    );
    assert_eq!(
        act("pat", "enable", "back from leave").json()["outcome"],
        "awaiting_approval"
    );
    let shown = api.approval(&dora, "pat");
    assert_eq!(shown["what"], "enable the account again", "{shown}");
    assert_eq!(shown["services"], serde_json::json!(["Parking"]));
    approve("pat");
    assert_eq!(
        login("pat", &temporary, "").0,
        403,
        "the reset still asks for a password of pat's own"
    );
    assert_eq!(login("pat", &temporary, "pat's own new password").0, 200);
    let pat = api.login_as("pat", "pat's own new password");
    assert_eq!(
        ids(&pat),
        vec![parking.call_id.clone()],
        "Switchboard was withdrawn with the disabling"
    );
    // API tokens: listed without secrets, revoked by their owner or an admin, dead at once
    let pat = api.login_as("pat", "pat's own new password");
    let token = api
        .post(
            &pat,
            "/api/v1/tokens",
            serde_json::json!({ "label": "weekly report", "password": "pat's own new password" }),
        )
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = api.get(&pat, "/api/v1/tokens").json();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["label"], "weekly report");
    assert!(!listed.to_string().contains(&token));
    assert_eq!(
        api.get(&sam, "/api/v1/tokens").json(),
        serde_json::json!([])
    );
    let r = api.post(
        &sam,
        &format!("/api/v1/tokens/{id}/revoke"),
        serde_json::json!({ "reason": "x" }),
    );
    assert_eq!(r.code, 404, "someone else's token");
    let bearer = |t: &str| {
        api.send(
            api.client
                .get(format!("{}/api/v1/me", api.base))
                .bearer_auth(t),
        )
        .code
    };
    assert_eq!(bearer(&token), 200);
    let (_, tokens, _) = console(&lab, &["tokens"]);
    assert!(
        tokens.contains(&id) && tokens.contains("weekly report"),
        "{tokens}"
    );
    let r = api.post(
        &adam,
        &format!("/api/v1/tokens/{id}/revoke"),
        serde_json::json!({ "reason": "script retired" }),
    );
    assert_eq!(r.code, 200);
    assert_eq!(bearer(&token), 401, "revoked at once");
    // an agent disabled: its token is refused from the next request
    let agent_token = std::fs::read_to_string(lab.path("callvault-agent.token")).unwrap();
    let scope = |t: &str| {
        api.send(
            api.client
                .put(format!("{}/api/v1/agent/scope", api.base))
                .bearer_auth(t.trim())
                .json(&serde_json::json!([])),
        )
        .code
    };
    let r = api.post(
        &adam,
        "/api/v1/agents/callvault-agent/disable",
        serde_json::json!({ "reason": "server stolen" }),
    );
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(scope(&agent_token), 401);
    let (ok, out, err) = console(
        &lab,
        &["agent-enable", "callvault-agent", "--reason", "recovered"],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(scope(&agent_token), 200);
    let agents = api.get(&adam, "/api/v1/agents").json();
    assert_eq!(agents[0]["disabled"], false);
    // delete: gone from the list, never signs in, the name never reused; history kept
    let r = act("stef", "delete", "left the council");
    assert_eq!(r.code, 200);
    assert_eq!(login("stef", "stef's own new password", "").0, 401);
    assert!(
        !api.get(&adam, "/api/v1/users")
            .json()
            .to_string()
            .contains("\"stef\"")
    );
    let again = api.post(
        &adam,
        "/api/v1/users",
        serde_json::json!({ "username": "stef", "password": PASSWORD, "role": "staff" }),
    );
    assert_eq!(again.code, 409);
    assert!(String::from_utf8_lossy(&again.body).contains("never given to someone else"));
    // the console: audited under the login name behind sudo
    let (ok, out, err) = console(&lab, &["user-disable", "cleo", "--reason", "never started"]);
    assert!(ok && out.contains("cleo is disabled"), "{out}{err}");
    let (ok, _, err) = console(&lab, &["agent-add", "site-3"]);
    assert!(ok, "{err}");
    let (ok, _, err) = console(&lab, &["user-disable", "nobody", "--reason", "x"]);
    assert!(!ok && err.contains("no user named \"nobody\""), "{err}");
    let aud = api.login("aud");
    let log = |action: &str| {
        api.get(&aud, &format!("/api/v1/audit?action={action}"))
            .json()
    };
    for (action, actor, reason) in [
        ("user_disable", "adam", "left the council"),
        ("user_enable", "adam", "came back"),
        ("user_password_reset", "adam", "forgot it"),
        ("user_edit", "adam", "moved team"),
        ("token_revoke", "adam", "script retired"),
        ("agent_disable", "adam", "server stolen"),
        ("agent_enable", "console:ops-jo", "recovered"),
        ("user_delete", "adam", "left the council"),
    ] {
        let records = log(action);
        let found = records
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["actor"] == actor && r["detail"].as_str().unwrap().contains(reason));
        assert!(found, "{action} by {actor} ({reason}): {records}");
    }
    let added = log("agent_add");
    assert!(
        added.to_string().contains("site-3") && added.to_string().contains("console:ops-jo"),
        "{added}"
    );
    let (rt, store) = lab.db.store();
    let all: Vec<String> = rt
        .block_on(store.audit_list(&callvault::catalogue::audit::AuditQuery {
            limit: 10_000,
            ..Default::default()
        }))
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    rt.block_on(store.close());
    assert_actions_listed(&all);
    drop(lab);
}

/// The current TOTP code of a base32 key, `ahead` steps on.
fn totp_code(key: &str, ahead: u64) -> String {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bytes, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in key.chars() {
        buffer = (buffer << 5) | ALPHABET.find(c).unwrap() as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
        }
    }
    let step = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
        + ahead;
    format!("{:06}", callvault::catalogue::totp::code_at(&bytes, step))
}

/// Accounts that may hear recordings sign in with a second factor they set up at their first
/// sign-in; a wrong or replayed code is refused and counts as a failed sign-in; the other
/// roles sign in with their password.
#[test]
fn listening_accounts_sign_in_with_a_second_factor() {
    // a catalogue without the second factor: a manager's session and API token
    let (lab, _cat, before, _) = people_lab_in(Lab::new(|d| Some(Db::sqlite(d))).unwrap());
    let session = before.login("pat");
    let token = before
        .post(
            &session,
            "/api/v1/tokens",
            serde_json::json!({ "label": "report", "password": PASSWORD }),
        )
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // the same catalogue once it asks for one: what was opened without it is refused
    lab.sections_extra
        .borrow_mut()
        .push_str("[sign_in]\nsecond_factor = true\n");
    let port = free_port();
    let _cat2 = lab.start_catalogue_on(port);
    let api = Api::new(port);
    assert_eq!(api.get(&session, "/api/v1/me").code, 401, "the old session");
    let r = api.send(
        api.client
            .get(format!("{}/api/v1/me", api.base))
            .bearer_auth(&token),
    );
    assert_eq!(r.code, 401, "the old API token");
    let login = |user: &str, code: &str| {
        let r =
            api.send(api.client.post(format!("{}/api/v1/login", api.base)).json(
                &serde_json::json!({ "username": user, "password": PASSWORD, "code": code }),
            ));
        let text = String::from_utf8_lossy(&r.body).into_owned();
        (r.code, text)
    };
    // staff, auditor and admin: a password is enough
    for u in ["stef", "aud", "adam"] {
        assert_eq!(login(u, "").0, 200, "{u}");
    }
    // a manager's first sign-in: a key to set up, the same key until it is confirmed
    let (code, text) = login("pat", "");
    assert_eq!(code, 403, "{text}");
    let setup: serde_json::Value = serde_json::from_str(&text).unwrap();
    let key = setup["totp_secret"].as_str().unwrap().to_owned();
    assert!(key.len() >= 32, "{key}");
    assert!(
        setup["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/callvault:pat?secret=")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&login("pat", "000000").1).unwrap()["totp_secret"],
        key.as_str(),
        "a wrong code keeps the key being set up"
    );
    assert_eq!(
        login("pat", &totp_code(&key, 0)).0,
        200,
        "set up with the app's code"
    );
    // from now on: no code, no session; a used code is refused; the next one works
    let (code, text) = login("pat", "");
    assert!(code == 401 && text.contains("code"), "{code} {text}");
    assert_eq!(
        login("pat", &totp_code(&key, 0)).0,
        401,
        "a code is good once"
    );
    assert_eq!(
        login("pat", &totp_code(&key, 1)).0,
        200,
        "the next step's code"
    );
    // the password alone never opens a session of a listening account, even via a token
    assert_eq!(login("pat", "123456").0, 401);
    // the wrong codes counted as failed sign-ins
    let aud = api.login("aud");
    let failed = api.get(&aud, "/api/v1/audit?action=login_failed").json();
    assert!(
        failed
            .as_array()
            .unwrap()
            .iter()
            .filter(
                |r| r["actor"] == "pat" && r["detail"].as_str().unwrap().contains("second factor")
            )
            .count()
            >= 2,
        "{failed}"
    );
    // a lost phone: the admin clears the factor, a DPO approves, a new key is set up
    let adam = api.login("adam");
    let r = api.post(
        &adam,
        "/api/v1/users/pat/reset-second-factor",
        serde_json::json!({ "reason": "lost phone" }),
    );
    assert_eq!(r.json()["outcome"], "awaiting_approval");
    assert_eq!(
        login("pat", &totp_code(&key, 1)).0,
        401,
        "waits for the DPO"
    );
    let (_, text) = login("dora", "");
    let dora_key = serde_json::from_str::<serde_json::Value>(&text).unwrap()["totp_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api.send(
        api.client
            .post(format!("{}/api/v1/login", api.base))
            .json(&serde_json::json!({ "username": "dora", "password": PASSWORD, "code": totp_code(&dora_key, 0) })),
    );
    assert_eq!(r.code, 200);
    let dora = r.headers[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // the DPO is given a set-up code to hand over: the admin, who may know the password,
    // cannot set up the new factor alone
    let r = api.approve(&dora, "pat");
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    let setup_code = r.json()["setup_code"].as_str().unwrap().to_owned();
    assert!(setup_code.len() >= 16, "{setup_code}");
    let enrol = |setup: &str, code: &str| {
        let r = api.send(
            api.client
                .post(format!("{}/api/v1/login", api.base))
                .json(&serde_json::json!({ "username": "pat", "password": PASSWORD, "code": code, "setup_code": setup })),
        );
        (r.code, String::from_utf8_lossy(&r.body).into_owned())
    };
    let (code, text) = login("pat", "");
    assert!(code == 403 && text.contains("setup_code"), "{code} {text}");
    let (code, text) = enrol("abcdefghijkmnpqr", "");
    assert!(
        code == 403 && text.contains("wrong set-up code"),
        "{code} {text}"
    );
    let (code, text) = enrol(&setup_code.to_uppercase(), "");
    assert_eq!(code, 403, "{text}");
    let new_key = serde_json::from_str::<serde_json::Value>(&text).unwrap()["totp_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_key, key);
    assert_eq!(
        login("pat", &totp_code(&new_key, 0)).0,
        403,
        "the set-up code is needed until the key is confirmed"
    );
    assert_eq!(enrol(&setup_code, &totp_code(&new_key, 0)).0, 200);
    assert_eq!(
        enrol(&setup_code, &totp_code(&new_key, 1)).0,
        200,
        "the set-up code is spent; the factor is what counts"
    );
    // an admin's new manager: a password of their own and a factor set up with the DPO's code
    let r = api.post(
        &adam,
        "/api/v1/users",
        serde_json::json!({ "username": "newbie", "password": PASSWORD, "role": "manager", "services": ["Parking"] }),
    );
    assert_eq!(r.code, 202);
    let r = api.approve(&dora, "newbie");
    let newbie_code = r.json()["setup_code"].as_str().unwrap().to_owned();
    let r = api.send(
        api.client
            .post(format!("{}/api/v1/login", api.base))
            .json(&serde_json::json!({ "username": "newbie", "password": PASSWORD })),
    );
    assert!(
        r.code == 403 && String::from_utf8_lossy(&r.body).contains("setup_code"),
        "the admin, with the password alone, gets no key: {}",
        String::from_utf8_lossy(&r.body)
    );
    let r = api.send(
        api.client
            .post(format!("{}/api/v1/login", api.base))
            .json(&serde_json::json!({ "username": "newbie", "password": PASSWORD, "setup_code": newbie_code })),
    );
    let newbie_key = r.json()["totp_secret"].as_str().unwrap().to_owned();
    let r = api.send(
        api.client
            .post(format!("{}/api/v1/login", api.base))
            .json(&serde_json::json!({ "username": "newbie", "password": PASSWORD, "setup_code": newbie_code, "code": totp_code(&newbie_key, 0) })),
    );
    assert!(
        r.code == 403 && String::from_utf8_lossy(&r.body).contains("new_password"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = api.send(
        api.client
            .post(format!("{}/api/v1/login", api.base))
            .json(&serde_json::json!({ "username": "newbie", "password": PASSWORD, "code": totp_code(&newbie_key, 1), "new_password": "newbie's own password" })),
    );
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    // the web page shows the key to set up
    let r = api.send(with_form(
        api.client
            .post(format!("{}/login", api.base))
            .header(reqwest::header::COOKIE, "cv_login=t1")
            .header(reqwest::header::ORIGIN, &api.base),
        &[("username", "sam"), ("password", PASSWORD), ("csrf", "t1")],
    ));
    let page = String::from_utf8_lossy(&r.body);
    assert!(
        page.contains("id=\"totp-key\"") && page.contains("authenticator app"),
        "{page}"
    );
    drop(lab);
}

#[test]
fn accounts_are_disabled_reset_edited_and_deleted_with_a_reason_on_sqlite() {
    account_lifecycle(|d| Some(Db::sqlite(d)));
}

#[test]
fn accounts_are_disabled_reset_edited_and_deleted_with_a_reason_on_postgresql() {
    account_lifecycle(|_| Db::postgres("accounts"));
}

fn search_filters(db: impl FnOnce(&Path) -> Option<Db>) {
    let Some((_lab, _cat, api, recorded)) = people_lab(db) else {
        return;
    };
    let dora = api.login("dora");
    let ids = |path: &str| -> Vec<String> {
        let r = api.get(&dora, path);
        assert_eq!(r.code, 200, "{path}");
        r.json()["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["call_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let parking = recorded
        .iter()
        .find(|r| r.service.as_deref() == Some("Parking"))
        .unwrap();
    let want = vec![parking.call_id.clone()];
    let other = recorded
        .iter()
        .find(|r| r.call_id != parking.call_id)
        .unwrap();
    let caller = parking.caller.replace('+', "%2B");
    assert_eq!(ids(&format!("/api/v1/calls?caller={caller}")), want);
    assert_eq!(ids("/api/v1/calls?service=Parking"), want);
    assert_eq!(
        ids(&format!(
            "/api/v1/calls?sip_call_id={}",
            parking.sip_call_ids[0].replace('@', "%40")
        )),
        want
    );
    assert_eq!(
        ids(&format!(
            "/api/v1/calls?party={}",
            parking.legs[0].to.replace('+', "%2B")
        )),
        want
    );
    assert_eq!(ids("/api/v1/calls?max_seconds=0").len(), 0);
    assert_eq!(ids("/api/v1/calls?min_seconds=1").len(), 2);
    let started = callvault::catalogue::store::rfc3339_ms(&other.started_at).unwrap();
    assert!(ids(&format!("/api/v1/calls?from={}", started + 1)).len() <= 1);
    assert_eq!(
        ids(&format!("/api/v1/calls?to={}", started - 60_000)).len(),
        0
    );
    // paging: one call per page, newest first, every call once
    let p1 = ids("/api/v1/calls?page_size=1&page=1");
    let p2 = ids("/api/v1/calls?page_size=1&page=2");
    assert_eq!(p1.len() + p2.len(), 2);
    assert_ne!(p1, p2);
    assert_eq!(
        api.get(&dora, "/api/v1/calls?page_size=1").json()["total"],
        2
    );
    // a number in every format people write it finds the call, as caller and as any party
    let query = |pairs: &[(&str, &str)]| {
        let r = api.send(
            api.client
                .get(format!("{}/api/v1/calls", api.base))
                .header(reqwest::header::COOKIE, &dora)
                .query(pairs),
        );
        (r.code, String::from_utf8_lossy(&r.body).into_owned(), r)
    };
    let national = parking
        .caller
        .strip_prefix("+44")
        .expect("the lab's callers are UK numbers");
    let formats = [
        format!("0{national}"),
        format!("0{} {}", &national[..4], &national[4..]),
        format!("44{national}"),
        format!("0044{national}"),
        format!("+44 {} {}", &national[..4], &national[4..]),
        parking.caller.clone(),
    ];
    for typed in &formats {
        for key in ["caller", "party"] {
            let (code, body, r) = query(&[(key, typed)]);
            assert_eq!(code, 200, "{key}={typed}: {body}");
            let found: Vec<String> = r.json()["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["call_id"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(found, want, "{key}={typed}");
        }
    }
    // a service in any case; filters that cannot be read are refused, saying what to fix
    assert_eq!(ids("/api/v1/calls?service=parking"), want);
    for (pairs, code, says) in [
        (vec![("service", "Parkng")], 422, "Parking, Switchboard"),
        (vec![("from", "garbage")], 422, "not a time"),
        (
            vec![("from", "1772582400")],
            422,
            "seconds? write 1772582400000",
        ),
        (vec![("min_seconds", "abc")], 422, "whole number of seconds"),
        (
            vec![("from", "2026-03-04"), ("to", "2026-03-03")],
            422,
            "swap them",
        ),
        (
            vec![("min_seconds", "60"), ("max_seconds", "10")],
            422,
            "min_seconds",
        ),
        (vec![("page", "x")], 422, "page"),
        (vec![("callr", "07700900403")], 400, "callr"),
    ] {
        let (got, body, _) = query(&pairs);
        assert_eq!(got, code, "{pairs:?}: {body}");
        assert!(body.contains(says), "{pairs:?}: {body}");
    }
    assert_eq!(
        ids("/api/v1/calls?from=2026-03-01&to=2036-03-01").len(),
        2,
        "days"
    );
    // the calls found, as CSV for a report: audited, numbers that cannot run as formulas
    let r = api.send(
        api.client
            .get(format!("{}/api/v1/calls.csv", api.base))
            .header(reqwest::header::COOKIE, &dora)
            .query(&[("caller", &formats[1])]),
    );
    assert_eq!(r.code, 200);
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.headers["x-calls-found"], "1");
    let csv = String::from_utf8_lossy(&r.body).into_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].starts_with("call_id,started_utc,service,caller"),
        "{csv}"
    );
    assert!(
        lines[1].starts_with(&parking.call_id)
            && lines[1].contains(&format!("'{}", parking.caller)),
        "{csv}"
    );
    let aud = api.login("aud");
    let exports = api.get(&aud, "/api/v1/audit?action=search_export").json();
    assert_eq!(exports.as_array().unwrap().len(), 1, "{exports}");
    assert_eq!(exports[0]["actor"], "dora");
    // a subject-access request in national format: its count before the bundle
    let r = api.post(
        &dora,
        "/api/v1/subject-access",
        serde_json::json!({ "caller": formats[1], "reference": "SAR-9", "preview": true }),
    );
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        serde_json::json!({ "subject": parking.caller, "calls": 1 })
    );
    let r = api.post(
        &dora,
        "/api/v1/subject-access",
        serde_json::json!({ "caller": formats[0], "reference": "SAR-9", "from": "soon" }),
    );
    assert_eq!(r.code, 422, "an unreadable date is not 'everything'");
}

#[test]
fn search_finds_calls_by_each_filter_on_sqlite() {
    search_filters(|d| Some(Db::sqlite(d)));
}

#[test]
fn search_finds_calls_by_each_filter_on_postgresql() {
    search_filters(|_| Db::postgres("search"));
}

#[test]
fn listening_needs_a_purpose_is_audited_first_and_serves_the_call_with_ranges() {
    let (lab, _cat, api, recorded) = people_lab(|d| Some(Db::sqlite(d))).unwrap();
    let parking = recorded
        .iter()
        .find(|r| r.service.as_deref() == Some("Parking"))
        .unwrap();
    let id = &parking.call_id;
    let pat = api.login("pat");
    // no purpose, no audio
    assert_eq!(
        api.get(&pat, &format!("/api/v1/calls/{id}/audio")).code,
        403
    );
    assert_eq!(
        api.get(&pat, &format!("/api/v1/calls/{id}/audio?grant=guess"))
            .code,
        403
    );
    let bad = api.post(
        &pat,
        &format!("/api/v1/calls/{id}/access"),
        serde_json::json!({ "purpose": "curiosity", "reference": "x" }),
    );
    assert_eq!(bad.code, 422);
    let no_ref = api.post(
        &pat,
        &format!("/api/v1/calls/{id}/access"),
        serde_json::json!({ "purpose": "complaint", "reference": "  " }),
    );
    assert_eq!(no_ref.code, 422);
    let granted = api.post(
        &pat,
        &format!("/api/v1/calls/{id}/access"),
        serde_json::json!({ "purpose": "complaint", "reference": "C-2026-0042" }),
    );
    assert_eq!(granted.code, 200);
    let g = granted.json();
    // the retrieval is in the audit log before any audio has been asked for
    let aud = api.login("aud");
    let log = api
        .get(&aud, &format!("/api/v1/audit?action=retrieve&call_id={id}"))
        .json();
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log[0]["actor"], "pat");
    assert_eq!(log[0]["purpose"], "complaint");
    assert_eq!(log[0]["reference"], "C-2026-0042");
    assert_eq!(log[0]["seq"], g["audit_seq"]);
    // the grant is this user's: another manager cannot use it
    let sam = api.login("sam");
    assert_eq!(
        api.get(&sam, g["audio"].as_str().unwrap()).code,
        404,
        "not sam's call"
    );
    // the WAV is the call as `callvault export` makes it, byte for byte
    let whole = api.get(&pat, g["audio"].as_str().unwrap());
    assert_eq!(whole.code, 200);
    assert_eq!(whole.headers["content-type"], "audio/wav");
    assert_eq!(whole.headers["accept-ranges"], "bytes");
    let key = callvault::vault::CataloguePrivateKey::load(&lab.private).unwrap();
    let json = lab.spool().join("calls").join(format!("{id}.json"));
    let exported = callvault::export::export_call(&json, &key).unwrap();
    let wav = lab.path("export.wav");
    callvault::export::write_wav(&wav, exported.rate, &exported.samples).unwrap();
    let want = std::fs::read(&wav).unwrap();
    assert_eq!(whole.body.len(), want.len());
    assert_eq!(whole.body[44..], want[44..], "the audio sample for sample");
    // seeking: ranges anywhere, across the header, open-ended and from the end
    let len = want.len();
    for (range, from, to) in [
        ("bytes=0-99".to_owned(), 0, 100),
        (format!("bytes=40-{}", 40 + 9000), 40, 9041),
        (format!("bytes={}-", len / 2), len / 2, len),
        ("bytes=-1000".to_owned(), len - 1000, len),
    ] {
        let r = api.get_range(&pat, g["audio"].as_str().unwrap(), &range);
        assert_eq!(r.code, 206, "{range}");
        assert_eq!(
            r.headers["content-range"].to_str().unwrap(),
            format!("bytes {from}-{}/{len}", to - 1)
        );
        assert_eq!(r.body, whole.body[from..to], "{range}");
    }
    let r = api.get_range(&pat, g["audio"].as_str().unwrap(), &format!("bytes={len}-"));
    assert_eq!(r.code, 416);
    // transparency: the member of staff on the call sees that retrieval, and nothing else
    let stef = api.login("stef");
    let seen = api.get(&stef, "/api/v1/audit").json();
    assert!(!seen.as_array().unwrap().is_empty());
    assert!(
        seen.as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] == "retrieve" && r["call_id"] == id.as_str()),
        "{seen}"
    );
    // managers listening at the same moment: every retrieval is granted, audited and served
    // (on SQLite a deferred transaction upgraded to a write failed with "database is locked")
    let dora = api.login("dora");
    let at_once = api
        .rt
        .block_on(futures_util::future::join_all((0..12).map(|i| {
            let (client, base) = (api.client.clone(), api.base.clone());
            let session = if i % 2 == 0 {
                pat.clone()
            } else {
                dora.clone()
            };
            async move {
                let (code, body) = retrieve(&client, &base, &session, id, &format!("C-{i}")).await;
                (code, body.len())
            }
        })));
    assert!(
        at_once.iter().all(|&(code, n)| code == 200 && n == len),
        "{at_once:?}"
    );
    let log = api
        .get(
            &aud,
            &format!("/api/v1/audit?action=retrieve&call_id={id}&page_size=100"),
        )
        .json();
    assert_eq!(log.as_array().unwrap().len(), 13, "{log}");
    assert_eq!(api.get(&aud, "/api/v1/audit/verify").json()["ok"], true);
}

/// An agent's document is held to the contract's limits and to what the catalogue received;
/// a stored segment that is not what was received is an error (and an audit record) when it
/// is read, never another call's audio or silence.
#[test]
fn hostile_documents_are_refused_and_tampered_segments_never_play() {
    let Some((lab, _cat, api, recorded)) = people_lab(|d| Some(Db::sqlite(d))) else {
        return;
    };
    let token = std::fs::read_to_string(lab.path("callvault-agent.token")).unwrap();
    let (parking, other) = parking_and_other(&recorded);
    // files holding callers' numbers are the owner's only, whatever the umask
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&lab.path("catalogue.db")),
        0o600,
        "the catalogue's database"
    );
    let doc_file = lab
        .spool()
        .join("calls")
        .join(format!("{}.json", parking.call_id));
    assert_eq!(mode(&doc_file), 0o600, "the spool's call document");
    let post = |doc: &serde_json::Value| {
        let r = api.send(
            api.client
                .post(format!("{}/api/v1/calls", api.base))
                .bearer_auth(token.trim())
                .json(doc),
        );
        (r.code, String::from_utf8_lossy(&r.body).into_owned())
    };
    // a health report: an agent's own token only, held to its bounds
    let health = |token: &str, live: usize| {
        let report = callvault::record::health::AgentHealth {
            version: "1".into(),
            live: vec![Default::default(); live],
            ..Default::default()
        };
        let r = api.send(
            api.client
                .put(format!("{}/api/v1/agent/health", api.base))
                .bearer_auth(token)
                .json(&report),
        );
        (r.code, String::from_utf8_lossy(&r.body).into_owned())
    };
    assert_eq!(health("not-a-token", 0).0, 401);
    let (code, text) = health(token.trim(), callvault::record::health::MAX_LIVE_CALLS + 1);
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("live calls"), "{text}");
    assert_eq!(health(token.trim(), 1).0, 200);
    let doc = serde_json::to_value(&parking).unwrap();
    let signal = doc["signalling"][0].clone();
    type Spoil = Box<dyn Fn(&mut serde_json::Value)>;
    let hostile: Vec<(&str, Spoil)> = vec![
        (
            "a 1 TiB segment",
            Box::new(|d| d["segments"][0]["bytes"] = (1u64 << 40).into()),
        ),
        (
            "a 144-byte segment",
            Box::new(|d| d["segments"][0]["bytes"] = 144.into()),
        ),
        (
            "an offset of 2^50 ms",
            Box::new(|d| d["segments"][0]["offset_ms"] = (1u64 << 50).into()),
        ),
        (
            "a rate of 7 Hz",
            Box::new(|d| d["segments"][0]["sample_rate"] = 7.into()),
        ),
        (
            "a segment listed twice",
            Box::new(|d| {
                let s = d["segments"][0].clone();
                d["segments"].as_array_mut().unwrap().push(s);
            }),
        ),
        (
            "30,000 signalling entries",
            Box::new(move |d| {
                d["signalling"] = serde_json::Value::Array(vec![signal.clone(); 1_000]);
            }),
        ),
        (
            "a call not recorded",
            Box::new(|d| d["decision"]["record"] = false.into()),
        ),
        (
            "a start that is not a time",
            Box::new(|d| d["started_at"] = "yesterday".into()),
        ),
        (
            "a 20 kB caller",
            Box::new(|d| d["caller"] = "9".repeat(20_000).into()),
        ),
    ];
    for (what, spoil) in &hostile {
        let mut d = doc.clone();
        spoil(&mut d);
        let (code, text) = post(&d);
        assert_eq!(code, 422, "{what}: {text}");
    }
    // a service the agent did not say it records
    let scope = serde_json::json!([
        { "number": "+442073715678", "service": "Parking", "retention_days": null },
        { "number": "+442073715000", "service": "Switchboard", "retention_days": null },
    ]);
    let r = api.send(
        api.client
            .put(format!("{}/api/v1/agent/scope", api.base))
            .bearer_auth(token.trim())
            .json(&scope),
    );
    assert_eq!(r.code, 200);
    let mut d = doc.clone();
    d["service"] = "Parkng".into();
    let (code, text) = post(&d);
    assert_eq!(code, 422, "an unknown service: {text}");
    assert!(text.contains("Parking"), "{text}");
    // a document too large for any call is not even read
    let mut d = doc.clone();
    d["legs"] = serde_json::Value::Array(vec![doc["legs"][0].clone(); 100_000]);
    // (a client of its own: the connection the server cuts off is not one the others reuse)
    let sent = api.rt.block_on(
        reqwest::Client::new()
            .post(format!("{}/api/v1/calls", api.base))
            .bearer_auth(token.trim())
            .json(&d)
            .send(),
    );
    // 413, or the connection closed before the client had written all of it
    assert!(
        sent.as_ref().map_or(true, |r| r.status() == 413),
        "100,000 legs: {sent:?}"
    );
    // the catalogue still serves, and the honest document stands
    assert_eq!(post(&doc).0, 200);

    // tampering with what is stored
    let pat = api.login("pat");
    let listen = |session: &str| {
        let g = api.post(
            session,
            &format!("/api/v1/calls/{}/access", parking.call_id),
            serde_json::json!({ "purpose": "complaint", "reference": "C-77" }),
        );
        assert_eq!(g.code, 200, "{}", String::from_utf8_lossy(&g.body));
        let audio = g.json()["audio"].as_str().unwrap().to_owned();
        // (code, the body when it arrived whole)
        api.rt.block_on(async {
            let r = api
                .client
                .get(format!("{}{audio}", api.base))
                .header(reqwest::header::COOKIE, session)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.bytes().await.ok().map(|b| b.to_vec()),
            )
        })
    };
    let good = listen(&pat);
    assert_eq!(good.0, 200);
    let good = good.1.expect("the whole WAV");
    let blob = |call: &CallRecord| {
        lab.path("blobs")
            .join(callvault::catalogue::blobs::Blobs::name_for(
                &call.segments[0].segment_id,
            ))
    };
    let original = std::fs::read(blob(&parking)).unwrap();
    // another call's file copied over this one's
    std::fs::copy(blob(&other), blob(&parking)).unwrap();
    let (code, body) = listen(&pat);
    assert!(code >= 500, "another call's audio: {code}");
    assert!(body.is_none_or(|b| b != good));
    // the file cut at a chunk boundary
    let header = callvault::vault::SegmentHeader::parse(&original).unwrap();
    let cut = callvault::vault::HEADER_LEN + header.chunk_stride() as usize;
    assert!(cut < original.len(), "the segment has more than one chunk");
    std::fs::write(blob(&parking), &original[..cut]).unwrap();
    let (code, _) = listen(&pat);
    assert!(code >= 500, "a truncated file: {code}");
    // one byte changed inside a chunk, the size kept: the chunk does not open, and the
    // download breaks off there
    let mut flipped = original.clone();
    flipped[cut + 10] ^= 1;
    std::fs::write(blob(&parking), &flipped).unwrap();
    let (code, body) = listen(&pat);
    assert!(
        code >= 500 || body.is_none(),
        "an altered chunk is never served ({code}, {:?} bytes)",
        body.map(|b| b.len())
    );
    std::fs::write(blob(&parking), &original).unwrap();
    assert_eq!(listen(&pat).1, Some(good), "the original plays again");
    let audit = api
        .get(&api.login("aud"), "/api/v1/audit?page_size=1000")
        .json();
    let failures = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "integrity_failure" && r["call_id"] == parking.call_id.as_str())
        .count();
    assert!(failures >= 3, "each failure is audited ({failures})");
}

/// A segment the agent recovered after a crash (cut mid-chunk, `complete: false`) is served
/// up to its last whole chunk, as `callvault decrypt --recovered` opens it, Range by Range.
#[test]
fn a_segment_recovered_after_a_crash_is_served_up_to_its_last_whole_chunk() {
    let lab = Lab::new(|d| Some(Db::sqlite(d))).unwrap();
    let token = std::fs::read_to_string(lab.agent_add("callvault-agent")).unwrap();
    let mut recorded = lab.record_talk(72, 8_000);
    user_add(&lab, "dora", "dpo", "", None);
    let _cat = lab.start_catalogue();
    let api = Api::new(lab.catalogue_port);
    let rec = &mut recorded[0];
    assert_eq!(rec.segments.len(), 1);
    let seg = &mut rec.segments[0];
    let path = lab.spool().join(&seg.file);
    let full = std::fs::read(&path).unwrap();
    let chunk = callvault::vault::SegmentHeader::parse(&full)
        .unwrap()
        .chunk_size as usize;
    let stride = chunk + 16;
    let cut = callvault::vault::HEADER_LEN + 2 * stride + 1_000;
    assert!(full.len() > cut + stride, "three chunks or more");
    let truncated = full[..cut].to_vec();
    std::fs::write(&path, &truncated).unwrap();
    seg.complete = false;
    seg.bytes = cut as u64;
    seg.sha256 = sha256_hex(&truncated);
    ship(&api, &lab, &token, std::slice::from_ref(rec));

    let key = callvault::vault::CataloguePrivateKey::load(&lab.private).unwrap();
    let (_, plain, complete) = callvault::vault::SegmentOpener::recover(&truncated, &key).unwrap();
    assert!(!complete);
    let pcm = &plain[44..];
    let pcm = &pcm[..pcm.len() / 4 * 4];
    assert_eq!(pcm.len(), 2 * chunk - 44);

    let dora = api.login("dora");
    let g = api
        .post(
            &dora,
            &format!("/api/v1/calls/{}/access", rec.call_id),
            serde_json::json!({ "purpose": "complaint", "reference": "C-9" }),
        )
        .json();
    let audio = g["audio"].as_str().unwrap();
    let whole = api.get(&dora, audio);
    assert_eq!(whole.code, 200);
    assert_eq!(
        &whole.body[44..],
        pcm,
        "the recovered audio, sample for sample"
    );
    // a range across the boundary of the first and second chunks
    let (from, to) = (chunk - 3_000, chunk + 3_000);
    let r = api.get_range(&dora, audio, &format!("bytes={from}-{}", to - 1));
    assert_eq!(r.code, 206);
    assert_eq!(r.body, whole.body[from..to]);
}

#[test]
fn the_audit_chain_verifies_refuses_changes_and_names_a_tampered_record() {
    let (lab, cat, api, recorded) = people_lab(|d| Some(Db::sqlite(d))).unwrap();
    let dora = api.login("dora");
    api.get(&dora, "/api/v1/calls?service=Parking");
    let id = &recorded[0].call_id;
    api.post(
        &dora,
        &format!("/api/v1/calls/{id}/access"),
        serde_json::json!({ "purpose": "subject_access", "reference": "SAR-17" }),
    );
    let aud = api.login("aud");
    let v = api.get(&aud, "/api/v1/audit/verify").json();
    assert_eq!(v["ok"], true, "{v}");
    let records = v["records"].as_i64().unwrap();
    assert!(
        records >= 10,
        "logins, searches, user adds and the retrieval: {v}"
    );
    drop(cat);
    let verify = || {
        Command::new(BIN)
            .args(["audit", "verify", "-c"])
            .arg(lab.catalogue_config())
            .output()
            .unwrap()
    };
    let out = verify();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // the database refuses to change or delete a record
    let (rt, store) = lab.db.store();
    rt.block_on(async {
        let update = sqlx::query("UPDATE audit SET reference = 'nothing to see' WHERE seq = 3")
            .execute(&store.pool_for_tests())
            .await;
        assert!(update.is_err(), "an UPDATE of the audit log must fail");
        let delete = sqlx::query("DELETE FROM audit WHERE seq = 3")
            .execute(&store.pool_for_tests())
            .await;
        assert!(delete.is_err(), "a DELETE from the audit log must fail");
        // someone with the database's keys drops the guard and edits a record
        sqlx::raw_sql("DROP TRIGGER audit_no_update")
            .execute(&store.pool_for_tests())
            .await
            .unwrap();
        sqlx::query("UPDATE audit SET reference = 'nothing to see' WHERE seq = 3")
            .execute(&store.pool_for_tests())
            .await
            .unwrap();
        store.close().await;
    });
    let out = verify();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("BROKEN at record 3"), "{text}");
}

/// The audit chain's signed heads (kept outside the database) show what the hash chain alone
/// cannot: its last records deleted, or the chain rebuilt with fresh hashes after an edit.
#[test]
fn signed_heads_show_a_truncated_or_rebuilt_audit_chain() {
    let lab = Lab::new(|d| Some(Db::sqlite(d))).unwrap();
    *lab.sections_extra.borrow_mut() = "[audit]\nsign_every_seconds = 1\n".into();
    let (lab, cat, api, _) = people_lab_in(lab);
    let aud = api.login("aud");
    let records = api.get(&aud, "/api/v1/audit/verify").json()["records"]
        .as_i64()
        .unwrap();
    // the head is signed within a few seconds, to the file beside the blobs
    let heads = lab.path("audit-heads.jsonl");
    let started = Instant::now();
    loop {
        let v = api.get(&aud, "/api/v1/audit/verify").json();
        if v["signed"]["newest"]["seq"].as_i64() >= Some(records) {
            assert_eq!(v["ok"], true, "{v}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(cat);
    let verify = || {
        let out = Command::new(BIN)
            .args(["audit", "verify", "-c"])
            .arg(lab.catalogue_config())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = verify();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("newest signed head: record"), "{text}");
    let signed = callvault::catalogue::audit_heads::read(&heads).unwrap().0;
    let newest = signed.iter().map(|h| h.seq).max().unwrap();
    // a head signed with a key the catalogue does not have is ignored (and said so)
    let (stranger, _) = callvault::vault::CataloguePrivateKey::generate();
    let forged = callvault::catalogue::audit_heads::Signer::of(&stranger)
        .unwrap()
        .sign(newest + 50, "00", 1);
    callvault::catalogue::audit_heads::append(&heads, &forged).unwrap();
    let (code, text) = verify();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("1 head(s) whose signature does not hold"),
        "{text}"
    );

    let (rt, store) = lab.db.store();
    let pool = store.pool_for_tests();
    // an insider with the database rebuilds the chain after editing a record: every hash
    // holds, but not the signed head
    rt.block_on(async {
        sqlx::raw_sql("DROP TRIGGER audit_no_update")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("UPDATE audit SET reference = 'nothing to see' WHERE seq = 3")
            .execute(&pool)
            .await
            .unwrap();
        let mut prev = callvault::catalogue::audit::GENESIS.to_owned();
        let rows = store
            .audit_list(&callvault::catalogue::audit::AuditQuery {
                limit: 100_000,
                ..Default::default()
            })
            .await
            .unwrap();
        for mut r in rows.into_iter().rev() {
            r.prev_hash = prev.clone();
            r.hash = callvault::catalogue::audit::record_hash(&r);
            sqlx::query("UPDATE audit SET prev_hash = $1, hash = $2 WHERE seq = $3")
                .bind(&r.prev_hash)
                .bind(&r.hash)
                .bind(r.seq)
                .execute(&pool)
                .await
                .unwrap();
            prev = r.hash;
        }
    });
    assert!(
        rt.block_on(store.audit_verify()).unwrap().ok,
        "the rebuilt chain's hashes hold"
    );
    let (code, text) = verify();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("rewritten"), "{text}");
    // and one who deletes the last records leaves a chain that ends before its signed head
    rt.block_on(async {
        sqlx::raw_sql("DROP TRIGGER audit_no_delete")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM audit WHERE seq > $1")
            .bind(newest - 3)
            .execute(&pool)
            .await
            .unwrap();
    });
    assert!(
        rt.block_on(store.audit_verify()).unwrap().ok,
        "the shortened chain's hashes hold"
    );
    let (code, text) = verify();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("truncated"), "{text}");
    rt.block_on(store.close());
}

// ---------------------------------------------------------------------------------------
// Cross-site request forgery and the size of what a request may carry

/// A browser's form post of `fields`.
fn with_form(req: reqwest::RequestBuilder, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    req.header(
        reqwest::header::CONTENT_TYPE,
        "application/x-www-form-urlencoded",
    )
    .body(body)
}

/// The form token a page carries (its hidden `csrf` field).
fn form_token_of(html: &str) -> String {
    let needle = "name=\"csrf\" value=\"";
    let at = html.find(needle).expect("a form token") + needle.len();
    html[at..].split('"').next().unwrap().to_owned()
}

#[test]
fn forged_requests_from_another_origin_are_refused_and_audited() {
    let Some((lab, _cat, api, recorded)) = people_lab(|d| Some(Db::sqlite(d))) else {
        return;
    };
    let id = &recorded
        .iter()
        .find(|r| r.service.as_deref() == Some("Parking"))
        .unwrap()
        .call_id;
    let own = api.base.clone();
    // another port of the same host: another origin, the same site
    let evil = format!("http://127.0.0.1:{}", free_port());
    let dora = api.login("dora");
    let pat = api.login("pat");
    let token =
        form_token_of(&String::from_utf8(api.get(&dora, &format!("/calls/{id}")).body).unwrap());
    let pats = form_token_of(&String::from_utf8(api.get(&pat, "/search").body).unwrap());
    assert_ne!(token, pats, "a token per session");
    let form = |session: &str, origin: Option<&str>, fields: &[(&str, &str)]| {
        let mut req = with_form(
            api.client
                .post(format!("{own}/calls/{id}/restrict"))
                .header(reqwest::header::COOKIE, session),
            fields,
        );
        if let Some(o) = origin {
            req = req.header(reqwest::header::ORIGIN, o);
        }
        api.send(req)
    };
    let restricted = || {
        api.get(&dora, "/api/v1/calls?page_size=100").json()["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["call_id"] == id.as_str() && c["restricted"] == true)
    };
    fn with(t: &str) -> Vec<(&'static str, &str)> {
        vec![("on", "1"), ("reason", "OBJ-1"), ("csrf", t)]
    }
    for (what, origin, fields) in [
        (
            "another origin, with the token",
            Some(evil.as_str()),
            with(&token),
        ),
        ("Origin: null", Some("null"), with(&token)),
        (
            "no token",
            Some(own.as_str()),
            vec![("on", "1"), ("reason", "OBJ-1")],
        ),
        ("another session's token", Some(own.as_str()), with(&pats)),
        (
            "no Origin, no token",
            None,
            vec![("on", "1"), ("reason", "OBJ-1")],
        ),
    ] {
        let r = form(&dora, origin, &fields);
        assert_eq!(r.code, 403, "{what}: {}", String::from_utf8_lossy(&r.body));
        assert!(!restricted(), "{what}: nothing changed");
    }
    let r = form(&dora, Some(&own), &with(&token));
    assert!(r.code < 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(restricted(), "the DPO's own form works");
    // the API with a session cookie: JSON only, and from its own origin
    let hold = format!("{own}/api/v1/calls/{id}/hold");
    let body = r#"{"on": true, "reason": "forged"}"#;
    let referred = format!("{evil}/page");
    for (what, content_type, from) in [
        ("a form-encodable body with the cookie", "text/plain", None),
        (
            "JSON from another origin",
            "application/json",
            Some((reqwest::header::ORIGIN, evil.as_str())),
        ),
        (
            "JSON referred from another origin",
            "application/json",
            Some((reqwest::header::REFERER, referred.as_str())),
        ),
    ] {
        let mut req = api
            .client
            .post(&hold)
            .header(reqwest::header::COOKIE, &dora)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some((name, value)) = from {
            req = req.header(name, value);
        }
        assert_eq!(api.send(req).code, 403, "{what}");
    }
    let held = api.get(&dora, "/api/v1/calls?page_size=100").json();
    assert!(!held.to_string().contains("\"legal_hold\":true"), "{held}");
    // sign-in: the form's token must match the cookie the form came with
    let login = |cookie: Option<&str>, csrf: &str| {
        let mut req = with_form(
            api.client.post(format!("{own}/login")),
            &[("username", "pat"), ("password", PASSWORD), ("csrf", csrf)],
        );
        if let Some(c) = cookie {
            req = req.header(reqwest::header::COOKIE, c);
        }
        api.send(req)
    };
    let r = login(None, "");
    assert_eq!(r.code, 403, "a sign-in form from elsewhere");
    assert!(!r.headers.contains_key(reqwest::header::SET_COOKIE));
    let page = api.send(api.client.get(format!("{own}/login")));
    let cookie = page.headers[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.starts_with("cv_login=")
            && cookie.contains("HttpOnly")
            && cookie.contains("Path=/login"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let t = form_token_of(&String::from_utf8(page.body).unwrap());
    assert_eq!(
        login(Some(&cookie), "0000").code,
        403,
        "a token not the cookie's"
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = api.send(with_form(
        no_redirects
            .post(format!("{own}/login"))
            .header(reqwest::header::COOKIE, &cookie),
        &[
            ("username", "pat"),
            ("password", PASSWORD),
            ("csrf", t.as_str()),
        ],
    ));
    assert_eq!(r.code, 303);
    assert!(
        r.headers[reqwest::header::SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("cv_session=")
    );
    // nobody's memory for a stranger's body: only segment uploads may be large
    let big = format!(
        r#"{{"username": "{}", "password": "x"}}"#,
        "u".repeat(1 << 20)
    );
    // (a client of its own: the connection the server cuts off is not one the others reuse)
    let sent = api.rt.block_on(
        reqwest::Client::new()
            .post(format!("{own}/api/v1/login"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(big)
            .send(),
    );
    // 413, or the connection closed before the client had written all of it
    assert!(
        sent.as_ref().is_ok_and(|r| r.status() == 413) || sent.is_err(),
        "a 1 MiB sign-in is refused: {sent:?}"
    );
    // the refusals in dora's session are in the audit log, with where they came from
    let audit = api
        .get(&api.login("aud"), "/api/v1/audit?page_size=1000")
        .json();
    let refused: Vec<&serde_json::Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "csrf_refused")
        .collect();
    assert_eq!(refused.len(), 8, "{refused:?}");
    assert!(refused.iter().all(|r| r["actor"] == "dora"));
    assert!(
        audit.to_string().contains(&evil),
        "the forging origin is recorded"
    );
    drop(lab);
}

/// Whether the server closed `c` (EOF or reset) before `within`.
fn closed_by_server(c: &mut std::net::TcpStream, within: Duration) -> bool {
    c.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 512];
    loop {
        match c.read(&mut b) {
            Ok(0) => return true,
            // an answer (408, 400) before the close is fine: read on to the close
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// Trickles one byte of `head` then of `x`s every 200 ms; true when the server cut the
/// connection (a write or read failed, or it answered) before `within`.
fn trickle_cut_off(port: u16, head: &str, within: Duration) -> bool {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    c.set_nonblocking(true).unwrap();
    let started = Instant::now();
    let mut b = [0u8; 512];
    while started.elapsed() < within {
        match c.read(&mut b) {
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return true,
        }
        if c.write_all(b"x").is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn idle_and_trickling_connections_cannot_exhaust_the_catalogue() {
    let lab = Lab::new(|d| Some(Db::sqlite(d))).unwrap();
    *lab.server_extra.borrow_mut() = "idle_timeout_seconds = 2\nheader_timeout_seconds = 2\nmax_connections = 64\nmax_connections_per_address = 48\n".into();
    let cat = lab.start_catalogue();
    let port = lab.catalogue_port;
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", cat.child.id()))
            .unwrap()
            .count()
    };
    let before = fds();
    // 300 connections that never send a byte
    let mut idle: Vec<std::net::TcpStream> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert_eq!(idle.len(), 300);
    std::thread::sleep(Duration::from_millis(300));
    let held = fds();
    assert!(
        held <= before + 64,
        "the catalogue holds {} connections' files (at most 64)",
        held - before
    );
    // each is closed by the catalogue (idle, or over the per-address limit)
    for c in &mut idle {
        assert!(closed_by_server(c, Duration::from_secs(60)));
    }
    drop(idle);
    // and the catalogue answers again
    let started = Instant::now();
    while http_get(port, "/healthz").is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "{}", cat.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // a header sent a byte at a time is cut off, and so is a body
    assert!(
        trickle_cut_off(
            port,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
            Duration::from_secs(30)
        ),
        "a header trickle"
    );
    assert!(
        trickle_cut_off(
            port,
            "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
            Duration::from_secs(30)
        ),
        "a body trickle"
    );
    assert_eq!(http_get(port, "/healthz").map(|r| r.0), Some(200));
}

#[test]
fn password_guessing_is_throttled_and_audited() {
    let lab = Lab::new(|d| Some(Db::sqlite(d))).unwrap();
    user_add(&lab, "pat", "manager", "", None);
    user_add(&lab, "aud", "auditor", "", None);
    let _cat = lab.start_catalogue();
    let api = Api::new(lab.catalogue_port);
    let try_login = |user: &str, password: &str| {
        api.send(
            api.client
                .post(format!("{}/api/v1/login", api.base))
                .json(&serde_json::json!({ "username": user, "password": password })),
        )
        .code
    };
    // a user name of 60 KiB is recorded cut, not whole
    assert_eq!(try_login(&"m".repeat(60 << 10), "x"), 401);
    for _ in 0..5 {
        assert_eq!(try_login("pat", "not the password"), 401);
    }
    assert_eq!(
        try_login("pat", PASSWORD),
        429,
        "locked: even the right password is refused"
    );
    let aud = api.login("aud");
    let audit = api.get(&aud, "/api/v1/audit?page_size=100").json();
    let records = audit.as_array().unwrap();
    assert!(
        records.iter().any(|r| r["action"] == "login_throttled"
            && r["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("\"account\":\"pat\"")),
        "{audit}"
    );
    assert!(
        records
            .iter()
            .all(|r| r["actor"].as_str().unwrap().len() < 1024),
        "every audited field is bounded"
    );
    // one address guessing many accounts is refused, whatever the account
    for i in 0..30 {
        try_login(&format!("nobody{i}"), "x");
    }
    assert_eq!(try_login("aud", PASSWORD), 429);
    let audit = api.get(&aud, "/api/v1/audit?page_size=200").json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "login_throttled"
                && r["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("127.0.0.1")),
        "{audit}"
    );
}

/// Two catalogue processes over one PostgreSQL database and one segment store, as behind a
/// load balancer: uploads and retrievals through both at once, one audit chain that
/// verifies, and the retention purge done once.
#[test]
fn two_catalogue_instances_share_one_database_one_chain_and_one_purge() {
    let Some(lab) = Lab::new(|_| Db::postgres("instances")) else {
        return;
    };
    let token = std::fs::read_to_string(lab.agent_add("callvault-agent")).unwrap();
    let recorded = lab.record(64);
    let _a = lab.start_catalogue();
    let port_b = free_port();
    let _b = lab.start_catalogue_on(port_b);
    let a = Api::new(lab.catalogue_port);
    let b = Api::new(port_b);
    report_scope(&a, &token, &recorded);
    user_add(&lab, "pat", "manager", "Parking,Switchboard", None);
    user_add(&lab, "aud", "auditor", "", None);
    // segments through one instance, the documents through the other, both at once
    let uploads =
        a.rt.block_on(futures_util::future::join_all(recorded.iter().map(|rec| {
            let (client, base_a, base_b) = (a.client.clone(), a.base.clone(), b.base.clone());
            let (spool, token) = (lab.spool(), token.trim().to_owned());
            let rec = rec.clone();
            async move {
                for seg in &rec.segments {
                    let r = client
                        .put(format!("{base_a}/api/v1/segments/{}", seg.segment_id))
                        .query(&[("call_id", &rec.call_id), ("sha256", &seg.sha256)])
                        .bearer_auth(&token)
                        .body(std::fs::read(spool.join(&seg.file)).unwrap())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
                client
                    .post(format!("{base_b}/api/v1/calls"))
                    .bearer_auth(&token)
                    .json(&rec)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })));
    assert!(uploads.iter().all(|&c| c == 201), "{uploads:?}");
    // 24 retrievals at once, half through each instance, each with its audit record first
    let session = a.login("pat");
    let id = recorded[0].call_id.clone();
    let retrievals =
        a.rt.block_on(futures_util::future::join_all((0..24).map(|i| {
            let base = if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            let (client, session, id) = (a.client.clone(), session.clone(), id.clone());
            async move {
                retrieve(&client, &base, &session, &id, &format!("C-{i}"))
                    .await
                    .0
            }
        })));
    assert!(retrievals.iter().all(|&c| c == 200), "{retrievals:?}");
    let aud = b.login("aud");
    let log = b
        .get(
            &aud,
            &format!("/api/v1/audit?action=retrieve&call_id={id}&page_size=100"),
        )
        .json();
    assert_eq!(log.as_array().unwrap().len(), 24, "{log}");
    for api in [&a, &b] {
        assert_eq!(api.get(&aud, "/api/v1/audit/verify").json()["ok"], true);
    }
    // the retention purge started by both instances at once: each call erased once
    let (rt, store) = lab.db.store();
    rt.block_on(async {
        sqlx::query("UPDATE calls SET expires_ms = 1000")
            .execute(&store.pool_for_tests())
            .await
            .unwrap();
    });
    let purgers: Vec<_> = [lab.catalogue_config(), lab.catalogue_config_on(port_b)]
        .iter()
        .map(|cfg| {
            Command::new(BIN)
                .args(["catalogue", "-c"])
                .arg(cfg)
                .arg("purge")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let erased: usize = purgers
        .into_iter()
        .map(|p| {
            let out = p.wait_with_output().unwrap();
            assert!(out.status.success());
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.split_whitespace()
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(erased, recorded.len(), "each call purged once");
    assert_eq!(rt.block_on(store.count("calls")).unwrap(), 0);
    let purges: Vec<serde_json::Value> = b
        .get(&aud, "/api/v1/audit?action=purge&page_size=100")
        .json()
        .as_array()
        .unwrap()
        .clone();
    let listed: Vec<String> = purges
        .iter()
        .flat_map(|r| {
            let d: serde_json::Value = serde_json::from_str(r["detail"].as_str().unwrap()).unwrap();
            d["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        listed.len(),
        recorded.len(),
        "one purge record per call: {purges:?}"
    );
    assert_eq!(a.get(&aud, "/api/v1/audit/verify").json()["ok"], true);
    rt.block_on(store.close());
}

// The DPO's tools and retention

fn untar(data: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(data);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        out.insert(name, buf);
    }
    out
}

fn rights_and_retention(db: impl FnOnce(&Path) -> Option<Db>) {
    let Some((lab, cat, api, recorded)) = people_lab(db) else {
        return;
    };
    let (parking, other) = parking_and_other(&recorded);
    let dora = api.login("dora");
    let pat = api.login("pat");
    let reason = |r: &str| serde_json::json!({ "on": true, "reason": r });

    // only the DPO holds, restricts, erases and exports
    for u in ["pat", "aud", "adam", "stef"] {
        let s = api.login(u);
        let r = api.post(
            &s,
            &format!("/api/v1/calls/{}/hold", parking.call_id),
            reason("x"),
        );
        assert_eq!(r.code, 403, "hold as {u}");
        let r = api.post(
            &s,
            "/api/v1/subject-access",
            serde_json::json!({ "caller": parking.caller, "reference": "x" }),
        );
        assert_eq!(r.code, 403, "subject access as {u}");
    }
    // restriction hides the call from its manager, not from the DPO
    let r = api.post(
        &dora,
        &format!("/api/v1/calls/{}/restrict", parking.call_id),
        reason("objection OBJ-3"),
    );
    assert_eq!(r.code, 200);
    assert_eq!(
        api.get(&pat, &format!("/api/v1/calls/{}", parking.call_id))
            .code,
        404
    );
    assert_eq!(api.get(&pat, "/api/v1/calls").json()["total"], 0);
    assert_eq!(
        api.get(&dora, &format!("/api/v1/calls/{}", parking.call_id))
            .code,
        200
    );
    api.post(
        &dora,
        &format!("/api/v1/calls/{}/restrict", parking.call_id),
        serde_json::json!({ "on": false, "reason": "resolved" }),
    );
    assert_eq!(
        api.get(&pat, &format!("/api/v1/calls/{}", parking.call_id))
            .code,
        200
    );

    // an agent's resend changes nothing the DPO set, and cannot rewrite the call or its expiry
    let token = std::fs::read_to_string(lab.path("callvault-agent.token")).unwrap();
    let post_doc = |doc: &serde_json::Value| {
        let r = api.send(
            api.client
                .post(format!("{}/api/v1/calls", api.base))
                .bearer_auth(token.trim())
                .json(doc),
        );
        (r.code, String::from_utf8_lossy(&r.body).into_owned())
    };
    let summary = |id: &str| {
        api.get(&dora, "/api/v1/calls?page_size=100").json()["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["call_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not found"))
    };
    let before = summary(&parking.call_id);
    assert_eq!(
        before["expires_ms"].as_i64().unwrap() - before["started_ms"].as_i64().unwrap(),
        RETENTION_DAYS * 86_400_000,
        "the catalogue's retention"
    );
    let path = |what: &str| format!("/api/v1/calls/{}/{what}", parking.call_id);
    assert_eq!(
        api.post(&dora, &path("hold"), reason("claim LP-1")).code,
        200
    );
    assert_eq!(
        api.post(&dora, &path("restrict"), reason("OBJ-4")).code,
        200
    );
    let same = serde_json::to_value(&parking).unwrap();
    assert_eq!(post_doc(&same).0, 200, "the same document again: accepted");
    let mut rewritten = same.clone();
    let earlier =
        humantime::parse_rfc3339_weak(&parking.started_at).unwrap() - Duration::from_secs(3600);
    rewritten["started_at"] = humantime::format_rfc3339_millis(earlier).to_string().into();
    rewritten["retention_days"] = 1.into();
    let (code, text) = post_doc(&rewritten);
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("never rewritten"), "{text}");
    let after = summary(&parking.call_id);
    assert_eq!(after["legal_hold"], true, "{after}");
    assert_eq!(after["restricted"], true, "{after}");
    assert_eq!(after["expires_ms"], before["expires_ms"]);
    assert_eq!(after["started_ms"], before["started_ms"]);
    // a call under legal hold is not erased
    let erase = |who: &str, id: &str| {
        api.send(
            api.client
                .delete(format!("{}/api/v1/calls/{id}", api.base))
                .header(reqwest::header::COOKIE, who)
                .json(&serde_json::json!({ "reason": "erasure request ER-5" })),
        )
    };
    let r = erase(&dora, &parking.call_id);
    assert_eq!(r.code, 409, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(summary(&parking.call_id)["legal_hold"], true);
    // and neither a hold nor a restriction of a call that is not there is audited
    let ghost = "/api/v1/calls/018f0000-0000-7000-8000-000000000000/hold";
    assert_eq!(api.post(&dora, ghost, reason("x")).code, 404);
    let audit = api
        .get(&api.login("aud"), "/api/v1/audit?page_size=1000")
        .json();
    assert!(
        !audit
            .to_string()
            .contains("018f0000-0000-7000-8000-000000000000"),
        "a hold of no call is not audited"
    );
    for (what, on) in [("hold", false), ("restrict", false)] {
        let r = api.post(
            &dora,
            &path(what),
            serde_json::json!({ "on": on, "reason": "resolved" }),
        );
        assert_eq!(r.code, 200);
    }

    // subject access: every call of the caller, with its metadata and audio, and an index
    let r = api.post(
        &dora,
        "/api/v1/subject-access",
        serde_json::json!({ "caller": parking.caller, "reference": "SAR-2026-017" }),
    );
    assert_eq!(r.code, 200);
    assert_eq!(r.headers["content-type"], "application/x-tar");
    let files = untar(&r.body);
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index["subject"], parking.caller.as_str());
    assert_eq!(index["calls"].as_array().unwrap().len(), 1, "{index}");
    let key = callvault::vault::CataloguePrivateKey::load(&lab.private).unwrap();
    let json = lab
        .spool()
        .join("calls")
        .join(format!("{}.json", parking.call_id));
    let exported = callvault::export::export_call(&json, &key).unwrap();
    let wav = &files[&format!("calls/{}.wav", parking.call_id)];
    let samples: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(
        samples, exported.samples,
        "the caller's recording, sample for sample"
    );
    // the caller's own data, not other people's nor the organisation's internals
    let meta: serde_json::Value =
        serde_json::from_slice(&files[&format!("calls/{}.json", parking.call_id)]).unwrap();
    assert_eq!(meta["caller"], parking.caller.as_str());
    assert_eq!(meta["started_at"], parking.started_at.as_str());
    let text = meta.to_string();
    for internal in [
        &parking.sip_call_ids[0],
        &parking.segments[0].sha256,
        &parking.streams[0].ssrc,
    ] {
        assert!(!text.contains(internal.as_str()), "{internal} in {text}");
    }
    assert!(meta.get("signalling").is_none() && meta.get("segments").is_none());
    assert!(
        !index["redacted"].as_array().unwrap().is_empty(),
        "the bundle says what it left out"
    );

    // training: refused until a member of staff on the call has agreed; then anonymised
    let staff_ext = parking.legs[0].to.clone();
    let path = format!("/api/v1/calls/{}/training-export", parking.call_id);
    let ask = serde_json::json!({ "reference": "TRN-4", "silence": [] });
    assert_eq!(api.post(&dora, &path, ask.clone()).code, 409);
    // an agreement is a member of staff's (a registered user's extension): never the
    // caller's, nor any other number's
    for party in [parking.caller.clone(), "+441632960000".to_owned()] {
        let r = api.post(
            &dora,
            "/api/v1/training/consents",
            serde_json::json!({ "party": party, "agreed": true }),
        );
        assert_eq!(r.code, 422, "{party}: {}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(api.post(&dora, &path, ask.clone()).code, 409);
    assert_eq!(
        api.post(
            &dora,
            "/api/v1/training/consents",
            serde_json::json!({ "party": staff_ext, "agreed": true })
        )
        .code,
        200
    );
    let r = api.post(&dora, &path, ask.clone());
    assert_eq!(r.code, 200);
    let files = untar(&r.body);
    let meta = String::from_utf8(files["call.json"].clone()).unwrap();
    for secret in [
        &parking.caller,
        &parking.call_id,
        &parking.sip_call_ids[0],
        &parking.dialled_raw,
    ] {
        assert!(!meta.contains(secret.as_str()), "{secret} left in {meta}");
    }
    let wav = &files["call.wav"];
    let frames: Vec<(i16, i16)> = wav[44..]
        .chunks_exact(4)
        .map(|b| {
            (
                i16::from_le_bytes([b[0], b[1]]),
                i16::from_le_bytes([b[2], b[3]]),
            )
        })
        .collect();
    assert!(
        frames.iter().all(|f| f.0 == 0),
        "the caller's channel is silent"
    );
    assert!(
        frames.iter().filter(|f| f.1 != 0).count() > frames.len() / 2,
        "the agent is heard"
    );
    // a withdrawn agreement stops it again
    api.post(
        &dora,
        "/api/v1/training/consents",
        serde_json::json!({ "party": staff_ext, "agreed": false }),
    );
    assert_eq!(api.post(&dora, &path, ask).code, 409);

    // retention: both calls run out; the one under legal hold survives the purge
    assert_eq!(
        api.post(
            &dora,
            &format!("/api/v1/calls/{}/hold", parking.call_id),
            reason("claim LP-9")
        )
        .code,
        200
    );
    drop(cat);
    let (rt, store) = lab.db.store();
    rt.block_on(async {
        sqlx::query("UPDATE calls SET expires_ms = 1000")
            .execute(&store.pool_for_tests())
            .await
            .unwrap();
        store.close().await;
    });
    let keys = Command::new(BIN)
        .args(["catalogue", "-c"])
        .arg(lab.catalogue_config())
        .arg("keys")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&keys.stdout);
    assert!(
        text.contains("2 call(s), one or more under legal hold: keep it"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["catalogue", "-c"])
        .arg(lab.catalogue_config())
        .arg("purge")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("1 recording(s)"));
    let (rt, store) = lab.db.store();
    assert_eq!(rt.block_on(store.count("calls")).unwrap(), 1);
    assert!(
        rt.block_on(store.call_document(&parking.call_id))
            .unwrap()
            .is_some(),
        "held"
    );
    assert!(
        rt.block_on(store.call_document(&other.call_id))
            .unwrap()
            .is_none(),
        "purged"
    );
    let seg = &other.segments[0];
    assert!(
        rt.block_on(store.segment(&seg.segment_id))
            .unwrap()
            .is_none()
    );
    let blob = lab
        .path("blobs")
        .join(callvault::catalogue::blobs::Blobs::name_for(
            &seg.segment_id,
        ));
    assert!(!blob.exists(), "the purged call's audio is gone from disk");
    rt.block_on(store.close());
    // erasure by the DPO, and every step above in the audit log
    let cat = lab.start_catalogue();
    let api = Api::new(lab.catalogue_port); // the old connections died with the old process
    let dora = api.login("dora");
    let r = api.send(
        api.client
            .delete(format!("{}/api/v1/calls/{}", api.base, parking.call_id))
            .header(reqwest::header::COOKIE, &dora)
            .json(&serde_json::json!({ "reason": "erasure request ER-5" })),
    );
    assert_eq!(r.code, 409, "held: {}", String::from_utf8_lossy(&r.body));
    let r = api.post(
        &dora,
        &format!("/api/v1/calls/{}/hold", parking.call_id),
        serde_json::json!({ "on": false, "reason": "claim LP-9 settled" }),
    );
    assert_eq!(r.code, 200);
    let r = api.send(
        api.client
            .delete(format!("{}/api/v1/calls/{}", api.base, parking.call_id))
            .header(reqwest::header::COOKIE, &dora)
            .json(&serde_json::json!({ "reason": "erasure request ER-5" })),
    );
    assert_eq!(r.code, 200);
    assert_eq!(api.get(&dora, "/api/v1/calls").json()["total"], 0);
    // the agent sends the erased and the purged call again, as after losing its markers:
    // both are refused and stay gone
    for call in [&parking, &other] {
        let seg = &call.segments[0];
        let r = api.send(
            api.client
                .put(format!("{}/api/v1/segments/{}", api.base, seg.segment_id))
                .query(&[("call_id", &call.call_id), ("sha256", &seg.sha256)])
                .bearer_auth(token.trim())
                .body(std::fs::read(lab.spool().join(&seg.file)).unwrap()),
        );
        assert_eq!(r.code, 409, "{}", String::from_utf8_lossy(&r.body));
        let r = api.send(
            api.client
                .post(format!("{}/api/v1/calls", api.base))
                .bearer_auth(token.trim())
                .json(call),
        );
        assert_eq!(r.code, 409, "{}", String::from_utf8_lossy(&r.body));
        assert!(String::from_utf8_lossy(&r.body).contains("erased"));
    }
    assert_eq!(api.get(&dora, "/api/v1/calls").json()["total"], 0);
    let (rt, store) = lab.db.store();
    assert_eq!(rt.block_on(store.count("segments")).unwrap(), 0);
    rt.block_on(store.close());
    let aud = api.login("aud");
    let actions: Vec<String> = api
        .get(&aud, "/api/v1/audit?page_size=1000")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    for a in [
        "restrict_on",
        "restrict_off",
        "subject_access_export",
        "training_consent",
        "training_export",
        "training_consent_withdrawn",
        "hold_on",
        "purge",
        "erase",
        "hold_off",
        "upload_refused",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} not audited: {actions:?}"
        );
    }
    assert_eq!(api.get(&aud, "/api/v1/audit/verify").json()["ok"], true);
    assert_actions_listed(&actions);
    drop(cat);
}

/// Every action the suite's records carry is one the audit page names and filters by.
fn assert_actions_listed(actions: &[String]) {
    let listed = callvault::catalogue::audit::ACTIONS;
    for a in actions {
        assert!(
            listed.iter().any(|(l, _)| l == a),
            "audit action {a:?} is not in catalogue::audit::ACTIONS (the audit page's filter)"
        );
    }
}

#[test]
fn the_dpo_holds_restricts_exports_and_erases_and_retention_purges_on_sqlite() {
    rights_and_retention(|d| Some(Db::sqlite(d)));
}

#[test]
fn the_dpo_holds_restricts_exports_and_erases_and_retention_purges_on_postgresql() {
    rights_and_retention(|_| Db::postgres("rights"));
}

/// A private CA and a server certificate for 127.0.0.1 (openssl, as an admin would).
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client certificate naming `name` (subjectAltName DNS), from `make_certificates`' CA.
fn client_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (key, csr, ext, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (dir.join(pem), dir.join(key))
}

fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| openssl(dir, args);
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=callvault test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=catalogue",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("ca.pem"),
    )
}

#[test]
fn agents_ship_over_https_to_a_catalogue_with_the_organisations_own_ca() {
    let lab = Lab::new(|d| Some(Db::sqlite(d))).unwrap();
    let certs = make_certificates(lab.dir.path());
    *lab.tls.borrow_mut() = Some(certs.clone());
    let token = lab.agent_add("callvault-agent");
    lab.record(65);
    let _catalogue = lab.start_catalogue();
    // plain HTTP and an unknown CA are refused
    assert!(http_get(lab.catalogue_port, "/healthz").is_none_or(|(c, _)| c != 200));
    let rt = rt();
    let strict = reqwest::Client::new();
    let url = format!("https://127.0.0.1:{}/healthz", lab.catalogue_port);
    assert!(
        rt.block_on(strict.get(&url).send()).is_err(),
        "a certificate nobody vouched for"
    );
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs.2).unwrap()).unwrap();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let ok = rt.block_on(trusting.get(&url).send()).unwrap();
    assert_eq!(ok.status(), 200);
    // the agent, given the CA, ships its calls
    let agent = lab.start_agent(&token, 0);
    lab.wait_shipped(&agent, 2);
}

/// With `server.client_ca`, an agent's token is not enough: it must come with a client
/// certificate from that CA naming the same agent. People's browsers need none.
#[test]
fn agents_present_a_client_certificate_naming_them_when_the_catalogue_asks() {
    let lab = Lab::new(|d| Some(Db::sqlite(d))).unwrap();
    let certs = make_certificates(lab.dir.path());
    *lab.tls.borrow_mut() = Some(certs.clone());
    *lab.client_ca.borrow_mut() = Some(certs.2.clone());
    let token = lab.agent_add("callvault-agent");
    lab.record(66);
    let own = client_certificate(lab.dir.path(), "callvault-agent");
    let other = client_certificate(lab.dir.path(), "someone-else");
    let _catalogue = lab.start_catalogue();
    let rt = rt();
    let client = |identity: Option<&(PathBuf, PathBuf)>| {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs.2).unwrap()).unwrap();
        let mut b = reqwest::Client::builder().add_root_certificate(ca);
        if let Some((cert, key)) = identity {
            let mut pem = std::fs::read(cert).unwrap();
            pem.extend(std::fs::read(key).unwrap());
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    };
    let base = format!("https://127.0.0.1:{}", lab.catalogue_port);
    // a browser, without a certificate, reaches the sign-in page
    let page = rt
        .block_on(client(None).get(format!("{base}/login")).send())
        .unwrap();
    assert_eq!(page.status(), 200);
    // the agent's token with no certificate, or with another agent's: refused
    let token_text = std::fs::read_to_string(&token).unwrap();
    for (identity, says) in [(None, "requires agents"), (Some(&other), "does not name")] {
        let r = rt
            .block_on(
                client(identity)
                    .put(format!("{base}/api/v1/agent/scope"))
                    .bearer_auth(token_text.trim())
                    .json(&serde_json::json!([]))
                    .send(),
            )
            .unwrap();
        assert_eq!(r.status(), 401);
        let body = rt.block_on(r.text()).unwrap();
        assert!(body.contains(says), "{body}");
    }
    // with its own certificate the agent ships its calls
    *lab.client_cert.borrow_mut() = Some(own);
    let agent = lab.start_agent(&token, 0);
    lab.wait_shipped(&agent, 2);
    let (rt, store) = lab.db.store();
    assert_eq!(rt.block_on(store.count("calls")).unwrap(), 2);
}

/// The S3 server the storage test runs against (s3s-fs, which checks SigV4 signatures);
/// `tests/run.sh` installs it with `cargo install`.
fn s3s_fs() -> Result<PathBuf, String> {
    common::parts::tool(
        "s3s-fs",
        "cargo install s3s-fs@0.14.1 --features binary; tests/run.sh installs it",
    )
}

#[test]
fn segments_kept_in_an_s3_bucket_are_stored_served_and_erased() {
    let server = match s3s_fs() {
        Ok(server) => server,
        Err(why) => return common::parts::skipped("S3 storage test", &why),
    };
    let lab = Lab::new(|d| Some(Db::sqlite(d))).unwrap();
    let port = free_port();
    let bucket = lab.path("s3").join("callvault");
    std::fs::create_dir_all(&bucket).unwrap();
    let log = lab.path("s3s.log");
    let child = Command::new(&server)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", S3_ACCESS, "--secret-key", S3_SECRET])
        .arg(lab.path("s3"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _s3 = Proc { child, log };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "{}", _s3.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // the server checks signatures: a wrong secret is refused, the right one accepted
    let endpoint = format!("http://127.0.0.1:{port}");
    let rt = rt();
    let wrong = callvault::catalogue::s3::S3::new(
        &endpoint,
        "callvault",
        "us-east-1",
        S3_ACCESS,
        "not-the-secret",
    )
    .unwrap();
    assert!(
        rt.block_on(wrong.put("probe", b"x")).is_err(),
        "a bad signature must be refused"
    );
    let right = callvault::catalogue::s3::S3::new(
        &endpoint,
        "callvault",
        "us-east-1",
        S3_ACCESS,
        S3_SECRET,
    )
    .unwrap();
    rt.block_on(right.put("probe", b"x")).unwrap();
    assert_eq!(rt.block_on(right.get("probe", None)).unwrap(), b"x");
    rt.block_on(right.delete("probe")).unwrap();
    lab.s3.set(Some(port));
    let (lab, _cat, api, recorded) = people_lab_in(lab);
    let segments = |dir: &Path| {
        common::spool_files(dir)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "cvseg"))
            .count()
    };
    assert_eq!(
        segments(&bucket),
        2,
        "both calls' segments are in the bucket"
    );
    assert!(
        !lab.path("blobs").exists(),
        "and none on the catalogue's disk"
    );
    // a DPO hears a call from the bucket exactly as export makes it
    let dora = api.login("dora");
    let call = &recorded[0];
    let g = api
        .post(
            &dora,
            &format!("/api/v1/calls/{}/access", call.call_id),
            serde_json::json!({ "purpose": "legal_proceedings", "reference": "LP-1" }),
        )
        .json();
    let wav = api.get(&dora, g["audio"].as_str().unwrap());
    assert_eq!(wav.code, 200);
    let key = callvault::vault::CataloguePrivateKey::load(&lab.private).unwrap();
    let json = lab
        .spool()
        .join("calls")
        .join(format!("{}.json", call.call_id));
    let exported = callvault::export::export_call(&json, &key).unwrap();
    let samples: Vec<i16> = wav.body[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(samples, exported.samples);
    // erasure removes the object
    let r = api.send(
        api.client
            .delete(format!("{}/api/v1/calls/{}", api.base, call.call_id))
            .header(reqwest::header::COOKIE, &dora)
            .json(&serde_json::json!({ "reason": "ER-9" })),
    );
    assert_eq!(r.code, 200);
    assert_eq!(
        segments(&bucket),
        1,
        "the erased call's segment is gone from the bucket"
    );
    // with the object store down, hearing the other call says "try again" (503, with
    // Retry-After), not a server fault, and names nothing inside; the catalogue still searches
    drop(_s3);
    let other = &recorded[1];
    let g = api
        .post(
            &dora,
            &format!("/api/v1/calls/{}/access", other.call_id),
            serde_json::json!({ "purpose": "legal_proceedings", "reference": "LP-2" }),
        )
        .json();
    let down = api.get(&dora, g["audio"].as_str().unwrap());
    let text = String::from_utf8_lossy(&down.body);
    assert_eq!(down.code, 503, "{text}");
    assert!(down.headers.contains_key(reqwest::header::RETRY_AFTER));
    assert!(
        !text.contains("127.0.0.1") && !text.contains(".cvseg"),
        "{text}"
    );
    assert_eq!(api.get(&dora, "/api/v1/calls").code, 200);
}

// ---------------------------------------------------------------------------------------
// The web UI in a real browser

/// Node with playwright-core (tests/ui, installed by tests/run.sh) and Debian's chromium, or
/// why not.
fn browser_tools() -> Result<PathBuf, String> {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    for module in ["playwright-core", "oidc-provider"] {
        if !ui.join("node_modules").join(module).is_dir() {
            return Err(format!(
                "{module} is not installed (npm ci --prefix tests/ui)"
            ));
        }
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("chromium is not installed (apt-get install chromium)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node is not installed".into());
    }
    Ok(ui)
}

#[test]
fn the_web_ui_works_for_each_role_in_a_real_browser() {
    let ui = match browser_tools() {
        Ok(ui) => ui,
        Err(why) => return common::parts::skipped("browser test", &why),
    };
    // a real OpenID provider (oidc-provider) the catalogue's single sign-on is set up with
    let lab = Lab::new(|d| Some(Db::sqlite(d))).unwrap();
    let op_port = free_port();
    let base = format!("http://127.0.0.1:{}", lab.catalogue_port);
    let op_log = lab.path("oidc-provider.log");
    let mut op = Proc {
        child: Command::new("node")
            .arg(ui.join("oidc_provider.mjs"))
            .arg(op_port.to_string())
            .arg(format!("{base}/login/oidc/callback"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&op_log).unwrap())
            .spawn()
            .unwrap(),
        log: op_log,
    };
    let mut out = std::io::BufReader::new(op.child.stdout.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut out, &mut ready).unwrap();
    assert_eq!(ready.trim(), "ready", "{}", op.log());
    // what it prints later is drained (a closed pipe would end it)
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    *lab.server_extra.borrow_mut() = format!("public_url = \"{base}\"\n");
    *lab.sections_extra.borrow_mut() = format!(
        "[sign_in]\nsecond_factor = false\n[sign_in.oidc]\nissuer = \"http://127.0.0.1:{op_port}\"\n\
         client_id = \"callvault\"\nclient_secret = \"callvault-test-secret\"\nlabel = \"Sign in with the council directory\"\n\
         scopes = [\"openid\", \"profile\", \"email\", \"groups\"]\nservices_claim = \"callvault_services\"\n\
         [sign_in.oidc.roles]\n\"cc-managers\" = \"manager\"\n\"data-protection\" = \"dpo\"\n"
    );
    let (lab, _cat, api, recorded) = people_lab_in(lab);
    let parking = recorded
        .iter()
        .find(|r| r.service.as_deref() == Some("Parking"))
        .unwrap();
    // a second recording server reports itself well, with a call in progress
    let edge = std::fs::read_to_string(lab.agent_add("edge-2")).unwrap();
    let started = callvault::time::Timestamp::from_millis(
        callvault::time::Timestamp::now().as_millis() - 75_000,
    );
    let report = callvault::record::health::AgentHealth {
        version: "9.9.9".into(),
        uptime_seconds: 3600,
        outbox_calls: 3,
        spool_free_bytes: 40 << 30,
        active_calls: 2,
        recording_calls: 1,
        live: vec![callvault::record::health::LiveCall {
            call_id: "0190f000-0000-7000-8000-000000000001".into(),
            service: Some("Parking".into()),
            started: started.rfc3339(),
            legs: 2,
            answered: true,
        }],
        ..Default::default()
    };
    let r = api.send(
        api.client
            .put(format!("{}/api/v1/agent/health", api.base))
            .bearer_auth(edge.trim())
            .json(&report),
    );
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    let out = Command::new("node")
        .arg(ui.join("ui.mjs"))
        .env(
            "CATALOGUE_URL",
            format!("http://127.0.0.1:{}", lab.catalogue_port),
        )
        .env("UI_PASSWORD", PASSWORD)
        .env("UI_CALL_ID", &parking.call_id)
        .env("UI_CALL_MS", parking.audio_ms.to_string())
        .env("UI_CALLER", &parking.caller)
        .env("UI_STAFF_EXT", &parking.legs[0].to)
        .env("UI_SIP_CALL_ID", &parking.sip_call_ids[0])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "browser test failed:\n{text}\n{}",
        op.log()
    );
    assert!(
        text.lines().filter(|l| l.starts_with("ok ")).count() >= 20,
        "{text}"
    );
}
