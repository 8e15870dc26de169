//! Time: always UTC. The database stores instants as fixed-width RFC 3339 text
//! (`2026-11-21T12:00:00Z`), which sorts and compares correctly as text on
//! both SQLite and PostgreSQL and is also the format Cedar's `datetime` reads.

use chrono::{DateTime, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;

/// The one textual form of an instant, used in the database and in Cedar.
pub fn format(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
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
}
