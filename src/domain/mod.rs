//! The domain store: the partner API behind the gateway (DOMAIN.md section 3).
//!
//! It owns the business data and its invariants (amount ranges, freeze types,
//! state machines) and trusts only callers named by a valid identity assertion
//! from the gateway ([`crate::assertion`]). Authorization rules (who may do
//! what) live in `policies/` and are enforced by the gateway; the store only
//! scopes lists to the caller's partner hierarchy as a second line of defence.

pub mod extract;
pub mod scope;
pub mod wire;

mod authorizations;
mod budgets;
mod customer_self;
pub mod customers;
mod freeze;
mod orders;
mod query;
mod resellers;
mod resources;

use crate::api_error::ApiError;
use crate::assertion::AssertionKey;
use crate::store::Store;
use axum::Router;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct DomainState {
    pub store: Store,
    pub key: AssertionKey,
}

/// The whole partner API.
pub fn router(state: DomainState) -> Router {
    Router::new()
        .merge(customers::routes())
        .merge(budgets::routes())
        .merge(freeze::routes())
        .merge(resellers::routes())
        .merge(authorizations::routes())
        .merge(orders::routes())
        .merge(resources::routes())
        .merge(customer_self::routes())
        // Liveness for the gateway's readiness check: says nothing about any data.
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(|_caller: extract::Caller| async { ApiError::not_found() })
        .with_state(state)
}

/// Serves the partner API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: DomainState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}
