//! The admin listener's gate (Host, token, JSON-only POSTs) and a readiness
//! that notices a database it can no longer write.

use crate::kit::{http_client, policies_dir, send, DomainServer, TestResponse};
use partner_gateway::config::ServeArgs;
use partner_gateway::store::Backend;
use serde_json::json;

const DEMO: &str = include_str!("../../examples/demo.json");
const TOKEN: &str = "test-admin-token-0123456789";

async fn admin(
    s: &DomainServer,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> TestResponse {
    send(
        &http_client(),
        method,
        &format!("http://{}{path}", s.running.admin_addr),
        headers,
        body.as_bytes().to_vec(),
    )
    .await
}

fn explain_body() -> String {
    json!({"principal": "Operator::\"op-dist-admin\"", "action": "ViewCustomer", "resource": "Customer::\"cust-nova\""}).to_string()
}

fn json_type() -> (&'static str, String) {
    ("content-type", "application/json".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebinding_host_is_refused() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let port = s.running.admin_addr.port();
    for own in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let r = admin(&s, "GET", "/readyz", &[("host", own.clone())], "").await;
        assert_eq!(r.status, 200, "{own}: {}", String::from_utf8_lossy(&r.body));
    }
    // A page of evil.example whose name now resolves to 127.0.0.1.
    for (method, path, body) in [
        ("GET", "/readyz", ""),
        ("POST", "/v1/explain", &*explain_body()),
    ] {
        let r = admin(
            &s,
            method,
            path,
            &[("host", format!("evil.example:{port}")), json_type()],
            body,
        )
        .await;
        assert_eq!(r.status, 421, "{path}");
        let v = r.json();
        assert!(v["error_msg"].as_str().unwrap().contains("Host"), "{v}");
        assert!(v.get("policies").is_none() && v.get("decision").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_json_posts_from_this_origin() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let body = explain_body();
    let ok = admin(&s, "POST", "/v1/explain", &[json_type()], &body).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    // What a cross-site form or a no-preflight fetch can send.
    for shape in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = admin(
            &s,
            "POST",
            "/v1/explain",
            &[("content-type", shape.into())],
            &body,
        )
        .await;
        assert_eq!(r.status, 415, "{shape}");
        assert!(r.json()["error_msg"]
            .as_str()
            .unwrap()
            .contains("Content-Type"));
    }
    let none = admin(&s, "POST", "/v1/explain", &[], &body).await;
    assert_eq!(none.status, 415);
    let foreign = admin(
        &s,
        "POST",
        "/v1/explain",
        &[json_type(), ("origin", "https://evil.example".into())],
        &body,
    )
    .await;
    assert_eq!(foreign.status, 403);
    let same = admin(
        &s,
        "POST",
        "/v1/explain",
        &[
            json_type(),
            ("origin", format!("http://{}", s.running.admin_addr)),
        ],
        &body,
    )
    .await;
    assert_eq!(same.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_token_is_required_everywhere() {
    let s = DomainServer::start_tuned(Backend::Sqlite, DEMO, &policies_dir(), |cfg| {
        cfg.operations.admin.token = Some(TOKEN.into());
    })
    .await;
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("console:{TOKEN}"));
    let wrong_basic = base64::engine::general_purpose::STANDARD.encode("console:nope");
    for (method, path, body) in [
        ("GET", "/metrics", String::new()),
        ("POST", "/access/v1/evaluation", "{}".to_owned()),
        ("POST", "/v1/explain", explain_body()),
        ("GET", "/console", String::new()),
        ("GET", "/console/api/sessions", String::new()),
    ] {
        for bad in [
            None,
            Some("Bearer wrong-token-0123456789".to_owned()),
            Some(format!("Bearer {TOKEN}x")),
            Some(format!("Basic {wrong_basic}")),
            Some(TOKEN.to_owned()),
        ] {
            let mut headers = vec![json_type()];
            headers.extend(bad.clone().map(|v| ("authorization", v)));
            let r = admin(&s, method, path, &headers, &body).await;
            assert_eq!(r.status, 401, "{path} with {bad:?}");
            assert_eq!(r.json()["error_code"], "APIGW.0301");
            assert!(r.headers.get_all("www-authenticate").iter().count() == 2);
        }
        for good in [format!("Bearer {TOKEN}"), format!("Basic {basic}")] {
            let headers = [json_type(), ("authorization", good)];
            let r = admin(&s, method, path, &headers, &body).await;
            assert_ne!(
                r.status,
                401,
                "{path}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }

    // What a platform probes before it holds any credential: liveness,
    // readiness (the status alone) and AuthZEN discovery.
    for path in ["/healthz", "/readyz", "/.well-known/authzen-configuration"] {
        let r = admin(&s, "GET", path, &[], "").await;
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let bare = admin(&s, "GET", "/readyz", &[], "").await.json();
    assert_eq!(
        bare,
        json!({"status": "ready"}),
        "no details without the token"
    );
    let full = admin(
        &s,
        "GET",
        "/readyz",
        &[("authorization", format!("Bearer {TOKEN}"))],
        "",
    )
    .await
    .json();
    assert!(full["policies"]["version"].is_string(), "{full}");
    // Open to GET only, and only those paths.
    let r = admin(&s, "POST", "/readyz", &[json_type()], "{}").await;
    assert_eq!(r.status, 401);
}

#[test]
fn off_loopback_the_admin_listener_needs_a_token_and_tls() {
    let args = |listen: &str, token: Option<&str>| ServeArgs {
        admin_listen: Some(listen.parse().unwrap()),
        admin_token: token.map(|t| t.to_owned().into()),
        ..ServeArgs::default()
    };
    let with_tls = |listen: &str, token: Option<&str>| ServeArgs {
        admin_tls_cert: Some("cert.pem".into()),
        admin_tls_key: Some("key.pem".into()),
        ..args(listen, token)
    };
    let refused = args("0.0.0.0:9090", None).resolve().unwrap_err();
    assert!(refused.to_string().contains("--admin-token"), "{refused}");
    assert!(args("10.0.0.5:9090", None).resolve().is_err());
    // A token off loopback, but in clear: refused.
    let clear = args("0.0.0.0:9090", Some(TOKEN)).resolve().unwrap_err();
    assert!(clear.to_string().contains("--admin-tls-cert"), "{clear}");
    assert!(with_tls("0.0.0.0:9090", Some(TOKEN)).resolve().is_ok());
    assert!(with_tls("0.0.0.0:9090", None).resolve().is_err());
    assert!(args("127.0.0.1:9090", None).resolve().is_ok());
    assert!(args("[::1]:9090", None).resolve().is_ok());
    let short = args("127.0.0.1:9090", Some("short")).resolve().unwrap_err();
    assert!(short.to_string().contains("at least 16"), "{short}");
}

async fn readiness(s: &DomainServer) -> (u16, serde_json::Value) {
    let r = admin(s, "GET", "/readyz", &[], "").await;
    (r.status.as_u16(), r.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_when_the_sqlite_file_is_read_only_or_gone() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let file = s.db.store.sqlite_file().expect("a file").to_owned();
    assert_eq!(readiness(&s).await.0, 200);

    let mut perms = std::fs::metadata(&file).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&file, perms.clone()).unwrap();
    let (status, body) = readiness(&s).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"]["reachable"], false);
    assert!(
        body["database"]["error"]
            .as_str()
            .unwrap()
            .contains("read-only"),
        "{body}"
    );
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&file, perms).unwrap();
    assert_eq!(readiness(&s).await.0, 200);

    let aside = file.with_extension("moved");
    std::fs::rename(&file, &aside).unwrap();
    let (status, body) = readiness(&s).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["database"]["error"].as_str().unwrap().contains("gone"),
        "{body}"
    );
    std::fs::rename(&aside, &file).unwrap();
    assert_eq!(readiness(&s).await.0, 200);
}

/// What the admin listener says of a refusal stays small and its own: every
/// answer is `nosniff`; a caller's 200 kB type name is not echoed back; a
/// slice that cannot be built is 503 without the rows it names (the cause
/// is logged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_little_and_are_never_sniffed() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let nosniff = |r: &TestResponse| {
        r.headers
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok())
            == Some("nosniff")
    };
    let page = admin(&s, "GET", "/console", &[], "").await;
    assert!(nosniff(&page), "{:?}", page.headers);
    let refused = admin(&s, "POST", "/v1/explain", &[], &explain_body()).await;
    assert_eq!(refused.status, 415);
    assert!(nosniff(&refused));

    let long = "X".repeat(200_000);
    let body = json!({"subject": {"type": long, "id": "a"}, "action": {"name": "ViewCustomer"},
                      "resource": {"type": "Customer", "id": "cust-acme"}});
    let r = admin(
        &s,
        "POST",
        "/access/v1/evaluation",
        &[json_type()],
        &body.to_string(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.len() < 1024, "{} bytes echoed", r.body.len());
    assert!(String::from_utf8_lossy(&r.body).contains("subject.type"));

    // A customer whose partner row is gone (written with the foreign keys
    // off, as only a hand edit could).
    let mut conn = s.db.store.pool().acquire().await.unwrap();
    for sql in [
        "PRAGMA foreign_keys = OFF",
        "INSERT INTO customers (id, account_name, name, partner_id, association, frozen, labels, associated_on, created_at)
         VALUES ('cust-orphan', 'orphan', 'Orphan', 'gone-partner', 'reseller', FALSE, '[]', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        "PRAGMA foreign_keys = ON",
    ] {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    drop(conn);
    let body = json!({"principal": "Operator::\"op-dist-admin\"", "action": "ViewCustomer", "resource": "Customer::\"cust-orphan\""});
    let r = admin(&s, "POST", "/v1/explain", &[json_type()], &body.to_string()).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let text = String::from_utf8_lossy(&r.body);
    assert!(!text.contains("gone-partner"), "{text}");
}

/// Every answer of the admin listener is in the API's error format, an
/// unknown path or method too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_answer_in_the_apis_format() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    for (method, path) in [("GET", "/v1/nothing-here"), ("POST", "/readyz")] {
        let r = admin(&s, method, path, &[json_type()], "{}").await;
        assert_eq!(r.status, 404, "{method} {path}");
        let v = r.json();
        assert!(
            v["error_code"].is_string() && v["error_msg"].is_string(),
            "{method} {path}: {v}"
        );
    }
}

/// `serve` without `--demo` and without a token never runs an open admin
/// listener: it generates a token into the data directory (mode 0600) on
/// the first start, prints the file's path (never the token) and requires
/// it; the probes stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_serve_generates_one_into_the_data_directory() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .args(["serve", "--plaintext", "--no-policy-watch"])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--database-url")
        .arg(format!("sqlite://{}/gw.db", dir.path().display()))
        .args(["--master-key", &base64_key()])
        .args(["--policies", &format!("{root}/policies")])
        .args(["--schema", &format!("{root}/schema")])
        .env_remove("PGW_ADMIN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let mut admin_url = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(i) = line.find("(admin: ") {
            admin_url = line[i + 8..].trim_end_matches(')').to_owned();
        }
        let done = line.starts_with("admin token:");
        printed.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let file = dir.path().join("admin-token");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    let text = printed.join("\n");
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(!text.contains(&token), "the token was printed");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let get = |path: &str, token: Option<&str>| {
        let url = format!("{admin_url}{path}");
        let headers: Vec<(&str, String)> = token
            .map(|t| ("authorization", format!("Bearer {t}")))
            .into_iter()
            .collect();
        async move {
            send(&http_client(), "GET", &url, &headers, vec![])
                .await
                .status
        }
    };
    assert_eq!(get("/metrics", None).await, 401);
    assert_eq!(get("/metrics", Some(&token)).await, 200);
    assert_eq!(get("/healthz", None).await, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

fn base64_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([9u8; 32])
}

/// The admin listener over TLS (`--admin-tls-cert/--admin-tls-key`): the
/// token then crosses the network encrypted; plain HTTP is not answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_serves_tls() {
    use partner_gateway::client::{self, Trust};
    use partner_gateway::config::TlsMode;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = partner_gateway::listener::development_certificate(certs.path()).unwrap();
    let s = DomainServer::start_tuned(Backend::Sqlite, DEMO, &policies_dir(), |cfg| {
        cfg.operations.admin.token = Some(TOKEN.into());
        cfg.admin_tls = TlsMode::Files {
            cert: cert.clone(),
            key,
        };
    })
    .await;
    assert_eq!(s.running.admin_scheme, "https");
    let https = client::https_client(&Trust::CaFile(cert)).unwrap();
    let url = format!("https://localhost:{}", s.running.admin_addr.port());
    let bearer = format!("Bearer {TOKEN}");
    let metrics = send(
        &https,
        "GET",
        &format!("{url}/metrics"),
        &[("authorization", bearer)],
        vec![],
    )
    .await;
    assert_eq!(metrics.status, 200);
    let plain = http_client()
        .request(
            http::Request::get(format!("http://{}/healthz", s.running.admin_addr))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
}
