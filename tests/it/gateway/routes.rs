//! Every route of docs/domain.md section 3 through the gateway, for an allowed and
//! a denied principal, and every rule R1–R7 and R12 at least once over HTTP
//! (R8–R11 need assume-role sessions: see the sessions tests).

use super::TestGateway;
use crate::test_on_backends;
use partner_gateway::store::Backend;
use serde_json::{json, Value};

/// (who, method, path, body, expected status, expected error code when not 2xx)
type Case = (
    &'static str,
    &'static str,
    String,
    Option<Value>,
    u16,
    Option<&'static str>,
);

async fn run(gw: &TestGateway, cases: Vec<Case>) {
    for (who, method, path, body, status, code) in cases {
        let answer = gw.call(who, method, &path, body.clone()).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{who} {method} {path} {body:?} -> {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        if let Some(code) = code {
            assert_eq!(
                answer.error_code(),
                code,
                "{who} {method} {path}: {}",
                String::from_utf8_lossy(&answer.body)
            );
        }
    }
}

fn case(
    who: &'static str,
    method: &'static str,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: Option<&'static str>,
) -> Case {
    (who, method, path.to_owned(), body, status, code)
}

const DENIED: Option<&str> = Some("CBC.0151");

/// One customer of a ListSubCustomers answer.
fn listed_customer(answer: &partner_gateway::client::Answer, id: &str) -> Value {
    answer.json()["customer_infos"]
        .as_array()
        .expect("a customer list")
        .iter()
        .find(|c| c["customer_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not listed"))
}

async fn partner_routes_allow_and_deny(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    run(&gw, vec![
        // R1: customers, within the hierarchy; a customer principal lists no partner's customers.
        case("op-dist-admin", "POST", "/v2/partners/sub-customers/query", Some(json!({"offset": 0, "limit": 100})), 200, None),
        case("cust-acme", "POST", "/v2/partners/sub-customers/query", Some(json!({})), 403, DENIED),
        case("op-east-admin", "GET", "/v2/partners/sub-customers/cust-acme/overview", None, 200, None),
        case("op-west-admin", "GET", "/v2/partners/sub-customers/cust-acme/overview", None, 403, DENIED),
        // An unknown customer looks exactly like a forbidden one.
        case("op-west-admin", "GET", "/v2/partners/sub-customers/cust-nobody/overview", None, 403, DENIED),
        // R1: budgets (view).
        case("op-east-finance", "GET", "/v2/partners/sub-customers/budget?customer_id=cust-acme", None, 200, None),
        case("op-west-admin", "GET", "/v2/partners/sub-customers/budget?customer_id=cust-acme", None, 403, DENIED),
        case("op-east-admin", "POST", "/v2/partners/sub-customers/budget/query", Some(json!({"customer_ids": ["cust-acme", "cust-birch"]})), 200, None),
        case("op-east-finance", "GET", "/v2/partners/sub-customers/budget/records?customer_id=cust-acme", None, 200, None),
        case("op-sp-admin", "GET", "/v2/partners/sub-customers/budget/records?customer_id=cust-acme", None, 403, DENIED),
        // R3: the reseller with the budget grant sets budgets within quota; its distributor no longer does.
        case("op-east-finance", "POST", "/v2/partners/sub-customers/budget", Some(json!({"customer_id": "cust-acme", "budget_amount": 600.00, "budget_type": "MONTHLY"})), 200, None),
        case("op-dist-finance", "POST", "/v2/partners/sub-customers/budget", Some(json!({"customer_id": "cust-acme", "budget_amount": 600.00})), 403, DENIED),
        case("op-east-finance", "POST", "/v2/partners/sub-customers/budget", Some(json!({"customer_id": "cust-acme", "budget_amount": 6000.00})), 403, Some("CBC.99005031")),
        case("op-dist-finance", "POST", "/v2/partners/sub-customers/budget", Some(json!({"customer_id": "cust-pixel", "budget_amount": 10.00})), 403, Some("CBC.99005024")),
        // R3: without the freeze grant the distributor freezes the reseller's customers, not the reseller.
        case("op-dist-finance", "POST", "/v2/partners/sub-customers/freeze", Some(json!({"customer_ids": ["cust-ember"], "reason": "arrears", "freeze_type": "ACCOUNT"})), 200, None),
        case("op-east-finance", "POST", "/v2/partners/sub-customers/freeze", Some(json!({"customer_ids": ["cust-delta"], "reason": "arrears"})), 403, DENIED),
        case("op-dist-admin", "POST", "/v2/partners/sub-customers/unfreeze", Some(json!({"customer_ids": ["cust-quartz"], "reason": "paid", "unfreeze_type": "ACCOUNT"})), 200, None),
        case("op-dist-ops", "POST", "/v2/partners/sub-customers/unfreeze", Some(json!({"customer_ids": ["cust-ember"], "reason": "paid"})), 403, DENIED),
        // R1: orders.
        case("op-east-admin", "GET", "/v2/orders/customer-orders?customer_id=cust-acme&limit=10&offset=0", None, 200, None),
        case("op-west-admin", "GET", "/v2/orders/customer-orders?customer_id=cust-acme", None, 403, DENIED),
        case("op-dist-admin", "GET", "/v2/orders/customer-orders/details/CS2610010800AAA1", None, 200, None),
        case("op-west-am", "GET", "/v2/orders/customer-orders/details/CS2610010800AAA1", None, 403, DENIED),
        case("op-dist-admin", "GET", "/v2/orders/customer-orders/CS2610251400PPP1/price-adjustments", None, 200, None),
        case("op-sp-admin", "GET", "/v2/orders/customer-orders/CS2610251400PPP1/price-adjustments", None, 403, DENIED),
        // R4: price adjustment, referral customers only, admin or finance of the direct partner.
        case("op-dist-finance", "POST", "/v2/orders/customer-orders/CS2611161500PPP2/price-adjustments", Some(json!({"amount_after_adjustment": "250.00", "reason": "loyalty"})), 201, None),
        case("op-east-finance", "POST", "/v2/orders/customer-orders/CS2611050900AAA2/price-adjustments", Some(json!({"amount_after_adjustment": "100.00", "reason": "x"})), 403, Some("CBC.99005024")),
        case("op-dist-ops", "POST", "/v2/orders/customer-orders/CS2611161500PPP2/price-adjustments", Some(json!({"amount_after_adjustment": "200.00", "reason": "x"})), 403, DENIED),
        // R1: exports.
        case("op-east-admin", "POST", "/v2/orders/customer-orders/exports", Some(json!({"order_ids": ["CS2610010800AAA1"]})), 202, None),
        case("op-west-admin", "POST", "/v2/orders/customer-orders/exports", Some(json!({"order_ids": ["CS2610010800AAA1"]})), 403, DENIED),
        case("op-east-admin", "GET", "/v2/orders/customer-orders/exports", None, 200, None),
        case("cust-acme", "GET", "/v2/orders/customer-orders/exports", None, 403, DENIED),
        // R1: resources.
        case("op-east-ops", "POST", "/v2/partners/sub-customers/on-demand-resources/query", Some(json!({"customer_id": "cust-acme", "offset": 0, "limit": 10})), 200, None),
        case("op-west-admin", "POST", "/v2/partners/sub-customers/on-demand-resources/query", Some(json!({"customer_id": "cust-acme"})), 403, DENIED),
        case("op-east-ops", "POST", "/v2/orders/suscriptions/resources/query", Some(json!({"customer_id": "cust-acme", "offset": 0, "limit": 10})), 200, None),
        case("op-west-admin", "POST", "/v2/orders/suscriptions/resources/query", Some(json!({"customer_id": "cust-acme"})), 403, DENIED),
        // R5: resellers and grants.
        case("op-dist-admin", "POST", "/v2/partners/indirect-partners/query", Some(json!({"offset": 0, "limit": 10})), 200, None),
        // A reseller's admin may list no reseller at all: refused, not an
        // empty list (policies/README.md, Lists).
        case("op-east-admin", "POST", "/v2/partners/indirect-partners/query", None, 403, DENIED),
        case("op-dist-admin", "GET", "/v2/partners/indirect-partners/res-east/grants", None, 200, None),
        case("op-dist-finance", "GET", "/v2/partners/indirect-partners/res-east/grants", None, 403, DENIED),
        case("op-east-admin", "PUT", "/v2/partners/indirect-partners/res-west/grants", Some(json!({"budget": true, "freeze": false, "on_behalf": false, "monthly_quota": "100.00", "one_time_quota": null})), 403, DENIED),
        case("op-dist-admin", "PUT", "/v2/partners/indirect-partners/res-west/grants", Some(json!({"budget": true, "freeze": false, "on_behalf": false, "monthly_quota": "100.00", "one_time_quota": null})), 200, None),
        // R6: requesting authorizations; a reseller needs on_behalf, its distributor does not.
        case("op-west-admin", "POST", "/v2/partners/sub-customers/cust-iris/authorizations", Some(json!({"scopes": ["om"], "duration_days": 30})), 403, Some("CBC.99005033")),
        case("op-dist-ops", "POST", "/v2/partners/sub-customers/cust-iris/authorizations", Some(json!({"scopes": ["om"], "duration_days": 30})), 201, None),
        case("op-sp-admin", "POST", "/v2/partners/sub-customers/cust-lumen/authorizations", Some(json!({"scopes": ["om"]})), 403, Some("CBC.99005024")),
        case("op-east-admin", "GET", "/v2/partners/sub-customers/cust-acme/authorizations", None, 200, None),
        case("op-west-admin", "GET", "/v2/partners/sub-customers/cust-acme/authorizations", None, 403, DENIED),
        // R7: the customer decides on its own authorizations only.
        case("cust-birch", "GET", "/v2/customers/partner-authorizations", None, 200, None),
        case("op-east-admin", "GET", "/v2/customers/partner-authorizations", None, 403, DENIED),
        case("cust-acme", "POST", "/v2/customers/partner-authorizations/auth-birch/approve", None, 403, DENIED),
        case("cust-birch", "POST", "/v2/customers/partner-authorizations/auth-birch/reject", None, 200, None),
        case("cust-birch", "POST", "/v2/customers/partner-authorizations/auth-acme/revoke", None, 403, DENIED),
        case("cust-acme", "POST", "/v2/customers/partner-authorizations/auth-acme/revoke", None, 200, None),
        case("op-east-ops", "POST", "/v2/partners/sub-customers/cust-birch/authorizations", Some(json!({"scopes": ["om", "order"], "duration_days": 90})), 201, None),
        case("cust-acme", "GET", "/v2/customers/partner-activity", None, 200, None),
        case("op-east-admin", "GET", "/v2/customers/partner-activity", None, 403, DENIED),
        // The customer's own account (customer-self rules); operators act there only through sessions.
        case("cust-acme", "GET", "/v2/customer/orders", None, 200, None),
        case("op-east-admin", "GET", "/v2/customer/orders", None, 403, DENIED),
        case("cust-acme", "GET", "/v2/customer/resources", None, 200, None),
        case("op-east-admin", "GET", "/v2/customer/resources", None, 403, DENIED),
        case("cust-acme", "POST", "/v2/customer/resources/vm-acme-web-2/operations", Some(json!({"operation": "start"})), 200, None),
        case("cust-birch", "POST", "/v2/customer/resources/vm-acme-web-2/operations", Some(json!({"operation": "stop"})), 403, DENIED),
        case("cust-acme", "POST", "/v2/customer/orders", Some(json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "00301-ec2-c6.large.2", "period_type": 2, "period_num": 1, "amount": "100.00"})), 201, None),
        case("op-east-admin", "POST", "/v2/customer/orders", Some(json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": "p"})), 403, DENIED),
        // R9 for the customer itself: a frozen customer does not order.
        case("cust-glacier", "POST", "/v2/customer/orders", Some(json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": "p"})), 403, Some("CBC.99005036")),
        // Authentication: tokens.
        case("op-dist-admin", "POST", "/v3/auth/tokens", None, 201, None),
    ])
    .await;

    // A budget list holds only the budgets the caller may view (ViewBudget per
    // customer): another reseller's customer is left out, not an error.
    let budgets = gw
        .call(
            "op-east-admin",
            "POST",
            "/v2/partners/sub-customers/budget/query",
            Some(json!({"customer_ids": ["cust-acme", "cust-harbor"]})),
        )
        .await;
    assert_eq!(budgets.status, 200);
    let listed: Vec<Value> = budgets.json()["budget_infos"].as_array().cloned().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["customer_id"], "cust-acme");

    // Exports: status and file for the owner only; another operator's export looks unknown.
    let export = gw
        .call(
            "op-east-admin",
            "POST",
            "/v2/orders/customer-orders/exports",
            Some(json!({"order_ids": ["CS2610010800AAA1"]})),
        )
        .await;
    assert_eq!(
        export.status,
        202,
        "{}",
        String::from_utf8_lossy(&export.body)
    );
    let export_id = export.json()["export_id"].as_str().unwrap().to_owned();
    let status_path = format!("/v2/orders/customer-orders/exports/{export_id}");
    let mut completed = false;
    for _ in 0..500 {
        let shown = gw.call("op-east-admin", "GET", &status_path, None).await;
        assert_eq!(
            shown.status,
            200,
            "{}",
            String::from_utf8_lossy(&shown.body)
        );
        if shown.json()["status"] == "completed" {
            completed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(completed, "the export completes within 5 s");
    let file = gw
        .call("op-east-admin", "GET", &format!("{status_path}/file"), None)
        .await;
    assert_eq!(file.status, 200);
    assert!(String::from_utf8_lossy(&file.body).contains("CS2610010800AAA1"));
    for path in [status_path.clone(), format!("{status_path}/file")] {
        let foreign = gw.call("op-east-finance", "GET", &path, None).await;
        assert_eq!(foreign.status, 403, "{path}");
        assert_eq!(foreign.error_code(), "CBC.0151");
    }

    // The frozen state written through the gateway is seen by the very next decision.
    let frozen = gw
        .call(
            "op-dist-finance",
            "POST",
            "/v2/partners/sub-customers/freeze",
            Some(json!({"customer_ids": ["cust-acme"], "reason": "arrears"})),
        )
        .await;
    assert_eq!(
        frozen.status,
        200,
        "{}",
        String::from_utf8_lossy(&frozen.body)
    );
    let order = gw
        .call("cust-acme", "POST", "/v2/customer/orders", Some(json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": "p"})))
        .await;
    assert_eq!(order.status, 403);
    assert_eq!(order.error_code(), "CBC.99005036");
    gw.running.stop().await;
}

async fn lists_are_filtered_and_masked(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    // An account manager alone sees only the customers it manages.
    let listed = gw
        .call(
            "op-east-am",
            "POST",
            "/v2/partners/sub-customers/query",
            Some(json!({"limit": 100})),
        )
        .await;
    assert_eq!(listed.status, 200);
    let ids: Vec<String> = listed.json()["customer_infos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ["cust-acme", "cust-birch", "cust-ember"]);
    assert_eq!(listed.json()["count"], 3);
    // Masked by default.
    let acme = listed_customer(&listed, "cust-acme");
    assert_ne!(acme["email"], "it@acme.example");
    // R2: an account manager reveals; a finance operator asking to reveal still sees masks.
    let revealed = gw
        .call_raw(
            Some(&gw.credentials("op-east-am")),
            "POST",
            "/v2/partners/sub-customers/query",
            br#"{"limit": 100}"#,
            &[("X-Reveal-Contact", "email")],
        )
        .await;
    let acme = listed_customer(&revealed, "cust-acme");
    assert_eq!(acme["email"], "it@acme.example", "{acme}");
    assert_ne!(
        acme["telephone"], "+1-555-0106",
        "only the requested field is revealed: {acme}"
    );
    let refused = gw
        .call_raw(
            Some(&gw.credentials("op-east-finance")),
            "POST",
            "/v2/partners/sub-customers/query",
            br#"{"limit": 100}"#,
            &[("X-Reveal-Contact", "email,phone")],
        )
        .await;
    assert_eq!(refused.status, 200);
    for c in refused.json()["customer_infos"].as_array().unwrap() {
        assert!(
            !c["email"].as_str().unwrap_or_default().starts_with("it@"),
            "finance may not reveal: {c}"
        );
    }
    let bad = gw
        .call_raw(
            Some(&gw.credentials("op-east-am")),
            "POST",
            "/v2/partners/sub-customers/query",
            b"{}",
            &[("X-Reveal-Contact", "password")],
        )
        .await;
    assert_eq!(bad.status, 400);

    // Orders over the whole scope: the reseller sees only its own customers' orders.
    let orders = gw
        .call(
            "op-east-admin",
            "GET",
            "/v2/orders/customer-orders?limit=100",
            None,
        )
        .await;
    assert_eq!(
        orders.status,
        200,
        "{}",
        String::from_utf8_lossy(&orders.body)
    );
    let customers: Vec<String> = orders.json()["order_infos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["customer_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!customers.is_empty());
    assert!(
        customers.iter().all(
            |c| ["cust-acme", "cust-birch", "cust-fjord", "cust-glacier"].contains(&c.as_str())
        ),
        "{customers:?}"
    );

    // A batch is all or nothing and names the denied ids.
    let batch = gw
        .call(
            "op-dist-finance",
            "POST",
            "/v2/partners/sub-customers/freeze",
            Some(json!({"customer_ids": ["cust-ember", "cust-kite"], "reason": "arrears"})),
        )
        .await;
    assert_eq!(batch.status, 403);
    let details = batch.json()["error_details"].as_array().cloned().unwrap();
    assert_eq!(details.len(), 1);
    assert_eq!(details[0]["id"], "cust-kite");
    let ember = gw
        .db
        .store
        .customer(&"cust-ember".into())
        .await
        .unwrap()
        .unwrap();
    assert!(!ember.frozen, "nothing was changed");
    gw.running.stop().await;
}

test_on_backends! {
    partner_routes => partner_routes_allow_and_deny;
    list_filtering => lists_are_filtered_and_masked;
}
