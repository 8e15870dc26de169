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

/// An amount in a request body, read from its JSON text and never through
/// `f64`: a JSON number (the SDK writes a `Decimal` as `1000.00`) or a decimal
/// string (`"1000.00"`). At most two places, not negative; range checks are
/// the caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmountInput(pub Decimal);

impl<'de> serde::Deserialize<'de> for AmountInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let text = raw.get().trim();
        let text = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => inner,
            None => text,
        };
        crate::money::parse_amount(text)
            .map(AmountInput)
            .map_err(|e| serde::de::Error::custom(format!("invalid amount {text}: {e}")))
    }
}

/// Parses a time parameter in the API's UTC form (`2026-11-21T12:00:00Z`;
/// any RFC 3339 offset is accepted and normalised), naming the parameter when
/// it is malformed (400 CBC.0100).
pub fn parse_time_param(name: &str, value: &str) -> Result<Timestamp, crate::api_error::ApiError> {
    crate::time::parse(value.trim()).map_err(|_| {
        crate::api_error::ApiError::parameter(format!(
            "invalid parameter {name}: expected UTC time such as 2026-11-21T12:00:00Z"
        ))
    })
}

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

    #[derive(serde::Deserialize)]
    struct In {
        amount: super::AmountInput,
    }

    #[test]
    fn amount_input_reads_numbers_and_strings_exactly() {
        let parse =
            |s: &str| crate::domain::extract::parse_json::<In>(s.as_bytes()).map(|i| i.amount.0);
        assert_eq!(
            parse(r#"{"amount": 1000.10}"#).unwrap().to_string(),
            "1000.10"
        );
        assert_eq!(parse(r#"{"amount": "0.07"}"#).unwrap(), Decimal::new(7, 2));
        assert_eq!(
            parse(r#"{"amount": 2147483647.00}"#).unwrap(),
            crate::money::MAX_BUDGET
        );
        for bad in [
            r#"{"amount": 1.001}"#,
            r#"{"amount": "x"}"#,
            r#"{"amount": 1e3}"#,
            r#"{"amount": -1}"#,
            r#"{"amount": true}"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.msg.contains("amount"), "{bad}: {}", err.msg);
        }
    }
}
