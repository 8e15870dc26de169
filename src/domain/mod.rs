//! The domain store: the partner API behind the gateway (docs/domain.md section 3).
//!
//! It owns the business data and the rules about the data itself (amount
//! ranges, freeze types and other state machines, export files only once
//! complete) and decides nothing about who may do what: it serves exactly the
//! operation, the resources and the list filter that a valid identity
//! assertion from the gateway names ([`crate::assertion`]). Its router is
//! built from the catalog ([`crate::catalog::OPERATIONS`]), and it reads each
//! request with the catalog's typed requests, as the gateway did.

pub mod answers;
pub mod extract;
pub mod wire;

mod authorizations;
mod budgets;
mod customer_self;
pub mod customers;
mod exports;
mod freeze;
mod lists;
mod orders;
mod resellers;
mod resources;

use crate::api_error::ApiError;
use crate::assertion::AssertionKey;
use crate::catalog::{Request, ServedBy, OPERATIONS};
use crate::store::domain::AuthorizationChange;
use crate::store::replays::SeenAssertions;
use crate::store::Store;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use extract::Served;
use std::collections::BTreeSet;

pub use exports::start_worker as start_export_worker;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct DomainState {
    pub store: Store,
    pub key: AssertionKey,
    /// The assertions accepted so far: each is accepted once.
    pub seen: SeenAssertions,
    /// Requested exports, for the export worker.
    pub exports: ExportQueue,
}

impl DomainState {
    /// The state of a store whose exports `exports` takes to a worker
    /// ([`start_export_worker`]).
    pub fn new(store: Store, key: AssertionKey, exports: ExportQueue) -> DomainState {
        let lifetime = std::time::Duration::from_secs(crate::assertion::ASSERTION_TTL_SECS as u64);
        DomainState {
            seen: SeenAssertions::over(&store, lifetime),
            store,
            key,
            exports,
        }
    }
}

/// One requested export: its id (the row is written) and its orders.
#[derive(Debug)]
pub struct ExportJob {
    pub export_id: String,
    pub order_ids: Vec<String>,
}

/// The export worker's queue.
#[derive(Clone, Debug)]
pub struct ExportQueue(tokio::sync::mpsc::Sender<ExportJob>);

impl ExportQueue {
    /// A place in the queue, or 503 when it is full or the worker stopped.
    pub fn reserve(&self) -> Result<tokio::sync::mpsc::OwnedPermit<ExportJob>, ApiError> {
        self.0.clone().try_reserve_owned().map_err(|_| {
            ApiError::unavailable("too many exports are being rendered; try again shortly")
        })
    }
}

/// The whole partner API: one route per path of the catalog operations the
/// store serves, dispatching by method to the operation (another method on
/// the path is as unknown as an unknown path: 404).
pub fn router(state: DomainState) -> Router {
    let paths: BTreeSet<&'static str> = OPERATIONS
        .iter()
        .filter(|o| o.served_by == ServedBy::Store)
        .map(|o| o.path)
        .collect();
    paths
        .into_iter()
        .fold(Router::new(), |router, path| {
            router.route(
                path,
                any(move |State(state): State<DomainState>, req: axum::extract::Request| async move {
                    let op = OPERATIONS.iter().find(|o| {
                        o.path == path && o.method == req.method() && o.served_by == ServedBy::Store
                    });
                    match op {
                        Some(o) => extract::serve(state, o.op, req).await,
                        None => ApiError::not_found().into_response(),
                    }
                }),
            )
        })
        // Liveness for the gateway's readiness check: says nothing about any data.
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(|| async { ApiError::not_found() })
        .with_state(state)
}

/// Serves the partner API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: DomainState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

/// The store over TLS (`store --tls-cert/--tls-key`), for a gateway that
/// reaches it across a network.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    state: DomainState,
    acceptor: tokio_rustls::TlsAcceptor,
) -> std::io::Result<()> {
    axum::serve(
        crate::listener::TlsListener::new(listener, acceptor)?,
        router(state),
    )
    .await
}

/// Runs one verified, parsed request: every operation the store serves, to
/// its handler.
async fn dispatch(
    state: &DomainState,
    served: &Served,
    request: Request,
) -> Result<Response, ApiError> {
    use Request as R;
    match request {
        R::ListSubCustomers(r) => customers::list(state, served, r).await,
        R::ShowCustomerOverview(r) => customers::overview(state, r).await,
        R::ShowSubCustomerBudget(r) => budgets::show(state, r).await,
        R::ListSubCustomerBudget(r) => budgets::list(state, served, r).await,
        R::ListSubCustomerBudgetRecords(r) => budgets::records(state, r).await,
        R::UpdateSubCustomerBudget(r) => budgets::update(state, served, r).await,
        R::FreezeSubCustomers(r) => freeze::freeze(state, served, r.0).await,
        R::UnfreezeSubCustomers(r) => freeze::unfreeze(state, served, r.0).await,
        R::ListIndirectPartners(r) => resellers::list(state, served, r).await,
        R::ShowResellerGrants(r) => resellers::show_grants(state, r).await,
        R::SetResellerGrants(r) => resellers::set_grants(state, served, r).await,
        R::RequestAuthorization(r) => authorizations::request(state, served, r).await,
        R::ListCustomerAuthorizations(r) => {
            authorizations::list(state, served, &r.customer_id, r.paging).await
        }
        R::ListOwnAuthorizations(r) => {
            authorizations::list(state, served, served.own_customer()?, r.paging).await
        }
        R::ApproveAuthorization(r) => {
            authorizations::decide(state, r.0, AuthorizationChange::Approve).await
        }
        R::RejectAuthorization(r) => {
            authorizations::decide(state, r.0, AuthorizationChange::Reject).await
        }
        R::RevokeAuthorization(r) => {
            authorizations::decide(state, r.0, AuthorizationChange::Revoke).await
        }
        R::ListPartnerActivity(r) => authorizations::activity(state, served, r).await,
        R::ListCustomerOrders(r) => orders::list(state, served, r).await,
        R::ShowCustomerOrderDetails(r) => orders::details(state, r).await,
        R::ListPriceAdjustments(r) => orders::adjustments(state, r).await,
        R::AdjustOrderPrice(r) => orders::adjust_price(state, served, r).await,
        R::CreateOrderExport(r) => orders::create_export(state, served, r).await,
        R::ListOrderExports(r) => orders::list_exports(state, served, r).await,
        R::ShowOrderExport(r) => orders::show_export(state, &r.export_id).await,
        R::DownloadOrderExport(r) => orders::export_file(state, &r.export_id).await,
        R::ListCustomerOnDemandResources(r) => resources::list_on_demand(state, served, r).await,
        R::ListPayPerUseCustomerResources(r) => {
            resources::list_subscriptions(state, served, r).await
        }
        R::PlaceOrder(r) => customer_self::place_order(state, served, r).await,
        R::ListOwnOrders(r) => customer_self::list_orders(state, served, r).await,
        R::ListOwnResources(r) => customer_self::list_resources(state, served, r).await,
        R::OperateResource(r) => customer_self::operate(state, served, r).await,
        // The gateway's own operations never reach the store's router.
        R::CreateSession(_) | R::ListSessions(_) | R::EndSession(_) | R::IssueToken(_) => {
            Err(ApiError::not_found())
        }
    }
}
