//! The console: plain HTML, CSS and JS embedded in the binary (no build
//! step), served at `/console` behind the admin gate, and the JSON it reads
//! under `/console/api/`: recent decisions with their determining policies
//! (`file:line` and text), shadow disagreements, live sessions (and ending
//! one), the policy sets' status, one partner's relationship graph. The
//! explain form posts to `/v1/explain`.

use super::Admin;
use crate::api_error::{codes, ApiError};
use crate::ids::PartnerId;
use crate::policy::PolicyEngine;
use crate::refs::EntityRef;
use crate::store::query::{Bind, Where};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");

pub(super) fn routes() -> Router<Admin> {
    Router::new()
        .route("/console", get(|| page(INDEX, "text/html; charset=utf-8")))
        .route(
            "/console/app.js",
            get(|| page(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/console/app.css",
            get(|| page(STYLE, "text/css; charset=utf-8")),
        )
        .route("/console/api/status", get(status))
        .route("/console/api/decisions", get(decisions))
        .route("/console/api/shadow", get(shadow))
        .route("/console/api/policies", get(policies))
        .route("/console/api/fleet", get(fleet))
        .route("/console/api/sessions", get(sessions))
        .route("/console/api/sessions/{id}/end", post(end_session))
        .route("/console/api/partners", get(partners))
        .route("/console/api/graph", get(graph))
}

async fn page(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Only our own script and style; never framed (clickjacking).
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
}

fn unavailable(e: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "console: cannot read the store");
    ApiError::unavailable("cannot read the store")
}

async fn status(State(admin): State<Admin>) -> Json<Value> {
    Json(json!({
        "policies": admin.reloader.live.status(),
        "shadow_policies": admin.reloader.shadow().map(|s| s.status()),
    }))
}

/// Every policy of the live set with how many live decisions it has
/// determined since the set began serving (a policy at 0 decided nothing).
async fn policies(State(admin): State<Admin>) -> Json<Value> {
    let engine = admin.reloader.live.engine.load();
    let policies: Vec<Value> = engine
        .determined()
        .map(|(p, decisions)| {
            json!({
                "id": p.id,
                "effect": if p.effect == cedar_policy::Effect::Permit { "permit" } else { "forbid" },
                "location": p.location(),
                "comment": p.comment,
                "determined": decisions,
            })
        })
        .collect();
    Json(json!({ "version": engine.version(), "policies": policies }))
}

/// The fleet: what every gateway on this database reports it serves, and
/// the publications, the latest first.
async fn fleet(State(admin): State<Admin>) -> Result<Json<Value>, ApiError> {
    let gateways = admin.store.fleet().await.map_err(|e| unavailable(&e))?;
    let publications = admin
        .store
        .publications()
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Json(json!({
        "instance": &*admin.instance,
        "gateways": gateways,
        "publications": publications.iter().take(20).map(crate::policy_tools::publish::summary).collect::<Vec<_>>(),
    })))
}

/// A determining policy as the console shows it: where it is and its text.
fn policy_detail(engine: &PolicyEngine, id: &str) -> Value {
    let text = engine
        .policy_set()
        .policies()
        .find(|p| p.annotation("id") == Some(id) || p.id().to_string() == id)
        .map(|p| p.to_string());
    match engine.policy(id) {
        Some(p) => json!({"id": id, "location": p.location(), "text": text}),
        None => json!({"id": id, "location": null, "text": text}),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionFilter {
    /// The `X-Request-Id` support was given (exact).
    request_id: Option<String>,
    principal: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    /// `allow`, `deny` or `none`.
    decision: Option<String>,
}

/// Whether `field` of `entry` contains `wanted` (case-insensitive; a list
/// matches when any item does). An empty filter matches everything.
fn matches(entry: &Value, field: &str, wanted: &Option<String>) -> bool {
    let Some(wanted) = wanted.as_deref().map(str::trim).filter(|w| !w.is_empty()) else {
        return true;
    };
    let wanted = wanted.to_lowercase();
    let has = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.to_lowercase().contains(&wanted))
    };
    match &entry[field] {
        Value::Array(items) => items.iter().any(has),
        v => has(v),
    }
}

/// The most recent decisions first, filtered; determining policies of the
/// set serving now are shown with their place and text (a decision by an
/// earlier set keeps its ids only).
async fn decisions(
    State(admin): State<Admin>,
    Query(filter): Query<DecisionFilter>,
) -> Result<Json<Value>, ApiError> {
    if let Some(d) = filter.decision.as_deref().filter(|d| !d.is_empty()) {
        if !["allow", "deny", "none"].contains(&d) {
            return Err(ApiError::parameter(
                "invalid parameter decision: allow, deny or none",
            ));
        }
    }
    let engine = admin.gateway.authorizer.policies.load_full();
    let shown: Vec<Value> = admin
        .gateway
        .recent_decisions
        .newest_first()
        .into_iter()
        .filter(|e| {
            filter
                .request_id
                .as_deref()
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .is_none_or(|id| e["request_id"] == id)
                && matches(e, "principal", &filter.principal)
                && matches(e, "action", &filter.action)
                && matches(e, "resources", &filter.resource)
                && filter
                    .decision
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .is_none_or(|d| e["decision"] == d)
        })
        .take(200)
        .map(|mut e| {
            if e["policy_version"] == engine.version() {
                let ids: Vec<String> = e["determining"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                e["determining"] = ids.iter().map(|id| policy_detail(&engine, id)).collect();
            }
            e
        })
        .collect();
    Ok(Json(json!({ "decisions": shown })))
}

async fn shadow(State(admin): State<Admin>) -> Json<Value> {
    Json(json!({
        "configured": admin.gateway.authorizer.shadow.is_set(),
        "disagreements": admin.gateway.authorizer.shadow.disagreements().newest_first(),
    }))
}

/// Sessions neither ended nor expired, newest first.
async fn live_sessions(
    admin: &Admin,
) -> Result<Vec<crate::store::sessions::SessionRecord>, ApiError> {
    let mut w = Where::new();
    w.raw("s.ended_at IS NULL");
    w.cmp(
        "s.expires_at",
        ">",
        Bind::Text(crate::time::format(crate::time::now())),
    );
    admin
        .store
        .sessions_where(&w)
        .await
        .map_err(|e| unavailable(&e))
}

fn session_json(s: &crate::store::sessions::SessionRecord) -> Value {
    json!({
        "id": s.id.0,
        "operator": s.operator.0,
        "partner": s.partner.0,
        "customer": s.customer.0,
        "scopes": s.scopes.iter().map(|x| x.as_str()).collect::<Vec<_>>(),
        "created_at": crate::time::format(s.created_at),
        "expires_at": crate::time::format(s.expires_at),
    })
}

async fn sessions(State(admin): State<Admin>) -> Result<Json<Value>, ApiError> {
    let live = live_sessions(&admin).await?;
    Ok(Json(json!({
        "sessions": live.iter().map(session_json).collect::<Vec<_>>()
    })))
}

/// Ends a session as its operator's switch-back does (recorded in the
/// customer's activity), and drops it from the caches: its credentials are
/// refused from the next request on.
async fn end_session(
    State(admin): State<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let session = admin
        .store
        .session(&id.as_str().into())
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                format!("invalid parameter id: no session {id}"),
            )
        })?;
    let ended = admin
        .store
        .end_session(
            &session,
            crate::store::sessions::EndReason::EndedByAdmin,
            crate::time::now(),
        )
        .await
        .map_err(|e| unavailable(&e))?;
    admin
        .gateway
        .authorizer
        .entities
        .invalidate(&EntityRef::Session(session.id.0.as_str().into()));
    if ended {
        tracing::info!(target: "session", session = %session.id, reason = "ended from the console", "session ended");
    }
    Ok(Json(json!({"id": session.id.0, "ended": ended})))
}

async fn partners(State(admin): State<Admin>) -> Result<Json<Value>, ApiError> {
    let all = admin.store.partners().await.map_err(|e| unavailable(&e))?;
    let list: Vec<Value> = all
        .iter()
        .map(|p| json!({"id": p.id.as_str(), "name": p.name, "kind": p.kind.as_str(), "distributor": p.distributor.as_ref().map(|d| d.as_str())}))
        .collect();
    Ok(Json(json!({ "partners": list })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphQuery {
    partner: String,
}

/// One partner's relationship graph: the partner, its resellers (for a
/// distributor, with their grants), each one's customers with their
/// authorizations and live sessions.
async fn graph(
    State(admin): State<Admin>,
    Query(q): Query<GraphQuery>,
) -> Result<Json<Value>, ApiError> {
    let store = &admin.store;
    let id = PartnerId::from(q.partner.as_str());
    let partner = store
        .partner(&id)
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or_else(|| {
            ApiError::parameter(format!(
                "invalid parameter partner: no partner {}",
                q.partner
            ))
        })?;
    let now = crate::time::now();
    let live = live_sessions(&admin).await?;
    let mut partners = vec![partner.clone()];
    partners.extend(store.resellers_of(&id).await.map_err(|e| unavailable(&e))?);
    let mut nodes = Vec::new();
    for p in &partners {
        let mut customers = Vec::new();
        for c in store
            .customers_of(&p.id)
            .await
            .map_err(|e| unavailable(&e))?
        {
            let authorizations: Vec<Value> = store
                .authorizations_of(&c.id)
                .await
                .map_err(|e| unavailable(&e))?
                .iter()
                // `expired` as the API's authorization views say it: the
                // stored status stays, past its expiry it grants nothing.
                .map(|a| json!({"id": a.id.as_str(), "partner": a.partner.as_str(), "status": a.status.as_str(), "expired": a.expires_at <= now, "scopes": a.scopes.iter().map(|x| x.as_str()).collect::<Vec<_>>(), "expires_at": crate::time::format(a.expires_at)}))
                .collect();
            let sessions: Vec<Value> = live
                .iter()
                .filter(|s| s.customer == c.id)
                .map(session_json)
                .collect();
            customers.push(json!({
                "id": c.id.as_str(),
                "name": c.name,
                "association": c.association.as_str(),
                "frozen": c.frozen,
                "account_manager": c.account_manager.as_ref().map(|m| m.as_str()),
                "authorizations": authorizations,
                "sessions": sessions,
            }));
        }
        nodes.push(json!({
            "id": p.id.as_str(),
            "name": p.name,
            "kind": p.kind.as_str(),
            "grants": (p.distributor.is_some()).then(|| json!({
                "budget": p.grants.budget, "freeze": p.grants.freeze, "on_behalf": p.grants.on_behalf,
            })),
            "customers": customers,
        }));
    }
    Ok(Json(json!({
        "partner": partner.id.as_str(),
        "partners": nodes,
    })))
}
