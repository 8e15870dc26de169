//! Budgets: the budgets of listed customers, the history of budget changes,
//! and setting a budget (which may lift the customer's freeze).

use super::super::lists::List;
use super::super::query::{Bind, Where};
use super::super::read::budget_from_row;
use super::super::row::{flag, get, money, opt_money, parse_enum, ts};
use super::super::{Store, StoreResult};
use super::freeze::{self, StateChange};
use super::{Listed, Page};
use crate::catalog::fields::Paging;
use crate::filter::ListScope;
use crate::ids::CustomerId;
use crate::model::{Budget, BudgetType};
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use rust_decimal::Decimal;

/// One change of a customer's budget, with who made it.
#[derive(Debug)]
pub struct BudgetRecord {
    pub budget_type: BudgetType,
    pub old_amount: Option<Decimal>,
    pub new_amount: Decimal,
    pub cancel_partner_frozen: bool,
    pub operator_id: Option<String>,
    pub operator_name: Option<String>,
    pub partner_id: Option<String>,
    pub partner_name: Option<String>,
    pub at: Timestamp,
}

/// Which budget records to list.
#[derive(Debug)]
pub struct BudgetRecordQuery<'a> {
    pub customer: &'a CustomerId,
    pub budget_type: Option<BudgetType>,
    /// Only deletions: the store never deletes a budget, so none.
    pub deletions_only: bool,
}

/// A budget to set, and who sets it.
#[derive(Debug)]
pub struct BudgetUpdate<'a> {
    pub customer: &'a CustomerId,
    pub budget_type: BudgetType,
    /// The amount in cents (the handler converts, naming the field).
    pub amount_cents: i64,
    /// Absent: unchanged.
    pub frozen_operate_type: Option<i64>,
    /// Also lift the customer's freeze, if frozen.
    pub cancel_partner_frozen: bool,
    pub partner: Option<&'a str>,
    pub operator: Option<&'a str>,
    /// Recorded as the reason when the freeze is lifted.
    pub unfreeze_reason: &'a str,
}

impl Store {
    /// The budgets of `customers` (of reseller `reseller` only, if given)
    /// under `scope`, by customer id.
    pub async fn list_budgets(
        &self,
        customers: &[String],
        reseller: Option<&str>,
        scope: &ListScope,
    ) -> StoreResult<Listed<Budget>> {
        let mut f = Where::new();
        f.is_in("c.id", customers.iter().cloned().map(Bind::Text));
        if let Some(reseller) = reseller {
            f.eq("c.partner_id", Bind::Text(reseller.to_owned()));
        }
        List {
            item: EntityType::Customer,
            alias: "c",
            from: "FROM budgets b JOIN customers c ON c.id = b.customer_id",
            columns: "b.*",
            filters: f,
            order_by: "ORDER BY c.id",
        }
        .run(self.pool(), scope, None, budget_from_row)
        .await
    }

    /// The budget changes `q` asks for, newest first.
    pub async fn budget_records(
        &self,
        q: &BudgetRecordQuery<'_>,
        paging: Paging,
    ) -> StoreResult<Page<BudgetRecord>> {
        let mut f = Where::new();
        f.eq("r.customer_id", Bind::Text(q.customer.as_str().to_owned()));
        if let Some(t) = q.budget_type {
            f.eq("r.budget_type", Bind::Text(t.as_str().to_owned()));
        }
        if q.deletions_only {
            f.raw("1 = 0");
        }
        super::page(
            self.pool(),
            f,
            (
                "FROM budget_records r",
                "SELECT r.*, o.name AS operator_name, p.name AS partner_name
                 FROM budget_records r
                 LEFT JOIN operators o ON o.id = r.operator_id
                 LEFT JOIN partners p ON p.id = r.partner_id",
                "ORDER BY r.created_at DESC, r.id DESC",
            ),
            paging,
            |row| {
                Ok(BudgetRecord {
                    budget_type: parse_enum(row, "budget_type")?,
                    old_amount: opt_money(row, "old_amount_cents")?,
                    new_amount: money(row, "new_amount_cents")?,
                    cancel_partner_frozen: flag(row, "cancel_partner_frozen")?,
                    operator_id: get(row, "operator_id")?,
                    operator_name: get(row, "operator_name")?,
                    partner_id: get(row, "partner_id")?,
                    partner_name: get(row, "partner_name")?,
                    at: ts(row, "created_at")?,
                })
            },
        )
        .await
    }

    /// Sets a budget (amount and type; the used amount is kept, a new budget
    /// starts at 0 used) and records the change, lifting the customer's
    /// freeze when asked, in one transaction. `false` when the customer is
    /// unknown.
    pub async fn set_budget(&self, u: &BudgetUpdate<'_>) -> StoreResult<bool> {
        let customer_id = u.customer.as_str().to_owned();
        let cents = u.amount_cents;
        let now = time::format(time::now());
        let mut tx = self.pool().begin().await?;
        let Some(frozen) = freeze::lock_and_read(&mut tx, &customer_id).await? else {
            return Ok(false);
        };
        let old: Option<i64> =
            sqlx::query_scalar("SELECT amount_cents FROM budgets WHERE customer_id = $1")
                .bind(customer_id.clone())
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO budgets (customer_id, budget_type, amount_cents, used_cents, updated_at,
                frozen_operate_type)
             VALUES ($1, $2, $3, 0, $4, $5)
             ON CONFLICT (customer_id) DO UPDATE SET budget_type = excluded.budget_type,
                amount_cents = excluded.amount_cents, updated_at = excluded.updated_at,
                frozen_operate_type = COALESCE(excluded.frozen_operate_type, budgets.frozen_operate_type)",
        )
        .bind(customer_id.clone())
        .bind(u.budget_type.as_str())
        .bind(cents)
        .bind(now.clone())
        .bind(u.frozen_operate_type)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO budget_records (customer_id, partner_id, operator_id, budget_type,
                old_amount_cents, new_amount_cents, cancel_partner_frozen, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(customer_id.clone())
        .bind(u.partner.map(str::to_owned))
        .bind(u.operator.map(str::to_owned))
        .bind(u.budget_type.as_str())
        .bind(old)
        .bind(cents)
        .bind(u.cancel_partner_frozen)
        .bind(now.clone())
        .execute(&mut *tx)
        .await?;
        if u.cancel_partner_frozen {
            if let Some(freeze_type) = frozen {
                let change = StateChange {
                    customer_id: &customer_id,
                    freeze_type,
                    reason: u.unfreeze_reason,
                    via: "budget",
                    partner: u.partner,
                    operator: u.operator,
                    now: &now,
                };
                freeze::unfreeze(&mut tx, &change).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A budget with its `frozen_operate_type` (an extension the entity
    /// model does not carry), or `None` when the customer has none.
    pub async fn budget_with_operate_type(
        &self,
        customer: &CustomerId,
    ) -> StoreResult<Option<(Budget, Option<i64>)>> {
        let row = sqlx::query("SELECT * FROM budgets WHERE customer_id = $1")
            .bind(customer.as_str().to_owned())
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| Ok((budget_from_row(&row)?, get(&row, "frozen_operate_type")?)))
            .transpose()
    }
}
