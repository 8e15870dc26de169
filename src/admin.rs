//! The admin listener (loopback by default; off loopback it needs a bearer
//! token, and every request passes [`guard`] first: Host, token, JSON-only
//! POSTs):
//!
//! - `GET /healthz`: the process is alive.
//! - `GET /readyz`: database readable and writable and upstream reachable,
//!   200 or 503, with details:
//!   the policy set serving (version, count, when loaded), the last reload and
//!   the last reload error while the files on disk do not load (the last good
//!   set keeps serving, so a bad edit does not make the gateway unready), and
//!   the same for the shadow set.
//! - `GET /metrics`: Prometheus text format (`crate::metrics`).
//! - `POST /v1/explain`: one decision explained with live data.
//! - `POST /v1/who-can`: the principals allowed an action on one resource.
//! - AuthZEN 1.0 ([`authzen`]) and the console at `/console` ([`console`]).

mod authzen;
mod console;
mod guard;

use crate::api_error::ApiError;
use crate::config::AdminAccess;
use crate::gateway::Gateway;
use crate::policy::AccessRequest;
use crate::policy_tools::reload::PolicyReloader;
use crate::policy_tools::who_can::WhoCanError;
use crate::refs::EntityRef;
use crate::store::Store;
use crate::verify::question::{self, Refusal};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

#[derive(Clone)]
struct Admin {
    gateway: Arc<Gateway>,
    store: Store,
    reloader: Arc<PolicyReloader>,
    /// This gateway's name in the fleet status.
    instance: Arc<str>,
    cache_reported: Arc<crate::metrics::CacheReported>,
}

/// The admin routes behind the gate; `local` is the listener's bound address.
pub fn router(
    gateway: Arc<Gateway>,
    store: Store,
    reloader: Arc<PolicyReloader>,
    instance: &str,
    access: AdminAccess,
    local: std::net::SocketAddr,
) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({"status": "alive"})) }),
        )
        .route("/readyz", get(readiness))
        .route("/metrics", get(metrics))
        .route("/v1/explain", post(explain))
        .route("/v1/who-can", post(who_can))
        .merge(authzen::routes())
        .merge(console::routes())
        // In the API's error format, as everything else the listener answers.
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::not_found() })
        .with_state(Admin {
            gateway,
            store,
            reloader,
            instance: instance.into(),
            cache_reported: Default::default(),
        })
        .layer(axum::middleware::from_fn_with_state(
            guard::Gate::new(access, local),
            guard::check,
        ))
}

/// `GET /readyz`: 200 or 503; without the token (an orchestrator's probe)
/// the status alone, with it the details.
async fn readiness(
    State(admin): State<Admin>,
    axum::Extension(presented): axum::Extension<guard::TokenPresented>,
) -> (StatusCode, Json<Value>) {
    let database = admin.store.check_read_write().await;
    let upstream = admin.gateway.upstream.reachable().await;
    let ready = database.is_ok() && upstream;
    let mut body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "policies": admin.reloader.live.status(),
        "database": match &database { Ok(()) => json!({"reachable": true, "writable": true}), Err(e) => json!({"reachable": false, "error": e.to_string()}) },
        "upstream": {"reachable": upstream, "url": admin.gateway.upstream.base()},
    });
    if let Some(shadow) = admin.reloader.shadow() {
        body["shadow_policies"] = shadow.status();
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !presented.0 {
        body = json!({"status": body["status"]});
    }
    (status, Json(body))
}

async fn metrics(State(admin): State<Admin>) -> Response {
    // Sessions also end by expiring, which no event announces: count at scrape time.
    match admin.store.count_live_sessions(crate::time::now()).await {
        Ok(n) => crate::metrics::set_live_sessions(n.max(0) as u64),
        Err(e) => tracing::warn!(error = %e, "cannot count live sessions for /metrics"),
    }
    let (entities, decisions) = (
        admin.gateway.authorizer.entities.stats(),
        admin.gateway.authorizer.decisions.stats(),
    );
    let counts = crate::metrics::CacheCounts {
        entity_hits: entities.hits,
        entity_misses: entities.misses,
        entity_entries: entities.entries,
        entity_bytes: entities.bytes,
        built_entries: entities.built_entries,
        built_bytes: entities.built_bytes,
        decisions_reused: decisions.reused,
        decisions_taken: decisions.taken,
        decision_entries: decisions.entries,
        decision_bytes: decisions.bytes,
    };
    match crate::metrics::render(counts, &admin.cache_reported) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render /metrics");
            ApiError::unavailable("the metrics cannot be rendered now").into_response()
        }
    }
}

/// `POST /v1/explain`: references are `Type::"id"` (namespace optional);
/// `context` holds the action's context fields, `now` defaulting to the
/// current time and `source_ip` to 127.0.0.1. A session named as principal
/// or resource is read from the store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainBody {
    principal: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: Map<String, Value>,
}

/// `POST /v1/explain` with a resource type and no id: which items the list
/// holds, the residual policies and the filter they became.
async fn explain_list(
    admin: &Admin,
    principal: EntityRef,
    action: String,
    item: crate::refs::EntityType,
    context: Map<String, Value>,
) -> Result<Json<Value>, ApiError> {
    // The cause goes to the log only: it names rows and their references.
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "explain: cannot load the entities");
        ApiError::unavailable("cannot load the entities")
    };
    let mut request = AccessRequest::new(
        principal.clone(),
        action.clone(),
        principal.clone(),
        context,
    );
    request.fill_context(crate::time::now(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    let live = admin.gateway.authorizer.policies.load_full();
    let explained = crate::policy_tools::explain::explain_list(
        &admin.gateway.authorizer,
        &live,
        &principal,
        &action,
        item,
        request.context,
        // A session the question names is read by the entity loader.
        &[],
    )
    .await
    .map_err(|e| unavailable(&e))?;
    Ok(Json(
        serde_json::to_value(&explained).map_err(|e| unavailable(&e))?,
    ))
}

async fn explain(
    State(admin): State<Admin>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ExplainBody = crate::catalog::fields::json(&body)?;
    let parse = |field: &str, text: &str| {
        EntityRef::parse(text).map_err(|e| format!("invalid parameter {field}: {}", e.reason))
    };
    let principal = parse("principal", &body.principal).map_err(ApiError::parameter)?;
    // A type alone (`Customer`) asks the list question.
    let target = match crate::refs::EntityType::parse(&body.resource) {
        Some(item) => Err(item),
        None => Ok(parse("resource", &body.resource).map_err(ApiError::parameter)?),
    };
    // The checks of `policy explain`: a question naming nothing real is
    // refused (400), never answered with a deny.
    let live = admin.gateway.authorizer.policies.load_full();
    let resource_type = match &target {
        Ok(r) => r.kind(),
        Err(item) => *item,
    };
    question::check(
        &live,
        Some(principal.kind()),
        &body.action,
        resource_type,
        &body.context,
    )
    .map_err(refused)?;
    let resource = match target {
        Ok(resource) => resource,
        Err(item) => return explain_list(&admin, principal, body.action, item, body.context).await,
    };
    // The cause goes to the log only: it names rows and their references.
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "explain: {what}");
        ApiError::unavailable(what)
    };
    let mut request = AccessRequest::new(principal, body.action, resource, body.context);
    request.fill_context(crate::time::now(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (explanation, shadowed) = crate::policy_tools::explain::explain(
        &admin.gateway.authorizer,
        &live,
        &request,
        &[], // a session the question names is read by the entity loader
    )
    .await
    .map_err(|e| unavailable("cannot load the entities", &e))?;
    let mut answer =
        serde_json::to_value(&explanation).map_err(|e| unavailable("cannot encode", &e))?;
    if let Some(shadowed) = shadowed {
        answer["shadow"] =
            serde_json::to_value(&shadowed).map_err(|e| unavailable("cannot encode", &e))?;
    }
    Ok(Json(answer))
}

/// A refused question: 400 naming the field and what is valid.
fn refused(r: Refusal) -> ApiError {
    ApiError::parameter(format!("invalid parameter {}: {}", r.field, r.message))
}

/// `POST /v1/who-can`: `{"action", "resource", "context", "page"}`
/// (`context` as for `/v1/explain`, `page` as AuthZEN's searches: `limit`
/// 1..=1000, default 100, and the `token` of the last answer); the
/// principals allowed, as `policy who-can --json` prints them, one page of
/// them at a time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WhoCanBody {
    action: String,
    resource: String,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    page: authzen::Page,
}

async fn who_can(
    State(admin): State<Admin>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: WhoCanBody = crate::catalog::fields::json(&body)?;
    let (offset, limit) = authzen::paging(&body.page)?;
    let resource = EntityRef::parse(&body.resource)
        .map_err(|e| ApiError::parameter(format!("invalid parameter resource: {}", e.reason)))?;
    let live = admin.gateway.authorizer.policies.load_full();
    question::check(&live, None, &body.action, resource.kind(), &body.context).map_err(refused)?;
    let answer = crate::policy_tools::who_can::who_can(
        &admin.gateway.authorizer,
        &live,
        &body.action,
        &resource,
        body.context,
    )
    .await;
    // The cause goes to the log only.
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "who-can: cannot read the principals");
        ApiError::unavailable("cannot read the principals")
    };
    match answer {
        Ok(mut answer) => {
            let total = i64::try_from(answer.principals.len()).unwrap_or(i64::MAX);
            answer.principals = answer
                .principals
                .into_iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(usize::try_from(limit).unwrap_or(0))
                .collect();
            let count = i64::try_from(answer.principals.len()).unwrap_or(i64::MAX);
            let mut value = serde_json::to_value(&answer).map_err(|e| unavailable(&e))?;
            value["page"] = authzen::page_of_total(offset, count, total);
            Ok(Json(value))
        }
        Err(e @ WhoCanError::NoSuchResource { .. }) => Err(ApiError::parameter(format!(
            "invalid parameter resource: {e}"
        ))),
        Err(e) => Err(unavailable(&e)),
    }
}
