//! Freezing and unfreezing customers (and, by freeze type, their
//! resources), each change recorded in `freeze_records`.

use super::super::row::{flag, get};
use super::super::{Store, StoreResult};
use crate::model::FreezeType;
use crate::time;
use sqlx::AnyConnection;

/// A batch of customers to freeze or unfreeze, and who asks.
#[derive(Debug)]
pub struct FreezeRequest<'a> {
    /// `true` freezes, `false` unfreezes.
    pub freeze: bool,
    pub customer_ids: &'a [String],
    /// The type to freeze with, or the type an unfreeze must match.
    pub freeze_type: FreezeType,
    pub reason: &'a str,
    pub partner: Option<&'a str>,
    pub operator: Option<&'a str>,
}

/// Why one customer of a batch was left as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The customer does not exist (it may have vanished since the gateway decided).
    Unknown,
    AlreadyFrozen(FreezeType),
    NotFrozen,
    /// Frozen with another type than the unfreeze names.
    FrozenWith(FreezeType),
}

/// What a batch did: the customers it left as they were, and why.
#[derive(Debug, Default)]
pub struct FreezeOutcome {
    pub refused: Vec<(String, Refusal)>,
}

/// One recorded change of a customer's freeze state.
pub(super) struct StateChange<'a> {
    pub customer_id: &'a str,
    pub freeze_type: FreezeType,
    pub reason: &'a str,
    /// `freeze`, `unfreeze` or `budget`.
    pub via: &'static str,
    pub partner: Option<&'a str>,
    pub operator: Option<&'a str>,
    pub now: &'a str,
}

impl Store {
    /// Applies one direction to every customer of the batch in one
    /// transaction; the ones a rule refuses are left as they were.
    pub async fn change_freeze(&self, r: &FreezeRequest<'_>) -> StoreResult<FreezeOutcome> {
        let now = time::format(time::now());
        let mut tx = self.pool().begin().await?;
        // Lock every named customer up front, in one global order, so that two
        // batches naming the same customers in different orders cannot deadlock.
        let mut sorted: Vec<&String> = r.customer_ids.iter().collect();
        sorted.sort();
        for id in sorted {
            super::lock_customer(&mut tx, id).await?;
        }
        let mut outcome = FreezeOutcome::default();
        for id in r.customer_ids {
            let Some(current) = lock_and_read(&mut tx, id).await? else {
                outcome.refused.push((id.clone(), Refusal::Unknown));
                continue;
            };
            let change = StateChange {
                customer_id: id,
                freeze_type: r.freeze_type,
                reason: r.reason,
                via: if r.freeze { "freeze" } else { "unfreeze" },
                partner: r.partner,
                operator: r.operator,
                now: &now,
            };
            let refusal = match (r.freeze, current) {
                (true, Some(t)) => Some(Refusal::AlreadyFrozen(t)),
                (true, None) => {
                    freeze(&mut tx, &change).await?;
                    None
                }
                (false, None) => Some(Refusal::NotFrozen),
                (false, Some(t)) if t != r.freeze_type => Some(Refusal::FrozenWith(t)),
                (false, Some(_)) => {
                    unfreeze(&mut tx, &change).await?;
                    None
                }
            };
            if let Some(refusal) = refusal {
                outcome.refused.push((id.clone(), refusal));
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }
}

/// Locks customer `id` for the rest of the transaction and reads its freeze
/// type (`Some(None)`: not frozen), or `None` when it is unknown.
pub(super) async fn lock_and_read(
    conn: &mut AnyConnection,
    id: &str,
) -> StoreResult<Option<Option<FreezeType>>> {
    super::lock_customer(conn, id).await?;
    let Some(row) = sqlx::query("SELECT frozen, freeze_type FROM customers WHERE id = $1")
        .bind(id.to_owned())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let frozen = flag(&row, "frozen")?;
    let freeze_type = get::<Option<String>>(&row, "freeze_type")?
        .map(|t| t.parse::<FreezeType>())
        .transpose()?;
    // A frozen customer without a recorded type was frozen by account.
    Ok(Some(
        frozen.then(|| freeze_type.unwrap_or(FreezeType::Account)),
    ))
}

/// Freezes a customer (and, by type, its resources) and records it.
async fn freeze(conn: &mut AnyConnection, c: &StateChange<'_>) -> StoreResult<()> {
    sqlx::query("UPDATE customers SET frozen = $2, freeze_type = $3 WHERE id = $1")
        .bind(c.customer_id.to_owned())
        .bind(true)
        .bind(c.freeze_type.as_str())
        .execute(&mut *conn)
        .await?;
    if c.freeze_type == FreezeType::AccountAndResource {
        sqlx::query(
            "UPDATE resources SET status_before_freeze = status, status = 'frozen'
             WHERE customer_id = $1 AND status IN ('in_use', 'stopped')",
        )
        .bind(c.customer_id.to_owned())
        .execute(&mut *conn)
        .await?;
    }
    record(conn, "freeze", c).await
}

/// Unfreezes a customer (and, by type, its resources) and records it.
pub(super) async fn unfreeze(conn: &mut AnyConnection, c: &StateChange<'_>) -> StoreResult<()> {
    sqlx::query("UPDATE customers SET frozen = $2, freeze_type = NULL WHERE id = $1")
        .bind(c.customer_id.to_owned())
        .bind(false)
        .execute(&mut *conn)
        .await?;
    if c.freeze_type == FreezeType::AccountAndResource {
        sqlx::query(
            "UPDATE resources SET status = COALESCE(status_before_freeze, 'in_use'),
                status_before_freeze = NULL
             WHERE customer_id = $1 AND status = 'frozen'",
        )
        .bind(c.customer_id.to_owned())
        .execute(&mut *conn)
        .await?;
    }
    record(conn, "unfreeze", c).await
}

async fn record(conn: &mut AnyConnection, action: &str, c: &StateChange<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO freeze_records (customer_id, action, freeze_type, reason, via, partner_id,
            operator_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(c.customer_id.to_owned())
    .bind(action.to_owned())
    .bind(c.freeze_type.as_str())
    .bind(c.reason.to_owned())
    .bind(c.via)
    .bind(c.partner.map(str::to_owned))
    .bind(c.operator.map(str::to_owned))
    .bind(c.now.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
