//! `policy who-can` and `POST /v1/who-can`: the principals (operators,
//! customers, sessions) that may do an action on one resource, worked out
//! from the policies rather than by deciding for everyone. For each
//! principal type the action takes, the policies are partially evaluated
//! with the resource known and the principal unknown
//! ([`PolicyEngine::principal_residuals`]); what is left is compiled into a
//! filter over the principal rows that the store runs, exactly as a list's
//! items are found (`crate::filter`). A residual form without a filter falls
//! back as a list does: the candidates of a superset filter are decided one
//! by one (exact, slower).
//!
//! Each allowed principal comes with its determining policies, as a decision
//! would give them (every permit that holds): the permits that hold for
//! every principal of its type, and each residual permit whose own filter
//! matches it.
//!
//! The entities and the candidates' decisions come through the authorizer,
//! as an administrator's question: nothing of live traffic's is changed.

use super::explain::PartialAnswer;
use super::DeterminingPolicy;
use crate::authorizer::{Asker, AuthorizeError, Authorizer, Question};
use crate::entities::EntityError;
use crate::filter::{Filter, ListScope};
use crate::policy::partial::Residuals;
use crate::policy::residual_filter;
use crate::policy::{AccessRequest, Asked, PolicyEngine};
use crate::refs::{EntityRef, EntityType};
use crate::store::filter_sql as sql;
use crate::store::StoreError;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// The answer to "who may do `action` on `resource`?".
#[derive(Clone, Debug, Serialize)]
pub struct WhoCan {
    pub action: String,
    pub resource: String,
    /// The context Cedar saw (`now` and `source_ip` filled in).
    pub context: Map<String, Value>,
    pub policy_version: String,
    /// Every allowed principal, by type (operators, customers, sessions),
    /// then id.
    pub principals: Vec<Allowed>,
    /// How the allowed principals of each type were found.
    pub by_type: Vec<TypeAnswer>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Allowed {
    pub principal: String,
    /// The permits that allow it, in file order.
    pub determining: Vec<DeterminingPolicy>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TypeAnswer {
    pub principal_type: String,
    #[serde(flatten)]
    pub answer: PartialAnswer,
}

#[derive(Debug, thiserror::Error)]
pub enum WhoCanError {
    /// The resource does not exist; `known` holds the first ids of its type
    /// that do, of `total`.
    #[error("no {resource} exists; {}", known_ids(.known, *.total))]
    NoSuchResource {
        resource: EntityRef,
        known: Vec<String>,
        total: usize,
    },
    #[error(transparent)]
    Entities(#[from] EntityError),
    #[error(transparent)]
    Authorize(#[from] AuthorizeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Filter(#[from] sql::SqlError),
}

/// How many ids an unknown resource's error names.
const KNOWN_SHOWN: usize = 20;

fn known_ids(known: &[String], total: usize) -> String {
    match (known.len(), total) {
        (_, 0) => "there is none of its type".to_owned(),
        (n, t) if n < t => format!(
            "the ids of its type are: {}, ... ({t} in all)",
            known.join(", ")
        ),
        _ => format!("the ids of its type are: {}", known.join(", ")),
    }
}

/// Who may do `action` on `resource` under `context` (`now` and
/// `source_ip` default to the current time and 127.0.0.1). The question is
/// checked first ([`super::question::check`]).
pub async fn who_can(
    authorizer: &Authorizer,
    engine: &PolicyEngine,
    action: &str,
    resource: &EntityRef,
    context: Map<String, Value>,
) -> Result<WhoCan, WhoCanError> {
    let asked = Asked::live(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let context = AccessRequest::new(resource.clone(), action, resource.clone(), context)
        .asked(&asked)
        .context;
    let loader = &authorizer.entities;
    let pool = loader.store().pool();
    // The resource's own slice: what it is, what it is in.
    let Some(entities) = loader.principal_slice(engine, resource, &[]).await? else {
        let mut known = ids(pool, &Filter::True, resource.kind()).await?;
        let total = known.len();
        known.truncate(KNOWN_SHOWN);
        return Err(WhoCanError::NoSuchResource {
            resource: resource.clone(),
            known,
            total,
        });
    };
    let mut out = WhoCan {
        action: action.to_owned(),
        resource: resource.to_string(),
        context,
        policy_version: engine.version().to_owned(),
        principals: Vec::new(),
        by_type: Vec::new(),
    };
    // The question each candidate of a fallback is asked (`decided` puts
    // the candidate in `principal`).
    let question = Question {
        engine,
        principal: resource,
        sessions: &[],
        action,
        context: out.context.clone(),
        asked: &asked,
        asker: Asker::Admin,
    };
    for ty in principal_types(engine, action) {
        let residuals =
            match engine.principal_residuals(ty, action, resource, &out.context, &entities) {
                Ok(r) => r,
                Err(e) => {
                    // Fail closed: nobody of this type, and say why.
                    out.by_type.push(TypeAnswer {
                        principal_type: ty.to_string(),
                        answer: PartialAnswer {
                            decision: "none",
                            errors: vec![e],
                            ..PartialAnswer::default()
                        },
                    });
                    continue;
                }
            };
        let (mut answer, scope) = PartialAnswer::of(engine, &residuals, ty);
        let allowed = match scope {
            ListScope::Filter(f) => match by_permit(&residuals, ty, &f) {
                Ok(filters) => filtered(pool, ty, &f, &residuals.satisfied, filters).await?,
                Err(why) => {
                    answer.item_by_item.push(why);
                    decided(authorizer, &question, resource, ty, &f).await?
                }
            },
            ListScope::Candidates(f) => decided(authorizer, &question, resource, ty, &f).await?,
            ListScope::Decided { .. } => Vec::new(),
        };
        out.principals.extend(allowed.into_iter().map(|(id, why)| {
            Allowed {
                principal: ty.entity(id).to_string(),
                determining: in_file_order(engine, why)
                    .iter()
                    .map(|id| DeterminingPolicy::of(engine, id))
                    .collect(),
            }
        }));
        out.by_type.push(TypeAnswer {
            principal_type: ty.to_string(),
            answer,
        });
    }
    Ok(out)
}

/// The principal types the schema gives `action`, in the model's order.
fn principal_types(engine: &PolicyEngine, action: &str) -> Vec<EntityType> {
    let mut types: Vec<EntityType> = engine
        .schema()
        .principals_for_action(&PolicyEngine::action_uid(action))
        .into_iter()
        .flatten()
        .filter_map(EntityType::from_cedar)
        .collect();
    types.sort();
    types
}

/// Each residual permit's own exact filter (with an SQL form), to tell
/// which permits hold for which principal; why not, when one has none.
fn by_permit(
    residuals: &Residuals,
    ty: EntityType,
    allowed: &Filter,
) -> Result<Vec<(String, Filter)>, String> {
    residuals
        .permits
        .iter()
        .map(|p| {
            let alone = Residuals {
                over: residuals.over,
                permits: vec![p.clone()],
                ancestors: residuals.ancestors.clone(),
                ..Residuals::default()
            };
            let exact = residual_filter::compile(&alone, ty)
                .exact
                .map(|f| Filter::and(vec![f, allowed.clone()]))
                .ok_or_else(|| format!("permit {} alone has no filter form", p.id))?;
            sql::check(&exact, ty).map_err(|e| format!("permit {}: {e}", p.id))?;
            Ok((p.id.clone(), exact))
        })
        .collect()
}

/// The principals `allowed` matches, each with the permits that hold for
/// it: `satisfied` (for every principal) and those whose filter matches it.
async fn filtered(
    pool: &sqlx::AnyPool,
    ty: EntityType,
    allowed: &Filter,
    satisfied: &[String],
    permits: Vec<(String, Filter)>,
) -> Result<Vec<(String, Vec<String>)>, WhoCanError> {
    let mut found: Vec<(String, Vec<String>)> = ids(pool, allowed, ty)
        .await?
        .into_iter()
        .map(|id| (id, satisfied.to_vec()))
        .collect();
    let index: HashMap<String, usize> = found
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.clone(), i))
        .collect();
    for (permit, f) in permits {
        for id in ids(pool, &f, ty).await? {
            if let Some(&i) = index.get(&id) {
                found[i].1.push(permit.clone());
            }
        }
    }
    Ok(found)
}

/// The candidates `superset` matches, each decided (the fallback for a
/// residual without a filter form), with the determining policies.
async fn decided(
    authorizer: &Authorizer,
    question: &Question<'_>,
    resource: &EntityRef,
    ty: EntityType,
    superset: &Filter,
) -> Result<Vec<(String, Vec<String>)>, WhoCanError> {
    let mut allowed = Vec::new();
    for id in ids(authorizer.entities.store().pool(), superset, ty).await? {
        let principal = ty.entity(id.clone());
        let asking = Question {
            principal: &principal,
            context: question.context.clone(),
            ..*question
        };
        // A candidate gone since the query is denied, as unknown.
        let decision = authorizer.decide(&asking, resource).await?;
        if decision.allow {
            allowed.push((id, decision.determining));
        }
    }
    Ok(allowed)
}

/// `ids` without repeats, in the policies' file order.
fn in_file_order(engine: &PolicyEngine, ids: Vec<String>) -> Vec<String> {
    engine
        .policies()
        .iter()
        .filter(|p| ids.contains(&p.id))
        .map(|p| p.id.clone())
        .collect()
}

/// The ids of the rows of `ty`'s table that `filter` matches, in id order.
async fn ids(
    pool: &sqlx::AnyPool,
    filter: &Filter,
    ty: EntityType,
) -> Result<Vec<String>, WhoCanError> {
    let rows = sql::matching(filter, ty)?;
    Ok(sql::ids(pool, rows, None).await.map_err(StoreError::from)?)
}

impl std::fmt::Display for WhoCan {
    /// The text `policy who-can` prints: one allowed principal a line with
    /// the policies that allow it, then how each principal type was answered;
    /// alternate (`{:#}`, `--residuals`) with each type's residual policies,
    /// filter and SQL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "who can:   {} on {}", self.action, self.resource)?;
        writeln!(f, "context:   {}", Value::Object(self.context.clone()))?;
        writeln!(f, "policies:  version {}", self.policy_version)?;
        writeln!(f, "allowed:   {} principal(s)", self.principals.len())?;
        let width = self
            .principals
            .iter()
            .map(|p| p.principal.len())
            .max()
            .unwrap_or(0);
        for p in &self.principals {
            let why: Vec<String> = p
                .determining
                .iter()
                .map(|d| format!("{} {} ({}:{})", d.effect, d.id, d.file, d.line))
                .collect();
            writeln!(f, "  {:width$}  {}", p.principal, why.join("; "))?;
        }
        for t in &self.by_type {
            let how = match t.answer.decision {
                "all" => "ALL: every one is allowed",
                "none" => "NONE: not one can be allowed",
                _ if t.answer.filter.is_some() && t.answer.item_by_item.is_empty() => {
                    "FILTER: the ones listed above, those a filter over their attributes matches"
                }
                _ => "DECIDED one by one among the candidates",
            };
            writeln!(f, "{}s: {how}", t.principal_type)?;
            if f.alternate() {
                write!(f, "{}", t.answer)?;
            }
        }
        if !f.alternate() {
            writeln!(
                f,
                "(--residuals: how each type was worked out, with its filter and SQL)"
            )?;
        }
        Ok(())
    }
}
