//! Stage 4, authorize: every target the request names is decided with the
//! operation's action (all must be allowed; a batch names the denied ids),
//! and a list's items become a filter from the policies (`crate::filter`).
//! An unknown resource is denied exactly like a forbidden one, and any error
//! while deciding denies (fail closed).

use super::{Call, Gateway, GatewayError};
use crate::api_error::ApiError;
use crate::audit::DecisionRecord;
use crate::caller::Caller;
use crate::catalog::ListOf;
use crate::entities::Slice;
use crate::filter::{self, sql, Filter, ListScope};
use crate::model::SessionFacts;
use crate::policy::partial::Residuals;
use crate::policy::{AccessRequest, Asked, Decision, PolicyEngine};
use crate::refs::{EntityRef, EntityType};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::Mutex;

/// What the policies allowed for one request.
#[derive(Clone, Debug, Default)]
pub(super) struct Decided {
    /// The targets, every one allowed, in the request's order.
    pub targets: Vec<EntityRef>,
    /// A list's items.
    pub list: Option<ListScope>,
    /// For a search by a masked contact field: the customers it may match.
    pub searchable: Option<Filter>,
}

/// The most items one list may be decided for one by one and named to the
/// store (the ids travel in the assertion header).
const MAX_DECIDED_IDS: usize = 5_000;

impl Gateway {
    pub(super) async fn authorize(
        &self,
        call: &Call<'_>,
        record: &mut DecisionRecord,
    ) -> Result<Decided, GatewayError> {
        let refs = call.caller.refs();
        let request = call.request.describe();
        // An operation on the caller's own account names none for an
        // operator: denied like anything out of reach.
        let targets = request.targets(&refs).map_err(|_| GatewayError::denied())?;
        if let Some(action) = call.operation.check {
            let context = request.context(&refs);
            let decided = self
                .decide_all(call, action, &targets, &context, record)
                .await;
            // What decided, in the record whichever way it went.
            record.context = (!context.is_empty()).then_some(context);
            decided?;
        }
        let mut decided = Decided {
            targets,
            ..Decided::default()
        };
        if let Some(of) = call.operation.list.filter(|_| request.lists()) {
            decided.list = Some(self.list_scope(call, of, record).await?);
            let fields = request.masked_search();
            if !fields.is_empty() {
                decided.searchable = Some(self.searchable(call, of.item, fields).await?);
            }
        }
        Ok(decided)
    }

    /// Decides every target; all must allow. A batch names the denied ids.
    async fn decide_all(
        &self,
        call: &Call<'_>,
        action: &'static str,
        targets: &[EntityRef],
        context: &Map<String, Value>,
        record: &mut DecisionRecord,
    ) -> Result<(), GatewayError> {
        let engine = &call.engine;
        let mut denied = Vec::new();
        for target in targets {
            let decision = self
                .decide(
                    engine,
                    &call.caller,
                    action,
                    target,
                    context.clone(),
                    &call.asked,
                )
                .await?;
            record.decision(action, target.to_string(), &decision, engine.version());
            if !decision.allow {
                denied.push((target.id().to_owned(), engine.denial(&decision)));
            }
        }
        match denied.as_slice() {
            [] => Ok(()),
            [(_, (code, msg))] if targets.len() == 1 => Err(GatewayError::Denied {
                code: code.clone(),
                msg: msg.clone(),
                details: None,
            }),
            _ => {
                let details: Vec<Value> = denied
                    .iter()
                    .map(
                        |(id, (code, msg))| json!({"id": id, "error_code": code, "error_msg": msg}),
                    )
                    .collect();
                let first = ApiError::denied();
                Err(GatewayError::Denied {
                    code: first.code,
                    msg: "Access denied for one or more of the listed ids; nothing was changed."
                        .into(),
                    details: Some(Value::Array(details)),
                })
            }
        }
    }

    /// One Cedar decision. An unknown principal or resource is a plain deny
    /// (no existence oracle); a failure to load entities is 503 (fail closed).
    pub(crate) async fn decide(
        &self,
        engine: &PolicyEngine,
        caller: &Caller,
        action: &str,
        resource: &EntityRef,
        context: Map<String, Value>,
        asked: &Asked,
    ) -> Result<Decision, GatewayError> {
        // The caller's session comes from authentication; any other session
        // the request names is read by the loader.
        let sessions: Vec<SessionFacts> = caller.session.iter().cloned().collect();
        let slice = self
            .entities
            .slice_records(engine, &caller.principal, resource, &sessions)
            .await
            .map_err(|e| GatewayError::Unavailable(format!("loading entities: {e}")))?;
        let denied = Decision {
            allow: false,
            determining: vec![],
            errors: vec![],
        };
        let Some(slice) = slice else {
            // Unknown: denied. The same question about a known resource of
            // the type is decided (or reused) and thrown away, so that this
            // answer takes as long as a real one (no timing oracle).
            let stand_in = self
                .entities
                .stand_in(engine, &caller.principal, resource, &sessions)
                .await
                .map_err(|e| GatewayError::Unavailable(format!("loading entities: {e}")))?;
            if let Some((stand_in, slice)) = stand_in {
                let request =
                    AccessRequest::new(caller.principal.clone(), action, stand_in, context)
                        .asked(asked);
                std::hint::black_box(self.decide_on(engine, &request, &slice, asked));
            }
            return Ok(denied);
        };
        let request =
            AccessRequest::new(caller.principal.clone(), action, resource.clone(), context)
                .asked(asked);
        let decision = self.decide_on(engine, &request, &slice, asked);
        if !decision.errors.is_empty() {
            crate::metrics::evaluation_error(action);
            tracing::error!(errors = ?decision.errors, action, resource = %resource, "policy evaluation failed; denied");
        }
        Ok(decision)
    }

    /// Decides `request` on `slice` (reused when it may be), compared with
    /// the shadow set when there is one. An entity slice that Cedar refuses
    /// is a deny with the reason.
    fn decide_on(
        &self,
        engine: &PolicyEngine,
        request: &AccessRequest,
        slice: &Slice,
        asked: &Asked,
    ) -> Decision {
        let evaluate = || match slice.entities() {
            Ok(entities) => {
                let decision = engine.decide(request, &entities);
                if let Some(shadow) = &self.shadow {
                    crate::policy::shadow::compare(
                        &shadow.load(),
                        engine,
                        request,
                        &entities,
                        &decision,
                    );
                }
                decision
            }
            Err(e) => Decision::failed(e.to_string()),
        };
        // The shadow set is compared on every decision: nothing is reused
        // then. A `now` the caller named is no moment of live traffic: its
        // decision neither comes from nor goes into the shared cache.
        if self.shadow.is_some() || asked.now_supplied {
            return evaluate();
        }
        self.decisions.decide(engine, request, slice, evaluate)
    }

    /// What the policies say about `action` on every item of type `item`
    /// (compared with the shadow set's answer, when there is one).
    async fn residuals(
        &self,
        call: &Call<'_>,
        action: &str,
        item: EntityType,
        context: Map<String, Value>,
    ) -> Result<Residuals, GatewayError> {
        let caller = &call.caller;
        let sessions: Vec<SessionFacts> = caller.session.iter().cloned().collect();
        let entities = self
            .entities
            .principal_slice(&call.engine, &caller.principal, &sessions)
            .await
            .map_err(|e| GatewayError::Unavailable(format!("loading entities: {e}")))?
            .ok_or_else(GatewayError::denied)?;
        // `now` and `source_ip`, as every decision gets them.
        let context = AccessRequest::new(
            caller.principal.clone(),
            action,
            caller.principal.clone(),
            context,
        )
        .asked(&call.asked)
        .context;
        let residuals = call
            .engine
            .residuals(&caller.principal, action, item, &context, &entities)
            .map_err(|e| {
                tracing::error!(error = %e, action, item = %item, "partial evaluation failed; denied");
                GatewayError::denied()
            })?;
        if let Some(shadow) = &self.shadow {
            let live = Decision {
                allow: residuals.decision != Some(false),
                determining: residuals.determining.clone(),
                errors: residuals.errors.clone(),
            };
            crate::policy::shadow::compare_list(
                &shadow.load(),
                &call.engine,
                &caller.principal,
                action,
                item,
                &context,
                &entities,
                &live,
            );
        }
        Ok(residuals)
    }

    /// The items of a list the caller may see: a filter the store runs, or,
    /// for a residual form the compiler does not know, a superset whose
    /// candidates the gateway then decides one by one.
    async fn list_scope(
        &self,
        call: &Call<'_>,
        of: ListOf,
        record: &mut DecisionRecord,
    ) -> Result<ListScope, GatewayError> {
        let engine = &call.engine;
        let residuals = self.residuals(call, of.action, of.item, Map::new()).await?;
        let decision = Decision {
            allow: residuals.decision != Some(false),
            determining: residuals.determining.clone(),
            errors: vec![],
        };
        record.decision(
            of.action,
            format!("{}::*", of.item),
            &decision,
            engine.version(),
        );
        if !decision.allow {
            // No item can be allowed: the list is denied as a whole.
            let (code, msg) = engine.denial(&decision);
            return Err(GatewayError::Denied {
                code,
                msg,
                details: None,
            });
        }
        let (scope, why) = filter::scope(&residuals, of.item);
        if matches!(scope, ListScope::Candidates(_)) {
            fallback_noted(engine.version(), of, &why.join("; "));
        }
        Ok(scope)
    }

    /// The customers whose masked `fields` the caller may reveal (R2): a
    /// search by those fields matches only them. A reveal rule the compiler
    /// cannot turn into a filter refuses the search rather than guess.
    async fn searchable(
        &self,
        call: &Call<'_>,
        item: EntityType,
        fields: &[&str],
    ) -> Result<Filter, GatewayError> {
        let mut context = Map::new();
        context.insert("fields".into(), json!(fields));
        let residuals = self.residuals(call, "RevealContact", item, context).await?;
        match filter::compile(&residuals, item).exact {
            Some(f) if sql::check(&f, item).is_ok() => Ok(f),
            _ => Err(GatewayError::Api(ApiError::invalid(format!(
                "searching by {} is not available: it may match only customers whose {} you may reveal, and the policies' reveal rule has no filter form; search by account_name or customer_id",
                fields.join(", "),
                fields.join(", ")
            )))),
        }
    }

    /// Decides each candidate of a list the filter compiler could not
    /// express, and names the allowed ones of the page asked for.
    pub(super) async fn decide_candidates(
        &self,
        call: &Call<'_>,
        candidates: Vec<String>,
    ) -> Result<ListScope, GatewayError> {
        let of = call.operation.list.ok_or_else(|| {
            GatewayError::Internal("candidates for an operation with no list".into())
        })?;
        let mut allowed = Vec::new();
        for id in candidates {
            let decision = self
                .decide(
                    &call.engine,
                    &call.caller,
                    of.action,
                    &of.item.entity(id.clone()),
                    Map::new(),
                    &call.asked,
                )
                .await?;
            if decision.allow {
                allowed.push(id);
            }
        }
        let total = u64::try_from(allowed.len()).unwrap_or(u64::MAX);
        let ids: Vec<String> = match call.request.describe().paging() {
            Some(p) => allowed
                .into_iter()
                .skip(usize::try_from(p.offset).unwrap_or(usize::MAX))
                .take(usize::try_from(p.limit).unwrap_or(0))
                .collect(),
            None => allowed,
        };
        if ids.len() > MAX_DECIDED_IDS {
            return Err(GatewayError::Unavailable(format!(
                "{} items decided one by one exceed {MAX_DECIDED_IDS}; give the policies a form the list filter knows",
                ids.len()
            )));
        }
        Ok(ListScope::Decided { ids, total })
    }
}

/// Counts a list decided item by item and logs it once per policy version
/// and list action (the form that caused it does not change until the
/// policies do).
fn fallback_noted(version: &str, of: ListOf, why: &str) {
    static SEEN: Mutex<Option<HashSet<(String, &'static str)>>> = Mutex::new(None);
    crate::metrics::list_fallback(of.action);
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if seen
        .get_or_insert_with(HashSet::new)
        .insert((version.to_owned(), of.action))
    {
        tracing::warn!(
            action = of.action,
            item = %of.item,
            policy_version = version,
            reason = why,
            "a list's residual policies have no filter form; its items are decided one by one (exact, slower)"
        );
    }
}
