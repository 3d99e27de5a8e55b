//! The `[scope]` section of `agent.toml`: which calls are recorded. Read and checked by `crate::config`,
//! which names the file and key of any error.

use serde::Deserialize;

/// Which calls are in scope.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSection {
    /// ISO 3166 country used to read national numbers ("020 8748 3020" in GB).
    pub country: String,
    /// Numbers of at most this many digits are internal extensions.
    #[serde(default = "default_extension_max_digits")]
    pub extension_max_digits: usize,
    /// The published contact-centre numbers: calls dialled to these are recorded.
    pub numbers: Vec<ListedNumber>,
    /// Numbers that are never recorded, even if listed above.
    #[serde(default)]
    pub never_record: Vec<String>,
    /// Also use the original called number from Diversion / History-Info when the
    /// Request-URI is not listed (a call forwarded from a listed number is recorded).
    #[serde(default = "default_true")]
    pub use_original_called_number: bool,
    /// Record a call that reaches a listed number only because it was forwarded there from a
    /// number that is not listed (a staff member's line forwarding to the contact centre).
    /// The caller dialled a staff line, outside the published scope, so this is off by default.
    #[serde(default)]
    pub record_forwarded_to_listed_numbers: bool,
    /// Record an agent's consultation call (to a colleague, during an attended transfer of a
    /// recorded call) as part of that call, on the organisation channel. Off: it is
    /// organisation-internal, like any staff-to-staff call.
    #[serde(default)]
    pub record_consultation_calls: bool,
}

fn default_extension_max_digits() -> usize {
    6
}
fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedNumber {
    pub number: String,
    pub service: String,
    /// Retention in days for this service, passed to the catalogue (default 183).
    #[serde(default)]
    pub retention_days: Option<u32>,
}
