//! Scope policy: decides, from the numbers of a call's first leg, whether the law and the
//! council's published policy allow it to be recorded, and says why in words a DPO can read.
//!
//! Owns number normalisation (people write "020 8748 3020", carriers send "+442087483020") and
//! the decision rules of the call model (README "What is recorded"). It is pure: no I/O, no clock, no state beyond
//! the configured lists. It must never say "record" for a number that is not listed, and every
//! decision carries its reason so that it can be audited.

mod config;
pub mod number;
pub mod scope;

pub use config::{ListedNumber, ScopeSection};
pub use number::{Country, Number};
pub use scope::{CallParties, Decision, Rule, ScopePolicy};
