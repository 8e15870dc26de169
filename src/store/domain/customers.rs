//! Customers: the partner's customer list and the figures of one customer's
//! overview.

use super::super::lists::{restrict, List};
use super::super::query::{Bind, Where};
use super::super::read::customer_from_row;
use super::super::{Store, StoreResult};
use super::Listed;
use crate::catalog::fields::Paging;
use crate::filter::{Filter, ListScope};
use crate::ids::CustomerId;
use crate::model::{Association, Customer, UNPAID_ORDER_STATUSES};
use crate::money::from_cents;
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use chrono::Duration;
use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::Row;

/// A customer list's own filters (each optional).
#[derive(Debug, Default)]
pub struct CustomerQuery<'a> {
    /// A substring of the account name, any case.
    pub account_name: Option<&'a str>,
    /// A substring of the name, any case, matched only among the customers
    /// `searchable` allows (whose names the caller may see unmasked).
    pub name: Option<(&'a str, &'a Filter)>,
    /// A substring of the labels, any case.
    pub label: Option<&'a str>,
    pub id: Option<&'a str>,
    pub association: Option<Association>,
    /// Inclusive bounds of the association time.
    pub associated_on: (Option<Timestamp>, Option<Timestamp>),
    /// The customers of this reseller only.
    pub reseller: Option<&'a str>,
}

/// The figures of a customer's overview at one instant.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CustomerFigures {
    /// Available coupons expiring within the window's coupon days, and their balance.
    pub coupons_expiring: i64,
    pub coupon_balance: Decimal,
    pub orders: i64,
    pub unpaid_orders: i64,
    /// Live resources expiring within 7, 15 and 30 days.
    pub resources_expiring: [i64; 3],
    pub spent_this_month: Decimal,
    pub spent_last_month: Decimal,
}

/// When the figures are taken.
#[derive(Clone, Copy, Debug)]
pub struct FiguresWindow {
    pub now: Timestamp,
    /// The first instants of this month and of the month before.
    pub this_month: Timestamp,
    pub last_month: Timestamp,
    /// Coupons expiring within this many days count.
    pub coupon_days: i64,
}

impl Store {
    /// The customers matching `q` under `scope`, newest association first.
    pub async fn list_customers(
        &self,
        q: &CustomerQuery<'_>,
        scope: &ListScope,
        paging: Paging,
    ) -> StoreResult<Listed<Customer>> {
        let mut f = Where::new();
        if let Some(v) = q.account_name {
            f.contains("c.account_name", v);
        }
        if let Some((v, searchable)) = q.name {
            restrict(&mut f, searchable, EntityType::Customer, "c")?;
            f.contains("c.name", v);
        }
        if let Some(v) = q.label {
            f.contains("c.labels", v);
        }
        if let Some(v) = q.id {
            f.eq("c.id", Bind::Text(v.to_owned()));
        }
        if let Some(a) = q.association {
            f.eq("c.association", Bind::Text(a.as_str().to_owned()));
        }
        f.between("c.associated_on", q.associated_on.0, q.associated_on.1);
        if let Some(reseller) = q.reseller {
            f.eq("c.partner_id", Bind::Text(reseller.to_owned()));
        }
        List {
            item: EntityType::Customer,
            alias: "c",
            from: "FROM customers c",
            columns: "c.*",
            filters: f,
            order_by: "ORDER BY c.associated_on DESC, c.id",
        }
        .run(self.pool(), scope, Some(paging), customer_from_row)
        .await
    }

    /// The overview figures of customer `id` in `window`.
    pub async fn customer_figures(
        &self,
        id: &CustomerId,
        window: FiguresWindow,
    ) -> StoreResult<CustomerFigures> {
        let pool = self.pool();
        let id = id.as_str().to_owned();
        let now = window.now;
        let at = |days: i64| time::format(now + Duration::days(days));
        let now_text = time::format(now);

        let coupons = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(SUM(balance_cents) AS BIGINT) AS balance FROM coupons
             WHERE customer_id = $1 AND status = 'available' AND expire_at > $2 AND expire_at <= $3",
        )
        .bind(id.clone())
        .bind(now_text.clone())
        .bind(at(window.coupon_days))
        .fetch_one(pool)
        .await?;

        // Destructured so that a change to the set cannot silently leave one out.
        let [unpaid_a, unpaid_b] = UNPAID_ORDER_STATUSES;
        let orders = sqlx::query(
            "SELECT COUNT(*) AS total,
                    CAST(SUM(CASE WHEN status IN ($2, $3) AND payment_time IS NULL THEN 1 ELSE 0 END)
                         AS BIGINT) AS unpaid
             FROM orders WHERE customer_id = $1",
        )
        .bind(id.clone())
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
        .bind(id.clone())
        .bind(now_text.clone())
        .bind(at(7))
        .bind(at(15))
        .bind(at(30))
        .fetch_one(pool)
        .await?;

        let spent = sqlx::query(
            "SELECT CAST(SUM(CASE WHEN spent_on >= $2 THEN amount_cents ELSE 0 END) AS BIGINT) AS mtd,
                    CAST(SUM(CASE WHEN spent_on < $2 THEN amount_cents ELSE 0 END) AS BIGINT) AS last
             FROM expenditures WHERE customer_id = $1 AND spent_on >= $3 AND spent_on <= $4",
        )
        .bind(id)
        .bind(time::format(window.this_month))
        .bind(time::format(window.last_month))
        .bind(now_text)
        .fetch_one(pool)
        .await?;

        // A sum over no rows is NULL.
        let count = |row: &AnyRow, col: &str| -> StoreResult<i64> {
            Ok(row.try_get::<Option<i64>, _>(col)?.unwrap_or(0))
        };
        let cents = |row: &AnyRow, col: &str| count(row, col).map(from_cents);
        Ok(CustomerFigures {
            coupons_expiring: count(&coupons, "n")?,
            coupon_balance: cents(&coupons, "balance")?,
            orders: count(&orders, "total")?,
            unpaid_orders: count(&orders, "unpaid")?,
            resources_expiring: [
                count(&resources, "d7")?,
                count(&resources, "d15")?,
                count(&resources, "d30")?,
            ],
            spent_this_month: cents(&spent, "mtd")?,
            spent_last_month: cents(&spent, "last")?,
        })
    }
}
