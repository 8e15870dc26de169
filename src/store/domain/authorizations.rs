//! Customer authorizations: requested by a partner, decided by the customer.

use super::super::lists::List;
use super::super::query::{Bind, Where};
use super::super::read::authorization_from_row;
use super::super::{Store, StoreResult};
use super::Listed;
use crate::catalog::fields::Paging;
use crate::filter::ListScope;
use crate::ids::CustomerId;
use crate::model::{join_set, Authorization, AuthorizationScope, AuthorizationStatus};
use crate::refs::EntityType;
use crate::time;
use chrono::Duration;

/// An authorization a partner's operator requests for a customer.
#[derive(Debug)]
pub struct NewAuthorization<'a> {
    pub customer: &'a CustomerId,
    pub scopes: &'a [AuthorizationScope],
    pub duration_days: i64,
    pub requested_by: Option<&'a str>,
}

/// What a request for an authorization did.
#[derive(Debug)]
pub enum Requested {
    Created(Authorization),
    /// No such customer (it may have vanished since the gateway decided).
    UnknownCustomer,
    /// The customer already has a live authorization for its partner.
    Live(Authorization),
}

/// What the customer decides about an authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizationChange {
    Approve,
    Reject,
    Revoke,
}

/// What a decision about an authorization did.
#[derive(Debug)]
pub enum Decided {
    Done(Authorization),
    /// No such authorization.
    Unknown,
    /// The lifecycle does not allow it: why.
    Refused(String),
}

/// The status a change moves an authorization to from `status`, or why it
/// cannot: approve and reject only a pending one (approve only before it
/// expires), revoke only an approved one.
pub(super) fn transition(
    change: AuthorizationChange,
    status: AuthorizationStatus,
    expired: bool,
) -> Result<AuthorizationStatus, String> {
    use AuthorizationChange::*;
    use AuthorizationStatus::*;
    match (change, status) {
        (Approve, Pending) if expired => {
            Err("The authorization request has expired and can no longer be approved.".into())
        }
        (Approve, Pending) => Ok(Approved),
        (Reject, Pending) => Ok(Rejected),
        (Revoke, Approved) => Ok(Revoked),
        (Approve, s) => Err(format!(
            "Only a pending authorization can be approved; this one is {s}."
        )),
        (Reject, s) => Err(format!(
            "Only a pending authorization can be rejected; this one is {s}."
        )),
        (Revoke, s) => Err(format!(
            "Only an approved authorization can be revoked; this one is {s}."
        )),
    }
}

async fn authorization_in<'c, E>(exec: E, id: &str) -> StoreResult<Option<Authorization>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query("SELECT * FROM customer_authorizations WHERE id = $1")
        .bind(id.to_owned())
        .fetch_optional(exec)
        .await?
        .as_ref()
        .map(authorization_from_row)
        .transpose()
}

impl Store {
    /// The authorizations of `customer` under `scope`, newest first.
    pub async fn list_authorizations(
        &self,
        customer: &str,
        scope: &ListScope,
        paging: Paging,
    ) -> StoreResult<Listed<Authorization>> {
        let mut f = Where::new();
        f.eq("a.customer_id", Bind::Text(customer.to_owned()));
        List {
            item: EntityType::Authorization,
            alias: "a",
            from: "FROM customer_authorizations a",
            columns: "a.*",
            filters: f,
            order_by: "ORDER BY a.created_at DESC, a.id DESC",
        }
        .run(self.pool(), scope, Some(paging), authorization_from_row)
        .await
    }

    /// Requests an authorization for the customer's own partner, pending.
    /// At most one is live (pending or approved, not expired) per customer
    /// and partner; the check runs under a lock on the customer's row, so
    /// two concurrent requests cannot both pass.
    pub async fn request_authorization(&self, a: &NewAuthorization<'_>) -> StoreResult<Requested> {
        let customer = a.customer.as_str().to_owned();
        let now = time::now();
        let now_text = time::format(now);
        let mut tx = self.pool().begin().await?;
        super::lock_customer(&mut tx, &customer).await?;
        let Some(partner): Option<String> =
            sqlx::query_scalar("SELECT partner_id FROM customers WHERE id = $1")
                .bind(customer.clone())
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(Requested::UnknownCustomer);
        };
        let live = sqlx::query(
            "SELECT * FROM customer_authorizations
             WHERE customer_id = $1 AND partner_id = $2 AND status IN ('pending', 'approved')
               AND expires_at > $3
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(customer.clone())
        .bind(partner.clone())
        .bind(now_text.clone())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(live) = live {
            return Ok(Requested::Live(authorization_from_row(&live)?));
        }
        let id = format!("auth-{}", uuid::Uuid::new_v4().simple());
        sqlx::query(
            "INSERT INTO customer_authorizations (id, customer_id, partner_id, scopes, status,
                duration_days, requested_by, created_at, updated_at, expires_at)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $7, $8)",
        )
        .bind(id.clone())
        .bind(customer)
        .bind(partner)
        .bind(join_set(a.scopes))
        .bind(a.duration_days)
        .bind(a.requested_by.map(str::to_owned))
        .bind(now_text)
        .bind(time::format(now + Duration::days(a.duration_days)))
        .execute(&mut *tx)
        .await?;
        let created = authorization_in(&mut *tx, &id).await?;
        tx.commit().await?;
        created.map(Requested::Created).ok_or_else(|| {
            super::super::StoreError::Corrupt(format!("authorization {id} vanished"))
        })
    }

    /// Approves, rejects or revokes authorization `id`. Approving starts the
    /// clock (seeded rows without a duration keep theirs) and revokes any
    /// other live approval of the customer for the same partner, so that at
    /// most one is live.
    pub async fn change_authorization(
        &self,
        id: &str,
        change: AuthorizationChange,
    ) -> StoreResult<Decided> {
        let now = time::now();
        let now_text = time::format(now);
        let mut tx = self.pool().begin().await?;
        // Lock the row (a no-op write) so that two decisions cannot interleave.
        sqlx::query("UPDATE customer_authorizations SET status = status WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await?;
        let Some(current) = authorization_in(&mut *tx, id).await? else {
            return Ok(Decided::Unknown);
        };
        let next = match transition(change, current.status, current.expires_at <= now) {
            Ok(next) => next,
            Err(why) => return Ok(Decided::Refused(why)),
        };
        if next == AuthorizationStatus::Approved {
            let expires_at = match current.duration_days {
                Some(days) => time::format(now + Duration::days(days)),
                None => time::format(current.expires_at),
            };
            sqlx::query(
                "UPDATE customer_authorizations SET status = 'revoked', updated_at = $4
                 WHERE customer_id = $1 AND partner_id = $2 AND id <> $3
                   AND status = 'approved' AND expires_at > $4",
            )
            .bind(current.customer.as_str().to_owned())
            .bind(current.partner.as_str().to_owned())
            .bind(id.to_owned())
            .bind(now_text.clone())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE customer_authorizations SET status = $2, updated_at = $3, approved_at = $3,
                    expires_at = $4
                 WHERE id = $1",
            )
            .bind(id.to_owned())
            .bind(next.as_str())
            .bind(now_text)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "UPDATE customer_authorizations SET status = $2, updated_at = $3 WHERE id = $1",
            )
            .bind(id.to_owned())
            .bind(next.as_str())
            .bind(now_text)
            .execute(&mut *tx)
            .await?;
        }
        let changed = authorization_in(&mut *tx, id).await?;
        tx.commit().await?;
        Ok(changed.map_or(Decided::Unknown, Decided::Done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthorizationChange::*;
    use AuthorizationStatus::*;

    #[test]
    fn lifecycle_transitions() {
        assert_eq!(transition(Approve, Pending, false).unwrap(), Approved);
        assert!(transition(Approve, Pending, true).is_err());
        assert_eq!(transition(Reject, Pending, true).unwrap(), Rejected);
        assert_eq!(transition(Revoke, Approved, false).unwrap(), Revoked);
        for s in [Approved, Rejected, Revoked] {
            assert!(transition(Approve, s, false).is_err());
            assert!(transition(Reject, s, false).is_err());
        }
        for s in [Pending, Rejected, Revoked] {
            assert!(transition(Revoke, s, false).is_err());
        }
    }
}
