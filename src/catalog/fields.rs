//! The field types and checks every typed request is built from, each with
//! the error code of its refusal, so that a field means the same thing on
//! every route: money, ids, enums, paging, times. Errors name the field.
//!
//! The codes: `CBC.0100` when a field is missing or malformed (and for money,
//! anything that is not an exact amount in range, as docs/domain.md section 1
//! asks), `CBC.0101` when a well-formed value is not acceptable (an unknown
//! enum value, a number out of its range, a time range the other way round).

use crate::api_error::ApiError;
use crate::model::TextEnum;
use crate::money::{check_amount, MAX_BUDGET};
use crate::time::Timestamp;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// 400 CBC.0100 naming `field`.
pub fn missing(field: &str) -> ApiError {
    ApiError::parameter(format!("{field} is required"))
}

/// 400 CBC.0101 naming `field`.
pub fn invalid(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("invalid parameter {field}: {why}"))
}

/// 400 CBC.0100 naming `field`.
pub fn malformed(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::parameter(format!("invalid parameter {field}: {why}"))
}

/// Parses a JSON body into `T`, naming the offending field. An empty body is
/// `{}` (the SDK sends no body for a request model left unset). Duplicate
/// keys are refused by serde's derived deserializers, so the gateway and the
/// store cannot read different values of one field.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    // An object, and nothing else: serde's derived structs also read an
    // array, field by field in declaration order, which no client means
    // and two readers could take differently.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::parameter(
            "invalid request body: expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    // Read plainly first: tracking the path copies every field name, and
    // only a refusal needs it (read again to name the field).
    let value = match T::deserialize(&mut de) {
        Ok(value) => value,
        Err(_) => {
            de = serde_json::Deserializer::from_slice(body);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." {
                    ApiError::parameter(format!("invalid request body: {inner}"))
                } else {
                    ApiError::parameter(format!("invalid parameter {path}: {inner}"))
                }
            })?
        }
    };
    // One JSON document: anything after it would be read by no one.
    de.end()
        .map_err(|e| ApiError::parameter(format!("invalid request body: {e}")))?;
    Ok(value)
}

/// Parses a query string into `T`, naming the offending parameter. A
/// parameter given twice never gets here: normalization refuses it.
pub fn query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = || serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    // As `json`: the path is tracked only to name a refusal.
    T::deserialize(de()).or_else(|_| {
        serde_path_to_error::deserialize(de()).map_err(|e| {
            ApiError::parameter(format!(
                "invalid query parameter {}: {}",
                e.path(),
                e.inner()
            ))
        })
    })
}

/// An optional integer as JSON reads one: `39`, or a number with no
/// fraction such as `39.0` (JSON has one number type, and JSON Schema calls
/// both integers), within i64; for `#[serde(default, deserialize_with =
/// "fields::integer")]`.
pub fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?
        .map(|n| whole(&n).map_err(serde::de::Error::custom))
        .transpose()
}

/// [`integer`], for a list.
pub fn integers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<i64>>, D::Error> {
    Option::<Vec<serde_json::Number>>::deserialize(d)?
        .map(|ns| {
            ns.iter()
                .map(|n| whole(n).map_err(serde::de::Error::custom))
                .collect()
        })
        .transpose()
}

fn whole(n: &serde_json::Number) -> Result<i64, String> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        // Within i64's range, where every whole f64 converts exactly.
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
        _ => Err(format!("expected an integer, not {n}")),
    }
}

/// An optional text filter: the SDK sends `key=` for an empty string, and
/// hand-written clients send `""` or `null`; all mean "no filter".
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The longest id any route accepts, in characters.
pub const MAX_ID_CHARS: usize = 64;

/// A required id: present, not blank, at most [`MAX_ID_CHARS`] characters.
pub fn required_id(field: &str, value: Option<String>) -> Result<String, ApiError> {
    let id = non_empty(value).ok_or_else(|| missing(field))?;
    check_id(field, &id)?;
    Ok(id)
}

/// An id's length limit.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() || id.chars().count() > MAX_ID_CHARS {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_ID_CHARS} characters"),
        ));
    }
    Ok(())
}

/// A list of ids: `min..=max` of them, each a valid id, none twice.
pub fn id_list(
    field: &str,
    value: Option<Vec<String>>,
    min: usize,
    max: usize,
) -> Result<Vec<String>, ApiError> {
    let ids = value.ok_or_else(|| missing(field))?;
    if ids.len() < min || ids.len() > max {
        return Err(invalid(field, format!("must hold {min} to {max} ids")));
    }
    let mut seen = std::collections::HashSet::new();
    for id in &ids {
        check_id(field, id)?;
        if !seen.insert(id.as_str()) {
            return Err(invalid(field, format!("names {id} more than once")));
        }
    }
    Ok(ids)
}

/// An exact amount of money as a request carries it: a JSON number (what the
/// official SDK sends for `budget_amount=100`) or a decimal string (`"100"`,
/// `"100.00"`), read from its digits and never through `f64`. At most two
/// places, not negative, plain notation (`1e3` is refused). Any refusal is
/// 400 CBC.0100 naming the field (docs/domain.md section 1); ranges are checked
/// with [`Money::within`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money(pub Decimal);

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let text = raw.get().trim();
        let text = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => inner,
            None if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) => {
                text
            }
            None => {
                return Err(serde::de::Error::custom(
                    "expected an amount: a number such as 100.5 or a string such as \"100.50\"",
                ))
            }
        };
        crate::money::parse_amount(text)
            .map(Money)
            .map_err(|e| serde::de::Error::custom(format!("invalid amount {text}: {e}")))
    }
}

/// An amount: a JSON number (what the SDK sends) or a string, in plain
/// notation with at most two decimals, more than 0 and at most
/// [`MAX_BUDGET`] ([`positive_money`]); a field that takes 0 says so
/// ([`schema::money_from_zero`]).
impl JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schema::money(false)
    }
}

impl Money {
    /// The amount when it lies in `min..=MAX` (or above `min` when `min_exclusive`).
    pub fn within(
        self,
        field: &str,
        min: Decimal,
        min_exclusive: bool,
    ) -> Result<Decimal, ApiError> {
        let low_ok = if min_exclusive {
            self.0 > min
        } else {
            self.0 >= min
        };
        if !low_ok || self.0 > MAX_BUDGET {
            let low = if min_exclusive {
                "more than"
            } else {
                "at least"
            };
            return Err(malformed(
                field,
                format!("must be {low} {min} and at most {MAX_BUDGET}"),
            ));
        }
        check_amount(self.0).map_err(|e| malformed(field, e))?;
        Ok(self.0)
    }
}

/// A required amount in (0, 2147483647]: budgets, quotas, order amounts.
pub fn positive_money(field: &str, value: Option<Money>) -> Result<Decimal, ApiError> {
    value
        .ok_or_else(|| missing(field))?
        .within(field, Decimal::ZERO, true)
}

/// The decimal text Cedar reads: always with a point and two places.
pub fn cedar_decimal(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}

/// One value of a text enum; `None` when absent or blank. Unknown values are
/// 400 CBC.0101 naming the field and the choices.
pub fn choice<T: TextEnum>(field: &str, value: Option<String>) -> Result<Option<T>, ApiError> {
    non_empty(value)
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| {
                let choices: Vec<&str> = T::all().iter().map(|c| c.text()).collect();
                invalid(field, format!("must be one of {}", choices.join(", ")))
            })
        })
        .transpose()
}

/// A set of text enum values: each known, none twice, at least one; in the
/// enum's own order.
pub fn choices<T: TextEnum + PartialEq>(
    field: &str,
    value: Option<Vec<String>>,
) -> Result<Vec<T>, ApiError> {
    let given = value.ok_or_else(|| missing(field))?;
    let names: Vec<&str> = T::all().iter().map(|c| c.text()).collect();
    if given.is_empty() {
        return Err(invalid(
            field,
            format!("must name at least one of {}", names.join(", ")),
        ));
    }
    let mut out: Vec<T> = Vec::new();
    for v in &given {
        let c: T = v
            .parse()
            .map_err(|_| invalid(field, format!("{v:?} is not one of {}", names.join(", "))))?;
        if out.contains(&c) {
            return Err(invalid(field, format!("names {v} more than once")));
        }
        out.push(c);
    }
    out.sort_by_key(|c| T::all().iter().position(|a| a == c));
    Ok(out)
}

/// A whole number in `range`, or `default` when absent.
pub fn long_in(
    field: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
    default: Option<i64>,
) -> Result<i64, ApiError> {
    let v = value.or(default).ok_or_else(|| missing(field))?;
    if !range.contains(&v) {
        return Err(invalid(
            field,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(v)
}

/// An optional integer carried as query text (empty = absent).
pub fn opt_int(field: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    match non_empty(value) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| malformed(field, format!("{v:?} is not an integer"))),
    }
}

/// An optional UTC time such as `2026-11-21T12:00:00Z` (any RFC 3339 offset
/// is accepted and normalised; empty = absent).
pub fn opt_time(field: &str, value: Option<String>) -> Result<Option<Timestamp>, ApiError> {
    non_empty(value)
        .map(|v| {
            crate::time::parse(v.trim())
                .map_err(|_| malformed(field, "expected UTC time such as 2026-11-21T12:00:00Z"))
        })
        .transpose()
}

/// An inclusive time range: `begin` ≤ `end` (either bound alone is fine) and,
/// with `max_one_year`, at most one calendar year apart (the public API's
/// limit on order times).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub begin: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl TimeRange {
    pub fn parse(
        (begin_field, begin): (&str, Option<String>),
        (end_field, end): (&str, Option<String>),
        max_one_year: bool,
    ) -> Result<TimeRange, ApiError> {
        let range = TimeRange {
            begin: opt_time(begin_field, begin)?,
            end: opt_time(end_field, end)?,
        };
        if let (Some(b), Some(e)) = (range.begin, range.end) {
            if b > e {
                return Err(ApiError::invalid(format!(
                    "{begin_field} must not be after {end_field}"
                )));
            }
            let year_later = b.checked_add_months(chrono::Months::new(12));
            if max_one_year && year_later.is_none_or(|limit| e > limit) {
                return Err(ApiError::invalid(format!(
                    "{begin_field} and {end_field} must be at most one year apart"
                )));
            }
        }
        Ok(range)
    }
}

/// `offset`/`limit` paging as the public API has it: offset ≥ 0, limit 1..=100
/// (default 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    pub offset: i64,
    pub limit: i64,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            offset: 0,
            limit: DEFAULT_LIMIT,
        }
    }
}

pub const DEFAULT_LIMIT: i64 = 10;
pub const MAX_LIMIT: i64 = 100;

impl Paging {
    pub fn new(offset: Option<i64>, limit: Option<i64>) -> Result<Paging, ApiError> {
        let offset = offset.unwrap_or(0);
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if offset < 0 {
            return Err(invalid("offset", "must be 0 or more"));
        }
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        Ok(Paging { offset, limit })
    }

    /// From query text (empty = default).
    pub fn from_text(offset: Option<String>, limit: Option<String>) -> Result<Paging, ApiError> {
        Paging::new(opt_int("offset", offset)?, opt_int("limit", limit)?)
    }
}

/// A query string of `offset`/`limit` and nothing else.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagingQuery {
    #[schemars(schema_with = "schema::offset")]
    pub offset: Option<String>,
    #[schemars(schema_with = "schema::limit")]
    pub limit: Option<String>,
}

impl PagingQuery {
    pub fn parse(text: &str) -> Result<Paging, ApiError> {
        let q: PagingQuery = query(text)?;
        Paging::from_text(q.offset, q.limit)
    }
}

/// A body with no fields at all (`{}` or empty).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// A query string with no parameters.
pub fn no_query(text: &str) -> Result<(), ApiError> {
    query::<NoFields>(text).map(drop)
}

/// A body with no fields.
pub fn no_body(body: &[u8]) -> Result<(), ApiError> {
    json::<NoFields>(body).map(drop)
}

/// The schemas of the wire fields the checks above read, for the OpenAPI
/// document: the wire structs name them with `#[schemars(schema_with = ...)]`,
/// and each states the bound its check reads, from the same constant.
pub mod schema {
    use super::{TextEnum, MAX_BUDGET, MAX_ID_CHARS, MAX_LIMIT};
    use schemars::{json_schema, Schema, SchemaGenerator};

    /// A character Rust's `trim` keeps (not Unicode White_Space), as a
    /// regular expression class that ECMA-262 and Python read alike: a
    /// text the checks call blank has none.
    const NOT_BLANK: &str = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

    /// An id ([`super::check_id`]): 1 to [`MAX_ID_CHARS`] characters, not
    /// blank.
    pub fn id(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS, "pattern": NOT_BLANK})
    }

    /// An amount in text: at most 9 digits before the point (as a number,
    /// up to [`MAX_BUDGET`]).
    const FROM_ZERO_TEXT: &str = "^[0-9]{1,9}(\\.[0-9]{1,2})?$";
    /// [`FROM_ZERO_TEXT`], not zero.
    const POSITIVE_TEXT: &str = "^(?=[0-9.]*[1-9])[0-9]{1,9}(\\.[0-9]{1,2})?$";

    /// An amount ([`super::Money`]): more than 0, or from 0 when
    /// `zero`, to [`MAX_BUDGET`], with at most two decimals.
    pub fn money(zero: bool) -> Schema {
        let max = i64::try_from(MAX_BUDGET.mantissa()).unwrap_or(i64::MAX);
        let low = if zero { "minimum" } else { "exclusiveMinimum" };
        let mut number = json_schema!({"type": "number", "maximum": max, "multipleOf": 0.01});
        number.insert(low.into(), 0.into());
        json_schema!({
            "description": "An amount with at most two decimals: a number such as 100.5, or a string such as \"100.50\".",
            "anyOf": [
                number,
                {"type": "string", "pattern": if zero { FROM_ZERO_TEXT } else { POSITIVE_TEXT }}
            ]
        })
    }

    /// An amount that may be 0 (`Money::within` from zero).
    pub fn money_from_zero(_: &mut SchemaGenerator) -> Schema {
        money(true)
    }

    /// `MIN` to `MAX` distinct ids ([`super::id_list`]).
    pub fn ids<const MIN: usize, const MAX: usize>(g: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "array", "items": id(g), "minItems": MIN, "maxItems": MAX, "uniqueItems": true,
        })
    }

    /// One of `T`'s texts ([`super::choice`]).
    pub fn one_of<T: TextEnum>(_: &mut SchemaGenerator) -> Schema {
        let texts: Vec<&str> = T::all().iter().map(|t| t.text()).collect();
        json_schema!({"type": "string", "enum": texts})
    }

    /// At least one of `T`'s texts, each once ([`super::choices`]).
    pub fn some_of<T: TextEnum>(g: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "array", "items": one_of::<T>(g), "minItems": 1, "uniqueItems": true})
    }

    /// An integer from `MIN` to `MAX` ([`super::long_in`]); in a query
    /// string, its decimal text.
    pub fn int<const MIN: i64, const MAX: i64>(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": MIN, "maximum": MAX})
    }

    /// A page's `offset` ([`super::Paging`]).
    pub fn offset(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": 0, "maximum": i64::MAX})
    }

    /// A page's `limit` ([`super::Paging`]): 1 to [`MAX_LIMIT`].
    pub fn limit(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})
    }

    /// An instant ([`super::opt_time`]): RFC 3339, such as
    /// `2026-11-21T12:00:00Z`.
    pub fn time(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "date-time"})
    }

    /// A text that is not blank.
    pub fn non_blank(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": NOT_BLANK})
    }

    /// A text of 1 to `MAX` characters, not blank.
    pub fn text<const MAX: usize>(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "minLength": 1, "maxLength": MAX, "pattern": NOT_BLANK})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct In {
        amount: Option<Money>,
    }

    fn amount(body: &str) -> Result<Decimal, ApiError> {
        positive_money("budget_amount", json::<In>(body.as_bytes())?.amount)
    }

    /// A body is a JSON object: serde's derived structs would read an
    /// array field by field (`["cust-1", 777]` set a budget once).
    #[test]
    fn a_body_is_an_object() {
        for body in [r#"[100]"#, r#"  ["x"]"#, "100", r#""x""#, "null"] {
            let refused = json::<In>(body.as_bytes()).unwrap_err();
            assert_eq!(
                refused.msg, "invalid request body: expected a JSON object",
                "{body}"
            );
        }
        assert!(json::<In>(b" {}").is_ok() && json::<In>(b"").is_ok());
    }

    /// An integer field takes a number with no fraction, as JSON Schema
    /// calls it an integer, and refuses one with a fraction, naming it.
    #[test]
    fn integers_are_whole_numbers() {
        #[derive(Debug, Deserialize)]
        struct Page {
            #[serde(default, deserialize_with = "integer")]
            limit: Option<i64>,
            #[serde(default, deserialize_with = "integers")]
            statuses: Option<Vec<i64>>,
        }
        let page = json::<Page>(br#"{"limit": 39.0, "statuses": [2, 3.0]}"#).unwrap();
        assert_eq!((page.limit, page.statuses), (Some(39), Some(vec![2, 3])));
        assert_eq!(json::<Page>(b"{}").unwrap().limit, None);
        for (body, field) in [
            (r#"{"limit": 39.5}"#, "limit"),
            (r#"{"limit": "39"}"#, "limit"),
            (r#"{"statuses": [2.5]}"#, "statuses"),
            (r#"{"limit": 1e300}"#, "limit"),
        ] {
            let refused = json::<Page>(body.as_bytes()).unwrap_err();
            assert!(
                refused
                    .msg
                    .starts_with(&format!("invalid parameter {field}")),
                "{body}: {}",
                refused.msg
            );
        }
    }

    #[test]
    fn money_reads_numbers_and_strings_exactly() {
        for (body, want) in [
            (r#"{"amount": 100}"#, "100"),
            (r#"{"amount": 100.5}"#, "100.5"),
            (r#"{"amount": "100"}"#, "100"),
            (r#"{"amount": "100.00"}"#, "100.00"),
            (r#"{"amount": 2147483647.00}"#, "2147483647.00"),
        ] {
            let got = amount(body).unwrap();
            assert_eq!(got, want.parse::<Decimal>().unwrap(), "{body}");
        }
        assert_eq!(
            cedar_decimal(amount(r#"{"amount": 100}"#).unwrap()),
            "100.00"
        );
        assert_eq!(
            cedar_decimal(amount(r#"{"amount": 100.5}"#).unwrap()),
            "100.50"
        );
    }

    #[test]
    fn money_refusals_are_parameter_errors_naming_the_field() {
        for body in [
            r#"{"amount": 100.123}"#,
            r#"{"amount": "1e3"}"#,
            r#"{"amount": 1e3}"#,
            r#"{"amount": -1}"#,
            r#"{"amount": 0}"#,
            r#"{"amount": "abc"}"#,
            r#"{"amount": true}"#,
            r#"{"amount": null}"#,
            r#"{"amount": 2147483648}"#,
            r#"{"amount": [1]}"#,
        ] {
            let err = amount(body).unwrap_err();
            assert_eq!(err.code, "CBC.0100", "{body}: {err}");
            assert!(err.msg.contains("amount"), "{body}: {}", err.msg);
        }
    }

    #[test]
    fn id_lists_are_bounded_and_distinct() {
        let ids = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        assert!(id_list("customer_ids", ids(&["a", "b"]), 1, 10).is_ok());
        assert!(id_list("customer_ids", ids(&[]), 1, 10).is_err());
        assert!(id_list("customer_ids", ids(&["a", "a"]), 1, 10).is_err());
        assert!(id_list("customer_ids", ids(&[" "]), 1, 10).is_err());
        assert_eq!(
            id_list("customer_ids", None, 1, 10).unwrap_err().code,
            "CBC.0100"
        );
    }

    #[test]
    fn time_ranges_are_ordered_and_bounded() {
        let t = |s: &str| Some(s.to_owned());
        assert!(TimeRange::parse(
            ("b", t("2026-01-01T00:00:00Z")),
            ("e", t("2026-12-31T00:00:00Z")),
            true
        )
        .is_ok());
        assert!(TimeRange::parse(
            ("b", t("2026-02-01T00:00:00Z")),
            ("e", t("2026-01-01T00:00:00Z")),
            false
        )
        .is_err());
        assert!(TimeRange::parse(
            ("b", t("2025-01-01T00:00:00Z")),
            ("e", t("2026-01-02T00:00:00Z")),
            true
        )
        .is_err());
        assert_eq!(
            TimeRange::parse(("b", t("yesterday")), ("e", None), true)
                .unwrap_err()
                .code,
            "CBC.0100"
        );
    }
}
