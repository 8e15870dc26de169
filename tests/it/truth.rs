//! The policies are the whole truth (issue 12): with a policy set that is
//! exactly `permit (principal, action, resource);` every operation performs
//! every data-valid request, for every principal kind it is defined for,
//! whatever the relationships; with `forbid (principal, action, resource);`
//! every one is 403. And the catalog is the only list of routes: the
//! gateway and the store serve the same ones.

use crate::kit::{promise_nothing, DomainServer, TestResponse};
use crate::test_on_backends;
use partner_gateway::assertion::Identity;
use partner_gateway::catalog::{self, Op, ServedBy, OPERATIONS};
use partner_gateway::store::Backend;
use serde_json::{json, Value};
use std::collections::HashSet;

use crate::domain::support::DEMO;

/// A policy directory holding one policy, `text`.
fn policy_set(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("only.cedar"),
        format!("@id(\"only\")\n{text}\n"),
    )
    .unwrap();
    promise_nothing(dir.path());
    dir
}

fn text(r: &TestResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// One call of the sequence: who, what, and the status it must get under
/// permit-all (under forbid-all it must be 403).
struct Step {
    who: Who,
    method: &'static str,
    path: String,
    body: Option<Value>,
    permitted: u16,
}

#[derive(Clone, Copy)]
enum Who {
    /// An operator of a reseller, with no relationship to most customers.
    Stranger,
    /// A customer principal, acting on someone else's things where it can.
    Customer,
    /// An assume-role session made under permit-all, without any authorization.
    Session,
    /// The stranger with a token it obtained.
    Token,
}

fn step(who: Who, method: &'static str, path: &str, body: Option<Value>, permitted: u16) -> Step {
    Step {
        who,
        method,
        path: path.to_owned(),
        body,
        permitted,
    }
}

/// Every operation at least once, on relationships the shipped policies deny.
fn steps(export_id: &str) -> Vec<Step> {
    use Who::*;
    let p = "/v2/partners";
    let o = "/v2/orders/customer-orders";
    let mut all = shared_steps(export_id);
    // The partner routes that only read, asked by a customer principal and
    // by a session: the schema admits both; only the policies refuse them.
    let reads = |who: Who| {
        [
            (
                "POST",
                format!("{p}/sub-customers/query"),
                Some(json!({"limit": 100})),
            ),
            ("GET", format!("{p}/sub-customers/cust-nova/overview"), None),
            (
                "GET",
                format!("{p}/sub-customers/budget?customer_id=cust-pixel"),
                None,
            ),
            (
                "POST",
                format!("{p}/sub-customers/budget/query"),
                Some(json!({"customer_ids": ["cust-nova", "cust-acme"]})),
            ),
            (
                "GET",
                format!("{p}/sub-customers/budget/records?customer_id=cust-nova"),
                None,
            ),
            ("POST", format!("{p}/indirect-partners/query"), None),
            (
                "GET",
                format!("{p}/indirect-partners/res-east/grants"),
                None,
            ),
            (
                "GET",
                format!("{p}/sub-customers/cust-lumen/authorizations"),
                None,
            ),
            ("GET", format!("{o}?customer_id=cust-kite"), None),
            ("GET", format!("{o}/details/CS2610010800AAA1"), None),
            (
                "GET",
                format!("{o}/CS2610010800AAA1/price-adjustments"),
                None,
            ),
            ("GET", format!("{o}/exports"), None),
            ("GET", format!("{o}/exports/{export_id}"), None),
            ("GET", format!("{o}/exports/{export_id}/file"), None),
            (
                "POST",
                format!("{p}/sub-customers/on-demand-resources/query"),
                Some(json!({"customer_id": "cust-acme"})),
            ),
            (
                "POST",
                "/v2/orders/suscriptions/resources/query".to_owned(),
                Some(json!({"customer_id": "cust-acme"})),
            ),
        ]
        .into_iter()
        .map(move |(method, path, body)| step(who, method, &path, body, 200))
    };
    // The partner routes that write, asked by a customer and by a session.
    let writes = |who: Who| {
        [
            (
                "POST",
                format!("{p}/sub-customers/budget"),
                Some(json!({"customer_id": "cust-pixel", "budget_amount": 100})),
                200,
            ),
            (
                "POST",
                format!("{p}/sub-customers/freeze"),
                Some(json!({"customer_ids": ["cust-radius"], "reason": "trial"})),
                200,
            ),
            (
                "POST",
                format!("{p}/sub-customers/unfreeze"),
                Some(json!({"customer_ids": ["cust-radius"], "reason": "trial"})),
                200,
            ),
            (
                "PUT",
                format!("{p}/indirect-partners/res-east/grants"),
                Some(json!({"budget": true, "freeze": true, "on_behalf": true, "monthly_quota": 10, "one_time_quota": null})),
                200,
            ),
            (
                "POST",
                format!("{o}/CS2611050900AAA2/price-adjustments"),
                Some(json!({"amount_after_adjustment": 1, "reason": "trial"})),
                201,
            ),
            ("POST", format!("{o}/exports"), None, 202),
        ]
        .into_iter()
        .map(move |(method, path, body, status)| step(who, method, &path, body, status))
    };
    // Before the last step, which ends the session.
    let last = all.pop().expect("a last step");
    all.extend(reads(Customer).chain(reads(Session)));
    all.extend(writes(Customer).chain(writes(Session)));
    // Authorizations requested by a customer and by a session, and consents
    // decided inside a session (`{auth:CUSTOMER}`: the id a request made).
    all.extend([
        step(
            Customer,
            "POST",
            &format!("{p}/sub-customers/cust-orbit/authorizations"),
            Some(json!({"scopes": ["om"]})),
            201,
        ),
        step(
            Session,
            "POST",
            &format!("{p}/sub-customers/cust-iris/authorizations"),
            Some(json!({"scopes": ["om"]})),
            201,
        ),
        step(
            Session,
            "POST",
            "/v2/customers/partner-authorizations/{auth:cust-lumen}/approve",
            None,
            200,
        ),
        step(
            Session,
            "POST",
            "/v2/customers/partner-authorizations/{auth:cust-lumen}/revoke",
            None,
            200,
        ),
        step(
            Session,
            "POST",
            "/v2/customers/partner-authorizations/{auth:cust-orbit}/reject",
            None,
            200,
        ),
        // Sessions ended by a session and by a customer (`{made:N}`: the
        // N-th session a step made).
        step(
            Session,
            "POST",
            "/v3/partner-sessions",
            Some(json!({"customer_id": "cust-quartz", "scopes": ["om"]})),
            201,
        ),
        step(
            Session,
            "DELETE",
            "/v3/partner-sessions/{made:1}",
            None,
            204,
        ),
        step(
            Customer,
            "DELETE",
            "/v3/partner-sessions/{made:2}",
            None,
            204,
        ),
    ]);
    all.extend([
        step(
            Session,
            "GET",
            "/v2/customers/partner-authorizations",
            None,
            200,
        ),
        step(Session, "GET", "/v2/customers/partner-activity", None, 200),
        step(Session, "GET", "/v2/customer/orders", None, 200),
        last,
    ]);
    all
}

/// The steps every principal type shares with the first version of this
/// test: each operation at least once.
fn shared_steps(export_id: &str) -> Vec<Step> {
    use Who::*;
    let p = "/v2/partners";
    let o = "/v2/orders/customer-orders";
    vec![
        step(
            Stranger,
            "POST",
            &format!("{p}/sub-customers/query"),
            Some(json!({"limit": 100})),
            200,
        ),
        step(
            Stranger,
            "GET",
            &format!("{p}/sub-customers/cust-nova/overview"),
            None,
            200,
        ),
        step(
            Stranger,
            "GET",
            &format!("{p}/sub-customers/budget?customer_id=cust-pixel"),
            None,
            200,
        ),
        step(
            Stranger,
            "POST",
            &format!("{p}/sub-customers/budget/query"),
            Some(json!({"customer_ids": ["cust-nova", "cust-acme"]})),
            200,
        ),
        step(
            Stranger,
            "GET",
            &format!("{p}/sub-customers/budget/records?customer_id=cust-nova"),
            None,
            200,
        ),
        // A referral customer's budget, with the freeze fields, by a stranger.
        step(
            Stranger,
            "POST",
            &format!("{p}/sub-customers/budget"),
            Some(
                json!({"customer_id": "cust-pixel", "budget_amount": 100, "frozen_operate_type": 1, "cancel_partner_frozen": "1"}),
            ),
            200,
        ),
        step(
            Stranger,
            "POST",
            &format!("{p}/sub-customers/freeze"),
            Some(json!({"customer_ids": ["cust-radius"], "reason": "trial"})),
            200,
        ),
        step(
            Stranger,
            "POST",
            &format!("{p}/sub-customers/unfreeze"),
            Some(json!({"customer_ids": ["cust-radius"], "reason": "trial"})),
            200,
        ),
        step(
            Stranger,
            "POST",
            &format!("{p}/indirect-partners/query"),
            None,
            200,
        ),
        step(
            Stranger,
            "GET",
            &format!("{p}/indirect-partners/res-east/grants"),
            None,
            200,
        ),
        step(
            Stranger,
            "PUT",
            &format!("{p}/indirect-partners/res-east/grants"),
            Some(
                json!({"budget": true, "freeze": true, "on_behalf": true, "monthly_quota": 10, "one_time_quota": null}),
            ),
            200,
        ),
        // A referral customer asked for consent, twice over.
        step(
            Stranger,
            "POST",
            &format!("{p}/sub-customers/cust-lumen/authorizations"),
            Some(json!({"scopes": ["om"]})),
            201,
        ),
        step(
            Stranger,
            "POST",
            &format!("{p}/sub-customers/cust-maple/authorizations"),
            Some(json!({"scopes": ["order"]})),
            201,
        ),
        step(
            Stranger,
            "GET",
            &format!("{p}/sub-customers/cust-lumen/authorizations"),
            None,
            200,
        ),
        step(Stranger, "GET", &format!("{o}?limit=100"), None, 200),
        step(
            Stranger,
            "GET",
            &format!("{o}?customer_id=cust-kite"),
            None,
            200,
        ),
        step(
            Stranger,
            "GET",
            &format!("{o}/details/CS2610010800AAA1"),
            None,
            200,
        ),
        step(
            Stranger,
            "GET",
            &format!("{o}/CS2610010800AAA1/price-adjustments"),
            None,
            200,
        ),
        // A resale customer's order price, by a stranger.
        step(
            Stranger,
            "POST",
            &format!("{o}/CS2611050900AAA2/price-adjustments"),
            Some(json!({"amount_after_adjustment": 1, "reason": "trial"})),
            201,
        ),
        step(Stranger, "POST", &format!("{o}/exports"), None, 202),
        step(Stranger, "GET", &format!("{o}/exports"), None, 200),
        // Someone else's export.
        step(
            Stranger,
            "GET",
            &format!("{o}/exports/{export_id}"),
            None,
            200,
        ),
        step(
            Stranger,
            "GET",
            &format!("{o}/exports/{export_id}/file"),
            None,
            200,
        ),
        step(
            Stranger,
            "POST",
            &format!("{p}/sub-customers/on-demand-resources/query"),
            Some(json!({"customer_id": "cust-acme"})),
            200,
        ),
        step(
            Stranger,
            "POST",
            "/v2/orders/suscriptions/resources/query",
            Some(json!({"customer_id": "cust-acme"})),
            200,
        ),
        // The customer principal decides someone else's consent.
        step(
            Customer,
            "GET",
            "/v2/customers/partner-authorizations",
            None,
            200,
        ),
        step(
            Customer,
            "POST",
            "/v2/customers/partner-authorizations/auth-birch/approve",
            None,
            200,
        ),
        step(
            Customer,
            "POST",
            "/v2/customers/partner-authorizations/auth-birch/revoke",
            None,
            200,
        ),
        step(
            Customer,
            "POST",
            "/v2/customers/partner-authorizations/{auth:cust-maple}/reject",
            None,
            200,
        ),
        step(Customer, "GET", "/v2/customers/partner-activity", None, 200),
        step(
            Customer,
            "POST",
            "/v2/customer/orders",
            Some(
                json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": "p-1"}),
            ),
            201,
        ),
        step(Customer, "GET", "/v2/customer/orders", None, 200),
        step(Customer, "GET", "/v2/customer/resources", None, 200),
        // Someone else's resource.
        step(
            Customer,
            "POST",
            "/v2/customer/resources/vm-acme-web-1/operations",
            Some(json!({"operation": "stop"})),
            200,
        ),
        // A session made without any authorization, ordering for a frozen customer.
        step(
            Session,
            "POST",
            "/v2/customer/orders",
            Some(
                json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p-1", "period_type": 2, "period_num": 1, "amount": 10}),
            ),
            201,
        ),
        step(Session, "GET", "/v2/customer/resources", None, 200),
        step(
            Session,
            "POST",
            "/v2/customer/resources/vm-quartz-old/operations",
            Some(json!({"operation": "renew"})),
            200,
        ),
        step(Stranger, "GET", "/v3/partner-sessions", None, 200),
        step(Customer, "GET", "/v3/partner-sessions", None, 200),
        step(Session, "GET", "/v3/partner-sessions", None, 200),
        // A session switching in again (chaining) is data-valid: only
        // R8-no-role-chaining refuses it.
        step(
            Session,
            "POST",
            "/v3/partner-sessions",
            Some(json!({"customer_id": "cust-quartz", "scopes": ["om"]})),
            201,
        ),
        step(
            Token,
            "GET",
            &format!("{p}/sub-customers/budget?customer_id=cust-nova"),
            None,
            200,
        ),
        // A token minting a token, and a session minting one, are data-valid:
        // only the shipped policies refuse them.
        step(Token, "POST", "/v3/auth/tokens", None, 201),
        step(Customer, "POST", "/v3/auth/tokens", None, 201),
        step(
            Stranger,
            "DELETE",
            "/v3/partner-sessions/{session}",
            None,
            204,
        ),
    ]
}

/// Runs every operation under a policy set that is exactly `permit` or
/// `forbid` of everything.
async fn whole_truth(backend: Backend, permit: bool) {
    let policies = policy_set(if permit {
        "permit (principal, action, resource);"
    } else {
        "forbid (principal, action, resource);"
    });
    let s = DomainServer::start_with(backend, DEMO, policies.path()).await;
    let stranger = s.operator("op-west-am").await;
    let customer = s.customer("cust-kite");

    // What the sequence refers to: someone else's export, a pending
    // consent request, a session switched into a frozen customer.
    let dist = s.operator("op-dist-admin").await;
    let export = s
        .call(
            "POST",
            "/v2/orders/customer-orders/exports",
            Some(&dist),
            None,
        )
        .await;
    let created = s
        .call(
            "POST",
            "/v3/partner-sessions",
            Some(&stranger),
            Some(json!({"customer_id": "cust-quartz", "scopes": ["order", "om"]})),
        )
        .await;
    let token = s
        .call("POST", "/v3/auth/tokens", Some(&stranger), None)
        .await;
    if !permit {
        for (what, r) in [
            ("an export", &export),
            ("a session", &created),
            ("a token", &token),
        ] {
            assert_eq!(r.status, 403, "{what}: {}", text(r));
        }
    }
    let export_id = export.json()["export_id"]
        .as_str()
        .unwrap_or("exp-none")
        .to_owned();
    if permit {
        assert_eq!(export.status, 202, "{}", text(&export));
        assert_eq!(created.status, 201, "{}", text(&created));
        assert!(created.json()["credential"]["securitytoken"].is_string());
        assert_eq!(token.status, 201, "{}", text(&token));
        poll_export(&s, &dist, &export_id).await;
    }
    let session_id = created.json()["session_id"]
        .as_str()
        .unwrap_or("sess-none")
        .to_owned();
    let session = Identity {
        kind: partner_gateway::assertion::CallerKind::Session,
        id: session_id.clone(),
        partner: stranger.partner.clone(),
        customer: Some("cust-quartz".into()),
        source_operator: Some(stranger.id.clone()),
    };
    if permit {
        s.remember_session(&session, &created.json()["credential"]);
    }
    let token_value = token
        .headers
        .get("x-subject-token")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();

    let mut covered: HashSet<(Op, &str)> = [
        (Op::CreateOrderExport, "Operator"),
        (Op::CreateSession, "Operator"),
        (Op::IssueToken, "Operator"),
    ]
    .into_iter()
    .collect();
    // What earlier steps made, named in later paths.
    let mut made: std::collections::HashMap<String, String> = Default::default();
    let mut sessions_made = 0;
    for st in steps(&export_id) {
        let mut path = st.path.replace("{session}", &session_id);
        while let Some(start) = path.find('{') {
            let end = start + path[start..].find('}').unwrap();
            let key = &path[start + 1..end];
            let value = made.get(key).cloned().unwrap_or_else(|| {
                assert!(!permit, "{key} was made by an earlier step");
                if key.starts_with("auth:") {
                    "auth-none"
                } else {
                    "sess-none"
                }
                .to_owned()
            });
            path.replace_range(start..=end, &value);
        }
        let (operation, _) =
            catalog::resolve(&st.method.parse().unwrap(), path.split('?').next().unwrap())
                .unwrap_or_else(|| panic!("{} {path} is in the catalog", st.method));
        covered.insert((operation.op, principal_type(st.who)));
        let body = st
            .body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        let r = match st.who {
            Who::Stranger => {
                s.call_with(st.method, &path, Some(&stranger), &body, &[])
                    .await
            }
            Who::Customer => {
                s.call_with(st.method, &path, Some(&customer), &body, &[])
                    .await
            }
            Who::Session if permit => {
                s.call_with(st.method, &path, Some(&session), &body, &[])
                    .await
            }
            // Under forbid-all no session could be made: its customer's own
            // routes are asked as the customer itself.
            Who::Session => {
                let quartz = s.customer("cust-quartz");
                s.call_with(st.method, &path, Some(&quartz), &body, &[])
                    .await
            }
            Who::Token => {
                s.call_with(
                    st.method,
                    &path,
                    None,
                    &body,
                    &[("X-Auth-Token", &token_value)],
                )
                .await
            }
        };
        let want = if permit { st.permitted } else { 403 };
        // A forbid-all token cannot be had: its calls fail authentication.
        let want = if !permit && matches!(st.who, Who::Token) {
            401
        } else {
            want
        };
        assert_eq!(
            r.status.as_u16(),
            want,
            "{} {path} as {}: {}",
            st.method,
            who_name(st.who),
            text(&r)
        );
        if permit && st.method == "POST" {
            if let Some(customer) = path
                .strip_prefix("/v2/partners/sub-customers/")
                .and_then(|rest| rest.strip_suffix("/authorizations"))
            {
                let id = r.json()["authorization_id"].as_str().unwrap().to_owned();
                made.insert(format!("auth:{customer}"), id);
            }
            if path == "/v3/partner-sessions" {
                sessions_made += 1;
                let id = r.json()["session_id"].as_str().unwrap().to_owned();
                made.insert(format!("made:{sessions_made}"), id);
            }
        }
    }
    let missing: HashSet<(Op, &str)> = admitted()
        .into_iter()
        .filter(|pair| !covered.contains(pair))
        .collect();
    let mut missing: Vec<String> = missing
        .iter()
        .map(|(op, principal)| format!("{} as {principal}", op.name()))
        .collect();
    missing.sort();
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "operations never exercised for a principal type the schema admits"
    );

    if permit {
        // The lists hold everything, whatever the relationships.
        let all = s
            .call(
                "POST",
                "/v2/partners/sub-customers/query",
                Some(&stranger),
                Some(json!({"limit": 100})),
            )
            .await;
        assert_eq!(all.json()["count"], 18);
        let pixel = s.db.store.budget(&"cust-pixel".into()).await.unwrap();
        assert!(pixel.is_some(), "the referral customer's budget was set");
    } else {
        assert!(s
            .db
            .store
            .budget(&"cust-pixel".into())
            .await
            .unwrap()
            .is_none());
        assert!(
            !s.db
                .store
                .customer(&"cust-radius".into())
                .await
                .unwrap()
                .unwrap()
                .frozen
        );
    }
}

/// The Cedar principal type of `who`.
fn principal_type(who: Who) -> &'static str {
    match who {
        Who::Stranger | Who::Token => "Operator",
        Who::Customer => "Customer",
        Who::Session => "Session",
    }
}

/// Every operation with every principal type the schema admits for the
/// action it asks (of its targets, or of a list's items).
fn admitted() -> Vec<(Op, &'static str)> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/partner.cedarschema"),
    )
    .unwrap();
    let (schema, _) = cedar_policy::Schema::from_cedarschema_str(&text).unwrap();
    let mut pairs = Vec::new();
    for o in OPERATIONS.iter() {
        let action = o.check.or(o.list.as_ref().map(|l| l.action)).unwrap();
        let uid: cedar_policy::EntityUid = format!("PartnerCenter::Action::\"{action}\"")
            .parse()
            .unwrap();
        for principal in schema.principals_for_action(&uid).unwrap() {
            let name = principal.basename();
            let name: &'static str = ["Operator", "Customer", "Session"]
                .into_iter()
                .find(|n| *n == name)
                .unwrap();
            pairs.push((o.op, name));
        }
    }
    pairs
}

fn who_name(who: Who) -> &'static str {
    match who {
        Who::Stranger => "a stranger operator",
        Who::Customer => "a customer",
        Who::Session => "a session",
        Who::Token => "a token",
    }
}

async fn poll_export(s: &DomainServer, who: &Identity, id: &str) {
    for _ in 0..500 {
        let r = s
            .call(
                "GET",
                &format!("/v2/orders/customer-orders/exports/{id}"),
                Some(who),
                None,
            )
            .await;
        if r.json()["status"] == "completed" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("export {id} did not complete within 5 s");
}

async fn permit_all(backend: Backend) {
    whole_truth(backend, true).await;
}

async fn forbid_all(backend: Backend) {
    whole_truth(backend, false).await;
}

/// Every operation the catalog says the store serves reaches the store's
/// handler (which refuses a call without an assertion: 401), every one the
/// gateway serves is absent from the store (404), and a path outside the
/// catalog is absent from both.
async fn catalog_and_routers_agree(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let admin = s.operator("op-dist-admin").await;
    for o in OPERATIONS {
        let path = o.path.replace('{', "x-").replace('}', "");
        let at_store = s.store_raw(o.method.as_str(), &path, &[], vec![]).await;
        let want = match o.served_by {
            ServedBy::Store => 401,
            ServedBy::Gateway => 404,
        };
        assert_eq!(
            at_store.status,
            want,
            "{} {} at the store: {}",
            o.method,
            o.path,
            text(&at_store)
        );
        assert!(catalog::resolve(&o.method, &path).is_some());
        // The gateway knows the route (whatever it answers, it is not 404).
        let at_gateway = s
            .call_with(o.method.as_str(), &path, Some(&admin), b"{}", &[])
            .await;
        assert_ne!(
            at_gateway.status, 404,
            "{} {} at the gateway",
            o.method, o.path
        );
    }
    for (method, path) in [
        ("GET", "/v2/partners/sub-customers"),
        ("DELETE", "/v2/partners/sub-customers/query"),
        ("GET", "/v2/customer/orders/x"),
        ("POST", "/v3/partner-sessions/x"),
    ] {
        assert_eq!(
            s.store_raw(method, path, &[], vec![]).await.status,
            404,
            "{method} {path}"
        );
        assert_eq!(
            s.call(method, path, Some(&admin), None).await.status,
            404,
            "{method} {path}"
        );
    }
}

test_on_backends! {
    permit_all_performs_every_operation => permit_all;
    forbid_all_refuses_every_operation => forbid_all;
    catalog_and_routers => catalog_and_routers_agree;
}

/// Every money field reads an amount exactly from a JSON number or a decimal
/// string, and refuses anything else with 400 CBC.0100 naming the field,
/// changing nothing (docs/domain.md section 1).
async fn money_fields(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let finance = s.operator("op-east-finance").await;
    let dist = s.operator("op-dist-admin").await;
    let dist_finance = s.operator("op-dist-finance").await;
    let acme = s.customer("cust-acme");
    // (who, method, path, field, the body with the amount at "$", whether
    // null is meaningful there: no quota)
    let routes: Vec<(&Identity, &str, &str, &str, Value, bool)> = vec![
        (
            &finance,
            "POST",
            "/v2/partners/sub-customers/budget",
            "budget_amount",
            json!({"customer_id": "cust-acme", "budget_amount": "$"}),
            false,
        ),
        (
            &dist_finance,
            "POST",
            "/v2/orders/customer-orders/CS2611161500PPP2/price-adjustments",
            "amount_after_adjustment",
            json!({"amount_after_adjustment": "$", "reason": "r"}),
            false,
        ),
        (
            &dist,
            "PUT",
            "/v2/partners/indirect-partners/res-east/grants",
            "monthly_quota",
            json!({"budget": true, "freeze": false, "on_behalf": true, "monthly_quota": "$", "one_time_quota": null}),
            true,
        ),
        (
            &acme,
            "POST",
            "/v2/customer/orders",
            "amount",
            json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 2, "period_num": 1, "amount": "$"}),
            false,
        ),
    ];
    let with = |body: &Value, amount: Value| {
        let mut b = body.clone();
        for (_, v) in b.as_object_mut().unwrap().iter_mut() {
            if *v == json!("$") {
                *v = amount.clone();
            }
        }
        b
    };
    for (who, method, path, field, body, null_ok) in &routes {
        for good in [json!(100), json!(100.5), json!("100"), json!("100.00")] {
            let r = s
                .call(method, path, Some(who), Some(with(body, good.clone())))
                .await;
            assert!(r.status.is_success(), "{field} = {good}: {}", text(&r));
        }
        let mut bad = vec![
            json!(100.123),
            json!("1e3"),
            json!(-1),
            json!("abc"),
            json!(true),
            json!(2147483648i64),
        ];
        // An order may be adjusted down to 0; nothing else costs 0.
        if *field != "amount_after_adjustment" {
            bad.push(json!(0));
        }
        if !null_ok {
            bad.push(json!(null));
        }
        for value in bad {
            let r = s
                .call(method, path, Some(who), Some(with(body, value.clone())))
                .await;
            assert_eq!(
                (r.status.as_u16(), r.error_code()),
                (400, "CBC.0100".to_owned()),
                "{field} = {value}: {}",
                text(&r)
            );
            let msg = r.json()["error_msg"].as_str().unwrap().to_owned();
            assert!(msg.contains(field), "{field} = {value}: {msg}");
        }
    }
    // What the last good call set is exactly 100.00.
    let budget =
        s.db.store
            .budget(&"cust-acme".into())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(budget.amount.to_string(), "100.00");
}

test_on_backends! {
    money_reads_exactly => money_fields;
}

/// The operations table of policies/README.md, rendered from the catalog.
fn operations_table() -> String {
    let mut out = String::from(
        "| operation | route | each target it names | each item it lists | answered by |\n|---|---|---|---|---|\n",
    );
    for o in OPERATIONS {
        let code = |s: &str| format!("`{s}`");
        let target = o.check.map(code).unwrap_or_default();
        let mut item = o
            .list
            .map(|l| format!("`{}` on each {}", l.action, l.item.name()))
            .unwrap_or_default();
        if o.masks_contact {
            item.push_str("; contact fields masked unless `RevealContact` allows");
        }
        let by = match o.served_by {
            ServedBy::Store => "domain store",
            ServedBy::Gateway => "gateway",
        };
        out.push_str(&format!(
            "| {} | `{} {}` | {target} | {item} | {by} |\n",
            o.op.name(),
            o.method,
            o.path
        ));
    }
    out
}

/// The operations table in policies/README.md is the catalog's
/// (`PGW_BLESS=1` rewrites it).
#[test]
fn operations_table_in_policies_readme_is_the_catalog() {
    let path = crate::kit::policies_dir().join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (begin, end) = ("<!-- operations:begin -->\n", "<!-- operations:end -->");
    let start = text.find(begin).expect("begin marker") + begin.len();
    let stop = text.find(end).expect("end marker");
    let table = operations_table();
    if text[start..stop] == table {
        return;
    }
    if std::env::var_os("PGW_BLESS").is_some() {
        std::fs::write(&path, format!("{}{table}{}", &text[..start], &text[stop..])).unwrap();
        return;
    }
    panic!(
        "policies/README.md's operations table differs from the catalog; run \
         `PGW_BLESS=1 cargo test --test it operations_table` to rewrite it. Expected:\n{table}"
    );
}

/// Every action of the schema that applies to requests is one the gateway
/// asks (`catalog::action_named`: AuthZEN takes no other), and the other
/// way round.
#[test]
fn the_schema_actions_are_the_ones_the_gateway_asks() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/partner.cedarschema"),
    )
    .unwrap();
    let (schema, _) = cedar_policy::Schema::from_cedarschema_str(&text).unwrap();
    let mut applying: Vec<String> = schema
        .actions()
        .filter(|a| {
            schema
                .principals_for_action(a)
                .is_some_and(|mut p| p.next().is_some())
        })
        .map(|a| a.id().unescaped().to_owned())
        .collect();
    applying.sort();
    for name in &applying {
        assert_eq!(catalog::action_named(name), Some(name.as_str()), "{name}");
    }
    let mut asked: Vec<&str> = OPERATIONS
        .iter()
        .flat_map(|o| o.check.into_iter().chain(o.list.map(|l| l.action)))
        .chain([catalog::contact::REVEAL_CONTACT])
        .collect();
    asked.sort();
    asked.dedup();
    assert_eq!(asked, applying);
    assert_eq!(
        catalog::action_named("PartnerLevel"),
        None,
        "a group is asked of no request"
    );
}
