//! Small mismatches between what is signed, what the gateway checks and what
//! the API behind it reads.

use super::raw::exchange;
use super::TestGateway;
use partner_gateway::signing;
use partner_gateway::store::Backend;

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
