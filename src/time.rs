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

impl Rfc3339 {
    /// The text in a buffer of its own: `YYYY-MM-DDThh:mm:ss[.uuuuuu]Z`,
    /// digit by digit (the formatting machinery cost a log line some 2 600
    /// instructions per instant). `None` outside four-digit years and in a
    /// leap second, which chrono writes.
    fn digits(&self) -> Option<([u8; 27], usize)> {
        let t = self.at;
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        if t.nanosecond() >= 1_000_000_000 {
            return None;
        }
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                text[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        if !self.micros {
            text[19] = b'Z';
            return Some((text, 20));
        }
        put(20, 6, t.nanosecond() / 1_000);
        Some((text, 27))
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.digits() {
            Some((text, len)) => {
                f.write_str(std::str::from_utf8(&text[..len]).expect("ASCII digits"))
            }
            None => {
                let precision = if self.micros {
                    SecondsFormat::Micros
                } else {
                    SecondsFormat::Secs
                };
                f.write_str(&self.at.to_rfc3339_opts(precision, true))
            }
        }
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
            Utc.with_ymd_and_hms(2026, 12, 8, 1, 2, 3).unwrap() + chrono::Duration::microseconds(9),
            Utc.with_ymd_and_hms(999, 10, 31, 19, 48, 57).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc.timestamp_opt(1_796_000_039, 1_500_000_000).unwrap(),
        ];
        for t in instants {
            for (text, precision) in [
                (Rfc3339::secs(t), SecondsFormat::Secs),
                (Rfc3339::micros(t), SecondsFormat::Micros),
            ] {
                let chrono = t.to_rfc3339_opts(precision, true);
                assert_eq!(text.to_string(), chrono);
                assert_eq!(serde_json::to_value(text).unwrap(), chrono.as_str());
            }
        }
    }
}
