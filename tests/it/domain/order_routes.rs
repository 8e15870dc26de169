//! Orders (ListCustomerOrders, ShowCustomerOrderDetails, price adjustments,
//! exports) and the partner resource queries, over a real socket on SQLite
//! and PostgreSQL with the demo organisation.

use crate::kit::DomainServer;
use crate::test_on_backends;
use partner_gateway::store::Backend;
use serde_json::{json, Value};
use sqlx::Row;

use super::support::{assert_error, body_text, get, ids, post, same_as_unknown, DEMO};

const ORDERS: &str = "/v2/orders/customer-orders";
const ON_DEMAND: &str = "/v2/partners/sub-customers/on-demand-resources/query";
const SUBSCRIPTIONS: &str = "/v2/orders/suscriptions/resources/query";

/// One calendar month after an instant in the stored form.
fn a_month_after(t: &str) -> String {
    let t = partner_gateway::time::parse(t).unwrap();
    partner_gateway::time::format(t.checked_add_months(chrono::Months::new(1)).unwrap())
}

async fn lists_and_shows_orders(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let admin = s.operator("op-dist-admin").await;

    // Everything in the distributor's hierarchy: its own and both resellers' customers.
    let all = get(&s, &admin, ORDERS).await;
    assert_eq!(all.status, 200, "{}", body_text(&all));
    let v = all.json();
    assert_eq!(v["total_count"], 13);
    assert_eq!(v["order_infos"].as_array().unwrap().len(), 10);
    let first = &v["order_infos"][0];
    assert_eq!(
        first["order_id"], "CS2611161500PPP2",
        "newest first by default"
    );
    for (field, want) in [
        ("customer_id", json!("cust-pixel")),
        ("service_type_code", json!("hws.service.type.rds")),
        ("service_type_name", json!("Relational Database Service")),
        ("source_type", json!(1)),
        ("status", json!(6)),
        ("order_type", json!(1)),
        ("measure_id", json!(1)),
        ("create_time", json!(s.at("now-4d21h"))),
        ("payment_time", Value::Null),
        ("currency", json!("USD")),
        ("enterprise_projects", json!([])),
        ("sub_order_infos", json!([])),
        (
            "amount_info",
            json!({"discounts": [], "flexipurchase_coupon_amount": 0.0, "coupon_amount": 0.0,
            "stored_card_amount": 0.0, "commission_amount": 0.0, "consumed_amount": 0.0}),
        ),
    ] {
        assert_eq!(first[field], want, "{field}");
    }
    // Money is a JSON number with two places.
    let text = body_text(&all);
    assert!(
        text.contains(r#""amount_after_discount":300.00,"official_amount":300.00"#),
        "{text}"
    );

    let acme = get(&s, &admin, &format!("{ORDERS}?customer_id=cust-acme"))
        .await
        .json();
    assert_eq!(acme["total_count"], 2);
    let aaa1 = acme["order_infos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["order_id"] == "CS2610010800AAA1")
        .unwrap();
    assert_eq!(
        aaa1["amount_info"]["discounts"],
        json!([{"discount_type": "500", "discount_amount": 30.0}])
    );
    assert_eq!(aaa1["payment_time"], s.at("now-51d3h55m").as_str());

    // Paging and total_count.
    let p = get(&s, &admin, &format!("{ORDERS}?limit=5&offset=10"))
        .await
        .json();
    assert_eq!(p["total_count"], 13);
    assert_eq!(p["order_infos"].as_array().unwrap().len(), 3);
    let oldest = get(&s, &admin, &format!("{ORDERS}?order_by=createTime&limit=1"))
        .await
        .json();
    assert_eq!(
        ids(&oldest, "order_infos", "order_id"),
        ["CS2605051800HHH1"]
    );

    // Filters.
    for (query, want) in [
        ("order_type=2", 3),
        // Status filters take the public codes (docs/wire-format.md §4.8).
        ("status=6", 3),
        ("status=5", 8),
        ("status=9", 0),
        ("service_type_code=hws.service.type.obs", 2),
        ("order_id=CS2610010800AAA1", 1),
        (
            format!(
                "create_time_begin={}&create_time_end={}",
                s.at("now-20d12h"),
                s.at("now+8d12h")
            )
            .as_str(),
            5,
        ),
        // Empty values (the SDK's `key=`) mean "no filter".
        ("status=&limit=&order_type=&method=", 13),
        ("method=sub_customer", 0),
    ] {
        let v = get(&s, &admin, &format!("{ORDERS}?{query}")).await.json();
        assert_eq!(v["total_count"], want, "{query}");
    }
    for (query, want) in [
        ("status=4", &["CS2611121300NNN2"][..]),
        ("status=1", &["CS2611101100BBB2"]),
        (
            format!(
                "payment_time_begin={}&payment_time_end={}",
                s.at("now-51d12h"),
                s.at("now-20d12h1s")
            )
            .as_str(),
            &["CS2610251400PPP1", "CS2610102300OOO1", "CS2610010800AAA1"],
        ),
        // A distributor narrows to one reseller...
        ("indirect_partner_id=res-west", &["CS2605051800HHH1"]),
    ] {
        let v = get(&s, &admin, &format!("{ORDERS}?{query}")).await.json();
        assert_eq!(ids(&v, "order_infos", "order_id"), want, "{query}");
    }
    // ...and a partner that is none of its resellers narrows to nothing.
    let v = get(&s, &admin, &format!("{ORDERS}?indirect_partner_id=sp-blue"))
        .await
        .json();
    assert_eq!(v["total_count"], 0);

    // Parameter errors.
    for (query, code) in [
        ("limit=0", "CBC.0101"),
        ("limit=101", "CBC.0101"),
        ("offset=-1", "CBC.0101"),
        ("limit=ten", "CBC.0100"),
        ("status=7", "CBC.0101"),
        ("status=2", "CBC.0101"),
        ("order_type=99", "CBC.0101"),
        ("order_type=new", "CBC.0100"),
        ("order_by=amount", "CBC.0101"),
        ("method=everyone", "CBC.0101"),
        (
            "create_time_begin=2025-01-01T00:00:00Z&create_time_end=2026-01-02T00:00:00Z",
            "CBC.0101",
        ),
        (
            "payment_time_begin=2026-10-02T00:00:00Z&payment_time_end=2026-10-01T00:00:00Z",
            "CBC.0101",
        ),
        ("create_time_begin=yesterday", "CBC.0100"),
        ("customer=cust-acme", "CBC.0100"),
    ] {
        let r = get(&s, &admin, &format!("{ORDERS}?{query}")).await;
        assert_error(&r, 400, code);
    }
    // Exactly one year is still fine.
    let year = get(
        &s,
        &admin,
        &format!(
            "{ORDERS}?create_time_begin=2025-11-21T00:00:00Z&create_time_end=2026-11-21T00:00:00Z"
        ),
    )
    .await;
    assert_eq!(year.status, 200, "{}", body_text(&year));

    // Scoping: a reseller sees its own customers only; a sibling's customer looks unknown.
    let east = s.operator("op-east-admin").await;
    let r = get(&s, &east, ORDERS).await.json();
    let mut got = ids(&r, "order_infos", "order_id");
    got.sort();
    assert_eq!(
        got,
        [
            "CS2606062200GGG1",
            "CS2609151000BBB1",
            "CS2610010800AAA1",
            "CS2611011700FFF1",
            "CS2611050900AAA2",
            "CS2611101100BBB2"
        ]
    );
    let sibling = get(&s, &east, &format!("{ORDERS}?customer_id=cust-harbor")).await;
    let unknown = get(&s, &east, &format!("{ORDERS}?customer_id=cust-nope")).await;
    same_as_unknown(&sibling, &unknown);
    // An account manager alone sees the customers they manage; combined with finance, everything.
    let am = s.operator("op-dist-am").await;
    let r = get(&s, &am, ORDERS).await.json();
    let mut got = ids(&r, "order_infos", "order_id");
    got.sort();
    assert_eq!(
        got,
        ["CS2607011600RRR1", "CS2608201200NNN1", "CS2611121300NNN2"]
    );
    let am_fin = s.operator("op-dist-am-fin").await;
    assert_eq!(get(&s, &am_fin, ORDERS).await.json()["total_count"], 13);
    // Partner routes are for operators; nothing without an assertion.
    assert_error(
        &s.call("GET", ORDERS, Some(&s.customer("cust-acme")), None)
            .await,
        403,
        "CBC.0151",
    );
    assert_eq!(s.call("GET", ORDERS, None, None).await.status, 401);

    // Details with line items.
    let d = get(&s, &admin, &format!("{ORDERS}/details/CS2610010800AAA1")).await;
    assert_eq!(d.status, 200, "{}", body_text(&d));
    let d = d.json();
    assert_eq!(d["total_count"], 2);
    assert_eq!(d["order_info"]["order_id"], "CS2610010800AAA1");
    assert_eq!(d["order_info"]["user_name"], "acme");
    assert_eq!(d["order_info"]["official_amount"], 150.0);
    assert_eq!(d["order_info"]["amount_after_discount"], 120.0);
    let item = &d["order_line_items"][0];
    // Paid (so effective) then, for a period of one month.
    let paid = s.at("now-51d3h55m");
    for (field, want) in [
        ("order_line_item_id", json!("CS2610010800AAA1-1")),
        ("order_id", json!("CS2610010800AAA1")),
        ("product_id", json!("00301-ec2-c6.large.2")),
        ("service_type_code", json!("hws.service.type.ec2")),
        ("period_type", json!(2)),
        ("period_num", json!(1)),
        ("subscription_num", json!(1)),
        ("effective_time", json!(paid)),
        ("expire_time", json!(a_month_after(&paid))),
        ("amount_after_discount", json!(100.0)),
        ("currency", json!("USD")),
        ("commercial_resource", json!("hws.resource.type.vm")),
    ] {
        assert_eq!(item[field], want, "{field}");
    }
    assert_eq!(
        item["base_product_info"]["product_id"],
        "00301-ec2-c6.large.2"
    );
    let page = get(
        &s,
        &admin,
        &format!("{ORDERS}/details/CS2610010800AAA1?limit=1&offset=1"),
    )
    .await
    .json();
    assert_eq!(page["total_count"], 2);
    assert_eq!(
        ids(&page, "order_line_items", "order_line_item_id"),
        ["CS2610010800AAA1-2"]
    );
    assert_error(
        &get(
            &s,
            &admin,
            &format!("{ORDERS}/details/CS2610010800AAA1?limit=0"),
        )
        .await,
        400,
        "CBC.0101",
    );
    let west_admin = s.operator("op-west-admin").await;
    let foreign = get(
        &s,
        &west_admin,
        &format!("{ORDERS}/details/CS2610010800AAA1"),
    )
    .await;
    let unknown = get(&s, &west_admin, &format!("{ORDERS}/details/CS-NOPE")).await;
    same_as_unknown(&foreign, &unknown);
}

async fn adjusts_prices(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let finance = s.operator("op-dist-finance").await;
    let path = |id: &str| format!("{ORDERS}/{id}/price-adjustments");
    let pixel = path("CS2611161500PPP2"); // referral customer, pending payment, 300.00

    let r = post(
        &s,
        &finance,
        &pixel,
        json!({"amount_after_adjustment": "250.00", "reason": "loyalty"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let v = r.json();
    assert_eq!(v["order_id"], "CS2611161500PPP2");
    assert_eq!(v["amount_before_adjustment"], 250.0 + 50.0);
    assert_eq!(v["amount_after_adjustment"], 250.0);
    assert_eq!(v["operator_id"], "op-dist-finance");
    assert_eq!(v["operator_name"], "Farid Finance");
    assert_eq!(v["reason"], "loyalty");
    assert!(body_text(&r).contains(r#""amount_after_adjustment":250.00"#));
    // The order reflects it, with a price-adjustment discount.
    let d = get(&s, &finance, &format!("{ORDERS}/details/CS2611161500PPP2"))
        .await
        .json();
    assert_eq!(d["order_info"]["amount_after_discount"], 250.0);
    assert_eq!(d["order_info"]["official_amount"], 300.0);
    assert_eq!(
        d["order_info"]["amount_info"]["discounts"],
        json!([{"discount_type": "609", "discount_amount": 50.0}])
    );
    // A JSON number (what the SDK sends for a Decimal) works as well.
    let r = post(
        &s,
        &finance,
        &pixel,
        json!({"amount_after_adjustment": 240.5, "reason": "bundle"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", body_text(&r));
    assert_eq!(r.json()["amount_before_adjustment"], 250.0);

    // History, newest first, paged.
    let h = get(&s, &finance, &pixel).await;
    assert_eq!(h.status, 200, "{}", body_text(&h));
    let h = h.json();
    assert_eq!(h["total_count"], 2);
    let after: Vec<f64> = h["price_adjustments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["amount_after_adjustment"].as_f64().unwrap())
        .collect();
    assert_eq!(after, [240.5, 250.0]);
    assert!(h["price_adjustments"][0]["create_time"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let one = get(&s, &finance, &format!("{pixel}?limit=1&offset=1"))
        .await
        .json();
    assert_eq!(one["total_count"], 2);
    assert_eq!(one["price_adjustments"][0]["reason"], "loyalty");
    assert_error(
        &get(&s, &finance, &format!("{pixel}?limit=101")).await,
        400,
        "CBC.0101",
    );

    // Refusals, none of which changes anything.
    let body = |amount: Value| json!({"amount_after_adjustment": amount, "reason": "r"});
    for (order, req, status, code) in [
        // A resale customer's order; a paid order.
        (
            path("CS2611050900AAA2"),
            body(json!("100.00")),
            403,
            "CBC.99005024",
        ),
        (
            path("CS2610251400PPP1"),
            body(json!("90.00")),
            409,
            "CBC.30000067",
        ),
        // Above the list price, negative, three places, not a number.
        (pixel.clone(), body(json!("300.01")), 400, "CBC.0101"),
        (pixel.clone(), body(json!("-1.00")), 400, "CBC.0100"),
        (pixel.clone(), body(json!("1.001")), 400, "CBC.0100"),
        (pixel.clone(), body(json!("cheap")), 400, "CBC.0100"),
        // Reason missing, blank or too long; unknown fields.
        (
            pixel.clone(),
            json!({"amount_after_adjustment": "1.00"}),
            400,
            "CBC.0100",
        ),
        (
            pixel.clone(),
            json!({"amount_after_adjustment": "1.00", "reason": "  "}),
            400,
            "CBC.0100",
        ),
        (
            pixel.clone(),
            json!({"amount_after_adjustment": "1.00", "reason": "x".repeat(257)}),
            400,
            "CBC.0101",
        ),
        (
            pixel.clone(),
            json!({"amount_after_adjustment": "1.00", "reason": "r", "x": 1}),
            400,
            "CBC.0100",
        ),
    ] {
        let r = post(&s, &finance, &order, req).await;
        assert_error(&r, status, code);
    }
    // Out of scope looks unknown, for the history too.
    let west = s.operator("op-west-admin").await;
    let foreign = post(&s, &west, &pixel, body(json!("1.00"))).await;
    let unknown = post(&s, &west, &path("CS-NOPE"), body(json!("1.00"))).await;
    same_as_unknown(&foreign, &unknown);
    let foreign = get(&s, &west, &pixel).await;
    let unknown = get(&s, &west, &path("CS-NOPE")).await;
    same_as_unknown(&foreign, &unknown);
    let h = get(&s, &finance, &pixel).await.json();
    assert_eq!(h["total_count"], 2);
    let d = get(&s, &finance, &format!("{ORDERS}/details/CS2611161500PPP2"))
        .await
        .json();
    assert_eq!(d["order_info"]["amount_after_discount"], 240.5);

    // Zero is a valid price; the record keeps operator and time in the database.
    let east_fin = s.operator("op-east-finance").await;
    let r = post(&s, &east_fin, &path("CS2611011700FFF1"), body(json!(0))).await;
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let row = sqlx::query("SELECT operator_id, amount_before_cents, amount_after_cents, created_at FROM price_adjustments WHERE order_id = $1")
        .bind("CS2611011700FFF1".to_owned())
        .fetch_one(s.db.store.pool())
        .await
        .unwrap();
    assert_eq!(
        row.try_get::<String, _>("operator_id").unwrap(),
        "op-east-finance"
    );
    assert_eq!(row.try_get::<i64, _>("amount_before_cents").unwrap(), 4500);
    assert_eq!(row.try_get::<i64, _>("amount_after_cents").unwrap(), 0);
    assert!(row
        .try_get::<String, _>("created_at")
        .unwrap()
        .starts_with("20"));

    // The status alone decides too: a referral order without a payment time is
    // adjustable only while pending approval (1) or pending payment (6).
    let radius = path("CS2607011600RRR1"); // referral, completed, 75.00
    let set_status = |status: i64| {
        sqlx::query("UPDATE orders SET status = $1, payment_time = NULL WHERE id = $2")
            .bind(status)
            .bind("CS2607011600RRR1".to_owned())
            .execute(s.db.store.pool())
    };
    for status in [3, 4, 5, 9] {
        set_status(status).await.unwrap();
        assert_error(
            &post(&s, &finance, &radius, body(json!("70.00"))).await,
            409,
            "CBC.30000067",
        );
    }
    for (status, amount) in [(1, "70.00"), (6, "65.00")] {
        set_status(status).await.unwrap();
        let r = post(&s, &finance, &radius, body(json!(amount))).await;
        assert_eq!(r.status, 201, "status {status}: {}", body_text(&r));
    }
    let h = get(&s, &finance, &radius).await.json();
    assert_eq!(h["total_count"], 2, "the refused statuses changed nothing");
    assert_eq!(h["price_adjustments"][1]["amount_before_adjustment"], 75.0);
}

/// Polls an export until it leaves `pending` (bounded: 5 s at most).
async fn wait_for_export(
    s: &DomainServer,
    who: &partner_gateway::assertion::Identity,
    id: &str,
) -> Value {
    for _ in 0..500 {
        let r = s
            .call("GET", &format!("{ORDERS}/exports/{id}"), Some(who), None)
            .await;
        assert_eq!(r.status, 200, "{}", body_text(&r));
        let v = r.json();
        if v["status"] != "pending" {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("export {id} still pending after 5 s");
}

async fn exports_orders(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let admin = s.operator("op-dist-admin").await;
    let exports = format!("{ORDERS}/exports");

    // Selected orders.
    let r = post(
        &s,
        &admin,
        &exports,
        json!({"order_ids": ["CS2610010800AAA1", "CS2611121300NNN2"]}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", body_text(&r));
    assert_error(
        &post(
            &s,
            &admin,
            &exports,
            json!({"order_ids": ["CS2610010800AAA1", "CS2610010800AAA1"]}),
        )
        .await,
        400,
        "CBC.0101",
    );
    let v = r.json();
    assert_eq!(v["status"], "pending");
    let selected = v["export_id"].as_str().unwrap().to_owned();
    let done = wait_for_export(&s, &admin, &selected).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["order_count"], 2);
    assert!(done["complete_time"].as_str().is_some());
    let file = get(&s, &admin, &format!("{exports}/{selected}/file")).await;
    assert_eq!(file.status, 200, "{}", body_text(&file));
    assert!(file.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(file.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains(&selected));
    let mut reader = csv::Reader::from_reader(file.body.as_ref());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "order_id",
            "customer_id",
            "customer_account_name",
            "service_type_code",
            "service_type_name",
            "order_type",
            "status",
            "source_type",
            "official_amount",
            "amount_after_discount",
            "currency",
            "create_time",
            "payment_time"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][0], "CS2610010800AAA1");
    assert_eq!(&rows[0][2], "acme");
    assert_eq!(&rows[0][6], "5", "completed");
    assert_eq!(&rows[0][8], "150.00");
    assert_eq!(&rows[0][9], "120.00");
    assert_eq!(&rows[0][12], s.at("now-51d3h55m"));
    assert_eq!(&rows[1][0], "CS2611121300NNN2");
    assert_eq!(&rows[1][6], "4", "cancelled");
    assert_eq!(&rows[1][12], "");

    // Everything in scope: no body at all, or an account manager's own customers only.
    let r = s.call("POST", &exports, Some(&admin), None).await;
    assert_eq!(r.status, 202, "{}", body_text(&r));
    let everything = r.json()["export_id"].as_str().unwrap().to_owned();
    assert_eq!(
        wait_for_export(&s, &admin, &everything).await["order_count"],
        13
    );
    let file = get(&s, &admin, &format!("{exports}/{everything}/file")).await;
    assert_eq!(
        csv::Reader::from_reader(file.body.as_ref())
            .records()
            .count(),
        13
    );
    let am = s.operator("op-dist-am").await;
    let r = post(&s, &am, &exports, json!({})).await;
    let mine = r.json()["export_id"].as_str().unwrap().to_owned();
    assert_eq!(wait_for_export(&s, &am, &mine).await["order_count"], 3);

    // The history holds the caller's own exports only, paged.
    let h = get(&s, &admin, &exports).await.json();
    assert_eq!(h["total_count"], 2);
    let mut listed = ids(&h, "exports", "export_id");
    listed.sort();
    let mut want = vec![selected.clone(), everything.clone()];
    want.sort();
    assert_eq!(listed, want);
    let p = get(&s, &admin, &format!("{exports}?limit=1")).await.json();
    assert_eq!(p["total_count"], 2);
    assert_eq!(p["exports"].as_array().unwrap().len(), 1);
    assert_error(
        &get(&s, &admin, &format!("{exports}?limit=0")).await,
        400,
        "CBC.0101",
    );

    // Another operator of the same partner: the export looks unknown.
    let finance = s.operator("op-dist-finance").await;
    assert_eq!(get(&s, &finance, &exports).await.json()["total_count"], 0);
    let unknown = get(&s, &finance, &format!("{exports}/exp-nope")).await;
    same_as_unknown(
        &get(&s, &finance, &format!("{exports}/{selected}")).await,
        &unknown,
    );
    let unknown_file = get(&s, &finance, &format!("{exports}/exp-nope/file")).await;
    same_as_unknown(
        &get(&s, &finance, &format!("{exports}/{selected}/file")).await,
        &unknown_file,
    );

    // All or nothing: an id out of scope (or unknown) refuses the export and creates none.
    let west = s.operator("op-west-admin").await;
    let mixed = post(
        &s,
        &west,
        &exports,
        json!({"order_ids": ["CS2605051800HHH1", "CS2610010800AAA1"]}),
    )
    .await;
    let unknown = post(
        &s,
        &west,
        &exports,
        json!({"order_ids": ["CS2605051800HHH1", "CS-NOPE"]}),
    )
    .await;
    assert_error(&mixed, 403, "CBC.0151");
    assert_error(&unknown, 403, "CBC.0151");
    // Each names its refused id alone, in the same words.
    let detail = |r: &crate::kit::TestResponse| {
        let mut d = r.json()["error_details"].clone();
        assert_eq!(d.as_array().unwrap().len(), 1, "{d}");
        d[0]["id"] = json!("?");
        d
    };
    assert_eq!(detail(&mixed), detail(&unknown));
    assert_eq!(get(&s, &west, &exports).await.json()["total_count"], 0);
    for (order_ids, code) in [
        (json!([]), "CBC.0101"),
        (json!([""]), "CBC.0101"),
        (json!("CS2605051800HHH1"), "CBC.0100"),
    ] {
        let body = json!({ "order_ids": order_ids });
        let r = post(&s, &west, &exports, body).await;
        assert_error(&r, 400, code);
    }
    assert_error(
        &s.call("POST", &exports, Some(&s.customer("cust-acme")), None)
            .await,
        403,
        "CBC.0151",
    );

    // A file is only there once completed; an export lost with a restart is reported failed.
    let pool = s.db.store.pool();
    let insert = |id: &str, status: &str, created: &str| {
        sqlx::query("INSERT INTO export_tasks (id, principal_kind, principal_id, partner_id, status, order_ids, created_at, error)
                     VALUES ($1, 'operator', 'op-west-admin', 'res-west', $2, '[]', $3, $4)")
            .bind(id.to_owned())
            .bind(status.to_owned())
            .bind(created.to_owned())
            .bind((status == "failed").then(|| "boom".to_owned()))
    };
    let now = partner_gateway::time::format(partner_gateway::time::now());
    insert("exp-running", "pending", &now)
        .execute(pool)
        .await
        .unwrap();
    insert("exp-broken", "failed", &now)
        .execute(pool)
        .await
        .unwrap();
    insert("exp-lost", "pending", "2026-01-01T00:00:00Z")
        .execute(pool)
        .await
        .unwrap();
    let r = get(&s, &west, &format!("{exports}/exp-running/file")).await;
    assert_error(&r, 409, "CBC.30000067");
    assert!(r.json()["error_msg"].as_str().unwrap().contains("pending"));
    let r = get(&s, &west, &format!("{exports}/exp-broken/file")).await;
    assert_error(&r, 409, "CBC.30000067");
    assert!(r.json()["error_msg"].as_str().unwrap().contains("boom"));
    let lost = get(&s, &west, &format!("{exports}/exp-lost")).await.json();
    assert_eq!(lost["status"], "failed");
    assert!(lost["error_msg"].as_str().unwrap().contains("interrupted"));
    // Answered so, not written so: reading changes nothing; the export
    // worker records it, at its start and every minute after.
    let status = |id: &'static str| async move {
        sqlx::query("SELECT status FROM export_tasks WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap()
            .get::<String, _>(0)
    };
    assert_eq!(status("exp-lost").await, "pending");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (_queue, worker) =
        partner_gateway::domain::start_export_worker(s.db.store.clone(), stopped);
    crate::gateway::poll(
        "the worker to record the lost export",
        std::time::Duration::from_secs(20),
        || async { (status("exp-lost").await == "failed").then_some(()) },
    )
    .await;
    assert_eq!(status("exp-running").await, "pending");
    stop.send(true).unwrap();
    worker.await.unwrap();
    assert_eq!(
        get(&s, &west, &format!("{exports}/exp-running"))
            .await
            .json()["status"],
        "pending"
    );
}

async fn queries_resources(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let admin = s.operator("op-dist-admin").await;

    // Pay-per-use (CustomerOnDemandResource).
    let r = post(
        &s,
        &admin,
        ON_DEMAND,
        json!({"customer_id": "cust-acme", "offset": 0, "limit": 10}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    let v = r.json();
    assert_eq!(v["total_count"], 1);
    let res = &v["resources"][0];
    for (field, want) in [
        ("customer_id", json!("cust-acme")),
        ("resource_id", json!("obs-acme-logs")),
        ("resource_name", json!("acme-logs")),
        ("region_code", json!("ap-southeast-1")),
        ("service_type_code", json!("hws.service.type.obs")),
        ("service_type_name", json!("Object Storage Service")),
        ("resource_type_code", json!("hws.resource.type.obs")),
        ("effective_time", json!(s.at("now-324d12h"))),
        ("expire_time", Value::Null),
        ("status", json!(1)),
    ] {
        assert_eq!(res[field], want, "{field}");
    }
    let pixel = |status: i64| {
        post(
            &s,
            &admin,
            ON_DEMAND,
            json!({"customer_id": "cust-pixel", "status": status}),
        )
    };
    assert_eq!(
        pixel(1).await.json()["total_count"],
        1,
        "a stopped server is normal"
    );
    assert_eq!(pixel(6).await.json()["total_count"], 0);
    assert_error(&pixel(9).await, 400, "CBC.0101");
    let r = post(
        &s,
        &admin,
        ON_DEMAND,
        json!({"customer_id": "cust-acme", "effective_time_begin": s.at("now-293d12h")}),
    )
    .await;
    assert_eq!(r.json()["total_count"], 0);
    let r = post(&s, &admin, ON_DEMAND, json!({"customer_id": "cust-acme", "region_code": "ap-southeast-1", "service_type_code": "hws.service.type.obs", "resource_ids": ["obs-acme-logs"]})).await;
    assert_eq!(r.json()["total_count"], 1);
    // A distributor narrowed to a reseller reaches that reseller's customers only.
    let r = post(
        &s,
        &admin,
        ON_DEMAND,
        json!({"customer_id": "cust-acme", "indirect_partner_id": "res-east"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    // On a route that names its customer, indirect_partner_id is accepted
    // and the customer id alone decides.
    let r = post(
        &s,
        &admin,
        ON_DEMAND,
        json!({"customer_id": "cust-nova", "indirect_partner_id": "res-east"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", body_text(&r));

    // Yearly/monthly (OrderInstanceV2).
    let r = post(
        &s,
        &admin,
        SUBSCRIPTIONS,
        json!({"customer_id": "cust-acme"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    let v = r.json();
    assert_eq!(v["total_count"], 3);
    let web1 = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["resource_id"] == "vm-acme-web-1")
        .unwrap();
    assert_eq!(web1["id"], "vm-acme-web-1");
    assert_eq!(
        web1["product_id"], "00301-ec2-c6.large.2",
        "the order's line item of the same resource type"
    );
    assert_eq!(web1["is_main_resource"], 1);
    assert_eq!(web1["expire_time"], s.at("now+3d12h").as_str());
    assert_eq!(web1["resource_type_code"], "hws.resource.type.vm");
    let birch = post(
        &s,
        &admin,
        SUBSCRIPTIONS,
        json!({"customer_id": "cust-birch"}),
    )
    .await
    .json();
    assert_eq!(birch["data"][0]["status"], 2);
    assert_eq!(birch["data"][0]["product_id"], "00302-rds-mysql-2u4g");
    let status = |customer: &str, list: Vec<i64>| {
        post(
            &s,
            &admin,
            SUBSCRIPTIONS,
            json!({"customer_id": customer, "status_list": list}),
        )
    };
    assert_eq!(
        status("cust-quartz", vec![5]).await.json()["data"][0]["resource_id"],
        "vm-quartz-old"
    );
    assert_eq!(
        status("cust-quartz", vec![2]).await.json()["total_count"],
        0
    );
    assert_eq!(
        status("cust-radius", vec![3]).await.json()["total_count"],
        1
    );
    let east = s.operator("op-east-admin").await;
    let glacier = post(
        &s,
        &east,
        SUBSCRIPTIONS,
        json!({"customer_id": "cust-glacier", "status_list": [4]}),
    )
    .await;
    assert_eq!(glacier.json()["data"][0]["status"], 4);
    // Paging and filters.
    let p = post(
        &s,
        &admin,
        SUBSCRIPTIONS,
        json!({"customer_id": "cust-acme", "limit": 1, "offset": 2}),
    )
    .await
    .json();
    assert_eq!(p["total_count"], 3);
    assert_eq!(p["data"].as_array().unwrap().len(), 1);
    for (filter, want) in [
        (json!({"resource_ids": ["vm-acme-web-2"]}), 1),
        (json!({"order_id": "CS2610010800AAA1"}), 1),
        (json!({"service_type_code": "hws.service.type.ebs"}), 1),
        (json!({"only_main_resource": 1}), 3),
    ] {
        let mut body = filter.clone();
        body["customer_id"] = json!("cust-acme");
        let v = post(&s, &admin, SUBSCRIPTIONS, body).await.json();
        assert_eq!(v["total_count"], want, "{filter}");
    }
    let dec = post(&s, &admin, SUBSCRIPTIONS, json!({"customer_id": "cust-acme", "expire_time_begin": s.at("now+9d12h"), "expire_time_end": s.at("now+39d12h")})).await.json();
    let mut got = ids(&dec, "data", "resource_id");
    got.sort();
    assert_eq!(got, ["vm-acme-web-2", "vol-acme-data"]);

    // Parameter errors.
    let many: Vec<String> = (0..51).map(|i| format!("r{i}")).collect();
    for (path, body, code) in [
        (
            SUBSCRIPTIONS,
            json!({"customer_id": "cust-acme", "limit": 0}),
            "CBC.0101",
        ),
        (
            SUBSCRIPTIONS,
            json!({"customer_id": "cust-acme", "limit": 101}),
            "CBC.0101",
        ),
        (
            SUBSCRIPTIONS,
            json!({"customer_id": "cust-acme", "offset": -1}),
            "CBC.0101",
        ),
        (
            SUBSCRIPTIONS,
            json!({"customer_id": "cust-acme", "status_list": [7]}),
            "CBC.0101",
        ),
        (
            SUBSCRIPTIONS,
            json!({"customer_id": "cust-acme", "only_main_resource": 2}),
            "CBC.0101",
        ),
        (
            SUBSCRIPTIONS,
            json!({"customer_id": "cust-acme", "service_type_code": ""}),
            "CBC.0101",
        ),
        (
            SUBSCRIPTIONS,
            json!({"customer_id": "cust-acme", "resource_ids": many}),
            "CBC.0101",
        ),
        (
            SUBSCRIPTIONS,
            json!({"customer_id": "cust-acme", "expire_time_begin": "2027-01-01T00:00:00Z", "expire_time_end": "2026-01-01T00:00:00Z"}),
            "CBC.0101",
        ),
        (
            SUBSCRIPTIONS,
            json!({"customer_id": "cust-acme", "expire_time_end": "soon"}),
            "CBC.0100",
        ),
        (
            SUBSCRIPTIONS,
            json!({"customer_id": "cust-acme", "colour": "red"}),
            "CBC.0100",
        ),
        (SUBSCRIPTIONS, json!({"limit": 10}), "CBC.0100"),
        (
            ON_DEMAND,
            json!({"customer_id": "cust-acme", "limit": 101}),
            "CBC.0101",
        ),
        (
            ON_DEMAND,
            json!({"customer_id": "cust-acme", "status": "1"}),
            "CBC.0100",
        ),
        (ON_DEMAND, json!({}), "CBC.0100"),
    ] {
        assert_error(&post(&s, &admin, path, body.clone()).await, 400, code);
    }
    assert_error(
        &s.call("POST", ON_DEMAND, Some(&admin), None).await,
        400,
        "CBC.0100",
    );

    // Scoping: a sibling reseller's customer, or another account manager's, looks unknown.
    for path in [ON_DEMAND, SUBSCRIPTIONS] {
        let sibling = post(&s, &east, path, json!({"customer_id": "cust-harbor"})).await;
        let unknown = post(&s, &east, path, json!({"customer_id": "cust-nope"})).await;
        same_as_unknown(&sibling, &unknown);
        let am = s.operator("op-dist-am").await;
        let other = post(&s, &am, path, json!({"customer_id": "cust-pixel"})).await;
        same_as_unknown(&other, &unknown);
        let own = post(&s, &am, path, json!({"customer_id": "cust-nova"})).await;
        assert_eq!(own.json()["total_count"], 1, "{}", body_text(&own));
    }
}

test_on_backends! {
    order_list_and_details => lists_and_shows_orders;
    order_price_adjustments => adjusts_prices;
    order_exports => exports_orders;
    partner_resource_queries => queries_resources;
}
