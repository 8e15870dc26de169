//! `policy explain` answers "why denied?": for a default deny, the permits
//! whose scope matched with the first failed condition and its values; a
//! question naming nothing real is a usage error (exit 2) naming what is.

use crate::domain::support::DEMO;
use crate::kit::{http_client, send, DomainServer};
use partner_gateway::store::Backend;
use serde_json::json;
use std::process::Output;

/// Runs `policy explain` on the demo data with the repository's policies.
fn explain(principal: &str, action: &str, resource: &str, context: Option<&str>) -> Output {
    let mut args = vec![
        "policy",
        "explain",
        "--principal",
        principal,
        "--action",
        action,
        "--resource",
        resource,
        "--fixture",
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo.json"),
        "--policies",
        concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        "--schema",
        concat!(env!("CARGO_MANIFEST_DIR"), "/schema"),
    ];
    if let Some(c) = context {
        args.extend(["--context", c]);
    }
    std::process::Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .args(args)
        .output()
        .unwrap()
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BUDGET: &str =
    r#"{"amount": "100.00", "budget_type": "MONTHLY", "cancel_partner_frozen": false}"#;

#[test]
fn a_default_deny_names_the_permits_that_nearly_applied() {
    // The distributor's finance operator, on a customer of its reseller that
    // holds the budget grant: every budget permit's scope matches, each
    // fails on a condition.
    let out = explain(
        "Operator::\"op-dist-finance\"",
        "SetBudget",
        "Customer::\"cust-acme\"",
        Some(BUDGET),
    );
    let (text, err) = texts(&out);
    assert!(out.status.success(), "{text}{err}");
    assert!(text.contains("decision:  DENY"), "{text}");
    assert!(text.contains("default deny"), "{text}");
    let near = text
        .split("permits whose scope matched, and the first condition that failed:")
        .nth(1)
        .unwrap_or_else(|| panic!("no near misses in:\n{text}"));
    // The distributor's own permit fails on the grant it gave away, with the value seen.
    let grant = near
        .split("permit R3-distributor-sets-budget-for-ungranted-reseller")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        grant.contains("failed: when { !resource.partner.grants.budget }"),
        "{text}"
    );
    assert!(
        grant.contains("resource.partner.grants.budget = true"),
        "{text}"
    );
    // The direct partner's permit fails on the partner, with both sides' values.
    let direct = near
        .split("permit R3-direct-partner-sets-budget")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        direct.contains("resource.partner = PartnerCenter::Partner::\"res-east\"")
            && direct.contains("principal.partner = PartnerCenter::Partner::\"dist-north\""),
        "{text}"
    );
    // Permits of other actions are not near misses.
    assert!(!near.contains("R1-"), "{text}");

    // An allow lists none.
    let allowed = explain(
        "Operator::\"op-dist-finance\"",
        "SetBudget",
        "Customer::\"cust-nova\"",
        Some(BUDGET),
    );
    let (text, _) = texts(&allowed);
    assert!(text.contains("decision:  ALLOW"), "{text}");
    assert!(!text.contains("permits whose scope matched"), "{text}");
}

/// Principal, action, resource, context, the field at fault, and what the
/// error must say.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a [&'a str],
);

/// Questions naming nothing real: the same for the CLI and the admin listener.
fn unreal_questions() -> [Case<'static>; 8] {
    let op = "Operator::\"op-dist-finance\"";
    let nova = "Customer::\"cust-nova\"";
    [
        (
            op,
            "Freeze",
            nova,
            None,
            "action",
            &["unknown action \"Freeze\"", "FreezeCustomer", "SetBudget"],
        ),
        (
            "Widget::\"w\"",
            "SetBudget",
            nova,
            Some(BUDGET),
            "principal",
            &["unknown entity type \"Widget\"", "Operator"],
        ),
        (
            "Order::\"ord-1\"",
            "SetBudget",
            nova,
            Some(BUDGET),
            "principal",
            &[
                "Order cannot be the principal of SetBudget",
                "Customer, Operator, Session",
            ],
        ),
        (
            op,
            "SetBudget",
            "Order::\"ord-1\"",
            Some(BUDGET),
            "resource",
            &["Order cannot be the resource of SetBudget", "Customer"],
        ),
        (
            op,
            "SetBudget",
            nova,
            Some(r#"{"amount": "100.00", "budget_type": "MONTHLY"}"#),
            "context",
            &["cancel_partner_frozen"],
        ),
        (
            op,
            "SetBudget",
            nova,
            Some(r#"{"amount": 100, "budget_type": "MONTHLY", "cancel_partner_frozen": false}"#),
            "context",
            &["field `amount` must be a decimal as a string"],
        ),
        // The proofs assume the API's bounds on amounts: so does a question.
        (
            op,
            "SetBudget",
            nova,
            Some(
                r#"{"amount": "-1.00", "budget_type": "MONTHLY", "cancel_partner_frozen": false}"#,
            ),
            "context",
            &["field `amount` must be a decimal in [0, 2147483647]"],
        ),
        (
            op,
            "SetBudget",
            nova,
            Some(
                r#"{"amount": "1.00", "budget_type": "MONTHLY", "cancel_partner_frozen": false, "amuont": "1"}"#,
            ),
            "context",
            &["`amuont` is not a field", "amount, budget_type"],
        ),
    ]
}

#[test]
fn a_question_naming_nothing_real_is_a_usage_error() {
    for (principal, action, resource, context, field, expect) in unreal_questions() {
        let out = explain(principal, action, resource, context);
        let (text, err) = texts(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{action} {resource}: {text}{err}"
        );
        assert!(!text.contains("decision:"), "no answer is printed: {text}");
        assert!(
            err.contains(&format!("--{field}")),
            "{field} not named: {err}"
        );
        for e in expect {
            assert!(err.contains(e), "{e:?} not in: {err}");
        }
    }
}

/// `POST /v1/explain` refuses the same questions with the same checks: 400
/// in the API's error format, naming the field and what is valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_refuses_them_with_400() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    for (principal, action, resource, context, field, expect) in unreal_questions() {
        let mut body = json!({"principal": principal, "action": action, "resource": resource});
        if let Some(c) = context {
            body["context"] = serde_json::from_str(c).unwrap();
        }
        let r = send(
            &http_client(),
            "POST",
            &format!("http://{}/v1/explain", s.running.admin_addr),
            &[("content-type", "application/json".into())],
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        let v = r.json();
        assert_eq!(r.status, 400, "{body}: {v}");
        assert_eq!(v["error_code"], "CBC.0100", "{v}");
        let msg = v["error_msg"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!("invalid parameter {field}: ")),
            "{field} not named: {msg}"
        );
        for e in expect {
            assert!(msg.contains(e), "{e:?} not in: {msg}");
        }
        assert!(v.get("decision").is_none(), "no answer is given: {v}");
    }
    // The same question, made real, is answered.
    let body = json!({"principal": "Operator::\"op-dist-finance\"", "action": "SetBudget",
        "resource": "Customer::\"cust-nova\"", "context": serde_json::from_str::<serde_json::Value>(BUDGET).unwrap()});
    let r = send(
        &http_client(),
        "POST",
        &format!("http://{}/v1/explain", s.running.admin_addr),
        &[("content-type", "application/json".into())],
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["decision"], "allow");
}
