//! Invariants on a running gateway (issue 14): emptying the guardrails file
//! while the gateway serves, as an editor or a deploy does for a moment, is
//! a valid policy set that breaks the invariants: the reload is refused and
//! says which invariant with a counterexample, and a session whose
//! authorization the customer revoked stays dead. A shadow set that breaks
//! an invariant serves as shadow and is reported.

use super::operations::{readyz, scrape, start_on, total, PolicyCopy};
use super::poll;
use super::sessions::{as_session, assume, credentials};
use serde_json::Value;
use std::time::Duration;

/// Generous: an emptied guardrails file is proved refuted in well under a second.
const REFUSED_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptying_the_guardrails_is_refused_and_the_revoked_session_stays_dead() {
    let copy = PolicyCopy::new();
    let gw = start_on(&copy, |_| {}).await;
    let ready = readyz(&gw).await;
    let version = ready["policies"]["version"].clone();
    assert_eq!(ready["policies"]["invariants"]["proved"], true, "{ready}");

    // A session, then the customer revokes the authorization behind it.
    let session =
        credentials(&assume(&gw, "op-east-ops", "cust-acme", &["om", "order"], None).await);
    let resources = || as_session(&gw, &session, "GET", "/v2/customer/resources", None);
    assert_eq!(resources().await.status, 200);
    let revoked = gw
        .call(
            "cust-acme",
            "POST",
            "/v2/customers/partner-authorizations/auth-acme/revoke",
            None,
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(resources().await.status, 403);
    let (_, before) = scrape(&gw).await;
    let failed = |m: &[super::operations::Sample]| {
        total(
            m,
            "pgw_policy_reloads_total",
            &[("set", "live"), ("result", "failed")],
        )
    };

    // The guardrails file truncated in place: every file still valid.
    let guardrails = copy.policies().join("00-guardrails.cedar");
    let kept = std::fs::read_to_string(&guardrails).unwrap();
    std::fs::write(&guardrails, "").unwrap();
    let error = poll(
        "the emptied guardrails to be refused",
        REFUSED_WITHIN,
        || async {
            let error = readyz(&gw).await["policies"]["last_reload_error"].clone();
            (!error.is_null()).then_some(error)
        },
    )
    .await;
    let issues: Vec<&str> = error["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    let invariants_file = copy.policies().join("invariants/invariants.cedar");
    let named = issues
        .iter()
        .find(|i| i.contains("INV-R12-session-needs-live-authorization"))
        .unwrap_or_else(|| panic!("the broken invariant is named: {issues:?}"));
    assert!(
        named.starts_with(&format!("{}:", invariants_file.display())),
        "with its file and line: {named}"
    );
    let counterexamples = error["counterexamples"].as_array().unwrap();
    assert!(
        counterexamples.iter().any(|c| c["cases"][0]["principal"]
            .as_str()
            .unwrap_or("")
            .starts_with("Session::")
            && c["entities"].is_array()
            && c["cases"][0]["expect"] == "deny"),
        "a session counterexample, as a decision test: {error}"
    );

    // The last good set serves: same version, ready, and the session stays dead.
    let ready = readyz(&gw).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["policies"]["version"], version);
    assert_eq!(ready["policies"]["last_reload"]["result"], "failed");
    assert_eq!(resources().await.status, 403);
    let (_, during) = scrape(&gw).await;
    assert!(failed(&during) >= failed(&before) + 1.0);
    assert_eq!(
        total(
            &during,
            "pgw_policy_invariant_failed",
            &[
                ("set", "live"),
                ("invariant", "INV-R12-session-needs-live-authorization")
            ]
        ),
        1.0
    );

    // Restored: the error clears, the same version serves, the gauge drops.
    std::fs::write(&guardrails, kept).unwrap();
    poll("the restored file to load", REFUSED_WITHIN, || async {
        readyz(&gw).await["policies"]["last_reload_error"]
            .is_null()
            .then_some(())
    })
    .await;
    assert_eq!(readyz(&gw).await["policies"]["version"], version);
    let (_, after) = scrape(&gw).await;
    assert_eq!(
        total(
            &after,
            "pgw_policy_invariant_failed",
            &[
                ("set", "live"),
                ("invariant", "INV-R12-session-needs-live-authorization")
            ]
        ),
        0.0
    );
    assert_eq!(resources().await.status, 403);
    gw.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_set_that_breaks_an_invariant_serves_as_shadow_and_is_reported() {
    let live = PolicyCopy::new();
    let shadow = PolicyCopy::new();
    std::fs::write(shadow.policies().join("00-guardrails.cedar"), "").unwrap();
    let shadow_dir = shadow.policies();
    let gw = start_on(&live, move |cfg| {
        cfg.operations.shadow_policies = Some(shadow_dir)
    })
    .await;
    let ready = readyz(&gw).await;
    assert_eq!(ready["policies"]["invariants"]["proved"], true);
    let shadow_status: &Value = &ready["shadow_policies"];
    assert_eq!(shadow_status["invariants"]["proved"], false, "{ready}");
    let problems = shadow_status["invariants"]["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p
            .as_str()
            .unwrap()
            .contains("INV-R1-operator-stays-in-its-hierarchy")),
        "{problems:?}"
    );
    assert_ne!(shadow_status["version"], ready["policies"]["version"]);
    gw.running.stop().await;
}
