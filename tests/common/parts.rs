//! The real parts the tests need (programs, root, servers), and what a test does without one.
//!
//! One place decides whether a part is present ([`tool`], [`root`]); a test that cannot run
//! without it calls [`skipped`], which says `SKIPPED: <test>: <why>` and adds the line to the
//! file `tests/run.sh` counts (`CALLVAULT_SKIP_LOG`), so the closing line of the run says how
//! many tests did not run. Under CI (`CI=true`) the test command has installed every part, so
//! a missing one is a broken install step: [`skipped`] fails the test instead.

use std::io::Write;
use std::path::PathBuf;

/// A program on PATH (or in `~/.cargo/bin`), or what is missing and how to install it.
pub fn tool(name: &str, install: &str) -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(home)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} is not installed ({install})"))
}

/// Whether the tests run as root (network namespaces, tmpfs mounts, dpkg --root).
pub fn root() -> Result<(), String> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err("needs root (network namespaces, mounts); run tests/run.sh as root".into())
    }
}

/// Whether this run is CI's, where every part must be present.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Says that `test` did not run and why, and records it for the run's summary. Under CI a
/// missing part fails the test.
pub fn skipped(test: &str, why: &str) {
    if under_ci() {
        panic!("{test} cannot run under CI: {why}");
    }
    let line = format!("SKIPPED: {test}: {why}");
    println!("{line}");
    eprintln!("{line}");
    let log = std::env::var_os("CALLVAULT_SKIP_LOG");
    let file = log.and_then(|log| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .ok()
    });
    if let Some(mut f) = file {
        let _ = writeln!(f, "{line}");
    }
}
