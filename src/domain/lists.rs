//! How every list runs: the request's own filters, the items the assertion
//! allows (a filter from the policies, or the ids the gateway decided one by
//! one), one sort key, then the total and one page. Because the allowed
//! items are part of the query, `count` is exact and pages are stable.

use super::extract::Served;
use crate::api_error::ApiError;
use crate::catalog::fields::Paging;
use crate::filter::{sql, Candidates, Filter, ListScope};
use crate::refs::EntityType;
use crate::store::query::{Bind, Where};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sqlx::any::AnyRow;
use sqlx::AnyPool;

/// One list query.
pub(super) struct List<'a> {
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

/// What a list run gives its handler.
pub(super) enum Listed {
    /// The page asked for, and how many items the list holds in all.
    Page { total: i64, rows: Vec<AnyRow> },
    /// The gateway asked for candidate ids: the answer is ready.
    Answered(Response),
}

/// `filter` as an SQL condition on `alias`, added to `w`. The gateway checks
/// that every filter it sends has an SQL form, so a failure here is ours.
pub(super) fn restrict(
    w: &mut Where,
    filter: &Filter,
    item: EntityType,
    alias: &str,
) -> Result<(), ApiError> {
    let cond = sql::condition(filter, item, alias, w).map_err(|e| {
        tracing::error!(error = %e, "a list filter from the gateway has no SQL form");
        ApiError::internal()
    })?;
    w.raw(cond);
    Ok(())
}

impl List<'_> {
    /// Runs the list under the assertion's scope: one page (`None`: every
    /// item) and the total.
    pub async fn run(
        mut self,
        pool: &AnyPool,
        served: &Served,
        paging: Option<Paging>,
    ) -> Result<Listed, ApiError> {
        let alias = self.alias;
        let select = format!("SELECT {} {}", self.columns, self.from);
        match &served.list {
            ListScope::Filter(filter) => {
                restrict(&mut self.filters, filter, self.item, alias)?;
                let total = self.filters.count(pool, self.from).await?;
                let rows = self
                    .filters
                    .fetch(pool, &select, self.order_by, paging)
                    .await?;
                Ok(Listed::Page { total, rows })
            }
            ListScope::Candidates(filter) => {
                restrict(&mut self.filters, filter, self.item, alias)?;
                let select = format!("SELECT {alias}.id AS id {}", self.from);
                let rows = self
                    .filters
                    .fetch(pool, &select, self.order_by, None)
                    .await?;
                let candidates = rows
                    .iter()
                    .map(|r| super::query::text(r, "id"))
                    .collect::<Result<_, _>>()?;
                Ok(Listed::Answered(
                    Json(Candidates { candidates }).into_response(),
                ))
            }
            ListScope::Decided { ids, total } => {
                // Exactly the items the gateway decided (one page of them).
                self.filters
                    .is_in(&format!("{alias}.id"), ids.iter().cloned().map(Bind::Text));
                let rows = self
                    .filters
                    .fetch(pool, &select, self.order_by, None)
                    .await?;
                Ok(Listed::Page {
                    total: i64::try_from(*total).unwrap_or(i64::MAX),
                    rows,
                })
            }
        }
    }
}

/// Unwraps a [`Listed`] in a handler: the page, or the ready answer.
macro_rules! page_or_answer {
    ($listed:expr) => {
        match $listed {
            $crate::domain::lists::Listed::Page { total, rows } => (total, rows),
            $crate::domain::lists::Listed::Answered(response) => return Ok(response),
        }
    };
}
pub(super) use page_or_answer;
