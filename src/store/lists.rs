//! How every list of the domain store runs: the request's own filters, the
//! items the assertion allows (a filter from the policies, or the ids the
//! gateway decided one by one), one sort key, then the total and one page.
//! Because the allowed items are part of the query, the total is exact and
//! pages are stable.

use super::filter_sql;
use super::query::{Bind, Where};
use super::{StoreError, StoreResult};
use crate::catalog::fields::Paging;
use crate::filter::{Filter, ListScope};
use crate::refs::EntityType;
use sqlx::any::AnyRow;
use sqlx::AnyPool;

/// One list query.
pub(crate) struct List<'a> {
    /// The type of the listed items, aliased `alias` in `from`.
    pub item: EntityType,
    pub alias: &'static str,
    /// `FROM ...` with its joins.
    pub from: &'a str,
    /// The columns read, e.g. `c.*`.
    pub columns: &'a str,
    /// The request's own filters.
    pub filters: Where,
    /// `ORDER BY ...`, ending with the item's id so that pages are stable.
    pub order_by: &'a str,
}

/// One page of a list, and how many items the list holds in all.
#[derive(Debug)]
pub struct Page<T> {
    pub total: i64,
    pub items: Vec<T>,
}

/// What a list under an assertion's scope gives: a page of items, or the
/// candidates the gateway asked for to decide them one by one.
#[derive(Debug)]
pub enum Listed<T> {
    Page(Page<T>),
    /// The ids of the items a superset filter matches, in the list's order.
    Candidates(Vec<String>),
}

/// `filter` as an SQL condition on `alias`, added to `w`. The gateway checks
/// that every filter it sends has an SQL form, so a failure here is ours.
pub(crate) fn restrict(
    w: &mut Where,
    filter: &Filter,
    item: EntityType,
    alias: &str,
) -> StoreResult<()> {
    let cond = filter_sql::condition(filter, item, alias, w)
        .map_err(|e| StoreError::Corrupt(format!("a list filter has no SQL form: {e}")))?;
    w.raw(cond);
    Ok(())
}

impl List<'_> {
    /// Runs the list under `scope`: one page (`None`: every item) and the
    /// total, each row read by `read`.
    pub async fn run<T>(
        mut self,
        pool: &AnyPool,
        scope: &ListScope,
        paging: Option<Paging>,
        read: impl Fn(&AnyRow) -> StoreResult<T>,
    ) -> StoreResult<Listed<T>> {
        let alias = self.alias;
        let select = format!("SELECT {} {}", self.columns, self.from);
        let (total, rows) = match scope {
            ListScope::Filter(filter) => {
                restrict(&mut self.filters, filter, self.item, alias)?;
                let total = self.filters.count(pool, self.from).await?;
                let rows = self
                    .filters
                    .fetch(pool, &select, self.order_by, paging)
                    .await?;
                (total, rows)
            }
            ListScope::Candidates(filter) => {
                restrict(&mut self.filters, filter, self.item, alias)?;
                let select = format!("SELECT {alias}.id AS id {}", self.from);
                let rows = self
                    .filters
                    .fetch(pool, &select, self.order_by, None)
                    .await?;
                let ids = rows
                    .iter()
                    .map(|r| super::row::get(r, "id"))
                    .collect::<StoreResult<_>>()?;
                return Ok(Listed::Candidates(ids));
            }
            ListScope::Decided { ids, total } => {
                // Exactly the items the gateway decided (one page of them).
                self.filters
                    .is_in(&format!("{alias}.id"), ids.iter().cloned().map(Bind::Text));
                let rows = self
                    .filters
                    .fetch(pool, &select, self.order_by, None)
                    .await?;
                (i64::try_from(*total).unwrap_or(i64::MAX), rows)
            }
        };
        let items = rows.iter().map(read).collect::<StoreResult<_>>()?;
        Ok(Listed::Page(Page { total, items }))
    }
}
