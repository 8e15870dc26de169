//! When a decision may be reused (`authorizer::reuse`): the same question on
//! the same facts gets the same answer, except where it depends on `now`. A
//! comparison of `now` with an attribute or a literal can change only when
//! `now` passes that instant; anything that computes with time (`offset`,
//! `durationSince`, `toDate`, ...) moves the instant out of sight, so a
//! policy set that does is never reused.

use crate::time::{self, Timestamp};
use cedar_policy::PolicySet;
use serde_json::Value;

/// Cedar's extension functions that compute with instants and durations.
const COMPUTES_WITH_TIME: &[&str] = &[
    "offset",
    "durationSince",
    "toDate",
    "toTime",
    "toDays",
    "toHours",
    "toMinutes",
    "toSeconds",
    "toMilliseconds",
    "duration",
];

/// How a policy set uses time.
#[derive(Debug, Default)]
pub(super) struct TimeUse {
    /// Some policy computes with time (or could not be read): no reuse.
    pub computes: bool,
    /// The `datetime("...")` literals of the policies.
    pub literals: Vec<Timestamp>,
}

pub(super) fn time_use(policies: &PolicySet) -> TimeUse {
    let mut found = TimeUse::default();
    for policy in policies.policies() {
        match policy.to_json() {
            Ok(json) => walk(&json, &mut found),
            Err(_) => found.computes = true,
        }
    }
    found
}

/// Extension calls are `{"name": [args]}` in Cedar's JSON policy format.
fn walk(json: &Value, found: &mut TimeUse) {
    match json {
        Value::Object(map) => {
            for (key, value) in map {
                if COMPUTES_WITH_TIME.contains(&key.as_str()) {
                    found.computes = true;
                }
                if key == "datetime" {
                    match literal(value) {
                        Some(t) => found.literals.push(t),
                        None => found.computes = true,
                    }
                }
                walk(value, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
        _ => {}
    }
}

/// `[{"Value": "2027-01-01T00:00:00Z"}]`, the argument of a `datetime` literal.
fn literal(args: &Value) -> Option<Timestamp> {
    let text = args.get(0)?.get("Value")?.as_str()?;
    time::parse(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> TimeUse {
        time_use(&text.parse().unwrap())
    }

    #[test]
    fn comparisons_with_now_are_reusable_and_literals_are_found() {
        let t = of(r#"permit(principal, action, resource) when {
            context.now < datetime("2027-01-01T00:00:00Z") && context.now > principal.expires_at };"#);
        assert!(!t.computes);
        assert_eq!(t.literals, [time::parse("2027-01-01T00:00:00Z").unwrap()]);
    }

    #[test]
    fn computing_with_time_is_not_reusable() {
        for text in [
            r#"permit(principal, action, resource) when { context.now < principal.at.offset(duration("1h")) };"#,
            r#"permit(principal, action, resource) when { context.now.toDate() == principal.day };"#,
            r#"permit(principal, action, resource) when { context.now.durationSince(principal.at) < duration("1d") };"#,
        ] {
            assert!(of(text).computes, "{text}");
        }
    }
}
