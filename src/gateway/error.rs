//! What can go wrong on the request path, and the one function that turns it
//! into an answer. Causes are logged here; the client sees only the API error.

use crate::api_error::{codes, ApiError};
use crate::caller::{AuthFailure, AuthReason};
use http::StatusCode;
use serde_json::Value;

#[derive(Debug)]
pub enum GatewayError {
    /// The request line or framing is ambiguous (normalize stage).
    Malformed(std::borrow::Cow<'static, str>),
    /// A parameter the gateway needs is missing or malformed.
    BadParameter(String),
    /// A parameter is well-formed but out of range.
    InvalidParameter(String),
    BodyTooLarge,
    /// The body did not arrive within the body deadline (slow client).
    BodyTimeout,
    /// Too many body bytes held for requests not yet authenticated.
    Overloaded,
    /// Over the caller's rate limit.
    Throttled {
        retry_after_secs: u64,
    },
    /// Too many requests in flight to the domain store: shed at once.
    Shed,
    /// Authentication failed; the reason is logged and recorded, never sent.
    Unauthenticated(AuthFailure),
    UnknownRoute,
    /// The policies said no (or the resource does not exist: same answer).
    Denied {
        code: String,
        msg: String,
        details: Option<Value>,
    },
    /// A dependency the decision needs is down (database, policies): fail closed.
    Unavailable(String),
    /// A bug or an unexpected state on our side.
    Internal(String),
    UpstreamUnreachable(String),
    UpstreamTimeout,
    /// A request the catalog refused (400 naming the field), as the API answers it.
    Api(ApiError),
}

impl From<ApiError> for GatewayError {
    fn from(e: ApiError) -> Self {
        GatewayError::Api(e)
    }
}

impl GatewayError {
    /// A 401 for `reason`; `detail` goes to the log.
    pub fn unauthenticated(reason: AuthReason, detail: &'static str) -> Self {
        GatewayError::Unauthenticated(AuthFailure {
            reason,
            detail,
            access_key: None,
        })
    }

    /// A 401 that also names the access key the request was signed with
    /// (cut to a bounded length: it is the client's text).
    pub fn with_access_key(self, access_key: &str) -> Self {
        match self {
            GatewayError::Unauthenticated(mut failure) => {
                failure.access_key = Some(access_key.chars().take(128).collect());
                GatewayError::Unauthenticated(failure)
            }
            other => other,
        }
    }

    /// The default denial, also used for unknown resources (no existence oracle).
    pub fn denied() -> Self {
        let e = ApiError::denied();
        GatewayError::Denied {
            code: e.code,
            msg: e.msg,
            details: None,
        }
    }

    /// The one mapping from a failure to the API's answer.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            GatewayError::Malformed(why) => {
                ApiError::parameter(format!("Malformed request: {why}."))
            }
            GatewayError::BadParameter(msg) => ApiError::parameter(msg.clone()),
            GatewayError::InvalidParameter(msg) => ApiError::invalid(msg.clone()),
            GatewayError::BodyTooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::BODY_TOO_LARGE,
                "The request body is too large.",
            ),
            GatewayError::BodyTimeout => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                codes::BODY_TIMEOUT,
                "The request body did not arrive in time.",
            ),
            GatewayError::Overloaded => {
                tracing::warn!("refused: unauthenticated body bytes at their cap");
                ApiError::unavailable("The service is temporarily unavailable. Try again later.")
            }
            GatewayError::Throttled { retry_after_secs } => {
                ApiError::rate_limited(*retry_after_secs)
            }
            GatewayError::Shed => {
                tracing::warn!("shed: the domain store's in-flight requests are at their bound");
                ApiError::unavailable("The service is busy. Try again shortly.").retry_after(1)
            }
            GatewayError::Unauthenticated(failure) => {
                tracing::info!(
                    reason = failure.reason.code(),
                    detail = failure.detail,
                    access_key = failure.access_key.as_deref(),
                    "authentication failed"
                );
                ApiError::unauthenticated()
            }
            GatewayError::UnknownRoute => ApiError::not_found(),
            GatewayError::Denied { code, msg, details } => {
                let e = ApiError::new(StatusCode::FORBIDDEN, code, msg.clone());
                match details {
                    Some(d) => e.with_details(d.clone()),
                    None => e,
                }
            }
            GatewayError::Unavailable(cause) => {
                tracing::error!(
                    cause,
                    "denied because a dependency is unavailable (fail closed)"
                );
                ApiError::unavailable("The service is temporarily unavailable. Try again later.")
            }
            GatewayError::Internal(cause) => {
                tracing::error!(cause, "internal error");
                ApiError::internal()
            }
            GatewayError::UpstreamUnreachable(cause) => {
                tracing::error!(cause, "upstream unreachable");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    codes::BAD_GATEWAY,
                    "The upstream service is unreachable.",
                )
            }
            GatewayError::UpstreamTimeout => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                codes::GATEWAY_TIMEOUT,
                "The upstream service did not answer in time.",
            ),
            GatewayError::Api(e) => e.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant maps to the status a client must see; pinned here.
    #[test]
    fn statuses_are_pinned() {
        let cases = [
            (GatewayError::Malformed("x".into()), 400),
            (GatewayError::BadParameter("x".into()), 400),
            (GatewayError::InvalidParameter("x".into()), 400),
            (GatewayError::BodyTooLarge, 413),
            (GatewayError::BodyTimeout, 408),
            (GatewayError::Overloaded, 503),
            (
                GatewayError::unauthenticated(AuthReason::BadSignature, "x"),
                401,
            ),
            (GatewayError::UnknownRoute, 404),
            (GatewayError::denied(), 403),
            (GatewayError::Unavailable("db".into()), 503),
            (GatewayError::Internal("bug".into()), 500),
            (GatewayError::UpstreamUnreachable("x".into()), 502),
            (GatewayError::UpstreamTimeout, 504),
            (GatewayError::Api(ApiError::parameter("budget_amount")), 400),
        ];
        for (err, status) in cases {
            assert_eq!(err.to_api_error().status.as_u16(), status, "{err:?}");
        }
        let unauth =
            GatewayError::unauthenticated(AuthReason::BadSignature, "bad signature").to_api_error();
        assert!(
            !unauth.msg.contains("signature"),
            "401 never says which part failed"
        );
        let unavailable =
            GatewayError::Unavailable("connection refused to 10.0.0.1".into()).to_api_error();
        assert!(
            !unavailable.msg.contains("10.0.0.1"),
            "causes are logged, not sent"
        );
    }
}
