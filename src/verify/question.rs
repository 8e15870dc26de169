//! Whether a question put to the policies (`policy explain`, `policy
//! who-can`, `POST /v1/explain`, `POST /v1/who-can`) names something real.
//! A question about an unknown action or a type the action does not take,
//! or with a context that does not fit, is refused naming the field and
//! what is valid, never answered with a deny that would read as an answer.
//! The CLI says so with exit 2, the admin listener with 400.

use crate::policy::PolicyEngine;
use crate::refs::EntityType;
use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use serde_json::{Map, Value};

/// Why a question is refused: the field at fault (`action`, `principal`,
/// `resource` or `context`) and what is wrong, naming the valid values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub field: &'static str,
    pub message: String,
}

/// How far from the gateway's clock a caller's `context.now` may lie.
pub const SUPPLIED_NOW_YEARS: i64 = 10;

/// The `now` a question's context names, if any: an RFC 3339 instant within
/// [`SUPPLIED_NOW_YEARS`] of the clock. Anything else is refused naming
/// `context.now`: a question about 1969 or the year 9999 is a mistake or a
/// probe, and no data of the store is dated there.
pub fn supplied_now(
    context: &Map<String, Value>,
) -> Result<Option<crate::time::Timestamp>, Refusal> {
    let Some(value) = context.get("now") else {
        return Ok(None);
    };
    let refuse = |message: String| Refusal {
        field: "context.now",
        message,
    };
    let text = value
        .as_str()
        .ok_or_else(|| refuse("must be a string, an RFC 3339 instant".into()))?;
    let now = crate::time::parse(text)
        .map_err(|_| refuse("must be an RFC 3339 instant such as 2026-11-21T12:00:00Z".into()))?;
    let (earliest, latest) = now_bounds(crate::time::now());
    if now < earliest || now > latest {
        return Err(refuse(format!(
            "must lie within {SUPPLIED_NOW_YEARS} years of the gateway's clock"
        )));
    }
    Ok(Some(now))
}

/// The earliest and latest `now` a decision can be asked at, `clock` being
/// the gateway's clock: the request time itself, or a caller's `now` within
/// [`SUPPLIED_NOW_YEARS`] of it (the invariant proofs assume as much).
pub fn now_bounds(
    clock: crate::time::Timestamp,
) -> (crate::time::Timestamp, crate::time::Timestamp) {
    let bound = chrono::Duration::days(SUPPLIED_NOW_YEARS * 36525 / 100);
    (clock - bound, clock + bound)
}

/// The action exists, applies to `principal`'s type (unless `None`: every
/// principal is asked about) and to `resource`'s, and `context` has the
/// action's fields with their types (`now` and `source_ip` are filled in).
pub fn check(
    engine: &PolicyEngine,
    principal: Option<EntityType>,
    action: &str,
    resource: EntityType,
    context: &Map<String, Value>,
) -> Result<(), Refusal> {
    let refuse = |field, message| Refusal { field, message };
    let schema = engine.schema();
    let uid = PolicyEngine::action_uid(action);
    // Groups of actions (`PartnerLevel`) are in the schema too, but apply to nothing.
    let requestable = |a: &&EntityUid| {
        schema
            .principals_for_action(a)
            .is_some_and(|mut p| p.next().is_some())
    };
    if !schema.actions().filter(requestable).any(|a| *a == uid) {
        let mut valid: Vec<String> = schema
            .actions()
            .filter(requestable)
            .map(|a| a.id().unescaped().to_owned())
            .collect();
        valid.sort();
        return Err(refuse(
            "action",
            format!(
                "unknown action {}; the actions are: {}",
                crate::api_error::ApiError::echo(action),
                valid.join(", ")
            ),
        ));
    }
    let principal = match principal {
        Some(p) => {
            allowed_type("principal", p, action, schema.principals_for_action(&uid))?;
            p.cedar().clone()
        }
        // Any principal type of the action will do for the context checks.
        None => match schema
            .principals_for_action(&uid)
            .and_then(|mut p| p.next())
        {
            Some(p) => p.clone(),
            None => return Ok(()),
        },
    };
    allowed_type(
        "resource",
        resource,
        action,
        schema.resources_for_action(&uid),
    )?;
    supplied_now(context)?;
    let mut context = context.clone();
    for (name, value) in [
        (
            "now",
            Value::String(crate::time::format(crate::time::now())),
        ),
        ("source_ip", Value::String("127.0.0.1".into())),
    ] {
        context.entry(name).or_insert(value);
    }
    if let Some(misfit) = engine.context_misfit(action, &context) {
        return Err(refuse("context", format!("field {misfit} ({action})")));
    }
    // Cedar's own check (it names a missing field).
    let misfit = |e: &dyn miette::Diagnostic| {
        refuse(
            "context",
            format!("does not fit {action}: {}", super::describe(e)),
        )
    };
    let context =
        cedar_policy::Context::from_json_value(Value::Object(context), Some((schema, &uid)))
            .map_err(|e| misfit(&e))?;
    cedar_policy::Request::new(
        any_of(&principal),
        uid,
        any_of(resource.cedar()),
        context,
        Some(schema),
    )
    .map_err(|e| misfit(&e))?;
    Ok(())
}

/// An entity of type `t`: the checks above are about types, not ids.
fn any_of(t: &EntityTypeName) -> EntityUid {
    EntityUid::from_type_name_and_id(t.clone(), EntityId::new("any"))
}

/// Refused unless `ty` is one of the `role` (principal or resource) types
/// the schema gives `action`, naming the valid ones.
fn allowed_type<'a>(
    role: &'static str,
    ty: EntityType,
    action: &str,
    allowed: Option<impl Iterator<Item = &'a EntityTypeName>>,
) -> Result<(), Refusal> {
    let allowed: Vec<_> = allowed.into_iter().flatten().collect();
    if allowed.contains(&ty.cedar()) {
        return Ok(());
    }
    let mut names: Vec<&str> = allowed.iter().map(|t| t.basename()).collect();
    names.sort();
    Err(Refusal {
        field: role,
        message: format!(
            "{ty} cannot be the {role} of {action}; its {role} types are: {}",
            names.join(", ")
        ),
    })
}
