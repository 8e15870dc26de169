//! What the domain route tests share: the demo organisation, calls as one
//! principal, and the checks every area makes of an answer.

use crate::kit::{DomainServer, TestResponse};
use partner_gateway::assertion::Identity;
use serde_json::Value;

/// The demo organisation: the data the tests rely on.
pub const DEMO: &str = include_str!("../../../examples/demo.json");

pub async fn get(s: &DomainServer, who: &Identity, path: &str) -> TestResponse {
    s.call("GET", path, Some(who), None).await
}

pub async fn post(s: &DomainServer, who: &Identity, path: &str, body: Value) -> TestResponse {
    s.call("POST", path, Some(who), Some(body)).await
}

/// The body as text, for failure messages.
pub fn body_text(r: &TestResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Asserts a success (2xx) and returns its JSON body.
#[track_caller]
pub fn ok(r: &TestResponse) -> Value {
    assert!(r.status.is_success(), "{} {}", r.status, body_text(r));
    r.json()
}

/// Asserts an error answer: status and `error_code`, and that `error_msg` is set.
#[track_caller]
pub fn assert_error(r: &TestResponse, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", body_text(r));
    assert_eq!(r.error_code(), code, "{}", body_text(r));
    assert!(
        r.json()["error_msg"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        body_text(r)
    );
}

/// Asserts that `r` (something out of the caller's reach) is answered exactly
/// as `unknown` (something that does not exist): 403 CBC.0151, the same body.
#[track_caller]
pub fn same_as_unknown(r: &TestResponse, unknown: &TestResponse) {
    assert_error(r, 403, "CBC.0151");
    assert_error(unknown, 403, "CBC.0151");
    assert_eq!(r.body, unknown.body);
}

/// The `field` of every entry of the list `list`, in order.
pub fn ids(v: &Value, list: &str, field: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {v}"))
        .iter()
        .map(|o| o[field].as_str().unwrap().to_owned())
        .collect()
}
