//! Credentials that stay dead (issue 15): disabling an operator revokes its
//! tokens and ends its sessions for good, withdrawing `on_behalf` ends the
//! reseller's sessions for good, a customer's tokens can be revoked, and a
//! rotated secret is heard on the next request. The changes are made in the
//! database through the store, as the credentials CLI makes them.

use super::sessions::{as_session, assume, credentials};
use super::{poll, TestGateway, NOTIFIED};
use crate::test_on_backends;
use bytes::Bytes;
use http_body_util::Full;
use partner_gateway::client::Credentials;
use partner_gateway::model::{OperatorStatus, PrincipalKind, Role};
use partner_gateway::store::Backend;
use partner_gateway::store::NewOperator;
use serde_json::json;

const LIST: &str = "/v2/partners/sub-customers/query";
const OWN_RESOURCES: &str = "/v2/customer/resources";

/// Issues an `X-Auth-Token` for a demo principal.
async fn token(gw: &TestGateway, principal: &str) -> String {
    let issued = gw
        .call(
            principal,
            "POST",
            "/v3/auth/tokens",
            Some(json!({"duration_seconds": 3600})),
        )
        .await;
    assert_eq!(
        issued.status,
        201,
        "{}",
        String::from_utf8_lossy(&issued.body)
    );
    issued.headers["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The status of a call made with a token.
async fn with_token(gw: &TestGateway, token: &str, method: &str, path: &str, body: &str) -> u16 {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", gw.endpoint))
        .header("x-auth-token", token)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    gw.client.request(req).await.unwrap().status().as_u16()
}

/// Waits until `check` gives `want` (at once on SQLite, whose probe sees
/// every commit; within the notification delay on PostgreSQL).
pub(super) async fn until(backend: Backend, what: &str, want: u16, check: impl AsyncFn() -> u16) {
    if backend == Backend::Sqlite {
        assert_eq!(check().await, want, "{what}, on the next request");
        return;
    }
    poll(what, NOTIFIED, || async {
        (check().await == want).then_some(())
    })
    .await;
}

async fn a_revived_operator_revives_nothing(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    let store = &gw.db.store;
    let op = "op-east-ops";
    let old_token = token(&gw, op).await;
    let session = credentials(&assume(&gw, op, "cust-acme", &["om", "order"], None).await);
    let token_lists = || with_token(&gw, &old_token, "POST", LIST, r#"{"limit": 1}"#);
    let session_views = || async {
        as_session(&gw, &session, "GET", OWN_RESOURCES, None)
            .await
            .status
            .as_u16()
    };
    assert_eq!(token_lists().await, 200);
    assert_eq!(session_views().await, 200);

    assert!(store
        .set_operator_status(op, OperatorStatus::Disabled)
        .await
        .unwrap());
    until(backend, "the disabled operator's token", 401, token_lists).await;
    assert_eq!(session_views().await, 403);
    // Its session ended with the reason, in the customer's activity log too.
    let reason: Option<String> =
        sqlx::query_scalar("SELECT end_reason FROM partner_sessions WHERE access_key = $1")
            .bind(session.access_key.clone())
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("operator_disabled"));
    let recorded: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM activities WHERE customer_id = 'cust-acme'
           AND action = 'end_session' AND detail LIKE '%operator_disabled%'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(recorded, 1);

    // Enabled again: the operator's own key works, its old token and session do not.
    assert!(store
        .set_operator_status(op, OperatorStatus::Active)
        .await
        .unwrap());
    let own_key = || async {
        gw.call(op, "POST", LIST, Some(json!({"limit": 1})))
            .await
            .status
            .as_u16()
    };
    until(backend, "the enabled operator's key", 200, own_key).await;
    assert_eq!(token_lists().await, 401, "a token from before stays dead");
    assert_eq!(
        session_views().await,
        403,
        "a session from before stays ended"
    );
    // A token issued after the revocation's second works.
    let fresh = poll("a fresh token to work", NOTIFIED, || async {
        let t = token(&gw, op).await;
        (with_token(&gw, &t, "POST", LIST, r#"{"limit": 1}"#).await == 200).then_some(t)
    })
    .await;
    assert_ne!(fresh, old_token);
    gw.running.stop().await;
}

async fn a_regranted_on_behalf_revives_no_session(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    let session = credentials(&assume(&gw, "op-east-ops", "cust-acme", &["om"], None).await);
    let session_views = || async {
        as_session(&gw, &session, "GET", OWN_RESOURCES, None)
            .await
            .status
            .as_u16()
    };
    assert_eq!(session_views().await, 200);
    let grants = |on_behalf: bool| {
        json!({"budget": true, "freeze": true, "on_behalf": on_behalf,
               "monthly_quota": "5000.00", "one_time_quota": "20000.00"})
    };
    let path = "/v2/partners/indirect-partners/res-east/grants";
    let withdrawn = gw
        .call("op-dist-admin", "PUT", path, Some(grants(false)))
        .await;
    assert_eq!(withdrawn.status, 200);
    until(backend, "the session to end", 403, session_views).await;
    let reason: Option<String> =
        sqlx::query_scalar("SELECT end_reason FROM partner_sessions WHERE access_key = $1")
            .bind(session.access_key.clone())
            .fetch_one(gw.db.store.pool())
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("on_behalf_withdrawn"));

    let granted = gw
        .call("op-dist-admin", "PUT", path, Some(grants(true)))
        .await;
    assert_eq!(granted.status, 200);
    // The grant is heard (a new session may be made), the old session stays ended.
    let fresh = poll("a new session after the grant", NOTIFIED, || async {
        let created = assume(&gw, "op-east-ops", "cust-acme", &["om"], None).await;
        (created.status == 201).then(|| credentials(&created))
    })
    .await;
    assert_eq!(
        as_session(&gw, &fresh, "GET", OWN_RESOURCES, None)
            .await
            .status,
        200
    );
    assert_eq!(session_views().await, 403);
    gw.running.stop().await;
}

async fn a_revoked_authorization_ends_its_sessions(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    let created = assume(&gw, "op-east-ops", "cust-acme", &["om"], None).await;
    let session = credentials(&created);
    let id = created.json()["session_id"].as_str().unwrap().to_owned();
    let listed = || async {
        let list = gw
            .call("op-east-ops", "GET", "/v3/partner-sessions", None)
            .await;
        assert_eq!(list.status, 200);
        list.json()["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["session_id"] == id.as_str())
    };
    assert!(listed().await);
    let revoked = gw
        .call(
            "cust-acme",
            "POST",
            "/v2/customers/partner-authorizations/auth-acme/revoke",
            None,
        )
        .await;
    assert_eq!(revoked.status, 200);
    let reason: Option<String> =
        sqlx::query_scalar("SELECT end_reason FROM partner_sessions WHERE access_key = $1")
            .bind(session.access_key.clone())
            .fetch_one(gw.db.store.pool())
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("authorization_revoked"));
    assert!(!listed().await, "the list shows live sessions only");
    gw.running.stop().await;
}

async fn a_customer_revokes_its_tokens(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    let customer_token = token(&gw, "cust-acme").await;
    let views = || with_token(&gw, &customer_token, "GET", OWN_RESOURCES, "");
    assert_eq!(views().await, 200);
    gw.db
        .store
        .revoke_tokens(PrincipalKind::Customer, "cust-acme")
        .await
        .unwrap();
    until(backend, "the revoked customer token", 401, views).await;
    gw.running.stop().await;
}

async fn a_rotated_secret_is_heard_at_once(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    let old = gw.credentials("op-dist-admin");
    let call = |creds: Credentials| {
        let gw = &gw;
        async move {
            gw.call_raw(Some(&creds), "POST", LIST, br#"{"limit": 1}"#, &[])
                .await
                .status
                .as_u16()
        }
    };
    // Twice: the second is answered from the credential cache.
    assert_eq!(call(old.clone()).await, 200);
    assert_eq!(call(old.clone()).await, 200);
    let new = Credentials {
        secret_key: "rotated-secret-0123456789abcdef0123".to_owned(),
        ..old.clone()
    };
    gw.db
        .store
        .rotate_key(&old.access_key, &new.secret_key)
        .await
        .unwrap();
    until(backend, "the new secret", 200, || call(new.clone())).await;
    assert_eq!(call(old.clone()).await, 401, "the old secret is refused");
    // Revoked: the key is unknown from the next request on.
    gw.db.store.revoke_key(&old.access_key).await.unwrap();
    until(backend, "the revoked key", 401, || call(new.clone())).await;
    gw.running.stop().await;
}

/// An operator deleted in the database and created again under its id is
/// another principal: the old access key went with the row, the old token
/// names another generation, the old session ended; and `operators add`
/// refuses an id that still owns keys (left by a deletion around the
/// triggers).
async fn a_recreated_operator_inherits_nothing(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    let store = &gw.db.store;
    let id = "op-east-temp";
    let new = NewOperator {
        id: id.into(),
        partner: "res-east".into(),
        name: "Temporary".into(),
        roles: vec![Role::Operations],
    };
    store.add_operator(&new).await.unwrap();
    let key = Credentials {
        access_key: "TEMPOPERATORKEY00000".into(),
        secret_key: "temp-operator-secret-0123456789".into(),
        security_token: None,
    };
    store
        .create_key(
            PrincipalKind::Operator,
            id,
            &key.access_key,
            &key.secret_key,
        )
        .await
        .unwrap();
    let signed =
        |creds: &Credentials, method: &'static str, path: &'static str, body: &'static str| {
            let creds = creds.clone();
            let gw = &gw;
            async move {
                gw.call_raw(Some(&creds), method, path, body.as_bytes(), &[])
                    .await
            }
        };
    let issued = signed(
        &key,
        "POST",
        "/v3/auth/tokens",
        r#"{"duration_seconds": 3600}"#,
    )
    .await;
    assert_eq!(issued.status, 201);
    let old_token = issued.headers["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let created = signed(
        &key,
        "POST",
        "/v3/partner-sessions",
        r#"{"customer_id": "cust-acme", "scopes": ["om"]}"#,
    )
    .await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let session = credentials(&created);
    let token_lists = || with_token(&gw, &old_token, "POST", LIST, r#"{"limit": 1}"#);
    let key_lists = || async {
        signed(&key, "POST", LIST, r#"{"limit": 1}"#)
            .await
            .status
            .as_u16()
    };
    let session_views = || async {
        as_session(&gw, &session, "GET", OWN_RESOURCES, None)
            .await
            .status
            .as_u16()
    };
    assert_eq!(
        (
            token_lists().await,
            key_lists().await,
            session_views().await
        ),
        (200, 200, 200)
    );

    // Deleted by hand: on SQLite with the foreign keys off (as the sqlite3
    // shell has them), on PostgreSQL after the rows that refer to it.
    let mut conn = store.pool().acquire().await.unwrap();
    let statements: &[&str] = match backend {
        Backend::Sqlite => &[
            "PRAGMA foreign_keys = OFF",
            "DELETE FROM operators WHERE id = 'op-east-temp'",
            "PRAGMA foreign_keys = ON",
        ],
        Backend::Postgres => &[
            "DELETE FROM activities WHERE operator_id = 'op-east-temp'",
            "DELETE FROM partner_sessions WHERE operator_id = 'op-east-temp'",
            "DELETE FROM operators WHERE id = 'op-east-temp'",
        ],
    };
    for sql in statements {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    drop(conn);
    if backend == Backend::Sqlite {
        let ended: Option<String> =
            sqlx::query_scalar("SELECT end_reason FROM partner_sessions WHERE access_key = $1")
                .bind(session.access_key.clone())
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(ended.as_deref(), Some("operator_deleted"));
    }
    // Created again under the same id: nothing of the old one works.
    store
        .add_operator(&new)
        .await
        .expect("the deletion took its keys along");
    until(backend, "the old token", 401, token_lists).await;
    assert_eq!(key_lists().await, 401, "the old key went with the old row");
    assert_ne!(session_views().await, 200, "the old session ended");

    // Keys left behind by a deletion that bypassed the triggers: refused.
    sqlx::query(
        "INSERT INTO credentials (access_key, principal_kind, principal_id, secret_sealed, created_at)
         VALUES ('GHOSTKEY000000000000', 'operator', 'op-ghost', 'sealed', '2026-01-01T00:00:00Z')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let ghost = NewOperator {
        id: "op-ghost".into(),
        ..new.clone()
    };
    let refused = store.add_operator(&ghost).await.unwrap_err();
    assert!(
        refused.to_string().contains("GHOST") || refused.to_string().contains("access key"),
        "{refused}"
    );
    gw.running.stop().await;
}

test_on_backends! {
    recreated_operator => a_recreated_operator_inherits_nothing;
    revived_operator => a_revived_operator_revives_nothing;
    regranted_on_behalf => a_regranted_on_behalf_revives_no_session;
    customer_tokens => a_customer_revokes_its_tokens;
    revoked_authorization => a_revoked_authorization_ends_its_sessions;
    rotation => a_rotated_secret_is_heard_at_once;
}
