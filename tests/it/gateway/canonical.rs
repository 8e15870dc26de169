//! Small mismatches between what is signed, what the gateway checks and what
//! the API behind it reads.

use super::raw::exchange;
use super::TestGateway;
use partner_gateway::signing;
use partner_gateway::store::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A signed GET head for `path?query_signed`, sent as `path?query_sent`.
fn head(gw: &TestGateway, path: &str, query_signed: &str, query_sent: &str) -> String {
    let creds = gw.credentials("op-dist-admin");
    let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let authorization = signing::sign(
        "GET",
        path,
        query_signed,
        &[("host", "localhost"), ("x-sdk-date", &date)],
        b"",
        &creds.access_key,
        &creds.secret_key,
    );
    format!(
        "GET {path}?{query_sent} HTTP/1.1\r\nhost: localhost\r\nx-sdk-date: {date}\r\n\
         authorization: {authorization}\r\n\r\n"
    )
}

/// The API reads `+` in a query as a space and `%2B` as a plus: a signature
/// made for one does not cover the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plus_and_encoded_plus_are_signed_apart() {
    let gw = TestGateway::start(Backend::Sqlite).await;
    let path = "/v2/orders/customer-orders";
    let as_signed = |q: &str| head(&gw, path, q, q);
    // Signed as sent: authenticated (then 403: no such customer to see).
    for q in ["customer_id=a+b", "customer_id=a%2Bb", "customer_id=a%20b"] {
        assert_eq!(exchange(&gw, &as_signed(q), b"").await, Some(403), "{q}");
    }
    // The SDK sends a space as %20, which is what `+` means: one signature.
    let swapped = head(&gw, path, "customer_id=a%20b", "customer_id=a+b");
    assert_eq!(exchange(&gw, &swapped, b"").await, Some(403));
    // Signed for a plus, sent as a space, and the other way round: refused.
    let plus_as_space = head(&gw, path, "customer_id=a%2Bb", "customer_id=a+b");
    assert_eq!(exchange(&gw, &plus_as_space, b"").await, Some(401));
    let space_as_plus = head(&gw, path, "customer_id=a+b", "customer_id=a%2Bb");
    assert_eq!(exchange(&gw, &space_as_plus, b"").await, Some(401));
    gw.running.stop().await;
}

/// A signed POST head for `path` with `body`, its Content-Length given `lengths` times.
fn post_head(gw: &TestGateway, path: &str, body: &[u8], lengths: usize) -> String {
    let creds = gw.credentials("op-dist-admin");
    let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let authorization = signing::sign(
        "POST",
        path,
        "",
        &[("host", "localhost"), ("x-sdk-date", &date)],
        body,
        &creds.access_key,
        &creds.secret_key,
    );
    let length = format!("Content-Length: {}\r\n", body.len()).repeat(lengths);
    format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nx-sdk-date: {date}\r\n\
         authorization: {authorization}\r\ncontent-type: application/json\r\n{length}\r\n"
    )
}

/// Two identical Content-Length headers are refused (400), as two different
/// ones are, also on a kept-alive connection after a request whose body
/// looks like heads (and reaches the gateway untouched: its signature holds,
/// so the answer is the 400 of a body that is not JSON, not a 401).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_content_length_is_refused() {
    let gw = TestGateway::start(Backend::Sqlite).await;
    let path = "/v2/partners/sub-customers/query";
    let body = br#"{"limit": 1}"#;
    let mut s = super::raw::tls(&gw).await;
    let mut send = async |head: String, body: &[u8]| {
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        response(&mut s).await
    };
    assert!(send(post_head(&gw, path, body, 1), body)
        .await
        .starts_with("HTTP/1.1 200"));
    let lookalike = b"{}\r\n\r\nPOST / HTTP/1.1\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n";
    let not_json = send(post_head(&gw, path, lookalike, 1), lookalike).await;
    assert!(not_json.starts_with("HTTP/1.1 400"), "{not_json}");
    assert!(!not_json.contains("Content-Length"), "{not_json}");
    let repeated = send(post_head(&gw, path, body, 2), body).await;
    assert!(repeated.starts_with("HTTP/1.1 400"), "{repeated}");
    assert!(
        repeated.contains("several Content-Length headers"),
        "{repeated}"
    );
    gw.running.stop().await;
}

/// One answer (head and body, by its Content-Length) from a kept-alive connection.
async fn response(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut text = Vec::new();
    let mut byte = [0u8; 1];
    let mut read_one = async |text: &mut Vec<u8>| {
        let n = tokio::time::timeout(super::raw::BOUND, s.read(&mut byte))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed before a whole answer");
        text.push(byte[0]);
    };
    while !text.ends_with(b"\r\n\r\n") {
        read_one(&mut text).await;
    }
    let head = String::from_utf8_lossy(&text).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    for _ in 0..length {
        read_one(&mut text).await;
    }
    String::from_utf8_lossy(&text).into_owned()
}
