//! The API's error format, `{"error_code": "CBC.xxxx", "error_msg": "..."}`,
//! and the one place where an error becomes an HTTP response. The gateway,
//! the domain store and the admin listener all answer through [`ApiError`].

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

/// Error codes used across the API.
pub mod codes {
    /// A required parameter is missing or malformed.
    pub const PARAMETER_ERROR: &str = "CBC.0100";
    /// A parameter is well-formed but not acceptable.
    pub const INVALID_PARAMETER: &str = "CBC.0101";
    /// Authenticated, but not allowed (also: the resource does not exist).
    pub const ACCESS_DENIED: &str = "CBC.0151";
    /// Authentication failed (the cloud's API gateway code).
    pub const UNAUTHENTICATED: &str = "APIGW.0301";
    /// The operation does not apply to the customer's association type.
    pub const WRONG_ASSOCIATION: &str = "CBC.99005024";
    /// Something failed on our side.
    pub const INTERNAL: &str = "CBC.0999";
    /// The route does not exist.
    pub const NOT_FOUND: &str = "APIGW.0101";
    /// The request body is too large.
    pub const BODY_TOO_LARGE: &str = "APIGW.0201";
    /// The request body did not arrive within the body deadline.
    pub const BODY_TIMEOUT: &str = "APIGW.0208";
    /// A business rule refuses the change (state conflict).
    pub const CONFLICT: &str = "CBC.30000067";
    /// The upstream did not answer properly.
    pub const BAD_GATEWAY: &str = "APIGW.0502";
    /// The upstream did not answer in time.
    pub const GATEWAY_TIMEOUT: &str = "APIGW.0504";
    /// Not ready to serve (database or policies unavailable), or shedding load.
    pub const UNAVAILABLE: &str = "APIGW.0503";
    /// Over the caller's rate limit (the cloud's API gateway code).
    pub const RATE_LIMITED: &str = "APIGW.0308";
}

/// An error answer: status, code, message and optional per-item details.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub msg: String,
    /// Per-item failures, as the public API reports them for batch calls.
    /// Boxed: errors travel in every `Result`, and most have no details.
    pub details: Option<Box<Value>>,
    /// When to try again (`Retry-After`, whole seconds): a 429 or a shed 503.
    pub retry_after_secs: Option<u64>,
}

/// Every error's body (the OpenAPI document's `Error`).
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "Error")]
pub struct Body<'a> {
    /// The code: `CBC.0100` for a field missing or malformed, `CBC.0101`
    /// for a value not acceptable (both name the field), `APIGW.0301` for
    /// any failed authentication, `CBC.0151` for a denial, ...
    error_code: &'a str,
    error_msg: &'a str,
    /// Per-item failures of a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_details: Option<&'a Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, msg: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            msg: msg.into(),
            details: None,
            retry_after_secs: None,
        }
    }

    /// The same error, telling the client to try again after `secs` seconds.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// 429 APIGW.0308: over the caller's rate limit.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!("Too many requests from this principal; try again in {retry_after_secs} s."),
        )
        .retry_after(retry_after_secs)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// A caller's value quoted in an error message, cut to 64 characters:
    /// enough to recognise it, never a way to make an answer large.
    pub fn echo(value: &str) -> String {
        const SHOWN: usize = 64;
        match value.char_indices().nth(SHOWN) {
            None => format!("{value:?}"),
            Some((end, _)) => format!("{:?}... ({} bytes)", &value[..end], value.len()),
        }
    }

    /// 400 CBC.0100: a parameter is missing or malformed.
    pub fn parameter(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::PARAMETER_ERROR, msg)
    }

    /// 400 CBC.0101: a parameter is not acceptable.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::INVALID_PARAMETER, msg)
    }

    /// 401, saying nothing about which part of the authentication failed.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHENTICATED,
            "Incorrect authentication information.",
        )
    }

    /// 403 CBC.0151: the default denial, also used for resources that do not exist.
    pub fn denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            codes::ACCESS_DENIED,
            "Access denied.",
        )
    }

    /// 409: the data's state refuses the change.
    pub fn conflict(code: &str, msg: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, msg)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            "The API does not exist or has not been published.",
        )
    }

    /// 503: a dependency cannot serve right now; nothing was changed.
    pub fn unavailable(msg: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, msg)
    }

    /// 500 with a generic message; the cause is logged by the caller, never sent.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "Internal error. Try again later.",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&Body {
            error_code: &self.code,
            error_msg: &self.msg,
            error_details: self.details.as_deref(),
        })
        .expect("error body serializes")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.msg)
    }
}

impl std::error::Error for ApiError {}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let mut resp = (self.status, self.body()).into_response();
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json;charset=UTF-8"),
        );
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        resp
    }
}
