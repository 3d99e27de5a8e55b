//! Catalogue ingest and retrieval: how many recorded calls per second agents ship into a
//! catalogue, and how fast the catalogue serves them back decrypted.
//!
//! `cargo bench --bench catalogue_ingest [-- CALLS [TALK_SECONDS]]` (default 200 calls of
//! 30 s). Each run starts a real `callvault catalogue` (SQLite and, when
//! CALLVAULT_TEST_POSTGRES names a server, PostgreSQL; segments in a directory) and real
//! `callvault agent`s whose outboxes ship their spools, filled beforehand by `replay`
//! (generated G.711 calls, every one in scope): one agent with every call, then four agents
//! with a quarter each. Ingest is timed from the agents' start to the last call
//! acknowledged (segments uploaded and hash-checked, then the call's metadata).
//!
//! Retrieval then runs through the HTTP API as a DPO: for every call a purpose-bound access
//! (audit record committed) and the whole decrypted WAV, one client and then four at once;
//! and seeking: 64 KiB Range requests at random offsets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callvault::config::{AgentConfig, EXAMPLE_AGENT_TOML};
use callvault::replay::{self, ReplayOptions};
use callvault::vault::generate_keypair_files;
use callvault_synth::{Scenario, write_capture};

mod common;
use common::{http_get, metric, usage};

const BIN: &str = env!("CARGO_BIN_EXE_callvault");
const PASSWORD: &str = "bench-password-0123";
const MANY_AGENTS: usize = 4;

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn wait_healthy(port: u16, what: &str) {
    let started = Instant::now();
    while http_get(port, "/healthz").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An agent's configuration, named `name`.
fn agent_toml(name: &str) -> String {
    EXAMPLE_AGENT_TOML.replace("name = \"callvault-agent\"", &format!("name = \"{name}\""))
}

/// Records `calls` in-scope calls (seeded by `seed`) into `spool` as agent `name`; returns
/// (call ids, segment bytes).
fn record(
    work: &Path,
    public: &Path,
    name: &str,
    spool: &Path,
    calls: usize,
    seed: u64,
    talk_ms: u64,
) -> (Vec<String>, u64) {
    // the mix alternates in-scope and out-of-scope calls: keep the in-scope ones
    let mix = Scenario::contact_centre_mix(2 * calls, talk_ms, seed);
    let scenario = Scenario::new(
        mix.seed,
        mix.calls.into_iter().step_by(2).collect::<Vec<_>>(),
    );
    let pcap = work.join(format!("capture-{seed}.pcap"));
    let file = std::fs::File::create(&pcap).unwrap();
    write_capture(&scenario, std::io::BufWriter::with_capacity(1 << 20, file)).unwrap();
    let report = replay::run(ReplayOptions {
        config: AgentConfig::from_toml(&agent_toml(name), "bench").unwrap(),
        spool: spool.to_owned(),
        public_key: public.to_owned(),
        files: vec![pcap.clone()],
        progress: false,
    })
    .unwrap();
    assert_eq!(
        report.recorded.len(),
        calls,
        "every call in scope is recorded"
    );
    let _ = std::fs::remove_file(pcap);
    let bytes = report
        .recorded
        .iter()
        .flat_map(|r| &r.segments)
        .map(|s| s.bytes)
        .sum();
    (
        report.recorded.into_iter().map(|r| r.call_id).collect(),
        bytes,
    )
}

fn catalogue_cmd(config: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["catalogue", "-c"]).arg(config);
    c
}

struct Run<'a> {
    work: &'a Path,
    keys: &'a (PathBuf, PathBuf),
    calls: usize,
    talk_s: u64,
}

impl Run<'_> {
    fn go(&self, db_name: &str, db_url: &str, agents: usize, port: u16) {
        let (mut ids, mut bytes) = (Vec::new(), 0);
        let dir = self.work.join(format!("{db_name}-{agents}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("catalogue.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\ndatabase_url = \"{db_url}\"\nblob_dir = {:?}\n[keys]\nprivate_keys = [{:?}]\n",
                dir.join("blobs"),
                self.keys.1
            ),
        )
        .unwrap();
        let catalogue = Proc(
            catalogue_cmd(&config)
                .env("CALLVAULT_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("catalogue.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        wait_healthy(port, "the catalogue");
        let cpu_before = usage(catalogue.0.id()).0;

        // the agents: each with its own token and spool (a copy of the recorded spools)
        let mut configs = Vec::new();
        for a in 0..agents {
            let name = format!("site-{a}");
            let out = catalogue_cmd(&config)
                .args(["agent-add", &name])
                .output()
                .unwrap();
            assert!(out.status.success());
            let token = dir.join(format!("{name}.token"));
            std::fs::write(&token, out.stdout).unwrap();
            let spool = dir.join(format!("spool-{a}"));
            let n = self.calls / agents + usize::from(a < self.calls % agents);
            let (i, b) = record(
                &dir,
                &self.keys.0,
                &name,
                &spool,
                n,
                100 + a as u64,
                self.talk_s * 1000,
            );
            ids.extend(i);
            bytes += b;
            let metrics = port + 1 + a as u16;
            let text = agent_toml(&name)
                .replace(
                    "spool_dir = \"/var/spool/callvault\"",
                    &format!("spool_dir = {spool:?}"),
                )
                .replace(
                    "catalogue_public_key = \"/etc/callvault/catalogue.pub\"",
                    &format!("catalogue_public_key = {:?}", self.keys.0),
                )
                .replace(
                    "metrics_listen = \"127.0.0.1:9187\"",
                    &format!("metrics_listen = \"127.0.0.1:{metrics}\""),
                )
                .replace(
                    "listen_udp = \"\"",
                    &format!("listen_udp = \"127.0.0.1:{metrics}\""),
                )
                .replace("min_free_mb = 2048", "min_free_mb = 64")
                .replace("url = \"\"", &format!("url = \"http://127.0.0.1:{port}\""))
                .replace(
                    "token_file = \"/etc/callvault/agent.token\"",
                    &format!("token_file = {token:?}"),
                );
            let path = dir.join(format!("{name}.toml"));
            std::fs::write(&path, text).unwrap();
            configs.push((path, metrics, dir.join(format!("{name}.log"))));
        }
        let started = Instant::now();
        let running: Vec<Proc> = configs
            .iter()
            .map(|(path, _, log)| {
                Proc(
                    Command::new(BIN)
                        .args(["agent", "-c"])
                        .arg(path)
                        .env("CALLVAULT_LOG", "warn")
                        .stdout(Stdio::null())
                        .stderr(std::fs::File::create(log).unwrap())
                        .spawn()
                        .unwrap(),
                )
            })
            .collect();
        loop {
            let (mut shipped, mut rejected) = (0, 0);
            for (_, m, _) in &configs {
                let text = http_get(*m, "/metrics").unwrap_or_default();
                shipped += metric(&text, "shipped_calls_total{result=\"acknowledged\"}");
                rejected += metric(&text, "shipped_calls_total{result=\"rejected\"}");
            }
            assert_eq!(rejected, 0, "the catalogue refused calls: see {dir:?}");
            if shipped as usize >= ids.len() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "{shipped} of {} calls shipped",
                ids.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let ingest = started.elapsed().as_secs_f64();
        let cpu = usage(catalogue.0.id()).0 - cpu_before;
        drop(running);
        let n = ids.len() as f64;
        println!(
            "| {db_name} | ingest, {agents} agent{} | {:.0} calls/s | {:.0} MB/s | {:.2} catalogue CPU-s per 100 calls |",
            if agents == 1 { "" } else { "s" },
            n / ingest,
            bytes as f64 / 1e6 / ingest,
            cpu / n * 100.0
        );

        // retrieval as a DPO
        let user = catalogue_cmd(&config)
            .args(["user-add", "dpo", "--role", "dpo"])
            .env("CALLVAULT_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(
            user.status.success(),
            "{}",
            String::from_utf8_lossy(&user.stderr)
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(self.retrieve(db_name, port, &ids));
        drop(catalogue);
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn retrieve(&self, db_name: &str, port: u16, ids: &[String]) {
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let login = client
            .post(format!("{base}/api/v1/login"))
            .json(&serde_json::json!({"username": "dpo", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let fetch = |id: String, range: Option<(u64, u64)>| {
            let (client, base, cookie) = (client.clone(), base.clone(), cookie.clone());
            async move {
                let r = client
                    .post(format!("{base}/api/v1/calls/{id}/access"))
                    .header("cookie", &cookie)
                    .json(&serde_json::json!({"purpose": "complaint", "reference": "BENCH-1"}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body = r.bytes().await.unwrap();
                let grant: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                    panic!("access: {status} {}", String::from_utf8_lossy(&body))
                });
                let audio = grant["audio"].as_str().expect("a grant").to_owned();
                let mut req = client
                    .get(format!("{base}{audio}"))
                    .header("cookie", &cookie);
                if let Some((from, len)) = range {
                    req = req.header("range", format!("bytes={from}-{}", from + len - 1));
                }
                let r = req.send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                r.bytes().await.unwrap().len() as u64
            }
        };
        for clients in [1usize, 4] {
            let started = Instant::now();
            let mut served = 0u64;
            for chunk in ids.chunks(clients) {
                let all: Vec<_> = chunk
                    .iter()
                    .map(|id| tokio::spawn(fetch(id.clone(), None)))
                    .collect();
                for n in all {
                    served += n.await.unwrap();
                }
            }
            let t = started.elapsed().as_secs_f64();
            let n = ids.len() as f64;
            println!(
                "| {db_name} | retrieval, {clients} client{} | {:.0} calls/s | {:.0} MB/s | {:.0}x real time |",
                if clients == 1 { "" } else { "s" },
                n / t,
                served as f64 / 1e6 / t,
                n * self.talk_s as f64 / t
            );
        }
        // seeking: 64 KiB ranges at pseudo-random offsets, each a fresh access
        let wav_bytes = self.talk_s * 8000 * 4;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let started = Instant::now();
        let seeks = 200;
        for i in 0..seeks {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let from = 44 + x % (wav_bytes - 65_536 - 44);
            let id = ids[i % ids.len()].clone();
            assert_eq!(fetch(id, Some((from, 65_536))).await, 65_536);
        }
        println!(
            "| {db_name} | seek (access + 64 KiB Range) | {:.0} requests/s | | |",
            seeks as f64 / started.elapsed().as_secs_f64()
        );
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let calls = args.first().copied().unwrap_or(200) as usize;
    let talk_s = args.get(1).copied().unwrap_or(30);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/catalogue-ingest");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let keys = generate_keypair_files(&work.join("keys")).unwrap();
    eprintln!("{calls} calls of {talk_s} s each run");
    let run = Run {
        work: &work,
        keys: &keys,
        calls,
        talk_s,
    };
    println!("| database | what | rate | throughput | |");
    println!("|---|---|---|---|---|");
    for agents in [1, MANY_AGENTS] {
        run.go(
            "SQLite",
            &format!("sqlite://{}", work.join(format!("c{agents}.db")).display()),
            agents,
            19_400,
        );
    }
    if let Ok(admin) = std::env::var("CALLVAULT_TEST_POSTGRES") {
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        for agents in [1, MANY_AGENTS] {
            let name = format!("cv_ingest_bench_{agents}");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                sqlx::any::install_default_drivers();
                let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
                for sql in [
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    format!("CREATE DATABASE {name}"),
                ] {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&pool)
                        .await
                        .unwrap();
                }
                pool.close().await;
            });
            run.go("PostgreSQL", &format!("{base}/{name}"), agents, 19_500);
        }
    } else {
        eprintln!("PostgreSQL skipped: set CALLVAULT_TEST_POSTGRES");
    }
    let _ = std::fs::remove_dir_all(&work);
}
