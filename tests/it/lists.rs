//! Lists follow the policies, whatever they say (issue 13). For policy sets
//! drawn from a family of edits of the shipped set (tightened with forbids
//! on `frozen`, `association`, the partner's `kind`, the account manager, one
//! written in a form the filter compiler does not know; loosened by removing
//! a forbid; permit-all), for every demo operator, every customer list and
//! order list, page by page at sampled limits from 1 to 100, holds exactly
//! the items a single decision allows, `count` is that number on every page,
//! and an export of all orders holds exactly the orders one may export.
//! On SQLite and PostgreSQL.

use crate::kit::{policies_dir, promise_nothing, DomainServer, TestResponse};
use crate::test_on_backends;
use partner_gateway::assertion::Identity;
use partner_gateway::store::Backend;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

use crate::domain::support::DEMO;

/// One member of the family: a name, files to add, and shipped policy ids to
/// remove (each a whole `@id(...)`-to-`;` policy).
struct Edit {
    name: &'static str,
    add: &'static str,
    remove: &'static [&'static str],
    permit_all: bool,
}

const FAMILY: &[Edit] = &[
    Edit {
        name: "shipped",
        add: "",
        remove: &[],
        permit_all: false,
    },
    Edit {
        name: "no operator touches a frozen customer",
        add: r#"@id("R99-frozen-out")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Customer)
when { resource.frozen };
@id("R99-frozen-orders-out")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Order)
when { resource.customer.frozen };
"#,
        remove: &[],
        permit_all: false,
    },
    Edit {
        name: "referral customers are viewed by admins only",
        add: r#"@id("R99-referral-admins-only")
forbid (principal is PartnerCenter::Operator, action in PartnerCenter::Action::"ViewCustomerData", resource is PartnerCenter::Customer)
when { resource.association == "referral" && !principal.roles.contains("admin") };
"#,
        remove: &[],
        permit_all: false,
    },
    Edit {
        name: "a distributor does not view its resellers' customers",
        add: r#"@id("R99-own-customers-only")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Customer)
when { resource.partner.kind == "reseller" && principal.partner.kind == "distributor" };
@id("R99-own-orders-only")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Order)
when { resource.customer.partner.kind == "reseller" && principal.partner.kind == "distributor" };
"#,
        remove: &[],
        permit_all: false,
    },
    Edit {
        name: "managed customers only to their account manager",
        add: r#"@id("R99-managed-by-someone-else")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Customer)
when { resource has account_manager && resource.account_manager != principal };
"#,
        remove: &[],
        permit_all: false,
    },
    Edit {
        // Through the account manager, with `in`: a single decision sees
        // the account manager only when the loader follows the reference.
        name: "nobody touches what an account manager of res-east manages",
        add: r#"@id("R99-managed-from-east")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Customer)
when { resource has account_manager && resource.account_manager in PartnerCenter::Partner::"res-east" };
@id("R99-orders-managed-from-east")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Order)
when { resource.customer has account_manager && resource.customer.account_manager in PartnerCenter::Partner::"res-east" };
"#,
        remove: &[],
        permit_all: false,
    },
    Edit {
        // An attribute of the account manager: evaluates only when the
        // account manager is in the slice (else every decision errs).
        name: "nobody touches what an account manager in finance manages",
        add: r#"@id("R99-managed-by-finance")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Customer)
when { resource has account_manager && resource.account_manager.roles.contains("finance") };
@id("R99-orders-managed-by-finance")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Order)
when { resource.customer has account_manager && resource.customer.account_manager.roles.contains("finance") };
"#,
        remove: &[],
        permit_all: false,
    },
    Edit {
        // `like` has no filter form: the lists are decided item by item.
        name: "a forbid the filter compiler does not know",
        add: r#"@id("R99-no-names-ending-in-a")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Customer)
when { resource.association like "ref*" && resource.frozen == false && resource has account_manager };
@id("R99-no-orders-of-referrals-by-like")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Order)
when { resource.customer.association like "*erral" };
"#,
        remove: &[],
        permit_all: false,
    },
    Edit {
        name: "account managers reach the whole hierarchy",
        add: "",
        remove: &[
            "R1-account-manager-alone-reaches-managed-customers",
            "R1-account-manager-alone-reaches-managed-orders",
        ],
        permit_all: false,
    },
    Edit {
        name: "account managers also see their partner's unassigned customers",
        add: r#"@id("R99-account-manager-sees-unassigned")
forbid (principal is PartnerCenter::Operator, action, resource is PartnerCenter::Customer)
unless
{
  principal.roles.containsAny(["admin", "finance", "operations"]) ||
  (resource has account_manager && resource.account_manager == principal) ||
  !(resource has account_manager)
};
"#,
        remove: &["R1-account-manager-alone-reaches-managed-customers"],
        permit_all: false,
    },
    Edit {
        name: "permit-all",
        add: "",
        remove: &[],
        permit_all: true,
    },
];

/// The shipped policies with `edit` applied, in a temporary directory.
fn policies(edit: &Edit) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    promise_nothing(dir.path());
    if edit.permit_all {
        std::fs::write(
            dir.path().join("all.cedar"),
            "@id(\"all\")\npermit (principal, action, resource);\n",
        )
        .unwrap();
        return dir;
    }
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            let mut text = std::fs::read_to_string(&path).unwrap();
            for id in edit.remove {
                text = without_policy(&text, id);
            }
            std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
        }
    }
    if !edit.add.is_empty() {
        std::fs::write(dir.path().join("95-edit.cedar"), edit.add).unwrap();
    }
    dir
}

/// `text` without the policy `@id(id)` (from its `@id` line to its `;`).
fn without_policy(text: &str, id: &str) -> String {
    let marker = format!("@id(\"{id}\")");
    let Some(start) = text.find(&marker) else {
        return text.to_owned();
    };
    let end = text[start..].find("};").map(|i| start + i + 2).unwrap();
    format!("{}{}", &text[..start], &text[end..])
}

async fn explain(s: &DomainServer, who: &Identity, action: &str, resource: &str) -> bool {
    let body = json!({"principal": format!("Operator::\"{}\"", who.id), "action": action, "resource": resource});
    let r = crate::kit::post_admin(s.running.admin_addr, "/v1/explain", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["decision"] == "allow"
}

fn ids(v: &Value, list: &str, field: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {v}"))
        .iter()
        .map(|o| o[field].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of a list at `limit`, checking `count` on each: the ids in order.
async fn all_pages(
    s: &DomainServer,
    who: &Identity,
    limit: usize,
    page: impl Fn(usize) -> (String, Option<Value>),
    (list, field, count): (&str, &str, &str),
) -> Result<Vec<String>, TestResponse> {
    let mut out = Vec::new();
    let mut total = None;
    loop {
        let (path, body) = page(out.len());
        let method = if body.is_some() { "POST" } else { "GET" };
        let r = s.call(method, &path, Some(who), body).await;
        if r.status == 403 {
            return Err(r);
        }
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        let n = v[count].as_u64().unwrap() as usize;
        assert_eq!(
            *total.get_or_insert(n),
            n,
            "{count} changed between pages of {path}"
        );
        let got = ids(&v, list, field);
        assert!(got.len() <= limit);
        let done = got.is_empty() || out.len() + got.len() >= n;
        out.extend(got);
        if done {
            assert_eq!(out.len(), n, "{path}: the pages hold {count} items");
            return Ok(out);
        }
    }
}

/// Limits from 1 to 100: the small ones that make many pages, one drawn at
/// random per operator, and the largest.
fn limits(seed: usize) -> Vec<usize> {
    let drawn = 4 + (seed * 7919) % 96;
    let mut l = vec![1, 2, 3, drawn, 100];
    l.dedup();
    l
}

async fn lists_follow_the_policies(backend: Backend) {
    let demo: Value = serde_json::from_str(DEMO).unwrap();
    let operators: Vec<String> = demo["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    let customers: Vec<String> = demo["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let orders: Vec<String> = demo["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    for edit in FAMILY {
        let dir = policies(edit);
        let s = DomainServer::start_with(backend, DEMO, dir.path()).await;
        for (k, op) in operators.iter().enumerate() {
            let who = s.operator(op).await;
            let mut allowed_customers = BTreeSet::new();
            for c in &customers {
                if explain(&s, &who, "ViewCustomer", &format!("Customer::\"{c}\"")).await {
                    allowed_customers.insert(c.clone());
                }
            }
            let mut allowed_orders = BTreeSet::new();
            let mut exportable = BTreeSet::new();
            for o in &orders {
                if explain(&s, &who, "ViewOrder", &format!("Order::\"{o}\"")).await {
                    allowed_orders.insert(o.clone());
                }
                if explain(&s, &who, "ExportOrders", &format!("Order::\"{o}\"")).await {
                    exportable.insert(o.clone());
                }
            }
            let context = format!("{} / {op}", edit.name);
            for limit in limits(k) {
                let listed = all_pages(
                    &s,
                    &who,
                    limit,
                    |offset| {
                        (
                            "/v2/partners/sub-customers/query".into(),
                            Some(json!({"offset": offset, "limit": limit})),
                        )
                    },
                    ("customer_infos", "customer_id", "count"),
                )
                .await;
                check(&context, "customers", limit, listed, &allowed_customers);
                let listed = all_pages(
                    &s,
                    &who,
                    limit,
                    |offset| {
                        (
                            format!("/v2/orders/customer-orders?offset={offset}&limit={limit}"),
                            None,
                        )
                    },
                    ("order_infos", "order_id", "total_count"),
                )
                .await;
                check(&context, "orders", limit, listed, &allowed_orders);
            }
            // An export of every order holds exactly the exportable ones.
            let export = s
                .call(
                    "POST",
                    "/v2/orders/customer-orders/exports",
                    Some(&who),
                    None,
                )
                .await;
            if exportable.is_empty() && export.status == 403 {
                continue;
            }
            assert_eq!(
                export.status,
                202,
                "{context}: {}",
                String::from_utf8_lossy(&export.body)
            );
            let id = export.json()["export_id"].as_str().unwrap().to_owned();
            let csv = exported(&s, &who, &id).await;
            let in_file: BTreeSet<String> = csv
                .lines()
                .skip(1)
                .map(|l| l.split(',').next().unwrap().to_owned())
                .collect();
            assert_eq!(in_file, exportable, "{context}: the export");
        }
        s.running.stop().await;
    }
}

/// A list's ids against the allowed set; a 403 means "no item can be".
fn check(
    context: &str,
    what: &str,
    limit: usize,
    listed: Result<Vec<String>, TestResponse>,
    allowed: &BTreeSet<String>,
) {
    match listed {
        Ok(ids) => {
            let set: BTreeSet<String> = ids.iter().cloned().collect();
            assert_eq!(
                set.len(),
                ids.len(),
                "{context}: {what} listed twice at limit {limit}: {ids:?}"
            );
            assert_eq!(&set, allowed, "{context}: {what} at limit {limit}");
        }
        Err(r) => assert!(
            allowed.is_empty(),
            "{context}: {what} denied as a whole ({}) though {allowed:?} are allowed",
            String::from_utf8_lossy(&r.body)
        ),
    }
}

async fn exported(s: &DomainServer, who: &Identity, id: &str) -> String {
    let path = format!("/v2/orders/customer-orders/exports/{id}");
    for _ in 0..500 {
        if s.call("GET", &path, Some(who), None).await.json()["status"] == "completed" {
            let file = s
                .call("GET", &format!("{path}/file"), Some(who), None)
                .await;
            assert_eq!(file.status, 200);
            return String::from_utf8_lossy(&file.body).into_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("export {id} did not complete");
}

/// A form the compiler does not know is decided item by item, exactly,
/// counted in `pgw_list_fallbacks_total`.
async fn unknown_forms_fall_back(backend: Backend) {
    let edit = FAMILY
        .iter()
        .find(|e| e.name == "a forbid the filter compiler does not know")
        .unwrap();
    let dir = policies(edit);
    let s = DomainServer::start_with(backend, DEMO, dir.path()).await;
    let metrics = || async {
        let r = crate::kit::send(
            &crate::kit::http_client(),
            "GET",
            &format!("http://{}/metrics", s.running.admin_addr),
            &[],
            vec![],
        )
        .await;
        String::from_utf8_lossy(&r.body)
            .lines()
            .filter(|l| l.starts_with("pgw_list_fallbacks_total{action=\"ViewCustomer\"}"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    let before = metrics().await;
    let admin = s.operator("op-dist-admin").await;
    let am = s.operator("op-dist-am").await;
    let list = |who| {
        let s = &s;
        async move {
            s.call(
                "POST",
                "/v2/partners/sub-customers/query",
                Some(who),
                Some(json!({"limit": 100})),
            )
            .await
            .json()
        }
    };
    // The admin's list is exactly its single decisions, though the forbid
    // has no filter form.
    let v = list(&admin).await;
    let mut want: Vec<String> = Vec::new();
    for c in serde_json::from_str::<Value>(DEMO).unwrap()["customers"]
        .as_array()
        .unwrap()
    {
        let id = c["id"].as_str().unwrap();
        if explain(&s, &admin, "ViewCustomer", &format!("Customer::\"{id}\"")).await {
            want.push(id.to_owned());
        }
    }
    let mut got = ids(&v, "customer_infos", "customer_id");
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(v["count"].as_u64().unwrap() as usize, want.len());
    let _ = list(&am).await;
    assert!(
        metrics().await >= before + 2.0,
        "the fallback was taken and counted"
    );
}

/// Searching by the masked name matches only customers whose name the caller
/// may reveal: an operator denied the reveal learns nothing from `count`.
async fn masked_search_reveals_nothing(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let ops = s.operator("op-dist-ops").await;
    let admin = s.operator("op-dist-admin").await;
    let search = |who, customer: &'static str| {
        let s = &s;
        async move {
            s.call(
                "POST",
                "/v2/partners/sub-customers/query",
                Some(who),
                Some(json!({"customer_id": "cust-nova", "customer": customer})),
            )
            .await
            .json()["count"]
                .as_u64()
                .unwrap()
        }
    };
    // The admin may reveal it: its search works as the public API's does.
    assert_eq!(search(&admin, "nova").await, 1);
    assert_eq!(search(&admin, "zzz").await, 0);
    // The operations operator may view nova but not reveal its name: no
    // guess, right or wrong, changes the answer, so the name cannot be
    // recovered a character at a time.
    for guess in ["n", "no", "nova", "Nova Retail Ltd", "x", ""] {
        let expected = if guess.is_empty() { 1 } else { 0 };
        assert_eq!(search(&ops, guess).await, expected, "{guess:?}");
    }
    let listed = s
        .call(
            "POST",
            "/v2/partners/sub-customers/query",
            Some(&ops),
            Some(json!({"customer_id": "cust-nova"})),
        )
        .await
        .json();
    assert_eq!(listed["count"], 1, "it still sees the customer, masked");
    assert_eq!(listed["customer_infos"][0]["customer"], "N***");
}

test_on_backends! {
    every_list_holds_exactly_what_single_decisions_allow => lists_follow_the_policies;
    unknown_residual_forms_are_decided_item_by_item => unknown_forms_fall_back;
    masked_fields_cannot_be_searched_without_the_reveal => masked_search_reveals_nothing;
}

#[test]
fn edits_remove_whole_policies() {
    let text = "@id(\"a\")\nforbid (principal, action, resource)\nwhen { true };\n@id(\"b\")\npermit (principal, action, resource);\n";
    assert_eq!(
        without_policy(text, "a").trim(),
        "@id(\"b\")\npermit (principal, action, resource);"
    );
    let dir = policies(
        FAMILY
            .iter()
            .find(|e| e.name == "account managers reach the whole hierarchy")
            .unwrap(),
    );
    let guardrails =
        std::fs::read_to_string(Path::new(dir.path()).join("00-guardrails.cedar")).unwrap();
    assert!(!guardrails.contains("R1-account-manager-alone-reaches-managed-customers"));
    assert!(guardrails.contains("R1-operator-stays-in-its-hierarchy"));
}

/// `POST /v1/explain` and `policy explain` with a resource type and no id
/// show the list question: the residual policies and the filter they became.
async fn lists_are_explained(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let ask = |principal: &str| {
        let body =
            json!({"principal": principal, "action": "ViewCustomer", "resource": "Customer"});
        let s = &s;
        async move {
            crate::kit::post_admin(s.running.admin_addr, "/v1/explain", &body)
                .await
                .json()
        }
    };
    let am = ask("Operator::\"op-east-am\"").await;
    assert_eq!(am["decision"], "filter", "{am}");
    let residual_ids: Vec<&str> = am["residuals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        residual_ids.contains(&"R1-operator-views-customer-data"),
        "{am}"
    );
    assert!(
        residual_ids.contains(&"R1-account-manager-alone-reaches-managed-customers"),
        "{am}"
    );
    assert_eq!(
        am["filter"],
        json!({"op": "and", "all": [
            {"op": "in", "path": [], "entity": {"Partner": "res-east"}},
            {"op": "eq", "path": ["account_manager"], "value": {"entity": {"Operator": "op-east-am"}}}
        ]})
    );
    assert!(
        am["sql"]
            .as_str()
            .unwrap()
            .contains("t.account_manager_id = 'op-east-am'"),
        "{am}"
    );
    // A customer has no partner-level list: none, with the denial.
    let customer = ask("Customer::\"cust-acme\"").await;
    assert_eq!(customer["decision"], "none", "{customer}");
    assert_eq!(customer["denial"]["error_code"], "CBC.0151");

    // The CLI prints the same question for a fixture.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .args([
            "policy",
            "explain",
            "--principal",
            "Operator::\"op-a1-am\"",
            "--action",
            "ViewCustomer",
            "--resource",
            "Customer",
            "--fixture",
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies/tests/fixture.json"),
            "--policies",
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
            "--schema",
            concat!(env!("CARGO_MANIFEST_DIR"), "/schema"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("decision:  FILTER"), "{text}");
    assert!(
        text.contains("R1-account-manager-alone-reaches-managed-customers"),
        "{text}"
    );
    assert!(
        text.contains("sql:       ((t.partner_id = 'res-a1'"),
        "{text}"
    );
}

test_on_backends! {
    list_questions_are_explained => lists_are_explained;
}
