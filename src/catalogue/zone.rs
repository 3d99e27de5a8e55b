//! The catalogue's time zone (`server.time_zone`, default Europe/London): every time a page
//! shows is in it and names it ("2026-03-03 09:30 GMT"), and a day or a time without an offset
//! that someone types into a filter is read in it.
//!
//! Owns the conversion between milliseconds since the epoch and the zone's civil times. The
//! zone rules come from the tz database bundled at build time (jiff's `tzdb-bundle-always`),
//! so a recording server without `/usr/share/zoneinfo` shows the same times; the database is
//! updated with the crate.

use jiff::tz::TimeZone;

#[derive(Clone, Debug)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Default for Zone {
    fn default() -> Self {
        Zone::named(DEFAULT).expect("the default zone is in the bundled database")
    }
}

/// Where the councils callvault serves are.
pub const DEFAULT: &str = "Europe/London";

impl Zone {
    /// A zone of the tz database by its name ("Europe/London", "UTC").
    pub fn named(name: &str) -> Result<Zone, String> {
        TimeZone::get(name)
            .map(|tz| Zone {
                name: name.to_owned(),
                tz,
            })
            .map_err(|_| {
                format!("{name:?} is not a time zone of the tz database: write one such as \"Europe/London\" or \"UTC\"")
            })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn zoned(&self, ms: i64) -> Option<jiff::Zoned> {
        let t = jiff::Timestamp::from_millisecond(ms).ok()?;
        Some(t.to_zoned(self.tz.clone()))
    }

    /// "2026-03-03 09:30 GMT": a time as a page shows it.
    pub fn when(&self, ms: i64) -> String {
        self.zoned(ms)
            .map(|z| z.strftime("%Y-%m-%d %H:%M %Z").to_string())
            .unwrap_or_default()
    }

    /// "09:30:05": the time of day alone (a timeline inside one call).
    pub fn time_of_day(&self, ms: i64) -> String {
        self.zoned(ms)
            .map(|z| z.strftime("%H:%M:%S").to_string())
            .unwrap_or_default()
    }

    /// "2026-03-03": the day.
    pub fn day(&self, ms: i64) -> String {
        self.zoned(ms)
            .map(|z| z.strftime("%Y-%m-%d").to_string())
            .unwrap_or_default()
    }

    /// A day ("2026-03-03": its first moment here), a time without an offset
    /// ("2026-03-03T09:30", here) or with one ("2026-03-03T09:30+01:00"), as milliseconds
    /// since the epoch.
    pub fn local_ms(&self, text: &str) -> Option<i64> {
        let text = text.trim();
        // a time with its offset is that instant, wherever it was written
        if let Ok(t) = text.parse::<jiff::Timestamp>() {
            return Some(t.as_millisecond());
        }
        // a day alone reads as a datetime at its midnight; the zone's rules decide the instant
        // (a midnight a clock change skips is the first moment after it)
        let dt = text.parse::<jiff::civil::DateTime>().ok()?;
        let zoned = dt.to_zoned(self.tz.clone()).ok()?;
        Some(zoned.timestamp().as_millisecond())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn london_shows_gmt_in_winter_and_bst_in_summer() {
        let z = Zone::default();
        // 2026-01-15T12:00:00Z and 2026-07-15T12:00:00Z
        assert_eq!(z.when(1_768_478_400_000), "2026-01-15 12:00 GMT");
        assert_eq!(z.when(1_784_116_800_000), "2026-07-15 13:00 BST");
        assert_eq!(z.day(1_784_116_800_000), "2026-07-15");
        assert_eq!(z.time_of_day(1_784_116_800_000), "13:00:00");
    }

    #[test]
    fn a_typed_day_starts_at_the_zones_midnight() {
        let z = Zone::default();
        // BST: midnight in London is 23:00 UTC the day before
        assert_eq!(z.local_ms("2026-07-15"), Some(1_784_070_000_000));
        assert_eq!(z.local_ms("2026-07-15T13:00"), Some(1_784_116_800_000));
        assert_eq!(z.local_ms("2026-07-15T13:00:00"), Some(1_784_116_800_000));
        assert_eq!(
            z.local_ms("2026-07-15T14:00:00.000+02:00"),
            Some(1_784_116_800_000)
        );
        let utc = Zone::named("UTC").unwrap();
        assert_eq!(utc.local_ms("2026-07-15"), Some(1_784_073_600_000));
        assert_eq!(
            z.local_ms("2026-07-15T14:00+02:00"),
            Some(1_784_116_800_000)
        );
        assert_eq!(z.local_ms("soon"), None);
    }

    #[test]
    fn an_unknown_zone_is_named_in_the_error() {
        let e = Zone::named("Europe/Londn").unwrap_err();
        assert!(
            e.contains("Europe/Londn") && e.contains("Europe/London"),
            "{e}"
        );
    }
}
