//! Agent configuration: the TOML file (with `CALLVAULT_` environment overrides) and its checks.
//!
//! Owns loading and validating `agent.toml`. Every error names the file, the key and what to do
//! about it, because the person reading it is a telephony admin at a console, not a developer.
//! It must never silently fall back to a default for a key that is present but wrong.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::calls::CallsSection;
use crate::media::MediaSection;
use crate::policy::ScopeSection;
use crate::policy::number::{Country, NumberError, parse_listed_number};

/// Everything the agent and `replay` read from `agent.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default)]
    pub agent: AgentSection,
    pub scope: ScopeSection,
    #[serde(default)]
    pub media: MediaSection,
    #[serde(default)]
    pub calls: CallsSection,
    #[serde(default)]
    pub capture: CaptureSection,
    #[serde(default)]
    pub hep: HepSection,
    #[serde(default)]
    pub catalogue: CatalogueLink,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Name of this recording server, written into call metadata.
    #[serde(default = "default_agent_name")]
    pub name: String,
    /// Where segments (`segments/`) and call metadata (`calls/`) are written.
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
    /// The catalogue's public key (`callvault keys generate`): segments are sealed to it.
    #[serde(default = "default_public_key")]
    pub catalogue_public_key: PathBuf,
    /// `callvault agent`: address of the HTTP endpoint serving `/metrics` and `/healthz`
    /// (empty: none).
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    /// `callvault agent`: below this much free space on the spool's filesystem, new calls
    /// are not recorded (calls in progress finish); recording resumes above it.
    #[serde(default = "default_min_free_mb")]
    pub min_free_mb: u64,
    /// `callvault agent`: threads doing media work (decode, mix, encrypt, write); 0 = one
    /// per core, less the one that follows signalling.
    #[serde(default)]
    pub media_workers: usize,
    /// `callvault agent`: on SIGTERM, open calls are closed and their segments sealed
    /// within this many seconds.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_seconds: u32,
    /// Log lines as "text" (journald adds the time) or "json".
    #[serde(default = "default_log_format")]
    pub log_format: String,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            name: default_agent_name(),
            spool_dir: default_spool_dir(),
            catalogue_public_key: default_public_key(),
            metrics_listen: default_metrics_listen(),
            min_free_mb: default_min_free_mb(),
            media_workers: 0,
            shutdown_timeout_seconds: default_shutdown_timeout(),
            log_format: default_log_format(),
        }
    }
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9187".to_owned()
}
fn default_min_free_mb() -> u64 {
    2048
}
fn default_shutdown_timeout() -> u32 {
    20
}
fn default_log_format() -> String {
    "text".to_owned()
}

/// Live capture from network interfaces (a mirror/SPAN port, or the PBX's own interface).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSection {
    /// Interfaces to capture on (AF_PACKET with a memory-mapped ring); empty: none.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Put the interfaces in promiscuous mode (needed on a mirror port whose switch does not
    /// address frames to this host; needs CAP_NET_ADMIN as well as CAP_NET_RAW).
    #[serde(default)]
    pub promiscuous: bool,
    /// Size of each interface's kernel ring in MiB: what absorbs a burst while the agent is
    /// busy. Frames that find it full are dropped by the kernel and counted.
    #[serde(default = "default_ring_mb")]
    pub ring_mb: u32,
    /// How long a stall of the agent (CPU starvation, a slow disk, SIGSTOP) the ring rides
    /// out without losing a frame, at any traffic rate up to `ring_mb` per this many seconds:
    /// the kernel hands over a block at least every 20 ms however few frames it holds, so the
    /// ring needs this many seconds' worth of blocks.
    #[serde(default = "default_ring_seconds")]
    pub ring_seconds: u32,
}

impl Default for CaptureSection {
    fn default() -> Self {
        CaptureSection {
            interfaces: Vec::new(),
            promiscuous: false,
            ring_mb: default_ring_mb(),
            ring_seconds: default_ring_seconds(),
        }
    }
}

fn default_ring_mb() -> u32 {
    64
}

fn default_ring_seconds() -> u32 {
    4
}

/// Where `callvault agent` ships recorded calls (its outbox is the spool).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueLink {
    /// The catalogue's base URL, e.g. "https://catalogue.example.org:8443"; empty: recordings
    /// stay in the spool.
    #[serde(default)]
    pub url: String,
    /// File holding this agent's token (from `callvault catalogue agent-add`), mode 0600.
    #[serde(default = "default_token_file")]
    pub token_file: PathBuf,
    /// Hours a shipped call's files stay in the spool after the catalogue acknowledged them
    /// (a local copy while the catalogue's own backups catch up); 0 deletes them at once.
    #[serde(default = "default_keep_shipped_hours")]
    pub keep_shipped_hours: u32,
    /// Longest wait between attempts while the catalogue cannot be reached, seconds.
    #[serde(default = "default_retry_max_seconds")]
    pub retry_max_seconds: u32,
    /// A PEM CA certificate to trust for the catalogue's HTTPS (an organisation's own CA),
    /// besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// This agent's client certificate and its key (PEM), for a catalogue that requires
    /// them (`server.client_ca`): the certificate names the agent (subjectAltName DNS).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

impl Default for CatalogueLink {
    fn default() -> Self {
        CatalogueLink {
            url: String::new(),
            token_file: default_token_file(),
            keep_shipped_hours: default_keep_shipped_hours(),
            retry_max_seconds: default_retry_max_seconds(),
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }
}

fn default_token_file() -> PathBuf {
    PathBuf::from("/etc/callvault/agent.token")
}
fn default_keep_shipped_hours() -> u32 {
    72
}
fn default_retry_max_seconds() -> u32 {
    300
}

/// HEP v3 (EEP) feeds: what Kamailio/OpenSIPS siptrace, FreeSWITCH, Asterisk and heplify send.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HepSection {
    /// Address to receive HEP over UDP, e.g. "0.0.0.0:9060"; empty: none.
    #[serde(default)]
    pub listen_udp: String,
    /// Address to receive HEP over TCP, e.g. "0.0.0.0:9061"; empty: none.
    #[serde(default)]
    pub listen_tcp: String,
    /// Shared secret HEP senders put in chunk 0x000e; when set, packets without it are
    /// rejected and counted. Empty: not checked.
    #[serde(default)]
    pub auth_key: String,
}

fn default_agent_name() -> String {
    "callvault-agent".to_owned()
}
fn default_spool_dir() -> PathBuf {
    PathBuf::from("/var/spool/callvault")
}
fn default_public_key() -> PathBuf {
    PathBuf::from("/etc/callvault/catalogue.pub")
}

/// A configuration problem, said so that the admin can fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration: {reason}")]
    Load { file: String, reason: String },
    #[error("{file}: {key} = {value:?}: {problem}; fix: {fix}")]
    Invalid {
        file: String,
        key: String,
        value: String,
        problem: String,
        fix: String,
    },
}

impl AgentConfig {
    /// Reads `path`, applies `CALLVAULT_SECTION__KEY=value` environment overrides
    /// (e.g. `CALLVAULT_MEDIA__SEGMENT_SECONDS=60`) and checks every value.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let file = path.display().to_string();
        if !path.is_file() {
            return Err(ConfigError::Load {
                file,
                reason: "no such file (copy config/agent.toml from the distribution and edit it)"
                    .into(),
            });
        }
        let built = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("CALLVAULT")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(config_overrides())),
            )
            .build()
            .map_err(|e| ConfigError::Load {
                file: file.clone(),
                reason: e.to_string(),
            })?;
        let cfg: AgentConfig = built.try_deserialize().map_err(|e| ConfigError::Load {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        cfg.validate(&file)?;
        Ok(cfg)
    }

    /// Parses a TOML document (tests, embedded defaults) without environment overrides.
    pub fn from_toml(text: &str, origin: &str) -> Result<AgentConfig, ConfigError> {
        let built = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|e| ConfigError::Load {
                file: origin.to_owned(),
                reason: e.to_string(),
            })?;
        let cfg: AgentConfig = built.try_deserialize().map_err(|e| ConfigError::Load {
            file: origin.to_owned(),
            reason: e.to_string(),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    pub fn country(&self) -> Country {
        // validate() has checked it
        Country::from_iso(&self.scope.country).unwrap_or(Country::GB)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: String, value: String, problem: String, fix: &str| {
            Err(ConfigError::Invalid {
                file: file.to_owned(),
                key,
                value,
                problem,
                fix: fix.to_owned(),
            })
        };
        let Some(country) = Country::from_iso(&self.scope.country) else {
            return invalid(
                "scope.country".into(),
                self.scope.country.clone(),
                "unknown country".into(),
                &format!("use one of {}", Country::supported_list()),
            );
        };
        if !(2..=8).contains(&self.scope.extension_max_digits) {
            return invalid(
                "scope.extension_max_digits".into(),
                self.scope.extension_max_digits.to_string(),
                "must be between 2 and 8".into(),
                "set it to the length of your longest internal extension (often 4 or 5)",
            );
        }
        if self.scope.numbers.is_empty() {
            return invalid(
                "scope.numbers".into(),
                "[]".into(),
                "no contact-centre numbers are listed, so nothing would ever be recorded".into(),
                "add [[scope.numbers]] entries with number and service",
            );
        }
        let mut seen = std::collections::HashMap::new();
        for (i, n) in self.scope.numbers.iter().enumerate() {
            let key = format!("scope.numbers[{i}].number");
            match parse_listed_number(&n.number, country) {
                Ok(e164) => {
                    if let Some(prev) = seen.insert(e164.clone(), i) {
                        return invalid(
                            key,
                            n.number.clone(),
                            format!("is the same number as scope.numbers[{prev}] ({e164})"),
                            "list each number once",
                        );
                    }
                }
                Err(e) => return invalid(key, n.number.clone(), e.to_string(), number_fix(&e)),
            }
            if n.service.trim().is_empty() {
                return invalid(
                    format!("scope.numbers[{i}].service"),
                    n.service.clone(),
                    "empty service label".into(),
                    "name the service, e.g. \"Parking\"",
                );
            }
            if n.retention_days == Some(0) {
                return invalid(
                    format!("scope.numbers[{i}].retention_days"),
                    "0".into(),
                    "recordings would be destroyed at once".into(),
                    "remove the key for the default (183 days) or give a number of days",
                );
            }
        }
        for (i, n) in self.scope.never_record.iter().enumerate() {
            if let Err(e) = parse_listed_number(n, country) {
                return invalid(
                    format!("scope.never_record[{i}]"),
                    n.clone(),
                    e.to_string(),
                    number_fix(&e),
                );
            }
        }
        let m = &self.media;
        if !(10..=3600).contains(&m.segment_seconds) {
            return invalid(
                "media.segment_seconds".into(),
                m.segment_seconds.to_string(),
                "must be between 10 and 3600".into(),
                "use 300 (five minutes) unless you have a reason",
            );
        }
        if !(20..=2000).contains(&m.playout_delay_ms) {
            return invalid(
                "media.playout_delay_ms".into(),
                m.playout_delay_ms.to_string(),
                "must be between 20 and 2000".into(),
                "use 300; raise it only if the report shows many late packets",
            );
        }
        if m.fsync_seconds == 0 {
            return invalid(
                "media.fsync_seconds".into(),
                "0".into(),
                "must be at least 1".into(),
                "use 5",
            );
        }
        let c = &self.calls;
        if c.rtp_timeout_seconds < 5 {
            return invalid(
                "calls.rtp_timeout_seconds".into(),
                c.rtp_timeout_seconds.to_string(),
                "shorter than a normal silence or hold".into(),
                "use 120",
            );
        }
        if c.max_call_seconds < 60 {
            return invalid(
                "calls.max_call_seconds".into(),
                c.max_call_seconds.to_string(),
                "would cut ordinary calls short".into(),
                "use 14400 (four hours)",
            );
        }
        if c.max_dialogs == 0 {
            return invalid(
                "calls.max_dialogs".into(),
                "0".into(),
                "no call could be tracked".into(),
                "use 200000",
            );
        }
        let a = &self.agent;
        for (key, value) in [
            ("agent.metrics_listen", &a.metrics_listen),
            ("hep.listen_udp", &self.hep.listen_udp),
            ("hep.listen_tcp", &self.hep.listen_tcp),
        ] {
            if !value.is_empty() && value.parse::<std::net::SocketAddr>().is_err() {
                return invalid(
                    key.into(),
                    value.clone(),
                    "not an IP address and port".into(),
                    "write it as \"0.0.0.0:9060\" or \"[::]:9060\", or \"\" for none",
                );
            }
        }
        if !matches!(a.log_format.as_str(), "text" | "json") {
            return invalid(
                "agent.log_format".into(),
                a.log_format.clone(),
                "unknown log format".into(),
                "use \"text\" or \"json\"",
            );
        }
        if a.shutdown_timeout_seconds == 0 {
            return invalid(
                "agent.shutdown_timeout_seconds".into(),
                "0".into(),
                "open segments could not be sealed on shutdown".into(),
                "use 20 (and keep systemd's TimeoutStopSec above it)",
            );
        }
        if a.media_workers > 256 {
            return invalid(
                "agent.media_workers".into(),
                a.media_workers.to_string(),
                "more threads than any machine has cores".into(),
                "use 0 (one per core)",
            );
        }
        let cap = &self.capture;
        for (i, name) in cap.interfaces.iter().enumerate() {
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                return invalid(
                    format!("capture.interfaces[{i}]"),
                    name.clone(),
                    "not a network interface name".into(),
                    "use a name `ip link` lists, e.g. \"eth1\"",
                );
            }
        }
        let link = &self.catalogue;
        let http = link.url.starts_with("http://") || link.url.starts_with("https://");
        if !(link.url.is_empty() || http) {
            return invalid(
                "catalogue.url".into(),
                link.url.clone(),
                "not an http(s) URL".into(),
                "write it as \"https://catalogue.example.org:8443\", or \"\" to keep recordings in the spool",
            );
        }
        if link.retry_max_seconds == 0 {
            return invalid(
                "catalogue.retry_max_seconds".into(),
                "0".into(),
                "the agent would retry without pause".into(),
                "use 300",
            );
        }
        if !(1..=4096).contains(&cap.ring_mb) {
            return invalid(
                "capture.ring_mb".into(),
                cap.ring_mb.to_string(),
                "must be between 1 and 4096".into(),
                "use 64; raise it if the kernel_drops metric grows",
            );
        }
        if !(1..=60).contains(&cap.ring_seconds) {
            return invalid(
                "capture.ring_seconds".into(),
                cap.ring_seconds.to_string(),
                "must be between 1 and 60".into(),
                "use 4; raise it (with ring_mb) if the kernel drops frames when the agent stalls",
            );
        }
        Ok(())
    }
}

/// The environment variables that override configuration keys: `CALLVAULT_<SECTION>__<KEY>`.
/// Other `CALLVAULT_*` variables (`CALLVAULT_LOG`) belong to the command line, not the file.
fn config_overrides() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("CALLVAULT_") && k.contains("__"))
        .collect()
}

fn number_fix(e: &NumberError) -> &'static str {
    match e {
        NumberError::Empty => "write the number as people dial it, e.g. \"020 8748 3020\"",
        NumberError::BadCharacter(_) => {
            "use digits, spaces, a leading + and optional ( ) - . separators only"
        }
        NumberError::WrongLength { .. } => "check the number of digits",
        NumberError::Extension => {
            "list the public number that reaches this service, not an internal extension"
        }
    }
}

/// The example configuration shipped in `config/agent.toml`, embedded for `callvault demo`
/// and tests so that they use exactly what an admin would start from.
pub const EXAMPLE_AGENT_TOML: &str = include_str!("../config/agent.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_is_valid_and_lists_the_published_numbers() {
        let cfg = AgentConfig::from_toml(EXAMPLE_AGENT_TOML, "config/agent.toml").unwrap();
        assert_eq!(cfg.scope.country, "GB");
        assert_eq!(cfg.scope.numbers.len(), 19);
        assert!(
            cfg.scope
                .numbers
                .iter()
                .any(|n| n.service == "Parking" && n.number == "020 7371 5678")
        );
        assert_eq!(cfg.media.segment_seconds, 300);
    }

    #[test]
    fn bad_number_names_file_key_and_fix() {
        let text = EXAMPLE_AGENT_TOML.replace("020 7371 5678", "020 7371 56");
        let err = AgentConfig::from_toml(&text, "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("agent.toml: scope.numbers["), "{err}");
        assert!(err.contains("020 7371 56"), "{err}");
        assert!(err.contains("fix:"), "{err}");
    }

    #[test]
    fn unknown_key_is_rejected() {
        let text = format!("{EXAMPLE_AGENT_TOML}\n[media2]\nx = 1\n");
        let err = AgentConfig::from_toml(&text, "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("media2"), "{err}");
    }

    #[test]
    fn duplicate_number_in_another_spelling_is_rejected() {
        let text = EXAMPLE_AGENT_TOML.replace("020 8753 1100", "+44 20 8748 3020");
        let err = AgentConfig::from_toml(&text, "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("same number"), "{err}");
    }
}
