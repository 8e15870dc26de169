//! Retries that do not write twice: a creating request (`Op::creates`) sent
//! with an `X-Client-Token` claims the token for its principal. The first
//! request with the token runs, and its successful answer is kept for a day;
//! the same token with the same body gets that answer again without running,
//! with another body (or while the first is in flight) a 409. A failed first
//! request keeps nothing: a retry runs again. The request is authorized
//! before the token is looked at, so a replay never outlives a permission.

use super::{json_bytes_response, Call, Gateway, GatewayError};
use crate::api_error::{codes, ApiError};
use crate::audit::DecisionRecord;
use crate::listener::Body;
use crate::store::client_tokens::{Claimed, TokenClaim};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

/// The request header.
const HEADER: &str = "x-client-token";
/// Longest token accepted.
const MAX_LEN: usize = 64;
/// The tokens accepted, for the OpenAPI document (a test holds it to the
/// check below).
pub const TOKEN_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// A claim the answer is to be recorded under.
pub(super) struct Owned {
    principal: String,
    token: String,
    operation: &'static str,
    body_sha256: String,
}

impl Owned {
    fn claim(&self) -> TokenClaim<'_> {
        TokenClaim {
            principal: &self.principal,
            token: &self.token,
            operation: self.operation,
            body_sha256: &self.body_sha256,
        }
    }
}

/// What a request's client token says to do.
pub(super) enum Claim {
    /// Run the request (recording its answer under the claim, if any).
    First(Option<Owned>),
    /// Answer this, the first request's answer, without running.
    Replay(Response<Body>),
}

/// The token of a creating request, checked: 400 naming the header when it
/// is not 1 to 64 letters, digits, `-` or `_`.
fn token(call: &Call<'_>) -> Result<Option<String>, GatewayError> {
    if !call.operation.op.creates() {
        return Ok(None);
    }
    let mut values = call.parts.headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    let ok = values.next().is_none()
        && (1..=MAX_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(GatewayError::BadParameter(format!(
            "invalid parameter X-Client-Token: one value of 1 to {MAX_LEN} letters, digits, '-' or '_'"
        )));
    }
    Ok(Some(text.to_owned()))
}

impl Gateway {
    /// Claims the call's client token, if it sends one.
    pub(super) async fn claim_client_token(
        &self,
        call: &Call<'_>,
        record: &mut DecisionRecord,
    ) -> Result<Claim, GatewayError> {
        let Some(token) = token(call)? else {
            return Ok(Claim::First(None));
        };
        let owned = Owned {
            principal: call.caller.principal.to_string(),
            token,
            operation: call.operation.op.name(),
            body_sha256: crate::signing::sha256_hex(&call.body),
        };
        let store = self.authorizer.entities.store();
        let claimed = Box::pin(store.claim_client_token(&owned.claim(), crate::time::now()))
            .await
            .map_err(|e| GatewayError::Unavailable(format!("client token: {e}")))?;
        let conflict =
            |msg: &str| GatewayError::Api(ApiError::conflict(codes::CONFLICT, msg.to_owned()));
        match claimed {
            Claimed::First => Ok(Claim::First(Some(owned))),
            Claimed::Answered { status, body } => {
                record.replayed = true;
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                let mut response = json_bytes_response(status, body.into_bytes());
                response
                    .headers_mut()
                    .insert("x-client-token-replayed", HeaderValue::from_static("true"));
                Ok(Claim::Replay(response))
            }
            Claimed::InFlight => Err(conflict(
                "A request with this X-Client-Token is still in progress; retry it later.",
            )),
            Claimed::OtherRequest => Err(conflict(
                "This X-Client-Token was used with another request; use a new token for a new request.",
            )),
        }
    }

    /// Keeps `response` under the claim when it is a success; otherwise
    /// gives the claim up, so that a retry runs again.
    pub(super) async fn remember_answer(
        &self,
        claim: Option<Owned>,
        response: Response<Body>,
    ) -> Result<Response<Body>, GatewayError> {
        let Some(owned) = claim else {
            return Ok(response);
        };
        let store = self.authorizer.entities.store();
        if !response.status().is_success() {
            if let Err(e) = Box::pin(store.release_client_token(&owned.claim())).await {
                tracing::warn!(error = %e, "cannot release a client token");
            }
            return Ok(response);
        }
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| GatewayError::Internal(format!("reading our own answer: {e}")))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) =
            Box::pin(store.answer_client_token(&owned.claim(), parts.status.as_u16(), &text)).await
        {
            // The change is made: answer it; a retry would then be refused
            // as in flight rather than run twice.
            tracing::warn!(error = %e, "cannot record the answer of a client token");
        }
        Ok(Response::from_parts(parts, Body::new(bytes)))
    }
}

#[cfg(test)]
mod tests {
    /// The document's pattern says what `token` checks: its length bound
    /// and its letters, digits, `-` and `_`.
    #[test]
    fn the_pattern_is_the_check() {
        assert_eq!(
            super::TOKEN_PATTERN,
            format!("^[A-Za-z0-9_-]{{1,{}}}$", super::MAX_LEN)
        );
    }
}
