//! The invariants file: Cedar policies that say what the policy set must
//! never do, read from `<policies>/invariants/*.cedar` (a subdirectory, so
//! the gateway, `policy validate` and the official CLI, which read
//! `policies/*.cedar`, never load them as policies).
//!
//! Each invariant is an ordinary Cedar policy with an `@id` and a `@check`:
//!
//! - `@check("never")` on a `forbid`: the policy set allows no request this
//!   forbid matches.
//! - `@check("only_when")` on a `permit`: every request within the permit's
//!   scope that the policy set allows satisfies the permit's conditions.
//!
//! Both come down to one question for the solver: is there a request that
//! the set allows and that [`Invariant::violation`] (a permit) matches?
//!
//! `@check("assume")` on a permit with an unconstrained scope is an
//! [`Assumption`]: a fact of every real request (the store or the gateway
//! enforces it), which every violation is conjoined with, so that a
//! counterexample looks like real data. So is a built-in one: `context.now`
//! lies within [`question::SUPPLIED_NOW_YEARS`] of the clock.

use super::question;
use crate::policy::load::{self, issue};
use crate::policy::{LoadIssue, PolicyInfo, PolicyLoadError};
use cedar_policy::{Effect, Policy, PolicyId, Schema};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Where the invariants of a policy directory live.
pub const INVARIANTS_DIR: &str = "invariants";

/// The annotation naming an invariant's check.
const CHECK: &str = "check";

/// What an invariant asks of the policy set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// `forbid` + `@check("never")`: never allowed.
    Never,
    /// `permit` + `@check("only_when")`: allowed only when the conditions hold.
    OnlyWhen,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Never => "never",
            Check::OnlyWhen => "only_when",
        }
    }
}

/// One invariant as loaded.
#[derive(Clone, Debug)]
pub struct Invariant {
    pub info: PolicyInfo,
    pub check: Check,
    /// The policy as written; it must itself never error, or a request on
    /// which it errors would escape the check.
    pub written: Policy,
    /// A permit that matches exactly the requests the set must not allow:
    /// the forbid turned into a permit (`never`), or the permit's scope with
    /// its conditions negated (`only_when`); and that meet the assumptions.
    pub violation: Policy,
    /// The same without the assumptions: what is asked first (see
    /// `check_kind`), since a proof without them is a proof with them.
    pub unassumed: Policy,
}

/// Every invariant of a policy directory.
#[derive(Clone, Debug)]
pub struct Invariants {
    pub dir: PathBuf,
    pub items: Vec<Invariant>,
    /// The `@id`s of the assumptions: `@check("assume")` permits whose
    /// scope is `(principal, action, resource)`, facts of every request the
    /// gateway decides, which the proofs take as given. Only what the store
    /// or the gateway enforces belongs there (policies/README.md,
    /// "Assumptions").
    pub assumptions: Vec<String>,
    /// The built-in assumption: the earliest and latest `context.now`, whole
    /// days around the clock at load.
    pub now_within: (String, String),
    /// Every assumption in one permit, its conditions in the order each
    /// violation reads them (the one the verifier proves never errors).
    pub assumed: Policy,
    /// Hash of the invariant files, names and contents.
    pub digest: String,
}

impl Invariants {
    /// `<policies_dir>/invariants`.
    pub fn dir_of(policies_dir: &Path) -> PathBuf {
        policies_dir.join(INVARIANTS_DIR)
    }

    /// Loads and strictly validates every `*.cedar` of `dir` against
    /// `schema`. A missing or empty directory is an error: a policy set whose
    /// invariants cannot be read is not one the gateway can check.
    pub fn load(dir: &Path, schema: &Schema) -> Result<Invariants, PolicyLoadError> {
        let loaded = load::load_dir(dir, schema)?;
        let mut issues: Vec<LoadIssue> = Vec::new();
        let now_within = now_within(crate::time::now());
        let written = |info: &PolicyInfo| loaded.policies.policy(&PolicyId::new(&info.id));
        // The assumptions first: every invariant's violation reads them all.
        let (assumption_infos, invariant_infos): (Vec<&PolicyInfo>, Vec<&PolicyInfo>) = loaded
            .infos
            .iter()
            .partition(|info| info.annotations.get(CHECK).map(String::as_str) == Some("assume"));
        let mut assumed = vec![now_condition(&now_within)];
        for info in &assumption_infos {
            let Some(policy) = written(info) else {
                continue;
            };
            match assumption_conditions(policy) {
                Ok(conditions) => assumed.extend(conditions),
                Err(message) => issues.push(issue(
                    &info.file,
                    Some(info.line),
                    format!("assumption {}: {message}", info.id),
                )),
            }
        }
        let mut items = Vec::new();
        for info in invariant_infos {
            let Some(written) = written(info) else {
                continue;
            };
            match invariant(info, written, &assumed) {
                Ok(item) => items.push(item),
                Err(message) => issues.push(issue(&info.file, Some(info.line), message)),
            }
        }
        if items.is_empty() && issues.is_empty() {
            issues.push(issue(dir, None, "no invariant".into()));
        }
        if !issues.is_empty() {
            return Err(PolicyLoadError { issues });
        }
        let assumed = Policy::from_json(
            Some(PolicyId::new("assumptions")),
            json!({
                "effect": "permit",
                "principal": {"op": "All"},
                "action": {"op": "All"},
                "resource": {"op": "All"},
                "conditions": assumed,
            }),
        )
        .map_err(|e| PolicyLoadError {
            issues: vec![issue(dir, None, format!("the assumptions: {e}"))],
        })?;
        Ok(Invariants {
            dir: dir.to_owned(),
            items,
            assumptions: assumption_infos.iter().map(|i| i.id.clone()).collect(),
            now_within,
            assumed,
            digest: loaded.digest,
        })
    }

    /// What the proofs assume, as `policy verify` prints it.
    pub fn assuming(&self) -> String {
        let mut parts = self.assumptions.clone();
        let (earliest, latest) = &self.now_within;
        parts.push(format!("context.now within [{earliest}, {latest}]"));
        format!("assuming: {}", parts.join(", "))
    }
}

/// The whole days around [`question::now_bounds`] of `clock` (a day wider,
/// so that proofs made the same day agree, and still every `now` the gateway
/// accepts lies within).
fn now_within(clock: crate::time::Timestamp) -> (String, String) {
    let (earliest, latest) = question::now_bounds(clock);
    let day = |t: crate::time::Timestamp| t.format("%Y-%m-%d").to_string();
    (day(earliest), day(latest + chrono::Duration::days(1)))
}

/// The built-in assumption as a `when` condition in Cedar's JSON form.
fn now_condition((earliest, latest): &(String, String)) -> Value {
    let text = format!(
        "permit (principal, action, resource) when {{ datetime(\"{earliest}\") <= context.now && context.now <= datetime(\"{latest}\") }};"
    );
    let policy: Policy = text.parse().expect("a well-formed built-in assumption");
    policy.to_json().expect("a policy in JSON form")["conditions"][0].clone()
}

/// The conditions of an assumption, which must be a permit with an
/// unconstrained scope and at least one condition.
fn assumption_conditions(written: &Policy) -> Result<Vec<Value>, String> {
    if written.effect() != Effect::Permit {
        return Err("@check(\"assume\") is written on a permit".into());
    }
    let est = written.to_json().map_err(|e| e.to_string())?;
    if ["principal", "action", "resource"]
        .iter()
        .any(|part| est[part]["op"] != "All")
    {
        return Err(
            "its scope must be (principal, action, resource): say in its conditions what it is about (`principal is ...`)".into(),
        );
    }
    let conditions = est["conditions"].as_array().cloned().unwrap_or_default();
    if conditions.is_empty() {
        return Err("it needs a when or unless condition".into());
    }
    Ok(conditions)
}

fn invariant(info: &PolicyInfo, written: &Policy, assumed: &[Value]) -> Result<Invariant, String> {
    let id = &info.id;
    if id == super::NEVER_ERRORS {
        return Err(format!(
            "invariant {id}: that id names the built-in check; choose another"
        ));
    }
    let check = match (info.annotations.get(CHECK).map(String::as_str), written.effect()) {
        (Some("never"), Effect::Forbid) => Check::Never,
        (Some("only_when"), Effect::Permit) => Check::OnlyWhen,
        (Some("never"), Effect::Permit) => {
            return Err(format!(
                "invariant {id}: @check(\"never\") is written on a forbid (the set never allows what it matches)"
            ))
        }
        (Some("only_when"), Effect::Forbid) => {
            return Err(format!(
                "invariant {id}: @check(\"only_when\") is written on a permit (the set allows its scope only when its conditions hold)"
            ))
        }
        (Some(other), _) => {
            return Err(format!(
                "invariant {id}: unknown @check({other:?}); one of \"never\", \"only_when\", \"assume\""
            ))
        }
        (None, _) => {
            return Err(format!(
                "invariant {id}: no @check(\"never\") or @check(\"only_when\") annotation"
            ))
        }
    };
    let build = |assumed: &[Value]| {
        violation(written, check, assumed)
            .map_err(|e| format!("invariant {id}: cannot build its check: {e}"))
    };
    Ok(Invariant {
        info: info.clone(),
        check,
        written: written.clone(),
        unassumed: build(&[])?,
        violation: build(assumed)?,
    })
}

/// The permit matching the requests that break `written` (see
/// [`Invariant::violation`]), built on Cedar's JSON form of the policy.
fn violation(written: &Policy, check: Check, assumed: &[Value]) -> Result<Policy, String> {
    let mut est = written.to_json().map_err(|e| e.to_string())?;
    let conditions = est
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    est["effect"] = json!("permit");
    est["annotations"] = json!({});
    if check == Check::OnlyWhen {
        // The conditions hold iff every `when` body holds and no `unless`
        // body does; the violation is that conjunction failing.
        let mut all: Option<Value> = None;
        for c in &conditions {
            let body = c.get("body").cloned().ok_or("a condition without a body")?;
            let term = match c.get("kind").and_then(Value::as_str) {
                Some("when") => body,
                Some("unless") => json!({"!": {"arg": body}}),
                other => return Err(format!("unknown condition kind {other:?}")),
            };
            all = Some(match all {
                None => term,
                Some(left) => json!({"&&": {"left": left, "right": term}}),
            });
        }
        let all = all.ok_or("an only_when invariant needs a when or unless condition")?;
        est["conditions"] = json!([{"kind": "unless", "body": all}]);
    }
    // After the invariant's own conditions: an assumption is read only of
    // requests the invariant is about.
    if let Some(list) = est["conditions"].as_array_mut() {
        list.extend(assumed.iter().cloned());
    } else {
        est["conditions"] = Value::Array(assumed.to_vec());
    }
    Policy::from_json(Some(written.id().clone()), est).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        let text = include_str!("../../schema/partner.cedarschema");
        Schema::from_cedarschema_str(text)
            .expect("the shipped schema")
            .0
    }

    fn load(text: &str) -> Result<Invariants, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("i.cedar"), text).unwrap();
        Invariants::load(dir.path(), &schema())
            .map_err(|e| e.issues.iter().map(|i| i.message.clone()).collect())
    }

    const SESSION_SCOPE: &str =
        "(principal is PartnerCenter::Session, action == PartnerCenter::Action::\"ViewOwnOrders\", resource)";

    #[test]
    fn a_never_forbid_becomes_a_permit_with_the_same_condition() {
        let text = format!(
            "@id(\"i\") @check(\"never\") forbid {SESSION_SCOPE} when {{ principal.ended }};"
        );
        let loaded = load(&text).unwrap();
        let i = &loaded.items[0];
        assert_eq!(i.check, Check::Never);
        assert_eq!(i.violation.effect(), Effect::Permit);
        assert!(
            i.violation.to_string().contains("principal.ended"),
            "{}",
            i.violation
        );
    }

    #[test]
    fn an_only_when_permit_becomes_its_negation() {
        let text = format!(
            "@id(\"i\") @check(\"only_when\") permit {SESSION_SCOPE} when {{ principal.ended }} unless {{ principal.scopes.isEmpty() }};"
        );
        let loaded = load(&text).unwrap();
        let v = &loaded.items[0].violation;
        assert_eq!(v.effect(), Effect::Permit);
        let est = v.to_json().unwrap();
        let conditions = est["conditions"].as_array().unwrap();
        // The negated conditions, then the built-in assumption on `now`.
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0]["kind"], "unless");
        assert!(
            conditions[1].to_string().contains("context"),
            "{}",
            conditions[1]
        );
        let body = conditions[0]["body"].to_string();
        assert!(
            body.contains("\"&&\"") && body.contains("\"!\"") && body.contains("isEmpty"),
            "{body}"
        );
    }

    #[test]
    fn malformed_invariants_are_refused_with_a_reason() {
        let cases = [
            (format!("@id(\"i\") forbid {SESSION_SCOPE};"), "no @check"),
            (format!("@id(\"i\") @check(\"never\") permit {SESSION_SCOPE};"), "on a forbid"),
            (format!("@id(\"i\") @check(\"only_when\") forbid {SESSION_SCOPE};"), "on a permit"),
            (format!("@id(\"i\") @check(\"always\") forbid {SESSION_SCOPE};"), "unknown @check"),
            (format!("@id(\"i\") @check(\"only_when\") permit {SESSION_SCOPE};"), "needs a when or unless"),
            (format!("@check(\"never\") forbid {SESSION_SCOPE};"), "no @id"),
            // Validated strictly against the schema, like the policies.
            (format!("@id(\"i\") @check(\"never\") forbid {SESSION_SCOPE} when {{ principal.nope }};"), "nope"),
            (String::new(), "no invariant"),
            (format!("@id(\"never-errors\") @check(\"never\") forbid {SESSION_SCOPE};"), "built-in"),
            // Assumptions: a permit on every request, with a condition.
            ("@id(\"a\") @check(\"assume\") forbid (principal, action, resource) when { true };".into(), "assumption a: @check(\"assume\") is written on a permit"),
            (format!("@id(\"a\") @check(\"assume\") permit {SESSION_SCOPE} when {{ true }};"), "its scope must be (principal, action, resource)"),
            ("@id(\"a\") @check(\"assume\") permit (principal, action, resource);".into(), "assumption a: it needs a when or unless"),
        ];
        for (text, reason) in cases {
            let issues = load(&text)
                .err()
                .unwrap_or_else(|| panic!("accepted {text:?}"));
            assert!(
                issues.iter().any(|i| i.contains(reason)),
                "{text:?}: {issues:?}"
            );
        }
        let missing = Invariants::load(Path::new("/nonexistent/invariants"), &schema());
        assert!(missing.is_err());
    }
}
