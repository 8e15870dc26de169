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
use super::lists::{page_or_answer, restrict, List};
use super::orders::UNPAID_STATUSES;
use super::query::{self, Bind, Where};
use super::wire;
use super::DomainState;
use crate::api_error::ApiError;
use crate::catalog::contact::{mask_email, mask_name, mask_phone};
use crate::catalog::{ListSubCustomers, ShowCustomerOverview};
use crate::model::{Association, BudgetType};
use crate::money::from_cents;
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Datelike, Duration, TimeZone, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Serialize)]
struct AccountManager {
    account_name: String,
}

/// CustomerInformation, field for field (fields we hold no data for are `null`).
#[derive(Debug, Serialize)]
struct CustomerInformation {
    customer: String,
    account_name: String,
    customer_id: String,
    #[serde(serialize_with = "wire::time")]
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

#[derive(Debug, Serialize)]
struct ListSubCustomersResponse {
    customer_infos: Vec<CustomerInformation>,
    count: i64,
}

fn customer_info(row: &AnyRow, reveal: bool) -> Result<CustomerInformation, ApiError> {
    let name = query::text(row, "name")?;
    let email = query::opt_text(row, "email")?;
    let phone = query::opt_text(row, "phone")?;
    let association: Association = query::parse(row, "association")?;
    let labels: Vec<String> =
        serde_json::from_str(&query::text(row, "labels")?).map_err(query::db_error)?;
    let manager = query::opt_text(row, "account_manager_id")?;
    Ok(CustomerInformation {
        customer: if reveal { name } else { mask_name(&name) },
        account_name: query::text(row, "account_name")?,
        customer_id: query::text(row, "id")?,
        associated_on: query::ts(row, "associated_on")?,
        association_type: association.wire_value(),
        label: labels.join(","),
        telephone: phone.map(|p| if reveal { p } else { mask_phone(&p) }),
        verified_status: None,
        country_code: None,
        customer_type: None,
        is_frozen: i64::from(crate::store::flag(row, "frozen")?),
        account_managers: manager
            .into_iter()
            .map(|account_name| AccountManager { account_name })
            .collect(),
        xaccount_id: None,
        xaccount_type: None,
        customer_level: None,
        email: email.map(|e| if reveal { e } else { mask_email(&e) }),
    })
}

/// ListSubCustomers: `POST /v2/partners/sub-customers/query`.
pub(super) async fn list(
    state: &DomainState,
    served: &Served,
    req: ListSubCustomers,
) -> Result<Response, ApiError> {
    let mut f = Where::new();
    if let Some(v) = &req.account_name {
        f.contains("c.account_name", v);
    }
    if let Some(v) = &req.customer {
        // The masked name matches only where the caller may reveal it (R2).
        restrict(&mut f, &served.searchable, EntityType::Customer, "c")?;
        f.contains("c.name", v);
    }
    if let Some(v) = &req.label {
        f.contains("c.labels", v);
    }
    if let Some(v) = &req.customer_id {
        f.eq("c.id", Bind::Text(v.clone()));
    }
    if let Some(a) = req.association {
        f.eq("c.association", Bind::Text(a.as_str().to_owned()));
    }
    f.between(
        "c.associated_on",
        req.associated_on.begin,
        req.associated_on.end,
    );
    if let Some(reseller) = &req.indirect_partner_id {
        f.eq("c.partner_id", Bind::Text(reseller.clone()));
    }
    let list = List {
        item: EntityType::Customer,
        alias: "c",
        from: "FROM customers c",
        columns: "c.*",
        filters: f,
        order_by: "ORDER BY c.associated_on DESC, c.id",
    };
    let (count, rows) = page_or_answer!(
        list.run(state.store.pool(), served, Some(req.paging))
            .await?
    );
    let customer_infos = rows
        .iter()
        .map(|r| customer_info(r, served.reveal))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(ListSubCustomersResponse {
        customer_infos,
        count,
    })
    .into_response())
}

#[derive(Debug, Serialize)]
struct BudgetUsage {
    budget_type: BudgetType,
    #[serde(serialize_with = "wire::money")]
    budget_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    used_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    usage_percentage: Decimal,
}

#[derive(Debug, Serialize)]
struct CouponsExpiring {
    days: i64,
    count: i64,
    #[serde(serialize_with = "wire::money")]
    balance: Decimal,
}

#[derive(Debug, Serialize)]
struct OrderCounts {
    unpaid_count: i64,
    total_count: i64,
}

#[derive(Debug, Serialize)]
struct ResourcesExpiring {
    within_7_days: i64,
    within_15_days: i64,
    within_30_days: i64,
}

#[derive(Debug, Serialize)]
struct Expenditure {
    #[serde(serialize_with = "wire::money")]
    month_to_date: Decimal,
    #[serde(serialize_with = "wire::money")]
    last_month: Decimal,
    #[serde(serialize_with = "wire::money")]
    change_amount: Decimal,
    #[serde(serialize_with = "wire::opt_money")]
    change_percentage: Option<Decimal>,
}

#[derive(Debug, Serialize)]
struct Overview {
    customer_id: String,
    #[serde(serialize_with = "wire::time")]
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

/// `GET /v2/partners/sub-customers/{customer_id}/overview`.
pub(super) async fn overview(
    state: &DomainState,
    req: ShowCustomerOverview,
) -> Result<Response, ApiError> {
    let customer_id = req.customer_id;
    let pool = state.store.pool();
    if state
        .store
        .customer(&customer_id.as_str().into())
        .await?
        .is_none()
    {
        return Err(ApiError::denied());
    }
    let now = time::now();
    let at = |days: i64| time::format(now + Duration::days(days));
    let now_text = time::format(now);

    let budget = state
        .store
        .budget(&customer_id.as_str().into())
        .await?
        .map(|b| BudgetUsage {
            budget_type: b.budget_type,
            budget_amount: b.amount,
            used_amount: b.used,
            usage_percentage: percentage(b.used, b.amount).unwrap_or_default(),
        });

    let coupons = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(SUM(balance_cents) AS BIGINT) AS balance FROM coupons
         WHERE customer_id = $1 AND status = 'available' AND expire_at > $2 AND expire_at <= $3",
    )
    .bind(customer_id.clone())
    .bind(now_text.clone())
    .bind(at(7))
    .fetch_one(pool)
    .await?;

    // Destructured so that a change to the set cannot silently leave one out.
    let [unpaid_a, unpaid_b] = UNPAID_STATUSES;
    let orders = sqlx::query(
        "SELECT COUNT(*) AS total,
                CAST(SUM(CASE WHEN status IN ($2, $3) AND payment_time IS NULL THEN 1 ELSE 0 END)
                     AS BIGINT) AS unpaid
         FROM orders WHERE customer_id = $1",
    )
    .bind(customer_id.clone())
    .bind(unpaid_a)
    .bind(unpaid_b)
    .fetch_one(pool)
    .await?;

    let resources = sqlx::query(
        "SELECT CAST(SUM(CASE WHEN expire_at <= $3 THEN 1 ELSE 0 END) AS BIGINT) AS d7,
                CAST(SUM(CASE WHEN expire_at <= $4 THEN 1 ELSE 0 END) AS BIGINT) AS d15,
                CAST(SUM(CASE WHEN expire_at <= $5 THEN 1 ELSE 0 END) AS BIGINT) AS d30
         FROM resources
         WHERE customer_id = $1 AND status NOT IN ('closed', 'expired')
           AND expire_at IS NOT NULL AND expire_at > $2",
    )
    .bind(customer_id.clone())
    .bind(now_text.clone())
    .bind(at(7))
    .bind(at(15))
    .bind(at(30))
    .fetch_one(pool)
    .await?;

    let (this_month, last_month) = month_starts(now);
    let spent = sqlx::query(
        "SELECT CAST(SUM(CASE WHEN spent_on >= $2 THEN amount_cents ELSE 0 END) AS BIGINT) AS mtd,
                CAST(SUM(CASE WHEN spent_on < $2 THEN amount_cents ELSE 0 END) AS BIGINT) AS last
         FROM expenditures WHERE customer_id = $1 AND spent_on >= $3 AND spent_on <= $4",
    )
    .bind(customer_id.clone())
    .bind(time::format(this_month))
    .bind(time::format(last_month))
    .bind(now_text)
    .fetch_one(pool)
    .await?;
    let cents = |row: &AnyRow, col: &str| -> Result<Decimal, ApiError> {
        Ok(from_cents(row.try_get::<Option<i64>, _>(col)?.unwrap_or(0)))
    };
    let count = |row: &AnyRow, col: &str| -> Result<i64, ApiError> {
        Ok(row.try_get::<Option<i64>, _>(col)?.unwrap_or(0))
    };
    let month_to_date = cents(&spent, "mtd")?;
    let last = cents(&spent, "last")?;

    Ok(Json(Overview {
        customer_id,
        as_of: now,
        measure_id: wire::MEASURE_ID,
        currency: wire::CURRENCY,
        budget,
        coupons_expiring: CouponsExpiring {
            days: 7,
            count: count(&coupons, "n")?,
            balance: cents(&coupons, "balance")?,
        },
        orders: OrderCounts {
            unpaid_count: count(&orders, "unpaid")?,
            total_count: count(&orders, "total")?,
        },
        resources_expiring: ResourcesExpiring {
            within_7_days: count(&resources, "d7")?,
            within_15_days: count(&resources, "d15")?,
            within_30_days: count(&resources, "d30")?,
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
