//! The policies asked about every entity of a type at once: type-aware
//! partial evaluation (Cedar's TPE) with one side of the request unknown.
//! A list asks with the principal, action and context known and the
//! resource unknown; `who-can` asks with the resource known and the
//! principal unknown. What is left are residual policies over the unknown
//! side, which `crate::filter` turns into a filter the store runs; a
//! decision that holds for every entity of the type comes out as such.

use super::{describe, plan, EntityRef, EntityType, PolicyEngine};
use cedar_policy::{
    pst, Context, Decision as CedarDecision, Entities, PartialEntities, PartialEntityUid,
    PartialRequest, PolicyId,
};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// One residual policy: its id and the condition left over the unknown
/// side of the request.
#[derive(Clone, Debug)]
pub struct Residual {
    pub id: String,
    pub condition: Arc<pst::Expr>,
    /// The residual policy as Cedar text, for explaining a list.
    pub text: String,
}

/// Which side of a request a partial evaluation left unknown: the items of
/// a list are resources; the answer to `who-can` are principals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unknown {
    #[default]
    Resource,
    Principal,
}

/// What the policies say about "may the principal do the action on an item
/// of this type" ([`crate::policy::PolicyEngine::residuals`]), or "which
/// principals of this type may do it on the resource"
/// ([`crate::policy::PolicyEngine::principal_residuals`]). The unknown
/// entity is the "item" below.
#[derive(Clone, Debug, Default)]
pub struct Residuals {
    pub over: Unknown,
    /// `Some(true)`: every item is allowed; `Some(false)`: none is (with the
    /// forbids that say so in `determining`, in file order); `None`: it
    /// depends on the item.
    pub decision: Option<bool>,
    pub determining: Vec<String>,
    /// The permits that hold for every item, in file order (when any does,
    /// only residual forbids remain to decide).
    pub satisfied: Vec<String>,
    pub permits: Vec<Residual>,
    pub forbids: Vec<Residual>,
    /// Policies whose evaluation fails whatever the item; any denies every
    /// decision (fail closed), so they are not compiled but reported.
    pub errors: Vec<String>,
    /// Each known entity and what it is `in`: a residual `known in
    /// item.attr` holds when the attribute is one of these (or the entity).
    pub ancestors: HashMap<EntityRef, Vec<EntityRef>>,
}

impl Residuals {
    /// What these residuals decide for a list as a whole: allowed when some
    /// item may be, denied (by `determining`) when none can.
    pub fn list_decision(&self) -> super::Decision {
        super::Decision {
            allow: self.decision != Some(false),
            determining: self.determining.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl PolicyEngine {
    /// Partially evaluates `action` for `principal` over every item of type
    /// `item`. `entities` is the principal's slice (the action's entities are
    /// added here); `context` the action's context without the item.
    pub fn residuals(
        &self,
        principal: &EntityRef,
        action: &str,
        item: EntityType,
        context: &Map<String, Value>,
        entities: &Entities,
    ) -> Result<Residuals, String> {
        self.partial(
            (
                PartialEntityUid::from_concrete(principal.uid()),
                principal.kind(),
            ),
            action,
            (PartialEntityUid::new(item.cedar().clone(), None), item),
            Unknown::Resource,
            context,
            entities,
        )
    }

    /// Partially evaluates `action` on `resource` for every principal of
    /// type `principal` (`who-can`). `entities` is the resource's slice.
    pub fn principal_residuals(
        &self,
        principal: EntityType,
        action: &str,
        resource: &EntityRef,
        context: &Map<String, Value>,
        entities: &Entities,
    ) -> Result<Residuals, String> {
        self.partial(
            (
                PartialEntityUid::new(principal.cedar().clone(), None),
                principal,
            ),
            action,
            (
                PartialEntityUid::from_concrete(resource.uid()),
                resource.kind(),
            ),
            Unknown::Principal,
            context,
            entities,
        )
    }

    /// The partial evaluation both questions share; `over` says which side
    /// of the request is unknown.
    fn partial(
        &self,
        (principal, principal_type): (PartialEntityUid, EntityType),
        action: &str,
        (resource, resource_type): (PartialEntityUid, EntityType),
        over: Unknown,
        context: &Map<String, Value>,
        entities: &Entities,
    ) -> Result<Residuals, String> {
        let plan = self.plans.get(action);
        let action_uid = Self::action_uid(action);
        let context = match plan.and_then(|p| p.context(context)) {
            Some(c) => c,
            None => Context::from_json_value(
                Value::Object(context.clone()),
                Some((&self.schema, &action_uid)),
            )
            .map_err(|e| {
                format!(
                    "context of {action} does not match the schema: {}",
                    describe(&e)
                )
            })?,
        };
        let request =
            PartialRequest::new(principal, action_uid, resource, Some(context), &self.schema)
                .map_err(|e| {
                    format!(
                        "the partial request does not match the schema: {}",
                        describe(&e)
                    )
                })?;
        // What a known entity is `in`, for a residual `known in unknown.attr`.
        let ancestors: HashMap<EntityRef, Vec<EntityRef>> = entities
            .iter()
            .filter_map(|e| {
                let known = EntityRef::from_uid(&e.uid())?;
                let above = entities
                    .ancestors(&e.uid())?
                    .filter_map(EntityRef::from_uid)
                    .collect();
                Some((known, above))
            })
            .collect();
        let entities = match plan {
            Some(p) => plan::with_missing(entities, p.entities())?,
            None => plan::with_missing(
                entities,
                self.schema
                    .action_entities()
                    .map_err(|e| describe(&e))?
                    .iter(),
            )?,
        };
        let partial = PartialEntities::from_concrete(entities.into_owned(), &self.schema)
            .map_err(|e| format!("the principal's entities: {}", describe(&e)))?;
        let policies = plan
            .and_then(|p| p.policies_for(principal_type, resource_type))
            .unwrap_or(&self.policies);
        let response = policies
            .tpe(&request, &partial, &self.schema)
            .map_err(|e| format!("partial evaluation failed: {}", describe(&e)))?;

        let residual = |id: &PolicyId| -> Result<Residual, String> {
            let policy = response
                .get_policy(id)
                .ok_or_else(|| format!("residual of {id} missing"))?;
            let text = policy.to_string();
            let pst = policy
                .to_pst()
                .map_err(|e| format!("residual of {id}: {e}"))?;
            let mut conditions = pst.body().clauses().iter().map(|c| match c {
                pst::Clause::When(e) => e.clone(),
                pst::Clause::Unless(e) => Arc::new(pst::Expr::UnaryOp {
                    op: pst::UnaryOp::Not,
                    expr: e.clone(),
                }),
            });
            let first = conditions
                .next()
                .unwrap_or_else(|| Arc::new(pst::Expr::Literal(pst::Literal::Bool(true))));
            let condition = conditions.fold(first, |acc, c| {
                Arc::new(pst::Expr::BinaryOp {
                    op: pst::BinaryOp::And,
                    left: acc,
                    right: c,
                })
            });
            Ok(Residual {
                id: id.to_string(),
                condition,
                text,
            })
        };
        let mut errors = self.in_file_order(response.error_permits());
        errors.extend(self.in_file_order(response.error_forbids()));
        let decision = response.decision().map(|d| d == CedarDecision::Allow);
        let determining = match decision {
            Some(_) => self.in_file_order(response.reason().into_iter().flatten()),
            None => Vec::new(),
        };
        let mut permits: Vec<&PolicyId> = response.residual_permits().collect();
        permits.sort_by_key(|id| self.position(id));
        let permits = permits
            .into_iter()
            .map(residual)
            .collect::<Result<_, _>>()?;
        let mut forbids: Vec<&PolicyId> = response.residual_forbids().collect();
        forbids.sort_by_key(|id| self.position(id));
        let forbids = forbids
            .into_iter()
            .map(residual)
            .collect::<Result<_, _>>()?;
        let satisfied = self.in_file_order(response.true_permits());
        Ok(Residuals {
            over,
            decision,
            determining,
            satisfied,
            permits,
            forbids,
            errors,
            ancestors,
        })
    }

    /// A policy's position in file order (unknown ids last).
    fn position(&self, id: &PolicyId) -> usize {
        self.index
            .get(id.as_ref() as &str)
            .copied()
            .unwrap_or(usize::MAX)
    }

    fn in_file_order<'p>(&self, ids: impl Iterator<Item = &'p PolicyId>) -> Vec<String> {
        let mut ids: Vec<&PolicyId> = ids.collect();
        ids.sort_by_key(|id| self.position(id));
        ids.into_iter().map(|id| id.to_string()).collect()
    }
}
