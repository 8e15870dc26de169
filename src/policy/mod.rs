//! The Cedar policy model at run time: loading and validating `policies/*.cedar`
//! against `schema/*.cedarschema`, and the pure decision the gateway asks for.
//!
//! Nothing here says who may do what: that is the policy files' job. This
//! module maps a request to Cedar, fails closed on anything Cedar could not
//! evaluate, and picks the denial body by the rule of `policies/README.md`.

pub(crate) mod extension;
pub(crate) mod load;
pub mod partial;
pub(crate) mod plan;
pub mod residual_filter;
mod reuse;
pub mod shadow;

use crate::refs::{EntityRef, EntityType, NAMESPACE};
pub use load::{LoadIssue, PolicyInfo, PolicyLoadError};

use crate::time::{self, Timestamp};
use cedar_policy::{
    Authorizer, Context, Effect, Entities, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    Schema,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::LazyLock;

/// The denial body when no forbid with `@error_code` determined the deny
/// (default deny, guardrails, errors): the same as for an unknown id.
pub const DEFAULT_DENIAL_CODE: &str = "CBC.0151";
pub const DEFAULT_DENIAL_MSG: &str = "Access denied.";

static ACTION_TYPE: LazyLock<EntityTypeName> = LazyLock::new(|| {
    EntityTypeName::from_str(&format!("{NAMESPACE}::Action")).expect("valid Cedar name")
});

/// What the gateway asks: may `principal` do `action` on `resource`?
///
/// `context` holds plain JSON typed by the schema (decimal, datetime and
/// ipaddr as strings), the extra fields of the action plus `now` and
/// `source_ip` (see [`AccessRequest::fill_context`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AccessRequest {
    pub principal: EntityRef,
    /// The action name alone, e.g. `SetBudget`.
    pub action: String,
    pub resource: EntityRef,
    pub context: Map<String, Value>,
}

impl AccessRequest {
    pub fn new(
        principal: EntityRef,
        action: impl Into<String>,
        resource: EntityRef,
        context: Map<String, Value>,
    ) -> AccessRequest {
        AccessRequest {
            principal,
            action: action.into(),
            resource,
            context,
        }
    }

    /// Sets `now` and `source_ip` where the context does not already hold them.
    pub fn fill_context(&mut self, now: Timestamp, source_ip: IpAddr) {
        self.context
            .entry("now")
            .or_insert_with(|| Value::String(time::format(now)));
        self.context
            .entry("source_ip")
            .or_insert_with(|| Value::String(source_ip.to_string()));
    }

    /// [`AccessRequest::fill_context`] as `asked` says.
    pub fn asked(mut self, asked: &Asked) -> AccessRequest {
        self.fill_context(asked.now, asked.source_ip);
        self
    }
}

/// When and from where a question is asked: the instant the policies read
/// as `context.now`, and whether it is the gateway's own clock or one the
/// caller named (AuthZEN, explain). Only the clock's decisions are shared
/// with live traffic through the decision cache: a caller's `now` is a
/// question about another moment, decided on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asked {
    pub now: Timestamp,
    pub now_supplied: bool,
    pub source_ip: IpAddr,
}

impl Asked {
    /// Asked now, by the gateway's clock.
    pub fn live(source_ip: IpAddr) -> Asked {
        Asked {
            now: time::now(),
            now_supplied: false,
            source_ip,
        }
    }

    /// Asked at the `context.now` the caller gave (checked with
    /// [`question::supplied_now`]), else now.
    pub fn at(supplied: Option<Timestamp>, source_ip: IpAddr) -> Asked {
        match supplied {
            Some(now) => Asked {
                now,
                now_supplied: true,
                source_ip,
            },
            None => Asked::live(source_ip),
        }
    }
}

/// The outcome of one decision. `allow` is true only when Cedar allowed and
/// nothing failed to evaluate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allow: bool,
    /// The policy ids that determined the outcome, in file order (file name,
    /// then position in the file).
    pub determining: Vec<String>,
    /// Everything that could not be evaluated; any entry means deny.
    pub errors: Vec<String>,
}

impl Decision {
    /// A deny that no policy produced: the request could not be put to Cedar.
    pub fn failed(error: impl Into<String>) -> Decision {
        Decision {
            allow: false,
            determining: Vec::new(),
            errors: vec![error.into()],
        }
    }
}

/// A validated policy set with its schema, ready to decide.
pub struct PolicyEngine {
    policies: PolicySet,
    schema: Schema,
    /// Every policy in file order.
    infos: Vec<PolicyInfo>,
    /// Policy id → position in `infos`.
    index: HashMap<String, usize>,
    /// Shared: every decision record names it.
    version: std::sync::Arc<str>,
    schema_digest: String,
    policies_dir: PathBuf,
    schema_dir: PathBuf,
    authorizer: Authorizer,
    /// Per action: the policies that can apply, its entities, its context types.
    plans: HashMap<String, plan::ActionPlan>,
    /// How the policies use time, for reused decisions.
    time_use: reuse::TimeUse,
    /// How many live decisions each policy (by position in `infos`) has
    /// determined since this set began serving: the console's coverage.
    determined: Vec<std::sync::atomic::AtomicU64>,
    /// Cedar contexts the plans built, by a digest of the action and the
    /// context's JSON, with their weight ([`PolicyEngine::planned_context`]).
    contexts: moka::sync::Cache<[u8; 32], (Context, u32)>,
}

/// The bytes of built contexts kept, as their JSON's length plus
/// [`CONTEXT_OVERHEAD`] counts them: about 2 000 contexts.
const CONTEXTS_BYTES: u64 = 1 << 20;
/// A built context's own weight beside its JSON (Cedar's map and values).
const CONTEXT_OVERHEAD: u32 = 384;

impl fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("policies_dir", &self.policies_dir)
            .field("schema_dir", &self.schema_dir)
            .field("policies", &self.infos.len())
            .field("version", &self.version)
            .finish()
    }
}

impl PolicyEngine {
    /// Loads every `*.cedar` of `policies_dir` (by file name) and the
    /// `*.cedarschema` files of `schema_dir`, and validates the policies
    /// strictly. Every problem found is reported, each with file and line.
    pub fn load(policies_dir: &Path, schema_dir: &Path) -> Result<PolicyEngine, PolicyLoadError> {
        let loaded = load::load(policies_dir, schema_dir)?;
        let plans = plan::plan_actions(&loaded.schema, &loaded.schema_json, &loaded.policies);
        let time_use = reuse::time_use(&loaded.policies);
        let loaded_count = loaded.infos.len();
        let index = loaded
            .infos
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        Ok(PolicyEngine {
            policies: loaded.policies,
            schema: loaded.schema,
            infos: loaded.infos,
            index,
            version: loaded.version.into(),
            schema_digest: loaded.schema_digest,
            policies_dir: policies_dir.to_owned(),
            schema_dir: schema_dir.to_owned(),
            authorizer: Authorizer::new(),
            determined: (0..loaded_count).map(|_| Default::default()).collect(),
            plans,
            time_use,
            contexts: moka::sync::Cache::builder()
                .max_capacity(CONTEXTS_BYTES)
                .weigher(|_, (_, weight): &(Context, u32)| *weight)
                .build(),
        })
    }

    /// A short content hash of the schema and policy files (sha256, hex), to
    /// record which policy version took a decision.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// [`PolicyEngine::version`], to keep without a copy.
    pub fn shared_version(&self) -> std::sync::Arc<str> {
        self.version.clone()
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// [`PolicyEngine::version`]'s hash over the schema files alone.
    pub fn schema_digest(&self) -> &str {
        &self.schema_digest
    }

    pub fn policy_set(&self) -> &PolicySet {
        &self.policies
    }

    /// Every policy, in file order.
    pub fn policies(&self) -> &[PolicyInfo] {
        &self.infos
    }

    pub fn policy(&self, id: &str) -> Option<&PolicyInfo> {
        self.index.get(id).map(|&i| &self.infos[i])
    }

    /// Counts a live decision for each of the policies that determined it.
    pub fn count_determining(&self, ids: &[String]) {
        for id in ids {
            if let Some(&i) = self.index.get(id) {
                self.determined[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Every policy, in file order, with how many live decisions it has
    /// determined since this set began serving.
    pub fn determined(&self) -> impl Iterator<Item = (&PolicyInfo, u64)> {
        self.infos.iter().zip(
            self.determined
                .iter()
                .map(|n| n.load(std::sync::atomic::Ordering::Relaxed)),
        )
    }

    pub fn policies_dir(&self) -> &Path {
        &self.policies_dir
    }

    pub fn schema_dir(&self) -> &Path {
        &self.schema_dir
    }

    /// The Cedar id of an action name such as `SetBudget`.
    pub fn action_uid(action: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ACTION_TYPE.clone(), EntityId::new(action))
    }

    /// Decides `request` over `entities` (the slice the entity loader built;
    /// the action's own entities are added here).
    ///
    /// Pure and fail closed: an unknown action, a context that does not match
    /// the action's context type, or any evaluation error denies. Cedar itself
    /// skips a policy that errors, so an erroring forbid would not deny.
    /// Whether a decision of `action` may be reused while its question and
    /// facts are unchanged (see `reuse`): then the instants of the policies'
    /// own `datetime` literals, at which it may change besides its entities'.
    /// `None` when the policies compute with time or the action's context
    /// holds an instant other than `now`.
    pub fn reusable(&self, action: &str) -> Option<&[Timestamp]> {
        let plan = self.plans.get(action)?;
        (!self.time_use.computes && plan.instant_is_only_now()).then_some(&self.time_use.literals)
    }

    /// The entities of `action` a decision needs besides its slice: the
    /// action's own and its groups'. A slice built with them
    /// ([`crate::entities::Slice::entities_for`]) is decided as it is, not
    /// copied to add them.
    pub fn action_entities(&self, action: &str) -> impl Iterator<Item = cedar_policy::Entity> + '_ {
        self.plans
            .get(action)
            .into_iter()
            .flat_map(|p| p.entities().cloned())
    }

    pub fn decide(&self, request: &AccessRequest, entities: &Entities) -> Decision {
        self.decide_with(request, entities, self.plans.get(&request.action))
    }

    /// [`PolicyEngine::decide`] the plain way: Cedar's JSON context
    /// conversion, every policy, every action entity of the schema. The
    /// policy test runner checks that it agrees with `decide` on every case.
    pub fn decide_unplanned(&self, request: &AccessRequest, entities: &Entities) -> Decision {
        let all = match self.schema.action_entities() {
            Ok(actions) => plan::with_missing(entities, actions.iter()),
            Err(e) => Err(describe(&e)),
        };
        match all {
            Ok(all) => self.decide_with(request, &all, None),
            Err(e) => Decision::failed(e),
        }
    }

    fn decide_with(
        &self,
        request: &AccessRequest,
        entities: &Entities,
        plan: Option<&plan::ActionPlan>,
    ) -> Decision {
        // An action the schema does not define for this principal type
        // (`appliesTo`) is never performed by it: a plain deny, as with no
        // permit, not an evaluation error (the caller chose the action, not
        // the gateway). Asked of the schema for planned and unplanned alike.
        if let Some(defined) = self.plans.get(&request.action) {
            if !defined.admits_principal(request.principal.kind()) {
                return Decision {
                    allow: false,
                    determining: Vec::new(),
                    errors: Vec::new(),
                };
            }
        }
        let cedar_request = match self.cedar_request(request, plan) {
            Ok(r) => r,
            Err(e) => return Decision::failed(e),
        };
        let (policies, entities) = match plan {
            Some(plan) => match plan::with_missing(entities, plan.entities()) {
                Ok(all) => (
                    plan.policies(&request.principal, &request.resource)
                        .unwrap_or(&self.policies),
                    all,
                ),
                Err(e) => {
                    return Decision::failed(format!(
                        "the entities do not combine with the action's: {e}"
                    ))
                }
            },
            None => (&self.policies, std::borrow::Cow::Borrowed(entities)),
        };
        let response = self
            .authorizer
            .is_authorized(&cedar_request, policies, &entities);
        let mut positions: Vec<usize> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        for id in response.diagnostics().reason() {
            match self.index.get(id.as_ref() as &str) {
                Some(&i) => positions.push(i),
                None => errors.push(format!("determining policy {id} is not loaded")),
            }
        }
        positions.sort_unstable();
        errors.extend(response.diagnostics().errors().map(|e| e.to_string()));
        let allowed = response.decision() == cedar_policy::Decision::Allow;
        Decision {
            allow: allowed && errors.is_empty(),
            determining: positions
                .into_iter()
                .map(|i| self.infos[i].id.clone())
                .collect(),
            errors,
        }
    }

    /// The Cedar request of `request` built the plain way, its context by
    /// Cedar's JSON conversion, as a user of Cedar builds it.
    pub fn plain_cedar_request(&self, request: &AccessRequest) -> Result<Request, String> {
        self.cedar_request(request, None)
    }

    /// The Cedar request of `request`: its context from typed values when
    /// `plan` knows every field, else by Cedar's JSON conversion; checked
    /// against the schema (principal and resource types, the context)
    /// whichever way the context was built.
    fn cedar_request(
        &self,
        request: &AccessRequest,
        plan: Option<&plan::ActionPlan>,
    ) -> Result<Request, String> {
        let action = Self::action_uid(&request.action);
        // A context the plan built is of the action's context type, and a
        // principal and resource the plan has policies for are of types the
        // action applies to: the schema's checks would find nothing.
        let planned = plan
            .filter(|p| p.policies(&request.principal, &request.resource).is_some())
            .and_then(|p| self.planned_context(&request.action, p, &request.context));
        let (context, schema) = match planned {
            Some(c) => (c, None),
            None => {
                let context = Context::from_json_value(
                    Value::Object(request.context.clone()),
                    Some((&self.schema, &action)),
                )
                .map_err(|e| {
                    format!(
                        "context of {} does not match the schema: {}",
                        request.action,
                        describe(&e)
                    )
                })?;
                (context, Some(&self.schema))
            }
        };
        Request::new(
            request.principal.uid(),
            action,
            request.resource.uid(),
            context,
            schema,
        )
        .map_err(|e| format!("request does not match the schema: {}", describe(&e)))
    }

    /// The Cedar context the plan of `action` builds of `fields`, kept for
    /// the next question with the same ones. Building one has Cedar
    /// evaluate its constructor calls (`now`'s `datetime`, `source_ip`'s
    /// `ip`), most of a new decision's context cost; within a second a
    /// client's questions of one action share their context. Keyed by a
    /// SHA-256 of the action and the fields' JSON, so that equal keys are
    /// equal questions.
    fn planned_context(
        &self,
        action: &str,
        plan: &plan::ActionPlan,
        fields: &Map<String, Value>,
    ) -> Option<Context> {
        use sha2::Digest as _;
        let mut digest = Counted(sha2::Sha256::new(), 0);
        digest.0.update(action.as_bytes());
        digest.0.update([0]);
        serde_json::to_writer(&mut digest, fields).ok()?;
        let Counted(digest, length) = digest;
        let key: [u8; 32] = digest.finalize().into();
        if let Some((context, _)) = self.contexts.get(&key) {
            return Some(context);
        }
        let context = plan.context(fields)?;
        let weight = CONTEXT_OVERHEAD.saturating_add(u32::try_from(length).unwrap_or(u32::MAX));
        self.contexts.insert(key, (context.clone(), weight));
        Some(context)
    }

    /// What is wrong with a request context for `action`, naming the field
    /// (an undeclared one, or a value of the wrong type); `None` when every
    /// field fits or the action is unknown.
    pub fn context_misfit(&self, action: &str, context: &Map<String, Value>) -> Option<String> {
        self.plans.get(action)?.misfit(context)
    }

    /// The `(error_code, error_msg)` of a denial (policies/README.md): the
    /// first determining policy in file order, if it is a forbid carrying
    /// `@error_code`; otherwise `CBC.0151` "Access denied.", exactly as for an
    /// unknown id.
    pub fn denial(&self, decision: &Decision) -> (String, String) {
        let first = decision.determining.first().and_then(|id| self.policy(id));
        match first {
            Some(p) if p.effect == Effect::Forbid => match p.annotations.get("error_code") {
                Some(code) => (
                    code.clone(),
                    p.annotations
                        .get("error_msg")
                        .cloned()
                        .unwrap_or_else(|| DEFAULT_DENIAL_MSG.to_owned()),
                ),
                None => default_denial(),
            },
            _ => default_denial(),
        }
    }
}

fn default_denial() -> (String, String) {
    (
        DEFAULT_DENIAL_CODE.to_owned(),
        DEFAULT_DENIAL_MSG.to_owned(),
    )
}

/// An error's message followed by its causes and help, on one line.
pub(crate) fn describe(e: &dyn miette::Diagnostic) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = s.source();
    }
    for label in e.labels().into_iter().flatten() {
        if let Some(text) = label.label() {
            if !out.contains(text) {
                out.push_str(&format!(" ({text})"));
            }
        }
    }
    if let Some(help) = e.help() {
        out.push_str(&format!(" (help: {help})"));
    }
    out
}

/// A SHA-256 fed as a writer, counting the bytes it was given.
struct Counted(sha2::Sha256, usize);

impl std::io::Write for Counted {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(&mut self.0, bytes);
        self.1 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_context_keeps_given_values() {
        let mut ctx = Map::new();
        ctx.insert("now".into(), Value::String("2026-11-21T12:00:00Z".into()));
        let mut r = AccessRequest::new(
            EntityRef::Operator("o".into()),
            "ViewCustomer",
            EntityRef::Customer("c".into()),
            ctx,
        );
        r.fill_context(time::now(), "10.0.0.1".parse().unwrap());
        assert_eq!(r.context["now"], "2026-11-21T12:00:00Z");
        assert_eq!(r.context["source_ip"], "10.0.0.1");
    }
}
