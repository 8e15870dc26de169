//! The store: migrations, fixture import (idempotency, refusals), round trips.

use crate::kit::TestDb;
use crate::test_both_backends;
use partner_gateway::ids::*;
use partner_gateway::model::*;
use partner_gateway::store::seed::{Fixture, SeedError};
use partner_gateway::store::{Store, COUNTED_TABLES};
use rust_decimal::Decimal;
use sqlx::{Column, Row};
use std::str::FromStr;

const DEMO: &str = include_str!("../../examples/demo.json");

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn ts(s: &str) -> partner_gateway::time::Timestamp {
    partner_gateway::time::parse(s).unwrap()
}

/// Every row of every table as text, to compare database states.
async fn dump(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for table in COUNTED_TABLES {
        let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY 1"))
            .fetch_all(store.pool())
            .await
            .unwrap();
        for row in rows {
            let mut cells = vec![table.to_string()];
            for col in row.columns() {
                let i = col.ordinal();
                let cell = if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                    format!("{v:?}")
                } else if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                    format!("{v:?}")
                } else if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
                    format!("{v:?}")
                } else {
                    panic!("undecodable column {} of {table}", col.name())
                };
                cells.push(format!("{}={cell}", col.name()));
            }
            out.push(cells.join(" "));
        }
    }
    out
}

async fn total_rows(store: &Store) -> i64 {
    store
        .table_counts()
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum()
}

async fn migrations_apply_and_reapply(db: &TestDb) {
    let counts = db.store.table_counts().await.unwrap();
    assert_eq!(counts.len(), COUNTED_TABLES.len());
    assert!(counts.iter().all(|(_, n)| *n == 0));
    // A second process opening the same database finds the schema current.
    let again = db.reopen().await;
    again.ping().await.unwrap();
    assert_eq!(again.table_counts().await.unwrap(), counts);
}

async fn demo_seed_is_idempotent(db: &TestDb) {
    // Loaded twice at one moment: relative instants count from the load, so
    // a load a second later would move them by a second, as it should.
    let loaded_at = partner_gateway::time::now();
    let fixture = Fixture::parse_at(DEMO, loaded_at).unwrap();
    let summary = db.store.import_fixture(&fixture).await.unwrap();
    assert!(summary.to_string().contains("18 customers"), "{summary}");
    let once = dump(&db.store).await;
    assert!(once.len() > 100, "demo data is loaded");
    db.store
        .import_fixture(&Fixture::parse_at(DEMO, loaded_at).unwrap())
        .await
        .unwrap();
    let twice = dump(&db.store).await;
    assert_eq!(once, twice, "a second import changes nothing");
}

async fn refused(db: &TestDb, fixture: &str) -> String {
    let err = match Fixture::parse(fixture) {
        Err(e) => e,
        Ok(fx) => db
            .store
            .import_fixture(&fx)
            .await
            .expect_err("must be refused"),
    };
    assert!(matches!(err, SeedError::Invalid { .. }), "{err}");
    assert_eq!(total_rows(&db.store).await, 0, "nothing is written: {err}");
    err.to_string()
}

const PARTNERS: &str = r#"{"id": "dist-a", "name": "D", "kind": "distributor"},
    {"id": "res-a1", "name": "R", "kind": "reseller", "distributor": "dist-a"}"#;

async fn bad_fixtures_are_refused_whole(db: &TestDb) {
    // Unknown field, named with its entry.
    let msg = refused(db, &format!(r#"{{"partners": [{PARTNERS}],
        "operators": [{{"id": "op-1", "partner": "dist-a", "name": "x", "roles": ["admin"], "colour": "red"}}]}}"#)).await;
    assert!(
        msg.contains(r#"operators[0] "op-1""#) && msg.contains("colour"),
        "{msg}"
    );

    // A quota beyond the API's bound (the proofs assume it is within).
    let msg = refused(db, r#"{"partners": [{"id": "dist-a", "name": "D", "kind": "distributor"},
        {"id": "res-a1", "name": "R", "kind": "reseller", "distributor": "dist-a",
         "grants": {"budget": true, "freeze": false, "on_behalf": false, "monthly_quota": "2147483648.00"}}]}"#).await;
    assert!(
        msg.contains("grants.monthly_quota") && msg.contains("at most 2147483647"),
        "{msg}"
    );

    // Dangling reference: the valid partners before it are not written either.
    let msg = refused(db, &format!(r#"{{"partners": [{PARTNERS}],
        "customers": [{{"id": "c-1", "account_name": "c1", "name": "C", "partner": "res-nope", "association": "reseller"}}]}}"#)).await;
    assert!(
        msg.contains(r#"customers[0] "c-1""#)
            && msg.contains("partner")
            && msg.contains("res-nope"),
        "{msg}"
    );

    let msg = refused(db, &format!(r#"{{"partners": [{PARTNERS}],
        "customers": [{{"id": "c-1", "account_name": "c1", "name": "C", "partner": "res-a1", "association": "reseller", "account_manager": "op-ghost"}}]}}"#)).await;
    assert!(
        msg.contains("account_manager") && msg.contains("op-ghost"),
        "{msg}"
    );

    // Bad enum value.
    let msg = refused(
        db,
        r#"{"partners": [{"id": "p", "name": "P", "kind": "wholesaler"}]}"#,
    )
    .await;
    assert!(
        msg.contains(r#"partners[0] "p""#) && msg.contains("kind") && msg.contains("wholesaler"),
        "{msg}"
    );

    let msg = refused(db, &format!(r#"{{"partners": [{PARTNERS}],
        "customers": [{{"id": "c-1", "account_name": "c1", "name": "C", "partner": "res-a1", "association": "3"}}]}}"#)).await;
    assert!(msg.contains("association"), "{msg}");

    // Bad decimals: too precise, not a number, a JSON float.
    for amount in [r#""10.001""#, r#""ten""#, "10.5"] {
        let msg = refused(db, &format!(r#"{{"partners": [{PARTNERS}],
            "customers": [{{"id": "c-1", "account_name": "c1", "name": "C", "partner": "res-a1", "association": "reseller"}}],
            "budgets": [{{"customer": "c-1", "budget_type": "MONTHLY", "amount": {amount}}}]}}"#)).await;
        assert!(
            msg.contains(r#"budgets[0] "c-1""#) && msg.contains("amount"),
            "{msg}"
        );
    }

    // Domain constraints.
    let msg = refused(db, &format!(r#"{{"partners": [{PARTNERS}],
        "customers": [{{"id": "c-1", "account_name": "c1", "name": "C", "partner": "res-a1", "association": "referral"}}],
        "budgets": [{{"customer": "c-1", "budget_type": "MONTHLY", "amount": "10.00"}}]}}"#)).await;
    assert!(msg.contains("reseller-association"), "{msg}");
    let msg = refused(
        db,
        r#"{"partners": [{"id": "r", "name": "R", "kind": "reseller"}]}"#,
    )
    .await;
    assert!(msg.contains("distributor"), "{msg}");
    let msg = refused(db, &format!(r#"{{"partners": [{PARTNERS}],
        "operators": [{{"id": "op-1", "partner": "dist-a", "name": "x", "roles": ["admin", "finance", "operations", "account_manager"]}}]}}"#)).await;
    assert!(msg.contains("roles"), "{msg}");
    // Order statuses are the public filter codes: not 2 (pending refund), not
    // 10 (logistics), nor codes the public API does not have.
    for status in [0, 2, 7, 10] {
        let msg = refused(db, &format!(r#"{{"partners": [{PARTNERS}],
            "customers": [{{"id": "c-1", "account_name": "c1", "name": "C", "partner": "res-a1", "association": "reseller"}}],
            "orders": [{{"id": "o-1", "customer": "c-1", "status": {status}, "order_type": 1,
                "service_type_code": "hws.service.type.ec2", "amount": "1.00", "created_at": "2026-10-01T08:00:00Z"}}]}}"#)).await;
        assert!(
            msg.contains(r#"orders[0] "o-1""#) && msg.contains("status"),
            "{msg}"
        );
    }
    let msg = refused(db, r#"{"tenants": []}"#).await;
    assert!(msg.contains("tenants"), "{msg}");
}

async fn every_entity_kind_round_trips(db: &TestDb) {
    let fixture = Fixture::parse(DEMO).unwrap();
    db.store.import_fixture(&fixture).await.unwrap();
    let s = &db.store;
    // A relative instant of the fixture, as stored.
    let at = |spec: &str| ts(&crate::kit::at(fixture.anchor, spec));

    let res = s.partner(&"res-east".into()).await.unwrap().unwrap();
    assert_eq!(res.kind, PartnerKind::Reseller);
    assert_eq!(res.distributor, Some(PartnerId::from("dist-north")));
    assert_eq!(
        res.grants,
        Grants {
            budget: true,
            freeze: false,
            on_behalf: true,
            monthly_quota: Some(dec("5000.00")),
            one_time_quota: Some(dec("20000.00"))
        }
    );
    let resellers = s.resellers_of(&"dist-north".into()).await.unwrap();
    assert_eq!(
        resellers.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["res-east", "res-west"]
    );

    let op = s.operator(&"op-dist-am-fin".into()).await.unwrap().unwrap();
    assert_eq!(op.roles, vec![Role::AccountManager, Role::Finance]);
    assert_eq!(op.status, OperatorStatus::Active);
    let former = s.operator(&"op-dist-former".into()).await.unwrap().unwrap();
    assert_eq!(former.status, OperatorStatus::Disabled);

    let c = s.customer(&"cust-glacier".into()).await.unwrap().unwrap();
    assert_eq!(c.association, Association::Reseller);
    assert!(c.frozen);
    assert_eq!(c.freeze_type, Some(FreezeType::AccountAndResource));
    assert_eq!(c.labels, vec!["overdue".to_string()]);
    let acme = s.customer(&"cust-acme".into()).await.unwrap().unwrap();
    assert_eq!(acme.account_manager, Some(OperatorId::from("op-east-am")));
    assert_eq!(acme.email.as_deref(), Some("it@acme.example"));
    assert_eq!(acme.associated_on, ts("2025-03-01T00:00:00Z"));

    let a = s.authorization(&"auth-acme".into()).await.unwrap().unwrap();
    assert_eq!(
        a.scopes,
        vec![AuthorizationScope::Om, AuthorizationScope::Order]
    );
    assert_eq!(a.status, AuthorizationStatus::Approved);
    assert_eq!(a.expires_at, at("now+404d12h"));
    let live = s
        .live_authorization(&"cust-birch".into(), &"res-east".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.status, AuthorizationStatus::Pending);
    assert!(
        s.live_authorization(&"cust-delta".into(), &"res-east".into())
            .await
            .unwrap()
            .is_none(),
        "revoked is not live"
    );

    let b = s.budget(&"cust-acme".into()).await.unwrap().unwrap();
    assert_eq!(
        (b.budget_type, b.amount, b.used),
        (BudgetType::Monthly, dec("1000.00"), dec("250.40"))
    );

    let o = s.order(&"CS2610010800AAA1".into()).await.unwrap().unwrap();
    assert_eq!((o.status, o.order_type, o.source_type), (5, 1, 1));
    assert_eq!(
        (o.amount, o.official_amount),
        (dec("120.00"), dec("150.00"))
    );
    assert_eq!(o.payment_time, Some(at("now-51d3h55m")));
    let items = s
        .order_line_items(o.id.as_str(), Default::default())
        .await
        .unwrap();
    assert_eq!(items.total, 2);
    assert_eq!(items.items[1].amount, dec("20.00"));

    let r = s
        .resource(&"rds-glacier-core".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.charging, r.status),
        (Charging::YearlyMonthly, ResourceStatus::Frozen)
    );
    assert_eq!(r.order, Some(OrderId::from("CS2606062200GGG1")));

    let coupons = s.coupons_of(&"cust-acme".into()).await.unwrap();
    assert_eq!(coupons.len(), 2);
    assert_eq!(coupons[1].balance, dec("120.00"));
    let spent = s.expenditures_of(&"cust-nova".into()).await.unwrap();
    assert_eq!(
        spent.iter().map(|e| e.amount).sum::<Decimal>(),
        dec("4090.75")
    );

    // Credentials: the secret is sealed at rest and unseals to what was seeded.
    let cred = s.credential("DEMODISTADMIN0000000").await.unwrap().unwrap();
    assert_eq!(
        (cred.principal_kind, cred.principal_id.as_str()),
        (PrincipalKind::Operator, "op-dist-admin")
    );
    assert_eq!(cred.secret, "demo-secret-dist-admin-xxxxxxxxxxxxxxxxx");
    assert!(
        !format!("{cred:?}").contains("demo-secret"),
        "Debug redacts the secret"
    );
    let sealed: String =
        sqlx::query_scalar("SELECT secret_sealed FROM credentials WHERE access_key = $1")
            .bind("DEMODISTADMIN0000000")
            .fetch_one(s.pool())
            .await
            .unwrap();
    assert!(!sealed.contains("demo-secret"));
    let customer_cred = s
        .credential_owner("DEMOCACME00000000000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        customer_cred,
        (PrincipalKind::Customer, "cust-acme".to_string())
    );
    assert!(s.credential("NOPE").await.unwrap().is_none());
}

async fn access_keys_cannot_change_hands(db: &TestDb) {
    let base = format!(
        r#"{{"partners": [{PARTNERS}], "operators": [
        {{"id": "op-1", "partner": "dist-a", "name": "x", "roles": ["admin"], "access_key": "AK1", "secret_key": "0123456789abcdef"}}]}}"#
    );
    db.store
        .import_fixture(&Fixture::parse(&base).unwrap())
        .await
        .unwrap();
    let before = dump(&db.store).await;
    let hijack = format!(
        r#"{{"partners": [{PARTNERS}], "operators": [
        {{"id": "op-2", "partner": "dist-a", "name": "y", "roles": ["admin"], "access_key": "AK1", "secret_key": "fedcba9876543210"}}]}}"#
    );
    let err = db
        .store
        .import_fixture(&Fixture::parse(&hijack).unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already belongs to operator \"op-1\""),
        "{err}"
    );
    assert_eq!(dump(&db.store).await, before);
}

/// What the invariant proofs assume of partners
/// (policies/invariants/assumptions.cedar) holds whoever writes the table:
/// raw SQL is refused as the fixture import is.
async fn the_proofs_assumptions_hold_whoever_writes(db: &TestDb) {
    let fx = Fixture::parse(&format!(r#"{{"partners": [{PARTNERS}]}}"#)).unwrap();
    db.store.import_fixture(&fx).await.unwrap();
    let run = |sql: &'static str| async move { sqlx::query(sql).execute(db.store.pool()).await };
    for (sql, why) in [
        (
            "INSERT INTO partners (id, name, kind, distributor_id, created_at)
             VALUES ('res-b', 'B', 'reseller', 'res-a1', '2026-01-01T00:00:00Z')",
            "a reseller whose distributor is a reseller",
        ),
        (
            "UPDATE partners SET distributor_id = 'res-a1' WHERE id = 'res-a1'",
            "a reseller made its own distributor",
        ),
        (
            "UPDATE partners SET kind = 'solution_provider' WHERE id = 'dist-a'",
            "a distributor with resellers no longer one",
        ),
        (
            "UPDATE partners SET monthly_quota_cents = -1 WHERE id = 'res-a1'",
            "a negative quota",
        ),
        (
            "UPDATE partners SET one_time_quota_cents = 214748364701 WHERE id = 'res-a1'",
            "a quota beyond the API's bound",
        ),
    ] {
        assert!(run(sql).await.is_err(), "{why} is refused");
    }
    // What the assumptions allow is written.
    run("UPDATE partners SET monthly_quota_cents = 0, one_time_quota_cents = 214748364700 WHERE id = 'res-a1'")
        .await
        .unwrap();
    run(
        "INSERT INTO partners (id, name, kind, distributor_id, created_at)
         VALUES ('res-b', 'B', 'reseller', 'dist-a', '2026-01-01T00:00:00Z')",
    )
    .await
    .unwrap();
}

test_both_backends! {
    assumptions => the_proofs_assumptions_hold_whoever_writes;
    migrations => migrations_apply_and_reapply;
    seed_idempotent => demo_seed_is_idempotent;
    seed_refusals => bad_fixtures_are_refused_whole;
    round_trip => every_entity_kind_round_trips;
    access_key_ownership => access_keys_cannot_change_hands;
}

/// The gateway's SQLite connections keep a small page cache (its reads are
/// point lookups, most spared by its entity cache); every other connection
/// keeps SQLite's default (2 MiB).
#[tokio::test]
async fn the_gateway_keeps_a_small_sqlite_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/test.db", dir.path().display());
    let cache_size = |store: Store| async move {
        let row = sqlx::query("PRAGMA cache_size")
            .fetch_one(store.pool())
            .await
            .unwrap();
        row.try_get::<i64, _>(0).unwrap()
    };
    let gateway = Store::connect_for_gateway(&url, crate::kit::test_cipher())
        .await
        .unwrap();
    assert_eq!(
        cache_size(gateway).await,
        -i64::from(partner_gateway::store::GATEWAY_SQLITE_CACHE_KIB)
    );
    let other = Store::connect(&url, crate::kit::test_cipher())
        .await
        .unwrap();
    assert_eq!(cache_size(other).await, -2000);
}
