//! A solver's counterexample (a request and an entity store) written as a
//! decision test file in the inline-entities form, ready for `policy test`.
//!
//! The solver names entities with whatever strings satisfy the constraints
//! (often `""`); they are renamed `session-1`, `customer-1`, ... for reading,
//! and the caller replays the written file to make sure it still decides the
//! same way (a policy naming an entity literally could tell the difference).
//! Extension values become the plain strings the test format takes where
//! one exists (`"5000.0000"`, `"2026-11-21T12:00:00Z"`), Cedar's `__extn`
//! form otherwise.

use crate::refs::EntityRef;
use cedar_policy::{EntityUid, Request};
use cedar_policy_symcc::Env;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// What the written test case expects.
pub(super) struct Case<'a> {
    pub description: String,
    pub name: String,
    pub expect: &'a str,
}

/// The test file for `env`; `readable` renames the entities.
pub(super) fn test_file(env: &Env, case: &Case<'_>, readable: bool) -> Result<Value, String> {
    let request = &env.request;
    let (principal, action, resource) = parts(request)?;
    let entities = env
        .entities
        .to_json_value()
        .map_err(|e| format!("cannot write the entities: {e}"))?;
    let mut entities: Vec<Value> = match entities {
        Value::Array(items) => items
            .into_iter()
            .filter(|e| !is_action(&e["uid"]))
            .collect(),
        _ => return Err("the entities are not a JSON array".into()),
    };
    let mut context = request
        .context()
        .ok_or("the request has no context")?
        .to_json_value()
        .map_err(|e| format!("cannot write the context: {e}"))?;

    let mut names = Names::new(readable);
    let principal = names.uid(principal);
    let resource = names.uid(resource);
    for e in &mut entities {
        names.entity(e);
        simplify(e);
        if let Some(attrs) = e.get_mut("attrs") {
            names.references(attrs);
        }
        if e.get("tags")
            .is_some_and(|t| t.as_object().is_some_and(Map::is_empty))
        {
            e.as_object_mut().map(|o| o.remove("tags"));
        }
    }
    names.references(&mut context);
    simplify(&mut context);

    let reference = |uid: &EntityUid| {
        EntityRef::from_uid(uid)
            .map(|r| r.to_string())
            .ok_or_else(|| format!("{uid}: not an entity type decision tests know"))
    };
    Ok(json!({
        "description": case.description,
        "entities": entities,
        "cases": [{
            "name": case.name,
            "principal": reference(&principal)?,
            "action": action.id().unescaped(),
            "resource": reference(&resource)?,
            "context": context,
            "expect": case.expect,
        }],
    }))
}

/// `Session::"session-1" ListCustomers Partner::"partner-1"`: the request of
/// a test file written by [`test_file`], on one line.
pub(super) fn request_line(file: &Value) -> String {
    let case = &file["cases"][0];
    let text = |key: &str| case[key].as_str().unwrap_or("?").to_owned();
    format!(
        "{} {} {}",
        text("principal"),
        text("action"),
        text("resource")
    )
}

fn parts(request: &Request) -> Result<(&EntityUid, &EntityUid, &EntityUid), String> {
    match (request.principal(), request.action(), request.resource()) {
        (Some(p), Some(a), Some(r)) => Ok((p, a, r)),
        _ => Err("the solver's request is missing its principal, action or resource".into()),
    }
}

fn is_action(uid: &Value) -> bool {
    uid["type"]
        .as_str()
        .is_some_and(|t| t == "Action" || t.ends_with("::Action"))
}

/// Consistent renaming of entity ids: `<type in lower case>-<n>`.
struct Names {
    readable: bool,
    given: HashMap<(String, String), String>,
    per_type: HashMap<String, usize>,
}

impl Names {
    fn new(readable: bool) -> Names {
        Names {
            readable,
            given: HashMap::new(),
            per_type: HashMap::new(),
        }
    }

    fn name(&mut self, ty: &str, id: &str) -> String {
        if !self.readable {
            return id.to_owned();
        }
        let key = (ty.to_owned(), id.to_owned());
        if let Some(name) = self.given.get(&key) {
            return name.clone();
        }
        let base = ty.rsplit("::").next().unwrap_or(ty).to_ascii_lowercase();
        let n = self.per_type.entry(base.clone()).or_insert(0);
        *n += 1;
        let name = format!("{base}-{n}");
        self.given.insert(key, name.clone());
        name
    }

    fn uid(&mut self, uid: &EntityUid) -> EntityUid {
        let name = self.name(&uid.type_name().to_string(), uid.id().unescaped());
        EntityUid::from_type_name_and_id(uid.type_name().clone(), cedar_policy::EntityId::new(name))
    }

    /// Renames a `{"type": .., "id": ..}` object in place.
    fn rename(&mut self, r: &mut Value) {
        if let (Some(ty), Some(id)) = (r["type"].as_str(), r["id"].as_str()) {
            let name = self.name(ty, id);
            r["id"] = Value::String(name);
        }
    }

    fn entity(&mut self, e: &mut Value) {
        if let Some(uid) = e.get_mut("uid") {
            self.rename(uid);
        }
        if let Some(Value::Array(parents)) = e.get_mut("parents") {
            for p in parents {
                self.rename(p);
            }
        }
    }

    /// Renames every `{"__entity": {...}}` inside `v`.
    fn references(&mut self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(target) = map.get_mut("__entity") {
                    self.rename(target);
                } else {
                    for item in map.values_mut() {
                        self.references(item);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.references(i)),
            _ => {}
        }
    }
}

/// Replaces `{"__extn": ...}` values that have a plain-string form.
fn simplify(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(plain) = map.get("__extn").and_then(plain_extension) {
                *v = Value::String(plain);
            } else {
                map.values_mut().for_each(simplify);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(simplify),
        _ => {}
    }
}

fn plain_extension(extn: &Value) -> Option<String> {
    match extn["fn"].as_str()? {
        "decimal" | "ip" | "ipaddr" | "datetime" | "duration" => {
            extn["arg"].as_str().map(str::to_owned)
        }
        "offset" => {
            // datetime("1970-01-01").offset(duration("<n>ms")), how Cedar
            // writes a datetime value: as RFC 3339 when it has four digits.
            let args = extn["args"].as_array()?;
            let base = args.first()?.get("__extn")?;
            let shift = args.get(1)?.get("__extn")?;
            if base["fn"].as_str()? != "datetime" || shift["fn"].as_str()? != "duration" {
                return None;
            }
            let base = chrono::NaiveDate::parse_from_str(base["arg"].as_str()?, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)?
                .and_utc();
            let ms: i64 = shift["arg"].as_str()?.strip_suffix("ms")?.parse().ok()?;
            let at = base.checked_add_signed(chrono::TimeDelta::try_milliseconds(ms)?)?;
            use chrono::Datelike as _;
            if !(0..=9999).contains(&at.year()) {
                return None;
            }
            let format = if at.timestamp_subsec_millis() == 0 {
                "%Y-%m-%dT%H:%M:%SZ"
            } else {
                "%Y-%m-%dT%H:%M:%S%.3fZ"
            };
            Some(at.format(format).to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_values_become_plain_strings() {
        let offset = |ms: &str| {
            json!({"fn": "offset", "args": [
                {"__extn": {"fn": "datetime", "arg": "1970-01-01"}},
                {"__extn": {"fn": "duration", "arg": ms}}]})
        };
        assert_eq!(
            plain_extension(&offset("1767225599999ms")).as_deref(),
            Some("2025-12-31T23:59:59.999Z")
        );
        assert_eq!(
            plain_extension(&offset("-1000ms")).as_deref(),
            Some("1969-12-31T23:59:59Z")
        );
        // Before year 0 there is no RFC 3339 form: Cedar's own stays.
        assert_eq!(plain_extension(&offset("-62167219200001ms")), None);
        assert_eq!(
            plain_extension(&json!({"fn": "decimal", "arg": "5000.0000"})).as_deref(),
            Some("5000.0000")
        );
        let mut v = json!({"a": {"__extn": {"fn": "ip", "arg": "10.0.0.1/32"}}, "b": [1]});
        simplify(&mut v);
        assert_eq!(v, json!({"a": "10.0.0.1/32", "b": [1]}));
    }

    #[test]
    fn names_are_consistent_per_type() {
        let mut names = Names::new(true);
        assert_eq!(names.name("NS::Customer", ""), "customer-1");
        assert_eq!(names.name("NS::Customer", "x"), "customer-2");
        assert_eq!(names.name("NS::Customer", ""), "customer-1");
        assert_eq!(names.name("NS::Session", ""), "session-1");
        let mut attrs = json!({"c": {"__entity": {"type": "NS::Customer", "id": "x"}}});
        names.references(&mut attrs);
        assert_eq!(attrs["c"]["__entity"]["id"], "customer-2");
        assert_eq!(Names::new(false).name("NS::Customer", "x"), "x");
    }
}
