//! The partner-side routes of the domain store over a real socket, on SQLite
//! and PostgreSQL: customers (list, masking, overview), budgets, freeze and
//! unfreeze, resellers and their grants, authorizations and partner activity.
//! One server per area; each area checks success shapes, parameter errors,
//! business refusals, paging and scoping.

use crate::kit::DomainServer;
use crate::test_on_backends;
use partner_gateway::assertion::Identity;
use partner_gateway::model::{AuthorizationScope, Customer};
use partner_gateway::store::Backend;
use serde_json::{json, Value};

use super::support::{assert_error, body_text, get, ok, post, same_as_unknown, DEMO};

/// The sorted `customer_id`s of a ListSubCustomers answer.
fn customer_ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["customer_infos"]
        .as_array()
        .expect("customer_infos")
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn strs(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

async fn list_all(s: &DomainServer, who: &Identity) -> Value {
    ok(&post(
        s,
        who,
        "/v2/partners/sub-customers/query",
        json!({"limit": 100}),
    )
    .await)
}

async fn session(s: &DomainServer) -> Identity {
    s.session(
        "sess-1",
        "op-east-ops",
        "cust-acme",
        vec![AuthorizationScope::Om],
    )
    .await
}

// ---- customers --------------------------------------------------------------

/// The demo data plus one customer whose overview data lies relative to now.
fn overview_fixture() -> String {
    use chrono::{Datelike, Duration, NaiveDate, Utc};
    let now = Utc::now();
    let at = |days: i64| {
        (now + Duration::days(days))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let this_month = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap();
    let last_month = this_month - chrono::Months::new(1);
    let two_ago = this_month - chrono::Months::new(2);
    let last_day_of_last = this_month - Duration::days(1);
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let mut fx: Value = serde_json::from_str(DEMO).unwrap();
    let push =
        |fx: &mut Value, section: &str, v: Value| fx[section].as_array_mut().unwrap().push(v);
    push(
        &mut fx,
        "customers",
        json!({
        "id": "cust-ovw", "account_name": "overview-co", "name": "Overview Co", "partner": "res-east",
        "association": "reseller", "associated_on": "2025-01-01T00:00:00Z"}),
    );
    push(
        &mut fx,
        "budgets",
        json!({"customer": "cust-ovw", "budget_type": "MONTHLY", "amount": "1000.00", "used": "250.40"}),
    );
    for (id, balance, status, days) in [
        ("cp-1", "40.00", "available", 3),
        ("cp-2", "60.00", "available", 10),
        ("cp-3", "5.00", "used", 2),
        ("cp-4", "7.00", "available", -1),
    ] {
        push(
            &mut fx,
            "coupons",
            json!({"id": id, "customer": "cust-ovw", "face_value": "100.00",
            "balance": balance, "status": status, "expire_at": at(days)}),
        );
    }
    // Unpaid: pending payment (6) and pending approval (1); not completed (5,
    // paid) nor cancelled (4).
    for (id, status) in [("ovw-o1", 6), ("ovw-o2", 1), ("ovw-o3", 5), ("ovw-o4", 4)] {
        let mut o = json!({"id": id, "customer": "cust-ovw", "status": status, "order_type": 1,
            "service_type_code": "hws.service.type.ec2", "amount": "10.00", "created_at": at(-3)});
        if status == 5 {
            o["payment_time"] = json!(at(-2));
        }
        push(&mut fx, "orders", o);
    }
    for (id, status, days) in [
        ("r-3d", "in_use", Some(3)),
        ("r-10d", "stopped", Some(10)),
        ("r-20d", "frozen", Some(20)),
        ("r-40d", "in_use", Some(40)),
        ("r-closed", "closed", Some(5)),
        ("r-past", "in_use", Some(-1)),
        ("r-ppu", "in_use", None),
    ] {
        let charging = if days.is_some() {
            "yearly_monthly"
        } else {
            "pay_per_use"
        };
        let mut r = json!({"id": id, "customer": "cust-ovw", "charging": charging,
            "service_type_code": "hws.service.type.ec2", "name": id, "status": status});
        if let Some(d) = days {
            r["expire_at"] = json!(at(d));
        }
        push(&mut fx, "resources", r);
    }
    for (id, amount, on) in [
        ("e-mtd-1", "100.00", day(this_month)),
        ("e-mtd-2", "50.50", day(now.date_naive())),
        ("e-last-1", "200.00", day(last_month)),
        ("e-last-2", "100.00", day(last_day_of_last)),
        ("e-old", "999.00", day(two_ago)),
        ("e-future", "7.77", at(2)),
    ] {
        push(
            &mut fx,
            "expenditures",
            json!({"id": id, "customer": "cust-ovw",
            "service_type_code": "hws.service.type.ec2", "amount": amount, "spent_on": on}),
        );
    }
    fx.to_string()
}

async fn customers_list_masking_and_overview(backend: Backend) {
    let s = DomainServer::start(backend, &overview_fixture()).await;
    let dist = s.operator("op-dist-admin").await;
    let q = "/v2/partners/sub-customers/query";

    // Shape, default paging, order (most recently associated first), count across pages.
    let page = ok(&post(&s, &dist, q, json!({})).await);
    assert_eq!(page["count"], 16);
    let infos = page["customer_infos"].as_array().unwrap();
    assert_eq!(infos.len(), 10);
    assert_eq!(infos[0]["customer_id"], "cust-jade");
    let rest = ok(&post(&s, &dist, q, json!({"offset": 10, "limit": 10})).await);
    assert_eq!(rest["count"], 16);
    assert_eq!(rest["customer_infos"].as_array().unwrap().len(), 6);
    let beyond = ok(&post(&s, &dist, q, json!({"offset": 100})).await);
    assert_eq!(
        (
            beyond["count"].as_i64(),
            beyond["customer_infos"].as_array().unwrap().len()
        ),
        (Some(16), 0)
    );
    // No body at all is an empty query (the SDK sends none for an unset body).
    let raw = s.call("POST", q, Some(&dist), None).await;
    assert_eq!(ok(&raw)["count"], 16);

    let nova = ok(&post(&s, &dist, q, json!({"customer_id": "cust-nova"})).await);
    assert_eq!(nova["count"], 1);
    let c = &nova["customer_infos"][0];
    for field in [
        "customer",
        "account_name",
        "customer_id",
        "associated_on",
        "association_type",
        "label",
        "telephone",
        "verified_status",
        "country_code",
        "customer_type",
        "is_frozen",
        "account_managers",
        "xaccount_id",
        "xaccount_type",
        "customer_level",
        "email",
    ] {
        assert!(
            c.get(field).is_some(),
            "CustomerInformation.{field} missing: {c}"
        );
    }
    assert_eq!(c["account_name"], "nova-retail");
    assert_eq!(c["associated_on"], "2024-05-10T00:00:00Z");
    assert_eq!(c["association_type"], "3");
    assert_eq!(c["label"], "vip");
    assert_eq!(c["is_frozen"], 0);
    assert_eq!(
        c["account_managers"],
        json!([{"account_name": "op-dist-am"}])
    );
    // Contact fields masked by default...
    assert_eq!(c["customer"], "N***");
    assert_eq!(c["email"], "i***@nova-retail.example");
    assert_eq!(c["telephone"], "+1-555-****");
    let quartz = ok(&post(&s, &dist, q, json!({"customer_id": "cust-quartz"})).await);
    assert_eq!(quartz["customer_infos"][0]["is_frozen"], 1);
    let acme = ok(&post(&s, &dist, q, json!({"account_name": "acme"})).await);
    assert_eq!(acme["customer_infos"][0]["label"], "vip,manufacturing");

    // ...and in clear only when asked for and RevealContact allows (R2).
    let body = serde_json::to_vec(&json!({"customer_id": "cust-nova"})).unwrap();
    let reveal = |who, fields: &'static str| {
        let body = body.clone();
        let s = &s;
        async move {
            s.call_with("POST", q, Some(who), &body, &[("X-Reveal-Contact", fields)])
                .await
        }
    };
    let revealed = ok(&reveal(&dist, "name,email,phone").await);
    let c = &revealed["customer_infos"][0];
    assert_eq!(c["customer"], "Nova Retail Ltd");
    assert_eq!(c["email"], "it@nova-retail.example");
    assert_eq!(c["telephone"], "+1-555-0101");
    let only_name = ok(&reveal(&dist, "name").await);
    assert_eq!(
        only_name["customer_infos"][0]["customer"],
        "Nova Retail Ltd"
    );
    assert_eq!(
        only_name["customer_infos"][0]["email"],
        "i***@nova-retail.example"
    );
    // The finance operator may not reveal (R2): the fields stay masked.
    let finance = s.operator("op-dist-finance").await;
    let masked = ok(&reveal(&finance, "name,email").await);
    assert_eq!(masked["customer_infos"][0]["customer"], "N***");
    assert_error(&reveal(&dist, "everything").await, 400, "CBC.0100");

    // Filters.
    for (filter, want) in [
        (json!({"association_type": "3"}), 12),
        (json!({"association_type": "1"}), 4),
        (json!({"account_name": "ACME"}), 1),
        (json!({"account_name": "%"}), 0),
        (json!({"account_name": "", "customer": null}), 16),
        (
            json!({"associated_on_begin": "2025-01-01T00:00:00Z", "associated_on_end": "2025-12-31T23:59:59Z"}),
            10,
        ),
        // A customer outside the caller's reach is simply not there.
        (json!({"customer_id": "cust-kite"}), 0),
    ] {
        let v = ok(&post(&s, &dist, q, filter.clone()).await);
        assert_eq!(v["count"], want, "{filter}");
    }
    for (filter, want) in [
        (json!({"customer": "retail"}), &["cust-nova"][..]),
        (json!({"label": "vip"}), &["cust-acme", "cust-nova"]),
        (
            json!({"indirect_partner_id": "res-west"}),
            &["cust-harbor", "cust-iris", "cust-jade"],
        ),
    ] {
        let v = ok(&post(&s, &dist, q, filter.clone()).await);
        assert_eq!(customer_ids(&v), strs(want), "{filter}");
    }

    // Parameter errors.
    for (body, code) in [
        (json!({"limit": 0}), "CBC.0101"),
        (json!({"limit": 101}), "CBC.0101"),
        (json!({"offset": -1}), "CBC.0101"),
        (json!({"limit": "ten"}), "CBC.0100"),
        (json!({"association_type": "2"}), "CBC.0101"),
        (json!({"association_type": 3}), "CBC.0100"),
        (json!({"associated_on_begin": "yesterday"}), "CBC.0100"),
        (
            json!({"associated_on_begin": "2026-01-02T00:00:00Z", "associated_on_end": "2026-01-01T00:00:00Z"}),
            "CBC.0101",
        ),
        (json!({"no_such_filter": 1}), "CBC.0100"),
    ] {
        assert_error(&post(&s, &dist, q, body.clone()).await, 400, code);
    }
    assert_error(
        &s.call_with("POST", q, Some(&dist), b"{", &[]).await,
        400,
        "CBC.0100",
    );
    // indirect_partner_id narrows to that reseller's own customers: one that
    // is no reseller of the caller's narrows to nothing.
    for reseller in ["res-nope", "sp-blue"] {
        let v = ok(&post(&s, &dist, q, json!({"indirect_partner_id": reseller})).await);
        assert_eq!(v["count"], 0, "{reseller}");
    }

    // Scoping: each operator sees exactly its reach.
    for (op, expected) in [
        ("op-dist-am", vec!["cust-nova", "cust-radius"]),
        (
            "op-east-admin",
            vec![
                "cust-acme",
                "cust-birch",
                "cust-cedar",
                "cust-delta",
                "cust-ember",
                "cust-fjord",
                "cust-glacier",
                "cust-ovw",
            ],
        ),
        ("op-east-am", vec!["cust-acme", "cust-birch", "cust-ember"]),
        (
            "op-west-admin",
            vec!["cust-harbor", "cust-iris", "cust-jade"],
        ),
        ("op-west-am", vec!["cust-harbor"]),
        ("op-sp-admin", vec!["cust-kite", "cust-lumen", "cust-maple"]),
    ] {
        let who = s.operator(op).await;
        let all = list_all(&s, &who).await;
        assert_eq!(customer_ids(&all), strs(&expected), "{op}");
        assert_eq!(
            all["count"].as_u64().unwrap() as usize,
            expected.len(),
            "{op}"
        );
    }
    // An account manager combined with another role reaches the whole hierarchy.
    assert_eq!(
        list_all(&s, &s.operator("op-dist-am-fin").await).await["count"],
        16
    );
    // indirect_partner_id narrows to that reseller's own customers: for a
    // reseller naming another, to none it may view.
    let east = s.operator("op-east-admin").await;
    assert_eq!(
        ok(&post(&s, &east, q, json!({"indirect_partner_id": "res-west"})).await)["count"],
        0
    );
    // A session, or a customer, never reaches a partner route.
    assert_error(
        &post(&s, &session(&s).await, q, json!({})).await,
        403,
        "CBC.0151",
    );
    assert_error(
        &post(&s, &s.customer("cust-acme"), q, json!({})).await,
        403,
        "CBC.0151",
    );

    // Overview, computed from data relative to now.
    let path = "/v2/partners/sub-customers/cust-ovw/overview";
    let resp = get(&s, &east, path).await;
    let o = ok(&resp);
    assert_eq!(o["customer_id"], "cust-ovw");
    assert_eq!(
        (o["measure_id"].as_i64(), o["currency"].as_str()),
        (Some(1), Some("USD"))
    );
    assert_eq!(
        o["budget"],
        json!({"budget_type": "MONTHLY", "budget_amount": 1000.0, "used_amount": 250.4, "usage_percentage": 25.04})
    );
    let raw = body_text(&resp);
    assert!(
        raw.contains(r#""budget_amount":1000.00"#) && raw.contains(r#""used_amount":250.40"#),
        "{raw}"
    );
    assert_eq!(
        o["coupons_expiring"],
        json!({"days": 7, "count": 1, "balance": 40.0})
    );
    assert_eq!(o["orders"], json!({"unpaid_count": 2, "total_count": 4}));
    assert_eq!(
        o["resources_expiring"],
        json!({"within_7_days": 1, "within_15_days": 2, "within_30_days": 3})
    );
    assert!(raw.contains(r#""month_to_date":150.50"#), "{raw}");
    assert!(raw.contains(r#""last_month":300.00"#), "{raw}");
    assert!(raw.contains(r#""change_amount":-149.50"#), "{raw}");
    assert!(raw.contains(r#""change_percentage":-49.83"#), "{raw}");
    // The distributor reaches it too; another reseller, an unknown id, a session do not.
    ok(&get(&s, &dist, path).await);
    let west_admin = s.operator("op-west-admin").await;
    let foreign = get(&s, &west_admin, path).await;
    let unknown = get(
        &s,
        &west_admin,
        "/v2/partners/sub-customers/cust-nope/overview",
    )
    .await;
    same_as_unknown(&foreign, &unknown);
    assert_error(&get(&s, &session(&s).await, path).await, 403, "CBC.0151");
    // indirect_partner_id is accepted; the customer id alone decides.
    ok(&get(&s, &dist, &format!("{path}?indirect_partner_id=res-west")).await);
    assert_error(
        &get(
            &s,
            &dist,
            &format!("{path}?indirect_partner_id=res-west&x=1"),
        )
        .await,
        400,
        "CBC.0100",
    );
    assert_error(
        &get(&s, &dist, &format!("{path}?bogus=1")).await,
        400,
        "CBC.0100",
    );
    // Without budget or expenditure: nulls and zeros, no division by zero.
    let cedar = ok(&get(&s, &east, "/v2/partners/sub-customers/cust-cedar/overview").await);
    assert_eq!(cedar["budget"], Value::Null);
    assert_eq!(cedar["expenditure"]["change_percentage"], Value::Null);
    assert_eq!(
        cedar["orders"],
        json!({"unpaid_count": 0, "total_count": 0})
    );
}

// ---- budgets ----------------------------------------------------------------

async fn records(s: &DomainServer, who: &Identity, query: &str) -> Value {
    ok(&get(
        s,
        who,
        &format!("/v2/partners/sub-customers/budget/records?{query}"),
    )
    .await)
}

async fn budgets_show_list_update_and_records(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let east = s.operator("op-east-admin").await;
    let fin = s.operator("op-east-finance").await;
    let dist = s.operator("op-dist-admin").await;
    let show = "/v2/partners/sub-customers/budget";

    // ShowSubCustomerBudget.
    let resp = get(&s, &east, &format!("{show}?customer_id=cust-acme")).await;
    assert_eq!(
        ok(&resp),
        json!({"budget_amount": 1000.0, "used_amount": 250.4, "measure_id": 1, "currency": "USD",
               "budget_type": "MONTHLY", "frozen_operate_type": null})
    );
    assert!(
        body_text(&resp).contains(r#""budget_amount":1000.00,"used_amount":250.40"#),
        "{}",
        body_text(&resp)
    );
    ok(&get(&s, &dist, &format!("{show}?customer_id=cust-acme")).await);
    let none = ok(&get(&s, &east, &format!("{show}?customer_id=cust-cedar")).await);
    assert_eq!(
        (none["budget_amount"].clone(), none["budget_type"].clone()),
        (Value::Null, Value::Null)
    );
    // Viewing is R1: a referral customer's (absent) budget is shown too.
    let referral = ok(&get(&s, &east, &format!("{show}?customer_id=cust-fjord")).await);
    assert_eq!(referral["budget_amount"], Value::Null);
    let foreign = get(&s, &east, &format!("{show}?customer_id=cust-harbor")).await;
    let unknown = get(&s, &east, &format!("{show}?customer_id=cust-nope")).await;
    same_as_unknown(&foreign, &unknown);
    // indirect_partner_id is accepted; the customer id alone decides.
    ok(&get(
        &s,
        &dist,
        &format!("{show}?customer_id=cust-acme&indirect_partner_id=res-west"),
    )
    .await);
    assert_error(&get(&s, &east, show).await, 400, "CBC.0100");
    assert_error(
        &get(&s, &east, &format!("{show}?customer_id=")).await,
        400,
        "CBC.0100",
    );
    assert_error(
        &get(&s, &east, &format!("{show}?customer_id={}", "x".repeat(65))).await,
        400,
        "CBC.0101",
    );
    assert_error(
        &get(&s, &east, &format!("{show}?customer_id=cust-acme&x=1")).await,
        400,
        "CBC.0100",
    );

    // ListSubCustomerBudget: only visible resale customers with a budget, in the order asked.
    let list = "/v2/partners/sub-customers/budget/query";
    let ids = json!([
        "cust-nova",
        "cust-pixel",
        "cust-kite",
        "cust-acme",
        "cust-cedar",
        "cust-nope",
        "cust-birch"
    ]);
    let listed = ok(&post(&s, &dist, list, json!({"customer_ids": ids})).await);
    assert_eq!(
        (listed["measure_id"].as_i64(), listed["currency"].as_str()),
        (Some(1), Some("USD"))
    );
    let got: Vec<&str> = listed["budget_infos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["cust-nova", "cust-acme", "cust-birch"]);
    assert_eq!(
        listed["budget_infos"][2],
        json!({"customer_id": "cust-birch", "budget_amount": 5000.0, "used_amount": 1200.0, "budget_type": "PACKAGE"})
    );
    let east_list = ok(&post(
        &s,
        &east,
        list,
        json!({"customer_ids": ["cust-nova", "cust-acme"]}),
    )
    .await);
    assert_eq!(east_list["budget_infos"].as_array().unwrap().len(), 1);
    let too_many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    for body in [
        json!({}),
        json!({"customer_ids": []}),
        json!({"customer_ids": too_many}),
        json!({"customer_ids": [""]}),
    ] {
        let resp = post(&s, &dist, list, body).await;
        assert_eq!(resp.status, 400, "{}", body_text(&resp));
    }

    // UpdateSubCustomerBudget, recorded.
    let set = "/v2/partners/sub-customers/budget";
    let resp = post(&s, &fin, set, json!({"customer_id": "cust-acme", "budget_amount": 1500.50, "budget_type": "MONTHLY", "cancel_partner_frozen": "0"})).await;
    assert_eq!(ok(&resp), json!({}));
    let after = ok(&get(&s, &east, &format!("{show}?customer_id=cust-acme")).await);
    assert_eq!(
        (
            after["budget_amount"].as_f64(),
            after["used_amount"].as_f64()
        ),
        (Some(1500.5), Some(250.4))
    );
    // frozen_operate_type freezes: it needs the freeze right, which this
    // reseller was not granted (R3), so the whole call is refused.
    assert_error(
        &post(&s, &fin, set, json!({"customer_id": "cust-acme", "budget_amount": "2000", "budget_type": "PACKAGE", "frozen_operate_type": 1})).await,
        403,
        "CBC.99005032",
    );
    // A string amount and another type.
    ok(&post(
        &s,
        &fin,
        set,
        json!({"customer_id": "cust-acme", "budget_amount": "2000", "budget_type": "PACKAGE"}),
    )
    .await);
    let after = ok(&get(&s, &east, &format!("{show}?customer_id=cust-acme")).await);
    assert_eq!(
        (
            after["budget_type"].as_str(),
            after["frozen_operate_type"].as_i64()
        ),
        (Some("PACKAGE"), None)
    );
    // The distributor holds both controls over its direct customer, so it
    // sets frozen_operate_type too, and it is kept.
    let dist_finance = s.operator("op-dist-finance").await;
    ok(&post(
        &s,
        &dist_finance,
        set,
        json!({"customer_id": "cust-nova", "budget_amount": 10, "frozen_operate_type": 1}),
    )
    .await);
    let nova = ok(&get(&s, &dist, &format!("{show}?customer_id=cust-nova")).await);
    assert_eq!(nova["frozen_operate_type"], 1);
    let r = records(&s, &east, "customer_id=cust-acme").await;
    assert_eq!(r["total_count"], 2);
    assert_eq!(
        (r["measure_id"].as_i64(), r["currency"].as_str()),
        (Some(1), Some("USD"))
    );
    let newest = &r["record_list"][0];
    assert_eq!(newest["budget_amount"], 2000.0);
    assert_eq!(newest["old_budget_amount"], 1500.5);
    assert_eq!(newest["budget_type"], "PACKAGE");
    let older = &r["record_list"][1];
    assert_eq!(older["budget_amount"], 1500.5);
    assert_eq!(older["old_budget_amount"], 1000.0);
    assert_eq!(older["operation_type"], "SETTING");
    assert_eq!(older["operator"], "op-east-finance");
    assert_eq!(older["operator_name"], "Evan Finance");
    assert_eq!(older["partner_corp_name"], "Eastgate Cloud Reseller");
    assert_eq!(older["partner_account_name"], "res-east");
    assert_eq!(older["cancel_partner_frozen"], "0");
    let when = older["operation_time"].as_str().unwrap();
    assert!(when.len() == 20 && when.ends_with('Z'), "{when}");
    // Filters and paging of the records.
    assert_eq!(
        records(&s, &east, "customer_id=cust-acme&budget_type=PACKAGE").await["total_count"],
        1
    );
    assert_eq!(
        records(&s, &east, "customer_id=cust-acme&operation_type=SETTING").await["total_count"],
        2
    );
    assert_eq!(
        records(&s, &east, "customer_id=cust-acme&operation_type=DELETE").await["total_count"],
        0
    );
    let second = records(&s, &east, "customer_id=cust-acme&offset=1&limit=1").await;
    assert_eq!(
        (
            second["total_count"].as_i64(),
            second["record_list"].as_array().unwrap().len()
        ),
        (Some(2), 1)
    );
    assert_eq!(second["record_list"][0]["budget_amount"], 1500.5);
    assert_eq!(
        records(&s, &dist, "customer_id=cust-acme").await["total_count"],
        2
    );
    let rec = "/v2/partners/sub-customers/budget/records";
    for (query, code) in [
        ("", "CBC.0100"),
        ("customer_id=cust-acme&operation_type=", "CBC.0101"),
        ("customer_id=cust-acme&operation_type=REMOVE", "CBC.0101"),
        ("customer_id=cust-acme&budget_type=", "CBC.0101"),
        ("customer_id=cust-acme&budget_type=monthly", "CBC.0101"),
        ("customer_id=cust-acme&limit=0", "CBC.0101"),
        ("customer_id=cust-acme&limit=101", "CBC.0101"),
        ("customer_id=cust-acme&offset=-1", "CBC.0101"),
        ("customer_id=cust-acme&limit=x", "CBC.0100"),
    ] {
        assert_error(&get(&s, &east, &format!("{rec}?{query}")).await, 400, code);
    }
    assert_error(
        &get(
            &s,
            &s.operator("op-west-admin").await,
            &format!("{rec}?customer_id=cust-acme"),
        )
        .await,
        403,
        "CBC.0151",
    );

    // Refusals change nothing.
    for (body, status, code) in [
        (
            json!({"customer_id": "cust-acme", "budget_amount": 0}),
            400,
            "CBC.0100",
        ),
        (
            json!({"customer_id": "cust-acme", "budget_amount": -5}),
            400,
            "CBC.0100",
        ),
        (
            json!({"customer_id": "cust-acme", "budget_amount": 2147483647.01}),
            400,
            "CBC.0100",
        ),
        (
            json!({"customer_id": "cust-acme", "budget_amount": "1.005"}),
            400,
            "CBC.0100",
        ),
        (
            json!({"customer_id": "cust-acme", "budget_amount": "lots"}),
            400,
            "CBC.0100",
        ),
        (json!({"customer_id": "cust-acme"}), 400, "CBC.0100"),
        (json!({"budget_amount": 10}), 400, "CBC.0100"),
        // The wire struct's fields in order, as an array: serde would read
        // it (the fuzzing found it setting budgets); a body is an object.
        (
            json!(["cust-acme", 777, null, null, "MONTHLY", null]),
            400,
            "CBC.0100",
        ),
        (
            json!({"customer_id": "cust-acme", "budget_amount": 10, "budget_type": "YEARLY"}),
            400,
            "CBC.0101",
        ),
        (
            json!({"customer_id": "cust-acme", "budget_amount": 10, "cancel_partner_frozen": "2"}),
            400,
            "CBC.0101",
        ),
        (
            json!({"customer_id": "cust-acme", "budget_amount": 10, "frozen_operate_type": 3}),
            400,
            "CBC.0101",
        ),
        (
            json!({"customer_id": "cust-acme", "budget_amount": 10, "extra": true}),
            400,
            "CBC.0100",
        ),
        (
            json!({"customer_id": "cust-fjord", "budget_amount": 10}),
            403,
            "CBC.99005024",
        ),
        (
            json!({"customer_id": "cust-harbor", "budget_amount": 10}),
            403,
            "CBC.0151",
        ),
        (
            json!({"customer_id": "cust-nope", "budget_amount": 10}),
            403,
            "CBC.0151",
        ),
    ] {
        assert_error(&post(&s, &fin, set, body).await, status, code);
    }
    assert_error(
        &post(
            &s,
            &session(&s).await,
            set,
            json!({"customer_id": "cust-acme", "budget_amount": 10}),
        )
        .await,
        403,
        "CBC.0151",
    );
    assert_eq!(
        records(&s, &east, "customer_id=cust-acme").await["total_count"],
        2
    );
    assert_eq!(
        ok(&get(&s, &east, &format!("{show}?customer_id=cust-acme")).await)["budget_amount"],
        2000.0
    );

    // The upper bound is accepted (by the distributor for its direct
    // customer: a reseller's quota would refuse it); a new budget starts with
    // nothing used.
    let dist_fin = s.operator("op-dist-finance").await;
    ok(&post(
        &s,
        &dist_fin,
        set,
        json!({"customer_id": "cust-orbit", "budget_amount": 2147483647}),
    )
    .await);
    let orbit = get(&s, &dist, &format!("{show}?customer_id=cust-orbit")).await;
    assert!(
        body_text(&orbit).contains(r#""budget_amount":2147483647.00,"used_amount":0.00"#),
        "{}",
        body_text(&orbit)
    );
    assert_eq!(ok(&orbit)["budget_type"], "MONTHLY");
    let first = records(&s, &dist, "customer_id=cust-orbit").await;
    assert_eq!(first["record_list"][0]["old_budget_amount"], Value::Null);

    // cancel_partner_frozen = "1" unfreezes in the same call (glacier: ACCOUNT_AND_RESOURCE).
    let frozen = |v: Value| v["customer_infos"][0]["is_frozen"].as_i64().unwrap();
    let glacier_q = json!({"customer_id": "cust-glacier"});
    assert_eq!(
        frozen(ok(&post(
            &s,
            &east,
            "/v2/partners/sub-customers/query",
            glacier_q.clone()
        )
        .await)),
        1
    );
    // Lifting the freeze needs the freeze control, which res-east lacks (R3)...
    let lift =
        json!({"customer_id": "cust-glacier", "budget_amount": 800, "cancel_partner_frozen": "1"});
    assert_error(
        &post(&s, &fin, set, lift.clone()).await,
        403,
        "CBC.99005032",
    );
    // ...until its distributor grants it.
    ok(&s
        .call(
            "PUT",
            "/v2/partners/indirect-partners/res-east/grants",
            Some(&dist),
            Some(json!({"budget": true, "freeze": true, "on_behalf": true,
                        "monthly_quota": "5000.00", "one_time_quota": "20000.00"})),
        )
        .await);
    ok(&post(&s, &fin, set, lift).await);
    assert_eq!(
        frozen(ok(&post(
            &s,
            &east,
            "/v2/partners/sub-customers/query",
            glacier_q
        )
        .await)),
        0
    );
    let glacier = stored_customer(&s, "cust-glacier").await;
    assert_eq!((glacier.frozen, glacier.freeze_type), (false, None));
    let core =
        s.db.store
            .resource(&"rds-glacier-core".into())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(core.status.as_str(), "in_use");
    assert_eq!(
        records(&s, &east, "customer_id=cust-glacier").await["record_list"][0]
            ["cancel_partner_frozen"],
        "1"
    );
    let unfreezes: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM freeze_records WHERE customer_id = 'cust-glacier' AND action = 'unfreeze' AND via = 'budget' AND operator_id = 'op-east-finance'",
    )
    .fetch_one(s.db.store.pool())
    .await
    .unwrap();
    assert_eq!(unfreezes, 1);
    // On a customer that is not frozen it changes nothing but the budget.
    ok(&post(
        &s,
        &fin,
        set,
        json!({"customer_id": "cust-birch", "budget_amount": 10, "cancel_partner_frozen": "1"}),
    )
    .await);
    assert!(!stored_customer(&s, "cust-birch").await.frozen);
}

// ---- freeze / unfreeze --------------------------------------------------------

async fn stored_customer(s: &DomainServer, id: &str) -> Customer {
    s.db.store.customer(&id.into()).await.unwrap().unwrap()
}

async fn resource_status(s: &DomainServer, id: &str) -> String {
    s.db.store
        .resource(&id.into())
        .await
        .unwrap()
        .unwrap()
        .status
        .as_str()
        .to_owned()
}

async fn freeze_and_unfreeze_batches(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let dist = s.operator("op-dist-admin").await;
    let freeze = "/v2/partners/sub-customers/freeze";
    let unfreeze = "/v2/partners/sub-customers/unfreeze";

    // The policies decide every id first, all or nothing (R3): a referral
    // customer, one out of reach and an unknown one deny the whole batch,
    // each named, and nothing changes.
    let refused = post(
        &s,
        &dist,
        freeze,
        json!({
        "customer_ids": ["cust-nova", "cust-pixel", "cust-kite", "cust-nope"],
        "reason": "arrears"}),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", body_text(&refused));
    let details = refused.json()["error_details"].clone();
    let by_id: Vec<(&str, &str)> = details
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), d["error_code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by_id,
        [
            ("cust-pixel", "CBC.99005024"),
            ("cust-kite", "CBC.0151"),
            ("cust-nope", "CBC.0151")
        ]
    );
    // Outside the scope and unknown look the same.
    assert_eq!(
        details[1],
        json!({"id": "cust-kite", "error_code": "CBC.0151", "error_msg": "Access denied."})
    );
    assert_eq!(details[2]["error_msg"], details[1]["error_msg"]);
    assert!(!stored_customer(&s, "cust-nova").await.frozen);

    // Allowed ids: the data's refusals are reported by id, the rest applied.
    let resp = post(
        &s,
        &dist,
        freeze,
        json!({
        "customer_ids": ["cust-nova", "cust-quartz", "cust-acme"],
        "reason": "arrears", "freeze_type": "ACCOUNT_AND_RESOURCE"}),
    )
    .await;
    let body = ok(&resp);
    assert_eq!(resp.status, 200);
    let details = body["error_details"].as_array().unwrap();
    let by_id: Vec<(&str, &str)> = details
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), d["error_code"].as_str().unwrap()))
        .collect();
    assert_eq!(by_id, [("cust-quartz", "CBC.30000067")]);
    assert!(details
        .iter()
        .all(|d| !d["error_msg"].as_str().unwrap().is_empty()));
    for id in ["cust-nova", "cust-acme"] {
        let c = stored_customer(&s, id).await;
        assert_eq!(
            (c.frozen, c.freeze_type.map(|t| t.as_str())),
            (true, Some("ACCOUNT_AND_RESOURCE")),
            "{id}"
        );
    }
    for id in [
        "vm-acme-web-1",
        "vm-acme-web-2",
        "vol-acme-data",
        "obs-acme-logs",
        "vm-nova-shop",
        "obs-nova-media",
    ] {
        assert_eq!(resource_status(&s, id).await, "frozen", "{id}");
    }
    // The others are untouched.
    assert!(!stored_customer(&s, "cust-pixel").await.frozen);
    assert_eq!(resource_status(&s, "vm-pixel-render").await, "stopped");
    assert_eq!(resource_status(&s, "vm-kite-ctrl").await, "in_use");

    // All succeed: `{}` without error_details; ACCOUNT leaves resources alone.
    let resp = post(
        &s,
        &dist,
        freeze,
        json!({"customer_ids": ["cust-orbit"], "reason": "audit"}),
    )
    .await;
    assert_eq!(body_text(&resp), "{}");
    let orbit = stored_customer(&s, "cust-orbit").await;
    assert_eq!(orbit.freeze_type.map(|t| t.as_str()), Some("ACCOUNT"));

    // Unfreeze: the type must match; not frozen is refused per id.
    let resp = post(&s, &dist, unfreeze, json!({"customer_ids": ["cust-nova", "cust-quartz"], "reason": "paid", "unfreeze_type": "ACCOUNT"})).await;
    let details = ok(&resp)["error_details"].clone();
    assert_eq!(details.as_array().unwrap().len(), 1);
    assert_eq!(
        (details[0]["id"].as_str(), details[0]["error_code"].as_str()),
        (Some("cust-nova"), Some("CBC.30000067"))
    );
    assert!(!stored_customer(&s, "cust-quartz").await.frozen);
    assert_eq!(resource_status(&s, "vm-quartz-old").await, "expired");
    let resp = post(&s, &dist, unfreeze, json!({"customer_ids": ["cust-nova", "cust-acme", "cust-delta"], "reason": "paid", "unfreeze_type": "ACCOUNT_AND_RESOURCE"})).await;
    let details = ok(&resp)["error_details"].clone();
    assert_eq!(details.as_array().unwrap().len(), 1);
    assert_eq!(
        (details[0]["id"].as_str(), details[0]["error_code"].as_str()),
        (Some("cust-delta"), Some("CBC.30000067"))
    );
    // Every resource is back to the status it had.
    for (id, status) in [
        ("vm-acme-web-1", "in_use"),
        ("vm-acme-web-2", "stopped"),
        ("vol-acme-data", "in_use"),
        ("obs-acme-logs", "in_use"),
        ("vm-nova-shop", "in_use"),
    ] {
        assert_eq!(resource_status(&s, id).await, status, "{id}");
    }
    assert!(!stored_customer(&s, "cust-acme").await.frozen);
    // indirect_partner_id is accepted; the ids alone decide.
    let resp = post(
        &s,
        &dist,
        freeze,
        json!({"customer_ids": ["cust-harbor"], "reason": "r", "indirect_partner_id": "res-west"}),
    )
    .await;
    assert_eq!(body_text(&resp), "{}");
    assert!(stored_customer(&s, "cust-harbor").await.frozen);
    // A reseller without the freeze grant freezes none of its customers,
    // and never its distributor's (R3, R1): both named, nothing changed.
    let east = s.operator("op-east-finance").await;
    let resp = post(
        &s,
        &east,
        freeze,
        json!({"customer_ids": ["cust-birch", "cust-nova"], "reason": "r"}),
    )
    .await;
    assert_eq!(resp.status, 403, "{}", body_text(&resp));
    let denied: Vec<String> = resp.json()["error_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(denied, ["cust-birch", "cust-nova"]);
    assert!(!stored_customer(&s, "cust-birch").await.frozen);

    // Every change is recorded with its operator and reason.
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT customer_id, action, reason, operator_id FROM freeze_records ORDER BY id",
    )
    .fetch_all(s.db.store.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 7);
    assert_eq!(
        rows[0],
        (
            "cust-nova".into(),
            "freeze".into(),
            "arrears".into(),
            "op-dist-admin".into()
        )
    );
    assert_eq!(
        rows[6],
        (
            "cust-harbor".into(),
            "freeze".into(),
            "r".into(),
            "op-dist-admin".into()
        )
    );

    // Parameter errors refuse the whole call and change nothing.
    let eleven: Vec<String> = (0..11).map(|i| format!("c{i}")).collect();
    for (path, body, code) in [
        (freeze, json!({"reason": "r"}), "CBC.0100"),
        (
            freeze,
            json!({"customer_ids": [], "reason": "r"}),
            "CBC.0101",
        ),
        (
            freeze,
            json!({"customer_ids": eleven, "reason": "r"}),
            "CBC.0101",
        ),
        (
            freeze,
            json!({"customer_ids": ["cust-delta", "cust-delta"], "reason": "r"}),
            "CBC.0101",
        ),
        (freeze, json!({"customer_ids": ["cust-delta"]}), "CBC.0100"),
        (
            freeze,
            json!({"customer_ids": ["cust-delta"], "reason": " "}),
            "CBC.0100",
        ),
        (
            freeze,
            json!({"customer_ids": ["cust-delta"], "reason": "x".repeat(257)}),
            "CBC.0101",
        ),
        (
            freeze,
            json!({"customer_ids": ["cust-delta"], "reason": "r", "freeze_type": "ALL"}),
            "CBC.0101",
        ),
        (
            freeze,
            json!({"customer_ids": ["cust-delta"], "reason": "r", "unfreeze_type": "ACCOUNT"}),
            "CBC.0100",
        ),
        (
            freeze,
            json!({"customer_ids": "cust-delta", "reason": "r"}),
            "CBC.0100",
        ),
        (
            unfreeze,
            json!({"customer_ids": ["cust-harbor"], "reason": "r", "unfreeze_type": "NONE"}),
            "CBC.0101",
        ),
        (
            unfreeze,
            json!({"customer_ids": ["cust-harbor"]}),
            "CBC.0100",
        ),
    ] {
        assert_error(&post(&s, &dist, path, body).await, 400, code);
    }
    assert!(!stored_customer(&s, "cust-delta").await.frozen);
    assert!(stored_customer(&s, "cust-harbor").await.frozen);
    // A reason of exactly 256 characters is fine.
    ok(&post(
        &s,
        &dist,
        freeze,
        json!({"customer_ids": ["cust-delta"], "reason": "é".repeat(256)}),
    )
    .await);
    assert_error(
        &post(
            &s,
            &session(&s).await,
            freeze,
            json!({"customer_ids": ["cust-acme"], "reason": "r"}),
        )
        .await,
        403,
        "CBC.0151",
    );
    assert_error(
        &post(
            &s,
            &s.customer("cust-acme"),
            unfreeze,
            json!({"customer_ids": ["cust-acme"], "reason": "r"}),
        )
        .await,
        403,
        "CBC.0151",
    );
}

// ---- resellers and grants -------------------------------------------------------

async fn resellers_and_grants(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let dist = s.operator("op-dist-admin").await;
    let q = "/v2/partners/indirect-partners/query";

    let all = ok(&post(&s, &dist, q, json!({"offset": 0, "limit": 10})).await);
    assert_eq!(all["count"], 2);
    let east = &all["indirect_partners"][0];
    for field in [
        "indirect_partner_id",
        "mobile_phone",
        "email",
        "account_name",
        "name",
        "associated_on",
        "account_manager_id",
        "account_manager_name",
    ] {
        assert!(
            east.get(field).is_some(),
            "IndirectPartnerInfo.{field} missing: {east}"
        );
    }
    assert_eq!(east["indirect_partner_id"], "res-east");
    assert_eq!(east["name"], "Eastgate Cloud Reseller");
    assert_eq!(east["grants"]["monthly_quota"], "5000.00");
    assert_eq!(
        all["indirect_partners"][1]["indirect_partner_id"],
        "res-west"
    );
    // No body at all, `{}`, filters, paging.
    assert_eq!(ok(&s.call("POST", q, Some(&dist), None).await)["count"], 2);
    for (filter, want) in [
        (json!({}), 2),
        (json!({"account_name": "EAST"}), 1),
        (json!({"indirect_partner_id": "res-west"}), 1),
        (json!({"associated_on_end": "2000-01-01T00:00:00Z"}), 0),
    ] {
        let v = ok(&post(&s, &dist, q, filter.clone()).await);
        assert_eq!(v["count"], want, "{filter}");
    }
    let second = ok(&post(&s, &dist, q, json!({"offset": 1, "limit": 1})).await);
    assert_eq!(
        (
            second["count"].as_i64(),
            second["indirect_partners"][0]["indirect_partner_id"].as_str()
        ),
        (Some(2), Some("res-west"))
    );
    for (body, code) in [
        (json!({"limit": 101}), "CBC.0101"),
        (json!({"offset": -1}), "CBC.0101"),
        (json!({"associated_on_begin": "soon"}), "CBC.0100"),
        (json!({"unknown": 1}), "CBC.0100"),
    ] {
        assert_error(&post(&s, &dist, q, body).await, 400, code);
    }
    // Only a distributor's admin may list resellers: other partners are
    // refused the list (no reseller could be in it), as are sessions.
    for other in ["op-east-admin", "op-sp-admin"] {
        assert_error(
            &post(&s, &s.operator(other).await, q, json!({})).await,
            403,
            "CBC.0151",
        );
    }
    assert_error(
        &post(&s, &session(&s).await, q, json!({})).await,
        403,
        "CBC.0151",
    );

    // Grants.
    let grants = |id: &str| format!("/v2/partners/indirect-partners/{id}/grants");
    assert_eq!(
        ok(&get(&s, &dist, &grants("res-east")).await),
        json!({"indirect_partner_id": "res-east", "budget": true, "freeze": false, "on_behalf": true,
               "monthly_quota": "5000.00", "one_time_quota": "20000.00", "updated_at": null, "updated_by": null})
    );
    let not_own = get(&s, &dist, &grants("sp-blue")).await;
    let unknown = get(&s, &dist, &grants("res-nope")).await;
    same_as_unknown(&not_own, &unknown);
    let west_admin = s.operator("op-west-admin").await;
    assert_error(
        &get(&s, &west_admin, &grants("res-west")).await,
        403,
        "CBC.0151",
    );

    let new = json!({"budget": true, "freeze": true, "on_behalf": false, "monthly_quota": "100.5", "one_time_quota": null});
    let put = s
        .call("PUT", &grants("res-west"), Some(&dist), Some(new.clone()))
        .await;
    let set = ok(&put);
    assert_eq!(set["monthly_quota"], "100.50");
    assert_eq!(
        (
            set["budget"].as_bool(),
            set["freeze"].as_bool(),
            set["on_behalf"].as_bool()
        ),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(set["one_time_quota"], Value::Null);
    assert_eq!(set["updated_by"], "op-dist-admin");
    assert!(set["updated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ok(&get(&s, &dist, &grants("res-west")).await), set);
    let store_view =
        s.db.store
            .partner(&"res-west".into())
            .await
            .unwrap()
            .unwrap();
    assert!(
        store_view.grants.freeze
            && store_view.grants.monthly_quota == Some("100.50".parse().unwrap())
    );
    for (body, code) in [
        (
            json!({"budget": true, "freeze": true, "on_behalf": false, "monthly_quota": null}),
            "CBC.0100",
        ),
        (
            json!({"budget": true, "freeze": true, "on_behalf": false, "monthly_quota": "0", "one_time_quota": null}),
            "CBC.0100",
        ),
        (
            json!({"budget": true, "freeze": true, "on_behalf": false, "monthly_quota": "2147483648", "one_time_quota": null}),
            "CBC.0100",
        ),
        (
            json!({"budget": 1, "freeze": true, "on_behalf": false, "monthly_quota": null, "one_time_quota": null}),
            "CBC.0100",
        ),
        (
            json!({"budget": true, "freeze": true, "on_behalf": false, "monthly_quota": null, "one_time_quota": null, "x": 1}),
            "CBC.0100",
        ),
    ] {
        assert_error(
            &s.call("PUT", &grants("res-west"), Some(&dist), Some(body))
                .await,
            400,
            code,
        );
    }
    assert_error(
        &s.call(
            "PUT",
            &grants("res-west"),
            Some(&west_admin),
            Some(new.clone()),
        )
        .await,
        403,
        "CBC.0151",
    );
    assert_error(
        &s.call("PUT", &grants("sp-blue"), Some(&dist), Some(new.clone()))
            .await,
        403,
        "CBC.0151",
    );
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT partner_id, operator_id FROM grant_records")
            .fetch_all(s.db.store.pool())
            .await
            .unwrap();
    assert_eq!(rows, [("res-west".to_owned(), "op-dist-admin".to_owned())]);
    // The listing shows the change too.
    let west = ok(&post(&s, &dist, q, json!({"indirect_partner_id": "res-west"})).await);
    assert_eq!(west["indirect_partners"][0]["grants"], set);
}

// ---- authorizations and activity ----------------------------------------------------

async fn authorization_lifecycle_and_activity(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let east = s.operator("op-east-admin").await;
    let dist = s.operator("op-dist-admin").await;
    let cedar = s.customer("cust-cedar");
    let partner_path = |c: &str| format!("/v2/partners/sub-customers/{c}/authorizations");
    let decide = |id: &str, what: &str| format!("/v2/customers/partner-authorizations/{id}/{what}");

    // Request: 201 pending, to the customer's direct partner.
    let before = chrono::Utc::now();
    let resp = post(
        &s,
        &east,
        &partner_path("cust-cedar"),
        json!({"scopes": ["order", "om"], "duration_days": 30}),
    )
    .await;
    assert_eq!(resp.status, 201, "{}", body_text(&resp));
    let a = resp.json();
    let id = a["authorization_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("auth-"));
    assert_eq!(a["status"], "pending");
    assert_eq!(a["scopes"], json!(["om", "order"]));
    assert_eq!(
        (a["customer_id"].as_str(), a["partner_id"].as_str()),
        (Some("cust-cedar"), Some("res-east"))
    );
    assert_eq!(
        (a["requested_by"].as_str(), a["duration_days"].as_i64()),
        (Some("op-east-admin"), Some(30))
    );
    assert_eq!(
        (a["expired"].as_bool(), a["approved_at"].clone()),
        (Some(false), Value::Null)
    );
    let expires = chrono::DateTime::parse_from_rfc3339(a["expires_at"].as_str().unwrap()).unwrap();
    let days = (expires.with_timezone(&chrono::Utc) - before).num_hours();
    assert!((30 * 24 - 1..=30 * 24).contains(&days), "{a}");

    // One live authorization per customer and partner, whoever asks.
    let dup = post(
        &s,
        &dist,
        &partner_path("cust-cedar"),
        json!({"scopes": ["om"]}),
    )
    .await;
    assert_error(&dup, 409, "CBC.30000067");
    assert!(dup.json()["error_msg"].as_str().unwrap().contains(&id));

    // Parameter errors and scope.
    for (body, code) in [
        (json!({}), "CBC.0100"),
        (json!({"scopes": []}), "CBC.0101"),
        (json!({"scopes": ["admin"]}), "CBC.0101"),
        (json!({"scopes": ["om", "om"]}), "CBC.0101"),
        (json!({"scopes": "om"}), "CBC.0100"),
        (json!({"scopes": ["om"], "duration_days": 0}), "CBC.0101"),
        (json!({"scopes": ["om"], "duration_days": 3651}), "CBC.0101"),
        (json!({"scopes": ["om"], "duration_days": 1.5}), "CBC.0100"),
        (json!({"scopes": ["om"], "until": "forever"}), "CBC.0100"),
    ] {
        assert_error(
            &post(&s, &east, &partner_path("cust-ember"), body).await,
            400,
            code,
        );
    }
    let west_admin = s.operator("op-west-admin").await;
    let foreign = post(
        &s,
        &west_admin,
        &partner_path("cust-cedar"),
        json!({"scopes": ["om"]}),
    )
    .await;
    let unknown = post(
        &s,
        &west_admin,
        &partner_path("cust-nope"),
        json!({"scopes": ["om"]}),
    )
    .await;
    same_as_unknown(&foreign, &unknown);
    assert_error(
        &post(
            &s,
            &session(&s).await,
            &partner_path("cust-acme"),
            json!({"scopes": ["om"]}),
        )
        .await,
        403,
        "CBC.0151",
    );
    assert_error(
        &post(
            &s,
            &s.customer("cust-cedar"),
            &partner_path("cust-cedar"),
            json!({"scopes": ["om"]}),
        )
        .await,
        403,
        "CBC.0151",
    );

    // Partner-side list: newest first, paged.
    let listed = ok(&get(&s, &east, &partner_path("cust-cedar")).await);
    assert_eq!(listed["total_count"], 2);
    assert_eq!(listed["authorizations"][0]["authorization_id"], id.as_str());
    assert_eq!(
        listed["authorizations"][1]["authorization_id"],
        "auth-cedar"
    );
    let page = ok(&get(
        &s,
        &dist,
        &format!("{}?offset=1&limit=1", partner_path("cust-cedar")),
    )
    .await);
    assert_eq!(
        (
            page["total_count"].as_i64(),
            page["authorizations"].as_array().unwrap().len()
        ),
        (Some(2), 1)
    );
    assert_error(
        &get(
            &s,
            &east,
            &format!("{}?limit=0", partner_path("cust-cedar")),
        )
        .await,
        400,
        "CBC.0101",
    );
    assert_error(
        &get(&s, &west_admin, &partner_path("cust-cedar")).await,
        403,
        "CBC.0151",
    );

    // Customer side: only the customer principal, only its own.
    let own = ok(&get(&s, &cedar, "/v2/customers/partner-authorizations").await);
    assert_eq!(own["total_count"], 2);
    let acme = s.customer("cust-acme");
    let others = post(&s, &acme, &decide(&id, "approve"), json!({})).await;
    let nothing = post(&s, &acme, &decide("auth-nope", "approve"), json!({})).await;
    same_as_unknown(&others, &nothing);
    let cedar_session = s
        .session(
            "sess-c",
            "op-east-ops",
            "cust-cedar",
            vec![AuthorizationScope::Om],
        )
        .await;
    assert_error(
        &post(&s, &cedar_session, &decide(&id, "approve"), json!({})).await,
        403,
        "CBC.0151",
    );
    assert_error(
        &get(&s, &cedar_session, "/v2/customers/partner-authorizations").await,
        403,
        "CBC.0151",
    );
    assert_error(
        &post(&s, &east, &decide(&id, "approve"), json!({})).await,
        403,
        "CBC.0151",
    );

    // pending -> approved: the clock restarts at approval.
    let approved = ok(&post(&s, &cedar, &decide(&id, "approve"), json!({})).await);
    assert_eq!(approved["status"], "approved");
    let at =
        |v: &Value, f: &str| chrono::DateTime::parse_from_rfc3339(v[f].as_str().unwrap()).unwrap();
    assert_eq!(
        at(&approved, "expires_at") - at(&approved, "approved_at"),
        chrono::Duration::days(30)
    );
    assert_eq!(approved["updated_at"], approved["approved_at"]);
    let live =
        s.db.store
            .live_authorization(&"cust-cedar".into(), &"res-east".into())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(live.id.as_str(), id);
    // Wrong transitions are refused and change nothing.
    assert_error(
        &post(&s, &cedar, &decide(&id, "approve"), json!({})).await,
        409,
        "CBC.30000067",
    );
    assert_error(
        &post(&s, &cedar, &decide(&id, "reject"), json!({})).await,
        409,
        "CBC.30000067",
    );
    assert_error(
        &post(
            &s,
            &east,
            &partner_path("cust-cedar"),
            json!({"scopes": ["om"]}),
        )
        .await,
        409,
        "CBC.30000067",
    );
    // approved -> revoked, then nothing more.
    let revoked = ok(&post(&s, &cedar, &decide(&id, "revoke"), json!({})).await);
    assert_eq!(revoked["status"], "revoked");
    for what in ["revoke", "approve", "reject"] {
        assert_error(
            &post(&s, &cedar, &decide(&id, what), json!({})).await,
            409,
            "CBC.30000067",
        );
    }
    assert!(s
        .db
        .store
        .live_authorization(&"cust-cedar".into(), &"res-east".into())
        .await
        .unwrap()
        .is_none());
    // With nothing live a new request is possible; pending -> rejected.
    let again = post(
        &s,
        &east,
        &partner_path("cust-cedar"),
        json!({"scopes": ["om"]}),
    )
    .await;
    assert_eq!(again.status, 201, "{}", body_text(&again));
    let again_id = again.json()["authorization_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(again.json()["duration_days"], 365);
    let rejected = ok(&post(&s, &cedar, &decide(&again_id, "reject"), json!({})).await);
    assert_eq!(
        (rejected["status"].as_str(), rejected["approved_at"].clone()),
        (Some("rejected"), Value::Null)
    );
    assert_error(
        &post(&s, &cedar, &decide(&again_id, "approve"), json!({})).await,
        409,
        "CBC.30000067",
    );

    // Expired by time: an expired pending request cannot be approved and does not block a new one.
    // (Newer than the demo's revoked one, so listed first.)
    sqlx::query(
        "INSERT INTO customer_authorizations (id, customer_id, partner_id, scopes, status, duration_days,
            requested_by, created_at, updated_at, expires_at)
         VALUES ('auth-old', 'cust-delta', 'res-east', 'om', 'pending', 10, 'op-east-admin', $1, $1, $2)",
    )
    .bind(s.at("now-20d"))
    .bind(s.at("now-10d"))
    .execute(s.db.store.pool())
    .await
    .unwrap();
    let delta = s.customer("cust-delta");
    let listed = ok(&get(&s, &delta, "/v2/customers/partner-authorizations").await);
    assert_eq!(listed["authorizations"][0]["expired"], true);
    let expired = post(&s, &delta, &decide("auth-old", "approve"), json!({})).await;
    assert_error(&expired, 409, "CBC.30000067");
    assert!(expired.json()["error_msg"]
        .as_str()
        .unwrap()
        .contains("expired"));
    assert_eq!(
        post(
            &s,
            &east,
            &partner_path("cust-delta"),
            json!({"scopes": ["order"]})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        ok(&post(&s, &delta, &decide("auth-old", "reject"), json!({})).await)["status"],
        "rejected"
    );
    // So does an approval that ran out (ember's, seeded expired).
    assert_eq!(
        post(
            &s,
            &east,
            &partner_path("cust-ember"),
            json!({"scopes": ["om"]})
        )
        .await
        .status,
        201
    );

    // Concurrent requests for one customer: exactly one wins, the others conflict.
    let orbit = partner_path("cust-orbit");
    let one = || post(&s, &dist, &orbit, json!({"scopes": ["om"]}));
    let (a, b, c, d) = tokio::join!(one(), one(), one(), one());
    let mut statuses: Vec<u16> = [a, b, c, d].iter().map(|r| r.status.as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409]);

    // Partner activity: the customer's own records, newest first, paged.
    for (i, customer) in ["cust-acme", "cust-acme", "cust-acme", "cust-birch"]
        .iter()
        .enumerate()
    {
        sqlx::query(
            "INSERT INTO activities (customer_id, session_id, operator_id, partner_id, action, target, detail, created_at)
             VALUES ($1, 'sess-9', 'op-east-ops', 'res-east', 'resource.stop', $2, NULL, $3)",
        )
        .bind(customer.to_string())
        .bind(format!("vm-{i}"))
        .bind(format!("2026-11-2{i}T10:00:00Z"))
        .execute(s.db.store.pool())
        .await
        .unwrap();
    }
    let act = "/v2/customers/partner-activity";
    let all = ok(&get(&s, &acme, act).await);
    assert_eq!(all["total_count"], 3);
    let first = &all["activities"][0];
    assert_eq!(first["target"], "vm-2");
    assert_eq!(first["created_at"], "2026-11-22T10:00:00Z");
    assert_eq!(
        (
            first["session_id"].as_str(),
            first["operator_id"].as_str(),
            first["action"].as_str()
        ),
        (Some("sess-9"), Some("op-east-ops"), Some("resource.stop"))
    );
    let tail = ok(&get(&s, &acme, &format!("{act}?offset=2&limit=2")).await);
    assert_eq!(
        (
            tail["total_count"].as_i64(),
            tail["activities"][0]["target"].as_str()
        ),
        (Some(3), Some("vm-0"))
    );
    assert_eq!(
        ok(&get(&s, &s.customer("cust-birch"), act).await)["total_count"],
        1
    );
    // Cedar's only activity: its session, ended when it revoked the
    // authorization the session was bound to (migration 0012).
    let cedar_log = ok(&get(&s, &cedar, act).await);
    assert_eq!(cedar_log["total_count"], 1, "{cedar_log}");
    assert_eq!(cedar_log["activities"][0]["action"], "end_session");
    assert_error(
        &get(&s, &acme, &format!("{act}?limit=101")).await,
        400,
        "CBC.0101",
    );
    assert_error(
        &get(&s, &acme, &format!("{act}?customer_id=cust-birch")).await,
        400,
        "CBC.0100",
    );
    assert_error(&get(&s, &session(&s).await, act).await, 403, "CBC.0151");
    assert_error(&get(&s, &east, act).await, 403, "CBC.0151");
}

test_on_backends! {
    customers => customers_list_masking_and_overview;
    budgets => budgets_show_list_update_and_records;
    freeze => freeze_and_unfreeze_batches;
    resellers => resellers_and_grants;
    authorizations => authorization_lifecycle_and_activity;
}
