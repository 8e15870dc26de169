//! Resellers: a distributor's reseller list and the grants it delegates to
//! each, with the last change of them.

use super::super::lists::List;
use super::super::query::{Bind, Where};
use super::super::read::partner_from_row;
use super::super::row::{get, opt_ts, ts};
use super::super::{Store, StoreResult};
use super::Listed;
use crate::catalog::fields::Paging;
use crate::filter::ListScope;
use crate::model::{Grants, Partner, PartnerKind};
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use sqlx::any::AnyRow;

/// A reseller's filters (each optional).
#[derive(Debug, Default)]
pub struct ResellerQuery<'a> {
    /// A substring of the reseller's id (its account name), any case.
    pub account_name: Option<&'a str>,
    pub id: Option<&'a str>,
    /// Inclusive bounds of when the reseller was associated.
    pub associated_on: (Option<Timestamp>, Option<Timestamp>),
}

/// A reseller with its grants and their last change.
#[derive(Debug)]
pub struct ResellerGrants {
    pub partner: Partner,
    pub associated_on: Timestamp,
    pub updated_at: Option<Timestamp>,
    /// The operator of the last change.
    pub updated_by: Option<String>,
}

/// New grants for a reseller, and who sets them.
#[derive(Debug)]
pub struct GrantsChange<'a> {
    pub reseller: &'a str,
    pub grants: &'a Grants,
    pub operator: Option<&'a str>,
}

/// What reading or changing a reseller's grants found.
#[derive(Debug)]
pub enum GrantsOutcome {
    Reseller(ResellerGrants),
    /// No such partner (it may have vanished since the gateway decided).
    Unknown,
    /// The partner is no reseller: only resellers hold grants.
    NotAReseller,
}

/// Partners with their last grant change.
const RESELLER_FROM: &str = "FROM partners p
     LEFT JOIN grant_records g ON g.id = (
         SELECT MAX(g2.id) FROM grant_records g2 WHERE g2.partner_id = p.id)";
const RESELLER_COLUMNS: &str =
    "p.*, g.created_at AS grants_updated_at, g.operator_id AS grants_updated_by";

fn reseller_from_row(row: &AnyRow) -> StoreResult<ResellerGrants> {
    Ok(ResellerGrants {
        partner: partner_from_row(row)?,
        associated_on: ts(row, "created_at")?,
        updated_at: opt_ts(row, "grants_updated_at")?,
        updated_by: get(row, "grants_updated_by")?,
    })
}

/// Partner `id` with its grants, on any executor (a transaction reads what
/// it just wrote).
async fn reseller<'c, E>(exec: E, id: &str) -> StoreResult<GrantsOutcome>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql = format!("SELECT {RESELLER_COLUMNS} {RESELLER_FROM} WHERE p.id = $1");
    let Some(row) = sqlx::query(&sql)
        .bind(id.to_owned())
        .fetch_optional(exec)
        .await?
    else {
        return Ok(GrantsOutcome::Unknown);
    };
    let found = reseller_from_row(&row)?;
    Ok(if found.partner.kind == PartnerKind::Reseller {
        GrantsOutcome::Reseller(found)
    } else {
        GrantsOutcome::NotAReseller
    })
}

impl Store {
    /// The resellers matching `q` under `scope`, by id.
    pub async fn list_resellers(
        &self,
        q: &ResellerQuery<'_>,
        scope: &ListScope,
        paging: Paging,
    ) -> StoreResult<Listed<ResellerGrants>> {
        let mut f = Where::new();
        f.eq(
            "p.kind",
            Bind::Text(PartnerKind::Reseller.as_str().to_owned()),
        );
        if let Some(v) = q.account_name {
            f.contains("p.id", v);
        }
        if let Some(v) = q.id {
            f.eq("p.id", Bind::Text(v.to_owned()));
        }
        f.between("p.created_at", q.associated_on.0, q.associated_on.1);
        List {
            item: EntityType::Partner,
            alias: "p",
            from: RESELLER_FROM,
            columns: RESELLER_COLUMNS,
            filters: f,
            order_by: "ORDER BY p.id",
        }
        .run(self.pool(), scope, Some(paging), reseller_from_row)
        .await
    }

    /// Reseller `id` with its grants.
    pub async fn reseller_grants(&self, id: &str) -> StoreResult<GrantsOutcome> {
        reseller(self.pool(), id).await
    }

    /// Replaces a reseller's grants and records the change, in one
    /// transaction; a partner that is no reseller is left as it was.
    pub async fn set_grants(&self, c: &GrantsChange<'_>) -> StoreResult<GrantsOutcome> {
        let cents = |q: Option<rust_decimal::Decimal>| {
            q.map(crate::money::to_cents)
                .transpose()
                .map_err(|e| super::super::StoreError::Corrupt(format!("quota: {e}")))
        };
        let g = c.grants;
        let monthly = cents(g.monthly_quota)?;
        let one_time = cents(g.one_time_quota)?;
        let now = time::format(time::now());
        let mut tx = self.pool().begin().await?;
        // Writing first takes SQLite's write lock at once.
        let updated = sqlx::query(
            "UPDATE partners SET grant_budget = $2, grant_freeze = $3, grant_on_behalf = $4,
                monthly_quota_cents = $5, one_time_quota_cents = $6
             WHERE id = $1 AND kind = $7",
        )
        .bind(c.reseller.to_owned())
        .bind(g.budget)
        .bind(g.freeze)
        .bind(g.on_behalf)
        .bind(monthly)
        .bind(one_time)
        .bind(PartnerKind::Reseller.as_str())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            // Tells a vanished partner from one that is not a reseller.
            return reseller(&mut *tx, c.reseller).await;
        }
        sqlx::query(
            "INSERT INTO grant_records (partner_id, operator_id, grant_budget, grant_freeze,
                grant_on_behalf, monthly_quota_cents, one_time_quota_cents, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(c.reseller.to_owned())
        .bind(c.operator.map(str::to_owned))
        .bind(g.budget)
        .bind(g.freeze)
        .bind(g.on_behalf)
        .bind(monthly)
        .bind(one_time)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let outcome = reseller(&mut *tx, c.reseller).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}
