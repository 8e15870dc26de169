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
) -> Decision {
    let shadowed = shadow.decide(request, entities);
    crate::metrics::shadow_decision(&request.action, live.allow, shadowed.allow);
    if shadowed.allow != live.allow {
        let text = |allow: bool| if allow { "allow" } else { "deny" };
        tracing::info!(
            target: SHADOW_TARGET,
            principal = %request.principal,
            action = %request.action,
            resource = %request.resource,
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
    }
    shadowed
}
