//! "Why denied?" for a default deny: the permits whose scope matches the
//! request, each with the first condition that did not hold and the values
//! it read. A permit's conditions are split into their top-level `&&`
//! parts (Cedar's JSON form of the policy) and each part is evaluated alone
//! with Cedar's own evaluator over the same request and entities, so the
//! answer is what Cedar saw, not a re-implementation of it.

use super::DeterminingPolicy;
use crate::policy::{AccessRequest, PolicyEngine};
use cedar_policy::{
    eval_expression, Authorizer, Effect, Entities, Expression, Policy, PolicyId, PolicySet, Request,
};
use serde::Serialize;
use serde_json::{json, Value};
use std::str::FromStr;

/// How many values are shown for one failed condition.
const MAX_VALUES: usize = 8;

/// A permit whose scope matched but whose conditions did not all hold.
#[derive(Clone, Debug, Serialize)]
pub struct NearMiss {
    #[serde(flatten)]
    pub policy: DeterminingPolicy,
    /// The first condition that failed, as Cedar text: `when { X }` where X
    /// (one `&&` part) was false or could not be evaluated, or `unless { Y }`
    /// where Y was true.
    pub failed: String,
    /// Why, when it is not plain `false`: the evaluation error.
    pub error: Option<String>,
    /// The attributes the failed condition read, with their values.
    pub values: Vec<SeenValue>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeenValue {
    pub expr: String,
    pub value: String,
}

/// The near misses of `request` over `entities` (the decision's slice), in
/// file order; empty when the request cannot be put to Cedar.
pub fn near_misses(
    engine: &PolicyEngine,
    request: &AccessRequest,
    entities: &Entities,
) -> Vec<NearMiss> {
    let Some((cedar_request, entities)) = cedar_parts(engine, request, entities) else {
        return Vec::new();
    };
    let authorizer = Authorizer::new();
    let mut out = Vec::new();
    for info in engine.policies() {
        if info.effect != Effect::Permit {
            continue;
        }
        let Some(policy) = engine.policy_set().policy(&PolicyId::new(&info.id)) else {
            continue;
        };
        let Ok(mut shape) = policy.to_json() else {
            continue;
        };
        let conditions = shape["conditions"].take();
        shape["conditions"] = json!([]);
        // The scope alone: does the policy apply to this request at all?
        let scope_matches = Policy::from_json(Some(PolicyId::new(&info.id)), shape)
            .ok()
            .and_then(|p| PolicySet::from_policies([p]).ok())
            .is_some_and(|set| {
                authorizer
                    .is_authorized(&cedar_request, &set, &entities)
                    .decision()
                    == cedar_policy::Decision::Allow
            });
        if !scope_matches {
            continue;
        }
        if let Some(miss) = first_failure(&conditions, &cedar_request, &entities) {
            out.push(NearMiss {
                policy: DeterminingPolicy::of(engine, &info.id),
                ..miss
            });
        }
    }
    out
}

/// The Cedar request and the entities with the action's, as a decision has them.
fn cedar_parts(
    engine: &PolicyEngine,
    request: &AccessRequest,
    entities: &Entities,
) -> Option<(Request, Entities)> {
    let cedar_request = engine.plain_cedar_request(request).ok()?;
    let actions = engine.schema().action_entities().ok()?;
    let all = crate::policy::plan::with_missing(entities, actions.iter()).ok()?;
    Some((cedar_request, all.into_owned()))
}

/// The first condition part of a policy (its JSON `conditions`) that fails.
fn first_failure(conditions: &Value, request: &Request, entities: &Entities) -> Option<NearMiss> {
    for clause in conditions.as_array()? {
        let body = clause.get("body")?;
        let unless = clause.get("kind").and_then(Value::as_str) == Some("unless");
        let parts = if unless {
            vec![body]
        } else {
            let mut parts = Vec::new();
            conjuncts(body, &mut parts);
            parts
        };
        for part in parts {
            let text = expr_text(part)?;
            let result = Expression::from_str(&text)
                .map_err(|e| e.to_string())
                .and_then(|e| eval_expression(request, entities, &e).map_err(|e| e.to_string()));
            let (holds, error) = match result {
                Ok(cedar_policy::EvalResult::Bool(b)) => (b != unless, None),
                Ok(other) => (false, Some(format!("not a boolean: {other}"))),
                Err(e) => (false, Some(e)),
            };
            if holds {
                continue;
            }
            let keyword = if unless { "unless" } else { "when" };
            return Some(NearMiss {
                policy: DeterminingPolicy {
                    id: String::new(),
                    effect: "permit",
                    file: String::new(),
                    line: 0,
                    comment: None,
                },
                failed: format!("{keyword} {{ {text} }}"),
                error,
                values: seen_values(part, request, entities),
            });
        }
    }
    None
}

/// The top-level `&&` parts of a condition, left to right.
fn conjuncts<'v>(expr: &'v Value, out: &mut Vec<&'v Value>) {
    match expr.get("&&") {
        Some(and) => {
            if let (Some(l), Some(r)) = (and.get("left"), and.get("right")) {
                conjuncts(l, out);
                conjuncts(r, out);
            } else {
                out.push(expr);
            }
        }
        None => out.push(expr),
    }
}

/// Cedar text of an expression in Cedar's JSON form (printed by Cedar).
fn expr_text(expr: &Value) -> Option<String> {
    let policy = Policy::from_json(
        None,
        json!({
            "effect": "permit",
            "principal": {"op": "All"},
            "action": {"op": "All"},
            "resource": {"op": "All"},
            "conditions": [{"kind": "when", "body": expr}],
        }),
    )
    .ok()?;
    let text = policy.to_cedar()?;
    let start = text.find("when {")? + "when {".len();
    let end = text.rfind('}')?;
    Some(text.get(start..end)?.trim().to_owned())
}

/// The attribute reads (`a.b`, outermost only) in `expr`, with their values.
fn seen_values(expr: &Value, request: &Request, entities: &Entities) -> Vec<SeenValue> {
    let mut reads = Vec::new();
    attribute_reads(expr, &mut reads);
    let mut out: Vec<SeenValue> = Vec::new();
    for read in reads {
        let Some(text) = expr_text(read) else {
            continue;
        };
        if out.iter().any(|v| v.expr == text) {
            continue;
        }
        let value = Expression::from_str(&text)
            .map_err(|e| e.to_string())
            .and_then(|e| eval_expression(request, entities, &e).map_err(|e| e.to_string()))
            .map_or_else(|e| format!("error: {e}"), |v| v.to_string());
        out.push(SeenValue { expr: text, value });
        if out.len() == MAX_VALUES {
            break;
        }
    }
    out
}

fn attribute_reads<'v>(expr: &'v Value, out: &mut Vec<&'v Value>) {
    match expr {
        Value::Object(map) => {
            if map.contains_key(".") {
                out.push(expr);
                return;
            }
            for v in map.values() {
                attribute_reads(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| attribute_reads(v, out)),
        _ => {}
    }
}
