//! Orders: lists, details and line items, price adjustments, and the
//! orders (with their resources) a customer places.

use super::super::lists::List;
use super::super::query::{bind_all, Bind, Where};
use super::super::read::{line_item_from_row, order_from_row};
use super::super::row::{get, money, ts};
use super::super::{Store, StoreError, StoreResult};
use super::activities::{self, NewActivity};
use super::{Listed, Page};
use crate::catalog::fields::Paging;
use crate::catalog::{OrderBy, Period};
use crate::filter::ListScope;
use crate::model::{Charging, Order, OrderLineItem, ResourceStatus};
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use rust_decimal::Decimal;
use sqlx::any::AnyRow;

/// An order with what its views need besides the order itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderSummary {
    pub order: Order,
    /// Its customer's account name.
    pub account_name: String,
    /// Whether its price was adjusted.
    pub adjusted: bool,
}

/// An order list's filters (each optional).
#[derive(Debug)]
pub struct OrderQuery<'a> {
    /// Match nothing (orders of enterprise sub-accounts, which the store does not keep).
    pub nothing: bool,
    pub customer: Option<&'a str>,
    /// The orders of this reseller's own customers.
    pub reseller: Option<&'a str>,
    pub id: Option<&'a str>,
    pub service_type_code: Option<&'a str>,
    pub status: Option<i64>,
    pub order_type: Option<i64>,
    /// Inclusive bounds of the creation and payment times.
    pub created: (Option<Timestamp>, Option<Timestamp>),
    pub paid: (Option<Timestamp>, Option<Timestamp>),
    pub order_by: OrderBy,
}

impl Default for OrderQuery<'_> {
    fn default() -> Self {
        OrderQuery {
            nothing: false,
            customer: None,
            reseller: None,
            id: None,
            service_type_code: None,
            status: None,
            order_type: None,
            created: (None, None),
            paid: (None, None),
            order_by: OrderBy::CreateTimeDesc,
        }
    }
}

/// One price adjustment of an order.
#[derive(Debug)]
pub struct Adjustment {
    pub id: i64,
    pub order_id: String,
    pub before: Decimal,
    pub after: Decimal,
    pub reason: String,
    pub operator_id: Option<String>,
    pub operator_name: Option<String>,
    pub at: Timestamp,
}

/// A price adjustment to make, and who makes it.
#[derive(Debug)]
pub struct NewAdjustment<'a> {
    pub order_id: &'a str,
    /// The new amount in cents (the handler converts, naming the field).
    pub amount_cents: i64,
    pub reason: &'a str,
    pub operator: Option<&'a str>,
}

/// What a price adjustment did.
#[derive(Debug)]
pub enum AdjustOutcome {
    /// Adjusted: the order as it was before, and the record.
    Done(OrderSummary, Adjustment),
    /// No such order (it may have vanished since the gateway decided).
    Unknown,
    /// Only unpaid orders can be adjusted ([`Order::unpaid`]).
    NotUnpaid(OrderSummary),
    /// The new amount is above the order's list price.
    AboveOfficial(OrderSummary),
    /// The order changed while it was being adjusted.
    Changed(OrderSummary),
}

/// An order a customer places: one line item for one product and period.
#[derive(Debug)]
pub struct NewOrder<'a> {
    pub id: &'a str,
    pub status: i64,
    pub order_type: i64,
    pub source_type: i64,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub period: Period,
}

/// The resource an order (or a pay-per-use purchase) creates.
#[derive(Debug)]
pub struct NewResource<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub charging: Charging,
    pub status: ResourceStatus,
    pub expire_at: Option<Timestamp>,
}

/// A purchase: the order (none for pay-per-use), its resource, and the
/// session's activity record, written together.
#[derive(Debug)]
pub struct Placement<'a> {
    pub customer: &'a str,
    pub service_type_code: &'a str,
    pub product_id: &'a str,
    pub order: Option<NewOrder<'a>>,
    pub resource: NewResource<'a>,
    /// The session that places it, and its operator.
    pub session: Option<&'a str>,
    pub source_operator: Option<&'a str>,
    pub activity: Option<NewActivity<'a>>,
    pub at: Timestamp,
}

/// Orders (`o`) with their customers (`c`), as order queries read them.
const ORDERS_FROM: &str = "FROM orders o JOIN customers c ON c.id = o.customer_id";

/// An order's columns (over [`ORDERS_FROM`]) with its customer's account
/// name and its price-adjustment count.
const ORDER_COLUMNS: &str = "o.*, c.account_name AS account_name,
        (SELECT COUNT(*) FROM price_adjustments p WHERE p.order_id = o.id) AS adjustments";

fn summary_from_row(row: &AnyRow) -> StoreResult<OrderSummary> {
    Ok(OrderSummary {
        order: order_from_row(row)?,
        account_name: get(row, "account_name")?,
        adjusted: get::<i64>(row, "adjustments")? > 0,
    })
}

/// The orders with these ids, on any executor.
async fn summaries<'c, E>(exec: E, ids: &[String]) -> StoreResult<Vec<OrderSummary>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let mut w = Where::new();
    w.is_in("o.id", ids.iter().cloned().map(Bind::Text));
    let sql = format!("SELECT {ORDER_COLUMNS} {ORDERS_FROM}{}", w.sql());
    bind_all(sqlx::query(&sql), w.binds())
        .fetch_all(exec)
        .await?
        .iter()
        .map(summary_from_row)
        .collect()
}

/// The `ORDER BY` of `order_by` (ending with the id: pages are stable).
fn order_by_sql(order_by: OrderBy) -> &'static str {
    match order_by {
        OrderBy::CreateTimeAsc => "ORDER BY o.created_at ASC, o.id ASC",
        OrderBy::CreateTimeDesc => "ORDER BY o.created_at DESC, o.id DESC",
    }
}

/// Orders read per query when many are read by id.
const CHUNK: usize = 500;

impl Store {
    /// The orders matching `q` under `scope`: one page (`None`: all) and the total.
    pub async fn list_orders(
        &self,
        q: &OrderQuery<'_>,
        scope: &ListScope,
        paging: Option<Paging>,
    ) -> StoreResult<Listed<OrderSummary>> {
        let mut w = Where::new();
        if q.nothing {
            w.raw("1 = 0");
        }
        if let Some(c) = q.customer {
            w.eq("o.customer_id", Bind::Text(c.to_owned()));
        }
        if let Some(reseller) = q.reseller {
            w.eq("c.partner_id", Bind::Text(reseller.to_owned()));
        }
        if let Some(id) = q.id {
            w.eq("o.id", Bind::Text(id.to_owned()));
        }
        if let Some(code) = q.service_type_code {
            w.eq("o.service_type_code", Bind::Text(code.to_owned()));
        }
        if let Some(s) = q.status {
            w.eq("o.status", Bind::Int(s));
        }
        if let Some(t) = q.order_type {
            w.eq("o.order_type", Bind::Int(t));
        }
        w.between("o.created_at", q.created.0, q.created.1);
        w.between("o.payment_time", q.paid.0, q.paid.1);
        List {
            item: EntityType::Order,
            alias: "o",
            from: ORDERS_FROM,
            columns: ORDER_COLUMNS,
            filters: w,
            order_by: order_by_sql(q.order_by),
        }
        .run(self.pool(), scope, paging, summary_from_row)
        .await
    }

    /// Order `id`, or `None`.
    pub async fn order_summary(&self, id: &str) -> StoreResult<Option<OrderSummary>> {
        Ok(summaries(self.pool(), &[id.to_owned()]).await?.pop())
    }

    /// The orders with these ids (any order; a missing one is left out).
    pub async fn order_summaries(&self, ids: &[String]) -> StoreResult<Vec<OrderSummary>> {
        let mut all = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            all.extend(summaries(self.pool(), chunk).await?);
        }
        Ok(all)
    }

    /// Whether every order of `ids` exists.
    pub async fn orders_exist(&self, ids: &[String]) -> StoreResult<bool> {
        let mut w = Where::new();
        w.is_in("o.id", ids.iter().cloned().map(Bind::Text));
        Ok(usize::try_from(w.count(self.pool(), "FROM orders o").await?).ok() == Some(ids.len()))
    }

    /// The line items of order `id`, by id.
    pub async fn order_line_items(
        &self,
        id: &str,
        paging: Paging,
    ) -> StoreResult<Page<OrderLineItem>> {
        let mut w = Where::new();
        w.eq("order_id", Bind::Text(id.to_owned()));
        super::page(
            self.pool(),
            w,
            (
                "FROM order_line_items",
                "SELECT * FROM order_line_items",
                "ORDER BY id",
            ),
            paging,
            line_item_from_row,
        )
        .await
    }

    /// The price adjustments of order `id`, newest first.
    pub async fn price_adjustments(
        &self,
        id: &str,
        paging: Paging,
    ) -> StoreResult<Page<Adjustment>> {
        let mut w = Where::new();
        w.eq("p.order_id", Bind::Text(id.to_owned()));
        super::page(
            self.pool(),
            w,
            (
                "FROM price_adjustments p",
                "SELECT p.*, op.name AS operator_name FROM price_adjustments p
                 LEFT JOIN operators op ON op.id = p.operator_id",
                "ORDER BY p.id DESC",
            ),
            paging,
            |row| {
                Ok(Adjustment {
                    id: get(row, "id")?,
                    order_id: get(row, "order_id")?,
                    before: money(row, "amount_before_cents")?,
                    after: money(row, "amount_after_cents")?,
                    reason: get(row, "reason")?,
                    operator_id: get(row, "operator_id")?,
                    operator_name: get(row, "operator_name")?,
                    at: ts(row, "created_at")?,
                })
            },
        )
        .await
    }

    /// Adjusts an unpaid order's price, at most to its list price, and
    /// records it, in one transaction. The order's line items keep their
    /// own amounts: the adjustment applies to the order total.
    pub async fn adjust_price(&self, a: &NewAdjustment<'_>) -> StoreResult<AdjustOutcome> {
        let mut tx = self.pool().begin().await?;
        let Some(summary) = summaries(&mut *tx, &[a.order_id.to_owned()]).await?.pop() else {
            return Ok(AdjustOutcome::Unknown);
        };
        let order = &summary.order;
        if !order.unpaid() {
            return Ok(AdjustOutcome::NotUnpaid(summary));
        }
        let official = crate::money::to_cents(order.official_amount).map_err(corrupt)?;
        if a.amount_cents > official {
            return Ok(AdjustOutcome::AboveOfficial(summary));
        }
        let old_cents = crate::money::to_cents(order.amount).map_err(corrupt)?;
        let now = time::now();
        let updated = sqlx::query(
            "UPDATE orders SET amount_cents = $1
             WHERE id = $2 AND amount_cents = $3 AND status = $4 AND payment_time IS NULL",
        )
        .bind(a.amount_cents)
        .bind(order.id.as_str().to_owned())
        .bind(old_cents)
        .bind(order.status)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(AdjustOutcome::Changed(summary));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO price_adjustments (order_id, operator_id, amount_before_cents, amount_after_cents, reason, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(order.id.as_str().to_owned())
        .bind(a.operator.map(str::to_owned))
        .bind(old_cents)
        .bind(a.amount_cents)
        .bind(a.reason.to_owned())
        .bind(time::format(now))
        .fetch_one(&mut *tx)
        .await?;
        let operator_name: Option<String> = match a.operator {
            Some(op) => {
                sqlx::query_scalar("SELECT name FROM operators WHERE id = $1")
                    .bind(op.to_owned())
                    .fetch_optional(&mut *tx)
                    .await?
            }
            None => None,
        };
        tx.commit().await?;
        let adjustment = Adjustment {
            id,
            order_id: order.id.as_str().to_owned(),
            before: order.amount,
            after: crate::money::from_cents(a.amount_cents),
            reason: a.reason.to_owned(),
            operator_id: a.operator.map(str::to_owned),
            operator_name,
            at: now,
        };
        Ok(AdjustOutcome::Done(summary, adjustment))
    }

    /// Writes a purchase: its order and line item, its resource, and the
    /// session's activity record, in one transaction.
    pub async fn place_order(&self, p: &Placement<'_>) -> StoreResult<()> {
        let now = time::format(p.at);
        let mut tx = self.pool().begin().await?;
        if let Some(o) = &p.order {
            sqlx::query(
                "INSERT INTO orders (id, customer_id, status, order_type, service_type_code, source_type,
                     amount_cents, official_amount_cents, currency, created_at, payment_time, session_id, source_operator_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12)",
            )
            .bind(o.id.to_owned())
            .bind(p.customer.to_owned())
            .bind(o.status)
            .bind(o.order_type)
            .bind(p.service_type_code.to_owned())
            .bind(o.source_type)
            .bind(o.amount_cents)
            .bind(o.amount_cents)
            .bind(o.currency.to_owned())
            .bind(now.clone())
            .bind(p.session.map(str::to_owned))
            .bind(p.source_operator.map(str::to_owned))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO order_line_items (id, order_id, product_id, service_type_code, period_type, period_num,
                     subscription_num, amount_cents)
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7)",
            )
            .bind(format!("{}-1", o.id))
            .bind(o.id.to_owned())
            .bind(p.product_id.to_owned())
            .bind(p.service_type_code.to_owned())
            .bind(o.period.period_type)
            .bind(o.period.period_num)
            .bind(o.amount_cents)
            .execute(&mut *tx)
            .await?;
        }
        let r = &p.resource;
        sqlx::query(
            "INSERT INTO resources (id, customer_id, charging, service_type_code, product_id, name, status, expire_at, order_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(r.id.to_owned())
        .bind(p.customer.to_owned())
        .bind(r.charging.as_str().to_owned())
        .bind(p.service_type_code.to_owned())
        .bind(p.product_id.to_owned())
        .bind(r.name.to_owned())
        .bind(r.status.as_str().to_owned())
        .bind(r.expire_at.map(time::format))
        .bind(p.order.as_ref().map(|o| o.id.to_owned()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(activity) = &p.activity {
            activities::record(&mut tx, activity).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}
