//! The store's one entry point: verify the assertion for this very request,
//! read the request with the catalog, check that the assertion names what
//! the request targets, and hand both to the operation's handler.

use super::DomainState;
use crate::api_error::ApiError;
use crate::assertion::{Bound, Claims, Identity, HEADER};
use crate::catalog::{self, CallerRefs, Input, Op, Request};
use crate::filter::{Filter, ListScope};
use crate::refs::EntityRef;
use axum::response::{IntoResponse, Response};

/// What the gateway decided for the request being served.
#[derive(Clone, Debug)]
pub struct Served {
    pub identity: Identity,
    /// The targets every check allowed, in the request's order.
    pub resources: Vec<EntityRef>,
    /// For a list: which items it may hold. A list the gateway sent without
    /// one holds nothing (fail closed).
    pub list: ListScope,
    /// For a search by a masked contact field: the only items it may match.
    pub searchable: Filter,
    /// Contact fields answered in clear (the gateway masks what R2 denies).
    pub reveal: bool,
}

impl Served {
    fn from_claims(claims: Claims<'static>) -> Served {
        Served {
            identity: claims.identity.into_owned(),
            resources: claims.resources.into_owned(),
            list: claims.list.unwrap_or(ListScope::Filter(Filter::False)),
            searchable: claims.searchable.unwrap_or(Filter::False),
            reveal: claims.reveal,
        }
    }

    /// The caller's own customer account, which the gateway decided on (the
    /// customer-side routes' target).
    pub fn own_customer(&self) -> Result<&str, ApiError> {
        match self.resources.first() {
            Some(EntityRef::Customer(id)) => Ok(id),
            _ => Err(ApiError::denied()),
        }
    }
}

/// The most bytes of a request body the store reads (the gateway's limit is
/// lower; this only bounds a caller that reaches the store directly).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Serves one request of operation `op`.
pub async fn serve(state: DomainState, op: Op, req: axum::extract::Request) -> Response {
    match served(&state, op, req).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn served(
    state: &DomainState,
    op: Op,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::parameter("the request body could not be read"))?;
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let header = parts.headers.get(HEADER).and_then(|v| v.to_str().ok());
    let bound = Bound {
        method: parts.method.as_str(),
        target,
        body: &body,
    };
    let refuse = |why: &dyn std::fmt::Display| {
        tracing::warn!(error = %why, path = parts.uri.path(), "domain store refused a request without a valid identity assertion");
        ApiError::unauthenticated()
    };
    let now = chrono::Utc::now().timestamp();
    let claims = state
        .key
        .verify(header, bound, now)
        .map_err(|e| refuse(&e))?;
    if claims.operation != op.name() {
        return Err(refuse(&"the assertion is for another operation"));
    }
    let operation = catalog::operation(op);
    let params = catalog::match_template(operation.path, parts.uri.path())
        .ok_or_else(ApiError::not_found)?;
    let input = Input {
        params: &params,
        query: parts.uri.query().unwrap_or_default(),
        body: &body,
    };
    let request = Request::parse(op, &input)?;
    let principal = claims.identity.principal();
    let caller = CallerRefs {
        principal: &principal,
        own_customer: claims.identity.customer.as_deref(),
        auth_method: "signature",
    };
    // The gateway decided on exactly what this request targets; anything
    // else is not this request's assertion.
    if request.describe().targets(&caller).ok().as_deref() != Some(&*claims.resources) {
        return Err(refuse(&"the assertion names other resources"));
    }
    // Last: only a request that is served uses its assertion up.
    use sha2::Digest as _;
    let digest: [u8; 32] = sha2::Sha256::digest(header.unwrap_or_default().as_bytes()).into();
    if !state.seen.first_use(digest, claims.exp, now).await? {
        return Err(refuse(&"the assertion was accepted before (a replay)"));
    }
    super::dispatch(state, &Served::from_claims(claims), request).await
}

/// A store failure is ours: the cause is logged, the caller gets a plain
/// 500, or 503 when the database cannot be reached or written right now.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_unavailable() {
            tracing::error!(error = %e, "domain store: database unavailable");
            return ApiError::unavailable(
                "The service is temporarily unavailable. Try again later.",
            );
        }
        tracing::error!(error = %e, "domain store: storage failure");
        ApiError::internal()
    }
}
