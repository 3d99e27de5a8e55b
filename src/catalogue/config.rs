//! Catalogue configuration: `catalogue.toml` with `CALLVAULT_` environment overrides.
//!
//! Owns loading and checking the file; like the agent's, every error names the file, the key
//! and the fix.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::ConfigError;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueConfig {
    pub server: ServerSection,
    pub storage: StorageSection,
    pub keys: KeysSection,
    #[serde(default)]
    pub retention: RetentionSection,
    #[serde(default)]
    pub audit: AuditSection,
    #[serde(default)]
    pub numbers: NumbersSection,
    #[serde(default)]
    pub sign_in: SignInSection,
}

/// How people sign in (`sign_in`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInSection {
    /// Local accounts that may hear recordings (manager, DPO) give a code from an
    /// authenticator app (TOTP) after their password; they set it up at their first sign-in.
    #[serde(default = "default_true")]
    pub second_factor: bool,
    /// Single sign-on with the council's directory (`sign_in.oidc`); local accounts stay
    /// possible beside it (break-glass).
    #[serde(default)]
    pub oidc: Option<OidcSection>,
}

fn default_true() -> bool {
    true
}

impl Default for SignInSection {
    fn default() -> Self {
        SignInSection {
            second_factor: true,
            oidc: None,
        }
    }
}

/// An OpenID Connect provider (Microsoft Entra ID, Google, Keycloak, ADFS) people sign in
/// with (`sign_in.oidc`). The redirect address registered with it is
/// `<server.public_url>/login/oidc/callback`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// The provider's issuer, exactly as its ID tokens say it
    /// ("https://login.microsoftonline.com/<tenant>/v2.0"); its metadata is read from
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// The client's secret (or `CALLVAULT_SIGN_IN__OIDC__CLIENT_SECRET`); empty for a
    /// public client (PKCE alone).
    #[serde(default)]
    pub client_secret: String,
    /// What the sign-in button says.
    #[serde(default = "default_oidc_label")]
    pub label: String,
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// The claim that is the person's callvault user name.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The claim listing the person's groups (or roles).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Group (as the claim names it: a name or an object id) to callvault role. A person in
    /// groups of two roles is refused: nobody is admin and manager at once.
    pub roles: std::collections::BTreeMap<String, String>,
    /// The claim listing a manager's services (as the agents name them), if any; without
    /// one a directory manager has none until an admin's edit.
    #[serde(default)]
    pub services_claim: Option<String>,
    /// The claim holding a member of staff's extension, if any.
    #[serde(default)]
    pub extension_claim: Option<String>,
    /// A directory account that may hear recordings (manager, DPO), and services added to
    /// a manager, wait for a DPO's approval the first time, as an admin's do.
    #[serde(default = "default_true")]
    pub listening_needs_approval: bool,
    /// People who may hear recordings must have signed in to the provider with more than a
    /// password: the ID token's `amr` names a second factor ("mfa", "otp", "hwk", ...).
    #[serde(default = "default_true")]
    pub listening_needs_mfa: bool,
}

fn default_oidc_label() -> String {
    "Sign in with your organisation's account".into()
}

fn default_oidc_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}

fn default_username_claim() -> String {
    "preferred_username".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// How numbers people type into searches are read (`numbers`): the agents' own rules.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumbersSection {
    /// ISO 3166 country of national numbers: the agents' `scope.country`.
    #[serde(default = "default_country")]
    pub country: String,
    /// Numbers of at most this many digits are extensions: the agents'
    /// `scope.extension_max_digits`.
    #[serde(default = "default_extension_max_digits")]
    pub extension_max_digits: usize,
}

fn default_country() -> String {
    "GB".into()
}

fn default_extension_max_digits() -> usize {
    6
}

impl Default for NumbersSection {
    fn default() -> Self {
        NumbersSection {
            country: default_country(),
            extension_max_digits: default_extension_max_digits(),
        }
    }
}

/// Where the audit chain's signed heads go (`audit_heads`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The append-only file of signed heads. Default: `audit-heads.jsonl` beside
    /// `storage.blob_dir` (`/var/lib/callvault/audit-heads.jsonl`).
    #[serde(default)]
    pub heads_file: PathBuf,
    /// How often the head is signed when it has moved, seconds (and every 100 records).
    #[serde(default = "default_sign_seconds")]
    pub sign_every_seconds: u64,
}

fn default_sign_seconds() -> u64 {
    60
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            heads_file: PathBuf::new(),
            sign_every_seconds: default_sign_seconds(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Largest segment upload accepted, MiB.
    #[serde(default = "default_max_upload_mb")]
    pub max_upload_mb: usize,
    /// PEM certificate chain and private key: with both, the API is served over HTTPS only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s) that sign the agents' client certificates. With it (HTTPS only),
    /// an agent must present, besides its token, a certificate from that CA naming the agent
    /// (its registered name as a DNS name in subjectAltName). People's browsers need none.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// The address people's browsers use (`https://recordings.council.example`) when it is not
    /// the one the request names, e.g. behind a reverse proxy that rewrites `Host`. A form or
    /// API call that changes anything must come from a page of this origin. Unset: the origin
    /// of the request's own `Host`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Connections served at once; more wait in the kernel's backlog. Kept below the
    /// open-file limit (LimitNOFILE in the unit).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections from one address at once (a reverse proxy is one address: raise it there).
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// A connection with nothing read or written for this long is closed, seconds.
    #[serde(default = "default_idle_seconds")]
    pub idle_timeout_seconds: u64,
    /// A request's headers must have arrived within this many seconds of its first byte; its
    /// body gets as long again plus a second per 16 KiB.
    #[serde(default = "default_header_seconds")]
    pub header_timeout_seconds: u64,
    /// The time zone pages show times in and typed days and times are read in (a name of
    /// the tz database).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    crate::catalogue::zone::DEFAULT.into()
}

fn default_header_seconds() -> u64 {
    10
}

fn default_max_connections() -> usize {
    512
}

fn default_max_connections_per_address() -> usize {
    128
}

fn default_idle_seconds() -> u64 {
    60
}

fn default_max_upload_mb() -> usize {
    128
}

impl ServerSection {
    /// The server's connection limits.
    pub fn limits(&self) -> crate::catalogue::serve::Limits {
        crate::catalogue::serve::Limits {
            max_connections: self.max_connections,
            max_per_address: self.max_connections_per_address,
            idle: std::time::Duration::from_secs(self.idle_timeout_seconds),
            header_read: std::time::Duration::from_secs(self.header_timeout_seconds),
        }
    }

    /// Session cookies carry `Secure` unless the catalogue listens on loopback only (tests,
    /// a reverse proxy on the same host that terminates TLS).
    pub fn secure_cookies(&self) -> bool {
        self.tls_cert.is_some()
            || self
                .listen
                .parse::<std::net::SocketAddr>()
                .map(|a| !a.ip().is_loopback())
                .unwrap_or(true)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// `sqlite:///var/lib/callvault/catalogue.db` or `postgres://user:password@host/db`.
    pub database_url: String,
    /// Where segment files are kept (encrypted, as the agents sealed them), unless
    /// `[storage.s3]` names a bucket.
    #[serde(default = "default_blob_dir")]
    pub blob_dir: PathBuf,
    /// An S3-compatible bucket for the segments instead of `blob_dir`.
    #[serde(default)]
    pub s3: Option<S3Section>,
}

fn default_blob_dir() -> PathBuf {
    PathBuf::from("/var/lib/callvault/segments")
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Section {
    /// e.g. "https://s3.eu-west-2.amazonaws.com" or "http://minio.internal:9000".
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// Credentials; better given as CALLVAULT_STORAGE__S3__ACCESS_KEY / __SECRET_KEY.
    pub access_key: String,
    pub secret_key: String,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    /// The catalogue's private keys, newest first (older ones open older recordings).
    pub private_keys: Vec<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Days a recording is kept when its service names none.
    #[serde(default = "default_retention_days")]
    pub default_days: u32,
    /// How often the purge runs (minutes).
    #[serde(default = "default_purge_interval")]
    pub purge_interval_minutes: u32,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            default_days: default_retention_days(),
            purge_interval_minutes: default_purge_interval(),
        }
    }
}

fn default_purge_interval() -> u32 {
    60
}

fn default_retention_days() -> u32 {
    183
}

impl CatalogueConfig {
    pub fn load(path: &Path) -> Result<CatalogueConfig, ConfigError> {
        let file = path.display().to_string();
        if !path.is_file() {
            return Err(ConfigError::Load {
                file,
                reason: "no such file (copy config/catalogue.toml and edit it)".into(),
            });
        }
        let built = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("CALLVAULT")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(
                        std::env::vars()
                            .filter(|(k, _)| k.starts_with("CALLVAULT_") && k.contains("__"))
                            .collect(),
                    )),
            )
            .build()
            .map_err(|e| ConfigError::Load {
                file: file.clone(),
                reason: e.to_string(),
            })?;
        let cfg: CatalogueConfig = built.try_deserialize().map_err(|e| ConfigError::Load {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let mut cfg = cfg;
        if cfg.audit.heads_file.as_os_str().is_empty() {
            let dir = cfg
                .storage
                .blob_dir
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            cfg.audit.heads_file = dir.join("audit-heads.jsonl");
        }
        cfg.validate(&file)?;
        Ok(cfg)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, problem: &str, fix: &str| {
            Err(ConfigError::Invalid {
                file: file.to_owned(),
                key: key.to_owned(),
                value,
                problem: problem.to_owned(),
                fix: fix.to_owned(),
            })
        };
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid(
                "server.listen",
                self.server.listen.clone(),
                "not an IP address and port",
                "write it as \"0.0.0.0:8443\"",
            );
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return invalid(
                "server.tls_cert",
                format!("{:?}", self.server.tls_cert),
                "HTTPS needs both server.tls_cert and server.tls_key",
                "set both (PEM files), or neither for plain HTTP behind a TLS proxy",
            );
        }
        if self.server.client_ca.is_some() && self.server.tls_cert.is_none() {
            return invalid(
                "server.client_ca",
                format!("{:?}", self.server.client_ca),
                "agents' client certificates need HTTPS",
                "set server.tls_cert and server.tls_key too, or remove server.client_ca",
            );
        }
        if let Err(why) = crate::catalogue::zone::Zone::named(&self.server.time_zone) {
            return invalid(
                "server.time_zone",
                self.server.time_zone.clone(),
                "not a time zone",
                &why,
            );
        }
        if let Some(public) = &self.server.public_url
            && crate::catalogue::csrf::origin_of(public).is_none()
        {
            return invalid(
                "server.public_url",
                public.clone(),
                "not an http(s) URL",
                "write the address people's browsers open, as \"https://recordings.council.example\"",
            );
        }
        if let Some(o) = &self.sign_in.oidc {
            if !(o.issuer.starts_with("https://") || o.issuer.starts_with("http://")) {
                return invalid(
                    "sign_in.oidc.issuer",
                    o.issuer.clone(),
                    "not an http(s) URL",
                    "write the issuer the provider's ID tokens carry, as \"https://login.microsoftonline.com/<tenant>/v2.0\"",
                );
            }
            if self.server.public_url.is_none() {
                return invalid(
                    "server.public_url",
                    "(unset)".into(),
                    "single sign-on sends people back to the catalogue's own address",
                    "set server.public_url to the address browsers open (the provider's redirect is <public_url>/login/oidc/callback)",
                );
            }
            if o.client_id.trim().is_empty() {
                return invalid(
                    "sign_in.oidc.client_id",
                    String::new(),
                    "empty",
                    "write the application (client) id the provider gave the catalogue",
                );
            }
            for (group, role) in &o.roles {
                if crate::catalogue::people::Role::parse(role).is_none() {
                    return invalid(
                        &format!("sign_in.oidc.roles.{group}"),
                        role.clone(),
                        "not a callvault role",
                        "use manager, auditor, dpo, admin or staff",
                    );
                }
            }
            if o.roles.is_empty() {
                return invalid(
                    "sign_in.oidc.roles",
                    "{}".into(),
                    "no group gives a role: nobody could sign in with the directory",
                    "map the directory's groups to roles, as [sign_in.oidc.roles] \"cc-managers\" = \"manager\"",
                );
            }
        }
        let url = &self.storage.database_url;
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://")) {
            return invalid(
                "storage.database_url",
                url.clone(),
                "unknown database",
                "use sqlite:///path/to/catalogue.db or postgres://user:password@host/db",
            );
        }
        if let Some(s3) = &self.storage.s3
            && !(s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://"))
        {
            return invalid(
                "storage.s3.endpoint",
                s3.endpoint.clone(),
                "not an http(s) URL",
                "write it as \"https://s3.eu-west-2.amazonaws.com\"",
            );
        }
        if self.keys.private_keys.is_empty() {
            return invalid(
                "keys.private_keys",
                "[]".into(),
                "no key: no recording could be opened",
                "list the catalogue.key made by `callvault keys generate`",
            );
        }
        if crate::policy::number::Country::from_iso(&self.numbers.country).is_none() {
            return invalid(
                "numbers.country",
                self.numbers.country.clone(),
                "not a country callvault has numbering rules for",
                &format!(
                    "use the agents' scope.country, one of {}",
                    crate::policy::number::Country::supported_list()
                ),
            );
        }
        if !(1..=8).contains(&self.numbers.extension_max_digits) {
            return invalid(
                "numbers.extension_max_digits",
                self.numbers.extension_max_digits.to_string(),
                "an extension has 1 to 8 digits",
                "use the agents' scope.extension_max_digits (6 by default)",
            );
        }
        if self.retention.default_days == 0 {
            return invalid(
                "retention.default_days",
                "0".into(),
                "recordings would be destroyed at once",
                "use 183 (six months)",
            );
        }
        if self.audit.sign_every_seconds == 0 {
            return invalid(
                "audit.sign_every_seconds",
                "0".into(),
                "the head would be signed without rest",
                "use 60",
            );
        }
        if self.retention.purge_interval_minutes == 0 {
            return invalid(
                "retention.purge_interval_minutes",
                "0".into(),
                "the purge would never rest",
                "use 60",
            );
        }
        for (key, value) in [
            ("server.max_connections", self.server.max_connections as u64),
            (
                "server.max_connections_per_address",
                self.server.max_connections_per_address as u64,
            ),
            (
                "server.idle_timeout_seconds",
                self.server.idle_timeout_seconds,
            ),
            (
                "server.header_timeout_seconds",
                self.server.header_timeout_seconds,
            ),
        ] {
            if value == 0 {
                return invalid(
                    key,
                    "0".into(),
                    "nothing could be served",
                    "leave it out for the default",
                );
            }
        }
        if self.server.max_upload_mb == 0 {
            return invalid(
                "server.max_upload_mb",
                "0".into(),
                "no segment could be received",
                "use 128",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example every admin starts from loads, with every key it shows.
    #[test]
    fn the_example_configuration_loads() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/catalogue.toml");
        let cfg = CatalogueConfig::load(&example).unwrap();
        assert_eq!(cfg.server.max_connections, 512);
        assert_eq!(cfg.server.header_timeout_seconds, 10);
        assert_eq!(cfg.audit.sign_every_seconds, 60);
        assert_eq!(
            cfg.audit.heads_file,
            Path::new("/var/lib/callvault/audit-heads.jsonl")
        );
    }
}
