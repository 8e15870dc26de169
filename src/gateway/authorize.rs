//! Stage 4, authorize: the route's checks become Cedar requests over an
//! entity slice, and every one must be allowed. A batch is all or nothing.
//! An unknown resource is denied exactly like a forbidden one, and any error
//! while deciding denies (fail closed).

use super::authn::Caller;
use super::body::BodyFields;
use super::routes::{After, ContextField, ContextValue, Params, ResourceFrom, Route};
use super::GatewayError;
use crate::assertion::CallerKind;
use crate::money::{parse_amount, MAX_BUDGET};
use crate::policy::EntityRef;
use serde_json::{json, Map, Value};

/// The most ids one batch may name (the public API's largest page): each
/// costs a decision, so the bound is checked before deciding.
pub const MAX_BATCH: usize = 100;

/// One Cedar question the request must pass.
#[derive(Clone, Debug)]
pub struct Check {
    pub action: &'static str,
    pub resource: EntityRef,
    pub context: Map<String, Value>,
}

/// The checks a request needs, and what to do with the answer.
#[derive(Debug)]
pub struct Plan {
    pub checks: Vec<Check>,
    pub after: After,
}

/// Maps a routed request to its checks. Missing or malformed inputs are 400
/// here, before any decision.
pub fn plan(
    route: &Route,
    params: &Params,
    query: &str,
    body: &BodyFields,
    caller: &Caller,
) -> Result<Plan, GatewayError> {
    let context = context(route.context, body)?;
    let check = |action: &'static str, resource: EntityRef| Check {
        action,
        resource,
        context: context.clone(),
    };
    let required = |name: &str, value: Option<String>| {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| GatewayError::BadParameter(format!("missing parameter {name}")))
    };
    let (action, after) = (route.action, route.after);
    let plan = |checks, after| Ok(Plan { checks, after });
    match route.resource {
        ResourceFrom::Path(name, kind) => {
            let id = params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone());
            plan(vec![check(action, kind.entity(required(name, id)?))], after)
        }
        ResourceFrom::Query(name, kind) => match (query_param(query, name), route.when_absent) {
            (Some(id), _) if !id.is_empty() => plan(vec![check(action, kind.entity(id))], after),
            (_, Some((list_action, list_after))) => plan(
                vec![check(list_action, caller_partner(caller)?)],
                list_after,
            ),
            (id, None) => plan(vec![check(action, kind.entity(required(name, id)?))], after),
        },
        ResourceFrom::Body(name, kind) => plan(
            vec![check(
                action,
                kind.entity(required(name, body.string(name)?)?),
            )],
            after,
        ),
        ResourceFrom::EachInBody(name, kind) => match (body.strings(name)?, route.when_absent) {
            (Some(ids), _) if ids.len() > MAX_BATCH => Err(GatewayError::BadParameter(format!(
                "invalid parameter {name}: at most {MAX_BATCH} ids"
            ))),
            (Some(ids), _) if !ids.is_empty() => {
                let mut unique = ids.clone();
                unique.sort();
                unique.dedup();
                if unique.len() != ids.len() {
                    return Err(GatewayError::BadParameter(format!(
                        "invalid parameter {name}: an id is listed twice"
                    )));
                }
                plan(
                    ids.into_iter()
                        .map(|id| check(action, kind.entity(id)))
                        .collect(),
                    after,
                )
            }
            (None, Some((list_action, list_after))) => plan(
                vec![check(list_action, caller_partner(caller)?)],
                list_after,
            ),
            _ => Err(GatewayError::BadParameter(format!(
                "missing parameter {name}"
            ))),
        },
        ResourceFrom::CallerPartner => plan(vec![check(action, caller_partner(caller)?)], after),
        ResourceFrom::CallerCustomer => plan(vec![check(action, caller_customer(caller)?)], after),
        ResourceFrom::CallerSessions => plan(vec![], after),
    }
}

/// The caller's own partner: an operator's, or the partner behind a session.
/// A customer has none, and is denied like anyone out of reach.
fn caller_partner(caller: &Caller) -> Result<EntityRef, GatewayError> {
    caller
        .identity
        .partner
        .clone()
        .map(EntityRef::Partner)
        .ok_or_else(GatewayError::denied)
}

/// The customer account a customer-side route serves.
fn caller_customer(caller: &Caller) -> Result<EntityRef, GatewayError> {
    match caller.identity.kind {
        CallerKind::Customer | CallerKind::Session => caller
            .identity
            .customer
            .clone()
            .map(EntityRef::Customer)
            .ok_or_else(GatewayError::denied),
        // An operator has no account of its own to act in; the policies would
        // deny it on any customer, so the gateway asks about none.
        CallerKind::Operator => Err(GatewayError::denied()),
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Builds the action's context from the request body.
fn context(fields: &[ContextField], body: &BodyFields) -> Result<Map<String, Value>, GatewayError> {
    let mut ctx = Map::new();
    for field in fields {
        let from = field.from;
        let bad =
            |why: &str| GatewayError::BadParameter(format!("invalid parameter {from}: {why}"));
        let value = match field.value {
            ContextValue::OneOf(allowed, default) => {
                let v = body
                    .string(from)?
                    .or(default.map(str::to_owned))
                    .ok_or_else(|| bad("missing"))?;
                if !allowed.contains(&v.as_str()) {
                    return Err(bad(&format!("must be one of {}", allowed.join(", "))));
                }
                json!(v)
            }
            ContextValue::Amount => {
                let text = body.decimal_text(from)?.ok_or_else(|| bad("missing"))?;
                let amount = parse_amount(&text).map_err(|e| bad(&e.to_string()))?;
                if amount.is_zero() || amount > MAX_BUDGET {
                    return Err(bad("must be in (0, 2147483647]"));
                }
                json!(amount.to_string())
            }
            ContextValue::Flag01 => match body.string(from)?.as_deref() {
                None | Some("0") => json!(false),
                Some("1") => json!(true),
                Some(_) => return Err(bad("must be \"0\" or \"1\"")),
            },
            ContextValue::Long { min, max, default } => {
                let v = body
                    .integer(from)?
                    .or(default)
                    .ok_or_else(|| bad("missing"))?;
                if !(min..=max).contains(&v) {
                    return Err(bad(&format!("must be between {min} and {max}")));
                }
                json!(v)
            }
            ContextValue::Scopes => {
                let scopes = body.strings(from)?.ok_or_else(|| bad("missing"))?;
                let mut unique = scopes.clone();
                unique.sort();
                unique.dedup();
                if scopes.is_empty()
                    || unique.len() != scopes.len()
                    || !scopes.iter().all(|s| s == "om" || s == "order")
                {
                    return Err(bad("one or both of \"om\", \"order\", each once"));
                }
                json!(scopes)
            }
        };
        ctx.insert(field.name.to_owned(), value);
    }
    Ok(ctx)
}
