//! The customer's own account (`/v2/customer/...`): placing orders, its
//! orders and resources, resource operations, and what a session acting as
//! the customer leaves behind (source_type 2, activity rows).

use crate::kit::{DomainServer, TestResponse};
use crate::test_on_backends;
use partner_gateway::assertion::Identity;
use partner_gateway::model::AuthorizationScope::{Om, Order};
use partner_gateway::store::Backend;
use serde_json::{json, Value};
use sqlx::Row;

use super::support::{assert_error, body_text, get, post, same_as_unknown, DEMO};

const ORDERS: &str = "/v2/customer/orders";
const RESOURCES: &str = "/v2/customer/resources";

fn ts(v: &Value) -> partner_gateway::time::Timestamp {
    partner_gateway::time::parse(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap()
}

fn yearly(period_type: i64, period_num: i64, amount: Value) -> Value {
    json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2",
           "product_id": "00301-ec2-c6.large.2", "period_type": period_type, "period_num": period_num, "amount": amount})
}

fn pay_per_use() -> Value {
    json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.obs", "product_id": "obs-standard"})
}

async fn count(s: &DomainServer, table: &str, customer: &str) -> i64 {
    sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM {table} WHERE customer_id = $1"
    ))
    .bind(customer.to_owned())
    .fetch_one(s.db.store.pool())
    .await
    .unwrap()
    .try_get("n")
    .unwrap()
}

async fn place(s: &DomainServer, who: &Identity, body: Value) -> TestResponse {
    post(s, who, ORDERS, body).await
}

async fn operate(s: &DomainServer, who: &Identity, resource: &str, op: &str) -> TestResponse {
    let path = format!("{RESOURCES}/{resource}/operations");
    post(s, who, &path, json!({"operation": op})).await
}

async fn places_and_lists(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let acme = s.customer("cust-acme");

    // A yearly/monthly purchase: an order pending payment and its resource.
    let r = place(&s, &acme, yearly(2, 3, json!("360.00"))).await;
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let v = r.json();
    assert_eq!(v["source_type"], 1);
    let order = &v["order"];
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    assert!(
        order_id.starts_with("CS") && order_id.len() == 18,
        "{order_id}"
    );
    for (field, want) in [
        ("customer_id", json!("cust-acme")),
        ("status", json!(6)),
        ("order_type", json!(1)),
        ("source_type", json!(1)),
        ("service_type_code", json!("hws.service.type.ec2")),
        ("amount_after_discount", json!(360.0)),
        ("official_amount", json!(360.0)),
        ("payment_time", Value::Null),
        ("currency", json!("USD")),
    ] {
        assert_eq!(order[field], want, "{field}");
    }
    let res = &v["resource"];
    assert_eq!(res["charging"], "yearly_monthly");
    assert_eq!(res["status"], "in_use");
    assert_eq!(res["order_id"], order_id.as_str());
    assert_eq!(res["product_id"], "00301-ec2-c6.large.2");
    let created = ts(&order["create_time"]);
    assert_eq!(
        ts(&res["expire_time"]),
        created.checked_add_months(chrono::Months::new(3)).unwrap()
    );
    assert!(body_text(&r).contains(r#""amount_after_discount":360.00"#));
    // The order's details carry the line item with the period.
    let admin = s.operator("op-east-admin").await;
    let d = get(
        &s,
        &admin,
        &format!("/v2/orders/customer-orders/details/{order_id}"),
    )
    .await
    .json();
    assert_eq!(d["order_line_items"][0]["period_type"], 2);
    assert_eq!(d["order_line_items"][0]["period_num"], 3);
    assert_eq!(d["order_line_items"][0]["amount_after_discount"], 360.0);
    // A yearly purchase with a numeric amount.
    let r = place(&s, &acme, yearly(3, 1, json!(1200.5))).await;
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let v = r.json();
    assert_eq!(
        ts(&v["resource"]["expire_time"]),
        ts(&v["order"]["create_time"])
            .checked_add_months(chrono::Months::new(12))
            .unwrap()
    );

    // Pay-per-use: a resource, no order.
    let r = place(&s, &acme, pay_per_use()).await;
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let v = r.json();
    assert_eq!(v["order"], Value::Null);
    assert_eq!(v["resource"]["charging"], "pay_per_use");
    assert_eq!(v["resource"]["expire_time"], Value::Null);
    assert_eq!(v["resource"]["order_id"], Value::Null);
    // With no order line item, the resource keeps the product it was bought as.
    assert_eq!(v["resource"]["product_id"], "obs-standard", "{v}");
    // The customer acting itself leaves no partner-activity record.
    assert_eq!(count(&s, "activities", "cust-acme").await, 0);

    // Own orders: the demo's two and the two new ones, newest first, paged.
    let list = get(&s, &acme, ORDERS).await;
    assert_eq!(list.status, 200, "{}", body_text(&list));
    let list = list.json();
    assert_eq!(list["total_count"], 4);
    assert_eq!(list["order_infos"].as_array().unwrap().len(), 4);
    let page = get(&s, &acme, &format!("{ORDERS}?limit=1&offset=3"))
        .await
        .json();
    assert_eq!(page["total_count"], 4);
    assert_eq!(page["order_infos"][0]["order_id"], "CS2610010800AAA1");
    let pending = get(&s, &acme, &format!("{ORDERS}?status=6&order_type=1"))
        .await
        .json();
    assert_eq!(pending["total_count"], 2);
    let completed = get(&s, &acme, &format!("{ORDERS}?status=5")).await.json();
    assert_eq!(completed["total_count"], 1);
    assert_eq!(
        completed["order_infos"][0]["order_id"], "CS2610010800AAA1",
        "the demo's paid order"
    );
    // Own resources: the demo's four and the three new ones.
    let res = get(&s, &acme, RESOURCES).await;
    assert_eq!(res.status, 200, "{}", body_text(&res));
    let res = res.json();
    assert_eq!(res["total_count"], 7);
    let first = &res["resources"][0];
    for field in [
        "resource_id",
        "resource_name",
        "charging",
        "service_type_code",
        "service_type_name",
        "status",
        "effective_time",
    ] {
        assert!(!first[field].is_null(), "{field} in {first}");
    }
    let ppu = get(&s, &acme, &format!("{RESOURCES}?charging=pay_per_use"))
        .await
        .json();
    assert_eq!(ppu["total_count"], 2);
    let closed = get(&s, &acme, &format!("{RESOURCES}?status=closed&limit=100"))
        .await
        .json();
    assert_eq!(closed["total_count"], 0);
    let page = get(&s, &acme, &format!("{RESOURCES}?limit=2&offset=6"))
        .await
        .json();
    assert_eq!(page["resources"].as_array().unwrap().len(), 1);

    // Every field is validated; nothing is created by a refused request.
    let orders_before = count(&s, "orders", "cust-acme").await;
    let resources_before = count(&s, "resources", "cust-acme").await;
    let mut bad = vec![
        (
            json!({"charging": "monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p"}),
            "CBC.0101",
        ),
        (
            json!({"service_type_code": "hws.service.type.ec2", "product_id": "p"}),
            "CBC.0100",
        ),
        (
            json!({"charging": "pay_per_use", "service_type_code": "ec2", "product_id": "p"}),
            "CBC.0101",
        ),
        (
            json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": ""}),
            "CBC.0100",
        ),
        (
            json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": "p q"}),
            "CBC.0101",
        ),
        (
            json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": "p", "amount": "1.00"}),
            "CBC.0101",
        ),
        (
            json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": "p", "region": "x"}),
            "CBC.0100",
        ),
        (yearly(1, 1, json!("10.00")), "CBC.0101"),
        (yearly(2, 10, json!("10.00")), "CBC.0101"),
        (yearly(2, 0, json!("10.00")), "CBC.0101"),
        (yearly(3, 4, json!("10.00")), "CBC.0101"),
        (yearly(2, 1, json!("10.001")), "CBC.0100"),
        (yearly(2, 1, json!("-5")), "CBC.0100"),
        (yearly(2, 1, json!("0.00")), "CBC.0100"),
        (yearly(2, 1, json!("2147483647.01")), "CBC.0100"),
        (yearly(2, 1, json!("ten")), "CBC.0100"),
        (
            json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 2, "period_num": 1}),
            "CBC.0100",
        ),
        (
            json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_num": 1, "amount": "1.00"}),
            "CBC.0100",
        ),
    ];
    bad.push((json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": "2", "period_num": 1, "amount": "1.00"}), "CBC.0100"));
    for (body, code) in bad {
        let r = place(&s, &acme, body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.error_code()),
            (400, code.to_owned()),
            "{body}: {}",
            body_text(&r)
        );
    }
    assert_error(
        &s.call("POST", ORDERS, Some(&acme), None).await,
        400,
        "CBC.0100",
    );
    assert_eq!(count(&s, "orders", "cust-acme").await, orders_before);
    assert_eq!(count(&s, "resources", "cust-acme").await, resources_before);
    for q in [
        "limit=0",
        "limit=101",
        "offset=-1",
        "status=8",
        "status=2",
        "order_type=0",
        "order_by=price",
        "customer_id=cust-birch",
    ] {
        assert_error(
            &get(&s, &acme, &format!("{ORDERS}?{q}")).await,
            400,
            if q.starts_with("customer_id") {
                "CBC.0100"
            } else {
                "CBC.0101"
            },
        );
    }
    for q in ["limit=0", "limit=101", "charging=monthly", "status=running"] {
        assert_error(
            &get(&s, &acme, &format!("{RESOURCES}?{q}")).await,
            400,
            "CBC.0101",
        );
    }

    // A frozen customer orders nothing, whatever the freeze type.
    for frozen in ["cust-glacier", "cust-quartz"] {
        let who = s.customer(frozen);
        let before = count(&s, "resources", frozen).await;
        assert_error(
            &place(&s, &who, yearly(2, 1, json!("10.00"))).await,
            403,
            "CBC.99005036",
        );
        assert_error(&place(&s, &who, pay_per_use()).await, 403, "CBC.99005036");
        assert_eq!(count(&s, "resources", frozen).await, before);
    }
    // The customer-self routes are for customers (and their sessions), never operators.
    assert_error(&get(&s, &admin, ORDERS).await, 403, "CBC.0151");
    assert_error(&place(&s, &admin, pay_per_use()).await, 403, "CBC.0151");
    assert_error(&get(&s, &admin, RESOURCES).await, 403, "CBC.0151");
    assert_eq!(s.call("GET", ORDERS, None, None).await.status, 401);
}

async fn operates_resources(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let acme = s.customer("cust-acme");
    let r = place(&s, &acme, yearly(2, 1, json!("99.00"))).await;
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let vm = r.json()["resource"]["resource_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let expiry = ts(&r.json()["resource"]["expire_time"]);

    // start only from stopped; stop and restart only from in_use.
    assert_error(&operate(&s, &acme, &vm, "start").await, 409, "CBC.30000067");
    let r = operate(&s, &acme, &vm, "stop").await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    assert_eq!(r.json()["status"], "stopped");
    assert_eq!(r.json()["resource_id"], vm.as_str());
    assert_error(&operate(&s, &acme, &vm, "stop").await, 409, "CBC.30000067");
    assert_error(
        &operate(&s, &acme, &vm, "restart").await,
        409,
        "CBC.30000067",
    );
    assert_eq!(
        operate(&s, &acme, &vm, "start").await.json()["status"],
        "in_use"
    );
    let r = operate(&s, &acme, &vm, "restart").await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    assert_eq!(r.json()["status"], "in_use");

    // renew extends by the bought period from the current expiry.
    let r = operate(&s, &acme, &vm, "renew").await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    assert_eq!(
        ts(&r.json()["expire_time"]),
        expiry.checked_add_months(chrono::Months::new(1)).unwrap()
    );
    assert_eq!(r.json()["status"], "in_use");
    // Pay-per-use resources are not renewed.
    assert_error(
        &operate(&s, &acme, "obs-acme-logs", "renew").await,
        409,
        "CBC.30000067",
    );

    // Once its time has passed the resource is expired: no start/stop/restart,
    // but a renewal revives it from now.
    sqlx::query("UPDATE resources SET expire_at = '2026-01-01T00:00:00Z' WHERE id = $1")
        .bind(vm.clone())
        .execute(s.db.store.pool())
        .await
        .unwrap();
    let listed = get(&s, &acme, &format!("{RESOURCES}?status=expired"))
        .await
        .json();
    let expired = listed["resources"].as_array().unwrap();
    assert!(
        expired
            .iter()
            .any(|r| r["resource_id"] == vm.as_str() && r["status"] == "expired"),
        "{listed}"
    );
    for op in ["start", "stop", "restart"] {
        let r = operate(&s, &acme, &vm, op).await;
        assert_error(&r, 409, "CBC.30000067");
        assert!(
            r.json()["error_msg"].as_str().unwrap().contains("expired"),
            "{}",
            body_text(&r)
        );
    }
    let before = partner_gateway::time::now();
    let r = operate(&s, &acme, &vm, "renew").await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    assert_eq!(r.json()["status"], "in_use");
    let renewed = ts(&r.json()["expire_time"]);
    assert!(
        renewed >= before.checked_add_months(chrono::Months::new(1)).unwrap(),
        "{renewed}"
    );

    // unsubscribe closes; nothing operates a closed resource.
    let r = operate(&s, &acme, &vm, "unsubscribe").await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    assert_eq!(r.json()["status"], "closed");
    for op in ["start", "stop", "restart", "renew", "unsubscribe"] {
        assert_error(&operate(&s, &acme, &vm, op).await, 409, "CBC.30000067");
    }
    // A frozen resource (of a customer that is not frozen) is not operated either.
    sqlx::query("UPDATE resources SET status = 'frozen' WHERE id = 'vol-acme-data'")
        .execute(s.db.store.pool())
        .await
        .unwrap();
    for op in ["start", "stop", "restart", "renew", "unsubscribe"] {
        assert_error(
            &operate(&s, &acme, "vol-acme-data", op).await,
            409,
            "CBC.30000067",
        );
    }

    // Parameter errors.
    assert_error(&operate(&s, &acme, &vm, "reboot").await, 400, "CBC.0101");
    let path = format!("{RESOURCES}/{vm}/operations");
    assert_error(&post(&s, &acme, &path, json!({})).await, 400, "CBC.0100");
    assert_error(
        &post(
            &s,
            &acme,
            &path,
            json!({"operation": "stop", "force": true}),
        )
        .await,
        400,
        "CBC.0100",
    );

    // Another customer's resource looks unknown.
    let foreign = operate(&s, &acme, "rds-birch-main", "stop").await;
    let unknown = operate(&s, &acme, "res-nope", "stop").await;
    same_as_unknown(&foreign, &unknown);
    let birch = get(&s, &s.customer("cust-birch"), RESOURCES).await.json();
    assert!(birch["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["resource_id"] == "rds-birch-main" && r["status"] == "in_use"));

    // A frozen customer operates nothing (R10's policy).
    let glacier = s.customer("cust-glacier");
    assert_error(
        &operate(&s, &glacier, "rds-glacier-core", "start").await,
        403,
        "CBC.99005036",
    );
    assert_error(
        &operate(&s, &s.customer("cust-quartz"), "vm-quartz-old", "renew").await,
        403,
        "CBC.99005036",
    );
}

async fn records_session_actions(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let session = s
        .session("sess-acme-1", "op-east-ops", "cust-acme", vec![Om, Order])
        .await;
    let pool = s.db.store.pool();

    // An order placed in a session is an agent order, with the session behind it recorded.
    let r = place(&s, &session, yearly(2, 1, json!("80.00"))).await;
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let v = r.json();
    assert_eq!(v["source_type"], 2);
    assert_eq!(v["order"]["source_type"], 2);
    let order_id = v["order"]["order_id"].as_str().unwrap().to_owned();
    let vm = v["resource"]["resource_id"].as_str().unwrap().to_owned();
    let row =
        sqlx::query("SELECT source_type, session_id, source_operator_id FROM orders WHERE id = $1")
            .bind(order_id.clone())
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(row.try_get::<i64, _>("source_type").unwrap(), 2);
    assert_eq!(
        row.try_get::<String, _>("session_id").unwrap(),
        "sess-acme-1"
    );
    assert_eq!(
        row.try_get::<String, _>("source_operator_id").unwrap(),
        "op-east-ops"
    );
    // The partner sees it as an agent order too.
    let admin = s.operator("op-east-admin").await;
    let listed = get(
        &s,
        &admin,
        &format!("/v2/orders/customer-orders?order_id={order_id}"),
    )
    .await
    .json();
    assert_eq!(listed["order_infos"][0]["source_type"], 2);

    // Pay-per-use in a session, then an operation.
    let r = place(&s, &session, pay_per_use()).await;
    assert_eq!(r.status, 201, "{}", body_text(&r));
    assert_eq!(r.json()["source_type"], 2);
    let bucket = r.json()["resource"]["resource_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = operate(&s, &session, &vm, "stop").await;
    assert_eq!(r.status, 200, "{}", body_text(&r));

    // Refused actions leave no trace.
    assert_error(
        &operate(&s, &session, &vm, "stop").await,
        409,
        "CBC.30000067",
    );
    assert_error(
        &place(&s, &session, yearly(2, 1, json!("0"))).await,
        400,
        "CBC.0100",
    );
    let frozen = s
        .session(
            "sess-glacier-1",
            "op-east-ops",
            "cust-glacier",
            vec![Om, Order],
        )
        .await;
    assert_error(
        &place(&s, &frozen, pay_per_use()).await,
        403,
        "CBC.99005036",
    );
    assert_error(
        &operate(&s, &frozen, "rds-glacier-core", "renew").await,
        403,
        "CBC.99005036",
    );
    assert_eq!(count(&s, "activities", "cust-glacier").await, 0);

    // Exactly one activity row per successful session action, oldest first here.
    let rows = sqlx::query(
        "SELECT customer_id, session_id, operator_id, partner_id, action, target, detail, created_at
         FROM activities WHERE customer_id = 'cust-acme' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.try_get("action").unwrap(), r.try_get("target").unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("place_order".to_owned(), order_id.clone()),
            ("place_order".to_owned(), bucket.clone()),
            ("stop_resource".to_owned(), vm.clone()),
        ]
    );
    for r in &rows {
        assert_eq!(r.try_get::<String, _>("session_id").unwrap(), "sess-acme-1");
        assert_eq!(
            r.try_get::<String, _>("operator_id").unwrap(),
            "op-east-ops"
        );
        assert_eq!(r.try_get::<String, _>("partner_id").unwrap(), "res-east");
        assert!(r.try_get::<String, _>("created_at").unwrap().ends_with('Z'));
    }
    let detail: Value =
        serde_json::from_str(&rows[2].try_get::<String, _>("detail").unwrap()).unwrap();
    assert_eq!(detail["operation"], "stop");
    assert_eq!(detail["status_before"], "in_use");
    assert_eq!(detail["status_after"], "stopped");
    let detail: Value =
        serde_json::from_str(&rows[0].try_get::<String, _>("detail").unwrap()).unwrap();
    assert_eq!(detail["amount"], "80.00");
    assert_eq!(detail["resource_id"], vm.as_str());

    // The session sees the customer's own orders and resources.
    let mine = get(&s, &session, ORDERS).await.json();
    assert_eq!(mine["total_count"], 3);
    let res = get(&s, &session, &format!("{RESOURCES}?status=stopped"))
        .await
        .json();
    assert!(res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["resource_id"] == vm.as_str()));
    // ...and nothing of another customer.
    let foreign = operate(&s, &session, "rds-birch-main", "stop").await;
    assert_error(&foreign, 403, "CBC.0151");
}

test_on_backends! {
    customer_orders_and_lists => places_and_lists;
    customer_resource_operations => operates_resources;
    session_orders_and_activity => records_session_actions;
}
