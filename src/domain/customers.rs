//! The customer list (ListSubCustomers) and the customer overview extension.
//!
//! **Contact masking.** The customer's name (`customer`), `email` and
//! `telephone` are masked in every answer unless the assertion asks for them
//! in clear (`reveal`); the gateway then masks again, customer by customer,
//! every field whose `RevealContact` (R2) the policies deny, and audits each
//! reveal. Masks keep just enough to recognise a known value:
//! name `N***` (first character), email `i***@nova-retail.example` (first
//! character of the local part, domain in clear), phone `+1-555-****` (the
//! last four digits hidden). `account_name` (the login name, also the search
//! key) is never masked.
//!
//! **Filters** (ListSubCustomers): `account_name`, `customer` and `label` are
//! case-insensitive substring matches (`%` and `_` literal); `customer_id`
//! exact; `association_type` `"1"` or `"3"`; `associated_on_begin`/`_end`
//! inclusive; `indirect_partner_id` narrows the list to that reseller's own
//! customers. Empty strings and `null` mean "no filter". The list holds only
//! the customers the assertion allows (ViewCustomer per customer), and
//! `customer`, a search by the masked name, matches only customers whose name
//! the caller may reveal (the assertion's `searchable`). Order: most recently
//! associated first, then by id. `count` counts every match, across pages.
//!
//! **Overview** (`GET /v2/partners/sub-customers/{customer_id}/overview`),
//! computed at request time (UTC):
//! - `budget`: type, amount, used, `usage_percentage` (used / amount × 100,
//!   two places); `null` without a budget.
//! - `coupons_expiring`: available coupons with `now < expire_at ≤ now + 7 days`
//!   (count and remaining balance).
//! - `orders`: `unpaid_count` and `total_count`. Unpaid means what it means
//!   for price adjustment (see [`super::orders`]): status 6 (pending payment)
//!   or 1 (pending approval) without a payment time. Pending approval counts
//!   because such an order is not paid either and will come up for payment
//!   once approved; cancelled (4) and completed (5) orders never count.
//! - `resources_expiring`: resources not closed or expired whose `expire_at`
//!   falls in `(now, now + N days]` for N = 7, 15, 30 (cumulative counts).
//! - `expenditure`: `month_to_date` (from the first of this month to now),
//!   `last_month` (the whole previous calendar month), `change_amount`
//!   (month-to-date − last month) and `change_percentage` (change / last month
//!   × 100, two places; `null` when last month is zero).
//!
//! The gateway decided on the customer; an id that vanished meanwhile gets
//! 403 CBC.0151, as an unknown one does at the gateway.

use super::extract::Served;
use super::lists::page_or_answer;
use super::wire;
use super::DomainState;
use crate::api_error::ApiError;
use crate::catalog::contact::{mask_email, mask_name, mask_phone};
use crate::catalog::{ListSubCustomers, ShowCustomerOverview};
use crate::model::{BudgetType, Customer};
use crate::store::domain::{CustomerQuery, FiguresWindow};
use crate::time::{self, Timestamp};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Datelike, TimeZone, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use schemars::JsonSchema;
use serde::Serialize;

#[derive(Debug, Serialize, JsonSchema)]
struct AccountManager {
    account_name: String,
}

/// CustomerInformation, field for field (fields we hold no data for are `null`).
#[derive(Debug, Serialize, JsonSchema)]
struct CustomerInformation {
    customer: String,
    account_name: String,
    customer_id: String,
    #[serde(serialize_with = "wire::time")]
    #[schemars(with = "String")]
    associated_on: Timestamp,
    association_type: &'static str,
    label: String,
    telephone: Option<String>,
    verified_status: Option<String>,
    country_code: Option<String>,
    customer_type: Option<i64>,
    is_frozen: i64,
    account_managers: Vec<AccountManager>,
    xaccount_id: Option<String>,
    xaccount_type: Option<String>,
    customer_level: Option<String>,
    email: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct ListSubCustomersResponse {
    customer_infos: Vec<CustomerInformation>,
    count: i64,
}

fn customer_info(c: Customer, reveal: bool) -> CustomerInformation {
    CustomerInformation {
        customer: if reveal { c.name } else { mask_name(&c.name) },
        account_name: c.account_name,
        customer_id: c.id.0,
        associated_on: c.associated_on,
        association_type: c.association.wire_value(),
        label: c.labels.join(","),
        telephone: c.phone.map(|p| if reveal { p } else { mask_phone(&p) }),
        verified_status: None,
        country_code: None,
        customer_type: None,
        is_frozen: i64::from(c.frozen),
        account_managers: c
            .account_manager
            .into_iter()
            .map(|m| AccountManager { account_name: m.0 })
            .collect(),
        xaccount_id: None,
        xaccount_type: None,
        customer_level: None,
        email: c.email.map(|e| if reveal { e } else { mask_email(&e) }),
    }
}

/// ListSubCustomers: `POST /v2/partners/sub-customers/query`.
pub(super) async fn list(
    state: &DomainState,
    served: &Served,
    req: ListSubCustomers,
) -> Result<Response, ApiError> {
    let q = CustomerQuery {
        account_name: req.account_name.as_deref(),
        // The masked name matches only where the caller may reveal it (R2).
        name: req.customer.as_deref().map(|v| (v, &served.searchable)),
        label: req.label.as_deref(),
        id: req.customer_id.as_deref(),
        association: req.association,
        associated_on: (req.associated_on.begin, req.associated_on.end),
        reseller: req.indirect_partner_id.as_deref(),
    };
    let listed = state
        .store
        .list_customers(&q, &served.list, req.paging)
        .await?;
    let (count, customers) = page_or_answer!(listed);
    Ok(Json(ListSubCustomersResponse {
        customer_infos: customers
            .into_iter()
            .map(|c| customer_info(c, served.reveal))
            .collect(),
        count,
    })
    .into_response())
}

#[derive(Debug, Serialize, JsonSchema)]
struct BudgetUsage {
    budget_type: BudgetType,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    budget_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    used_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    usage_percentage: Decimal,
}

#[derive(Debug, Serialize, JsonSchema)]
struct CouponsExpiring {
    days: i64,
    count: i64,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    balance: Decimal,
}

#[derive(Debug, Serialize, JsonSchema)]
struct OrderCounts {
    unpaid_count: i64,
    total_count: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ResourcesExpiring {
    within_7_days: i64,
    within_15_days: i64,
    within_30_days: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Expenditure {
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    month_to_date: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    last_month: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    change_amount: Decimal,
    #[serde(serialize_with = "wire::opt_money")]
    #[schemars(with = "Option<f64>")]
    change_percentage: Option<Decimal>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Overview {
    customer_id: String,
    #[serde(serialize_with = "wire::time")]
    #[schemars(with = "String")]
    as_of: Timestamp,
    measure_id: i64,
    currency: &'static str,
    budget: Option<BudgetUsage>,
    coupons_expiring: CouponsExpiring,
    orders: OrderCounts,
    resources_expiring: ResourcesExpiring,
    expenditure: Expenditure,
}

/// `part / whole × 100`, two places (half away from zero); `None` for a zero whole.
pub fn percentage(part: Decimal, whole: Decimal) -> Option<Decimal> {
    if whole.is_zero() {
        return None;
    }
    Some(
        (part * Decimal::ONE_HUNDRED / whole)
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
    )
}

/// The first instant of the month containing `t`, and of the month before.
fn month_starts(t: Timestamp) -> (Timestamp, Timestamp) {
    let this = Utc
        .with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists");
    let (y, m) = if t.month() == 1 {
        (t.year() - 1, 12)
    } else {
        (t.year(), t.month() - 1)
    };
    let last = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists");
    (this, last)
}

/// The overview counts the coupons expiring within this many days.
const COUPON_DAYS: i64 = 7;

/// `GET /v2/partners/sub-customers/{customer_id}/overview`.
pub(super) async fn overview(
    state: &DomainState,
    req: ShowCustomerOverview,
) -> Result<Response, ApiError> {
    let customer_id = req.customer_id;
    let id = customer_id.as_str().into();
    if state.store.customer(&id).await?.is_none() {
        return Err(ApiError::denied());
    }
    let now = time::now();
    let budget = state.store.budget(&id).await?.map(|b| BudgetUsage {
        budget_type: b.budget_type,
        budget_amount: b.amount,
        used_amount: b.used,
        usage_percentage: percentage(b.used, b.amount).unwrap_or_default(),
    });
    let (this_month, last_month) = month_starts(now);
    let figures = state
        .store
        .customer_figures(
            &id,
            FiguresWindow {
                now,
                this_month,
                last_month,
                coupon_days: COUPON_DAYS,
            },
        )
        .await?;
    let [within_7_days, within_15_days, within_30_days] = figures.resources_expiring;
    let (month_to_date, last) = (figures.spent_this_month, figures.spent_last_month);
    Ok(Json(Overview {
        customer_id,
        as_of: now,
        measure_id: wire::MEASURE_ID,
        currency: wire::CURRENCY,
        budget,
        coupons_expiring: CouponsExpiring {
            days: COUPON_DAYS,
            count: figures.coupons_expiring,
            balance: figures.coupon_balance,
        },
        orders: OrderCounts {
            unpaid_count: figures.unpaid_orders,
            total_count: figures.orders,
        },
        resources_expiring: ResourcesExpiring {
            within_7_days,
            within_15_days,
            within_30_days,
        },
        expenditure: Expenditure {
            month_to_date,
            last_month: last,
            change_amount: month_to_date - last,
            change_percentage: percentage(month_to_date - last, last),
        },
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_exact_to_two_places() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(percentage(d("250.40"), d("1000.00")), Some(d("25.04")));
        assert_eq!(percentage(d("-154.80"), d("405.20")), Some(d("-38.20")));
        assert_eq!(percentage(d("1"), d("3")), Some(d("33.33")));
        assert_eq!(percentage(d("1"), d("0")), None);
    }

    #[test]
    fn month_starts_wrap_the_year() {
        let t = time::parse("2026-01-15T10:00:00Z").unwrap();
        let (this, last) = month_starts(t);
        assert_eq!(time::format(this), "2026-01-01T00:00:00Z");
        assert_eq!(time::format(last), "2025-12-01T00:00:00Z");
    }
}
