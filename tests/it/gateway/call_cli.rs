//! `partner-gateway call`, the real binary: `--cacert` accepts a plain
//! self-signed certificate (marked as a CA, as `openssl req -x509` makes
//! it), and a reader closing the pipe early (`| head`) is no crash.

use super::TestGateway;
use partner_gateway::config::TlsMode;
use partner_gateway::store::Backend;
use std::process::{Command, Stdio};

/// What `openssl req -x509 -newkey ... -subj /CN=localhost` makes: a
/// self-signed certificate with `basicConstraints = CA:TRUE`.
fn ca_marked_self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn call(gw: &TestGateway, trust: &[&str], stdout: Stdio) -> std::process::Child {
    let admin = gw.credentials("op-dist-admin");
    Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .arg("call")
        .args(trust)
        .args(["--endpoint", &gw.endpoint])
        .args([
            "POST",
            "/v2/partners/sub-customers/query",
            r#"{"limit": 100}"#,
        ])
        .env("PGW_AK", &admin.access_key)
        .env("PGW_SK", &admin.secret_key)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_trusts_a_self_signed_ca_certificate_and_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca_marked_self_signed(dir.path());
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.tls = TlsMode::Files { cert, key };
    })
    .await;
    let pem = dir.path().join("cert.pem");
    let pem = pem.to_str().unwrap();

    let out = call(&gw, &["--cacert", pem], Stdio::piped())
        .wait_with_output()
        .unwrap();
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{text}{err}");
    // The status and request id on stderr; stdout is the JSON body alone,
    // for a pipe to jq.
    assert!(err.starts_with("200 OK\nx-request-id: "), "{err}");
    let body: serde_json::Value = serde_json::from_str(&text).expect("stdout is the JSON body");
    assert!(body["count"].as_u64().unwrap() > 0, "{body}");

    // Another certificate in the file: refused.
    let other = tempfile::tempdir().unwrap();
    let (other_pem, _) = ca_marked_self_signed(other.path());
    let out = call(
        &gw,
        &["--cacert", other_pem.to_str().unwrap()],
        Stdio::piped(),
    )
    .wait_with_output()
    .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());

    // The reader is gone before the answer is written.
    let mut child = call(&gw, &["--cacert", pem], Stdio::piped());
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    gw.running.stop().await;
}
