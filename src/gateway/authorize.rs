//! Stage 4, authorize: every target the request names is decided with the
//! operation's action (all must be allowed; a batch names the denied ids),
//! and a list's items become a filter from the policies (`crate::filter`),
//! all through the [`Authorizer`](crate::authorizer::Authorizer). An unknown
//! resource is denied exactly like a forbidden one, and any error while
//! deciding denies (fail closed).

use super::{Call, Gateway, GatewayError};
use crate::api_error::ApiError;
use crate::audit::{DecidedOn, DecisionRecord};
use crate::authorizer::{Asker, AuthorizeError, Question};
use crate::catalog::contact::REVEAL_CONTACT;
use crate::catalog::ListOf;
use crate::filter::{Filter, ListScope};
use crate::policy::residual_filter;
use crate::refs::{EntityRef, EntityType};
use crate::store::filter_sql as sql;
use serde_json::{json, Map, Value};

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

impl From<AuthorizeError> for GatewayError {
    fn from(e: AuthorizeError) -> Self {
        match e {
            AuthorizeError::Unavailable(_) => GatewayError::Unavailable(e.to_string()),
            // Logged where it happened; the caller sees a denial.
            AuthorizeError::Failed(_) | AuthorizeError::Unknown => GatewayError::denied(),
        }
    }
}

impl<'a> Call<'a> {
    /// `action` asked for this call's caller, with `context`.
    pub(super) fn question(&'a self, action: &'a str, context: Map<String, Value>) -> Question<'a> {
        Question {
            engine: &self.engine,
            principal: &self.caller.principal,
            // Read by authentication.
            sessions: self.caller.session.as_slice(),
            action,
            context,
            asked: &self.asked,
            asker: Asker::Traffic,
        }
    }
}

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
            decided.list = Some(Box::pin(self.list_scope(call, of, record)).await?);
            let fields = request.masked_search();
            if !fields.is_empty() {
                decided.searchable = Some(Box::pin(self.searchable(call, of.item, fields)).await?);
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
        let decided = self
            .authorizer
            .decide_each(
                &call.question(action, context.clone()),
                targets.iter().cloned(),
            )
            .await?;
        let mut denied = Vec::new();
        for (target, decision) in decided {
            if !decision.allow {
                denied.push((target.id().to_owned(), engine.denial(&decision)));
            }
            let version = engine.shared_version();
            record.decision(action, DecidedOn::One(target), decision, version);
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

    /// The items of a list the caller may see, in the record whichever way
    /// it went; denied as a whole when no item can be allowed.
    async fn list_scope(
        &self,
        call: &Call<'_>,
        of: ListOf,
        record: &mut DecisionRecord,
    ) -> Result<ListScope, GatewayError> {
        let engine = &call.engine;
        let answer = self
            .authorizer
            .list_scope(&call.question(of.action, Map::new()), of)
            .await?;
        record.decision(
            of.action,
            DecidedOn::Every(of.item),
            answer.decision.clone(),
            engine.shared_version(),
        );
        answer.scope.ok_or_else(|| {
            let (code, msg) = engine.denial(&answer.decision);
            GatewayError::Denied {
                code,
                msg,
                details: None,
            }
        })
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
        let residuals = self
            .authorizer
            .residuals(&call.question(REVEAL_CONTACT, context), item)
            .await?;
        match residual_filter::compile(&residuals, item).exact {
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
        let allowed = self
            .authorizer
            .allowed(&call.question(of.action, Map::new()), of.item, candidates)
            .await?;
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
