//! One decision, explained: what `policy explain` prints and what the admin
//! listener's `POST /v1/explain` answers, computed once here so both say the
//! same thing.

use super::{AccessRequest, Decision, PolicyEngine, DEFAULT_DENIAL_CODE, DEFAULT_DENIAL_MSG};
use crate::entities::{EntityError, EntityLoader, SessionFacts};
use cedar_policy::Effect;
use serde::Serialize;
use serde_json::{Map, Value};

/// Why a request is allowed or denied.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub principal: String,
    pub action: String,
    pub resource: String,
    /// The context Cedar saw (`now` and `source_ip` filled in).
    pub context: Map<String, Value>,
    pub policy_version: String,
    /// False when the principal or the resource does not exist: a deny
    /// answered like any other, without evaluating a policy.
    pub found: bool,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The determining policies, in file order.
    pub determining: Vec<DeterminingPolicy>,
    /// Everything that could not be evaluated (any entry denies).
    pub errors: Vec<String>,
    /// The 403 body the gateway sends for a deny.
    pub denial: Option<Denial>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeterminingPolicy {
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: &'static str,
    pub file: String,
    pub line: usize,
    /// The comment right above the policy.
    pub comment: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Denial {
    pub error_code: String,
    pub error_msg: String,
}

impl Explanation {
    /// The raw decision, as the gateway takes it.
    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }
}

/// Decides `request` (its context already filled) over the entities `loader`
/// reads, and says why. Fails only when the entities cannot be read.
pub async fn explain(
    engine: &PolicyEngine,
    loader: &EntityLoader,
    request: &AccessRequest,
    sessions: &[SessionFacts],
) -> Result<Explanation, EntityError> {
    Ok(explain_with_shadow(engine, None, loader, request, sessions)
        .await?
        .0)
}

/// [`explain`], and the same request explained by a shadow set over the same
/// entity slice (as the gateway compares them).
pub async fn explain_with_shadow(
    engine: &PolicyEngine,
    shadow: Option<&PolicyEngine>,
    loader: &EntityLoader,
    request: &AccessRequest,
    sessions: &[SessionFacts],
) -> Result<(Explanation, Option<Explanation>), EntityError> {
    let slice = loader
        .slice(engine, &request.principal, &request.resource, sessions)
        .await?;
    let not_found = Decision {
        allow: false,
        determining: vec![],
        errors: vec![],
    };
    let Some(entities) = slice else {
        let live = describe_decision(engine, request, false, &not_found);
        let shadow = shadow.map(|s| describe_decision(s, request, false, &not_found));
        return Ok((live, shadow));
    };
    let decision = engine.decide(request, &entities);
    let live = describe_decision(engine, request, true, &decision);
    let shadow = shadow.map(|s| describe_decision(s, request, true, &s.decide(request, &entities)));
    Ok((live, shadow))
}

/// The explanation of a decision already taken by `engine`.
pub fn describe_decision(
    engine: &PolicyEngine,
    request: &AccessRequest,
    found: bool,
    d: &Decision,
) -> Explanation {
    let determining = d
        .determining
        .iter()
        .map(|id| match engine.policy(id) {
            Some(p) => DeterminingPolicy {
                id: id.clone(),
                effect: match p.effect {
                    Effect::Permit => "permit",
                    Effect::Forbid => "forbid",
                },
                file: p.file.display().to_string(),
                line: p.line,
                comment: p.comment.clone(),
            },
            None => DeterminingPolicy {
                id: id.clone(),
                effect: "unknown",
                file: String::new(),
                line: 0,
                comment: None,
            },
        })
        .collect();
    let denial = (!d.allow).then(|| {
        let (error_code, error_msg) = if found {
            engine.denial(d)
        } else {
            (
                DEFAULT_DENIAL_CODE.to_owned(),
                DEFAULT_DENIAL_MSG.to_owned(),
            )
        };
        Denial {
            error_code,
            error_msg,
        }
    });
    Explanation {
        principal: request.principal.to_string(),
        action: request.action.clone(),
        resource: request.resource.to_string(),
        context: request.context.clone(),
        policy_version: engine.version().to_owned(),
        found,
        decision: if d.allow { "allow" } else { "deny" },
        determining,
        errors: d.errors.clone(),
        denial,
    }
}

impl std::fmt::Display for Explanation {
    /// The text `policy explain` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "request:   {} {} {}",
            self.principal, self.action, self.resource
        )?;
        writeln!(f, "context:   {}", Value::Object(self.context.clone()))?;
        writeln!(f, "policies:  version {}", self.policy_version)?;
        writeln!(
            f,
            "decision:  {}",
            if self.allowed() { "ALLOW" } else { "DENY" }
        )?;
        if !self.found {
            return writeln!(
                f,
                "           the principal or the resource does not exist; the gateway answers \
                 403 {DEFAULT_DENIAL_CODE} \"{DEFAULT_DENIAL_MSG}\", as for any deny"
            );
        }
        if self.determining.is_empty() {
            let why = if self.allowed() || !self.errors.is_empty() {
                ""
            } else {
                " (default deny: no permit applies)"
            };
            writeln!(f, "determining policies: none{why}")?;
        } else {
            writeln!(f, "determining policies:")?;
        }
        for p in &self.determining {
            if p.line == 0 {
                writeln!(f, "  {}", p.id)?;
                continue;
            }
            writeln!(f, "  {} {}  ({}:{})", p.effect, p.id, p.file, p.line)?;
            if let Some(c) = &p.comment {
                writeln!(f, "    // {c}")?;
            }
        }
        if self.errors.is_empty() {
            writeln!(f, "errors:    none")?;
        } else {
            writeln!(f, "errors (any error denies):")?;
            for e in &self.errors {
                writeln!(f, "  {e}")?;
            }
        }
        if let Some(Denial {
            error_code,
            error_msg,
        }) = &self.denial
        {
            writeln!(
                f,
                "denial:    403 {{\"error_code\": {error_code:?}, \"error_msg\": {error_msg:?}}}"
            )?;
        }
        Ok(())
    }
}
