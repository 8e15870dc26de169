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

use super::super::load::{self, issue};
use super::super::{LoadIssue, PolicyInfo, PolicyLoadError};
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
    /// its conditions negated (`only_when`).
    pub violation: Policy,
}

/// Every invariant of a policy directory.
#[derive(Clone, Debug)]
pub struct Invariants {
    pub dir: PathBuf,
    pub items: Vec<Invariant>,
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
        let mut items = Vec::new();
        for info in loaded.infos {
            let Some(written) = loaded.policies.policy(&PolicyId::new(&info.id)) else {
                continue;
            };
            match invariant(&info, written) {
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
        Ok(Invariants {
            dir: dir.to_owned(),
            items,
            digest: loaded.digest,
        })
    }
}

fn invariant(info: &PolicyInfo, written: &Policy) -> Result<Invariant, String> {
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
                "invariant {id}: unknown @check({other:?}); one of \"never\", \"only_when\""
            ))
        }
        (None, _) => {
            return Err(format!(
                "invariant {id}: no @check(\"never\") or @check(\"only_when\") annotation"
            ))
        }
    };
    let violation = violation(written, check)
        .map_err(|e| format!("invariant {id}: cannot build its check: {e}"))?;
    Ok(Invariant {
        info: info.clone(),
        check,
        written: written.clone(),
        violation,
    })
}

/// The permit matching the requests that break `written` (see
/// [`Invariant::violation`]), built on Cedar's JSON form of the policy.
fn violation(written: &Policy, check: Check) -> Result<Policy, String> {
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
    Policy::from_json(Some(written.id().clone()), est).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        let text = include_str!("../../../schema/partner.cedarschema");
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
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0]["kind"], "unless");
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
