//! The scope decision for a call, from the numbers of its first leg.
//!
//! Rules (README "What is recorded"), in the order they are applied:
//! 1. a caller that is an internal extension makes the call internal: not recorded
//!    (staff-to-staff calls are outside the published scope, even to a listed number);
//! 2. a dialled number (Request-URI user, normalised to E.164) in `never_record`: not recorded;
//! 3. a dialled number that is listed: recorded, under that number's service — unless the call
//!    got there by being forwarded from an unlisted number (the oldest original called number
//!    in History-Info / Diversion is not listed): then only if
//!    `record_forwarded_to_listed_numbers` is on (off by default: the caller dialled a staff
//!    line, outside the published scope);
//! 4. otherwise, if enabled, the original called number from Diversion / History-Info: a call
//!    forwarded *from* a listed number is recorded (unless that number is in `never_record`);
//! 5. anything else (an extension, an unlisted DDI, an unreadable number): not recorded.
//!
//! Transfers never come here: a leg created by transferring a recorded call joins that call
//! (see `calls`), and a leg that joins nothing is decided by these rules as a new call.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::ScopeSection;
use super::number::{Country, Number, normalise, parse_listed_number};

/// Which rule decided: used for counters and for the `policy check` report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    ListedNumber,
    ForwardedFromListedNumber,
    ForwardedToListedNumber,
    NeverRecord,
    InternalCall,
    DirectDialExtension,
    UnlistedNumber,
    UnreadableNumber,
    /// The call's start was not seen (agent started mid-call), so its scope cannot be known.
    Undecidable,
    /// A dialog from a feed out of wire order (HEP) that may be a transfer whose REFER has
    /// not arrived yet: not recorded while its decision waits (at most 2 s); a call that
    /// ends while waiting keeps this.
    AwaitingTransfer,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ListedNumber => "listed_number",
            Rule::ForwardedFromListedNumber => "forwarded_from_listed_number",
            Rule::ForwardedToListedNumber => "forwarded_to_listed_number",
            Rule::NeverRecord => "never_record",
            Rule::InternalCall => "internal_call",
            Rule::DirectDialExtension => "direct_dial_extension",
            Rule::UnlistedNumber => "unlisted_number",
            Rule::UnreadableNumber => "unreadable_number",
            Rule::Undecidable => "undecidable",
            Rule::AwaitingTransfer => "awaiting_transfer",
        }
    }
}

/// The outcome, with the words that go into metadata and reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub record: bool,
    pub reason: String,
    pub rule: Rule,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The listed number (E.164) that put the call in scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

/// The numbers of a call's first leg, as seen on the wire.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallParties<'a> {
    /// Request-URI user of the initial INVITE.
    pub dialled: &'a str,
    /// Calling party: P-Asserted-Identity user if present, else From user.
    pub caller: &'a str,
    /// Original called numbers from Diversion / History-Info, oldest first.
    pub original_called: &'a [String],
}

#[derive(Clone, Debug)]
struct Service {
    name: String,
    retention_days: Option<u32>,
}

/// The configured lists, ready for lookups.
#[derive(Clone, Debug)]
pub struct ScopePolicy {
    country: Country,
    extension_max_digits: usize,
    listed: HashMap<String, Service>,
    never: HashSet<String>,
    use_original_called: bool,
    record_forwarded_to_listed: bool,
    record_consultations: bool,
}

impl ScopePolicy {
    /// Builds the policy from a validated configuration section.
    pub fn new(scope: &ScopeSection, country: Country) -> ScopePolicy {
        let listed = scope
            .numbers
            .iter()
            .filter_map(|n| {
                let e164 = parse_listed_number(&n.number, country).ok()?;
                Some((
                    e164,
                    Service {
                        name: n.service.clone(),
                        retention_days: n.retention_days,
                    },
                ))
            })
            .collect();
        let never = scope
            .never_record
            .iter()
            .filter_map(|n| parse_listed_number(n, country).ok())
            .collect();
        ScopePolicy {
            country,
            extension_max_digits: scope.extension_max_digits,
            listed,
            never,
            use_original_called: scope.use_original_called_number,
            record_forwarded_to_listed: scope.record_forwarded_to_listed_numbers,
            record_consultations: scope.record_consultation_calls,
        }
    }

    pub fn normalise(&self, raw: &str) -> Number {
        normalise(raw, self.country, self.extension_max_digits)
    }

    /// Whether an agent's consultation call joins the recorded call it is about.
    pub fn record_consultations(&self) -> bool {
        self.record_consultations
    }

    pub fn listed_count(&self) -> usize {
        self.listed.len()
    }

    /// Service name of a listed number, if it is one.
    pub fn service_of(&self, number: &Number) -> Option<&str> {
        number
            .e164()
            .and_then(|e| self.listed.get(e))
            .map(|s| s.name.as_str())
    }

    /// Applies the rules of the module documentation.
    pub fn decide(&self, parties: &CallParties<'_>) -> Decision {
        let dialled = self.normalise(parties.dialled);
        let caller = self.normalise(parties.caller);
        let shown = super::number::user_part(parties.dialled);
        let skip = |rule: Rule, reason: String| Decision {
            record: false,
            reason,
            rule,
            service: None,
            matched_number: None,
            retention_days: None,
        };
        if let Number::Extension(ext) = &caller {
            return skip(
                Rule::InternalCall,
                format!(
                    "internal call from extension {ext} to {shown}: staff-to-staff calls are not recorded"
                ),
            );
        }
        if let Some(e) = dialled.e164() {
            if self.never.contains(e) {
                return skip(
                    Rule::NeverRecord,
                    format!("dialled {shown} is in never_record"),
                );
            }
            if let Some(service) = self.listed.get(e) {
                if !self.record_forwarded_to_listed
                    && let Some(first) = parties.original_called.first()
                {
                    let orig = self.normalise(first);
                    let listed = orig.e164().is_some_and(|o| self.listed.contains_key(o));
                    if orig.e164() != Some(e) && !listed {
                        return skip(
                            Rule::ForwardedToListedNumber,
                            format!(
                                "forwarded to {shown} = {} from {}: the caller dialled a number that is not recorded (scope.record_forwarded_to_listed_numbers = false)",
                                service.name,
                                super::number::user_part(first)
                            ),
                        );
                    }
                }
                return Decision {
                    record: true,
                    reason: format!("dialled {shown} = {}", service.name),
                    rule: Rule::ListedNumber,
                    service: Some(service.name.clone()),
                    matched_number: Some(e.to_owned()),
                    retention_days: service.retention_days,
                };
            }
        }
        if self.use_original_called {
            // Only the oldest original called number counts: it is what the caller dialled
            // (a later entry could be a listed number the call was merely forwarded through).
            for original in parties.original_called.iter().take(1) {
                let n = self.normalise(original);
                let Some(e) = n.e164() else { continue };
                if self.never.contains(e) {
                    continue;
                }
                if let Some(service) = self.listed.get(e) {
                    let orig = super::number::user_part(original);
                    return Decision {
                        record: true,
                        reason: format!(
                            "forwarded from {orig} = {} (dialled {shown})",
                            service.name
                        ),
                        rule: Rule::ForwardedFromListedNumber,
                        service: Some(service.name.clone()),
                        matched_number: Some(e.to_owned()),
                        retention_days: service.retention_days,
                    };
                }
            }
        }
        match dialled {
            Number::Extension(ext) => skip(
                Rule::DirectDialExtension,
                format!("direct dial to {ext}: not a recorded number"),
            ),
            Number::E164(_) => skip(
                Rule::UnlistedNumber,
                format!("dialled {shown}: not a recorded number"),
            ),
            Number::Unknown(_) => skip(
                Rule::UnreadableNumber,
                format!("dialled {shown:?}: not a readable number, not recorded"),
            ),
        }
    }

    /// The decision of a dialog waiting for the REFER that may have caused it.
    pub fn awaiting_transfer() -> Decision {
        Decision {
            record: false,
            reason: "a transferee's INVITE from a feed out of wire order: waiting for its REFER, \
                     not recorded meanwhile"
                .into(),
            rule: Rule::AwaitingTransfer,
            service: None,
            matched_number: None,
            retention_days: None,
        }
    }

    /// The decision for a call whose initial INVITE was never seen.
    pub fn undecidable(sip_call_id_seen_with: &str) -> Decision {
        Decision {
            record: false,
            reason: format!(
                "call start not seen (first message {sip_call_id_seen_with}): scope cannot be decided, not recorded"
            ),
            rule: Rule::Undecidable,
            service: None,
            matched_number: None,
            retention_days: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AgentConfig, EXAMPLE_AGENT_TOML};

    fn policy() -> ScopePolicy {
        let mut cfg = AgentConfig::from_toml(EXAMPLE_AGENT_TOML, "example").unwrap();
        cfg.scope.never_record = vec!["020 8753 4466".into()];
        ScopePolicy::new(&cfg.scope, Country::GB)
    }

    fn decide(dialled: &str, caller: &str, original: &[&str]) -> Decision {
        let original: Vec<String> = original.iter().map(|s| s.to_string()).collect();
        policy().decide(&CallParties {
            dialled,
            caller,
            original_called: &original,
        })
    }

    #[test]
    fn listed_number_is_recorded_with_its_service() {
        let d = decide("02087483020", "+447700900123", &[]);
        assert!(d.record);
        assert_eq!(d.reason, "dialled 02087483020 = Switchboard");
        assert_eq!(d.service.as_deref(), Some("Switchboard"));
        assert_eq!(d.matched_number.as_deref(), Some("+442087483020"));
        let d = decide("+442073715678", "07700900123", &[]);
        assert!(d.record);
        assert_eq!(d.service.as_deref(), Some("Parking"));
    }

    #[test]
    fn direct_dial_and_unlisted_are_not_recorded() {
        let d = decide("4711", "+447700900123", &[]);
        assert!(!d.record);
        assert_eq!(d.rule, Rule::DirectDialExtension);
        assert_eq!(d.reason, "direct dial to 4711: not a recorded number");
        let d = decide("02087530000", "+447700900123", &[]);
        assert!(!d.record);
        assert_eq!(d.rule, Rule::UnlistedNumber);
    }

    #[test]
    fn internal_calls_are_not_recorded_even_to_a_listed_number() {
        let d = decide("4712", "4711", &[]);
        assert!(!d.record);
        assert_eq!(d.rule, Rule::InternalCall);
        let d = decide("02087483020", "4711", &[]);
        assert!(!d.record);
        assert_eq!(d.rule, Rule::InternalCall);
    }

    #[test]
    fn never_record_wins_over_the_list() {
        let d = decide("020 8753 4466", "+447700900123", &[]);
        assert!(!d.record);
        assert_eq!(d.rule, Rule::NeverRecord);
    }

    #[test]
    fn forwarded_from_a_listed_number_is_recorded() {
        let d = decide("07700900999", "+447700900123", &["sip:02073715678@pbx"]);
        assert!(d.record);
        assert_eq!(d.rule, Rule::ForwardedFromListedNumber);
        assert_eq!(d.service.as_deref(), Some("Parking"));
    }

    #[test]
    fn forwarded_to_a_listed_number_from_a_staff_line_follows_the_switch() {
        let d = decide("02087483020", "+447700900123", &["sip:02087484711@pbx"]);
        assert!(!d.record);
        assert_eq!(d.rule, Rule::ForwardedToListedNumber);
        assert!(
            d.reason
                .starts_with("forwarded to 02087483020 = Switchboard from 02087484711"),
            "{}",
            d.reason
        );
        // History-Info naming the listed number itself is not a forward
        let d = decide("02087483020", "+447700900123", &["sip:+442087483020@sbc"]);
        assert!(d.record);
        // forwarded between two listed numbers: recorded
        let d = decide("02087483020", "+447700900123", &["02073715678"]);
        assert!(d.record);
        let mut cfg = AgentConfig::from_toml(EXAMPLE_AGENT_TOML, "example").unwrap();
        cfg.scope.record_forwarded_to_listed_numbers = true;
        let p = ScopePolicy::new(&cfg.scope, Country::GB);
        let original = vec!["sip:02087484711@pbx".to_owned()];
        let d = p.decide(&CallParties {
            dialled: "02087483020",
            caller: "+447700900123",
            original_called: &original,
        });
        assert!(d.record);
    }

    #[test]
    fn only_the_oldest_original_called_number_counts() {
        // dialled a staff DDI, forwarded through the switchboard to extension 4712
        let d = decide(
            "4712",
            "+447700900123",
            &["sip:02087484711@pbx", "sip:02087483020@pbx"],
        );
        assert!(!d.record, "{}", d.reason);
    }

    #[test]
    fn unreadable_numbers_are_not_recorded() {
        let d = decide("anonymous", "+447700900123", &[]);
        assert!(!d.record);
        assert_eq!(d.rule, Rule::UnreadableNumber);
    }
}
