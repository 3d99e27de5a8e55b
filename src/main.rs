//! The `callvault` command line: one binary, one subcommand per job.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use callvault::catalogue::config::CatalogueConfig;
use callvault::config::AgentConfig;
use callvault::export;
use callvault::replay::{self, ReplayOptions};
use callvault::vault::{CataloguePrivateKey, generate_keypair_files};
use callvault_synth as synth;

#[derive(Parser)]
#[command(
    name = "callvault",
    version,
    about = "Passive, scope-limited, encrypted call recording for contact centres"
)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. "info" or "callvault=debug".
    #[arg(long, global = true, env = "CALLVAULT_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Catalogue keys: the catalogue keeps the private key, agents get the public key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The live recording daemon: capture (mirror port, HEP feed), record, spool.
    Agent(AgentArgs),
    /// The catalogue server: agents ship recordings to it (run it with no subcommand).
    Catalogue {
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        command: Option<CatalogueCommand>,
    },
    /// The catalogue's audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Re-send the SIP and RTP of capture files as a HEP v3 feed (what heplify or Kamailio's
    /// siptrace would send): trials of the agent's HEP input, tests, load measurements.
    HepSend(HepSendArgs),
    /// Run the agent's pipeline over capture files (pcap, pcapng).
    Replay(ReplayArgs),
    /// The scope policy: prove what would be recorded, without recording anything.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Decrypt a whole recorded call (all its segments) to one WAV file.
    Export(ExportArgs),
    /// Decrypt one segment to a WAV file (a `.partial` segment is recovered up to its last
    /// sealed chunk).
    Decrypt(DecryptArgs),
    /// Show the main job working: generate a sample contact-centre capture, record it through
    /// the real pipeline with the example configuration, and export the recordings.
    Demo(DemoArgs),
    /// Write a synthetic contact-centre capture (for tests, benchmarks and trials).
    Generate(GenerateArgs),
}

#[derive(Args)]
struct AgentArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// Spool directory (overrides agent.spool_dir).
    #[arg(long)]
    spool: Option<PathBuf>,
    /// Catalogue public key (overrides agent.catalogue_public_key).
    #[arg(long)]
    public_key: Option<PathBuf>,
}

#[derive(Args)]
struct HepSendArgs {
    /// Where to send, e.g. 127.0.0.1:9060.
    #[arg(long)]
    to: std::net::SocketAddr,
    /// HEP over TCP instead of UDP.
    #[arg(long)]
    tcp: bool,
    /// Shared secret to put in each packet (chunk 0x000e).
    #[arg(long)]
    auth_key: Option<String>,
    /// Capture-time speed: 1 = real time, 10 = ten times faster, 0 = as fast as possible.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// HEP capture id (chunk 0x000c).
    #[arg(long, default_value_t = 2001)]
    capture_id: u32,
    #[arg(required = true)]
    captures: Vec<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// Spool directory (overrides agent.spool_dir).
    #[arg(long)]
    spool: Option<PathBuf>,
    /// Catalogue public key (overrides agent.catalogue_public_key).
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    #[arg(required = true)]
    captures: Vec<PathBuf>,
}

#[derive(Args)]
struct ExportArgs {
    #[arg(long)]
    key: PathBuf,
    /// The call's metadata document, SPOOL/calls/<call_id>.json.
    call: PathBuf,
    #[arg(short, long)]
    out: PathBuf,
}

#[derive(Args)]
struct DecryptArgs {
    #[arg(long)]
    key: PathBuf,
    /// The segment was closed by the agent after a crash (`"complete": false` in its
    /// call's metadata): decrypt up to its last sealed chunk.
    #[arg(long)]
    recovered: bool,
    segment: PathBuf,
    #[arg(short, long)]
    out: PathBuf,
}

#[derive(Args)]
struct DemoArgs {
    /// Where to put keys, capture, spool and exported WAV files.
    #[arg(long, default_value = "callvault-demo")]
    dir: PathBuf,
}

#[derive(Args)]
struct GenerateArgs {
    /// Concurrent calls.
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// Talk time of each call, seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(short, long)]
    out: PathBuf,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Dry run over captures: every call with its numbers, decision and reason, and totals
    /// (what a DPO attaches to a data-protection impact assessment). Records nothing.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Show callers' numbers in full (masked by default).
        #[arg(long)]
        show_numbers: bool,
        #[arg(required = true)]
        captures: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CatalogueCommand {
    /// Register a recording server; prints its token once (put it in the agent's
    /// catalogue.token_file, mode 0600).
    AgentAdd { name: String },
    /// Erase now every recording past its retention date and not under legal hold (the server
    /// does this every retention.purge_interval_minutes).
    Purge,
    /// Which of the configured private keys recordings still need, and until when.
    Keys,
    /// Add a user. The password is read from CALLVAULT_PASSWORD, or from the first line of
    /// standard input.
    UserAdd {
        name: String,
        /// manager, auditor, dpo, admin or staff.
        #[arg(long)]
        role: String,
        /// A manager's services, comma-separated (e.g. "Parking,Switchboard").
        #[arg(long, default_value = "")]
        services: String,
        /// A member of staff's extension.
        #[arg(long)]
        extension: Option<String>,
    },
    /// Every account: role, services, extension and state.
    Users,
    /// Stop a user signing in; their sessions, API tokens and grants end now.
    UserDisable {
        name: String,
        /// Why (goes in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Let a disabled user sign in again.
    UserEnable {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Delete a user for good (their name is never reused; their audit history stays).
    UserDelete {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Give a user a temporary password (printed once); they set a new one at sign-in.
    UserResetPassword {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Clear a user's second factor (a lost phone); they set up a new one at sign-in.
    UserResetSecondFactor {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Change a manager's services or a member of staff's extension.
    UserEdit {
        name: String,
        /// The manager's services, comma-separated, from those the agents report.
        #[arg(long)]
        services: Option<String>,
        /// The member of staff's extension ("" removes it).
        #[arg(long)]
        extension: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// Every API token: id, user, label, dates (never the secret).
    Tokens,
    /// Revoke an API token by its id (from `tokens`).
    TokenRevoke {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Refuse an agent's token from its next request on.
    AgentDisable {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Accept a disabled agent's token again.
    AgentEnable {
        name: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the audit log's hash chain; exits 1 and names the first broken record if it
    /// does not hold.
    Verify {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create catalogue.pub and catalogue.key (mode 0600) in a directory.
    Generate {
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    // TLS (agent → catalogue, catalogue → PostgreSQL) uses rustls with the ring provider
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The agent's log format is a configuration key: read it before the first log line.
    let agent = match &cli.command {
        Command::Agent(args) => match agent_config(args) {
            Ok(cfg) => Some((args.config.clone(), cfg)),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        },
        _ => None,
    };
    init_logs(&cli.log, agent.as_ref().map(|(_, cfg)| cfg));
    let result = match agent {
        Some((config_path, config)) => callvault::agent::run(callvault::agent::AgentOptions {
            config_path,
            config,
        }),
        None => run(cli.command),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The agent's configuration file with the command line's overrides.
fn agent_config(args: &AgentArgs) -> Result<AgentConfig, callvault::config::ConfigError> {
    let mut cfg = AgentConfig::load(&args.config)?;
    if let Some(s) = &args.spool {
        cfg.agent.spool_dir = s.clone();
    }
    if let Some(k) = &args.public_key {
        cfg.agent.catalogue_public_key = k.clone();
    }
    Ok(cfg)
}

/// Logs to standard error: JSON when the agent's `agent.log_format` says so, without
/// timestamps under journald (it stamps every line itself).
fn init_logs(filter: &str, agent: Option<&AgentConfig>) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if agent.is_some_and(|c| c.agent.log_format == "json") {
        logs.json().init();
    } else if agent.is_some() && std::env::var_os("JOURNAL_STREAM").is_some() {
        logs.without_time().init();
    } else {
        logs.init();
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Keys {
            command: KeysCommand::Generate { out },
        } => keys_generate(&out),
        Command::Agent(_) => unreachable!("handled in main"),
        Command::Catalogue { config, command } => catalogue(&config, command),
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => audit_verify(&config),
        Command::HepSend(args) => hep_send(args),
        Command::Replay(args) => replay_captures(args),
        Command::Policy {
            command:
                PolicyCommand::Check {
                    config,
                    json,
                    show_numbers,
                    captures,
                },
        } => policy_check(&config, json, show_numbers, &captures),
        Command::Export(args) => export_call(args),
        Command::Decrypt(args) => decrypt(args),
        Command::Demo(DemoArgs { dir }) => callvault::demo::run(&dir),
        Command::Generate(args) => generate(args),
    }
}

/// `keys generate`: a catalogue key pair.
fn keys_generate(out: &Path) -> anyhow::Result<()> {
    let (public, private) = generate_keypair_files(out)?;
    println!(
        "public key:  {}  (give this to every agent)",
        public.display()
    );
    println!(
        "private key: {}  (catalogue only; mode 0600)",
        private.display()
    );
    Ok(())
}

/// `catalogue`: the server, or one of its administrative subcommands.
fn catalogue(config: &Path, command: Option<CatalogueCommand>) -> anyhow::Result<()> {
    let cfg = CatalogueConfig::load(config)?;
    match command {
        None => callvault::catalogue::run(cfg),
        Some(CatalogueCommand::UserAdd {
            name,
            role,
            services,
            extension,
        }) => catalogue_user_add(&cfg, &name, &role, &services, extension.as_deref()),
        Some(CatalogueCommand::Purge) => {
            let done = callvault::catalogue::purge_now(&cfg)?;
            println!(
                "{} recording(s) past their retention date erased",
                done.len()
            );
            Ok(())
        }
        Some(CatalogueCommand::Keys) => catalogue_keys(&cfg),
        Some(CatalogueCommand::Users) => {
            for u in callvault::catalogue::console::users(&cfg)? {
                let state = if u.awaiting_approval {
                    "awaiting a DPO's approval"
                } else if u.disabled {
                    "disabled"
                } else if u.must_change_password {
                    "must set a new password"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{state}",
                    u.username,
                    u.role,
                    u.services.join(","),
                    u.extension.unwrap_or_default()
                );
            }
            Ok(())
        }
        Some(CatalogueCommand::Tokens) => {
            for t in callvault::catalogue::console::tokens(&cfg)? {
                println!(
                    "{}\t{}\t{}\texpires {}",
                    t.id,
                    t.username,
                    t.label,
                    callvault::time::Timestamp::from_millis(t.expires_ms.max(0) as u64).rfc3339()
                );
            }
            Ok(())
        }
        Some(CatalogueCommand::AgentAdd { name }) => {
            let token = callvault::catalogue::add_agent(&cfg, &name)?;
            println!("{token}");
            eprintln!(
                "agent {name:?} registered; put the token above in its catalogue.token_file (mode 0600): it is not shown again"
            );
            Ok(())
        }
        Some(other) => {
            use callvault::catalogue::console::AccountCommand as A;
            let (command, reason) = match other {
                CatalogueCommand::UserDisable { name, reason } => (A::Disable(name), reason),
                CatalogueCommand::UserEnable { name, reason } => (A::Enable(name), reason),
                CatalogueCommand::UserDelete { name, reason } => (A::Delete(name), reason),
                CatalogueCommand::UserResetPassword { name, reason } => {
                    (A::ResetPassword(name), reason)
                }
                CatalogueCommand::UserResetSecondFactor { name, reason } => {
                    (A::ResetSecondFactor(name), reason)
                }
                CatalogueCommand::UserEdit {
                    name,
                    services,
                    extension,
                    reason,
                } => (
                    A::Edit {
                        username: name,
                        services,
                        extension,
                    },
                    reason,
                ),
                CatalogueCommand::TokenRevoke { id, reason } => (A::RevokeToken(id), reason),
                CatalogueCommand::AgentDisable { name, reason } => (A::DisableAgent(name), reason),
                CatalogueCommand::AgentEnable { name, reason } => (A::EnableAgent(name), reason),
                _ => unreachable!("handled above"),
            };
            println!(
                "{}",
                callvault::catalogue::console::account(&cfg, command, &reason)?
            );
            Ok(())
        }
    }
}

/// `catalogue user-add`: the password from CALLVAULT_PASSWORD or the first line of stdin.
fn catalogue_user_add(
    cfg: &CatalogueConfig,
    name: &str,
    role: &str,
    services: &str,
    extension: Option<&str>,
) -> anyhow::Result<()> {
    let role = callvault::catalogue::people::Role::parse(role).ok_or_else(|| {
        anyhow::anyhow!("--role {role:?}: use manager, auditor, dpo, admin or staff")
    })?;
    let password = match std::env::var("CALLVAULT_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let services: Vec<String> = services
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    callvault::catalogue::add_user(cfg, name, &password, role, &services, extension)?;
    eprintln!("user {name:?} added as {}", role.as_str());
    Ok(())
}

/// `catalogue keys`: which private keys recordings still need, and until when.
fn catalogue_keys(cfg: &CatalogueConfig) -> anyhow::Result<()> {
    for (id, usage) in callvault::catalogue::key_report(cfg)? {
        match usage {
            None => println!("{id}: no recording uses it: it may be removed"),
            Some(u) if u.held => println!(
                "{id}: {} call(s), one or more under legal hold: keep it",
                u.calls
            ),
            Some(u) => println!(
                "{id}: {} call(s); needed until {}",
                u.calls,
                callvault::time::Timestamp::from_millis(u.last_expiry_ms.max(0) as u64).rfc3339()
            ),
        }
    }
    Ok(())
}

/// `audit verify`: exits 1 naming the first broken record.
fn audit_verify(config: &Path) -> anyhow::Result<()> {
    let cfg = CatalogueConfig::load(config)?;
    let v = callvault::catalogue::verify_audit(&cfg)?;
    let signed = match &v.signed {
        Some(c) => {
            let mut text = match &c.newest {
                Some(h) => format!(
                    "; newest signed head: record {} at {}",
                    h.seq,
                    callvault::time::Timestamp::from_millis(h.at_ms.max(0) as u64).rfc3339()
                ),
                None => "; no signed head found yet".to_owned(),
            };
            if c.unsigned > 0 {
                text.push_str(&format!(
                    "; {} head(s) whose signature does not hold were ignored",
                    c.unsigned
                ));
            }
            text
        }
        None => String::new(),
    };
    match &v.first_broken {
        None => {
            println!(
                "audit log intact: {} records, hash chain verified{signed}",
                v.records
            );
            Ok(())
        }
        Some((seq, why)) => {
            println!(
                "audit log BROKEN at record {seq}: {why} ({} records read)",
                v.records
            );
            std::process::exit(1);
        }
    }
}

/// `hep-send`: capture files re-sent as a HEP v3 feed.
fn hep_send(args: HepSendArgs) -> anyhow::Result<()> {
    let to = args.to;
    let report = replay::hep_send::run(&replay::hep_send::HepSendOptions {
        to,
        tcp: args.tcp,
        auth_key: args.auth_key,
        speed: args.speed,
        capture_id: args.capture_id,
        files: args.captures,
    })?;
    let sent = report.sip + report.rtp;
    println!(
        "sent {sent} HEP packets to {to} ({} SIP, {} RTP; {} other datagrams skipped, {} too large, {} send errors) in {:.2} s: {:.0} packets/s",
        report.sip,
        report.rtp,
        report.skipped,
        report.too_large,
        report.send_errors,
        report.elapsed.as_secs_f64(),
        sent as f64 / report.elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// `replay`: the agent's pipeline over capture files.
fn replay_captures(args: ReplayArgs) -> anyhow::Result<()> {
    let cfg = AgentConfig::load(&args.config)?;
    let spool = args.spool.unwrap_or_else(|| cfg.agent.spool_dir.clone());
    let public_key = args
        .public_key
        .unwrap_or_else(|| cfg.agent.catalogue_public_key.clone());
    let report = replay::run(ReplayOptions {
        config: cfg,
        spool,
        public_key,
        files: args.captures,
        progress: !args.json,
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.summary)?);
    } else {
        print_report(&report);
    }
    for e in &report.file_errors {
        eprintln!("warning: {e}");
    }
    Ok(())
}

/// `policy check`: what would be recorded, recording nothing.
fn policy_check(
    config: &Path,
    json: bool,
    show_numbers: bool,
    captures: &[PathBuf],
) -> anyhow::Result<()> {
    let cfg = AgentConfig::load(config)?;
    let report = replay::check::check(&cfg, captures, show_numbers, !json)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

/// `export`: a whole call to one WAV file.
fn export_call(args: ExportArgs) -> anyhow::Result<()> {
    let key = CataloguePrivateKey::load(&args.key)?;
    let exported = export::export_call(&args.call, &key)?;
    export::write_wav(&args.out, exported.rate, &exported.samples)?;
    println!(
        "{}: {:.1} s stereo at {} Hz (left = caller, right = organisation) from {} segment(s)",
        args.out.display(),
        exported.samples.len() as f64 / 2.0 / exported.rate as f64,
        exported.rate,
        exported.record.segments.len()
    );
    Ok(())
}

/// `decrypt`: one segment to a WAV file.
fn decrypt(args: DecryptArgs) -> anyhow::Result<()> {
    let key = CataloguePrivateKey::load(&args.key)?;
    let partial = args.segment.extension().is_some_and(|e| e == "partial");
    let opened = export::open_segment_as(&args.segment, &key, args.recovered || partial)?;
    fs::write(&args.out, &opened.wav)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if !opened.complete {
        eprintln!(
            "warning: {} was not finished (agent crash?): recovered up to its last sealed chunk",
            args.segment.display()
        );
    }
    println!("{}: {} Hz stereo", args.out.display(), opened.format.rate);
    Ok(())
}

/// `generate`: a synthetic contact-centre capture.
fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let scenario = synth::Scenario::contact_centre_mix(args.calls, args.seconds * 1000, args.seed);
    let file = fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let stats = synth::write_capture(&scenario, std::io::BufWriter::new(file))?;
    println!(
        "{}: {} frames, {} bytes, {} RTP packets, {} SIP messages",
        args.out.display(),
        stats.frames,
        stats.bytes,
        stats.rtp_packets,
        stats.sip_messages
    );
    Ok(())
}

fn print_report(report: &replay::ReplayReport) {
    println!("{}", report.summary);
    let cpu = report
        .cpu
        .map(|c| format!(", {:.2} s CPU", c.as_secs_f64()))
        .unwrap_or_default();
    println!(
        "throughput          {:.0} packets/s ({:.2} s{cpu})",
        report.packets_per_second(),
        report.elapsed.as_secs_f64()
    );
    println!("spool               {}", report.spool.display());
}
