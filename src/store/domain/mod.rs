//! The domain store's data: every query the partner API's handlers
//! (`crate::domain`) make, one function per question or change, taking typed
//! inputs and returning the model's types. The rules about the data itself
//! (state machines, one live authorization, guarded updates) hold here, in
//! the transaction that writes; a change that a rule refuses comes back as a
//! typed outcome for the handler to answer. Who may do what is never decided
//! here: lists run under the scope the gateway's assertion names.

mod activities;
mod authorizations;
mod budgets;
mod customers;
mod exports;
mod freeze;
mod orders;
mod resellers;
mod resources;

pub use super::lists::{Listed, Page};
pub use activities::{Activity, NewActivity};
pub use authorizations::{AuthorizationChange, Decided, NewAuthorization, Requested};
pub use budgets::{BudgetRecord, BudgetRecordQuery, BudgetUpdate};
pub use customers::{CustomerFigures, CustomerQuery, FiguresWindow};
pub use exports::{ExportRecord, NewExport, STALE_EXPORT_MINUTES};
pub use freeze::{FreezeOutcome, FreezeRequest, Refusal};
pub use orders::{
    AdjustOutcome, Adjustment, NewAdjustment, NewOrder, NewResource, OrderQuery, OrderSummary,
    Placement,
};
pub use resellers::{GrantsChange, GrantsOutcome, ResellerGrants, ResellerQuery};
pub use resources::{Guarded, ResourceQuery, ResourceView};

use super::query::Where;
use super::StoreResult;
use crate::catalog::fields::Paging;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

/// The rows of `select` (over `from`) under `w`, in `order_by` order: one
/// page, and the total.
async fn page<T>(
    pool: &AnyPool,
    w: Where,
    (from, select, order_by): (&str, &str, &str),
    paging: Paging,
    read: impl Fn(&AnyRow) -> StoreResult<T>,
) -> StoreResult<Page<T>> {
    let total = w.count(pool, from).await?;
    let rows = w.fetch(pool, select, order_by, Some(paging)).await?;
    let items = rows.iter().map(read).collect::<StoreResult<_>>()?;
    Ok(Page { total, items })
}

/// Takes the lock on customer `id`'s row until the transaction ends (a no-op
/// write: a row lock on PostgreSQL, the write lock on SQLite), so that
/// changes to one customer are serialised. Harmless for unknown ids.
async fn lock_customer(conn: &mut AnyConnection, id: &str) -> StoreResult<()> {
    sqlx::query("UPDATE customers SET frozen = frozen WHERE id = $1")
        .bind(id.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
