//! The OpenID AuthZEN Authorization API 1.0 on the admin listener, so other
//! services of a partner's estate can ask this decision point the standard
//! way. Subject and resource `type` are the model's entity types
//! (`Operator`, `Customer`, `Order`...), `action.name` an action of the
//! schema, `context` that action's context (`now` defaulting to the current
//! time, `source_ip` to 127.0.0.1). Entity attributes come from the store,
//! never from the request: `properties` is accepted and ignored.
//!
//! Every decision is the gateway's own ([`Gateway::decide`]: same engine,
//! same entity loader, shadow comparison) and writes a decision record; a
//! resource search is the list filter of the gateway's lists (residual
//! policies compiled to SQL, or each candidate decided where the compiler
//! has no form), so it holds exactly what the list routes hold.

use super::Admin;
use crate::api_error::ApiError;
use crate::audit::{DecidedOn, DecisionRecord, RequestId};
use crate::authorizer::{Asker, AuthorizeError, ListAnswer, Question as Asking};
use crate::catalog::ListOf;
use crate::filter::{Filter, ListScope};
use crate::policy::{Asked, Decision, PolicyEngine};
use crate::refs::{EntityRef, EntityType, NAMESPACE};
use crate::store::filter_sql as sql;
use crate::verify::question;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

pub const EVALUATION: &str = "/access/v1/evaluation";
pub const EVALUATIONS: &str = "/access/v1/evaluations";
pub const SEARCH_RESOURCE: &str = "/access/v1/search/resource";
pub const SEARCH_SUBJECT: &str = "/access/v1/search/subject";

/// A batch holds at most this many evaluations: each is decided and
/// recorded, so a larger one is refused (400) before any is.
pub const MAX_EVALUATIONS: usize = 1_000;

/// `evaluations`, refused while it is read as soon as it holds more than
/// [`MAX_EVALUATIONS`]: the items past the cap are never built.
fn at_most_max_evaluations<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<Question>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<Question>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_EVALUATIONS} evaluations")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                if items.len() == MAX_EVALUATIONS {
                    return Err(serde::de::Error::custom(format!(
                        "at most {MAX_EVALUATIONS} evaluations in one request"
                    )));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    d.deserialize_seq(Bounded)
}

/// A search page holds at most this many results (default 100).
const MAX_PAGE: i64 = 1000;
/// The most candidates a search decides one by one (as the gateway's lists).
const MAX_DECIDED: usize = 5_000;
/// Answers are decided as if asked from here unless `context.source_ip` says otherwise.
const SOURCE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

pub(super) fn routes() -> Router<Admin> {
    Router::new()
        .route("/.well-known/authzen-configuration", get(configuration))
        .route(EVALUATION, post(evaluation))
        .route(EVALUATIONS, post(evaluations))
        .route(SEARCH_RESOURCE, post(search_resource))
        .route(SEARCH_SUBJECT, post(search_subject))
}

#[derive(Clone, Debug, Deserialize)]
struct Entity {
    #[serde(rename = "type")]
    kind: String,
    /// Absent only where a search asks for it.
    id: Option<String>,
    // `properties` (and any extension field) is ignored: the store's
    // attributes decide.
}

#[derive(Clone, Debug, Deserialize)]
struct Action {
    name: String,
}

/// One question; in a batch, any part may come from the defaults.
#[derive(Clone, Debug, Default, Deserialize)]
struct Question {
    subject: Option<Entity>,
    action: Option<Action>,
    resource: Option<Entity>,
    context: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct Batch {
    #[serde(flatten)]
    defaults: Question,
    #[serde(default, deserialize_with = "at_most_max_evaluations")]
    evaluations: Vec<Question>,
    #[serde(default)]
    options: Options,
}

#[derive(Debug, Default, Deserialize)]
struct Options {
    #[serde(default)]
    evaluations_semantic: Semantic,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Semantic {
    #[default]
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

#[derive(Debug, Deserialize)]
struct Search {
    subject: Entity,
    action: Action,
    resource: Entity,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    page: Page,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Page {
    /// The `next_token` of the previous page (the offset, opaque to clients).
    token: Option<String>,
    limit: Option<i64>,
}

/// A question checked against the model, ready to decide.
struct Checked {
    subject: EntityRef,
    action: &'static str,
    resource: EntityRef,
    context: Map<String, Value>,
    asked: Asked,
}

/// When a question with `context` is asked: at the `now` it names (within
/// the bound [`question::supplied_now`] sets, else 400 naming the field),
/// or now.
fn asked(at: &str, context: &Map<String, Value>) -> Result<Asked, ApiError> {
    let supplied = question::supplied_now(context).map_err(|r| {
        ApiError::parameter(format!("invalid parameter {at}{}: {}", r.field, r.message))
    })?;
    Ok(Asked::at(supplied, SOURCE.ip()))
}

fn required<T: Clone>(field: &str, own: &Option<T>, default: &Option<T>) -> Result<T, ApiError> {
    own.as_ref()
        .or(default.as_ref())
        .cloned()
        .ok_or_else(|| ApiError::parameter(format!("invalid parameter {field}: required")))
}

/// An entity reference of the model; `principal` asks for a type that can
/// be a request's principal.
fn entity_ref(field: &str, e: &Entity, principal: bool) -> Result<EntityRef, ApiError> {
    let kind = entity_type(field, &e.kind, principal)?;
    match e.id.as_deref() {
        Some(id) if !id.is_empty() => Ok(kind.entity(id)),
        _ => Err(ApiError::parameter(format!(
            "invalid parameter {field}.id: required"
        ))),
    }
}

fn entity_type(field: &str, name: &str, principal: bool) -> Result<EntityType, ApiError> {
    let kind = EntityType::parse(name).ok_or_else(|| {
        ApiError::parameter(format!(
            "invalid parameter {field}.type: {} is not an entity type of the model ({})",
            ApiError::echo(name),
            EntityType::ALL.map(|t| t.name()).join(", ")
        ))
    })?;
    let principals = [
        EntityType::Operator,
        EntityType::Customer,
        EntityType::Session,
    ];
    if principal && !principals.contains(&kind) {
        return Err(ApiError::parameter(format!(
            "invalid parameter {field}.type: a subject is an Operator, a Customer or a Session"
        )));
    }
    Ok(kind)
}

/// The action named `name`: one the gateway asks (the catalog's, with the
/// `'static` name decision records carry), which the schema declares.
fn action(engine: &PolicyEngine, field: &str, name: &str) -> Result<&'static str, ApiError> {
    let declared = engine
        .schema()
        .actions()
        .any(|a| a.type_name().namespace() == NAMESPACE && a.id().unescaped() == name);
    match crate::catalog::action_named(name) {
        Some(action) if declared => Ok(action),
        _ => Err(ApiError::parameter(format!(
            "invalid parameter {field}.name: {} is not an action of the schema",
            ApiError::echo(name)
        ))),
    }
}

fn check(
    engine: &PolicyEngine,
    at: &str,
    q: &Question,
    defaults: &Question,
) -> Result<Checked, ApiError> {
    let subject = required(&format!("{at}subject"), &q.subject, &defaults.subject)?;
    let act = required(&format!("{at}action"), &q.action, &defaults.action)?;
    let resource = required(&format!("{at}resource"), &q.resource, &defaults.resource)?;
    let context = q
        .context
        .clone()
        .or_else(|| defaults.context.clone())
        .unwrap_or_default();
    Ok(Checked {
        subject: entity_ref(&format!("{at}subject"), &subject, true)?,
        action: action(engine, &format!("{at}action"), &act.name)?,
        resource: entity_ref(&format!("{at}resource"), &resource, false)?,
        asked: asked(at, &context)?,
        context,
    })
}

fn unavailable(e: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "authzen: cannot decide");
    ApiError::unavailable("cannot decide now: the entities could not be loaded")
}

/// No decision: 503 when the entities could not be read, else denied.
fn refused(e: AuthorizeError) -> ApiError {
    match e {
        AuthorizeError::Unavailable(_) => unavailable(&e),
        AuthorizeError::Failed(_) | AuthorizeError::Unknown => ApiError::denied(),
    }
}

/// One decision, the gateway's, with its decision record.
async fn decide(
    admin: &Admin,
    engine: &PolicyEngine,
    q: &Checked,
    request_id: RequestId,
    route: &'static str,
) -> Result<Decision, ApiError> {
    let started = Instant::now();
    let mut record = DecisionRecord::new(request_id, http::Method::POST, route);
    record.route = Some(route);
    record.principal = Some(q.subject.clone());
    record.asked(&q.asked);
    // A session subject is read by the entity loader, as authentication
    // reads it (an ended or expired one is denied by the policies).
    let question = Asking {
        engine,
        principal: &q.subject,
        sessions: &[],
        asker: Asker::Traffic,
        action: q.action,
        context: q.context.clone(),
        asked: &q.asked,
    };
    let decided = admin
        .gateway
        .authorizer
        .decide(&question, &q.resource)
        .await;
    record.decision_latency = Some(started.elapsed());
    let decision = match decided {
        Ok(d) => d,
        Err(e) => {
            let e = refused(e);
            admin
                .gateway
                .keep_record(record, e.status.as_u16(), started.elapsed());
            return Err(e);
        }
    };
    record.decision(
        q.action,
        DecidedOn::One(q.resource.clone()),
        decision.clone(),
        engine.shared_version(),
    );
    admin.gateway.keep_record(record, 200, started.elapsed());
    Ok(decision)
}

fn answer(decision: &Decision, engine: &PolicyEngine, request_id: RequestId) -> Value {
    json!({
        "decision": decision.allow,
        "context": {
            "id": request_id.as_str(),
            "reason_admin": {
                "policy_version": engine.version(),
                "determining": decision.determining,
                "errors": decision.errors,
            },
        },
    })
}

fn new_id() -> RequestId {
    RequestId::random()
}

async fn evaluation(
    State(admin): State<Admin>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let q: Question = crate::catalog::fields::json(&body)?;
    let engine = admin.gateway.authorizer.policies.load_full();
    let checked = check(&engine, "", &q, &Question::default())?;
    let id = new_id();
    let decision = decide(&admin, &engine, &checked, id, EVALUATION).await?;
    Ok(Json(answer(&decision, &engine, id)))
}

/// A batch: every question is checked before any is decided (a malformed
/// one names its index), all by one policy set, answers in request order.
async fn evaluations(
    State(admin): State<Admin>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let batch: Batch = crate::catalog::fields::json(&body)?;
    let engine = admin.gateway.authorizer.policies.load_full();
    let id = new_id();
    // Without `evaluations`, it is one evaluation and answered as one.
    if batch.evaluations.is_empty() {
        let checked = check(&engine, "", &batch.defaults, &Question::default())?;
        let decision = decide(&admin, &engine, &checked, id, EVALUATIONS).await?;
        return Ok(Json(answer(&decision, &engine, id)));
    }
    let checked = batch
        .evaluations
        .iter()
        .enumerate()
        .map(|(i, q)| check(&engine, &format!("evaluations[{i}]."), q, &batch.defaults))
        .collect::<Result<Vec<_>, _>>()?;
    let semantic = batch.options.evaluations_semantic;
    let mut answers = Vec::with_capacity(checked.len());
    for (i, q) in checked.iter().enumerate() {
        let item_id = id.item(i);
        let decision = decide(&admin, &engine, q, item_id, EVALUATIONS).await?;
        answers.push(answer(&decision, &engine, item_id));
        let stop = match semantic {
            Semantic::ExecuteAll => false,
            Semantic::DenyOnFirstDeny => !decision.allow,
            Semantic::PermitOnFirstPermit => decision.allow,
        };
        if stop {
            break;
        }
    }
    Ok(Json(json!({ "evaluations": answers })))
}

/// `offset` and `limit` of a search page (who-can's too).
pub(super) fn paging(page: &Page) -> Result<(i64, i64), ApiError> {
    let offset = match &page.token {
        None => 0,
        Some(t) if t.is_empty() => 0,
        Some(t) => t.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::parameter("invalid parameter page.token: not a token this PDP gave")
        })?,
    };
    let limit = page.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::parameter(format!(
            "invalid parameter page.limit: 1..={MAX_PAGE}"
        )));
    }
    Ok((offset, limit))
}

fn page_answer(kind: EntityType, ids: Vec<String>, offset: i64, total: i64) -> Value {
    let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
    let results: Vec<Value> = ids
        .into_iter()
        .map(|id| json!({"type": kind.name(), "id": id}))
        .collect();
    json!({
        "results": results,
        "page": page_of_total(offset, count, total),
    })
}

/// A page's `page` member, as AuthZEN defines it: the token of the next
/// page (`""` on the last), how many this page holds, and of how many.
pub(super) fn page_of_total(offset: i64, count: i64, total: i64) -> Value {
    let next = offset + count;
    json!({
        "next_token": if next < total { next.to_string() } else { String::new() },
        "count": count,
        "total": total,
    })
}

/// Ids of `item`'s table under `filter`, ordered by id: one page (`None`: all).
async fn ids_where(
    admin: &Admin,
    filter: &Filter,
    item: EntityType,
    page: Option<(i64, i64)>,
) -> Result<(Vec<String>, i64), ApiError> {
    let (w, from) = sql::matching(filter, item).map_err(|e| unavailable(&e))?;
    let pool = admin.store.pool();
    let total = w.count(pool, &from).await.map_err(|e| unavailable(&e))?;
    let paging = page.map(|(offset, limit)| crate::catalog::fields::Paging { offset, limit });
    let ids = sql::ids(pool, (w, from), paging)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok((ids, total))
}

/// Which resources of a type the subject may act on: the gateway's list
/// filter over the item's table (exact), or, for a residual form without
/// one, each candidate decided.
async fn search_resource(
    State(admin): State<Admin>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let s: Search = crate::catalog::fields::json(&body)?;
    let engine = admin.gateway.authorizer.policies.load_full();
    let subject = entity_ref("subject", &s.subject, true)?;
    let act = action(&engine, "action", &s.action.name)?;
    let item = entity_type("resource", &s.resource.kind, false)?;
    let (offset, limit) = paging(&s.page)?;
    let asked = asked("", &s.context)?;
    let id = new_id();
    let started = Instant::now();
    let mut record = DecisionRecord::new(id, http::Method::POST, SEARCH_RESOURCE);
    record.route = Some(SEARCH_RESOURCE);
    record.principal = Some(subject.clone());
    record.asked(&asked);

    let question = Asking {
        engine: &engine,
        principal: &subject,
        sessions: &[],
        asker: Asker::Traffic,
        action: act,
        context: s.context,
        asked: &asked,
    };
    let of = ListOf { action: act, item };
    // The gateway's list answer; an unknown subject, or policies that
    // cannot be evaluated over every item, may do nothing.
    let listed = match admin.gateway.authorizer.list_scope(&question, of).await {
        Ok(listed) => listed,
        Err(AuthorizeError::Failed(why)) => ListAnswer {
            decision: Decision::failed(why),
            scope: None,
        },
        Err(e @ AuthorizeError::Unknown) => ListAnswer {
            decision: Decision::failed(e.to_string()),
            scope: None,
        },
        Err(e) => return Err(refused(e)),
    };
    record.decision(
        act,
        DecidedOn::Every(item),
        listed.decision,
        engine.shared_version(),
    );
    let answer = match listed.scope {
        None => page_answer(item, vec![], offset, 0),
        Some(ListScope::Filter(f)) => {
            let (ids, total) = ids_where(&admin, &f, item, Some((offset, limit))).await?;
            page_answer(item, ids, offset, total)
        }
        // `list_scope` gives a filter or candidates; nothing decided yet.
        Some(scope) => {
            let superset = match scope {
                ListScope::Candidates(f) => f,
                _ => Filter::True,
            };
            let (candidates, _) = ids_where(&admin, &superset, item, None).await?;
            let allowed = allowed_of(&admin, &question, item, candidates).await?;
            page_of(item, allowed, offset, limit)
        }
    };
    admin.gateway.keep_record(record, 200, started.elapsed());
    Ok(Json(answer))
}

fn page_of(kind: EntityType, all: Vec<String>, offset: i64, limit: i64) -> Value {
    let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
    let ids = all
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .collect();
    page_answer(kind, ids, offset, total)
}

/// The candidates whose single decision of `question` (its action and
/// context, each candidate the resource) allows, bounded as the gateway's
/// item-by-item lists are.
async fn allowed_of(
    admin: &Admin,
    question: &Asking<'_>,
    item: EntityType,
    candidates: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    if candidates.len() > MAX_DECIDED {
        return Err(ApiError::unavailable(format!(
            "{} candidates exceed the {MAX_DECIDED} a search decides one by one",
            candidates.len()
        )));
    }
    admin
        .gateway
        .authorizer
        .allowed(question, item, candidates)
        .await
        .map_err(refused)
}

/// Which subjects of a type may do the action on one resource: every
/// subject of that type decided (the policies have no filter form over an
/// unknown principal), so it answers up to the bound the lists have.
async fn search_subject(
    State(admin): State<Admin>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let s: Search = crate::catalog::fields::json(&body)?;
    let engine = admin.gateway.authorizer.policies.load_full();
    let kind = entity_type("subject", &s.subject.kind, true)?;
    let act = action(&engine, "action", &s.action.name)?;
    let resource = entity_ref("resource", &s.resource, false)?;
    let (offset, limit) = paging(&s.page)?;
    let asked = asked("", &s.context)?;
    let id = new_id();
    let started = Instant::now();
    let (candidates, _) = ids_where(&admin, &Filter::True, kind, None).await?;
    if candidates.len() > MAX_DECIDED {
        return Err(ApiError::unavailable(format!(
            "{} subjects exceed the {MAX_DECIDED} a subject search decides",
            candidates.len()
        )));
    }
    let mut allowed = Vec::new();
    for (i, subject_id) in candidates.into_iter().enumerate() {
        let q = Checked {
            subject: kind.entity(subject_id.clone()),
            action: act,
            resource: resource.clone(),
            context: s.context.clone(),
            asked,
        };
        if decide(&admin, &engine, &q, id.item(i), SEARCH_SUBJECT)
            .await?
            .allow
        {
            allowed.push(subject_id);
        }
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "authzen subject search"
    );
    Ok(Json(page_of(kind, allowed, offset, limit)))
}

/// `GET /.well-known/authzen-configuration`: the endpoints, under the
/// address the caller reached (the gate has checked it names this listener).
async fn configuration(headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let base = format!("http://{host}");
    Json(json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}{EVALUATION}"),
        "access_evaluations_endpoint": format!("{base}{EVALUATIONS}"),
        "search_subject_endpoint": format!("{base}{SEARCH_SUBJECT}"),
        "search_resource_endpoint": format!("{base}{SEARCH_RESOURCE}"),
    }))
}
