//! Request extractors that answer in the API's error format: the verified
//! caller, JSON bodies and query strings (errors name the offending field),
//! and paging.

use super::DomainState;
use crate::api_error::ApiError;
use crate::assertion::{Claims, HEADER};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The caller, from a valid identity assertion for this very request.
/// Anything else is 401 (the store trusts no other statement of identity).
#[derive(Clone, Debug)]
pub struct Caller(pub Claims);

impl FromRequestParts<DomainState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &DomainState) -> Result<Self, ApiError> {
        let header = parts.headers.get(HEADER).and_then(|v| v.to_str().ok());
        let now = chrono::Utc::now().timestamp();
        state
            .key
            .verify(header, parts.method.as_str(), parts.uri.path(), now)
            .map(Caller)
            .map_err(|e| {
                tracing::warn!(error = %e, path = parts.uri.path(), "domain store refused a request without a valid identity assertion");
                ApiError::unauthenticated()
            })
    }
}

/// A JSON body; a malformed one is 400 CBC.0100 naming the field.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::parameter("the request body could not be read"))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, naming the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::parameter(format!("invalid request body: {inner}"))
        } else {
            ApiError::parameter(format!("invalid parameter {path}: {inner}"))
        }
    })
}

/// A query string; a malformed one is 400 CBC.0100 naming the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                ApiError::parameter(format!(
                    "invalid query parameter {}: {}",
                    e.path(),
                    e.inner()
                ))
            })
    }
}

/// `offset`/`limit` paging as the public API has it: offset ≥ 0, limit 1..=100
/// (default 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    pub offset: i64,
    pub limit: i64,
}

pub const DEFAULT_LIMIT: i64 = 10;
pub const MAX_LIMIT: i64 = 100;

impl Paging {
    pub fn new(offset: Option<i64>, limit: Option<i64>) -> Result<Paging, ApiError> {
        let offset = offset.unwrap_or(0);
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if offset < 0 {
            return Err(ApiError::invalid("offset must be 0 or more"));
        }
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        Ok(Paging { offset, limit })
    }
}

/// A query string of `offset`/`limit` and nothing else (any other parameter is refused).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagingParams {
    pub offset: Option<i64>,
    pub limit: Option<i64>,
}

impl PagingParams {
    pub fn paging(self) -> Result<Paging, ApiError> {
        Paging::new(self.offset, self.limit)
    }
}

/// A store failure is ours: the cause is logged, the caller gets a plain 500.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "domain store: storage failure");
        ApiError::internal()
    }
}

/// As for [`crate::store::StoreError`]: logged, answered 500 without detail.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "domain store: database failure");
        ApiError::internal()
    }
}

/// A JSON body that may also be empty: the SDK sends no body at all for a
/// request model left unset (`ListIndirectPartnersRequest()`), which means `{}`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::parameter("the request body could not be read"))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// An optional text filter: the SDK sends `key=` for an empty string, and
/// hand-written clients send `""` or `null`; all mean "no filter".
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// An optional integer query parameter (empty = absent), naming the parameter when malformed.
pub fn opt_int(name: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    match non_empty(value) {
        None => Ok(None),
        Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
            ApiError::parameter(format!("invalid parameter {name}: {v:?} is not an integer"))
        }),
    }
}

/// An optional UTC time parameter such as `2026-11-21T12:00:00Z` (empty = absent).
pub fn opt_time(
    name: &str,
    value: Option<String>,
) -> Result<Option<crate::time::Timestamp>, ApiError> {
    non_empty(value)
        .map(|v| super::wire::parse_time_param(name, &v))
        .transpose()
}

/// A time range filter whose `begin` must not be after its `end` (either
/// bound alone is accepted).
pub fn check_time_order(
    begin_name: &str,
    begin: Option<crate::time::Timestamp>,
    end_name: &str,
    end: Option<crate::time::Timestamp>,
) -> Result<(), ApiError> {
    match (begin, end) {
        (Some(b), Some(e)) if b > e => Err(ApiError::invalid(format!(
            "{begin_name} must not be after {end_name}"
        ))),
        _ => Ok(()),
    }
}

/// A time range filter: `begin` ≤ `end`, and, when both are given, at most one
/// calendar year apart (the public API's limit). One bound alone is accepted.
pub fn check_time_range(
    begin_name: &str,
    begin: Option<crate::time::Timestamp>,
    end_name: &str,
    end: Option<crate::time::Timestamp>,
) -> Result<(), ApiError> {
    check_time_order(begin_name, begin, end_name, end)?;
    if let (Some(b), Some(e)) = (begin, end) {
        let year_later = b.checked_add_months(chrono::Months::new(12));
        if year_later.is_none_or(|limit| e > limit) {
            return Err(ApiError::invalid(format!(
                "{begin_name} and {end_name} must be at most one year apart"
            )));
        }
    }
    Ok(())
}
