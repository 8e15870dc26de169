//! What each operation the store serves answers when it succeeds: the
//! status and the struct its handler serializes, read by the OpenAPI
//! document (`crate::openapi`). The handlers' structs are the one
//! definition of each shape; a handler that answered another shape than the
//! one named here would fail the fuzzing run's response-conformance check
//! (`tests/openapi`, run by `.ci/run`).

use super::{
    authorizations, budgets, customer_self, customers, freeze, orders, resellers, resources,
};
use crate::catalog::{Op, Success};
use schemars::SchemaGenerator;

fn json<T: schemars::JsonSchema>(status: u16, g: &mut SchemaGenerator) -> Option<Success> {
    Some(Success::json::<T>(status, g))
}

/// The success of `op`; `None` for the gateway's own operations.
pub fn success(op: Op, g: &mut SchemaGenerator) -> Option<Success> {
    use Op as O;
    match op {
        O::ListSubCustomers => json::<customers::ListSubCustomersResponse>(200, g),
        O::ShowCustomerOverview => json::<customers::Overview>(200, g),
        O::ShowSubCustomerBudget => json::<budgets::ShowBudgetResponse>(200, g),
        O::ListSubCustomerBudget => json::<budgets::ListBudgetResponse>(200, g),
        O::ListSubCustomerBudgetRecords => json::<budgets::RecordsResponse>(200, g),
        O::UpdateSubCustomerBudget => json::<budgets::Empty>(200, g),
        O::FreezeSubCustomers | O::UnfreezeSubCustomers => json::<freeze::BatchResponse>(200, g),
        O::ListIndirectPartners => json::<resellers::ListResellersResponse>(200, g),
        O::ShowResellerGrants | O::SetResellerGrants => json::<resellers::GrantsView>(200, g),
        O::RequestAuthorization => json::<authorizations::AuthorizationView>(201, g),
        O::ListCustomerAuthorizations | O::ListOwnAuthorizations => {
            json::<authorizations::AuthorizationList>(200, g)
        }
        O::ApproveAuthorization | O::RejectAuthorization | O::RevokeAuthorization => {
            json::<authorizations::AuthorizationView>(200, g)
        }
        O::ListPartnerActivity => json::<authorizations::ActivityList>(200, g),
        O::ListCustomerOrders | O::ListOwnOrders => json::<orders::OrderPage>(200, g),
        O::ShowCustomerOrderDetails => json::<orders::OrderDetails>(200, g),
        O::ListPriceAdjustments => json::<orders::AdjustmentPage>(200, g),
        O::AdjustOrderPrice => json::<orders::PriceAdjustment>(201, g),
        O::CreateOrderExport => json::<orders::ExportCreated>(202, g),
        O::ListOrderExports => json::<orders::ExportPage>(200, g),
        O::ShowOrderExport => json::<orders::ExportView>(200, g),
        O::DownloadOrderExport => Some(Success::Csv),
        O::ListCustomerOnDemandResources => json::<resources::OnDemandPage>(200, g),
        O::ListPayPerUseCustomerResources => json::<resources::SubscriptionPage>(200, g),
        O::PlaceOrder => json::<customer_self::Placed>(201, g),
        O::ListOwnResources => json::<customer_self::ResourcePage>(200, g),
        O::OperateResource => json::<resources::OwnResource>(200, g),
        O::CreateSession | O::ListSessions | O::EndSession | O::IssueToken => None,
    }
}
