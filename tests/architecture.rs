//! The layering of the tree, guarded: the stages (one folder each) are pure. They turn input
//! into output and never do I/O, start threads, read a clock, draw randomness or reach into
//! the shells (the agent daemon, the catalogue, replay, export, the capture file readers).
//! Time, randomness and files come in from the shells as arguments.
//!
//! The scan reads each stage file up to its `#[cfg(test)]` module (tests may read the corpus
//! and time themselves), skips a test module kept in its own file (`#[cfg(test)] mod tests;`)
//! and ignores comments.

use std::path::{Path, PathBuf};

/// The stage folders under src/.
const STAGES: &[&str] = &[
    "net", "sip", "rtp", "calls", "policy", "decode", "mixer", "media", "segment", "pipeline",
    "record", "session",
];

/// What a stage must not name, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("tokio", "async runtime"),
    ("std::fs", "file I/O"),
    ("File::", "file I/O"),
    ("UdpSocket", "a socket"),
    ("TcpStream", "a socket"),
    ("TcpListener", "a socket"),
    ("std::thread", "a thread"),
    ("SystemTime", "the clock"),
    ("Instant::now", "the clock"),
    ("Timestamp::now", "the clock"),
    ("getrandom", "randomness"),
    ("OsRng", "randomness"),
    ("Entropy::system", "randomness (the shell hands entropy in)"),
    (
        "now_v7",
        "the clock and randomness (ids come from the entropy handed in)",
    ),
    ("new_v4", "randomness (ids come from the entropy handed in)"),
    (
        "callvault_synth",
        "the capture generator (the demo, tests and benches use it, never a stage)",
    ),
];

/// The shell folders a stage must not use.
const SHELLS: &[&str] = &["agent", "catalogue", "replay", "export", "source", "spool"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `path` is a stage's test module in a file of its own: `tests.rs` beside a
/// `mod.rs` that declares it under `#[cfg(test)]`.
fn is_test_module(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "tests.rs")
        && std::fs::read_to_string(path.with_file_name("mod.rs"))
            .is_ok_and(|m| m.contains("#[cfg(test)]\nmod tests;"))
}

/// A file's code outside its test module, without comments.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        let line = line.split(" // ").next().unwrap_or(line);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The shell folders `code` uses: `crate::shell` paths and `crate::{shell, ..}` groups.
fn shells_used(code: &str) -> Vec<String> {
    let mut used = Vec::new();
    for shell in SHELLS {
        if code.contains(&format!("crate::{shell}::")) || code.contains(&format!("crate::{shell};"))
        {
            used.push(format!("crate::{shell}"));
        }
    }
    for (i, _) in code.match_indices("crate::{") {
        let group = &code[i..];
        let group = &group[..group.find(';').unwrap_or(group.len())];
        for shell in SHELLS {
            let names = group
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .collect::<Vec<_>>();
            // `crate::{agent::X, ..}` or `crate::{agent, ..}`: a part right after `{` or `,`
            if names.contains(shell)
                && group.split(['{', ',']).any(|part| {
                    let part = part.trim().trim_end_matches('}').trim();
                    part == *shell || part.starts_with(&format!("{shell}::"))
                })
            {
                used.push(format!("crate::{shell}"));
            }
        }
    }
    used
}

/// The one stage that reads `agent.toml`'s whole configuration: it composes the others,
/// each of which owns and is given its own section's type.
const COMPOSER: &str = "pipeline";

/// Every breach of the layering in the `code` of `stage`.
fn breaches(stage: &str, code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (name, what) in FORBIDDEN {
        if code.contains(name) {
            found.push(format!("names `{name}` ({what})"));
        }
    }
    for used in shells_used(code) {
        found.push(format!("uses the shell `{used}`"));
    }
    if stage != COMPOSER && (code.contains("crate::config") || code.contains("AgentConfig")) {
        found.push("reads the agent's whole configuration (take the stage's own section)".into());
    }
    found
}

#[test]
fn stages_do_no_io_read_no_clock_and_use_no_shell() {
    let mut all = Vec::new();
    let mut files = 0;
    // the codec crate (crates/codec) is a stage of its own: the decoders every recording
    // goes through
    let codec = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/codec/src");
    let dirs = STAGES
        .iter()
        .map(|stage| (*stage, src().join(stage)))
        .chain([("codec", codec)]);
    for (stage, dir) in dirs {
        let mut paths = Vec::new();
        rust_files(&dir, &mut paths);
        assert!(!paths.is_empty(), "{} has no Rust files", dir.display());
        for path in paths.into_iter().filter(|p| !is_test_module(p)) {
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for b in breaches(stage, &code(&text)) {
                let root = Path::new(env!("CARGO_MANIFEST_DIR"));
                all.push(format!(
                    "{}: {b}",
                    path.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    println!("{files} stage files scanned");
    assert!(
        all.is_empty(),
        "stages must stay pure (I/O, threads, clocks and randomness live in the shells):\n  {}",
        all.join("\n  ")
    );
}

/// The scan itself finds what it must: a test that cannot fail guards nothing.
#[test]
fn the_layering_scan_finds_each_kind_of_breach() {
    let cases = [
        ("use tokio::sync::mpsc;", "tokio"),
        ("let f = std::fs::read(p)?;", "std::fs"),
        ("let now = std::time::SystemTime::now();", "SystemTime"),
        ("let t = Timestamp::now();", "Timestamp::now"),
        ("use crate::agent::metrics::Metrics;", "crate::agent"),
        (
            "use crate::{session::Side, catalogue::store::Store};",
            "crate::catalogue",
        ),
        ("use crate::spool::Spool;", "crate::spool"),
        ("use crate::config::AgentConfig;", "configuration"),
        ("use crate::{replay, time::Timestamp};", "crate::replay"),
        ("getrandom::fill(&mut key)?;", "getrandom"),
        ("let id = Uuid::now_v7();", "now_v7"),
        ("let e = Entropy::system();", "Entropy::system"),
        ("use callvault_synth::Scenario;", "callvault_synth"),
    ];
    for (line, what) in cases {
        let found = breaches("media", &code(line));
        assert!(
            found.iter().any(|f| f.contains(what)),
            "`{line}` not caught: {found:?}"
        );
    }
    // comments, test modules and other stages are not breaches
    let clean = "use crate::session::Side;\n// std::fs in a comment\n#[cfg(test)]\nmod tests { use std::fs; }\n";
    assert!(breaches("media", &code(clean)).is_empty());
    assert!(!breaches("pipeline", &code("use crate::spool::Spool;")).is_empty());
    assert!(breaches("pipeline", &code("use crate::config::AgentConfig;")).is_empty());
}
