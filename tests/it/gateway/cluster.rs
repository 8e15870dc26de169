//! Two gateway processes on one PostgreSQL database: a revocation made
//! through one is enforced by the other within one second (LISTEN/NOTIFY).

use crate::kit::TestDb;
use partner_gateway::client::{self, Credentials, Trust};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `partner-gateway serve` process; killed on drop.
struct Process {
    child: Child,
    endpoint: String,
}

impl Process {
    /// A signed call to this gateway.
    async fn call(
        &self,
        http: &client::HttpsClient,
        creds: &Credentials,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> client::Answer {
        client::call(http, &self.endpoint, Some(creds), method, path, body, &[])
            .await
            .expect("call")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_gateway(database_url: &str, workdir: &std::path::Path) -> Process {
    use base64::Engine;
    let mut child = Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .args([
            "serve",
            "--demo",
            "--database-url",
            database_url,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--policies",
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        ])
        .args(["--schema", concat!(env!("CARGO_MANIFEST_DIR"), "/schema")])
        .arg("--master-key")
        .arg(base64::engine::general_purpose::STANDARD.encode([42u8; 32]))
        .current_dir(workdir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start partner-gateway");
    // The first line names the address it bound.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // Keep draining, so the process never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Process {
        child,
        endpoint: url.replace("127.0.0.1", "localhost"),
    }
}

fn creds(ak: &str, sk: &str) -> Credentials {
    Credentials {
        access_key: ak.into(),
        secret_key: sk.into(),
        security_token: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_on_one_gateway_holds_on_the_other_within_a_second() {
    let db = TestDb::postgres().await;
    let workdir = tempfile::tempdir().unwrap();
    let a = spawn_gateway(&db.url, workdir.path());
    let b = spawn_gateway(&db.url, workdir.path());
    let http =
        client::https_client(&Trust::CaFile(workdir.path().join("data/dev-cert.pem"))).unwrap();
    let ops = creds(
        "DEMOEASTOPS000000000",
        "demo-secret-east-ops-xxxxxxxxxxxxxxxxxxx",
    );
    let customer = creds(
        "DEMOCACME00000000000",
        "demo-secret-c-acme-xxxxxxxxxxxxxxxxxxxxx",
    );

    // Switch in through A; use the session through A (its cache now holds the authorization).
    let body = serde_json::to_vec(&json!({"customer_id": "cust-acme", "scopes": ["om"]})).unwrap();
    let created = a
        .call(&http, &ops, "POST", "/v3/partner-sessions", &body)
        .await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let session = super::sessions::credentials(&created);
    for gw in [&a, &b] {
        let ok = gw
            .call(&http, &session, "GET", "/v2/customer/resources", b"")
            .await;
        assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    }

    // The customer revokes through B; A must refuse the session within a second.
    let revoked = b
        .call(
            &http,
            &customer,
            "POST",
            "/v2/customers/partner-authorizations/auth-acme/revoke",
            b"",
        )
        .await;
    assert_eq!(
        revoked.status,
        200,
        "{}",
        String::from_utf8_lossy(&revoked.body)
    );
    let started = Instant::now();
    let mut last = 0;
    while started.elapsed() < Duration::from_secs(1) {
        last = a
            .call(&http, &session, "GET", "/v2/customer/resources", b"")
            .await
            .status
            .as_u16();
        if last == 403 {
            break;
        }
    }
    let took = started.elapsed();
    assert_eq!(
        last, 403,
        "A still accepted the session {took:?} after the revocation on B"
    );
    eprintln!("revocation on B enforced by A after {took:?}");

    // A session ended through A is refused by B on its very next request
    // (the session row is read on every request).
    let dist_ops = creds(
        "DEMODISTOPS000000000",
        "demo-secret-dist-ops-xxxxxxxxxxxxxxxxxxx",
    );
    let body = serde_json::to_vec(&json!({"customer_id": "cust-nova", "scopes": ["om"]})).unwrap();
    let created = a
        .call(&http, &dist_ops, "POST", "/v3/partner-sessions", &body)
        .await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let json = created.json();
    let nova = super::sessions::credentials(&created);
    let ok = b
        .call(&http, &nova, "GET", "/v2/customer/resources", b"")
        .await;
    assert_eq!(ok.status, 200);
    let path = format!(
        "/v3/partner-sessions/{}",
        json["session_id"].as_str().unwrap()
    );
    let ended = a.call(&http, &dist_ops, "DELETE", &path, b"").await;
    assert_eq!(ended.status, 204);
    let refused = b
        .call(&http, &nova, "GET", "/v2/customer/resources", b"")
        .await;
    assert_eq!(
        refused.status, 403,
        "R12: an ended session is denied everything"
    );
}

/// Narrowing an authorization (here directly in the database, as an
/// administrator would; there is no API for it) ends the sessions that used
/// the removed scope: PostgreSQL announces the change and the gateway's next
/// decision sees it (R12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowing_an_authorization_in_the_database_ends_wider_sessions() {
    let gw = super::TestGateway::start(partner_gateway::store::Backend::Postgres).await;
    let body = serde_json::json!({"customer_id": "cust-acme", "scopes": ["om", "order"]});
    let created = gw
        .call("op-east-ops", "POST", "/v3/partner-sessions", Some(body))
        .await;
    assert_eq!(created.status, 201);
    let session = super::sessions::credentials(&created);
    let ok = gw
        .call_raw(Some(&session), "GET", "/v2/customer/resources", b"", &[])
        .await;
    assert_eq!(ok.status, 200);
    sqlx::query("UPDATE customer_authorizations SET scopes = 'om' WHERE id = 'auth-acme'")
        .execute(gw.db.store.pool())
        .await
        .unwrap();
    let views = || async {
        gw.call_raw(Some(&session), "GET", "/v2/customer/resources", b"", &[])
            .await
            .status
            .as_u16()
    };
    within_a_second(
        "the narrowed authorization still served the session",
        403,
        views,
    )
    .await;
    gw.running.stop().await;
}

/// An order moved to another customer in the database (by hand: no API
/// moves orders) is heard through the change feed: the next decisions about
/// it follow its new owner, well inside the entity cache's 5 s TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_moved_in_the_database_is_decided_by_its_new_owner() {
    let gw = super::TestGateway::start(partner_gateway::store::Backend::Postgres).await;
    let path = "/v2/orders/customer-orders/details/CS2610010800AAA1";
    let status = || async {
        gw.call("op-east-admin", "GET", path, None)
            .await
            .status
            .as_u16()
    };
    // Twice: the second is served from the caches.
    assert_eq!(status().await, 200);
    assert_eq!(status().await, 200);
    // To a customer of the other reseller.
    sqlx::query("UPDATE orders SET customer_id = 'cust-harbor' WHERE id = 'CS2610010800AAA1'")
        .execute(gw.db.store.pool())
        .await
        .unwrap();
    within_a_second("the order's old owner still decided", 403, status).await;
    gw.running.stop().await;
}

/// Repeats `call` until it answers `want`, for at most a second (the change
/// feed's bound; the entity cache's TTL is 5 s).
async fn within_a_second(still: &str, want: u16, call: impl AsyncFn() -> u16) {
    let started = Instant::now();
    let mut last = 0;
    while started.elapsed() < Duration::from_secs(1) {
        last = call().await;
        if last == want {
            return;
        }
    }
    panic!("{still} after {:?}: {last}", started.elapsed());
}
