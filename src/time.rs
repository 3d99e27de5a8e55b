//! Capture time: the only clock the pipeline knows.
//!
//! Every stage is fed the time a packet was captured (pcap timestamp, HEP timestamp, or the
//! kernel's receive time in the live agent) and never reads the system clock itself, so replay
//! is deterministic and live capture behaves exactly like replay.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// Nanoseconds since the Unix epoch, as carried by the capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    /// The system clock: for the live agent's shell only (idle ticks, HEP arrival), never
    /// read by a pipeline stage.
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since.as_nanos().min(u64::MAX as u128) as u64)
    }

    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    pub const fn from_secs_nanos(secs: u64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(nanos as u64),
        )
    }

    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// The time since the Unix epoch (what pcap records, and the capture generator takes).
    pub const fn since_epoch(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Time elapsed since `earlier`, zero if `earlier` is later (captures are not always
    /// in time order: merged files, clock steps).
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// RFC 3339 form with millisecond precision, as written in call metadata.
    pub fn rfc3339(self) -> String {
        let t = std::time::UNIX_EPOCH + Duration::from_nanos(self.0);
        humantime::format_rfc3339_millis(t).to_string()
    }
}

/// A capture time given as the time since the Unix epoch (as pcap records it, and as the
/// capture generator gives it).
impl From<Duration> for Timestamp {
    fn from(since_epoch: Duration) -> Timestamp {
        Timestamp(since_epoch.as_nanos().min(u64::MAX as u128) as u64)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_millis() {
        let t = Timestamp::from_secs_nanos(1_700_000_000, 123_456_789);
        assert_eq!(t.rfc3339(), "2023-11-14T22:13:20.123Z");
        assert_eq!(t.as_millis(), 1_700_000_000_123);
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let a = Timestamp::from_millis(10);
        let b = Timestamp::from_millis(20);
        assert_eq!(a.saturating_since(b), Duration::ZERO);
        assert_eq!(b.saturating_since(a), Duration::from_millis(10));
        assert_eq!(a - Duration::from_secs(1), Timestamp::ZERO);
    }
}
