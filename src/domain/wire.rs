//! Wire conventions of the public API shared by all routes: money as JSON
//! numbers with exactly two decimals (the SDK reads them as numbers), times
//! as `2026-11-21T12:00:00Z`.

use crate::time::Timestamp;
use rust_decimal::Decimal;
use serde::Serializer;

/// Serializes a decimal as a JSON number with two places: `1000.00`.
pub fn money<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    let raw = serde_json::value::RawValue::from_string(format!("{:.2}", d.round_dp(2)))
        .map_err(serde::ser::Error::custom)?;
    serde::Serialize::serialize(&raw, s)
}

/// As [`money`], for optional amounts (`null` when absent).
pub fn opt_money<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => money(d, s),
        None => s.serialize_none(),
    }
}

/// Serializes an instant in the API's UTC format.
pub fn time<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::time::format(*t))
}

/// As [`time`], for optional instants.
pub fn opt_time<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => time(t, s),
        None => s.serialize_none(),
    }
}

/// `measure_id` of every amount: 1 = the major unit (dollars, not cents).
pub const MEASURE_ID: i64 = 1;
/// The currency of every amount the store keeps.
pub const CURRENCY: &str = "USD";

/// Serializes an optional decimal as a string with two places (`"5000.00"`),
/// for extension fields whose requests carry amounts as strings.
pub fn opt_money_text<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format!("{:.2}", d.round_dp(2))),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use serde::Serialize;

    #[derive(Serialize)]
    struct M {
        #[serde(serialize_with = "super::money")]
        amount: Decimal,
    }

    #[test]
    fn money_is_a_number_with_two_places() {
        let m = M {
            amount: Decimal::new(100_050, 2),
        };
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"amount":1000.50}"#);
        let m = M {
            amount: Decimal::new(7, 0),
        };
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"amount":7.00}"#);
    }
}
