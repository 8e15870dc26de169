//! Shadow policies (`--shadow-policies DIR`): a second policy set, validated
//! against the same schema, evaluated on every decision the live set takes,
//! on the same request and the same entity slice, and never deciding
//! anything. Each disagreement (one allows, the other denies) is logged
//! (target `shadow`) with both decisions and their determining policies, and
//! counted (`pgw_shadow_disagreements_total`). This is how a team tries a
//! change on real traffic before switching it on.
//!
//! The slice is the one built for the live set's schema: both sets read the
//! same `--schema`, so they agree on it except for the moment between a
//! schema change and a reload of the shadow set that fails on it; then the
//! shadow set may report errors (a deny), which shows as disagreements.

use super::{AccessRequest, Decision, PolicyEngine};
use crate::recent::Recent;
use cedar_policy::Entities;

/// The `tracing` target of disagreement records.
pub const SHADOW_TARGET: &str = "shadow";

/// Evaluates `shadow` on what `live` just decided; logs and counts a
/// disagreement. Returns the shadow decision (for explain).
pub fn compare(
    shadow: &PolicyEngine,
    live_engine: &PolicyEngine,
    request: &AccessRequest,
    entities: &Entities,
    live: &Decision,
    kept: &Recent,
) -> Decision {
    let shadowed = shadow.decide(request, entities);
    crate::metrics::shadow_decision(&request.action, live.allow, shadowed.allow);
    if shadowed.allow != live.allow {
        disagreement(
            request,
            &request.resource.to_string(),
            (live_engine, live),
            (shadow, &shadowed),
            kept,
        );
    }
    shadowed
}

/// Logs a disagreement (target `shadow`) and keeps it in `kept`, the
/// console's buffer.
fn disagreement(
    request: &AccessRequest,
    resource: &str,
    (live_engine, live): (&PolicyEngine, &Decision),
    (shadow, shadowed): (&PolicyEngine, &Decision),
    kept: &Recent,
) {
    let text = |allow: bool| if allow { "allow" } else { "deny" };
    tracing::info!(
        target: SHADOW_TARGET,
        principal = %request.principal,
        action = %request.action,
        resource,
        live = text(live.allow),
        live_determining = %live.determining.join(","),
        live_errors = %live.errors.join("; "),
        live_version = live_engine.version(),
        shadow = text(shadowed.allow),
        shadow_determining = %shadowed.determining.join(","),
        shadow_errors = %shadowed.errors.join("; "),
        shadow_version = shadow.version(),
        "shadow policies disagree"
    );
    kept.push(serde_json::json!({
        "ts": crate::time::format(crate::time::now()),
        "principal": request.principal.to_string(),
        "action": request.action,
        "resource": resource,
        "live": {"decision": text(live.allow), "determining": live.determining, "errors": live.errors, "version": live_engine.version()},
        "shadow": {"decision": text(shadowed.allow), "determining": shadowed.determining, "errors": shadowed.errors, "version": shadow.version()},
    }));
}

/// A list question as the live set answered it: may `principal` do
/// `action` on the items of type `item`.
pub struct ListQuestion<'a> {
    pub live: &'a PolicyEngine,
    pub principal: &'a super::EntityRef,
    pub action: &'a str,
    pub item: super::EntityType,
    pub context: &'a serde_json::Map<String, serde_json::Value>,
    pub entities: &'a Entities,
}

/// [`compare`] for a list question (every item of `item` at once): the two
/// sets disagree when one would deny the whole list and the other not.
/// Item-level differences show where the list falls back to deciding items
/// one by one, and in `policy diff`.
pub fn compare_list(
    shadow: &PolicyEngine,
    question: ListQuestion<'_>,
    live: &Decision,
    kept: &Recent,
) -> Decision {
    let ListQuestion {
        live: live_engine,
        principal,
        action,
        item,
        context,
        entities,
    } = question;
    let request = AccessRequest::new(
        principal.clone(),
        action,
        principal.clone(),
        context.clone(),
    );
    let shadowed = shadow
        .residuals(principal, action, item, context, entities)
        .map_or_else(Decision::failed, |r| r.list_decision());
    crate::metrics::shadow_decision(action, live.allow, shadowed.allow);
    if shadowed.allow != live.allow {
        disagreement(
            &request,
            &format!("{item}::*"),
            (live_engine, live),
            (shadow, &shadowed),
            kept,
        );
    }
    shadowed
}
