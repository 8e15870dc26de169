//! What the engine works out once per policy load so that a decision does as
//! little as possible, without changing any decision:
//!
//! - per action and (principal type, resource type), the policies whose
//!   scope can match. A policy left out has a scope that is false for every
//!   such request, and Cedar evaluates the scope first and short-circuits, so
//!   it could neither apply nor error: the answer, its determining policies
//!   and its errors are the same as with the whole set (the policy tests
//!   compare both on every case).
//! - the action's entity and its groups', which `action in Group` needs and
//!   which the entity slice does not carry.
//! - the action's context fields with their schema types and which are
//!   required, to build the Cedar context directly. Cedar's own JSON
//!   conversion costs more than the rest of a decision. A context built so is
//!   of the schema's type by construction, so `Request::new` does not check
//!   it again (a tenth of a new decision's instructions); anything the shape
//!   does not cover takes the JSON path and the schema's check.

use super::extension::Extension;
use super::{EntityRef, EntityType, NAMESPACE};
use cedar_policy::{
    ActionConstraint, Context, Entities, Entity, EntityTypeName, EntityUid, PolicySet,
    PrincipalConstraint, ResourceConstraint, RestrictedExpression, Schema,
};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// One action's precomputed parts.
pub(super) struct ActionPlan {
    /// Policies that can apply, by (principal type, resource type); only for
    /// the pairs the schema allows.
    policies: HashMap<(EntityType, EntityType), PolicySet>,
    /// The action entity and those of the groups it is in.
    entities: Vec<Entity>,
    /// The action's context type; `None` when it has a field of a kind the
    /// direct conversion does not handle.
    context: Option<ContextShape>,
}

/// An action's context type, as the direct conversion knows it.
struct ContextShape {
    /// Field → type.
    fields: HashMap<String, FieldKind>,
    /// The fields the type requires (Cedar's `required`, true unless said).
    required: Vec<String>,
}

/// The context field types the direct conversion handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldKind {
    String,
    Long,
    Bool,
    Decimal,
    Datetime,
    Duration,
    IpAddr,
    StringSet,
}

impl ActionPlan {
    /// The policies to evaluate for a request of these entity types.
    pub fn policies(&self, principal: &EntityRef, resource: &EntityRef) -> Option<&PolicySet> {
        self.policies_for(principal.kind(), resource.kind())
    }

    /// Whether the schema defines the action for principals of this type.
    pub fn admits_principal(&self, principal: EntityType) -> bool {
        self.policies.keys().any(|(p, _)| *p == principal)
    }

    /// The policies to evaluate for requests of these entity types.
    pub fn policies_for(&self, principal: EntityType, resource: EntityType) -> Option<&PolicySet> {
        self.policies.get(&(principal, resource))
    }

    /// Whether `now` is the only instant or duration in the action's
    /// context (false when its shape is not known).
    pub fn instant_is_only_now(&self) -> bool {
        self.context.as_ref().is_some_and(|shape| {
            shape.fields.iter().all(|(name, kind)| {
                name == "now" || !matches!(kind, FieldKind::Datetime | FieldKind::Duration)
            })
        })
    }

    /// The entities of the action and its groups.
    pub fn entities(&self) -> impl Iterator<Item = &Entity> + '_ {
        self.entities.iter()
    }

    /// The first field of `fields` that the action's context type does not
    /// declare, or whose JSON value is not of its declared type, said in
    /// words; `None` when each fits (or the shape is not known here).
    pub fn misfit(&self, fields: &Map<String, Value>) -> Option<String> {
        let shape = self.context.as_ref()?;
        for (name, value) in fields {
            let Some(kind) = shape.fields.get(name) else {
                let mut known: Vec<&str> = shape.fields.keys().map(String::as_str).collect();
                known.sort_unstable();
                return Some(format!(
                    "`{name}` is not a field of this context (its fields: {})",
                    known.join(", ")
                ));
            };
            let fits = match (kind, value) {
                (FieldKind::Long, Value::Number(n)) => n.is_i64(),
                (FieldKind::Bool, Value::Bool(_)) => true,
                (FieldKind::StringSet, Value::Array(items)) => items.iter().all(Value::is_string),
                (
                    FieldKind::String
                    | FieldKind::Decimal
                    | FieldKind::Datetime
                    | FieldKind::Duration
                    | FieldKind::IpAddr,
                    Value::String(_),
                ) => true,
                _ => false,
            };
            // The invariant proofs assume what the API enforces of amounts
            // and quotas (policies/invariants/assumptions.cedar): so must a
            // question put to explain, who-can or AuthZEN.
            if let (FieldKind::Decimal, Value::String(text)) = (kind, value) {
                let within = text.trim().parse::<rust_decimal::Decimal>().is_ok_and(|d| {
                    d >= rust_decimal::Decimal::ZERO && d <= crate::money::MAX_BUDGET
                });
                if !within {
                    return Some(format!(
                        "`{name}` must be a decimal in [0, {}], as the API's amounts, not {value}",
                        crate::money::MAX_BUDGET
                    ));
                }
            }
            if !fits {
                let want = match kind {
                    FieldKind::String => "a string",
                    FieldKind::Long => "an integer",
                    FieldKind::Bool => "true or false",
                    FieldKind::Decimal => "a decimal as a string, e.g. \"100.00\"",
                    FieldKind::Datetime => "an RFC 3339 time as a string",
                    FieldKind::Duration => "a duration as a string, e.g. \"1h\"",
                    FieldKind::IpAddr => "an IP address as a string",
                    FieldKind::StringSet => "a list of strings",
                };
                return Some(format!("`{name}` must be {want}, not {value}"));
            }
        }
        None
    }

    /// The Cedar context of `fields` when it is of the action's context
    /// type: every field declared, of its declared type and a valid value,
    /// and every required field there. `None` sends the caller to Cedar's
    /// JSON conversion and the schema's check, which say what is wrong.
    pub fn context(&self, fields: &Map<String, Value>) -> Option<Context> {
        let shape = self.context.as_ref()?;
        if !shape.required.iter().all(|name| fields.contains_key(name)) {
            return None;
        }
        let mut pairs = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            let expr = match (shape.fields.get(name)?, value) {
                (FieldKind::String, Value::String(s)) => {
                    RestrictedExpression::new_string(s.clone())
                }
                (FieldKind::Long, Value::Number(n)) => RestrictedExpression::new_long(n.as_i64()?),
                (FieldKind::Bool, Value::Bool(b)) => RestrictedExpression::new_bool(*b),
                (FieldKind::Decimal, Value::String(s)) => Extension::Decimal.value(s),
                (FieldKind::Datetime, Value::String(s)) => Extension::Datetime.value(s),
                (FieldKind::Duration, Value::String(s)) => Extension::Duration.value(s),
                (FieldKind::IpAddr, Value::String(s)) => Extension::Ip.value(s),
                (FieldKind::StringSet, Value::Array(items)) => {
                    let mut set = Vec::with_capacity(items.len());
                    for item in items {
                        set.push(RestrictedExpression::new_string(item.as_str()?.to_owned()));
                    }
                    RestrictedExpression::new_set(set)
                }
                _ => return None,
            };
            pairs.push((name.clone(), expr));
        }
        Context::from_pairs(pairs).ok()
    }
}

/// Builds the plan of every action of `schema`. `schema_json` holds the
/// schema's fragments in Cedar's JSON schema format (for the context types).
pub(super) fn plan_actions(
    schema: &Schema,
    schema_json: &[Value],
    policies: &PolicySet,
) -> HashMap<String, ActionPlan> {
    let action_entities = schema.action_entities().ok();
    let contexts = ContextTypes::new(schema_json);
    let mut plans = HashMap::new();
    for action in schema.actions() {
        if action.type_name().namespace() != NAMESPACE {
            continue;
        }
        let name = action.id().unescaped().to_owned();
        let mut entities = Vec::new();
        let mut groups = Vec::new();
        if let Some(all) = &action_entities {
            if let Some(own) = all.get(action) {
                entities.push(own.clone());
            }
            groups = groups_of(all, action);
            entities.extend(groups.iter().filter_map(|g| all.get(g).cloned()));
        }
        let mut by_types = HashMap::new();
        let principals = model_types(schema.principals_for_action(action));
        let resources = model_types(schema.resources_for_action(action));
        for &p in &principals {
            for &r in &resources {
                let mut set = PolicySet::new();
                for policy in policies.policies() {
                    if can_apply(policy, action, &groups, p.cedar(), r.cedar()) {
                        // Ids are unique in the full set, so adding cannot fail.
                        let _ = set.add(policy.clone());
                    }
                }
                by_types.insert((p, r), set);
            }
        }
        plans.insert(
            name.clone(),
            ActionPlan {
                policies: by_types,
                entities,
                context: contexts.of_action(&name),
            },
        );
    }
    plans
}

fn model_types<'a>(types: Option<impl Iterator<Item = &'a EntityTypeName>>) -> Vec<EntityType> {
    types
        .into_iter()
        .flatten()
        .filter_map(EntityType::from_cedar)
        .collect()
}

/// The action groups `action` is in, transitively (`all`: the schema's
/// action entities).
pub(crate) fn groups_of(all: &Entities, action: &EntityUid) -> Vec<EntityUid> {
    all.ancestors(action)
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

/// Whether `policy`'s scope can hold for `action` (a member of `groups`)
/// with a principal of type `principal` and a resource of type `resource`.
/// Only constraints that name a type or an action rule a policy out; `in` an
/// entity is kept (it may be equality or ancestry).
pub(crate) fn can_apply(
    policy: &cedar_policy::Policy,
    action: &EntityUid,
    groups: &[EntityUid],
    principal: &EntityTypeName,
    resource: &EntityTypeName,
) -> bool {
    let action_ok = match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => a == *action,
        ActionConstraint::In(list) => list.iter().any(|a| a == action || groups.contains(a)),
    };
    let principal_ok = match policy.principal_constraint() {
        PrincipalConstraint::Is(t) | PrincipalConstraint::IsIn(t, _) => t == *principal,
        PrincipalConstraint::Eq(uid) => uid.type_name() == principal,
        PrincipalConstraint::Any | PrincipalConstraint::In(_) => true,
    };
    let resource_ok = match policy.resource_constraint() {
        ResourceConstraint::Is(t) | ResourceConstraint::IsIn(t, _) => t == *resource,
        ResourceConstraint::Eq(uid) => uid.type_name() == resource,
        ResourceConstraint::Any | ResourceConstraint::In(_) => true,
    };
    action_ok && principal_ok && resource_ok
}

/// The context types of the model's namespace, read from the schema's JSON form.
struct ContextTypes {
    common: Map<String, Value>,
    actions: Map<String, Value>,
}

impl ContextTypes {
    fn new(schema_json: &[Value]) -> Self {
        let mut common = Map::new();
        let mut actions = Map::new();
        for fragment in schema_json {
            if let Some(ns) = fragment.get(NAMESPACE) {
                for (key, into) in [("commonTypes", &mut common), ("actions", &mut actions)] {
                    if let Some(Value::Object(items)) = ns.get(key) {
                        into.extend(items.clone());
                    }
                }
            }
        }
        ContextTypes { common, actions }
    }

    fn of_action(&self, action: &str) -> Option<ContextShape> {
        let context = self.actions.get(action)?.get("appliesTo")?.get("context")?;
        let record = match context.get("type")?.as_str()? {
            "Record" => context,
            name => self.common.get(common_name(context, name)?)?,
        };
        if record.get("type")?.as_str()? != "Record" {
            return None;
        }
        let attributes = record.get("attributes")?.as_object()?;
        let fields = attributes
            .iter()
            .map(|(name, ty)| Some((name.clone(), self.kind(ty)?)))
            .collect::<Option<_>>()?;
        let required = attributes
            .iter()
            .filter(|(_, ty)| ty.get("required").and_then(Value::as_bool) != Some(false))
            .map(|(name, _)| name.clone())
            .collect();
        Some(ContextShape { fields, required })
    }

    fn kind(&self, ty: &Value) -> Option<FieldKind> {
        let tag = ty.get("type")?.as_str()?;
        let name = ty.get("name").and_then(Value::as_str);
        match (tag, name) {
            ("String", _) => Some(FieldKind::String),
            ("Long", _) => Some(FieldKind::Long),
            ("Boolean", _) => Some(FieldKind::Bool),
            ("Extension", Some(ext)) => extension(ext),
            // A name that is not a common type of ours: a primitive or an
            // extension (the schema loader refuses shadowing names).
            ("EntityOrCommon", Some(n)) if !self.common.contains_key(n) => match n {
                "String" => Some(FieldKind::String),
                "Long" => Some(FieldKind::Long),
                "Bool" => Some(FieldKind::Bool),
                ext => extension(ext),
            },
            ("Set", _) => match self.kind(ty.get("element")?)? {
                FieldKind::String => Some(FieldKind::StringSet),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The common type a context refers to: `{"type": "Name"}` or
/// `{"type": "EntityOrCommon", "name": "Name"}`.
fn common_name<'v>(context: &'v Value, tag: &'v str) -> Option<&'v str> {
    match tag {
        "EntityOrCommon" => context.get("name")?.as_str(),
        name => Some(name),
    }
}

fn extension(name: &str) -> Option<FieldKind> {
    match name {
        "decimal" => Some(FieldKind::Decimal),
        "datetime" => Some(FieldKind::Datetime),
        "duration" => Some(FieldKind::Duration),
        "ipaddr" => Some(FieldKind::IpAddr),
        _ => None,
    }
}

/// `entities` plus those of `more` it does not hold yet (the action
/// entities a decision needs); borrowed when nothing is missing.
pub(crate) fn with_missing<'a, 'b>(
    entities: &'a Entities,
    more: impl IntoIterator<Item = &'b Entity>,
) -> Result<Cow<'a, Entities>, String> {
    let missing: Vec<Entity> = more
        .into_iter()
        .filter(|e| entities.get(&e.uid()).is_none())
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(Cow::Borrowed(entities));
    }
    entities
        .clone()
        .add_entities(missing, None)
        .map(Cow::Owned)
        .map_err(|e| super::describe(&e))
}
