//! The JSON body as the gateway reads it: the top-level fields, kept as raw
//! JSON text (so a decimal is read from its digits, never through a float)
//! and refused when a key appears twice (the gateway and the store could
//! otherwise read different values).

use super::GatewayError;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

#[derive(Debug, Default)]
pub struct BodyFields {
    fields: Vec<(String, Box<RawValue>)>,
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Vec<(String, Box<RawValue>)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(String, Box<RawValue>)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
            }
            fields.push((key, value));
        }
        Ok(fields)
    }
}

impl BodyFields {
    /// Parses a request body; an empty body is an empty object (the SDK sends
    /// empty POST bodies for some calls).
    pub fn parse(body: &[u8]) -> Result<BodyFields, GatewayError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(BodyFields::default());
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        let fields = de
            .deserialize_map(FieldsVisitor)
            .and_then(|f| de.end().map(|_| f))
            .map_err(|e| GatewayError::BadParameter(format!("invalid request body: {e}")))?;
        Ok(BodyFields { fields })
    }

    /// A field's raw JSON, `None` when absent or `null`.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.get())
            .filter(|v| *v != "null")
    }

    /// A string field.
    pub fn string(&self, name: &str) -> Result<Option<String>, GatewayError> {
        self.raw(name)
            .map(|raw| {
                serde_json::from_str::<String>(raw).map_err(|_| {
                    GatewayError::BadParameter(format!(
                        "invalid parameter {name}: expected a string"
                    ))
                })
            })
            .transpose()
    }

    /// An array-of-strings field.
    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, GatewayError> {
        self.raw(name)
            .map(|raw| {
                serde_json::from_str::<Vec<String>>(raw).map_err(|_| {
                    GatewayError::BadParameter(format!(
                        "invalid parameter {name}: expected an array of strings"
                    ))
                })
            })
            .transpose()
    }

    /// A number or numeric string, as its decimal text (never through f64).
    pub fn decimal_text(&self, name: &str) -> Result<Option<String>, GatewayError> {
        let Some(raw) = self.raw(name) else {
            return Ok(None);
        };
        if let Ok(s) = serde_json::from_str::<String>(raw) {
            return Ok(Some(s));
        }
        if raw
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return Ok(Some(raw.to_owned()));
        }
        Err(GatewayError::BadParameter(format!(
            "invalid parameter {name}: expected a decimal number"
        )))
    }

    /// A whole number.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, GatewayError> {
        self.raw(name)
            .map(|raw| {
                serde_json::from_str::<i64>(raw).map_err(|_| {
                    GatewayError::BadParameter(format!(
                        "invalid parameter {name}: expected an integer"
                    ))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_decimal_digits_and_refuses_duplicates() {
        let b =
            BodyFields::parse(br#"{"customer_id": "c-1", "budget_amount": 1234567.89, "x": null}"#)
                .unwrap();
        assert_eq!(b.string("customer_id").unwrap().as_deref(), Some("c-1"));
        assert_eq!(
            b.decimal_text("budget_amount").unwrap().as_deref(),
            Some("1234567.89")
        );
        assert_eq!(b.raw("x"), None);
        assert!(BodyFields::parse(br#"{"customer_id": "a", "customer_id": "b"}"#).is_err());
        assert!(BodyFields::parse(br#"{"a": 1} trailing"#).is_err());
        assert!(BodyFields::parse(b"[1]").is_err());
        assert!(BodyFields::parse(b"").unwrap().raw("a").is_none());
        assert!(b.strings("customer_id").is_err());
    }
}
