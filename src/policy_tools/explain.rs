//! One decision, explained: what `policy explain` prints and what the admin
//! listener's `POST /v1/explain` answers, computed once here so both say the
//! same thing.

use super::near_miss::{near_misses, NearMiss};
use super::DeterminingPolicy;
use crate::authorizer::{Asker, AuthorizeError, Authorizer, Examined, Question};
use crate::filter::ListScope;
use crate::model::SessionFacts;
use crate::policy::partial::Residuals;
use crate::policy::{
    AccessRequest, Asked, Decision, PolicyEngine, DEFAULT_DENIAL_CODE, DEFAULT_DENIAL_MSG,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::net::{IpAddr, Ipv4Addr};

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
    /// For a default deny (no policy applied, nothing failed): the permits
    /// whose scope matched, each with the first condition that failed.
    pub near_misses: Vec<NearMiss>,
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

/// Decides `request` (its context already filled) through `authorizer` as
/// an administrator's question (it changes nothing there), and says why;
/// with the same request explained by the authorizer's shadow set over the
/// same entities, when it has one (as the gateway compares them). Fails
/// only when the entities cannot be read.
pub async fn explain(
    authorizer: &Authorizer,
    engine: &PolicyEngine,
    request: &AccessRequest,
    sessions: &[SessionFacts],
) -> Result<(Explanation, Option<Explanation>), AuthorizeError> {
    let asked = admin_asked();
    let question = Question {
        engine,
        principal: &request.principal,
        sessions,
        action: &request.action,
        context: request.context.clone(),
        asked: &asked,
        asker: Asker::Admin,
    };
    let shadow = authorizer.shadow.current();
    let Some(Examined { entities, decision }) =
        authorizer.examine(&question, &request.resource).await?
    else {
        let not_found = Decision {
            allow: false,
            determining: vec![],
            errors: vec![],
        };
        let live = describe_decision(engine, request, false, &not_found);
        let shadow = shadow.map(|s| describe_decision(&s, request, false, &not_found));
        return Ok((live, shadow));
    };
    let mut live = describe_decision(engine, request, true, &decision);
    if !decision.allow && decision.determining.is_empty() && decision.errors.is_empty() {
        live.near_misses = near_misses(engine, request, &entities);
    }
    let shadow =
        shadow.map(|s| describe_decision(&s, request, true, &s.decide(request, &entities)));
    Ok((live, shadow))
}

/// When an administrator's question is asked: its context names `now` and
/// `source_ip` already (filled by the caller from what was given), so these
/// only stand in for what the context does not say.
fn admin_asked() -> Asked {
    Asked::live(IpAddr::V4(Ipv4Addr::LOCALHOST))
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
        .map(|id| DeterminingPolicy::of(engine, id))
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
        near_misses: Vec::new(),
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
        if !self.near_misses.is_empty() {
            writeln!(
                f,
                "permits whose scope matched, and the first condition that failed:"
            )?;
        }
        for m in &self.near_misses {
            let p = &m.policy;
            writeln!(f, "  permit {}  ({}:{})", p.id, p.file, p.line)?;
            writeln!(f, "    failed: {}", m.failed)?;
            if let Some(e) = &m.error {
                writeln!(f, "    error:  {e}")?;
            }
            for v in &m.values {
                writeln!(f, "    {} = {}", v.expr, v.value)?;
            }
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

/// A list question explained: which items of a type `principal` may `action`
/// on, what the policies leave over the unknown item, and the filter the
/// gateway hands the store (or why the items are decided one by one).
#[derive(Clone, Debug, Serialize)]
pub struct ListExplanation {
    pub principal: String,
    pub action: String,
    /// The item type, e.g. `Customer`.
    pub item: String,
    pub context: Map<String, Value>,
    pub policy_version: String,
    /// False when the principal does not exist (the list is denied).
    pub found: bool,
    #[serde(flatten)]
    pub answer: PartialAnswer,
    pub denial: Option<Denial>,
}

/// What the policies leave over the unknown entities of one type (a list's
/// items, or the principals of one type `who-can` asks about), and how
/// those allowed are found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PartialAnswer {
    /// `all` (every entity of the type), `none` (not one) or `filter` (the
    /// entities the filter matches, or those decided one by one).
    pub decision: &'static str,
    /// What decided `all` or `none`.
    pub determining: Vec<DeterminingPolicy>,
    /// The policies left over the unknown entity, each with its residual
    /// condition (Cedar text).
    pub residuals: Vec<ResidualPolicy>,
    /// The filter the store runs, when the residuals have one.
    pub filter: Option<crate::filter::Filter>,
    /// That filter as the SQL condition over the entity's table `t`.
    pub sql: Option<String>,
    /// Why the entities are decided one by one instead (forms without a filter).
    pub item_by_item: Vec<String>,
    pub errors: Vec<String>,
}

impl PartialAnswer {
    /// Explains `residuals` over entities of type `item`; with the scope
    /// that finds the allowed ones.
    pub fn of(
        engine: &PolicyEngine,
        residuals: &Residuals,
        item: crate::refs::EntityType,
    ) -> (PartialAnswer, ListScope) {
        let policy = |id: &str| DeterminingPolicy::of(engine, id);
        let (scope, item_by_item) = crate::policy::residual_filter::scope(residuals, item);
        let (filter, sql) = match &scope {
            ListScope::Filter(f) => (
                Some(f.clone()),
                crate::store::filter_sql::readable(f, item).ok(),
            ),
            _ => (None, None),
        };
        let answer = PartialAnswer {
            decision: match residuals.decision {
                Some(true) => "all",
                Some(false) => "none",
                None => "filter",
            },
            determining: residuals.determining.iter().map(|id| policy(id)).collect(),
            residuals: residuals
                .permits
                .iter()
                .chain(&residuals.forbids)
                .map(|r| ResidualPolicy {
                    policy: policy(&r.id),
                    residual: readable_instants(&r.condition.to_string()),
                })
                .collect(),
            filter,
            sql,
            item_by_item,
            errors: residuals.errors.clone(),
        };
        (answer, scope)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ResidualPolicy {
    #[serde(flatten)]
    pub policy: DeterminingPolicy,
    /// The condition left once principal, action and context are known.
    pub residual: String,
}

/// Explains the list question of `action` over every `item` for
/// `principal`, asked through `authorizer` as an administrator's question.
pub async fn explain_list(
    authorizer: &Authorizer,
    engine: &PolicyEngine,
    principal: &crate::refs::EntityRef,
    action: &str,
    item: crate::refs::EntityType,
    context: Map<String, Value>,
    sessions: &[SessionFacts],
) -> Result<ListExplanation, AuthorizeError> {
    let asked = admin_asked();
    let question = Question {
        engine,
        principal,
        sessions,
        action,
        context: context.clone(),
        asked: &asked,
        asker: Asker::Admin,
    };
    let mut out = ListExplanation {
        principal: principal.to_string(),
        action: action.to_owned(),
        item: item.to_string(),
        context,
        policy_version: engine.version().to_owned(),
        found: true,
        answer: PartialAnswer {
            decision: "none",
            ..PartialAnswer::default()
        },
        denial: None,
    };
    let residuals = match authorizer.residuals(&question, item).await {
        Ok(r) => r,
        Err(AuthorizeError::Unknown) => {
            out.found = false;
            out.denial = Some(Denial {
                error_code: DEFAULT_DENIAL_CODE.to_owned(),
                error_msg: DEFAULT_DENIAL_MSG.to_owned(),
            });
            return Ok(out);
        }
        Err(AuthorizeError::Failed(e)) => {
            out.answer.errors.push(e);
            return Ok(out);
        }
        Err(e @ AuthorizeError::Unavailable(_)) => return Err(e),
    };
    out.answer = PartialAnswer::of(engine, &residuals, item).0;
    if residuals.decision == Some(false) {
        let d = Decision {
            allow: false,
            determining: residuals.determining.clone(),
            errors: vec![],
        };
        let (error_code, error_msg) = engine.denial(&d);
        out.denial = Some(Denial {
            error_code,
            error_msg,
        });
    }
    Ok(out)
}

/// Cedar prints an instant it computed as an offset from the epoch
/// (`datetime("1970-01-01").offset(duration("1796547462000ms"))`); a residual
/// is for people, so it names the instant (`datetime("2026-12-06T08:57:42Z")`).
fn readable_instants(text: &str) -> String {
    const START: &str = "datetime(\"1970-01-01\").offset(duration(\"";
    const END: &str = "ms\"))";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(START) {
        let after = &rest[at + START.len()..];
        let instant = after.find(END).and_then(|end| {
            let ms: i64 = after[..end].parse().ok()?;
            let t = chrono::DateTime::from_timestamp_millis(ms)?;
            Some((t, end))
        });
        match instant {
            Some((t, end)) => {
                out.push_str(&rest[..at]);
                let precision = if t.timestamp_subsec_millis() == 0 {
                    chrono::SecondsFormat::Secs
                } else {
                    chrono::SecondsFormat::Millis
                };
                out.push_str(&format!(
                    "datetime(\"{}\")",
                    t.to_rfc3339_opts(precision, true)
                ));
                rest = &after[end + END.len()..];
            }
            None => {
                out.push_str(&rest[..at + START.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl std::fmt::Display for ListExplanation {
    /// The text `policy explain` prints for a resource type without an id.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "list:      {} {} every {}",
            self.principal, self.action, self.item
        )?;
        writeln!(f, "context:   {}", Value::Object(self.context.clone()))?;
        writeln!(f, "policies:  version {}", self.policy_version)?;
        if !self.found {
            return writeln!(f, "decision:  NONE (the principal does not exist)");
        }
        let decision = match self.answer.decision {
            "all" => "ALL: every item is allowed",
            "none" => "NONE: no item can be allowed; the list is denied",
            _ => "FILTER: the items the filter below matches",
        };
        writeln!(f, "decision:  {decision}")?;
        write!(f, "{}", self.answer)?;
        if let Some(d) = &self.denial {
            writeln!(
                f,
                "denial:    403 {{\"error_code\": {:?}, \"error_msg\": {:?}}}",
                d.error_code, d.error_msg
            )?;
        }
        Ok(())
    }
}

impl std::fmt::Display for PartialAnswer {
    /// What decided, the residual policies, and the filter or why there is none.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.determining {
            writeln!(f, "  {} {}  ({}:{})", p.effect, p.id, p.file, p.line)?;
        }
        if !self.residuals.is_empty() {
            writeln!(f, "residual policies (over the unknown entity):")?;
        }
        for r in &self.residuals {
            let p = &r.policy;
            writeln!(f, "  {} {}  ({}:{})", p.effect, p.id, p.file, p.line)?;
            writeln!(f, "    when {{ {} }}", r.residual)?;
        }
        if let (Some(filter), Some(sql)) = (&self.filter, &self.sql) {
            writeln!(
                f,
                "filter:    {}",
                serde_json::to_string(filter).map_err(|_| std::fmt::Error)?
            )?;
            writeln!(f, "sql:       {sql}")?;
        }
        if !self.item_by_item.is_empty() {
            writeln!(f, "decided item by item (no filter form for):")?;
            for u in &self.item_by_item {
                writeln!(f, "  {u}")?;
            }
        }
        for e in &self.errors {
            writeln!(f, "error:     {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn residual_instants_are_written_as_instants() {
        assert_eq!(
            super::readable_instants(
                r#"principal.expires_at <= datetime("1970-01-01").offset(duration("1796547462000ms")) && x"#
            ),
            r#"principal.expires_at <= datetime("2026-12-06T08:57:42Z") && x"#
        );
        let untouched = r#"datetime("1970-01-01").offset(duration("1h"))"#;
        assert_eq!(super::readable_instants(untouched), untouched);
    }
}
