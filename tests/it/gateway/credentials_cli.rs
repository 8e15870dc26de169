//! The credentials CLI (`operators`, `keys`, `tokens`), the real binary
//! against a running gateway's database: every change is heard at once.

use super::dead::until;
use super::TestGateway;
use crate::test_on_backends;
use partner_gateway::client::Credentials;
use partner_gateway::store::Backend;
use std::io::Write;
use std::process::{Command, Stdio};

const LIST: &str = "/v2/partners/sub-customers/query";
/// R5: only a distributor's admin lists its resellers.
const RESELLERS: &str = "/v2/partners/indirect-partners/query";

/// Runs `partner-gateway ARGS` on the gateway's database, with `stdin`;
/// panics unless it succeeds. Returns stdout.
fn cli(gw: &TestGateway, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .args(args)
        .env("PGW_DATABASE_URL", &gw.db.url)
        .env("PGW_MASTER_KEY", crate::kit::test_master_key())
        .env("RUST_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "partner-gateway {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The access key and secret a `keys create|rotate` printed.
fn printed(stdout: &str) -> Credentials {
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .trim()
            .to_owned()
    };
    Credentials {
        access_key: field("access_key:"),
        secret_key: field("secret_key:"),
        security_token: None,
    }
}

async fn status(gw: &TestGateway, creds: &Credentials, method: &str, path: &str) -> u16 {
    let body: &[u8] = if method == "POST" {
        br#"{"limit": 1}"#
    } else {
        b""
    };
    gw.call_raw(Some(creds), method, path, body, &[])
        .await
        .status
        .as_u16()
}

async fn the_cli_is_heard_at_once(backend: Backend) {
    let gw = TestGateway::start(backend).await;

    // A new key of an existing operator works at once.
    let admin = printed(&cli(
        &gw,
        &["keys", "create", "--operator", "op-dist-admin"],
        None,
    ));
    assert_eq!(admin.secret_key.len(), 40, "generated");
    assert_eq!(status(&gw, &admin, "POST", LIST).await, 200);

    // Rotated: the old secret is refused, the new one accepted.
    let rotated = printed(&cli(&gw, &["keys", "rotate", &admin.access_key], None));
    assert_eq!(rotated.access_key, admin.access_key);
    assert_ne!(rotated.secret_key, admin.secret_key);
    until(backend, "the rotated secret", 200, || {
        status(&gw, &rotated, "POST", LIST)
    })
    .await;
    assert_eq!(status(&gw, &admin, "POST", LIST).await, 401);

    // A new operator with a secret of its own choosing (stdin, not argv).
    cli(
        &gw,
        &[
            "operators",
            "add",
            "op-cli",
            "--partner",
            "dist-north",
            "--name",
            "CLI Admin",
            "--role",
            "admin",
        ],
        None,
    );
    let chosen = "a-secret-chosen-by-the-partner-0001";
    let new_op = printed(&cli(
        &gw,
        &["keys", "create", "--operator", "op-cli", "--secret-stdin"],
        Some(&format!("{chosen}\n")),
    ));
    assert_eq!(new_op.secret_key, chosen);
    assert_eq!(status(&gw, &new_op, "POST", RESELLERS).await, 200);

    // Roles, disable and enable: each heard by the next request.
    cli(
        &gw,
        &["operators", "set-roles", "op-cli", "--role", "finance"],
        None,
    );
    until(backend, "the narrowed roles", 403, || {
        status(&gw, &new_op, "POST", RESELLERS)
    })
    .await;
    assert_eq!(status(&gw, &new_op, "POST", LIST).await, 200);
    cli(&gw, &["operators", "disable", "op-cli"], None);
    until(backend, "the disabled operator", 403, || {
        status(&gw, &new_op, "POST", LIST)
    })
    .await;
    cli(&gw, &["operators", "enable", "op-cli"], None);
    until(backend, "the enabled operator", 200, || {
        status(&gw, &new_op, "POST", LIST)
    })
    .await;

    // A customer's key and token; the token revoked, then the key.
    let customer = printed(&cli(
        &gw,
        &["keys", "create", "--customer", "cust-acme"],
        None,
    ));
    let issued = gw
        .call_raw(Some(&customer), "POST", "/v3/auth/tokens", b"{}", &[])
        .await;
    assert_eq!(issued.status, 201);
    let token = issued.headers["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let with_token = || async {
        gw.call_raw(
            None,
            "GET",
            "/v2/customer/resources",
            b"",
            &[("x-auth-token", &token)],
        )
        .await
        .status
        .as_u16()
    };
    assert_eq!(with_token().await, 200);
    cli(&gw, &["tokens", "revoke", "--customer", "cust-acme"], None);
    until(backend, "the revoked token", 401, with_token).await;
    assert_eq!(
        status(&gw, &customer, "GET", "/v2/customer/resources").await,
        200
    );
    cli(&gw, &["keys", "revoke", &customer.access_key], None);
    until(backend, "the revoked key", 401, || {
        status(&gw, &customer, "GET", "/v2/customer/resources")
    })
    .await;
    gw.running.stop().await;
}

test_on_backends! {
    credentials_cli => the_cli_is_heard_at_once;
}
