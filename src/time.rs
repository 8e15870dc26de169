//! Time: always UTC. The database stores instants as fixed-width RFC 3339 text
//! (`2026-11-21T12:00:00Z`), which sorts and compares correctly as text on
//! both SQLite and PostgreSQL and is also the format Cedar's `datetime` reads.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use std::fmt;

pub type Timestamp = DateTime<Utc>;

/// The one textual form of an instant, used in the database and in Cedar.
pub fn format(t: Timestamp) -> String {
    Rfc3339::secs(t).to_string()
}

/// An instant as RFC 3339 UTC text, written where it goes (a log line, a
/// JSON value) without a string of its own: `2026-11-21T12:00:00Z`, or with
/// microseconds (`...:00.000123Z`). The same text as chrono's
/// `to_rfc3339_opts(.., true)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc3339 {
    at: Timestamp,
    micros: bool,
}

impl Rfc3339 {
    /// In whole seconds: [`format`]'s text.
    pub fn secs(at: Timestamp) -> Rfc3339 {
        Rfc3339 { at, micros: false }
    }

    pub fn micros(at: Timestamp) -> Rfc3339 {
        Rfc3339 { at, micros: true }
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.at;
        // Four-digit years and no leap second: chrono writes the rest.
        if !(0..=9999).contains(&t.year()) || t.nanosecond() >= 1_000_000_000 {
            let precision = if self.micros {
                SecondsFormat::Micros
            } else {
                SecondsFormat::Secs
            };
            return f.write_str(&t.to_rfc3339_opts(precision, true));
        }
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        if self.micros {
            write!(f, ".{:06}", t.nanosecond() / 1_000)?;
        }
        f.write_str("Z")
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Parses RFC 3339 with any offset, normalised to UTC.
pub fn parse(s: &str) -> Result<Timestamp, chrono::ParseError> {
    Ok(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc))
}

/// Now, truncated to whole seconds (the stored precision).
pub fn now() -> Timestamp {
    let t = Utc::now();
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn format_is_fixed_width_utc() {
        let t = super::parse("2026-03-01T08:00:00+08:00").unwrap();
        assert_eq!(super::format(t), "2026-03-01T00:00:00Z");
    }

    /// The text chrono writes, for instants of every kind.
    #[test]
    fn rfc3339_is_chronos_text() {
        use super::Rfc3339;
        use chrono::{SecondsFormat, TimeZone, Utc};
        let instants = [
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(1_796_000_000, 123_456_789).unwrap(),
            Utc.timestamp_opt(1_796_000_000, 1_000).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc.timestamp_opt(1_796_000_039, 1_500_000_000).unwrap(),
        ];
        for t in instants {
            assert_eq!(
                Rfc3339::secs(t).to_string(),
                t.to_rfc3339_opts(SecondsFormat::Secs, true)
            );
            assert_eq!(
                Rfc3339::micros(t).to_string(),
                t.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
        }
    }
}
