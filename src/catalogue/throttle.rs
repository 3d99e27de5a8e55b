//! Password guessing: failed sign-ins counted per account and per source address, and
//! sign-in refused for a while once either has failed too often.
//!
//! Owns the counters and the rule. An account with [`ACCOUNT_FAILURES`] failures in
//! [`WINDOW`] is locked for a minute, then two, four... up to [`MAX_LOCK`]; an address with
//! [`ADDRESS_FAILURES`] is refused for [`MAX_LOCK`]. While locked, even the right password is
//! refused (the guesser cannot tell). The sign-in handlers ask [`Throttle::check`] first and
//! report the outcome; they write the audit record when a lock begins. Counters live in the
//! process (each of several instances counts on its own) and hold at most [`MAX_TRACKED`]
//! keys (the oldest go first). Pure: the time is handed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Failures of one account before it is locked.
pub const ACCOUNT_FAILURES: u32 = 5;
/// Failures from one address before it is refused (higher: a proxy or an office's NAT is one
/// address for many people).
pub const ADDRESS_FAILURES: u32 = 30;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The longest lock.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Keys tracked at most (accounts and addresses together).
pub const MAX_TRACKED: usize = 100_000;

#[derive(Clone, Copy, Debug, Default)]
struct Count {
    failures: u32,
    first_ms: i64,
    locked_until_ms: i64,
    /// Locks so far in the window (each one twice as long as the last).
    locks: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

/// What a sign-in may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refused for this much longer.
    Locked(Duration),
}

/// A lock that began with a failure, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locked {
    Account(String, Duration),
    Address(IpAddr, Duration),
}

#[derive(Default)]
pub struct Throttle(Mutex<HashMap<Key, Count>>);

impl Throttle {
    /// Whether `account` may try to sign in from `from` at `now_ms`.
    pub fn check(&self, account: &str, from: IpAddr, now_ms: i64) -> Verdict {
        let Ok(map) = self.0.lock() else {
            return Verdict::Allowed;
        };
        let until = [Key::Account(account.to_owned()), Key::Address(from)]
            .iter()
            .filter_map(|k| map.get(k))
            .map(|c| c.locked_until_ms)
            .max()
            .unwrap_or(0);
        if until > now_ms {
            Verdict::Locked(Duration::from_millis((until - now_ms) as u64))
        } else {
            Verdict::Allowed
        }
    }

    /// A failed attempt; returns the locks it began.
    pub fn failed(&self, account: &str, from: IpAddr, now_ms: i64) -> Vec<Locked> {
        let Ok(mut map) = self.0.lock() else {
            return Vec::new();
        };
        if map.len() >= MAX_TRACKED {
            // the oldest windows go first
            let mut by_age: Vec<(i64, Key)> =
                map.iter().map(|(k, c)| (c.first_ms, k.clone())).collect();
            by_age.sort_unstable_by_key(|(t, _)| *t);
            for (_, k) in by_age.into_iter().take(MAX_TRACKED / 10) {
                map.remove(&k);
            }
        }
        let mut began = Vec::new();
        for (key, limit) in [
            (Key::Account(account.to_owned()), ACCOUNT_FAILURES),
            (Key::Address(from), ADDRESS_FAILURES),
        ] {
            let c = map.entry(key.clone()).or_default();
            if now_ms - c.first_ms > WINDOW.as_millis() as i64 && c.locked_until_ms <= now_ms {
                *c = Count {
                    first_ms: now_ms,
                    ..Count::default()
                };
            }
            c.failures += 1;
            if c.failures >= limit && c.locked_until_ms <= now_ms {
                let lock = match key {
                    Key::Account(_) => {
                        (Duration::from_secs(60) * 2u32.saturating_pow(c.locks)).min(MAX_LOCK)
                    }
                    Key::Address(_) => MAX_LOCK,
                };
                c.locks += 1;
                c.failures = 0;
                c.locked_until_ms = now_ms + lock.as_millis() as i64;
                began.push(match key {
                    Key::Account(a) => Locked::Account(a, lock),
                    Key::Address(ip) => Locked::Address(ip, lock),
                });
            }
        }
        began
    }

    /// A successful sign-in clears the account's count (not the address's).
    pub fn succeeded(&self, account: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&Key::Account(account.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn an_account_is_locked_after_five_failures_for_longer_each_time() {
        let t = Throttle::default();
        for i in 0..4 {
            assert!(t.failed("pat", HOME, i).is_empty());
            assert_eq!(t.check("pat", HOME, i), Verdict::Allowed);
        }
        let began = t.failed("pat", HOME, 5);
        assert_eq!(
            began,
            vec![Locked::Account("pat".into(), Duration::from_secs(60))]
        );
        assert!(matches!(t.check("pat", HOME, 6), Verdict::Locked(_)));
        // another account from the same address is not locked
        assert_eq!(t.check("sam", HOME, 6), Verdict::Allowed);
        // after the lock: five more failures lock it for two minutes
        let later = 5 + 61_000;
        assert_eq!(t.check("pat", HOME, later), Verdict::Allowed);
        for i in 0..4 {
            t.failed("pat", HOME, later + i);
        }
        assert_eq!(
            t.failed("pat", HOME, later + 4),
            vec![Locked::Account("pat".into(), Duration::from_secs(120))]
        );
        // a success clears the account
        t.succeeded("pat");
        assert_eq!(t.check("pat", HOME, later + 5), Verdict::Allowed);
    }

    #[test]
    fn an_address_guessing_many_accounts_is_refused() {
        let t = Throttle::default();
        let mut began = Vec::new();
        for i in 0..ADDRESS_FAILURES {
            began.extend(t.failed(&format!("user{i}"), HOME, i64::from(i)));
        }
        assert_eq!(began, vec![Locked::Address(HOME, MAX_LOCK)]);
        assert!(matches!(t.check("anyone", HOME, 100), Verdict::Locked(_)));
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(t.check("anyone", elsewhere, 100), Verdict::Allowed);
    }
}
